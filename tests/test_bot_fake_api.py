"""The fake Bot API itself, driven by python-telegram-bot's real Bot over HTTP."""

from __future__ import annotations

import asyncio
import io
import sys

import pytest
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, InvalidToken

from tests.support.fake_bot_api import DEFAULT_TOKEN, FakeBotApi
from tests.support.redis_server import free_port

BAD = "987654321:AAThisTokenIsRejectedByTheFakeApi_xx"


async def test_bot_round_trip() -> None:
    """getMe, getUpdates with offsets, sendMessage, sendPhoto upload then file_id, edits."""
    async with FakeBotApi(bad_tokens=[BAD]) as api:
        bot = Bot(DEFAULT_TOKEN, base_url=api.base_url, base_file_url=api.file_base_url)
        async with bot:
            assert bot.username == api.username
            first = await api.send_message(42, "/start", language="ru")
            updates = await bot.get_updates(timeout=1)
            assert [u.update_id for u in updates] == [first]
            assert updates[0].effective_user is not None
            assert updates[0].effective_user.language_code == "ru"
            assert await bot.get_updates(offset=first + 1, timeout=0) == ()
            assert api.consumed(first)

            keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Go", callback_data="x")]])
            sent = await bot.send_message(42, "hello", reply_markup=keyboard)
            assert api.buttons(api.calls[-1]) == [("Go", "x")]
            await bot.edit_message_text("edited", chat_id=42, message_id=sent.message_id)
            with pytest.raises(BadRequest, match=r"(?i)not modified"):
                await bot.edit_message_text("edited", chat_id=42, message_id=sent.message_id)

            photo = await bot.send_photo(42, io.BytesIO(b"\xff\xd8fake"), caption="1/40")
            file_id = photo.photo[-1].file_id
            again = await bot.send_photo(42, file_id)
            assert again.photo[-1].file_id == file_id
            assert api.uploads == 1
            with pytest.raises(BadRequest, match=r"(?i)wrong file identifier"):
                await bot.send_photo(42, "AgACnope")

            pressed = await api.press(42, "x")
            updates = await bot.get_updates(offset=first + 1, timeout=1)
            assert updates[0].update_id == pressed
            assert updates[0].callback_query is not None
            assert updates[0].callback_query.data == "x"
            assert await bot.answer_callback_query(updates[0].callback_query.id)
            assert [c.method for c in api.replies(42)] == [
                "sendMessage", "editMessageText", "sendPhoto", "sendPhoto"
            ]  # fmt: skip


async def test_long_poll_wakes_on_injected_update() -> None:
    """A waiting getUpdates returns as soon as an update is injected."""
    async with FakeBotApi() as api, Bot(DEFAULT_TOKEN, base_url=api.base_url) as bot:
        waiting = asyncio.create_task(bot.get_updates(timeout=5))
        await asyncio.sleep(0.1)
        await api.send_message(7, "hi")
        updates = await asyncio.wait_for(waiting, 2)
        assert len(updates) == 1


async def test_rejected_token_gets_401() -> None:
    """A token listed as bad is refused: python-telegram-bot raises InvalidToken."""
    async with FakeBotApi(bad_tokens=[BAD]) as api:
        bot = Bot(BAD, base_url=api.base_url)
        try:
            with pytest.raises(InvalidToken):
                await bot.initialize()
        finally:
            await bot.shutdown()


async def test_runs_as_a_process() -> None:
    """``python -m tests.support.fake_bot_api --port N`` serves until SIGTERM."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.fake_bot_api", "--port", str(port),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        assert f"127.0.0.1:{port}" in line.decode()
        async with Bot(DEFAULT_TOKEN, base_url=f"http://127.0.0.1:{port}/bot") as bot:
            assert bot.username
    finally:
        process.terminate()
        assert await asyncio.wait_for(process.wait(), 10) == 0
