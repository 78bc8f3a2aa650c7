"""The game for two, scripted through the local Bot API stand-in: players in turns, a group
with two client languages, a room across two private chats, swap, favourites, pacing,
opening and closing cards, a tidy chat, /reset, the language question."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RedisFactory
from tests.support.bot_harness import Harness, running_bot
from tests.support.decks import write_decks
from tests.support.fake_bot_api import ApiCall, FakeBotApi
from vechnost_bot.bot.texts import CHOOSE_LANGUAGE_ANY, t
from vechnost_bot.game.content import Library, load_library
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage.game_records import Player, Table
from vechnost_bot.storage.hybrid import HybridStorage
from vechnost_bot.storage.memory import InMemoryStorage

PER_DECK = 6
GROUP = -4242
ANNA, TOM = 501, 502


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """Fixture decks with six cards each, without opening or closing cards."""
    return load_library(write_decks(tmp_path_factory.mktemp("decks"), per_deck=PER_DECK))


@pytest.fixture(scope="module")
def ritual_library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """Fixture decks with two opening cards and a closing card per theme, and a wildcard
    and a guess card after the six cards of each deck."""
    return load_library(
        write_decks(tmp_path_factory.mktemp("rituals"), per_deck=PER_DECK, extras=True)
    )


@pytest.fixture
async def bot(library: Library) -> AsyncIterator[Harness]:
    """The bot on an in-memory storage, polling a fresh fake Bot API."""
    async with running_bot(InMemoryStorage(), library) as harness:
        harness.api.first_names.update({ANNA: "Anna", TOM: "Tom"})
        yield harness


def data(call: ApiCall) -> list[str]:
    return [value for _text, value in FakeBotApi.buttons(call)]


def caption(call: ApiCall) -> str:
    return str(call.params.get("caption", ""))


async def toast(bot: Harness, since: int) -> str:
    """The text of the first answered button press from call ``since``."""
    call = await bot.api.wait_for(lambda c: c.method == "answerCallbackQuery", since=since)
    return str(call.params.get("text") or "")


async def photo_in(bot: Harness, chat_id: int, since: int) -> ApiCall:
    return await bot.api.wait_for(
        lambda c: c.method == "sendPhoto" and c.chat_id == chat_id, since=since
    )


async def group_say(bot: Harness, user_id: int, text: str, language: str) -> ApiCall:
    since = len(bot.api.calls)
    await bot.api.send_group_message(GROUP, text, user_id=user_id, language=language)
    return await bot.reply(GROUP, since)


async def test_names_then_turns_alternate_and_both_answer(bot: Harness) -> None:
    """One phone: the bot asks once for two names; "Anna and Tom" sets them; each card says
    who asks and who answers, alternating; the both-answer rule says who goes first."""
    reply = await bot.say(70, "/start")
    assert t("en", "ask_names") in reply.params["text"]
    reply = await bot.say(70, "/start")
    assert t("en", "ask_names") not in reply.params["text"]  # asked once
    reply = await bot.say(70, "Anna and Tom")
    assert reply.params["text"].startswith(t("en", "names_set", first="Anna", second="Tom"))
    reply = await bot.tap(70, "T:c")
    reply = await bot.tap(70, "V:c:1")
    assert caption(reply).split("\n")[1] == "Anna asks → Tom answers"
    reply = await bot.tap(70, "N:c:1:q")
    assert caption(reply).split("\n")[1] == "Tom asks → Anna answers"
    await bot.tap(70, "M")
    since = len(bot.api.calls)
    reply = await bot.tap(70, "Y")
    assert await toast(bot, since) == t("en", "both_on")
    assert ("👥 Both answer: on", "Y") in FakeBotApi.buttons(reply)
    await bot.tap(70, "T:c")
    reply = await bot.tap(70, "V:c:1")
    assert caption(reply).split("\n")[1] == "Anna answers first, then Tom"
    reply = await bot.tap(70, "N:c:1:q")
    assert caption(reply).split("\n")[1] == "Tom answers first, then Anna"


async def test_the_caption_carries_the_cards_text(bot: Harness) -> None:
    """The card's text is in the caption too (screen readers, notifications, search)."""
    await bot.say(71, "/start", language="ru")
    reply = await bot.tap(71, "T:p")
    assert reply.method == "sendPhoto"
    session = await bot.storage.get_session(71)
    assert session is not None
    card = bot.game.library.card(session.last_card or "")
    assert card is not None
    assert card.text("ru") in caption(reply)


async def test_two_players_in_a_group_with_different_languages(bot: Harness) -> None:
    """A group: Anna's client is Czech, Tom's English. The first two members who tap are
    the players; each card is in the language of the one who reads it aloud, with the
    other's text in the caption; only the next asker may draw; each confirms 18+."""
    reply = await group_say(bot, ANNA, "/start", "cs")
    assert reply.params["text"].startswith("Ahoj! Vítejte")
    assert t("cs", "ask_names") not in reply.params["text"]  # names come from the members
    await bot.tap(GROUP, "T:a", user_id=ANNA, language="cs")
    reply = await bot.tap(GROUP, "V:a:1", user_id=ANNA, language="cs")
    assert caption(reply).split("\n")[1] == "Ptá se Anna"  # Tom has not taken part yet
    reply = await bot.tap(GROUP, "N:a:1:q", user_id=TOM, language="en")
    lines = caption(reply).split("\n")
    assert lines[0].startswith("Acquaintance · Level 1 · 2/")
    assert lines[1] == "Tom asks → Anna answers"
    assert "Question acquaintance" in caption(reply)
    assert "Otázka acquaintance" in caption(reply)  # Anna reads along in Czech
    since = len(bot.api.calls)
    await bot.api.press(GROUP, "N:a:1:q", user_id=TOM, language="en")
    assert await toast(bot, since) == t("en", "not_your_turn", name="Anna")
    since = len(bot.api.calls)
    await bot.api.press(GROUP, "N:a:1:q", user_id=503, language="en")  # a third member
    assert await toast(bot, since) == t("en", "not_your_turn", name="Anna")
    reply = await bot.tap(GROUP, "N:a:1:q", user_id=ANNA, language="cs")
    assert caption(reply).split("\n")[:2] == [
        "Seznámení · Úroveň 1 · 3/6",
        "Ptá se Anna → odpovídá Tom",
    ]
    # 18+: each member confirms for themselves.
    await bot.tap(GROUP, "M", user_id=ANNA, language="cs")
    reply = await bot.tap(GROUP, "T:s", user_id=ANNA, language="cs")
    assert reply.params["text"] == t("cs", "adult_prompt_each")
    reply = await bot.tap(GROUP, "A:y", user_id=ANNA, language="cs")
    assert reply.params["text"] == t("cs", "adult_waiting")
    reply = await bot.tap(GROUP, "A:y", user_id=TOM, language="en")
    assert data(reply)[:2] == ["C:s:1:q", "C:s:1:t"]
    assert reply.params["text"].startswith("🔞 Sex")  # in Tom's language, who tapped
    anna = await bot.storage.get_record(Player, str(ANNA))
    tom = await bot.storage.get_record(Player, str(TOM))
    assert anna is not None and tom is not None  # noqa: PT018
    assert (anna.language, tom.language) == ("cs", "en")
    assert anna.adult_confirmed and tom.adult_confirmed  # noqa: PT018


async def test_a_room_across_two_private_chats(bot: Harness) -> None:
    """Anna (Russian) makes a room, Tom (English) opens the invite: one deck, one turn;
    each sees the card in their own language; only the one whose turn it is can draw;
    each confirms 18+ on their own phone; leaving keeps the room's game."""
    reply = await bot.say(ANNA, "/room", language="ru")
    link = re.search(r"https://t\.me/\S+\?start=(room_\d+)", reply.params["text"])
    assert link is not None
    assert "Q" in data(reply)  # the room's menu offers to leave
    since = len(bot.api.calls)
    reply = await bot.say(TOM, f"/start {link.group(1)}", language="en")
    assert reply.params["text"].startswith(t("en", "room_joined", name="Anna"))
    note = await bot.api.wait_for(lambda c: c.chat_id == ANNA and c.method == "sendMessage",
                                  since=since)  # fmt: skip
    assert note.params["text"] == t("ru", "room_partner_joined", name="Tom")
    since = len(bot.api.calls)
    await bot.api.press(ANNA, "T:c", user_id=ANNA, language="ru")
    await bot.reply(ANNA, since)
    since = len(bot.api.calls)
    await bot.api.press(ANNA, "V:c:2", user_id=ANNA, language="ru")
    for_anna, for_tom = await photo_in(bot, ANNA, since), await photo_in(bot, TOM, since)
    assert caption(for_anna).startswith("Для пар · Уровень 2 · 1/6\nСпрашивает Anna → отвечает Tom")
    assert caption(for_tom).startswith("For Couples · Level 2 · 1/6\nAnna asks → Tom answers")
    assert "Вопрос couples 2" in caption(for_anna)
    assert "Question couples 2" in caption(for_tom)
    assert "N:c:2:q" in data(for_tom)
    assert "N:c:2:q" not in data(for_anna)  # Tom draws next
    assert t("ru", "next_drawer", name="Tom") in caption(for_anna)
    since = len(bot.api.calls)
    await bot.api.press(ANNA, "N:c:2:q", user_id=ANNA, language="ru")
    assert await toast(bot, since) == t("ru", "not_your_turn", name="Tom")
    since = len(bot.api.calls)
    await bot.api.press(ANNA, "V:c:3", user_id=ANNA, language="ru")  # a level deals a card
    assert await toast(bot, since) == t("ru", "not_your_turn", name="Tom")
    room_session = await bot.storage.get_session(-(10**15) - int(link.group(1)[5:]))
    assert room_session is not None
    assert room_session.level == 2
    since = len(bot.api.calls)
    await bot.api.press(TOM, "N:c:2:q", user_id=TOM, language="en")
    for_anna, for_tom = await photo_in(bot, ANNA, since), await photo_in(bot, TOM, since)
    assert "· 2/6\nTom asks → Anna answers" in caption(for_tom)
    assert "N:c:2:q" in data(for_anna)
    # 18+: Anna confirms for herself; Tom is asked on his own phone.
    await bot.tap(ANNA, "M", user_id=ANNA, language="ru")
    since = len(bot.api.calls)
    await bot.api.press(ANNA, "T:s", user_id=ANNA, language="ru")
    assert (await bot.reply(ANNA, since)).params["text"] == t("ru", "adult_prompt_each")
    since = len(bot.api.calls)
    await bot.api.press(ANNA, "A:y", user_id=ANNA, language="ru")
    prompt = await bot.api.wait_for(lambda c: c.chat_id == TOM and c.method == "sendMessage",
                                    since=since)  # fmt: skip
    assert prompt.params["text"] == t("en", "adult_prompt_each")
    since = len(bot.api.calls)
    await bot.api.press(TOM, "A:y", user_id=TOM, language="en", message=prompt.result)
    reply = await bot.reply(TOM, since)
    assert data(reply)[:2] == ["C:s:1:q", "C:s:1:t"]
    menu = await bot.api.wait_for(lambda c: c.chat_id == ANNA and c.method == "sendMessage",
                                  since=since)  # fmt: skip
    assert data(menu)[:2] == ["C:s:1:q", "C:s:1:t"]  # both confirmed: Anna sees it too
    # Leaving: Tom's chat goes back to his own game, the room keeps its decks for Anna.
    since = len(bot.api.calls)
    reply = await bot.say(TOM, "/leave", language="en")
    assert reply.params["text"].startswith(t("en", "room_left"))
    left = t("ru", "room_partner_left", name="Tom")
    await bot.api.wait_for(lambda c: c.chat_id == ANNA and c.params.get("text") == left,
                           since=since)  # fmt: skip
    room_id = int(link.group(1).removeprefix("room_"))
    table = await bot.storage.get_record(Table, str(-(10**15) - room_id))
    assert table is not None
    assert [s.name for s in table.seats()] == ["Anna"]
    reply = await bot.say(TOM, "/leave", language="en")
    assert reply.params["text"].startswith(t("en", "not_in_room"))
    reply = await bot.say(TOM, f"/start {link.group(1)}", language="en")
    assert reply.params["text"].startswith(t("en", "room_back"))
    reply = await bot.say(503, f"/start {link.group(1)}", language="en")
    assert reply.params["text"].startswith(t("en", "room_full"))
    reply = await bot.say(503, "/start room_12345", language="en")
    assert reply.params["text"].startswith(t("en", "room_unknown"))


async def test_swap_puts_the_card_back_and_deals_another(bot: Harness) -> None:
    """Swap: the card goes back into the deck (not used up), its photo goes, another card
    comes with the same count; the turn does not move."""
    await bot.say(72, "/start")
    await bot.say(72, "Anna and Tom")
    first = await bot.tap(72, "T:p")
    session = await bot.storage.get_session(72)
    assert session is not None
    swapped_id = session.last_card
    assert swapped_id is not None
    since = len(bot.api.calls)
    reply = await bot.tap(72, f"W:{swapped_id}")
    assert await toast(bot, since) == t("en", "swapped")
    assert reply.method == "sendPhoto"
    assert caption(reply).split("\n")[:2] == [
        f"Provocation · 1/{PER_DECK}",
        "Anna asks → Tom answers",
    ]
    deleted = [c for c in bot.api.calls[since:] if c.method == "deleteMessage"]
    assert [int(c.params["message_id"]) for c in deleted] == [first.result["message_id"]]
    session = await bot.storage.get_session(72)
    assert session is not None
    assert swapped_id not in session.drawn["provocation:1:questions"]
    assert session.last_card != swapped_id
    reply = await bot.tap(72, f"W:{swapped_id}")  # the old button: no longer on the table
    assert reply.params["text"].startswith(t("en", "stale"))


async def test_favourites_survive_a_restart(
    library: Library, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    """♥ Save on a card, the bot restarts on the same real storage (Redis), /favourites
    plays the saved card; ♥ again removes it."""
    server = redis_factory(password="fav-pass")
    endpoint = RedisEndpoint("127.0.0.1", server.port, password=server.password)
    api = FakeBotApi()
    async with api:
        storage = HybridStorage(local_dir=tmp_path / "local")
        await storage.start(endpoint)
        async with running_bot(storage, library, api=api) as bot:
            await bot.say(73, "/start")
            reply = await bot.tap(73, "T:p")
            card_id = next(v.removeprefix("S:") for v in data(reply) if v.startswith("S:"))
            since = len(api.calls)
            await api.press(73, f"S:{card_id}")
            assert await toast(bot, since) == t("en", "saved")
        await storage.close()
        storage = HybridStorage(local_dir=tmp_path / "local")  # the same machine, restarted
        await storage.start(endpoint)
        try:
            async with running_bot(storage, library, api=api) as bot:
                reply = await bot.say(73, "/favourites")
                assert reply.method == "sendPhoto"
                card = library.card(card_id)
                assert card is not None
                assert caption(reply) == f"♥ Favourite 1/1\n\n{card.text('en')}"
                since = len(api.calls)
                await api.press(73, f"S:{card_id}")
                assert await toast(bot, since) == t("en", "unsaved")
                reply = await bot.say(73, "/favourites")
                assert reply.params["text"].startswith(t("en", "favourites_empty"))
        finally:
            await storage.close()


async def test_pacing_prompt_after_n_cards_and_the_next_level_at_the_end(
    library: Library,
) -> None:
    """After N cards at a level the card offers to go a level deeper; the last card of a
    deck offers the next level too."""
    async with running_bot(InMemoryStorage(), library, pace_cards=3) as bot:
        await bot.say(74, "/start")
        await bot.tap(74, "T:c")
        replies = [await bot.tap(74, "V:c:1")]
        for _ in range(PER_DECK - 1):
            replies.append(await bot.tap(74, "N:c:1:q"))
        offers = [
            ("V:c:2" in data(r), t("en", "pace_offer", count=3) in caption(r)) for r in replies
        ]
        assert offers == [(False, False), (False, False), (True, True), (False, False),
                          (False, False), (True, False)]  # fmt: skip
        reply = await bot.tap(74, "V:c:2")  # deeper: a card of level 2, counted afresh
        assert caption(reply).startswith("For Couples · Level 2 · 1/")


async def test_opening_first_then_closing_and_a_summary(ritual_library: Library) -> None:
    """A new game of a theme starts with its opening cards (not counted in the deck, no
    turn); 🏁 deals the closing card and a short summary; the next game opens again."""
    async with running_bot(InMemoryStorage(), ritual_library) as bot:
        await bot.say(75, "/start")
        await bot.tap(75, "T:a")
        reply = await bot.tap(75, "V:a:1")
        assert caption(reply) == (
            "Acquaintance · Level 1 · how we play\n\nQuestion acquaintance opening 1"
        )
        assert "S:acq0o01" not in data(reply)  # the rules are not a card to save or swap
        reply = await bot.tap(75, "N:a:1:q")
        assert caption(reply).endswith("Question acquaintance opening 2")
        reply = await bot.tap(75, "N:a:1:q")
        assert caption(reply).startswith(f"Acquaintance · Level 1 · 1/{PER_DECK + 2}")
        card_id = next(v.removeprefix("S:") for v in data(reply) if v.startswith("S:"))
        await bot.tap(75, "N:a:1:q")
        await bot.api.press(75, f"S:{card_id}")
        since = len(bot.api.calls)
        await bot.api.press(75, "E")
        closing = await photo_in(bot, 75, since)
        assert caption(closing) == (
            "Acquaintance · Level 1 · the last card\n\nQuestion acquaintance closing"
        )
        assert not data(closing)
        summary = await bot.api.wait_for(
            lambda c: c.method == "sendMessage" and c.chat_id == 75, since=since
        )
        assert summary.params["text"] == t("en", "summary", cards=2, minutes="<1", saved=1, total=2)
        assert data(summary)[0] == "T:a"
        await bot.tap(75, "T:a")
        reply = await bot.tap(75, "V:a:2")
        assert "how we play" in caption(reply)


async def test_old_card_keyboards_are_removed(bot: Harness) -> None:
    """Only the newest card keeps its buttons: the previous card's keyboard is removed, and
    so is the menu's the first card was dealt from."""
    menu = await bot.say(76, "/start")
    first = await bot.tap(76, "T:p")
    second = await bot.tap(76, "N:p:1:q")
    await bot.tap(76, "N:p:1:q")
    await bot.api.wait_for(
        lambda c: (
            c.method == "editMessageReplyMarkup"
            and c.params.get("message_id")
            in (second.result["message_id"], str(second.result["message_id"]))
        )
    )
    removed = [
        int(c.params["message_id"])
        for c in bot.api.calls
        if c.method == "editMessageReplyMarkup" and c.chat_id == 76
    ]
    ids = [menu.result["message_id"], first.result["message_id"], second.result["message_id"]]
    assert removed == ids
    assert bot.api.last_keyboard_message(76) is not None
    assert bot.api.last_keyboard_message(76)["message_id"] > second.result["message_id"]  # type: ignore[index]


async def test_previous_card_and_reset_of_one_deck(bot: Harness) -> None:
    """⏮ shows the card before; /reset asks, and "this deck" puts every card back."""
    await bot.say(77, "/start")
    first = await bot.tap(77, "T:p")
    await bot.tap(77, "N:p:1:q")
    reply = await bot.tap(77, "P:1")
    assert reply.method == "sendPhoto"
    assert caption(reply).split("\n\n")[1] == caption(first).split("\n\n")[1]
    since = len(bot.api.calls)
    await bot.api.press(77, "P:2")
    assert await toast(bot, since) == t("en", "no_previous")
    reply = await bot.say(77, "/reset")
    assert data(reply) == ["X:d", "X:a", "K"]
    reply = await bot.tap(77, "X:d")
    assert reply.params["text"].startswith(t("en", "reset_deck_done"))
    assert "0/6" in reply.params["text"]
    session = await bot.storage.get_session(77)
    assert session is not None
    assert session.drawn.get("provocation:1:questions", []) == []


async def test_a_ukrainian_client_is_asked_which_language(bot: Harness) -> None:
    """A uk client gets the language question (not Russian); the choice is kept."""
    reply = await bot.say(78, "/start", language="uk")
    assert reply.params["text"] == CHOOSE_LANGUAGE_ANY
    assert data(reply) == ["L:ru", "L:en", "L:cs"]
    reply = await bot.tap(78, "L:en", language="uk")
    assert reply.params["text"].startswith("Hi, Player78!")
    player = await bot.storage.get_record(Player, "78")
    assert player is not None
    assert player.language == "en"


async def test_media_gets_a_neutral_answer(bot: Harness) -> None:
    """A photo is answered neutrally, never with "That's lovely"."""
    await bot.say(79, "/start")
    photo = {"photo": [{"file_id": "p1", "file_unique_id": "p1", "width": 10, "height": 10}]}
    reply = await bot.say(79, None, extra=photo)
    assert reply.params["text"].startswith(t("en", "unexpected_media"))
    assert "lovely" not in reply.params["text"]


async def test_room_links_and_where_rooms_do_not_go(bot: Harness) -> None:
    """/room in a group says rooms are for private chats; /room inside a room shows its
    link again; opening your own link says to send it; an invite opened in a group is
    refused."""
    reply = await group_say(bot, ANNA, "/room", "en")
    assert reply.params["text"].startswith(t("en", "room_private_only"))
    reply = await bot.say(ANNA, "/room", language="en")
    link = re.search(r"\?start=(room_\d+)", reply.params["text"])
    assert link is not None
    again = await bot.say(ANNA, "/room", language="en")
    assert link.group(1) in again.params["text"]
    reply = await bot.say(ANNA, f"/start {link.group(1)}", language="en")
    assert reply.params["text"].startswith(t("en", "room_own"))
    reply = await group_say(bot, TOM, f"/start {link.group(1)}", "en")
    assert reply.params["text"].startswith(t("en", "room_private_only"))
    reply = await bot.say(TOM, "/start room_x1", language="en")
    assert reply.params["text"].startswith(t("en", "room_unknown"))
