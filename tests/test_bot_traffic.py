"""The bot under real Telegram traffic: bursts in one chat, floods, many chats at once.

The real Application and handlers against the fake Bot API over HTTP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import time
from typing import Any

from telegram import Chat, Message, Update

from tests.support.bot_harness import Harness, running_bot
from tests.support.fake_bot_api import ApiCall, FakeBotApi
from vechnost_bot.bot.processor import ChatOrderedProcessor
from vechnost_bot.bot.texts import t
from vechnost_bot.game.content import Library
from vechnost_bot.storage.hybrid import HybridStorage
from vechnost_bot.storage.memory import InMemoryStorage

PER_DECK = 25
_PROGRESS = re.compile(r"(\d+)/\d+")


def _drawn(call: ApiCall) -> int:
    match = _PROGRESS.search(str(call.params.get("caption", "")))
    assert match is not None, call.params
    return int(match.group(1))


async def _into_deck(bot: Harness, chat: int) -> None:
    await bot.say(chat, "/start")
    await bot.tap(chat, "T:p")


async def _burst(bot: Harness, chat: int, taps: int, gap: float = 0.02) -> int:
    since = len(bot.api.calls)
    for _ in range(taps):
        await bot.api.press(chat, "N:p:1:q")
        await asyncio.sleep(gap)
    return since


async def _photos(api: FakeBotApi, chat: int, since: int, count: int) -> list[ApiCall]:
    await api.wait_for(
        lambda _c: len([c for c in api.replies(chat, since) if c.method == "sendPhoto"]) >= count,
        since=since,
        timeout=30,
    )
    return [c for c in api.replies(chat, since) if c.method == "sendPhoto"]


async def test_a_burst_of_taps_counts_up_in_order(bot: Harness) -> None:
    """20 taps 20 ms apart in one chat: 20 cards 1/25 … 20/25 in order, no gap, no repeat,
    no "something went wrong"."""
    await _into_deck(bot, 70)
    since = await _burst(bot, 70, 20)
    photos = await _photos(bot.api, 70, since, 20)
    await asyncio.sleep(0.2)
    drawn = [_drawn(c) for c in photos]
    assert drawn == list(range(drawn[0], drawn[0] + 20))  # choosing the theme may deal one
    assert len({c.result["photo"][-1]["file_id"] for c in photos}) == 20
    error = t("en", "error")
    assert not [c for c in bot.api.replies(70, since) if error in str(c.params.get("text", ""))]


async def test_a_burst_over_the_limit_gets_a_toast_not_an_error(library: Library) -> None:
    """With a limit of 8 updates per window, 20 taps give 1/25 … 8/25 in order and one
    "slow down" toast; the other taps are answered silently, none with an error."""
    async with running_bot(
        InMemoryStorage(), library, rate_limit_updates=10, rate_limit_window=1000
    ) as bot:  # a window so long that no token comes back during the burst
        await _into_deck(bot, 71)  # two updates of the ten
        since = await _burst(bot, 71, 20)
        photos = await _photos(bot.api, 71, since, 8)
        await asyncio.sleep(0.5)
        photos = [c for c in bot.api.replies(71, since) if c.method == "sendPhoto"]
        drawn = [_drawn(c) for c in photos]
        assert drawn == list(range(drawn[0], drawn[0] + 8))
        answers = [c for c in bot.api.calls[since:] if c.method == "answerCallbackQuery"]
        toasts = [c for c in answers if c.params.get("text")]
        assert [c.params["text"] for c in toasts] == [t("en", "slow_down")]
        assert not [c for c in bot.api.replies(71, since) if c.method == "sendMessage"]


async def test_chats_run_concurrently_while_one_is_busy(bot: Harness) -> None:
    """A chat with a backlog does not hold up another chat's first answer."""
    await _into_deck(bot, 72)
    await _burst(bot, 72, 15, gap=0)
    started = time.monotonic()
    reply = await bot.say(73, "/start")
    assert reply.method == "sendMessage"
    photos_before = [c for c in bot.api.replies(72) if c.method == "sendPhoto"]
    assert len(photos_before) < 15, "the other chat waited for the whole backlog"
    assert time.monotonic() - started < 5


async def test_idle_chats_keep_no_queue(bot: Harness) -> None:
    """After a burst in 10 chats has been answered, the processor holds no queue."""
    processor = bot.application.update_processor
    assert isinstance(processor, ChatOrderedProcessor)
    since = len(bot.api.calls)
    for chat in range(100, 110):
        await bot.api.send_message(chat, "/start")
    for chat in range(100, 110):
        await bot.api.wait_reply(chat, since=since)
    await asyncio.sleep(0.1)
    assert processor.lanes == 0


async def test_a_full_queue_sheds_the_newest_updates() -> None:
    """Past ``max_pending_per_chat`` a chat's new updates are dropped (closed, never run),
    while other chats still run."""
    processor = ChatOrderedProcessor(4, max_pending_per_chat=2)
    gate = asyncio.Event()
    ran: list[int] = []

    def update(update_id: int, chat_id: int) -> Update:
        chat = Chat(chat_id, "private")
        message = Message(update_id, date=dt.datetime.now(dt.UTC), chat=chat)
        return Update(update_id, message=message)

    async def handle(number: int) -> None:
        if number == 1:
            await gate.wait()
        ran.append(number)

    tasks = [
        asyncio.create_task(processor.process_update(update(n, 5), handle(n))) for n in (1, 2, 3)
    ]
    other = asyncio.create_task(processor.process_update(update(4, 6), handle(4)))
    await other
    assert ran == [4]
    gate.set()
    await asyncio.gather(*tasks)
    assert ran == [4, 1, 2]
    assert processor.lanes == 0


class _CountingStorage(InMemoryStorage):
    """An in-memory storage that counts every call the bot makes to it (at the backend's
    own surface, which every derived helper goes through)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    async def _load(self, model: Any, key: str) -> Any:
        self.calls += 1
        return await super()._load(model, key)

    async def _cas(self, record: Any, expected: int) -> Any:
        self.calls += 1
        return await super()._cas(record, expected)

    async def hit_rate_limit(self, key: str, limit: int, window: float) -> bool:
        self.calls += 1
        return await super().hit_rate_limit(key, limit, window)

    async def cache_get(self, key: str) -> bytes | None:
        self.calls += 1
        return await super().cache_get(key)

    async def cache_add(self, key: str, value: bytes, ttl: float) -> bool:
        self.calls += 1
        return await super().cache_add(key, value, ttl)


async def test_a_flood_costs_no_storage_call(library: Library) -> None:
    """200 messages from one user with a limit of 5: the refused 195 make no storage call
    and no Bot API call, except the one "slow down"."""
    storage = _CountingStorage()
    async with running_bot(storage, library, rate_limit_updates=5) as bot:
        since = len(bot.api.calls)
        last = 0
        for _ in range(200):
            last = await bot.api.send_message(80, "hello?")
        await bot.idle(last)
        assert 5 <= storage.calls < 60, storage.calls  # the five allowed ones do cost calls
        replies = bot.api.replies(80, since)
        assert len(replies) == 6
        assert replies[-1].params["text"] == t("en", "slow_down")


async def _play(bot: Harness, chat: int, taps: int, latencies: list[float]) -> None:
    await bot.say(chat, "/start")
    await bot.tap(chat, "T:p")
    for _ in range(taps):
        started = time.monotonic()
        await bot.tap(chat, "N:p:1:q")
        latencies.append(time.monotonic() - started)


async def test_a_flood_waits_in_its_own_queue(
    library: Library, redis_storage: HybridStorage
) -> None:
    """While one user floods 2 000 button taps, other players' p95 stays close to their p95
    without the flood (Redis mode; each refused tap used to cost a Redis round trip and a
    Bot API call, in a slot in front of the other players)."""
    # No pacing: the flooder's allowed answers would drain at Telegram's 1/s per chat, and
    # stopping the bot waits for its queue.
    async with running_bot(redis_storage, library, rate_limit_updates=30, pacing=False) as bot:
        await _play(bot, 199, PER_DECK, [])  # every card rendered and uploaded once
        quiet: list[float] = []
        await asyncio.gather(*(_play(bot, chat, 8, quiet) for chat in range(200, 206)))
        await _into_deck(bot, 90)

        async def flood() -> None:
            for number in range(2000):
                await bot.api.press(90, "N:p:1:q")
                if number % 100 == 0:
                    await asyncio.sleep(0.01)

        flooded: list[float] = []
        flooding = asyncio.create_task(flood())
        await asyncio.sleep(0.02)
        await asyncio.gather(*(_play(bot, chat, 8, flooded) for chat in range(206, 212)))
        await flooding
    quiet_p95 = sorted(quiet)[int(0.95 * (len(quiet) - 1))]
    flood_p95 = sorted(flooded)[int(0.95 * (len(flooded) - 1))]
    assert flood_p95 < 2 * quiet_p95 + 0.1, (quiet_p95, flood_p95)
