"""Every Bot API call the bot makes, sent within Telegram's limits and honest about failure.

:class:`SendGuard` is python-telegram-bot's rate limiter for the bot, so it sees every
call (cards, menus, the error handler's apology, callback answers):

- **429 is honoured.** Telegram's ``retry_after`` blocks that chat: the call waits it
  out and is retried, at most ``max_retries`` times, and nothing else is sent to that
  chat until the window has passed. A window longer than ``max_wait`` is not waited
  for: the call fails at once, as a definite failure.
- **Pacing** (``pacing=True``): about one message per second per chat after a burst of
  ``chat_burst``, 20 per minute per group, 30 per second overall — Telegram's published
  limits. Calls without a chat (answering a button press) are not paced.
- **Text that cannot be encoded** (a lone surrogate from a user's name) is repaired, so
  that it cannot fail a send.

:func:`delivery_failed` tells a send that certainly did not reach the chat (Telegram
refused it, or it never left) from one that may have: a reply that timed out or came
back garbled after the request was sent.

:func:`bot_transport` is the HTTP transport of the bot's calls: httpx's own, except
that its pool's "has the server closed this idle connection?" check, which the pool
asks of every connection each time it hands one out, is one ``select`` on the socket
instead of anyio's attribute lookup (a dict built and a ``getpeername`` per check).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import select
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

import httpcore
import httpx
import structlog
from telegram._utils.types import JSONDict
from telegram.error import NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import BaseRateLimiter

from vechnost_bot.bot.ratelimit import KeyedBuckets
from vechnost_bot.metrics import SENDS_RETRIED

__all__ = ["SendGuard", "bot_transport", "delivery_failed"]

log = structlog.get_logger(__name__)

_OVERALL_PER_SECOND: Final = 30.0
_GROUP_PER_MINUTE: Final = 20.0
_CHAT_PER_SECOND: Final = 1.0
# httpx errors raised before the request reached Telegram.
_NEVER_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                      httpx.WriteTimeout, httpx.UnsupportedProtocol)  # fmt: skip

ChatId = int | str | None


def delivery_failed(error: BaseException) -> bool:
    """True when a failed call certainly did not reach the chat: Telegram answered with an
    error (4xx, 5xx, 429), or the request never left (connection refused, pool or connect
    timeout). False when it may have been carried out: the reply timed out after the
    request was sent, the connection dropped while waiting, or the reply was garbled."""
    if not isinstance(error, TelegramError):
        return True  # raised on our side, before anything was sent
    cause = error.__cause__ or error.__context__
    if isinstance(error, TimedOut):
        return isinstance(cause, _NEVER_SENT)
    if isinstance(error, NetworkError) and isinstance(cause, httpx.HTTPError):
        return isinstance(cause, _NEVER_SENT)
    # An error built from Telegram's answer has no httpx cause; a garbled answer has a
    # JSON decoding error as its cause.
    return not isinstance(cause, ValueError)


def _seconds(retry_after: int | dt.timedelta) -> float:
    if isinstance(retry_after, dt.timedelta):
        return retry_after.total_seconds()
    return float(retry_after)


def _repair(value: str) -> str:
    """``value`` with lone surrogates replaced, so it can be sent as UTF-8."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace").decode("utf-8")
    return value


class SendGuard(BaseRateLimiter[int]):
    """Honours 429 per chat, paces sends to Telegram's limits, repairs unencodable text."""

    def __init__(
        self,
        *,
        max_retries: int = 3,
        max_wait: float = 30.0,
        pacing: bool = True,
        chat_burst: int = 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_retries = max(0, max_retries)
        self.max_wait = max_wait
        self.pacing = pacing
        self._clock = clock
        self._blocked: dict[ChatId, float] = {}  # chat -> monotonic time its 429 window ends
        self._overall: KeyedBuckets[None] = KeyedBuckets(
            _OVERALL_PER_SECOND, _OVERALL_PER_SECOND, clock=clock
        )
        self._chats: KeyedBuckets[ChatId] = KeyedBuckets(chat_burst, _CHAT_PER_SECOND, clock=clock)
        self._groups: KeyedBuckets[ChatId] = KeyedBuckets(
            _GROUP_PER_MINUTE, _GROUP_PER_MINUTE / 60, clock=clock
        )

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    def blocked_for(self, chat_id: ChatId) -> float:
        """Seconds left in ``chat_id``'s 429 window (0 when none)."""
        until = self._blocked.get(_key(chat_id))
        return max(0.0, until - self._clock()) if until is not None else 0.0

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, bool | JSONDict | list[JSONDict]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: int | None,
    ) -> bool | JSONDict | list[JSONDict]:
        """Send one call: wait out the chat's 429 window and the pacing, retry after 429."""
        for name, value in data.items():
            if isinstance(value, str):
                data[name] = _repair(value)
        chat = _key(data.get("chat_id"))
        retries = self.max_retries if rate_limit_args is None else max(0, rate_limit_args)
        attempt = 0
        while True:
            await self._wait_window(chat, endpoint)
            await self._pace(chat)
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                wait = _seconds(error.retry_after)
                self._block(chat, wait)
                attempt += 1
                give_up = attempt > retries or wait > self.max_wait
                log.warning(
                    "telegram_rate_limited",
                    method=endpoint,
                    chat_id=chat,
                    retry_after=wait,
                    attempt=attempt,
                    action="giving up" if give_up else "waiting",
                )
                if give_up:
                    raise
                SENDS_RETRIED.inc()

    async def _wait_window(self, chat: ChatId, endpoint: str) -> None:
        left = self.blocked_for(chat)
        if left <= 0:
            return
        if left > self.max_wait:
            log.info("telegram_send_refused_in_window", method=endpoint, chat_id=chat, left=left)
            raise RetryAfter(max(1, round(left)))
        await asyncio.sleep(left)

    async def _pace(self, chat: ChatId) -> None:
        if not self.pacing or chat is None:
            return
        wait = max(self._overall.reserve(None), self._chats.reserve(chat))
        if _is_group(chat):
            wait = max(wait, self._groups.reserve(chat))
        if wait > 0:
            await asyncio.sleep(wait)

    def _block(self, chat: ChatId, seconds: float) -> None:
        now = self._clock()
        if len(self._blocked) > 1000:  # drop windows that are over
            for key in [key for key, until in self._blocked.items() if until <= now]:
                del self._blocked[key]
        self._blocked[chat] = max(self._blocked.get(chat, 0.0), now + seconds)


def _key(chat_id: object) -> ChatId:
    if chat_id is None:
        return None
    try:
        return int(str(chat_id))
    except ValueError:
        return str(chat_id)  # "@channelusername"


def _is_group(chat: ChatId) -> bool:
    return isinstance(chat, str) or (chat is not None and chat < 0)


def _readable(sock: socket.socket | None) -> bool:
    """True when ``sock`` has data (or is gone): for an idle connection, the server's
    close."""
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    readable, _, _ = select.select([fd], [], [], 0)
    return bool(readable)


class _Stream(httpcore.AsyncNetworkStream):
    """One connection, with its socket looked up once."""

    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner
        self._socket: socket.socket | None = inner.get_extra_info("socket")

    # The signatures are httpcore's interface, timeouts included.
    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._socket is not None:
            return _readable(self._socket)
        return self._inner.get_extra_info(info)


class _Backend(httpcore.AsyncNetworkBackend):
    """httpcore's anyio backend, handing out :class:`_Stream` connections."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(
            await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        return _Stream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def bot_transport(connections: int) -> httpx.AsyncHTTPTransport:
    """httpx's transport with at most ``connections`` connections and the cheap idle
    check (httpx's default pool when its internals are not the ones we know)."""
    transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=connections))
    pool = getattr(transport, "_pool", None)
    if isinstance(pool, httpcore.AsyncConnectionPool) and hasattr(pool, "_network_backend"):
        pool._network_backend = _Backend()
    return transport
