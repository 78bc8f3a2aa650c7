"""What the Telegram Bot API server does for a webhook, as a test double.

Like tdlib/telegram-bot-api's WebhookActor: one queue per chat, and a chat's next
update is sent only after the previous one got a 2xx. A non-2xx answer is retried
after its ``Retry-After`` (or a default delay); a refused connection or a timeout
is retried too, so nothing is dropped until ``give_up_after`` seconds. Every
request carries ``X-Telegram-Bot-Api-Secret-Token``.

``targets`` are the replicas behind a load balancer. With ``balance="failover"``
the pusher keeps sending to one and moves to the next when a connection fails, as a
balancer takes a dead backend out; with ``"round_robin"`` each request goes to the
next target. Every attempt and every delivery is recorded for the test to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Self

import aiohttp

__all__ = ["Attempt", "Delivery", "WebhookPusher", "chat_of"]

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def chat_of(update: Mapping[str, Any]) -> int:
    """The chat an update belongs to (0 when it names none), as Telegram queues it."""
    for key in ("message", "edited_message", "channel_post"):
        if isinstance(update.get(key), Mapping):
            return int(update[key]["chat"]["id"])
    query = update.get("callback_query")
    if isinstance(query, Mapping) and isinstance(query.get("message"), Mapping):
        return int(query["message"]["chat"]["id"])
    return 0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One HTTP request: where it went, the answer (None = no answer) and when."""

    update_id: int
    chat_id: int
    target: str
    status: int | None
    started: float
    finished: float
    retry_after: float | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """An update that got a 2xx, after ``attempts`` requests."""

    update_id: int
    chat_id: int
    target: str
    status: int
    attempts: int
    at: float


@dataclass
class _Chat:
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


class WebhookPusher:
    """``async with WebhookPusher([url], secret) as pusher: pusher.push(update)``."""

    def __init__(
        self,
        targets: Sequence[str],
        secret: str | None,
        *,
        request_timeout: float = 10.0,
        default_retry_after: float = 0.2,
        error_retry_delay: float = 0.05,
        give_up_after: float = 60.0,
        max_connections: int = 40,
        balance: Literal["failover", "round_robin"] = "failover",
    ) -> None:
        if not targets:
            raise ValueError("a pusher needs at least one target URL")
        self.targets = list(targets)
        self.secret = secret
        self.request_timeout = request_timeout
        self.default_retry_after = default_retry_after
        self.error_retry_delay = error_retry_delay
        self.give_up_after = give_up_after
        self.balance = balance
        self.attempts: list[Attempt] = []
        self.deliveries: list[Delivery] = []
        self.dropped: list[int] = []
        self._current = 0
        self._ids = itertools.count(1)
        self._chats: dict[int, _Chat] = {}
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._limit = asyncio.Semaphore(max_connections)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Cancel the chat workers and close the HTTP session; safe twice."""
        tasks = [chat.task for chat in self._chats.values() if chat.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._chats.clear()
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    # -- feeding ---------------------------------------------------------------------------
    def push(self, update: Mapping[str, Any]) -> int:
        """Queue ``update`` on its chat (an ``update_id`` is added when missing); its id."""
        body = dict(update)
        body.setdefault("update_id", next(self._ids))
        chat_id = chat_of(body)
        chat = self._chats.setdefault(chat_id, _Chat())
        self._pending += 1
        self._idle.clear()
        chat.queue.put_nowait(body)
        if chat.task is None:
            chat.task = asyncio.create_task(self._run_chat(chat_id, chat))
        return int(body["update_id"])

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Wait until every queued update was delivered or dropped."""
        await asyncio.wait_for(self._idle.wait(), timeout)

    async def wait_delivered(self, update_id: int, timeout: float = 60.0) -> Delivery:
        """Wait until ``update_id`` got its 2xx; its delivery."""
        deadline = time.monotonic() + timeout
        while True:
            for delivery in reversed(self.deliveries):
                if delivery.update_id == update_id:
                    return delivery
            if update_id in self.dropped or time.monotonic() > deadline:
                raise TimeoutError(f"update {update_id} was not delivered")
            await asyncio.sleep(0.01)

    # -- reading ---------------------------------------------------------------------------
    def delivered_ids(self, chat_id: int) -> list[int]:
        """A chat's update ids in the order they got their 2xx."""
        return [d.update_id for d in self.deliveries if d.chat_id == chat_id]

    def attempts_for(self, update_id: int) -> list[Attempt]:
        return [a for a in self.attempts if a.update_id == update_id]

    # -- sending ---------------------------------------------------------------------------
    async def _run_chat(self, chat_id: int, chat: _Chat) -> None:
        while True:
            update = await chat.queue.get()
            try:
                await self._deliver(chat_id, update)
            finally:
                self._pending -= 1
                if self._pending == 0:
                    self._idle.set()

    async def _deliver(self, chat_id: int, update: dict[str, Any]) -> None:
        update_id = int(update["update_id"])
        first = time.monotonic()
        for number in itertools.count(1):
            attempt = await self._attempt(chat_id, update)
            self.attempts.append(attempt)
            if attempt.status is not None and 200 <= attempt.status < 300:
                self.deliveries.append(
                    Delivery(update_id, chat_id, attempt.target, attempt.status, number,
                             attempt.finished)
                )  # fmt: skip
                return
            if attempt.status is None:
                # No answer: the balancer takes that backend out and tries the next.
                self._current = (self.targets.index(attempt.target) + 1) % len(self.targets)
                delay = self.error_retry_delay
            else:
                delay = (
                    attempt.retry_after
                    if attempt.retry_after is not None
                    else self.default_retry_after
                )
            if time.monotonic() + delay - first > self.give_up_after:
                self.dropped.append(update_id)
                return
            await asyncio.sleep(delay)

    async def _attempt(self, chat_id: int, update: dict[str, Any]) -> Attempt:
        assert self._session is not None, "use the pusher as `async with`"
        target = self.targets[self._current]
        if self.balance == "round_robin":
            self._current = (self._current + 1) % len(self.targets)
        headers = {} if self.secret is None else {SECRET_HEADER: self.secret}
        update_id = int(update["update_id"])
        started = time.monotonic()
        async with self._limit:
            try:
                async with self._session.post(
                    target,
                    json=update,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                ) as response:
                    await response.read()
                    return Attempt(
                        update_id, chat_id, target, response.status, started,
                        time.monotonic(), _retry_after(response.headers.get("Retry-After")),
                    )  # fmt: skip
            except (aiohttp.ClientError, TimeoutError) as error:
                return Attempt(
                    update_id, chat_id, target, None, started, time.monotonic(),
                    error=type(error).__name__,
                )  # fmt: skip


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
