"""Redis through Sentinel: the master is whichever server the sentinels name now.

:func:`sentinel_client` is what :func:`~vechnost_bot.redis.client.make_client` builds
for an endpoint with ``sentinel`` set (``REDIS_SENTINELS``): redis-py's
``Sentinel.master_for``, with three changes that the failovers measured for issue 11
call for (docs/scaling.md):

* **The newest word wins.** A new connection asks every sentinel at once and believes
  the one whose ``config-epoch`` is highest (redis-py asks them in turn and believes the
  first, which may not have heard of the failover yet).
* **A wrong master drops the pool.** ``READONLY`` (the old master was demoted) and
  ``NOREPLICAS`` (it lost its replica, ``min-replicas-to-write``) disconnect every
  connection of the pool, in use or idle; a connection error or timeout disconnects the
  idle ones. The next command connects again, and so asks the sentinels again.
* **A failover fences the pool.** :class:`SentinelWatch` listens to every sentinel's
  events: when a failover starts, every pool of that master drops its connections and
  holds new commands (up to ``FENCE_TIMEOUT``) until the master has switched; then the
  pools connect to the new master. This matters most for a manual ``SENTINEL
  FAILOVER``: the old master keeps accepting writes, with no error, until it is demoted
  seconds later, and every one of them is lost (1 830 of 3 087 in issue 11; with two
  replicas ``min-replicas-to-write 1`` does not stop it, the other replica still
  follows the old master). The watch also asks every sentinel for the master every
  ``interval`` (0.1 s), in case an event was missed.

A ``rediss://`` REDIS_URL means TLS to the master and to the sentinels, both with its
``ssl_*`` parameters (:class:`~vechnost_bot.config.TlsOptions`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import redis.asyncio as aioredis
import structlog
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from vechnost_bot.config import RedisEndpoint, SentinelTarget
from vechnost_bot.log import redact
from vechnost_bot.service import Service

__all__ = [
    "SentinelAnswers",
    "SentinelWatch",
    "ask_sentinels",
    "drop_pools",
    "newest_master",
    "sentinel_client",
]

log = structlog.get_logger(__name__)

Address = tuple[str, int]
SwitchHook = Callable[[Address], Awaitable[None] | None]

FENCE_TIMEOUT: Final = 2.0
"""The longest a command waits for a failover in progress to end (manual failovers
switched 0.3-1.1 s after the request here)."""

# Sentinel's events (pub/sub channels): a failover starts, a replica is about to be
# promoted, the master switched, a failover ended or gave up.
_FENCE_EVENTS: Final = ("+try-failover", "+failover-state-send-slaveof-noone")
_SWITCH_EVENT: Final = "+switch-master"
_END_EVENTS: Final = (
    "+failover-end",
    "-failover-abort-not-elected",
    "-failover-abort-no-good-slave",
    "-failover-abort-slave-timeout",
    "+failover-end-for-timeout",
)

# The first word of an error reply is its code (the protocol's, not a message).
_WRONG_MASTER_CODES: Final = ("NOREPLICAS",)

# Every pool that follows a master through sentinels, so that a switch seen by the
# watch drops them all; weak, so a closed client's pool simply goes.
_POOLS: weakref.WeakSet[_FollowingPool] = weakref.WeakSet()


def newest_master(states: list[Any]) -> Address | None:
    """Of the sentinels' ``SENTINEL MASTER`` answers (exceptions for the ones that did
    not answer), the master named with the highest ``config-epoch`` by a sentinel that is
    not in the middle of replacing it; None when none names a master it believes up."""
    best: tuple[int, Address] | None = None
    for state in states:
        if not isinstance(state, Mapping) or not state.get("is_master"):
            continue
        if state.get("is_sdown") or state.get("is_odown"):
            continue
        flags = state.get("flags", "")
        if "failover_in_progress" in (flags if isinstance(flags, set) else str(flags).split(",")):
            # The failover's leader keeps naming the old master, with the new epoch, until
            # it has reconfigured every replica: the others already name the new one.
            continue
        epoch = int(state.get("config-epoch", 0))
        if best is None or epoch > best[0]:
            best = (epoch, (str(state["ip"]), int(state["port"])))
    return None if best is None else best[1]


async def _ask_all(sentinels: list[aioredis.Redis], master: str) -> list[Any]:
    answers: list[Any] = await asyncio.gather(
        *(sentinel.sentinel_master(master) for sentinel in sentinels), return_exceptions=True
    )
    return answers


@dataclass(frozen=True, slots=True)
class SentinelAnswers:
    """What the sentinels said when asked once (``vechnost doctor``)."""

    total: int
    errors: tuple[str, ...]
    """One line per sentinel that did not answer: ``host:port: the error``."""
    master: Address | None
    """The master the newest answer names (None: none names one that is up)."""

    @property
    def answered(self) -> int:
        return self.total - len(self.errors)


async def ask_sentinels(target: SentinelTarget, *, wait: float = 1.0) -> SentinelAnswers:
    """Ask every sentinel of ``target`` once (``wait``: each one's socket timeout), with
    clients of its own, closed after."""
    kwargs = _sentinel_kwargs(target, wait)
    clients = [aioredis.Redis(host=h, port=p, **kwargs) for h, p in target.addresses]
    try:
        states = await _ask_all(clients, target.master)
    finally:
        for client in clients:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await client.aclose()
    errors = tuple(
        f"{_where(address)}: {redact(str(state)) or type(state).__name__}"
        for address, state in zip(target.addresses, states, strict=True)
        if isinstance(state, BaseException)
    )
    return SentinelAnswers(total=len(states), errors=errors, master=newest_master(states))


class _Sentinels(Sentinel):
    """redis-py's Sentinel, asking every sentinel at once and believing the newest."""

    async def discover_master(self, service_name: str) -> Address:
        states = await _ask_all(self.sentinels, service_name)
        found = newest_master(states)
        if found is None:
            errors = [repr(state) for state in states if isinstance(state, BaseException)]
            raise MasterNotFoundError(
                f"no sentinel names a master {service_name!r} that is up"
                + (f" ({'; '.join(errors)[:300]})" if errors else "")
            )
        return found


class _FollowingPool(SentinelConnectionPool):
    """A master pool that :func:`drop_pools` and its connections can drop at once."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        self.target: SentinelTarget = kwargs.pop("target")
        self.fence_timeout: float = kwargs.pop("fence_timeout")
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        self.drops = 0
        self._open = asyncio.Event()
        self._open.set()
        _POOLS.add(self)

    @property
    def fenced(self) -> bool:
        """True while a failover runs: commands wait for its end (bounded)."""
        return not self._open.is_set()

    async def fence(self) -> None:
        """A failover started: drop every connection; new commands wait until :meth:`lift`
        or ``fence_timeout``, so none is acknowledged by a master being replaced."""
        self._open.clear()
        await self.drop(in_use=True)

    def lift(self) -> None:
        """The failover ended (switched or aborted): commands go on."""
        self._open.set()

    async def get_connection(self, *args: Any, **options: Any) -> Any:
        if not self._open.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.fence_timeout):
                    await self._open.wait()
        return await super().get_connection(*args, **options)  # type: ignore[no-untyped-call]

    async def drop(self, *, in_use: bool) -> None:
        """Disconnect every connection (only the idle ones unless ``in_use``); the next
        command connects again and so asks the sentinels for the master."""
        self.drops += 1
        self.master_address = None
        with contextlib.suppress(RedisError, OSError, RuntimeError):
            await self.disconnect(inuse_connections=in_use)

    async def aclose(self) -> None:
        """Close the pool and the connections to the sentinels (they are this pool's own)."""
        try:
            await super().aclose()
        finally:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await self.sentinel_manager.aclose()


class _FollowingConnection(SentinelManagedConnection):
    """A connection that drops its pool when the server it talks to is no longer the
    master (READONLY, NOREPLICAS) or cannot be reached."""

    async def read_response(
        self,
        disable_decoding: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - redis-py's signature
        *,
        disconnect_on_error: float | None = True,
        push_request: bool | None = False,
    ) -> Any:
        pool = self.connection_pool
        try:
            # Connection.read_response, not the parent's: that one turns READONLY into a
            # ConnectionError and drops only this connection.
            return await Connection.read_response(
                self,
                disable_decoding=disable_decoding,
                timeout=timeout,
                disconnect_on_error=bool(disconnect_on_error),
                push_request=push_request,
            )
        except ReadOnlyError:
            await pool.drop(in_use=True)
            raise RedisConnectionError("the master is now a replica (READONLY)") from None
        except ResponseError as error:
            if str(error).startswith(_WRONG_MASTER_CODES):
                await pool.drop(in_use=True)
            raise
        except (RedisConnectionError, RedisTimeoutError, OSError):
            await pool.drop(in_use=False)
            raise


class _FollowingSSLConnection(_FollowingConnection, SSLConnection):
    """:class:`_FollowingConnection` over TLS (``rediss://`` in REDIS_URL)."""


def _pools_of(target: SentinelTarget) -> list[_FollowingPool]:
    return [pool for pool in list(_POOLS) if pool.target == target]


async def drop_pools(target: SentinelTarget) -> int:
    """Drop every pool that follows ``target``'s master and lift its fence; how many."""
    pools = _pools_of(target)
    for pool in pools:
        await pool.drop(in_use=True)
        pool.lift()
    return len(pools)


def _sentinel_kwargs(target: SentinelTarget, timeout: float) -> dict[str, Any]:
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "password": target.password,
        "retry": Retry(NoBackoff(), 0),
        **(target.tls.client_kwargs() if target.tls is not None else {}),
    }


def sentinel_client(
    endpoint: RedisEndpoint,
    *,
    timeout: float,
    name: str,
    extra: Mapping[str, Any],
    fence_timeout: float = FENCE_TIMEOUT,
) -> aioredis.Redis:
    """A client of the master that ``endpoint.sentinel`` names (see the module doc).

    ``extra``: the connection options every Vechnost client has (no CLIENT SETINFO …).
    Nothing connects until the first command.
    """
    target = endpoint.sentinel
    if target is None:
        raise ValueError("sentinel_client needs an endpoint with sentinel set")
    sentinels = _Sentinels(  # type: ignore[no-untyped-call]
        list(target.addresses), sentinel_kwargs=_sentinel_kwargs(target, timeout)
    )
    # The pool picks no connection class of its own from ssl=True: this one is ours.
    tls = endpoint.tls_kwargs()
    connection_class = _FollowingSSLConnection if tls.pop("ssl", False) else _FollowingConnection
    client: aioredis.Redis = sentinels.master_for(
        target.master,
        connection_pool_class=_FollowingPool,
        connection_class=connection_class,
        **tls,
        target=target,
        fence_timeout=fence_timeout,
        db=endpoint.db,
        username=endpoint.username,
        password=endpoint.password,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        client_name=name,
        **extra,
    )
    return client


class SentinelWatch(Service):
    """Follows the master of ``target``, through every sentinel's events (pub/sub) and by
    asking every sentinel each ``interval`` seconds (in case an event was missed).

    * A failover starts (``+try-failover``, a replica about to be promoted): every pool
      of that master is fenced (:meth:`_FollowingPool.fence`).
    * The master switched (``+switch-master``, or the newest answer names another
      master): every pool is dropped and lifted (:func:`drop_pools`), then
      ``on_switch(address)`` is called (a plain function or a coroutine function).
    * A failover ended without a switch (aborted): the fence is lifted.
    """

    def __init__(
        self,
        target: SentinelTarget,
        *,
        on_switch: SwitchHook | None = None,
        interval: float = 0.1,
        timeout: float = 0.5,
    ) -> None:
        self.target = target
        self.master: Address | None = None
        """The master the sentinels name now (None until one answers)."""
        self.switches = 0
        self.switched_at: float | None = None
        self.fenced_at: float | None = None
        self._on_switch = on_switch
        self._interval = interval
        self._timeout = timeout
        self._clients: list[aioredis.Redis] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._lock = asyncio.Lock()

    @property
    def where(self) -> str | None:
        """:attr:`master` as ``host:port``, for logs; None until a sentinel has named one."""
        return None if self.master is None else _where(self.master)

    async def start(self) -> None:
        """Ask the sentinels once (at most ``timeout``), so that :attr:`master` is known
        when they answer, then follow them."""
        if self._tasks:
            return
        kwargs = _sentinel_kwargs(self.target, self._timeout)
        self._clients = [
            aioredis.Redis(host=host, port=port, **kwargs) for host, port in self.target.addresses
        ]
        await self.check()
        self._tasks = [asyncio.create_task(self._poll(), name="sentinel-watch")]
        self._tasks += [
            asyncio.create_task(self._listen(host, port), name=f"sentinel-events-{port}")
            for host, port in self.target.addresses
        ]

    async def stop(self) -> None:
        """Stop following and close the sentinels' connections; safe twice."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel("sentinel watch stopping")
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        clients, self._clients = self._clients, []
        for client in clients:
            with contextlib.suppress(RedisError, OSError, RuntimeError):
                await client.aclose()

    async def _poll(self) -> None:
        while True:
            started = time.monotonic()
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the watch must outlive any one failure
                log.exception("sentinel_watch_error", error=repr(error))
            await asyncio.sleep(max(0.0, self._interval - (time.monotonic() - started)))

    async def _listen(self, host: str, port: int) -> None:
        """One sentinel's events, resubscribing after a lost connection."""
        kwargs = {**_sentinel_kwargs(self.target, self._timeout), "socket_timeout": None}
        attempt = 0
        while True:
            client = aioredis.Redis(host=host, port=port, **kwargs)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(*_FENCE_EVENTS, _SWITCH_EVENT, *_END_EVENTS)
                attempt = 0
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        await self.on_event(_text(message["channel"]), _text(message["data"]))
            except (RedisError, OSError) as error:
                attempt += 1
                log.debug("sentinel_events_lost", sentinel=f"{host}:{port}", error=repr(error))
            except Exception as error:  # the watch must outlive any one failure
                attempt += 1
                log.exception("sentinel_watch_error", error=repr(error))
            finally:
                with contextlib.suppress(RedisError, OSError, RuntimeError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(RedisError, OSError, RuntimeError):
                    await client.aclose()
            await asyncio.sleep(min(2.0, 0.1 * 2**attempt))

    async def on_event(self, channel: str, data: str) -> None:
        """Act on one sentinel event (``channel``, its payload) about our master."""
        words = data.split()
        if channel == _SWITCH_EVENT:
            # "<name> <old ip> <old port> <new ip> <new port>"
            if len(words) >= 5 and words[0] == self.target.master:
                await self._switch((words[3], int(words[4])))
            return
        # "<instance type> <name> <ip> <port> …"
        if len(words) < 2 or words[0] != "master" or words[1] != self.target.master:
            return
        if channel in _FENCE_EVENTS:
            if self.fenced_at is None:
                self.fenced_at = time.monotonic()
                log.info("sentinel_failover_started", sentinel_event=channel)
            for pool in _pools_of(self.target):
                await pool.fence()
        elif channel in _END_EVENTS:
            self.fenced_at = None
            for pool in _pools_of(self.target):
                pool.lift()

    async def check(self) -> Address | None:
        """Ask the sentinels once; act on a switch. The master they name, or None."""
        found = newest_master(await _ask_all(self._clients, self.target.master))
        if found is not None:
            await self._switch(found)
        return found

    async def _switch(self, found: Address) -> None:
        async with self._lock:
            if found == self.master:
                return
            previous, self.master = self.master, found
            if previous is None:
                log.info("sentinel_master_found", master=_where(found), sentinels=self.target.hosts)
                return
            self.switches += 1
            self.switched_at = time.monotonic()
            self.fenced_at = None
            dropped = await drop_pools(self.target)
            log.warning(
                "sentinel_master_switched",
                previous=_where(previous),
                master=_where(found),
                pools_dropped=dropped,
            )
        if self._on_switch is not None:
            result = self._on_switch(found)
            if inspect.isawaitable(result):
                await result


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _where(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
