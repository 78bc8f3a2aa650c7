"""One Redis connection whose commands are pipelined: the storage's hot path.

redis-py runs every command through its pool (an async lock, a connection handed out
and back), a retry wrapper, observability hooks and a stream-based parser: about 40 µs
of Python per command, more than the storage's own record code. A card draw's record
calls (GET and the compare-and-set EVALSHA) go here instead: one connection per
storage, commands written as they come (several in flight at once, no lock), replies
parsed from the socket's bytes by an :class:`asyncio.Protocol` and handed to the
callers in order.

It behaves like the redis-py client it is built from (:meth:`PipelinedConnection.for_client`):
the same address, password, database and ``CLIENT SETNAME``; the same error classes
(redis-py's own mapping of error replies, ``ConnectionError`` for a refused, reset or
closed connection, ``TimeoutError`` when a reply takes longer than the client's
``socket_timeout``), so that :class:`~vechnost_bot.storage.hybrid.HybridStorage`
fails over exactly as before; and, like redis-py's pool, it connects again on the
next command after the server closed an idle connection. Clients it does not cover
(Sentinel, whose pools are fenced and dropped during a failover; TLS; a credential
provider) keep using redis-py: ``for_client`` returns None for them.
"""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from collections.abc import Awaitable
from typing import Any, Final

import redis.asyncio as aioredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import Connection, ConnectionPool, UnixDomainSocketConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["PipelinedConnection", "pack_command"]

_CRLF: Final = b"\r\n"


def _encode(arg: Any) -> bytes:
    """One argument as redis-py's encoder writes it (bytes as they are, str as UTF-8,
    numbers as their repr)."""
    if type(arg) is bytes:
        return arg
    if type(arg) is str:
        return arg.encode()
    if isinstance(arg, int | float) and not isinstance(arg, bool):
        return repr(arg).encode()
    if isinstance(arg, bytes | bytearray | memoryview):
        return bytes(arg)
    raise TypeError(f"cannot send {type(arg).__name__} to Redis")


def pack_command(*args: Any) -> bytes:
    """A command in RESP: ``*<n>`` then each argument as a bulk string."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _encode(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class _IncompleteError(Exception):
    """The buffer ends inside a reply: wait for more bytes."""


def _parse(buf: bytearray, pos: int) -> tuple[Any, int]:
    """One RESP2 reply at ``pos``: (value, position after it). An error reply is the
    exception redis-py would raise for it (returned, not raised)."""
    end = buf.find(_CRLF, pos)
    if end < 0:
        raise _IncompleteError
    kind = buf[pos]
    if kind == 36:  # $ bulk string
        size = int(buf[pos + 1 : end])
        if size < 0:
            return None, end + 2
        start = end + 2
        stop = start + size
        if stop + 2 > len(buf):
            raise _IncompleteError
        return bytes(buf[start:stop]), stop + 2
    if kind == 58:  # : integer
        return int(buf[pos + 1 : end]), end + 2
    if kind == 42:  # * array
        count = int(buf[pos + 1 : end])
        if count < 0:
            return None, end + 2
        items = []
        pos = end + 2
        for _ in range(count):
            item, pos = _parse(buf, pos)
            items.append(item)
        return items, pos
    if kind == 43:  # + simple string
        return bytes(buf[pos + 1 : end]), end + 2
    if kind == 45:  # - error
        message = buf[pos + 1 : end].decode(errors="replace")
        return BaseParser.parse_error(message), end + 2  # type: ignore[no-untyped-call]
    raise RedisConnectionError(f"Protocol error: unexpected reply type {chr(kind)!r}")


class _Protocol(asyncio.Protocol):
    """The connection's bytes: replies parsed as they arrive, each handed to the oldest
    waiting caller; a reply that takes longer than ``timeout`` fails every waiting call."""

    def __init__(self, where: str, timeout: float | None) -> None:
        self.where = where
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.waiting: deque[tuple[asyncio.Future[Any], float]] = deque()
        self.closed = False
        self._buffer = bytearray()
        self._loop = asyncio.get_running_loop()
        self._watchdog: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # as redis-py does

    def send(self, packed: bytes) -> asyncio.Future[Any]:
        """Write one command; the future gets its reply."""
        assert self.transport is not None
        future = self._loop.create_future()
        now = self._loop.time()
        self.waiting.append((future, now))
        self.transport.write(packed)
        if self._watchdog is None and self.timeout is not None:
            self._watchdog = self._loop.call_at(now + self.timeout, self._check_timeout)
        return future

    def data_received(self, data: bytes) -> None:
        buf = self._buffer
        buf += data
        pos = 0
        waiting = self.waiting
        try:
            while pos < len(buf):
                reply, pos = _parse(buf, pos)
                if not waiting:
                    raise RedisConnectionError(f"Unexpected reply from {self.where}")
                future, _ = waiting.popleft()
                if future.done():  # its caller was cancelled: the reply is skipped
                    continue
                if isinstance(reply, RedisError):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)
        except _IncompleteError:
            pass
        except (RedisError, ValueError) as error:
            self.fail(RedisConnectionError(f"Error while reading from {self.where}: {error}"))
            return
        del buf[:pos]

    def connection_lost(self, exc: Exception | None) -> None:
        detail = "Connection closed by server." if exc is None else f"{exc!r}"
        self.fail(RedisConnectionError(f"Error while reading from {self.where}: {detail}"))

    def _check_timeout(self) -> None:
        self._watchdog = None
        if not self.waiting or self.closed or self.timeout is None:
            return
        deadline = self.waiting[0][1] + self.timeout
        if deadline <= self._loop.time():
            self.fail(RedisTimeoutError(f"Timeout reading from {self.where}"))
        else:
            self._watchdog = self._loop.call_at(deadline, self._check_timeout)

    def fail(self, error: RedisError) -> None:
        """Close for good: every waiting caller gets ``error``."""
        self.closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self.transport is not None:
            self.transport.abort()
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_exception(error)


class PipelinedConnection:
    """Commands on one connection, written at once and answered in order (see the module).

    Connects on the first command and again after the connection was lost; a command in
    flight when it is lost or times out fails, like one of redis-py's."""

    def __init__(
        self,
        *,
        host: str = "localhost",
        port: int = 6379,
        path: str | None = None,
        username: str | None = None,
        password: str | None = None,
        db: int = 0,
        client_name: str | None = None,
        socket_timeout: float | None = None,
        connect_timeout: float | None = None,
    ) -> None:
        self._host, self._port, self._path = host, port, path
        self._where = path if path is not None else f"{host}:{port}"
        self._handshake = _handshake(username, password, db, client_name)
        self._timeout = socket_timeout
        self._connect_timeout = connect_timeout
        self._protocol: _Protocol | None = None
        self._connecting: asyncio.Future[_Protocol] | None = None

    @classmethod
    def for_client(cls, client: aioredis.Redis) -> PipelinedConnection | None:
        """A connection to where ``client`` connects, with its credentials and timeouts;
        None for clients it does not cover (Sentinel, TLS, a credential provider)."""
        pool = client.connection_pool
        if type(pool) is not ConnectionPool:
            return None
        kwargs = pool.connection_kwargs
        if kwargs.get("credential_provider") is not None or kwargs.get("protocol") == 3:
            return None
        common: dict[str, Any] = {
            "username": kwargs.get("username"),
            "password": kwargs.get("password"),
            "db": int(kwargs.get("db") or 0),
            "client_name": kwargs.get("client_name"),
            "socket_timeout": kwargs.get("socket_timeout"),
        }
        if pool.connection_class is Connection:
            return cls(
                host=kwargs.get("host", "localhost"),
                port=int(kwargs.get("port", 6379)),
                connect_timeout=kwargs.get("socket_connect_timeout"),
                **common,
            )
        if pool.connection_class is UnixDomainSocketConnection:
            return cls(path=kwargs["path"], connect_timeout=kwargs.get("socket_timeout"), **common)
        return None

    def execute(self, packed: bytes) -> Awaitable[Any]:
        """Send one packed command (:func:`pack_command`); await the result for its reply.

        A plain function: while connected, the command is written before it returns and
        the awaitable is the reply's future (no coroutine in between)."""
        protocol = self._protocol
        if protocol is None or protocol.closed:
            return self._connect_and_send(packed)
        return protocol.send(packed)

    async def _connect_and_send(self, packed: bytes) -> Any:
        if self._connecting is None or self._connecting.done():
            # one connect for all the callers that need it at once
            self._connecting = asyncio.ensure_future(self._connect())
        protocol = await asyncio.shield(self._connecting)
        if protocol.closed:
            raise RedisConnectionError(f"Connection to {self._where} closed")
        return await protocol.send(packed)

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        protocol = _Protocol(self._where, self._timeout)
        try:
            async with asyncio.timeout(self._connect_timeout):
                if self._path is not None:
                    await loop.create_unix_connection(lambda: protocol, self._path)
                else:
                    await loop.create_connection(lambda: protocol, self._host, self._port)
        except TimeoutError as error:
            raise RedisTimeoutError(f"Timeout connecting to {self._where}") from error
        except OSError as error:
            raise RedisConnectionError(f"Error connecting to {self._where}. {error}") from error
        replies = [protocol.send(command) for command in self._handshake]
        try:
            for future in replies:
                _expect_ok(await future)
        except BaseException:
            protocol.fail(RedisConnectionError(f"Handshake with {self._where} failed"))
            for future in replies:  # retrieved, so that none is logged as never retrieved
                if future.done() and not future.cancelled():
                    future.exception()
            raise
        self._protocol = protocol
        return protocol

    async def disconnect(self) -> None:
        """Close the connection (commands in flight fail); the next command connects."""
        protocol, self._protocol = self._protocol, None
        if protocol is not None and not protocol.closed:
            protocol.fail(RedisConnectionError(f"Connection to {self._where} closed"))


def _expect_ok(reply: Any) -> None:
    if reply != b"OK":
        raise RedisConnectionError(f"Unexpected handshake reply {reply!r}")


def _handshake(
    username: str | None, password: str | None, db: int, client_name: str | None
) -> list[bytes]:
    """What redis-py sends on connect (RESP2, no CLIENT SETINFO): AUTH, CLIENT SETNAME,
    SELECT, as applicable."""
    commands = []
    if password is not None:
        auth = ("AUTH", username, password) if username else ("AUTH", password)
        commands.append(pack_command(*auth))
    if client_name:
        commands.append(pack_command("CLIENT", "SETNAME", client_name))
    if db:
        commands.append(pack_command("SELECT", db))
    return commands
