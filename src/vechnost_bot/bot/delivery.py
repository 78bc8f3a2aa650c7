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

:class:`AiohttpRequest` carries the bot's calls (getUpdates stays on httpx): about
half the CPU per call of python-telegram-bot's httpx transport, whose pool asks every
connection "has the server closed you?" (an attribute lookup, a ``getpeername`` and a
``poll``) each time it hands one out.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Coroutine
from typing import Any, Final

import aiohttp
import httpx
import structlog
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import JSONDict, ODVInput
from telegram.error import NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import BaseRateLimiter
from telegram.request import BaseRequest, RequestData

from vechnost_bot.bot.ratelimit import KeyedBuckets
from vechnost_bot.metrics import SENDS_RETRIED

__all__ = ["AiohttpRequest", "SendGuard", "delivery_failed"]

log = structlog.get_logger(__name__)

_OVERALL_PER_SECOND: Final = 30.0
_GROUP_PER_MINUTE: Final = 20.0
_CHAT_PER_SECOND: Final = 1.0
# httpx and aiohttp errors raised before the request reached Telegram (aiohttp's
# connection timeout covers the wait for a pooled connection too).
_NEVER_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout,
                      httpx.WriteTimeout, httpx.UnsupportedProtocol,
                      aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError,
                      aiohttp.InvalidURL)  # fmt: skip

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
    if isinstance(error, NetworkError) and isinstance(cause, httpx.HTTPError | aiohttp.ClientError):
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


class AiohttpRequest(BaseRequest):
    """python-telegram-bot's requests over aiohttp, with :class:`~telegram.request.
    HTTPXRequest`'s contract (timeouts, errors, uploads) at a fraction of its CPU per
    call: aiohttp's pool hands out a connection without scanning every other one, and
    its HTTP parser is in C. Timeouts raise :class:`TimedOut`, other transport errors
    :class:`NetworkError`, each with aiohttp's error as the cause (see
    :func:`delivery_failed`)."""

    def __init__(
        self,
        *,
        connection_pool_size: int = 16,
        connect_timeout: float | None = 5.0,
        read_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
    ) -> None:
        self._size = connection_pool_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        """The default read timeout."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the session (its connection pool)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._size),
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        """Close the session; safe twice."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """One request; ``write_timeout`` is part of the read timeout (aiohttp has none)."""
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = (
            self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        )
        pool = self._pool_timeout if isinstance(pool_timeout, DefaultValue) else pool_timeout
        timeout = aiohttp.ClientTimeout(
            connect=None if connect is None or pool is None else connect + pool,
            sock_connect=connect,
            sock_read=read,
        )
        body: aiohttp.FormData | dict[str, str] | None = None
        if request_data is not None:
            body = request_data.json_parameters
            files = request_data.multipart_data
            if files:
                form = aiohttp.FormData()
                for name, value in body.items():
                    form.add_field(name, value)
                for name, (filename, content, mimetype) in files.items():
                    form.add_field(name, content, filename=filename, content_type=mimetype)
                body = form
        try:
            async with session.request(method, url, data=body, timeout=timeout) as response:
                return response.status, await response.read()
        except (TimeoutError, aiohttp.ServerTimeoutError) as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}: {error}") from error
