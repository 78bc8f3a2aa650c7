"""No update can stop the bot: unknown and broken updates, huge texts, handler errors.

The real Application and handlers against the fake Bot API over HTTP.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from structlog.testing import capture_logs

from tests.support.bot_harness import Harness, running_bot
from vechnost_bot.bot.polling import ALLOWED_UPDATES
from vechnost_bot.bot.texts import t
from vechnost_bot.game.content import Library
from vechnost_bot.storage.base import Change
from vechnost_bot.storage.memory import InMemoryStorage
from vechnost_bot.storage.records import Record, Session

PER_DECK = 5


async def test_only_handled_update_types_are_asked_for(bot: Harness) -> None:
    """getUpdates names allowed_updates; an edited message (not handled) is never fetched."""
    await bot.say(1, "/start")
    assert bot.api.allowed_updates == list(ALLOWED_UPDATES)
    edited = await bot.api.inject(
        {
            "edited_message": {
                "message_id": 5,
                "date": 1,
                "edit_date": 2,
                "text": "x",
                "chat": {"id": 1, "type": "private"},
            }
        }
    )
    reply = await bot.say(1, "/help")
    assert reply.method == "sendMessage"
    assert edited not in bot.api.fetched


async def test_an_unparseable_update_is_skipped_once(bot: Harness) -> None:
    """An update of an unknown shape (a type the bot never asked for, with fields missing,
    as an older self-hosted Bot API server sends) and a broken message are logged once by
    id, never by content, and skipped; the next /start is answered at once."""
    with capture_logs() as logs:
        odd = await bot.api.inject(
            {
                "my_chat_member": {
                    "chat": {"id": 2, "type": "private"},
                    "date": 1,
                    "old_chat_member": {"status": "member"},
                    "new_chat_member": {"status": "kicked"},
                    "note": "pw-123",
                }
            },
            force=True,
        )
        broken = await bot.api.inject(
            {
                "message": {
                    "message_id": 9,
                    "date": "soon",
                    "text": "pw-456",
                    "chat": {"id": 2, "type": "private"},
                }
            }
        )
        polls_before = bot.api.get_updates_calls
        started = time.monotonic()
        reply = await bot.say(2, "/start")
        assert time.monotonic() - started < 3
        assert reply.params["text"].startswith("Hi")
        await bot.idle(broken)
        assert bot.api.consumed(odd)
        assert bot.api.consumed(broken)
        assert bot.api.get_updates_calls - polls_before < 10
    skipped = [e for e in logs if e["event"] == "update_skipped"]
    assert sorted(e["update_id"] for e in skipped) == [odd, broken]
    assert "pw-" not in repr(logs)
    assert not [e for e in logs if e.get("log_level") == "critical"]


async def test_a_megabyte_message_does_not_block_the_loop(bot: Harness) -> None:
    """A 1 MB text gets the "too long" answer; the event loop never stalls for long, and the
    next message is answered."""
    lag = 0.0
    probing = True

    async def probe() -> None:
        nonlocal lag
        while probing:
            before = time.monotonic()
            await asyncio.sleep(0.001)
            lag = max(lag, time.monotonic() - before - 0.001)

    task = asyncio.create_task(probe())
    try:
        reply = await bot.say(3, "x" * 1_000_000)
        assert reply.params["text"].startswith(t("en", "too_long"))
        again = await bot.say(3, "/help")
        assert again.method == "sendMessage"
    finally:
        probing = False
        await task
    assert lag < 0.5, lag


class _FailingOnce(InMemoryStorage):
    """Fails the first session write of one chat, as a bug in a handler would."""

    def __init__(self, chat_id: int) -> None:
        super().__init__()
        self.chat_id = chat_id
        self.armed = False

    async def update_records(self, changes: Sequence[Change[Any]]) -> list[Record]:
        if self.armed and any(c.model is Session and c.key == str(self.chat_id) for c in changes):
            self.armed = False
            raise RuntimeError("a bug in a handler")
        return await super().update_records(changes)


async def test_a_handler_error_answers_with_an_apology(library: Library) -> None:
    """A handler that fails answers that one update with the apology and the menu; the game
    goes on from a valid state with the next tap."""
    storage = _FailingOnce(4)
    async with running_bot(storage, library) as bot:
        await bot.say(4, "/start")
        await bot.tap(4, "T:p")
        storage.armed = True
        since = len(bot.api.calls)
        reply = await bot.tap(4, "N:p:1:q")
        assert reply.method == "sendPhoto"  # the card went out; its write then failed
        error = t("en", "error")
        texts = [str(c.params.get("text")) for c in bot.api.replies(4, since)]
        assert any(text.startswith(error) for text in texts), texts
        reply = await bot.tap(4, "N:p:1:q")
        assert reply.method == "sendPhoto"
        assert f"2/{PER_DECK}" in reply.params["caption"]  # choosing the theme dealt 1


async def test_a_name_with_a_lone_surrogate_is_greeted(bot: Harness) -> None:
    """A first name with an unpaired surrogate: /start is answered (the name repaired), not
    with "something went wrong"."""
    reply = await bot.say(6, "/start", first_name="Ann\ud800")
    assert reply.params["text"].startswith("Hi")
    assert "Ann" in reply.params["text"]
    again = await bot.say(6, "/start", first_name="\udfff")
    assert again.params["text"] != t("en", "error")
    assert not str(again.params["text"]).startswith(t("en", "error"))


async def test_a_callback_from_an_inline_message_is_answered(bot: Harness) -> None:
    """A button under an inline message (no chat) gets its answer, so the spinner stops."""
    since = len(bot.api.calls)
    await bot.api.press(7, "M", inline=True, query_id="inline-press")
    answer = await bot.api.wait_for(lambda c: c.method == "answerCallbackQuery", since=since)
    assert answer.params["callback_query_id"] == "inline-press"
