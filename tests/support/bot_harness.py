"""The real bot (python-telegram-bot Application + our handlers) against the fake Bot API,
in the test's event loop, with any Storage."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from tests.support.fake_bot_api import DEFAULT_TOKEN, ApiCall, FakeBotApi
from tests.support.waiting import PATIENCE, wait_until
from vechnost_bot.app import AnyApplication, build_application, start_polling
from vechnost_bot.bot.cards import CardSender
from vechnost_bot.bot.handlers import GameBot
from vechnost_bot.bot.processor import ChatOrderedProcessor
from vechnost_bot.game.content import Library
from vechnost_bot.storage.base import Storage

__all__ = ["Harness", "running_bot"]


@dataclass
class Harness:
    """The fake API, the handlers and the Application, plus helpers to play."""

    api: FakeBotApi
    game: GameBot
    application: AnyApplication
    storage: Storage

    async def say(self, chat_id: int, text: str | None = None, **kwargs: Any) -> ApiCall:
        """Send a message (or ``extra=`` content) and return the bot's first reply."""
        since = len(self.api.calls)
        await self.api.send_message(chat_id, text, **kwargs)
        return await self.reply(chat_id, since)

    async def tap(self, chat_id: int, data: str, **kwargs: Any) -> ApiCall:
        """Tap a button with ``data`` and return the bot's first message, photo or edit."""
        since = len(self.api.calls)
        await self.api.press(chat_id, data, **kwargs)
        return await self.reply(chat_id, since)

    async def reply(self, chat_id: int, since: int, timeout: float = PATIENCE) -> ApiCall:
        """The bot's first reply in ``chat_id`` from call ``since``, once the chat's update
        is done (its records are written after the card went out)."""
        call = await self.api.wait_reply(chat_id, since=since, timeout=timeout)
        processor = self.application.update_processor
        if isinstance(processor, ChatOrderedProcessor):
            await wait_until(
                lambda: not processor.busy(("chat", chat_id)),
                timeout=timeout,
                what=f"chat {chat_id}'s update done",
            )
        return call

    async def idle(self, update_id: int) -> None:
        """Wait until ``update_id`` was fetched and its handlers had time to finish."""
        await wait_until(
            lambda: self.api.consumed(update_id), interval=0.01, what=f"update {update_id} fetched"
        )
        await asyncio.sleep(0.2)


@asynccontextmanager
async def running_bot(
    storage: Storage,
    library: Library,
    *,
    rate_limit_updates: int = 1000,
    rate_limit_window: float = 10.0,
    api: FakeBotApi | None = None,
    read_timeout: float = 15.0,
    pacing: bool = True,
    pace_cards: int | None = None,
) -> AsyncIterator[Harness]:
    """Start the fake API (unless given) and the bot polling it; stop both after."""
    own_api = api is None
    fake = api or FakeBotApi()
    if own_api:
        await fake.start()
    game = GameBot(
        storage=storage,
        library=library,
        cards=CardSender(storage),
        rate_limit_updates=rate_limit_updates,
        rate_limit_window=rate_limit_window,
        rng=random.Random(4),
    )
    if pace_cards is not None:
        game.pace_cards = pace_cards
    application = build_application(
        DEFAULT_TOKEN,
        game,
        base_url=fake.base_url,
        base_file_url=fake.file_base_url,
        read_timeout=read_timeout,
        pacing=pacing,
    )
    await application.initialize()
    await application.start()
    await start_polling(application, poll_timeout=0.3)
    try:
        yield Harness(fake, game, application, storage)
    finally:
        if application.updater is not None:
            await application.updater.stop()
        await application.stop()
        await application.shutdown()
        if own_api:
            await fake.stop()
