"""Sends under Telegram's faults: 429 honoured, definite failures put the card back,
ambiguous ones keep it. The real Application against the fake Bot API over HTTP."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from structlog.testing import capture_logs
from telegram import Bot
from telegram.error import BadRequest, NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.request import BaseRequest, HTTPXRequest

from tests.support.bot_harness import Harness, running_bot
from tests.support.fake_bot_api import DEFAULT_TOKEN, ApiCall, FakeBotApi, Fault
from tests.support.redis_server import free_port
from tests.support.waiting import wait_until
from vechnost_bot.bot.delivery import AiohttpRequest, SendGuard, delivery_failed
from vechnost_bot.bot.texts import t
from vechnost_bot.game.content import Library
from vechnost_bot.storage.game_records import Table
from vechnost_bot.storage.memory import InMemoryStorage

PER_DECK = 6


@pytest.fixture
async def bot(library: Library) -> AsyncIterator[Harness]:
    """The bot with a 1.5 s read timeout, so that a reply held back by the fake times out."""
    async with running_bot(InMemoryStorage(), library, read_timeout=1.5) as harness:
        yield harness


async def _drawn(bot: Harness, chat: int) -> list[str]:
    session = await bot.storage.get_session(chat)
    assert session is not None
    return list(session.drawn.get("provocation:1:questions", []))


def _progress(caption: str) -> str:
    """The "n/N" of a card's caption."""
    match = re.search(r"\d+/\d+", caption)
    assert match is not None, caption
    return match.group(0)


def _error_replies(bot: Harness, chat: int) -> list[object]:
    error = t("en", "error")
    return [c for c in bot.api.replies(chat) if error in str(c.params.get("text", ""))]


async def test_429_is_waited_out_and_nothing_else_is_sent_in_the_window(bot: Harness) -> None:
    """sendPhoto gets 429 retry_after 2: the card is sent again after 2 s; in the window no
    call at all goes to that chat (not an apology, not the next press's card); no error."""
    await bot.say(80, "/start")
    await bot.tap(80, "T:p")
    bot.api.fail("sendPhoto", Fault(status=429, retry_after=2))
    since = len(bot.api.calls)
    await bot.api.press(80, "N:p:1:q")
    refused = await bot.api.wait_for(lambda c: c.status == 429, since=since)
    await asyncio.sleep(0.1)
    await bot.api.press(80, "N:p:1:q")  # a second press inside the window

    def photos() -> list[ApiCall]:
        return [c for c in bot.api.replies(80, since) if c.method == "sendPhoto"]

    await wait_until(lambda: len(photos()) >= 2, interval=0.05, what="two photos")
    assert len(photos()) == 2
    in_window = [
        c for c in bot.api.calls[since:] if c.chat_id == 80 and refused.at < c.at < refused.at + 2.0
    ]
    assert in_window == []
    assert [_progress(c.params["caption"]) for c in photos()] == [f"2/{PER_DECK}", f"3/{PER_DECK}"]
    assert _error_replies(bot, 80) == []


async def test_a_window_longer_than_the_limit_is_a_definite_failure(library: Library) -> None:
    """A 429 asking for more than max_wait is not waited for: the card is put back and the
    player gets the apology once the window is over (nothing is sent inside it)."""
    async with running_bot(InMemoryStorage(), library) as bot:
        bot.application.bot.rate_limiter.max_wait = 1.0  # type: ignore[union-attr]
        await bot.say(81, "/start")
        await bot.tap(81, "T:p")
        bot.api.fail("sendPhoto", Fault(status=429, retry_after=2))
        since = len(bot.api.calls)
        await bot.api.press(81, "N:p:1:q")
        refused = await bot.api.wait_for(lambda c: c.status == 429, since=since)
        apology = await bot.api.wait_reply(81, since=since)
        assert apology.params["text"].startswith(t("en", "error"))
        assert apology.at >= refused.at + 2.0
        assert len(await _drawn(bot, 81)) == 1  # only the card choosing the theme dealt
        reply = await bot.tap(81, "N:p:1:q")
        assert _progress(reply.params["caption"]) == f"2/{PER_DECK}"


async def test_a_reply_that_times_out_after_delivery_keeps_the_card(bot: Harness) -> None:
    """The photo is shown but its reply comes too late (3 times): those cards stay drawn,
    with no apology, and the deck shows each card once."""
    await bot.say(82, "/start")
    await bot.tap(82, "T:p")
    bot.api.fail("sendPhoto", Fault(deliver=True, delay=2.5), times=3)
    with capture_logs() as logs:
        last = 0
        for _ in range(PER_DECK):
            last = await bot.api.press(82, "N:p:1:q")  # queued behind each other in the chat
        await bot.idle(last)

        async def all_drawn() -> bool:
            return len(await _drawn(bot, 82)) >= PER_DECK

        await wait_until(all_drawn, interval=0.1, what="the whole deck drawn")
        await asyncio.sleep(0.3)
    shown = [_progress(c.params["caption"]) for c in bot.api.replies(82) if c.method == "sendPhoto"]
    assert shown == [f"{n}/{PER_DECK}" for n in range(1, PER_DECK + 1)]
    drawn = await _drawn(bot, 82)
    assert len(drawn) == len(set(drawn)) == PER_DECK
    assert _error_replies(bot, 82) == []
    assert len([e for e in logs if e["event"] == "card_send_uncertain"]) == 3


async def test_a_card_whose_reply_timed_out_is_on_the_table(bot: Harness) -> None:
    """A card that may have been shown (its reply timed out) is on the table like one
    that surely was: it is the current card and the last of the history, it took its
    turn, and the previous card's keyboard went; the next card follows it."""
    await bot.say(85, "/start")
    first = await bot.tap(85, "T:p")  # choosing the theme dealt the first card
    bot.api.fail("sendPhoto", Fault(deliver=True, delay=2.5))
    with capture_logs() as logs:
        update = await bot.api.press(85, "N:p:1:q")
        await bot.idle(update)
        await wait_until(
            lambda: any(e["event"] == "card_send_uncertain" for e in logs),
            interval=0.05,
            what="card_send_uncertain logged",
        )
        await asyncio.sleep(0.3)
    uncertain = [e["card"] for e in logs if e["event"] == "card_send_uncertain"]
    assert len(uncertain) == 1
    table = await bot.storage.get_record(Table, "85")
    assert table is not None
    assert table.current == uncertain[0]
    assert table.history[-1] == uncertain[0]
    assert table.shared == 2
    assert uncertain[0] in await _drawn(bot, 85)
    first_id = first.result["message_id"]
    dropped = [
        int(c.params["message_id"])
        for c in bot.api.calls
        if c.chat_id == 85 and c.method == "editMessageReplyMarkup"
    ]
    assert first_id in dropped
    reply = await bot.tap(85, "N:p:1:q")
    assert _progress(reply.params["caption"]) == f"3/{PER_DECK}"
    table = await bot.storage.get_record(Table, "85")
    assert table is not None
    assert table.history[-2:] == [uncertain[0], table.current]


async def test_a_garbled_reply_keeps_the_card(bot: Harness) -> None:
    """A photo delivered with a garbled reply counts as shown: no repeat, no apology."""
    await bot.say(83, "/start")
    await bot.tap(83, "T:p")
    bot.api.fail("sendPhoto", Fault(deliver=True, garbled=True), times=2)
    for _ in range(PER_DECK - 1):  # choosing the theme dealt the first card
        since = len(bot.api.calls)
        await bot.api.press(83, "N:p:1:q")
        await bot.api.wait_for(lambda c: c.method == "sendPhoto", since=since)
        await asyncio.sleep(0.15)
    shown = [_progress(c.params["caption"]) for c in bot.api.replies(83) if c.method == "sendPhoto"]
    assert shown == [f"{n}/{PER_DECK}" for n in range(1, PER_DECK + 1)]
    assert _error_replies(bot, 83) == []


async def test_a_5xx_puts_the_card_back(bot: Harness) -> None:
    """Telegram answers 500: the card was not shown, so it is put back and comes next."""
    await bot.say(84, "/start")
    await bot.tap(84, "T:p")
    bot.api.fail("sendPhoto", Fault(status=500))
    reply = await bot.tap(84, "N:p:1:q")
    assert reply.params["text"].startswith(t("en", "error"))
    assert len(await _drawn(bot, 84)) == 1  # only the card choosing the theme dealt
    reply = await bot.tap(84, "N:p:1:q")
    assert _progress(reply.params["caption"]) == f"2/{PER_DECK}"


async def _error_of(call: object) -> TelegramError:
    try:
        await call  # type: ignore[misc]
    except TelegramError as error:
        return error
    raise AssertionError("the call did not fail")


@pytest.mark.parametrize("kind", ["httpx", "aiohttp"])
async def test_delivery_failed_tells_definite_from_ambiguous(kind: str) -> None:
    """Real failures from python-telegram-bot's HTTP layer (httpx, and the bot's own
    aiohttp requests): refused connection, 400 and 500 are definite; a read timeout after
    the request was sent and a garbled body are not."""
    closed = f"http://127.0.0.1:{free_port()}/bot"
    requests: list[BaseRequest] = (
        [HTTPXRequest(), HTTPXRequest()]
        if kind == "httpx"
        else [AiohttpRequest(), AiohttpRequest()]
    )
    for request in requests:
        await request.initialize()
    async with FakeBotApi() as api:
        bot = Bot(DEFAULT_TOKEN, base_url=api.base_url, request=requests[0])
        refused_bot = Bot(DEFAULT_TOKEN, base_url=closed, request=requests[1])
        try:
            refused = await _error_of(refused_bot.send_message(1, "x"))
            assert isinstance(refused, NetworkError)
            assert delivery_failed(refused)
            bad = await _error_of(bot.send_message(1, ""))
            assert isinstance(bad, BadRequest)
            assert delivery_failed(bad)
            api.fail("sendMessage", Fault(status=500))
            assert delivery_failed(await _error_of(bot.send_message(1, "x")))
            api.fail("sendMessage", Fault(deliver=True, delay=1.0))
            late = await _error_of(bot.send_message(1, "x", read_timeout=0.3))
            assert isinstance(late, TimedOut)
            assert not delivery_failed(late)
            api.fail("sendMessage", Fault(deliver=True, garbled=True))
            assert not delivery_failed(await _error_of(bot.send_message(1, "x")))
        finally:
            for request in requests:  # never initialized, so Bot.shutdown() would skip them
                await request.shutdown()
    assert delivery_failed(RuntimeError("our own bug"))
    assert delivery_failed(RetryAfter(3))
    dropped = NetworkError("httpx.RemoteProtocolError: Server disconnected")
    dropped.__cause__ = httpx.RemoteProtocolError("Server disconnected")
    assert not delivery_failed(dropped)
    dropped.__cause__ = aiohttp.ServerDisconnectedError()
    assert not delivery_failed(dropped)
    waited = TimedOut()
    waited.__cause__ = aiohttp.ConnectionTimeoutError()  # no connection came: never sent
    assert delivery_failed(waited)


async def test_pacing_keeps_a_chat_near_one_message_per_second() -> None:
    """With pacing, a chat gets a burst, then one message per second; other chats are not
    slowed by it."""
    clock = [0.0]
    guard = SendGuard(chat_burst=3, clock=lambda: clock[0])
    sent: list[tuple[int, float]] = []

    async def call(chat: int) -> bool:
        sent.append((chat, clock[0]))
        return True

    waits: list[float] = []
    for _ in range(4):
        started = time.monotonic()
        await guard.process_request(call, (7,), {}, "sendMessage", {"chat_id": 7}, None)
        waits.append(time.monotonic() - started)
    assert all(w < 0.3 for w in waits[:3])
    assert waits[3] > 0.8
    started = time.monotonic()
    await guard.process_request(call, (8,), {}, "sendMessage", {"chat_id": 8}, None)
    assert time.monotonic() - started < 0.3
