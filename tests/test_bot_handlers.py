"""Handler tests: the real Application and handlers against the fake Bot API over HTTP."""

from __future__ import annotations

import asyncio
from pathlib import Path

from structlog.testing import capture_logs
from telegram import Bot

from tests.conftest import RedisFactory
from tests.support.bot_harness import Harness, running_bot
from tests.support.fake_bot_api import DEFAULT_TOKEN, ApiCall, FakeBotApi
from vechnost_bot.bot.cards import CardSender
from vechnost_bot.bot.handlers import set_commands
from vechnost_bot.bot.texts import t
from vechnost_bot.game import engine
from vechnost_bot.game.content import Library
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage.game_records import Player
from vechnost_bot.storage.hybrid import HybridStorage
from vechnost_bot.storage.memory import InMemoryStorage
from vechnost_bot.storage.records import Session

PER_DECK = 5


def texts(call_buttons: list[tuple[str, str]]) -> list[str]:
    return [text for text, _data in call_buttons]


def data(call_buttons: list[tuple[str, str]]) -> list[str]:
    return [value for _text, value in call_buttons]


async def test_start_uses_telegram_language_and_shows_themes(bot: Harness) -> None:
    """First /start in Russian greets in Russian with the four themes; state is in storage."""
    reply = await bot.say(10, "/start", language="ru")
    assert reply.method == "sendMessage"
    assert "Вечность" in reply.params["text"]
    assert data(FakeBotApi.buttons(reply))[:4] == ["T:a", "T:c", "T:p", "T:s"]
    player = await bot.storage.get_record(Player, "10")
    assert player is not None
    assert player.language == "ru"
    stats = await bot.storage.get_user_stats(10)
    assert stats is not None
    assert stats.games_started == 1


def progress_line(call: ApiCall) -> str:
    """The first line of a card's caption: ``Deck · n/total``."""
    return str(call.params["caption"]).split("\n", 1)[0]


async def test_english_buttons_and_a_full_deck(bot: Harness) -> None:
    """Theme → level deals the first card → every card once with progress → the last card
    offers the next level and a reshuffle → exhausted → reshuffle."""
    reply = await bot.say(11, "/start", language="en-GB")
    labels = " | ".join(texts(FakeBotApi.buttons(reply)))
    for word in ("Acquaintance", "For Couples", "Sex", "Provocation"):
        assert word in labels
    reply = await bot.tap(11, "T:a")
    assert reply.method == "editMessageText"
    assert texts(FakeBotApi.buttons(reply))[:3] == ["Level 1", "Level 2", "Level 3"]
    seen = set()
    for number in range(1, PER_DECK + 1):
        reply = await bot.tap(11, "V:a:2" if number == 1 else "N:a:2:q")
        assert reply.method == "sendPhoto"
        assert progress_line(reply) == f"Acquaintance · Level 2 · {number}/{PER_DECK}"
        buttons = data(FakeBotApi.buttons(reply))
        if number < PER_DECK:
            assert buttons[0] == "N:a:2:q"
        else:  # the last card offers the next level, the reshuffle and the themes at once
            assert buttons[:2] == ["V:a:3", "R:a:2:q"]
            assert "M" in buttons
            assert not any(b.startswith("N:") for b in buttons)
        session = await bot.storage.get_session(11)
        assert session is not None
        assert session.last_card is not None
        seen.add(session.last_card)
    assert len(seen) == PER_DECK
    reply = await bot.tap(11, "N:a:2:q")
    assert reply.method == "sendMessage"
    assert "whole deck" in reply.params["text"]
    assert data(FakeBotApi.buttons(reply))[:2] == ["V:a:3", "R:a:2:q"]
    reply = await bot.tap(11, "R:a:2:q")
    assert reply.method == "sendPhoto"
    assert progress_line(reply).endswith(f"1/{PER_DECK}")


async def test_adult_theme_needs_confirmation(bot: Harness) -> None:
    """Sex asks for 18+ first; "no" goes back; "yes" is stored and leads to Questions/Tasks."""
    await bot.say(12, "/start")
    reply = await bot.tap(12, "T:s")
    assert "18" in reply.params["text"]
    assert data(FakeBotApi.buttons(reply)) == ["A:y", "A:n"]
    reply = await bot.tap(12, "N:s:1:t")  # a forged "next" before confirming
    assert reply.params["text"].startswith(t("en", "stale"))
    reply = await bot.tap(12, "A:n")
    assert t("en", "adult_declined") in reply.params["text"]
    await bot.tap(12, "T:s")
    reply = await bot.tap(12, "A:y")
    assert texts(FakeBotApi.buttons(reply))[:2] == ["Questions", "Tasks"]
    player = await bot.storage.get_record(Player, "12")
    assert player is not None
    assert player.adult_confirmed
    reply = await bot.tap(12, "C:s:1:t")
    assert reply.method == "sendPhoto"
    assert progress_line(reply) == f"Sex · Tasks · 1/{PER_DECK}"
    session = await bot.storage.get_session(12)
    assert session is not None
    assert session.last_card is not None
    assert session.last_card.startswith("sex1t")


async def test_back_at_every_step(bot: Harness) -> None:
    """Back goes deck → level → themes, and deck → content → themes for Sex."""
    await bot.say(13, "/start")
    await bot.tap(13, "T:c")
    reply = await bot.tap(13, "V:c:3")
    assert reply.method == "sendPhoto"
    assert ("⬅️ Back", "B:c") in FakeBotApi.buttons(reply)
    reply = await bot.tap(13, "B:c")
    assert "Level 1" in texts(FakeBotApi.buttons(reply))
    reply = await bot.tap(13, "B")
    assert data(FakeBotApi.buttons(reply))[0] == "T:a"
    await bot.tap(13, "T:s")
    await bot.tap(13, "A:y")
    reply = await bot.tap(13, "C:s:1:q")
    assert ("⬅️ Back", "B:s:1") in FakeBotApi.buttons(reply)
    reply = await bot.tap(13, "B:s:1")
    assert texts(FakeBotApi.buttons(reply))[:2] == ["Questions", "Tasks"]
    reply = await bot.tap(13, "B")
    assert data(FakeBotApi.buttons(reply))[0] == "T:a"
    reply = await bot.tap(13, "T:p")  # one level, one content type: the first card at once
    assert "Next card" in texts(FakeBotApi.buttons(reply))[0]
    assert progress_line(reply) == f"Provocation · 1/{PER_DECK}"
    reply = await bot.tap(13, "M")
    assert data(FakeBotApi.buttons(reply))[0] == "T:a"


async def test_language_switch_keeps_progress(bot: Harness) -> None:
    """Two cards in English, switch to Czech, the third card says 3/5 in Czech."""
    await bot.say(14, "/start")
    await bot.tap(14, "T:c")
    await bot.tap(14, "V:c:1")
    await bot.tap(14, "N:c:1:q")
    reply = await bot.say(14, "/language")
    assert len(FakeBotApi.buttons(reply)) == 4
    reply = await bot.tap(14, "L:cs")
    assert "česky" in reply.params["text"]
    assert "2/5" in reply.params["text"]
    reply = await bot.tap(14, "N:c:1:q")
    assert progress_line(reply) == "Pro páry · Úroveň 1 · 3/5"
    assert "Otázka couples 1 questions" in reply.params["caption"]
    session = await bot.storage.get_session(14)
    assert session is not None
    assert len(set(session.drawn["couples:1:questions"])) == 3


async def test_language_menu_back_returns_to_the_current_menu(bot: Harness) -> None:
    """/language and the 🌐 button offer "Back", which shows the menu the player was at,
    without changing the game."""
    await bot.say(18, "/start")
    reply = await bot.tap(18, "G")
    assert reply.method == "editMessageText"
    assert FakeBotApi.buttons(reply)[-1] == ("⬅️ Back", "K")
    reply = await bot.tap(18, "K")
    assert reply.params["text"] == t("en", "choose_theme")
    assert data(FakeBotApi.buttons(reply))[:4] == ["T:a", "T:c", "T:p", "T:s"]
    await bot.tap(18, "T:a")
    await bot.tap(18, "V:a:2")
    before = await bot.storage.get_session(18)
    reply = await bot.say(18, "/language", language="ru")
    assert FakeBotApi.buttons(reply)[-1] == ("⬅️ Back", "K")
    reply = await bot.tap(18, "K")
    assert "1/5" in reply.params["text"]
    assert data(FakeBotApi.buttons(reply))[0] == "N:a:2:q"
    after = await bot.storage.get_session(18)
    assert after is not None
    assert before is not None
    assert (after.theme, after.level, after.drawn) == (before.theme, before.level, before.drawn)


async def test_stale_and_tampered_buttons_get_the_current_menu(bot: Harness) -> None:
    """Buttons from another step, forged or unknown data: a kind word and the current menu."""
    await bot.say(15, "/start")
    for forged in ("N:a:1:q", "V:a:9", "C:a:1:t", "xyz", "T:z", "L:de", "B:a:7", "N:" + "a" * 70):
        with capture_logs() as logs:
            reply = await bot.tap(15, forged)
        assert reply.params["text"].startswith(t("en", "stale")), forged
        assert data(FakeBotApi.buttons(reply))[0] == "T:a"
        assert {e["event"] for e in logs} & {"callback_rejected", "callback_stale"}
    answered = [c for c in bot.api.calls if c.method == "answerCallbackQuery"]
    assert len(answered) == 8


async def test_a_level_the_decks_lack_is_refused(bot: Harness) -> None:
    """A well-formed level button for a level the theme's deck files do not hold (the
    callback grammar allows any digit; the library says which levels exist) is stale."""
    await bot.say(19, "/start")
    await bot.tap(19, "T:a")
    reply = await bot.tap(19, "V:a:4")
    assert reply.params["text"].startswith(t("en", "stale"))
    assert data(FakeBotApi.buttons(reply))[0] == "V:a:1"


async def test_unexpected_messages_are_answered_gently(bot: Harness) -> None:
    """Stickers, photos, long text, plain text and unknown commands: a kind answer + menu;
    an unknown command gets its own text pointing to /help."""
    await bot.say(16, "/start")
    sticker = {"sticker": {"file_id": "s1", "file_unique_id": "s1", "width": 512,
                           "height": 512, "is_animated": False, "is_video": False,
                           "type": "regular"}}  # fmt: skip
    photo = {"photo": [{"file_id": "p1", "file_unique_id": "p1", "width": 10, "height": 10}]}
    cases = [
        (None, sticker, "unexpected_media"),
        (None, photo, "unexpected_media"),
        ("x" * 3000, None, "too_long"),
        ("hello there", None, "unknown_input"),
        ("/dance", None, "unknown_command"),
        ("/dance@vechnost_test_bot now", None, "unknown_command"),
    ]
    for text, extra, key in cases:
        reply = await bot.say(16, text, extra=extra)
        assert reply.params["text"].startswith(t("en", key))
        assert data(FakeBotApi.buttons(reply))[0] == "T:a"
    before = len(bot.api.replies(16))
    await bot.idle(await bot.api.send_message(16, "/dance@some_other_bot"))
    assert len(bot.api.replies(16)) == before  # another bot's command is not ours to answer


async def test_help_and_reset(bot: Harness) -> None:
    """/help explains with the current menu; /reset forgets the game but keeps the language."""
    await bot.say(17, "/start", language="cs")
    await bot.tap(17, "T:a")
    await bot.tap(17, "V:a:1")
    reply = await bot.say(17, "/help")
    assert "Jak hrát" in reply.params["text"]
    assert "Další karta" in texts(FakeBotApi.buttons(reply))[0]
    reply = await bot.say(17, "/reset")  # asks first
    assert reply.params["text"] == t("cs", "reset_confirm")
    assert data(FakeBotApi.buttons(reply)) == ["X:d", "X:a", "K"]
    session = await bot.storage.get_session(17)
    assert session is not None
    assert len(session.drawn["acquaintance:1:questions"]) == 1
    reply = await bot.tap(17, "X:a")
    assert reply.params["text"].startswith(t("cs", "reset_done"))
    session = await bot.storage.get_session(17)
    assert session is not None
    assert (session.theme, session.drawn) == (None, {})
    player = await bot.storage.get_record(Player, "17")
    assert player is not None
    assert player.language == "cs"
    reply = await bot.tap(17, "H")
    assert "Jak hrát" in reply.params["text"]
    reply = await bot.tap(17, "G")
    assert len(FakeBotApi.buttons(reply)) == 4


async def test_rate_limit_one_notice_then_silence(library: Library) -> None:
    """A flooding user gets one "slow down" and is then ignored; another player is not."""
    async with running_bot(
        InMemoryStorage(), library, rate_limit_updates=3, rate_limit_window=30
    ) as bot:
        last = 0
        for _ in range(8):
            last = await bot.api.send_message(20, "/help")
        other = await bot.say(21, "/start")
        await bot.idle(last)
        replies = bot.api.replies(20)
        slow = [c for c in replies if c.params["text"] == t("en", "slow_down")]
        assert len(slow) == 1
        assert len(replies) == 4
        assert other.params["text"].startswith("Hi")
        pressed = await bot.api.press(20, "M")  # a button while limited: silence as well
        await bot.idle(pressed)
        assert len(bot.api.replies(20)) == 4


async def test_rate_limit_burst_gets_one_notice_in_redis_mode(
    library: Library, redis_storage: HybridStorage
) -> None:
    """30 updates at once from one user (handled concurrently, state in Redis): exactly one
    "slow down"; a limited user's button presses are still answered; others are unaffected."""
    async with running_bot(
        redis_storage, library, rate_limit_updates=3, rate_limit_window=30
    ) as bot:
        await bot.say(22, "/start")
        ids = [await bot.api.send_message(22, "/help") for _ in range(30)]
        other = await bot.say(23, "/start")
        await bot.idle(ids[-1])
        replies = bot.api.replies(22)
        slow = [c for c in replies if c.params.get("text") == t("en", "slow_down")]
        assert len(slow) == 1
        assert len(replies) == 1 + 2 + 1  # /start, two more allowed /help, one notice
        assert other.params["text"].startswith("Hi")
        since = len(bot.api.calls)
        pressed = await bot.api.press(22, "M", query_id="limited-press")
        answer = await bot.api.wait_for(
            lambda c: c.method == "answerCallbackQuery", since=since, timeout=5
        )
        assert answer.params["callback_query_id"] == "limited-press"
        assert not answer.params.get("text")
        await bot.idle(pressed)
        assert len(bot.api.replies(22)) == len(replies)


async def test_card_photos_are_uploaded_once(library: Library) -> None:
    """The second send of a card in a language reuses the stored file id; no second render."""
    storage = InMemoryStorage()
    async with running_bot(storage, library) as bot:
        for chat in (30, 31):
            await bot.say(chat, "/start")
            await bot.tap(chat, "T:p")
            for _ in range(PER_DECK):
                await bot.tap(chat, "N:p:1:q")
        await asyncio.sleep(0.2)  # the last send is counted after the API answered
        assert bot.api.uploads == PER_DECK
        assert bot.game.cards.stats.rendered == PER_DECK
        assert bot.game.cards.stats.reused == PER_DECK
        await bot.tap(31, "L:ru")
        await bot.tap(31, "R:p:1:q")
        assert bot.api.uploads == PER_DECK + 1


async def test_concurrent_sends_of_one_card_upload_it_once(
    library: Library, redis_storage: HybridStorage
) -> None:
    """12 chats drawing the same uncached card at once: one render, one upload, and the
    other 11 sends reuse its file id."""
    deck = library.deck("couples", 2, "questions")
    assert deck is not None
    card = deck.cards[0]
    sender = CardSender(redis_storage)
    async with FakeBotApi() as api:
        tg = Bot(DEFAULT_TOKEN, base_url=api.base_url, base_file_url=api.file_base_url)
        async with tg:
            messages = await asyncio.gather(
                *(
                    sender.send(tg, 700 + n, card, "en", caption="1/5", footer="For Couples")
                    for n in range(12)
                )
            )
    assert api.uploads == 1
    assert sender.stats.rendered == 1
    assert sender.stats.reused == 11
    assert len({m.photo[-1].file_id for m in messages}) == 1
    assert sender._flights == {}


async def test_forgotten_file_id_is_uploaded_again(library: Library) -> None:
    """A file id Telegram no longer knows is replaced by a fresh upload."""
    storage = InMemoryStorage()
    async with running_bot(storage, library) as bot:
        await bot.say(32, "/start")
        await bot.tap(32, "T:p")
        card = library.deck("provocation", 1, "questions")
        assert card is not None
        for entry in card.cards:
            key = bot.game.cards.file_id_key(bot.application.bot.id, entry, "en")
            await storage.cache_set(key, b"AgACforgotten", 60)
        with capture_logs() as logs:
            reply = await bot.tap(32, "N:p:1:q")
        assert reply.params["photo"] == "attach://photo"
        assert "card_file_id_rejected" in {e["event"] for e in logs}


class _FlakyStorage(InMemoryStorage):
    fail_next = False

    async def get_record(self, model, key):  # type: ignore[no-untyped-def]
        if self.fail_next and model is Session:
            self.fail_next = False
            raise RuntimeError("disk on fire")
        return await super().get_record(model, key)


async def test_errors_are_caught_and_answered(library: Library) -> None:
    """An exception in a handler is logged and answered kindly; the bot goes on."""
    storage = _FlakyStorage()
    async with running_bot(storage, library) as bot:
        await bot.say(40, "/start")
        storage.fail_next = True
        with capture_logs() as logs:
            reply = await bot.say(40, "/help")
        assert reply.params["text"].startswith(t("en", "error"))
        assert "handler_failed" in {e["event"] for e in logs}
        reply = await bot.say(40, "/help")
        assert reply.params["text"].startswith("How to play")


async def test_state_survives_a_bot_restart(library: Library) -> None:
    """All per-chat state lives in storage: a new bot on the same storage continues the game."""
    storage = InMemoryStorage()
    api = FakeBotApi()
    async with api:
        async with running_bot(storage, library, api=api) as bot:
            await bot.say(50, "/start")
            await bot.tap(50, "T:a")
            await bot.tap(50, "V:a:3")
        async with running_bot(storage, library, api=api) as bot:
            reply = await bot.tap(50, "N:a:3:q")
            assert progress_line(reply).endswith("2/5")


async def test_a_card_that_failed_to_send_comes_next(bot: Harness) -> None:
    """sendPhoto fails once: the card does not count as drawn, the next tap sends that very
    card, and the deck still gives every card exactly once."""
    await bot.say(61, "/start")
    await bot.tap(61, "T:p")
    bot.api.failing_photos = 1
    with capture_logs() as logs:
        reply = await bot.tap(61, "N:p:1:q")
        await asyncio.sleep(0.1)
    assert reply.params["text"].startswith(t("en", "error"))
    failed = [e for e in logs if e["event"] == "card_send_failed"]
    assert len(failed) == 1
    session = await bot.storage.get_session(61)
    assert session is not None
    assert len(session.drawn["provocation:1:questions"]) == 1
    reply = await bot.tap(61, "N:p:1:q")
    assert progress_line(reply).endswith(f"2/{PER_DECK}")
    session = await bot.storage.get_session(61)
    assert session is not None
    assert session.drawn["provocation:1:questions"][-1] == failed[0]["card"]
    for _ in range(PER_DECK - 2):
        await bot.tap(61, "N:p:1:q")
    session = await bot.storage.get_session(61)
    assert session is not None
    drawn = session.drawn["provocation:1:questions"]
    assert len(drawn) == len(set(drawn)) == PER_DECK
    photos = [c for c in bot.api.replies(61) if c.method == "sendPhoto"]
    assert len(photos) == PER_DECK


async def test_set_commands_in_every_language(bot: Harness) -> None:
    """setMyCommands registers the commands in ru, en, cs, the default, and for uk, be, kk
    and sk clients in the language the bot speaks to them; the descriptions are set in ru,
    en, cs and as the default."""
    await set_commands(bot.application)
    tg = bot.application.bot
    menus = (("ru", "Главное меню"), ("cs", "Hlavní nabídka"), (None, "Main menu"),
             ("uk", "Main menu"), ("be", "Главное меню"), ("kk", "Главное меню"),
             ("sk", "Hlavní nabídka"))  # fmt: skip
    for language, word in menus:
        commands = await tg.get_my_commands(language_code=language)
        assert [c.command for c in commands][:3] == ["start", "help", "favourites"]
        assert "reset" in [c.command for c in commands]
        assert commands[0].description == word
    described = {
        (c.method, c.params.get("language_code")): c.params
        for c in bot.api.calls
        if c.method in {"setMyDescription", "setMyShortDescription"}
    }
    for code in ("ru", "en", "cs", None):
        language = code or "en"
        assert described[("setMyDescription", code)]["description"] == t(language, "description")
        short = described[("setMyShortDescription", code)]["short_description"]
        assert short == t(language, "short_description")
        assert len(short) <= 120


async def test_too_old_button_press_still_gets_its_card(bot: Harness) -> None:
    """A press Telegram no longer lets us answer (bot was down) still draws the card."""
    await bot.say(60, "/start")
    await bot.tap(60, "T:p")
    bot.api.expired_queries.add("old-press")
    with capture_logs() as logs:
        reply = await bot.tap(60, "N:p:1:q", query_id="old-press")
    assert reply.method == "sendPhoto"
    await asyncio.sleep(0.1)
    events = {e["event"] for e in logs}
    assert "callback_answer_failed" in events
    assert "handler_failed" not in events


async def test_a_replica_reads_what_another_replica_wrote(
    library: Library, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    """Webhook replicas (``sole_writer`` off) on one Redis: a card another replica dealt
    is counted in the next card's progress and never dealt again, although this
    process's own view of the session is older."""
    server = redis_factory(password="bot-pass")
    endpoint = RedisEndpoint("127.0.0.1", server.port, password=server.password)
    ours, other = (HybridStorage(local_dir=tmp_path / name) for name in ("ours", "other"))
    for storage in (ours, other):
        await storage.start(endpoint)
    deck = "provocation:1:questions"
    try:
        async with running_bot(ours, library) as bot:
            bot.game.sole_writer = False
            await bot.say(90, "/start")
            await bot.tap(90, "T:p")  # deals 1
            await bot.tap(90, "N:p:1:q")  # 2
            session = await other.get_session(90)
            assert session is not None
            elsewhere = next(
                card.id
                for card in library.deck("provocation", 1, "questions").cards  # type: ignore[union-attr]
                if card.id not in session.drawn[deck]
            )
            await other.update_session(90, lambda s: engine.mark_drawn(s, deck, elsewhere))
            reply = await bot.tap(90, "N:p:1:q")
            assert progress_line(reply).endswith(f"4/{PER_DECK}")
            session = await other.get_session(90)
            assert session is not None
            drawn = session.drawn[deck]
            assert len(drawn) == len(set(drawn)) == 4
            assert drawn[2] == elsewhere
    finally:
        for storage in (ours, other):
            await storage.stop()
