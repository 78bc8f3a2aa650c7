"""UI texts: the same keys and placeholders in every language, and the required English words."""

from __future__ import annotations

import re
import string

from vechnost_bot.bot import keyboards
from vechnost_bot.bot.texts import TEXTS, language_from_code, t
from vechnost_bot.storage.records import Session


def _fields(text: str) -> set[str]:
    return {name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name}


# Czech greets a person in the vocative ("Ahoj, Aničko!"), which cannot be formed from
# an arbitrary Telegram name: "Ahoj, Anička!" reads as a mistake. Its greetings leave the
# name out instead.
_NAME_LEFT_OUT = {("cs", "welcome"), ("cs", "welcome_back")}


def test_same_keys_and_placeholders_everywhere() -> None:
    """Every language has every key, with the same {placeholders}, and no empty text."""
    english = TEXTS["en"]
    for language, texts in TEXTS.items():
        assert set(texts) == set(english), language
        for key, text in texts.items():
            assert text.strip(), (language, key)
            expected = _fields(english[key])
            if (language, key) in _NAME_LEFT_OUT:
                expected -= {"name"}
            assert _fields(text) == expected, (language, key)


def test_czech_greetings_never_put_a_name_in_the_nominative_as_an_address() -> None:
    """No Czech text opens with "<greeting>, {name}!" (the vocative it would need)."""
    for key, text in TEXTS["cs"].items():
        assert not re.search(r"(Ahoj|Vítejte[^,!]*), \{name\}", text), key


def test_english_buttons_use_the_required_words() -> None:
    """Theme, level, content and draw buttons say exactly what the product promises."""
    themes = [b.text for row in keyboards.themes_keyboard("en").inline_keyboard for b in row]
    for word in ("Acquaintance", "For Couples", "Sex", "Provocation"):
        assert any(word in label for label in themes)
    markup = keyboards.levels_keyboard("en", "couples", (1, 2, 3))
    levels = [b.text for row in markup.inline_keyboard for b in row]
    assert levels[:3] == ["Level 1", "Level 2", "Level 3"]
    contents = [b.text for b in keyboards.contents_keyboard("en", "sex", 1, several_levels=False)
                .inline_keyboard[0]]  # fmt: skip
    assert contents == ["Questions", "Tasks"]
    deck = keyboards.deck_keyboard("en", "sex", 1, "tasks").inline_keyboard[0][0]
    assert "Next card" in deck.text


def test_deck_titles_name_the_level_only_when_there_is_a_choice() -> None:
    """Single-level themes (Provocation, Sex) leave the level out; the content type is named
    only where there is a choice."""
    assert keyboards.deck_title("en", "acquaintance", 2, "questions") == "Acquaintance · Level 2"
    assert keyboards.deck_title("cs", "sex", 1, "tasks", several_levels=False) == "Sex · Úkoly"
    assert keyboards.deck_title("cs", "sex", 2, "tasks") == "Sex · Žhavě · Úkoly"
    title = keyboards.deck_title("ru", "provocation", 1, "questions", several_levels=False)
    assert title == "Провокация"
    icon = keyboards.deck_title("en", "sex", 1, "questions", several_levels=False, icon=True)
    assert icon == "🔞 Sex · Questions"
    # Sex levels are heats, not numbers, once Sex has more than one.
    assert keyboards.deck_title("en", "sex", 2, "tasks") == "Sex · Hot · Tasks"
    heats = keyboards.levels_keyboard("ru", "sex", (1, 2)).inline_keyboard[0]
    assert [button.text for button in heats] == ["Нежно", "Горячо"]


def test_unknown_command_has_its_own_text() -> None:
    """An unknown /command points to /help, in each language's register (ru вы, cs vy)."""
    assert t("en", "unknown_command") == "I don’t know that command. Try /help."
    assert t("ru", "unknown_command") == "Такой команды я\u00a0не знаю. Загляните в\u00a0/help."
    assert t("cs", "unknown_command") == "Tenhle příkaz neznám. Zkuste /help."


def test_phrasing_and_register() -> None:
    """Reviewed wording; Czech speaks to the players as vy after greeting one as ty."""
    assert t("en", "cmd_reset") == "Start over"
    assert t("en", "reset_done") == "Done! We’re starting over; your language stays the same."
    assert "explicitní otázky a\u00a0úkoly" in t("cs", "adult_prompt")
    assert t("cs", "slow_down").endswith("počkám na vás.")
    assert "Budeme pokračovat tam, kde jsme skončili" in t("cs", "welcome_back", name="Eva")
    assert t("cs", "welcome", name="Eva").startswith("Ahoj! Vítejte")
    for key, text in TEXTS["cs"].items():  # one register: vy, never ty
        words = set(text.replace(",", " ").replace(".", " ").replace("!", " ").split())
        assert not words & {"Vítej", "miluješ", "vyber", "vytáhni", "tvůj", "tvoje"}, key


def test_language_from_telegram_code() -> None:
    """ru/be/kk → ru, cs/sk → cs, uk → ask (None), anything else (or nothing) → en."""
    assert language_from_code("ru") == "ru"
    assert language_from_code("be") == "ru"
    assert language_from_code("uk") is None
    assert language_from_code("cs-CZ") == "cs"
    assert language_from_code("sk") == "cs"
    assert language_from_code("de") == "en"
    assert language_from_code(None) == "en"
    assert t(None, "btn_back") == t("en", "btn_back")


def test_menu_for_a_fresh_game_shows_the_themes() -> None:
    """A game without a theme shows the themes, the both-answer rule, and (in a private
    chat) the room button; in a room, the leave button instead."""
    from vechnost_bot.game.content import Library

    text, markup = keyboards.menu_for(Session(chat_id=1), Library(decks={}), "en")
    assert text == t("en", "choose_theme")
    buttons = [b.callback_data for row in markup.inline_keyboard for b in row]
    assert buttons == ["T:a", "T:c", "T:p", "T:s", "Y", "I", "H", "G"]
    _text, markup = keyboards.menu_for(Session(chat_id=1), Library(decks={}), "ru", place="room")
    assert "Q" in [b.callback_data for row in markup.inline_keyboard for b in row]


def test_no_gendered_slashes_in_ui_texts() -> None:
    """No "сделал(а)" or "udělal/a" in what the bot says."""
    import re

    for language, texts in TEXTS.items():
        for key, text in texts.items():
            assert not re.search(r"\w\((а|a)\)|\w/a\b", text), (language, key)


def test_card_counts_take_the_form_the_number_needs() -> None:
    """ru 1 карта / 2 карты / 5 карт (21 карта, 11 карт); cs 1 karta / 2 karty / 5 karet;
    and the end of a deck says it so (a 51-card deck is «51 карта», not «51 карт»)."""
    from vechnost_bot.bot.texts import count_cards

    ru = [count_cards("ru", n) for n in (1, 2, 5, 11, 12, 21, 22, 25, 51, 52, 111, 112)]
    assert ru == ["1 карта", "2 карты", "5 карт", "11 карт", "12 карт", "21 карта", "22 карты",
                  "25 карт", "51 карта", "52 карты", "111 карт", "112 карт"]  # fmt: skip
    cs = [count_cards("cs", n) for n in (1, 2, 4, 5, 51)]
    assert cs == ["1 karta", "2 karty", "4 karty", "5 karet", "51 karet"]
    assert [count_cards("en", n) for n in (1, 2)] == ["1 card", "2 cards"]
    assert t("ru", "exhausted", cards=count_cards("ru", 51)).startswith(
        "Вот и\u00a0вся колода: 51 карта, все до одной!"
    )


def test_buttons_fit_a_phone() -> None:
    """A button alone on its row shows about 24 characters on a phone."""
    for language, texts in TEXTS.items():
        for key, text in texts.items():
            if key.startswith("btn_") and "{" not in text:
                assert len(text) <= 24, (language, key, text)


def test_english_uses_the_typographic_apostrophe() -> None:
    """The bot's English matches its cards: ’ (and “…”), never a typewriter ' or "."""
    for key, text in TEXTS["en"].items():
        assert "'" not in text, key
        assert '"' not in text, key


def test_what_telegram_shows_before_start_fits_its_limits() -> None:
    """setMyDescription takes 512 characters, setMyShortDescription 120, a command's
    description 256 (and at least 3)."""
    for language in TEXTS:
        assert len(t(language, "description")) <= 512
        assert len(t(language, "short_description")) <= 120
        for key in TEXTS[language]:
            if key.startswith("cmd_"):
                assert 3 <= len(t(language, key)) <= 256, (language, key)
