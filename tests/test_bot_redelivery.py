"""A tap Telegram sends again after its effect was written (the replica that handled it
died before its answer; in polling, a process killed before it confirmed the offset) is
recognised by the game and never applied twice: a draw, an opening card, a swap, a save,
the both-answer rule, End, /start (its stats). Each update is processed, then processed
again with the same update_id, through the real handlers against the fake Bot API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from telegram import Update

from tests.support.bot_harness import Harness, running_bot
from tests.support.decks import write_decks
from tests.support.fake_bot_api import ApiCall, FakeBotApi
from vechnost_bot.bot.keyboards import menu_for
from vechnost_bot.bot.texts import t
from vechnost_bot.game.content import load_library
from vechnost_bot.storage.game_records import Player, Table
from vechnost_bot.storage.memory import InMemoryStorage

CHAT = 1201


class _KeepingApi(FakeBotApi):
    """The fake Bot API that keeps every update it hands out, to send one again."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: dict[int, dict[str, Any]] = {}

    async def inject(self, update: Mapping[str, Any], *, force: bool = False) -> int:
        update_id = await super().inject(update, force=force)
        self.sent[update_id] = {**update, "update_id": update_id}
        return update_id


@pytest.fixture
async def bot(tmp_path: Path) -> AsyncIterator[Harness]:
    """The bot on an in-memory storage, with opening and closing cards in every theme."""
    library = load_library(write_decks(tmp_path / "decks", per_deck=6, extras=True))
    async with _KeepingApi() as api, running_bot(InMemoryStorage(), library, api=api) as harness:
        yield harness


async def _tap(bot: Harness, data: str) -> tuple[int, ApiCall]:
    """Tap ``data`` under the chat's last keyboard; its update id and the first reply."""
    since = len(bot.api.calls)
    update_id = await bot.api.press(CHAT, data)
    reply = await bot.reply(CHAT, since)
    await bot.idle(update_id)
    return update_id, reply


async def _again(bot: Harness, update_id: int) -> list[ApiCall]:
    """Process update ``update_id`` a second time, as a redelivery; the calls it made."""
    assert isinstance(bot.api, _KeepingApi)
    since = len(bot.api.calls)
    body = bot.api.sent[update_id]
    await bot.application.process_update(Update.de_json(body, bot.application.bot))
    return bot.api.calls[since:]


def _photos(calls: list[ApiCall]) -> list[ApiCall]:
    return [call for call in calls if call.method == "sendPhoto"]


def _same_card(first: ApiCall, again: ApiCall) -> None:
    assert again.method == first.method == "sendPhoto"
    assert again.params["caption"] == first.params["caption"]
    assert again.params["reply_markup"] == first.params["reply_markup"]


async def _in_deck(bot: Harness) -> ApiCall:
    """Start, choose the acquaintance deck, take both opening cards; the first deck card."""
    await bot.say(CHAT, "/start")
    await _tap(bot, "T:a")
    await _tap(bot, "V:a:1")
    await _tap(bot, "N:a:1:q")
    _update_id, card = await _tap(bot, "N:a:1:q")
    assert "1/8" in card.params["caption"]
    return card


async def test_a_redelivered_draw_shows_the_same_card_and_draws_nothing(bot: Harness) -> None:
    """Next card, sent again: the same card with the same caption and keyboard, no card
    drawn and no stat counted; the next tap deals card 3."""
    await _in_deck(bot)
    update_id, card = await _tap(bot, "N:a:1:q")
    session = await bot.storage.get_session(CHAT)
    stats = await bot.storage.get_user_stats(CHAT)
    calls = await _again(bot, update_id)
    assert len(_photos(calls)) == 1
    _same_card(card, _photos(calls)[0])
    after = await bot.storage.get_session(CHAT)
    assert session is not None
    assert after is not None
    assert after.drawn == session.drawn
    assert await bot.storage.get_user_stats(CHAT) == stats
    _update_id, third = await _tap(bot, "N:a:1:q")
    assert "3/8" in third.params["caption"]


async def test_a_redelivered_opening_card_is_shown_again_not_the_next(bot: Harness) -> None:
    """The tap that dealt the first opening card, sent again: that opening card again, and
    the second opening card still comes next."""
    await bot.say(CHAT, "/start")
    await _tap(bot, "T:a")
    update_id, opening = await _tap(bot, "V:a:1")
    calls = await _again(bot, update_id)
    _same_card(opening, _photos(calls)[0])
    table = await bot.storage.get_record(Table, str(CHAT))
    assert table is not None
    assert len(table.opening_dealt) == 1
    _update_id, second = await _tap(bot, "N:a:1:q")
    assert second.params["caption"] != opening.params["caption"]
    assert "1/8" not in second.params["caption"]


async def test_a_redelivered_swap_passes_one_card_only(bot: Harness) -> None:
    """Swap, sent again: the card that came in is shown again; the deck gave one card for
    the swap, not two."""
    first = await _in_deck(bot)
    session = await bot.storage.get_session(CHAT)
    assert session is not None
    passed = session.last_card
    since = len(bot.api.calls)
    update_id, _reply = await _tap(bot, f"W:{passed}")
    swapped = _photos(bot.api.calls[since:])[0]
    after = await bot.storage.get_session(CHAT)
    assert after is not None
    calls = await _again(bot, update_id)
    _same_card(swapped, _photos(calls)[0])
    again = await bot.storage.get_session(CHAT)
    assert again is not None
    assert again.drawn == after.drawn
    assert passed not in next(iter(again.drawn.values()))
    assert swapped.params["caption"] != first.params["caption"]


async def test_a_redelivered_save_stays_saved(bot: Harness) -> None:
    """Save, sent again: still saved (a toggle applied twice would take it out), counted
    once in the game's summary."""
    await _in_deck(bot)
    session = await bot.storage.get_session(CHAT)
    assert session is not None
    assert session.last_card is not None
    since = len(bot.api.calls)
    update_id = await bot.api.press(CHAT, f"S:{session.last_card}")
    await bot.api.wait_for(lambda c: c.method == "answerCallbackQuery", since=since)
    await bot.idle(update_id)
    calls = await _again(bot, update_id)
    assert [c.params.get("text") for c in calls if c.method == "answerCallbackQuery"] == [
        t("en", "saved")
    ]
    player = await bot.storage.get_record(Player, str(CHAT))
    table = await bot.storage.get_record(Table, str(CHAT))
    assert player is not None
    assert table is not None
    assert player.favourites == [session.last_card]
    assert table.saved_in_game == 1


async def test_redelivered_both_answer_and_end_apply_once(bot: Harness) -> None:
    """The both-answer rule, sent again, stays on; End, sent again, sends no second
    summary (the menu instead) and no second closing card."""
    await _in_deck(bot)
    update_id, _menu = await _tap(bot, "Y")
    calls = await _again(bot, update_id)
    assert [c.params.get("text") for c in calls if c.method == "answerCallbackQuery"] == [
        t("en", "both_on")
    ]
    table = await bot.storage.get_record(Table, str(CHAT))
    assert table is not None
    assert table.both_answer
    since = len(bot.api.calls)
    update_id, closing = await _tap(bot, "E")
    assert closing.method == "sendPhoto"
    summary = next(c for c in bot.api.calls[since:] if c.method == "sendMessage")
    calls = await _again(bot, update_id)
    assert _photos(calls) == []
    sent = [c for c in calls if c.method == "sendMessage"]
    session = await bot.storage.get_session(CHAT)
    table = await bot.storage.get_record(Table, str(CHAT))
    assert session is not None
    assert table is not None
    menu, _markup = menu_for(session, bot.game.library, "en", place="private", table=table)
    assert [c.params["text"] for c in sent] == [menu]
    assert sent[0].params["reply_markup"] == summary.params["reply_markup"]


async def test_a_redelivered_start_counts_one_game(bot: Harness) -> None:
    """/start, sent again: welcomed again (the names are asked once), but one game started
    in the stats."""
    since = len(bot.api.calls)
    update_id = await bot.api.send_message(CHAT, "/start", language="en")
    welcome = await bot.reply(CHAT, since)
    await bot.idle(update_id)
    calls = await _again(bot, update_id)
    sent = [c.params["text"] for c in calls if c.method == "sendMessage"]
    assert len(sent) == 1
    assert welcome.params["text"].startswith(sent[0])
    stats = await bot.storage.get_user_stats(CHAT)
    assert stats is not None
    assert stats.games_started == 1
