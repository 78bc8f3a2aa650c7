"""Whole games played by hand, as players meet them, in Russian, English and Czech.

The real bot (handlers, keyboards, texts, the shipped decks, the card renderer) plays
against the fake Bot API: a couple on one phone, two partners in a room (two private
chats), and a group. Each game goes /start → language → names → theme → level → a dozen
cards with swap, previous and ♥ → the "go deeper" offer → the 18+ theme with consent →
the closing card → the summary → /reset → /favourites → /leave → /help. A player taps
only buttons that are on the newest message they see.

Every message and button the bot sends is kept in a transcript and checked the way a
player would read it: the chat's own language only, plural forms, button lengths, the
turn line naming the right player, each partner getting each card once, no card twice
in a game, and summary numbers that match what was played. Set
``VECHNOST_TRANSCRIPT=<file>`` to write the transcript out and read it.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support.bot_harness import Harness, running_bot
from tests.support.fake_bot_api import ApiCall, FakeBotApi
from vechnost_bot.bot.texts import CHOOSE_LANGUAGE_ANY, COMMANDS, LANGUAGE_NAMES, t
from vechnost_bot.game.content import Library, load_library
from vechnost_bot.storage.game_records import room_game_id
from vechnost_bot.storage.memory import InMemoryStorage
from vechnost_bot.storage.records import Language

PACE = 12
MAX_BUTTON = 24
"""A button alone on its row shows about this many characters on a phone."""
ROW_WIDTH = 36
"""What a row of two or three buttons shows in all (each gets its share)."""

NAMES: dict[Language, tuple[str, str]] = {
    "ru": ("Аня", "Тёма"),
    "en": ("Anna", "Tom"),
    "cs": ("Anička", "Tomáš"),
}
JOINERS: dict[Language, str] = {"ru": "и", "en": "and", "cs": "a"}
LANGUAGES: tuple[Language, ...] = ("ru", "en", "cs")

# Words that may appear in any language: the bot's name, commands, links, emoji.
_ALLOWED_LATIN = re.compile(r"/[a-z_]+|https?://\S+|Vechnost|\b[A-Za-z]\b")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_CYRILLIC = re.compile(r"[А-Яа-яЁё]")
_ENGLISH_IN_CS = re.compile(
    r"\b(the|and|card|cards|level|next|back|save|swap|room|game|you|your|turn)\b", re.I
)


# A one-letter word or a dash with an ordinary space where a line must not break.
_LOOSE: dict[Language, re.Pattern[str]] = {
    "ru": re.compile(r"(?:^|(?<=[\s«„“(]))[виаксуоя] | [—–]\s", re.I | re.M),
    "cs": re.compile(r"(?:^|(?<=[\s«„“(]))[ksvzouai] | [—–]\s", re.I | re.M),
    "en": re.compile(r" [—–]\s"),
}


@pytest.fixture(scope="module")
def library() -> Library:
    """The shipped decks."""
    return load_library()


@pytest.fixture
async def bot(library: Library) -> AsyncIterator[Harness]:
    """The bot on an in-memory storage with a clock the test moves."""
    async with running_bot(InMemoryStorage(), library, pace_cards=PACE, pacing=False) as harness:
        clock = Clock()
        harness.game.clock = clock
        yield harness


class Clock:
    """Time as the test says: a game's minutes are what the players spent."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


# -- reading what a player sees ------------------------------------------------------------
def _text(call: ApiCall) -> str:
    params = call.params
    if call.method == "answerCallbackQuery":
        return str(params.get("text") or "")
    if call.method == "editMessageMedia" and isinstance(params.get("media"), dict):
        return str(params["media"].get("caption") or "")
    return str(params.get("text") or params.get("caption") or "")


def _rows(call: ApiCall) -> list[list[str]]:
    markup = call.params.get("reply_markup")
    if not isinstance(markup, dict):
        return []
    return [[str(b.get("text", "")) for b in row] for row in markup.get("inline_keyboard", [])]


@dataclass
class Transcript:
    """Everything the bot sent, chat by chat, as the players read it."""

    lines: list[str] = field(default_factory=list)
    seen: dict[int, list[ApiCall]] = field(default_factory=dict)
    toasts: dict[int, list[str]] = field(default_factory=dict)

    def add(self, chat: int, who: str, calls: Iterable[ApiCall]) -> None:
        for call in calls:
            if call.method == "answerCallbackQuery":
                toast = _text(call)
                if toast:
                    self.toasts.setdefault(chat, []).append(toast)
                    self.lines.append(f"    [{who}] toast: {toast}")
                continue
            target = call.chat_id if call.chat_id is not None else chat
            self.seen.setdefault(target, []).append(call)
            label = {"sendPhoto": "card", "sendMessage": "message"}.get(call.method, call.method)
            body = _text(call).replace("\n", "\n      ")
            self.lines.append(f"    [chat {target}] {label}: {body}".rstrip())
            for row in _rows(call):
                self.lines.append("      " + " | ".join(f"[{b}]" for b in row))

    def write(self) -> None:
        path = os.environ.get("VECHNOST_TRANSCRIPT")
        if path:
            with open(path, "a", encoding="utf-8") as out:
                out.write("\n".join(self.lines) + "\n\n")


@dataclass
class Phone:
    """One person in one chat: what they say and tap, and what the bot shows them."""

    bot: Harness
    transcript: Transcript
    chat_id: int
    user_id: int
    name: str
    client: str  # the Telegram client's language_code
    group: bool = False

    @property
    def api(self) -> FakeBotApi:
        return self.bot.api

    async def _settle(self, update_id: int, since: int) -> list[ApiCall]:
        """Wait until the update was handled and every chat's queue is empty."""
        await self.api.wait_for(lambda c: True, since=since, timeout=20)
        processor: Any = self.bot.application.update_processor
        quiet = 0
        for _ in range(2000):
            idle = (
                self.api.consumed(update_id)
                and self.bot.application.update_queue.empty()
                and processor.lanes == 0
            )
            quiet = quiet + 1 if idle else 0
            if quiet >= 3:
                break
            await asyncio.sleep(0.01)
        return self.api.calls[since:]

    async def say(self, text: str) -> list[ApiCall]:
        self.transcript.lines.append(f"  {self.name} writes: {text}")
        since = len(self.api.calls)
        if self.group:
            update = await self.api.send_group_message(
                self.chat_id, text, user_id=self.user_id, language=self.client
            )
        else:
            update = await self.api.send_message(
                self.chat_id, text, user_id=self.user_id, language=self.client,
                first_name=self.name,
            )  # fmt: skip
        calls = await self._settle(update, since)
        self.transcript.add(self.chat_id, self.name, calls)
        return calls

    def newest(self) -> dict[str, Any]:
        """The newest message on this chat's screen that has buttons (deleted ones gone)."""
        deleted = {
            int(c.params["message_id"]) for c in self.api.calls
            if c.method == "deleteMessage" and c.chat_id == self.chat_id
        }  # fmt: skip
        on_screen = [
            message for (chat, mid), message in self.api._messages.items()
            if chat == self.chat_id and mid not in deleted and message.get("reply_markup")
        ]  # fmt: skip
        assert on_screen, f"{self.name}: no buttons left to tap"
        return max(on_screen, key=lambda message: int(message["message_id"]))

    def buttons(self) -> list[tuple[str, str]]:
        return FakeBotApi.buttons(self.newest())

    def message(self, call: ApiCall) -> dict[str, Any]:
        """The message ``call`` sent, as it is on the screen now (its buttons may be gone)."""
        return self.api._messages[(self.chat_id, int(call.result["message_id"]))]

    def has(self, prefix: str) -> bool:
        return any(data.startswith(prefix) for _label, data in self.buttons())

    async def tap(self, prefix: str, message: dict[str, Any] | None = None) -> list[ApiCall]:
        """Tap the first button whose data starts with ``prefix`` on the newest message
        with buttons (or on ``message``, an older one still on the screen)."""
        message = message or self.newest()
        found = [(label, data) for label, data in FakeBotApi.buttons(message)
                 if data.startswith(prefix)]  # fmt: skip
        assert found, f"{self.name}: no button {prefix!r} in {FakeBotApi.buttons(message)}"
        label, data = found[0]
        self.transcript.lines.append(f"  {self.name} taps [{label}]")
        since = len(self.api.calls)
        update = await self.api.press(
            self.chat_id, data, message=message, user_id=self.user_id, language=self.client
        )
        calls = await self._settle(update, since)
        self.transcript.add(self.chat_id, self.name, calls)
        return calls

    def toast(self, calls: list[ApiCall]) -> str:
        return next((_text(c) for c in calls if c.method == "answerCallbackQuery" and _text(c)),
                    "")  # fmt: skip


def photos(calls: Iterable[ApiCall], chat_id: int) -> list[ApiCall]:
    return [c for c in calls if c.method == "sendPhoto" and c.chat_id == chat_id]


def messages(calls: Iterable[ApiCall], chat_id: int) -> list[ApiCall]:
    return [c for c in calls if c.method == "sendMessage" and c.chat_id == chat_id]


def card_of(call: ApiCall) -> str | None:
    """The card id a card photo's ♥ button names."""
    return next((d[2:] for _label, d in FakeBotApi.buttons(call) if d.startswith("S:")), None)


def russian_cards(count: int) -> str:
    """How Russian counts cards: 1 карта, 2 карты, 5 карт, 21 карта, 11 карт."""
    if count % 10 == 1 and count % 100 != 11:
        return f"{count} карта"
    if count % 10 in (2, 3, 4) and count % 100 not in (12, 13, 14):
        return f"{count} карты"
    return f"{count} карт"


# -- what every message must be --------------------------------------------------------------
def check_language(text: str, language: Language, names: Iterable[str]) -> None:
    """A message in ``language`` has no words of another (a player's name aside)."""
    rest = _ALLOWED_LATIN.sub(" ", text)
    for name in names:
        rest = rest.replace(name, " ")
    for native in LANGUAGE_NAMES.values():
        rest = rest.replace(native, " ")  # the language menu names each in its own
    if language == "ru":
        assert not _LATIN_WORD.search(rest), f"Latin words in Russian: {text!r}"
    else:
        assert not _CYRILLIC.search(rest), f"Cyrillic in {language}: {text!r}"
    if language == "cs":
        assert not _ENGLISH_IN_CS.search(rest), f"English in Czech: {text!r}"


def check_buttons(call: ApiCall) -> None:
    for row in _rows(call):
        if len(row) == 1:
            assert len(row[0]) <= MAX_BUTTON, f"button too long for a phone: {row[0]!r}"
        else:
            assert sum(len(b) for b in row) <= ROW_WIDTH, f"row too long for a phone: {row}"


def check_chat(transcript: Transcript, chat_id: int, language: Language, names: Iterable[str]):
    """Every message and button in ``chat_id`` reads in ``language`` and fits a phone."""
    names = list(names)
    for call in transcript.seen.get(chat_id, []):
        text = _text(call)
        if call.method == "editMessageReplyMarkup" or text == CHOOSE_LANGUAGE_ANY:
            continue  # the language question asks in every language
        check_language(text, language, names)
        for row in _rows(call):
            for label in row:
                check_language(label, language, names)
        check_buttons(call)
        assert not re.search(r"[^\S\n]{2}", text), f"double space: {text!r}"
        assert not _LOOSE[language].search(text), f"a line may break badly: {text!r}"
    for toast in transcript.toasts.get(chat_id, []):
        check_language(toast, language, names)


# -- the games ----------------------------------------------------------------------------------
@dataclass
class Game:
    """What the players did, to compare with what the bot says."""

    cards: list[str] = field(default_factory=list)  # deck cards on the table, in order
    saved: list[str] = field(default_factory=list)
    turns: list[str] = field(default_factory=list)  # each deck card's turn line


def deck_card(game: Game, call: ApiCall, header: str, turn: str | None) -> str:
    """A dealt deck card: its caption's first line is the deck and progress, the second
    whose turn it is; never a card twice in a game."""
    card = card_of(call)
    assert card is not None, f"a deck card without ♥: {_text(call)!r}"
    assert card not in game.cards, f"{card} came twice in one game"
    lines = _text(call).split("\n")
    assert lines[0] == header, (lines[0], header)
    if turn is not None:
        assert lines[1] == turn, (lines[1], turn)
        game.turns.append(turn)
    game.cards.append(card)
    return card


def phone(bot: Harness, transcript: Transcript, number: int, name: str, client: str,
          *, chat: int | None = None) -> Phone:  # fmt: skip
    bot.api.first_names[number] = name
    return Phone(bot, transcript, chat or number, number, name, client, group=chat is not None)


async def play_one_phone(bot: Harness, library: Library, language: Language, base: int) -> None:
    """A couple on one phone: the language question, two names, turns in one chat."""
    transcript = Transcript([f"== One phone, {language}"])
    first, second = NAMES[language]
    anna = phone(bot, transcript, base, first, "uk")  # asked which language
    clock: Clock = bot.game.clock  # type: ignore[assignment]
    game = Game()
    try:
        calls = await anna.say("/start")
        assert anna.has("L:")
        calls = await anna.tap(f"L:{language}")
        welcome = _text(messages(calls, anna.chat_id)[0])
        assert welcome.startswith(t(language, "welcome", name=first).split("\n")[0])
        assert t(language, "ask_names") in welcome
        calls = await anna.say(f"{first} {JOINERS[language]} {second}")
        assert _text(messages(calls, anna.chat_id)[0]).startswith(
            t(language, "names_set", first=first, second=second)
        )
        await anna.tap("T:c")
        assert anna.has("V:c:1")
        assert anna.has("V:c:3")
        calls = await anna.tap("V:c:1")
        opening = photos(calls, anna.chat_id)
        assert len(opening) == 1
        assert card_of(opening[0]) is None  # the rules, not a card to save
        deck = library.deck("couples", 1, "questions")
        assert deck is not None
        title = f"{t(language, 'theme_couples')} · {t(language, 'level', level=1)}"
        asks = [(first, second), (second, first)]
        number = 0
        while number < PACE:
            clock.now += 60
            calls = await anna.tap("N:c:1:")
            [card] = photos(calls, anna.chat_id)
            number += 1
            who = asks[(number - 1) % 2]
            turn = t(language, "turn_ask", first=who[0], second=who[1])
            dealt = deck_card(game, card, f"{title} · {number}/{len(deck)}", turn)
            assert library.card(dealt) is not None
            assert bot.game.library.card(dealt).text(language) in _text(card).replace("\u00a0", " ")  # type: ignore[union-attr]
            if number in (2, 5):
                calls = await anna.tap("S:")
                assert anna.toast(calls) == t(language, "saved")
                game.saved.append(dealt)
            if number == 3:
                calls = await anna.tap("W:")
                [swapped] = photos(calls, anna.chat_id)
                assert anna.toast(calls) == t(language, "swapped")
                game.cards.remove(dealt)
                game.turns.pop()
                deck_card(game, swapped, f"{title} · {number}/{len(deck)}", turn)
            if number == 4:
                calls = await anna.tap("P:1")
                [earlier] = photos(calls, anna.chat_id)
                assert card_of(earlier) == game.cards[-2]
                assert _text(earlier).startswith(t(language, "previous_caption"))
                await anna.tap("P:2")  # and one further back
                calls = await anna.tap("K")  # back to the game
                assert anna.has("N:c:1:")
        assert t(language, "pace_offer", count=PACE).split(" ")[0] in _text(card)
        calls = await anna.tap("V:c:2")  # ⤵️ deeper
        [card] = photos(calls, anna.chat_id)
        title2 = f"{t(language, 'theme_couples')} · {t(language, 'level', level=2)}"
        who = asks[number % 2]
        deck_card(game, card, f"{title2} · 1/{len(library.deck('couples', 2, 'questions') or ())}",
                  t(language, "turn_ask", first=who[0], second=who[1]))  # fmt: skip
        number += 1
        # The 18+ theme: one phone confirms for everyone playing.
        await anna.tap("M")
        calls = await anna.tap("T:s")
        assert _text(calls[-1]).startswith(t(language, "adult_prompt").split("\n")[0])
        calls = await anna.tap("A:y")
        assert anna.has("V:s:1")
        assert anna.has("V:s:2")
        assert _text(calls[-1]) == t(
            language, "choose_heat", theme=f"🔞 {t(language, 'theme_sex')}"
        )
        calls = await anna.tap("V:s:1")
        assert anna.has("C:s:1:q")
        assert anna.has("C:s:1:t")
        calls = await anna.tap("C:s:1:t")
        for _ in library.opening("sex"):  # the safe word and the consent rule first
            assert card_of(photos(calls, anna.chat_id)[0]) is None
            calls = await anna.tap("N:s:1:t")
        [card] = photos(calls, anna.chat_id)
        who = asks[number % 2]
        sex_title = (
            f"{t(language, 'theme_sex')} · "
            f"{ {'en': 'Mild', 'ru': 'Нежно', 'cs': 'Jemně'}[language] } · "
            f"{t(language, 'content_tasks')}"
        )
        sex_deck = library.deck("sex", 1, "tasks")
        assert sex_deck is not None
        deck_card(game, card, f"{sex_title} · 1/{len(sex_deck)}",
                  t(language, "turn_task", first=who[0], second=who[1]))  # fmt: skip
        number += 1
        clock.now += 120
        calls = await anna.tap("E")
        edits = [int(c.params["message_id"]) for c in calls if c.method == "editMessageReplyMarkup"]
        assert sorted(edits) == sorted(set(edits)), "a keyboard removed twice"
        [closing] = photos(calls, anna.chat_id)
        assert not _rows(closing)
        [summary] = messages(calls, anna.chat_id)
        minutes = (PACE * 60 + 120) // 60
        assert _text(summary) == t(language, "summary", cards=len(game.cards), minutes=minutes,
                                   saved=len(game.saved), total=len(game.cards))  # fmt: skip
        # /reset asks first; forgetting the game forgets the names.
        calls = await anna.say("/reset")
        assert [d for _l, d in anna.buttons()] == ["X:a", "K"]
        calls = await anna.tap("X:a")
        assert _text(calls[-1]).startswith(t(language, "reset_done"))
        # Favourites, in the order saved.
        calls = await anna.say("/favourites")
        [favourite] = photos(calls, anna.chat_id)
        assert card_of(favourite) == game.saved[0]
        assert _text(favourite).startswith(
            t(language, "favourite_caption", number=1, total=len(game.saved))
        )
        # ♥ on a saved card takes it out: the button says so.
        assert (t(language, "btn_unsave"), f"S:{game.saved[0]}") in anna.buttons()
        calls = await anna.tap("F:2")
        assert card_of(photos(calls, anna.chat_id)[0]) == game.saved[1]
        calls = await anna.say("/leave")
        assert _text(calls[-1]).startswith(t(language, "not_in_room"))
        calls = await anna.say("/help")
        help_text = _text(messages(calls, anna.chat_id)[0])
        assert set(re.findall(r"^/([a-z]+)", help_text, re.M)) == set(COMMANDS)
        check_chat(transcript, anna.chat_id, language, [first, second])
    finally:
        transcript.write()


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_couple_on_one_phone(bot: Harness, library: Library, language: Language) -> None:
    await play_one_phone(bot, library, language, 9100 + LANGUAGES.index(language))


def _other(language: Language) -> Language:
    return LANGUAGES[(LANGUAGES.index(language) + 1) % len(LANGUAGES)]


async def play_a_room(bot: Harness, library: Library, language: Language, base: int) -> None:
    """Two partners apart: Anna makes a room in ``language``, Tom opens the link in his
    own; one deck, one turn; each phone gets each card once, in its reader's language."""
    transcript = Transcript([f"== A room, {language} + {_other(language)}"])
    first, second = NAMES[language][0], NAMES[_other(language)][1]
    anna = phone(bot, transcript, base, first, language)
    tom = phone(bot, transcript, base + 1, second, _other(language))
    langs = {anna.chat_id: language, tom.chat_id: _other(language)}
    game = Game()
    try:
        calls = await anna.say("/room")
        link = re.search(r"\?start=(room_\d+)", _text(messages(calls, anna.chat_id)[0]))
        assert link is not None
        calls = await tom.say(f"/start {link.group(1)}")
        assert _text(messages(calls, tom.chat_id)[0]).startswith(
            t(tom.client, "room_joined", name=first)  # type: ignore[arg-type]
        )
        assert [_text(m) for m in messages(calls, anna.chat_id)] == [
            t(language, "room_partner_joined", name=second)
        ]
        await anna.tap("T:a")
        calls = await anna.tap("V:a:1")
        for chat in (anna.chat_id, tom.chat_id):  # the rules reach both phones, once
            assert len(photos(calls, chat)) == 1
        assert t(tom.client, "next_drawer", name=first) in _text(  # type: ignore[arg-type]
            photos(calls, tom.chat_id)[0]
        )
        deck = library.deck("acquaintance", 1, "questions")
        assert deck is not None
        drawer = anna  # the opening takes no turn
        for number in range(1, PACE + 1):
            other = tom if drawer is anna else anna
            since = len(bot.api.calls)
            refused = await other.tap("N:a:1:q", message=other.newest()) if other.has(
                "N:") else []  # fmt: skip
            assert not photos(refused, other.chat_id), "the partner drew out of turn"
            assert since == len(bot.api.calls) or not other.has("N:")
            calls = await drawer.tap("N:a:1:q")
            seen = {chat: photos(calls, chat) for chat in (anna.chat_id, tom.chat_id)}
            assert [len(v) for v in seen.values()] == [1, 1], "each phone gets the card once"
            ids = {card_of(v[0]) for v in seen.values()}
            assert len(ids) == 1
            for chat, [card] in seen.items():
                lang = langs[chat]
                title = f"{t(lang, 'theme_acquaintance')} · {t(lang, 'level', level=1)}"
                asker, answerer = drawer.name, other.name
                lines = _text(card).split("\n")
                assert lines[0] == f"{title} · {number}/{len(deck)}"
                assert lines[1] == t(lang, "turn_ask", first=asker, second=answerer)
                may_draw = chat == other.chat_id
                assert any(d.startswith("N:") for _l, d in FakeBotApi.buttons(card)) == may_draw
                if not may_draw:
                    assert t(lang, "next_drawer", name=answerer) in _text(card)
            game.cards.append(ids.pop() or "")
            offers = {chat: any(d.startswith("V:") for _l, d in FakeBotApi.buttons(v[0]))
                      for chat, v in seen.items()}  # fmt: skip
            assert offers == {other.chat_id: number == PACE, drawer.chat_id: False}
            if number == 3:
                await other.tap("S:")
                game.saved.append(game.cards[-1])
            if number == 5:  # the one who drew it passes: both phones get the new card once
                assert not other.has("W:")
                old = {chat: v[0].result["message_id"] for chat, v in seen.items()}
                calls = await drawer.tap("W:")
                deleted = {(c.chat_id, int(c.params["message_id"])) for c in calls
                           if c.method == "deleteMessage"}  # fmt: skip
                assert deleted == set(old.items())
                swapped = {chat: photos(calls, chat) for chat in old}
                assert [len(v) for v in swapped.values()] == [1, 1]
                new = {card_of(v[0]) for v in swapped.values()}
                assert len(new) == 1
                assert new.isdisjoint(game.cards)
                for chat, [card] in swapped.items():
                    lang = langs[chat]
                    lines = _text(card).split("\n")
                    assert lines[0].endswith(f" · {number}/{len(deck)}")
                    assert lines[1] == t(lang, "turn_ask", first=drawer.name, second=other.name)
                game.cards[-1] = new.pop() or ""
            drawer = other
        assert len(set(game.cards)) == len(game.cards)
        # 18+: each confirms on their own phone.
        await anna.tap("M")
        calls = await anna.tap("T:s")
        assert _text(calls[-1]) == t(language, "adult_prompt_each")
        assert next(label for label, _d in anna.buttons()) == t(language, "btn_adult_me")
        calls = await anna.tap("A:y")
        waiting = anna.newest()
        [prompt] = messages(calls, tom.chat_id)
        assert _text(prompt) == t(tom.client, "adult_prompt_each")  # type: ignore[arg-type]
        calls = await tom.tap("A:y")
        assert tom.has("V:s:1")
        assert anna.has("V:s:1")
        await drawer.tap("V:s:2")
        calls = await drawer.tap("C:s:2:q")
        for chat in (anna.chat_id, tom.chat_id):
            assert len(photos(calls, chat)) == 1
        calls = await drawer.tap("N:s:2:q")  # the second opening card
        # Anna's old "waiting" message is still on her screen: its 18+ button does not
        # throw the game back to the level choice.
        await anna.tap("A:y", message=waiting)
        room_session = await bot.storage.get_session(room_game_id(int(link.group(1)[5:])))
        assert room_session is not None
        assert (room_session.theme, room_session.level, room_session.content) == (
            "sex",
            2,
            "questions",
        )
        calls = await drawer.tap("N:s:2:q")
        for chat in (anna.chat_id, tom.chat_id):
            [card] = photos(calls, chat)
            assert card_of(card) not in game.cards
        game.cards.append(card_of(card) or "")
        calls = await tom.tap("E")
        for chat, person in ((anna.chat_id, anna), (tom.chat_id, tom)):
            [summary] = messages(calls, chat)
            lang = langs[chat]
            assert _text(summary).split("\n\n")[1].split("\n")[:3] == t(
                lang, "summary", cards=len(game.cards), minutes="<1", saved=len(game.saved),
                total=0,
            ).split("\n\n")[1].split("\n")[:3], person.name  # fmt: skip
        calls = await tom.say("/leave")
        assert _text(messages(calls, tom.chat_id)[0]).startswith(
            t(tom.client, "room_left")  # type: ignore[arg-type]
        )
        assert [_text(m) for m in messages(calls, anna.chat_id)] == [
            t(language, "room_partner_left", name=second)
        ]
        calls = await anna.say("/favourites")
        assert not photos(calls, anna.chat_id)  # Tom saved it, not Anna
        calls = await tom.say("/favourites")
        assert card_of(photos(calls, tom.chat_id)[0]) == game.saved[0]
        calls = await anna.say("/leave")
        calls = await anna.say("/help")
        for chat in (anna.chat_id, tom.chat_id):
            check_chat(transcript, chat, langs[chat], [first, second])
    finally:
        transcript.write()


@pytest.mark.parametrize("language", LANGUAGES)
async def test_two_partners_in_a_room(bot: Harness, library: Library, language: Language) -> None:
    await play_a_room(bot, library, language, 9200 + 10 * LANGUAGES.index(language))


async def play_a_group(bot: Harness, library: Library, language: Language, base: int) -> None:
    """A group chat: the first two members who tap take the seats, each member reads the
    bot in their own language, a third member watches; 18+ is per member."""
    transcript = Transcript([f"== A group, {language}"])
    group = -base
    first, second = NAMES[language]
    anna = phone(bot, transcript, base, first, language, chat=group)
    tom = phone(bot, transcript, base + 1, second, language, chat=group)
    guest = phone(bot, transcript, base + 2, "Guest", language, chat=group)
    game = Game()
    try:
        calls = await anna.say("/start")
        assert t(language, "ask_names") not in _text(messages(calls, group)[0])
        await anna.tap("T:c")
        calls = await anna.tap("V:c:1")  # the opening
        deck = library.deck("couples", 1, "questions")
        assert deck is not None
        title = f"{t(language, 'theme_couples')} · {t(language, 'level', level=1)}"
        calls = await anna.tap("N:c:1:q")
        [card] = photos(calls, group)
        deck_card(game, card, f"{title} · 1/{len(deck)}", t(language, "turn_ask_one", first=first))
        calls = await tom.tap("N:c:1:q")  # Tom takes the second seat by playing
        [card] = photos(calls, group)
        deck_card(game, card, f"{title} · 2/{len(deck)}",
                  t(language, "turn_ask", first=second, second=first))  # fmt: skip
        calls = await guest.tap("N:c:1:q")
        assert guest.toast(calls) == t(language, "not_your_turn", name=first)
        assert not photos(calls, group)
        calls = await tom.tap("W:")
        assert tom.toast(calls) == t(language, "swapped")
        [card] = photos(calls, group)
        game.cards.pop()
        game.turns.pop()
        deck_card(game, card, f"{title} · 2/{len(deck)}",
                  t(language, "turn_ask", first=second, second=first))  # fmt: skip
        calls = await guest.tap("W:")  # only the one who drew it may pass it
        assert guest.toast(calls) == t(language, "swap_not_yours", name=second)
        assert not photos(calls, group)
        calls = await guest.tap("S:")  # a watcher may save a card for themselves
        assert guest.toast(calls) == t(language, "saved")
        calls = await anna.tap("N:c:1:q")
        [card] = photos(calls, group)
        deck_card(game, card, f"{title} · 3/{len(deck)}",
                  t(language, "turn_ask", first=first, second=second))  # fmt: skip
        # 18+: each seated member confirms; the guest cannot open it for them.
        await tom.tap("M")
        calls = await tom.tap("T:s")
        assert _text(calls[-1]) == t(language, "adult_prompt_each")
        calls = await tom.tap("A:y")
        assert _text(calls[-1]) == t(language, "adult_waiting")
        calls = await anna.tap("A:y")
        assert anna.has("V:s:1")
        calls = await tom.tap("E", message=tom.message(card))  # on the card still on screen
        [summary] = messages(calls, group)
        assert (
            _text(summary).split("\n\n")[1].split("\n")[0]
            == t(language, "summary", cards=3, minutes="<1", saved=1, total=0)
            .split("\n\n")[1]
            .split("\n")[0]
        )
        calls = await guest.say("/favourites")
        assert photos(calls, group)
        calls = await anna.say("/room")
        assert _text(calls[-1]).startswith(t(language, "room_private_only"))
        calls = await anna.say("/leave")
        assert _text(calls[-1]).startswith(t(language, "not_in_room"))
        calls = await anna.say("/help")
        check_chat(transcript, group, language, [first, second, "Guest"])
    finally:
        transcript.write()


@pytest.mark.parametrize("language", LANGUAGES)
async def test_a_group_chat(bot: Harness, library: Library, language: Language) -> None:
    await play_a_group(bot, library, language, 9300 + 10 * LANGUAGES.index(language))


async def play_the_corners(bot: Harness, library: Library, language: Language, base: int) -> None:
    """What players do besides playing: a whole deck to its end, a reshuffle, the both-
    answer rule, the language switch, 18+ declined, free text, a sticker, a long message,
    an unknown command, a stale button, earlier cards and back, room links that lead
    nowhere, and an old 18+ prompt tapped in the middle of another game."""
    transcript = Transcript([f"== The corners, {language}"])
    first, second = NAMES[language]
    anna = phone(bot, transcript, base, first, language)
    try:
        await anna.say("/start")
        calls = await anna.say("hello there")
        assert _text(calls[-1]).startswith(t(language, "unknown_input"))
        calls = await anna.say("x" * 1200)
        assert _text(calls[-1]).startswith(t(language, "too_long"))
        calls = await anna.say("/dance")
        assert _text(calls[-1]).startswith(t(language, "unknown_command"))
        calls = await anna.tap("Y")  # both answer
        assert anna.toast(calls) == t(language, "both_on")
        await anna.say(f"{first}, {second}")
        calls = await anna.tap("T:s")
        calls = await anna.tap("A:n")
        assert _text(calls[-1]).startswith(t(language, "adult_declined"))
        calls = await anna.tap("T:p")  # Provocation: one level, one deck, deals at once
        assert len(photos(calls, anna.chat_id)) == 1  # the rules first
        calls = await anna.tap("N:p:1:q")
        [card] = photos(calls, anna.chat_id)
        assert _text(card).split("\n")[1] == t(language, "turn_both", first=first, second=second)
        first_card = card_of(card)
        # Earlier cards, then back to the game: the previews go, the card stays live.
        calls = await anna.tap("N:p:1:q")
        [card] = photos(calls, anna.chat_id)
        preview_calls = await anna.tap("P:1")
        calls = await anna.tap("K")
        assert not messages(calls, anna.chat_id)
        gone = [int(c.params["message_id"]) for c in calls if c.method == "deleteMessage"]
        assert gone == [photos(preview_calls, anna.chat_id)[0].result["message_id"]]
        assert FakeBotApi.buttons(anna.message(card))  # the card on the table is still live
        # The whole deck, to its end: then the reshuffle.
        deck = library.deck("provocation", 1, "questions")
        assert deck is not None
        seen = {first_card, card_of(card)}
        offers = []
        for _ in range(len(deck) - 3):
            calls = await anna.tap("N:p:1:q")
            [dealt] = photos(calls, anna.chat_id)
            seen.add(card_of(dealt))
            offers.append(t(language, "pace_offer_last", count=PACE) in _text(dealt))
        # One level only: at the pace the card says how to end instead of going deeper.
        assert offers.index(True) == PACE - 3
        assert offers.count(True) == 1
        assert len(seen) == len(deck) - 1  # never a card twice
        calls = await anna.tap("N:p:1:q")
        [last] = photos(calls, anna.chat_id)
        assert card_of(last) not in seen
        assert f"{len(deck)}/{len(deck)}" in _text(last)
        assert not anna.has("W:")  # nothing left to swap it with
        calls = await anna.tap("R:p:1:q")
        assert anna.toast(calls) == t(language, "reshuffled")
        [again] = photos(calls, anna.chat_id)
        assert f"· 1/{len(deck)}" in _text(again)
        # /reset → shuffle this deck.
        calls = await anna.say("/reset")
        calls = await anna.tap("X:d")
        assert _text(calls[-1]).startswith(t(language, "reset_deck_done"))
        # Room links that lead nowhere.
        calls = await anna.say("/start room_123")
        assert _text(calls[-1]).startswith(t(language, "room_unknown"))
        sticker = {"sticker": {"file_id": "s1", "file_unique_id": "s1", "width": 1,
                               "height": 1, "is_animated": False, "is_video": False,
                               "type": "regular"}}  # fmt: skip
        since = len(bot.api.calls)
        update = await bot.api.send_message(anna.chat_id, None, extra=sticker, language=language)
        calls = await anna._settle(update, since)
        transcript.add(anna.chat_id, first, calls)
        assert _text(calls[-1]).startswith(t(language, "unexpected_media"))
        # A button from an earlier step: the /reset question, answered after the game
        # went back to the themes, has no deck to shuffle: the menu the game is at now.
        await anna.say("/reset")
        prompt = anna.newest()
        await anna.tap("M", message=anna.message(again))
        calls = await anna.tap("X:d", message=prompt)
        assert _text(calls[-1]).startswith(t(language, "stale"))
        check_chat(transcript, anna.chat_id, language, [first, second])
        # Language: switched for this person, the game goes on.
        other = _other(language)
        calls = await anna.say("/language")
        calls = await anna.tap(f"L:{other}")
        assert _text(calls[-1]).startswith(t(other, "language_set"))
        calls = await anna.say("/language")
        calls = await anna.tap(f"L:{language}")
        assert _text(calls[-1]).startswith(t(language, "language_set"))
    finally:
        transcript.write()


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_corners(bot: Harness, library: Library, language: Language) -> None:
    await play_the_corners(bot, library, language, 9400 + LANGUAGES.index(language))
