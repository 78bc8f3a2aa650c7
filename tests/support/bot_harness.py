"""The real bot (python-telegram-bot Application + our handlers) against the fake Bot API,
in the test's event loop, with any Storage."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.fake_bot_api import DEFAULT_TOKEN, ApiCall, FakeBotApi
from tests.support.waiting import PATIENCE, wait_until
from vechnost_bot.app import AnyApplication, build_application, start_polling
from vechnost_bot.bot.cards import CardSender
from vechnost_bot.bot.handlers import GameBot
from vechnost_bot.bot.processor import ChatOrderedProcessor
from vechnost_bot.game.content import Library
from vechnost_bot.storage.base import Storage

__all__ = ["BotProcess", "Harness", "bot_process", "running_bot"]


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


@dataclass
class BotProcess:
    """``vechnost run`` as a child process: its /status and /readyz on ``health_port``,
    its stderr (the JSON log) collected, stopped by SIGTERM."""

    process: asyncio.subprocess.Process
    health_port: int
    _stderr: asyncio.Task[bytes]

    async def get(self, path: str) -> tuple[int, dict[str, Any]]:
        """HTTP status and JSON body of ``path`` on the health port."""
        url = f"http://127.0.0.1:{self.health_port}{path}"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            body: dict[str, Any] = await response.json(content_type=None)
            return response.status, body

    async def wait_status(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The first /status that satisfies ``predicate`` (the port answers once the bot
        is up)."""
        last: dict[str, Any] = {}

        async def matches() -> bool:
            nonlocal last
            try:
                _, last = await self.get("/status")
            except (aiohttp.ClientError, ValueError):
                return False
            return predicate(last)

        await wait_until(matches, interval=0.2, what="the bot's /status")
        return last

    async def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit code and everything the bot wrote to stderr."""
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), 60)
        text = (await asyncio.wait_for(self._stderr, 10)).decode("utf-8", "replace")
        return code, text


@asynccontextmanager
async def bot_process(
    cwd: Path,
    env: dict[str, str],
    health_port: int,
    *,
    preexec_fn: Callable[[], object] | None = None,
) -> AsyncIterator[BotProcess]:
    """Start ``python -m vechnost_bot run`` with ``env``; killed by pid if still running
    after. stderr is a pipe (a file-size cap on the child must not stop its log)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "vechnost_bot", "run",
        cwd=cwd, env=env, stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec_fn,
    )  # fmt: skip
    assert process.stderr is not None
    stderr = asyncio.create_task(process.stderr.read())
    try:
        yield BotProcess(process, health_port, stderr)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if not stderr.done():
            stderr.cancel()
