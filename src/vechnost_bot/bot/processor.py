"""One chat at a time, all chats at once: python-telegram-bot's update processor.

Updates of one chat (of one user where there is no chat, e.g. a button under an
inline message) are handled one after another in arrival order, so two taps never
race for one game. Different chats run concurrently, up to ``max_concurrent_updates``
at once. A chat's waiting updates hold no slot: only the head of each chat's queue
runs or waits for one, so a flooding chat queues behind itself, never in front of
the others. A chat's queue is dropped as soon as it is empty, and one that grows
past ``max_pending_per_chat`` sheds the newest updates (logged once per backlog).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, Final

import structlog
from telegram import Update
from telegram.ext import BaseUpdateProcessor

from vechnost_bot.metrics import UPDATES_SHED

__all__ = ["ChatKey", "ChatOrderedProcessor", "chat_key"]

log = structlog.get_logger(__name__)

ChatKey = tuple[str, int]

# PTB's own semaphore wraps do_process_update, so a waiting update would hold one of its
# slots: it gets a limit nobody reaches, and the real limit is applied to queue heads only.
_UNLIMITED: Final = 1 << 30


def chat_key(update: object) -> ChatKey | None:
    """The queue an update belongs to: its chat, else its user, else none."""
    if not isinstance(update, Update):
        return None
    chat = update.effective_chat
    if chat is not None:
        return ("chat", chat.id)
    user = update.effective_user
    if user is not None:
        return ("user", user.id)
    return None


@dataclass
class _Lane:
    """One chat's queue: a FIFO lock (asyncio.Lock wakes waiters in order) and its size."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: int = 0
    shedding: bool = False


class ChatOrderedProcessor(BaseUpdateProcessor):
    """Per-chat arrival order, concurrency across chats, bounded memory."""

    def __init__(
        self, max_concurrent_updates: int = 64, *, max_pending_per_chat: int = 256
    ) -> None:
        super().__init__(_UNLIMITED)
        if max_concurrent_updates < 1 or max_pending_per_chat < 1:
            raise ValueError("max_concurrent_updates and max_pending_per_chat must be positive")
        self._limit = max_concurrent_updates
        self._max_pending = max_pending_per_chat
        self._slots = asyncio.Semaphore(max_concurrent_updates)
        self._lanes: dict[ChatKey, _Lane] = {}

    @property
    def concurrency(self) -> int:
        """How many chats' updates run at once."""
        return self._limit

    @property
    def lanes(self) -> int:
        """Chats with an update running or waiting (idle chats keep no queue)."""
        return len(self._lanes)

    def busy(self, key: ChatKey) -> bool:
        """True while an update of ``key``'s chat runs or waits."""
        return key in self._lanes

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run ``coroutine`` after every earlier update of the same chat, in a free slot."""
        key = chat_key(update)
        if key is None:
            async with self._slots:
                await coroutine
            return
        # Everything up to lock.acquire() runs without yielding, so tasks join their
        # lane in the order python-telegram-bot created them: the order of arrival.
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        if lane.pending >= self._max_pending:
            self._shed(key, lane, update, coroutine)
            return
        lane.pending += 1
        try:
            async with lane.lock, self._slots:
                await coroutine
        finally:
            lane.pending -= 1
            if lane.pending == 0:
                del self._lanes[key]

    def _shed(self, key: ChatKey, lane: _Lane, update: object, coroutine: Awaitable[Any]) -> None:
        UPDATES_SHED.inc()
        if inspect.iscoroutine(coroutine):
            coroutine.close()
        if not lane.shedding:
            lane.shedding = True  # once per backlog: the lane is new after it drains
            log.warning(
                "update_backlog_full",
                chat=key[1],
                kind=key[0],
                update_id=update.update_id if isinstance(update, Update) else None,
                pending=lane.pending,
            )

    async def initialize(self) -> None:
        """Nothing to allocate: lanes come and go with the updates."""

    async def shutdown(self) -> None:
        """Nothing to free: Application.stop() already waited for every update."""
