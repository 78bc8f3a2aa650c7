"""Inline keyboards for every menu and card, and the text that goes with the current menu."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from vechnost_bot.bot.callbacks import Callback, encode
from vechnost_bot.bot.texts import LANGUAGE_NAMES, content_name, level_name, t, theme_name
from vechnost_bot.game import engine
from vechnost_bot.game.content import LANGUAGES, THEMES, Library
from vechnost_bot.game.labels import HEAT_THEMES, heat_label
from vechnost_bot.storage.game_records import Table
from vechnost_bot.storage.records import ContentType, Language, Session, ThemeId

__all__ = [
    "CardButtons",
    "Place",
    "adult_keyboard",
    "card_keyboard",
    "contents_keyboard",
    "deck_keyboard",
    "deck_title",
    "exhausted_keyboard",
    "favourite_keyboard",
    "language_keyboard",
    "level_title",
    "levels_keyboard",
    "menu_for",
    "previous_keyboard",
    "reset_keyboard",
    "themes_keyboard",
]

Place = Literal["private", "group", "room"]
"""Where a game is played: one private chat, a group chat, or a room of two private chats."""

Row = list[InlineKeyboardButton]


def _button(text: str, callback: Callback) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=encode(callback))


def level_title(language: Language, theme: ThemeId, level: int) -> str:
    """``Level 2``, or the heat (``Hot``) in a theme whose levels are heats."""
    return heat_label(theme, level, language) or level_name(language, level)


def language_keyboard(back: Language | None = None) -> InlineKeyboardMarkup:
    """One button per language, each written in its own language; with ``back`` (the
    player's language) a "Back" row that returns to the menu the player was at."""
    rows = [
        [_button(LANGUAGE_NAMES[lang], Callback("language", language=lang))] for lang in LANGUAGES
    ]
    if back is not None:
        rows.append([_button(t(back, "btn_back"), Callback("current"))])
    return InlineKeyboardMarkup(rows)


def themes_keyboard(
    language: Language, *, place: Place = "private", both_answer: bool = False
) -> InlineKeyboardMarkup:
    """The four themes, two per row; the both-answer rule; a room to make or to leave;
    help and language."""
    buttons = [
        _button(theme_name(language, theme, icon=True), Callback("theme", theme=theme))
        for theme in THEMES
    ]
    rows = [buttons[index : index + 2] for index in range(0, len(buttons), 2)]
    rows.append([_button(t(language, "btn_both_on" if both_answer else "btn_both_off"),
                         Callback("both"))])  # fmt: skip
    if place == "private":
        rows.append([_button(t(language, "btn_room"), Callback("room"))])
    elif place == "room":
        rows.append([_button(t(language, "btn_leave"), Callback("leave"))])
    rows.append(
        [
            _button(t(language, "btn_help"), Callback("help")),
            _button(t(language, "btn_language"), Callback("language_menu")),
        ]
    )
    return InlineKeyboardMarkup(rows)


def adult_keyboard(language: Language, *, each: bool = False) -> InlineKeyboardMarkup:
    """Yes, we are 18+ (``each``: I am, when every player confirms for themselves) / no,
    go back."""
    yes = t(language, "btn_adult_me" if each else "btn_adult_yes")
    return InlineKeyboardMarkup(
        [
            [_button(yes, Callback("adult", yes=True))],
            [_button(t(language, "btn_adult_no"), Callback("adult", yes=False))],
        ]
    )


def levels_keyboard(
    language: Language, theme: ThemeId, levels: Sequence[int]
) -> InlineKeyboardMarkup:
    """The theme's levels, then back to the themes."""
    buttons = [
        _button(level_title(language, theme, level), Callback("level", theme=theme, level=level))
        for level in levels
    ]
    return InlineKeyboardMarkup([buttons, [_button(t(language, "btn_back"), Callback("back"))]])


def _back_from_deck(theme: ThemeId, level: int, several_levels: bool) -> Callback:
    if len(THEMES[theme].contents) > 1:
        return Callback("back", theme=theme, level=level)
    if several_levels:
        return Callback("back", theme=theme)
    return Callback("back")


def contents_keyboard(
    language: Language, theme: ThemeId, level: int, *, several_levels: bool
) -> InlineKeyboardMarkup:
    """Questions / Tasks, then back."""
    contents = [
        _button(
            content_name(language, content),
            Callback("content", theme=theme, level=level, content=content),
        )
        for content in THEMES[theme].contents
    ]
    back = Callback("back", theme=theme) if several_levels else Callback("back")
    return InlineKeyboardMarkup([contents, [_button(t(language, "btn_back"), back)]])


def _nav_row(language: Language, theme: ThemeId, level: int, several_levels: bool) -> Row:
    return [
        _button(t(language, "btn_back"), _back_from_deck(theme, level, several_levels)),
        _button(t(language, "btn_menu"), Callback("menu")),
        _button(t(language, "btn_end"), Callback("end")),
    ]


def _next(theme: ThemeId, level: int, content: ContentType) -> Callback:
    return Callback("next", theme=theme, level=level, content=content)


def deck_keyboard(
    language: Language,
    theme: ThemeId,
    level: int,
    content: ContentType,
    *,
    several_levels: bool = True,
) -> InlineKeyboardMarkup:
    """Next card, then back, themes and end (the deck menu, before a card is on the table)."""
    return InlineKeyboardMarkup(
        [
            [_button(t(language, "btn_next"), _next(theme, level, content))],
            _nav_row(language, theme, level, several_levels),
        ]
    )


def exhausted_keyboard(
    language: Language,
    theme: ThemeId,
    level: int,
    content: ContentType,
    *,
    next_level: int | None = None,
    several_levels: bool = True,
) -> InlineKeyboardMarkup:
    """The next level when there is one, shuffle again, then back, themes and end."""
    rows: list[Row] = []
    if next_level is not None:
        label = t(language, "btn_next_level", level=level_title(language, theme, next_level))
        rows.append([_button(label, Callback("level", theme=theme, level=next_level))])
    rows.append(
        [
            _button(
                t(language, "btn_reshuffle"),
                Callback("reshuffle", theme=theme, level=level, content=content),
            )
        ]
    )
    rows.append(_nav_row(language, theme, level, several_levels))
    return InlineKeyboardMarkup(rows)


@dataclass(frozen=True, slots=True)
class CardButtons:
    """What the keyboard under a dealt card offers to the chat it goes to."""

    theme: ThemeId
    level: int
    content: ContentType
    card_id: str
    can_draw: bool = True  # this chat's player may draw the next card
    can_swap: bool = True  # this chat's player drew this card and may pass on it
    deck_card: bool = True  # a deck card (not an opening or closing one): save, swap
    deeper: int | None = None  # offer this level (pacing, or the deck's end)
    last: bool = False  # the deck's last card: shuffle instead of "Next card"
    several_levels: bool = True


def card_keyboard(language: Language, spec: CardButtons) -> InlineKeyboardMarkup:
    """The keyboard under a card."""
    theme, level, content = spec.theme, spec.level, spec.content
    rows: list[Row] = []
    if spec.deeper is not None and spec.can_draw:  # choosing a level deals: the drawer's
        label = t(language, "btn_deeper", level=level_title(language, theme, spec.deeper))
        rows.append([_button(label, Callback("level", theme=theme, level=spec.deeper))])
    if spec.can_draw and spec.last:
        reshuffle = Callback("reshuffle", theme=theme, level=level, content=content)
        rows.append([_button(t(language, "btn_reshuffle"), reshuffle)])
    elif spec.can_draw:
        rows.append([_button(t(language, "btn_next"), _next(theme, level, content))])
    if spec.deck_card:
        actions = [_button(t(language, "btn_save"), Callback("save", card=spec.card_id))]
        if spec.can_swap and not spec.last:
            actions.append(_button(t(language, "btn_swap"), Callback("swap", card=spec.card_id)))
        actions.append(_button(t(language, "btn_previous"), Callback("previous", number=1)))
        rows.append(actions)
    rows.append(_nav_row(language, theme, level, spec.several_levels))
    return InlineKeyboardMarkup(rows)


def previous_keyboard(language: Language, card_id: str, steps: int) -> InlineKeyboardMarkup:
    """Under an earlier card: save it, go one further back, or back to the game."""
    return InlineKeyboardMarkup(
        [
            [
                _button(t(language, "btn_save"), Callback("save", card=card_id)),
                _button(t(language, "btn_previous"), Callback("previous", number=steps + 1)),
            ],
            [_button(t(language, "btn_keep"), Callback("current"))],
        ]
    )


def favourite_keyboard(
    language: Language, card_id: str, number: int, total: int
) -> InlineKeyboardMarkup:
    """Under a favourite: the next favourite, unsave (the same ♥ toggles), themes."""
    rows: list[Row] = []
    if number < total:
        rows.append([_button(t(language, "btn_next_favourite"),
                             Callback("favourite", number=number + 1))])  # fmt: skip
    rows.append(
        [
            _button(t(language, "btn_unsave"), Callback("save", card=card_id)),
            _button(t(language, "btn_menu"), Callback("menu")),
        ]
    )
    return InlineKeyboardMarkup(rows)


def reset_keyboard(language: Language, *, in_deck: bool) -> InlineKeyboardMarkup:
    """Shuffle this deck (when playing one) / forget the whole game / cancel."""
    rows: list[Row] = []
    if in_deck:
        rows.append([_button(t(language, "btn_reset_deck"), Callback("reset_deck"))])
    rows.append([_button(t(language, "btn_reset_all"), Callback("reset_all"))])
    rows.append([_button(t(language, "btn_cancel"), Callback("current"))])
    return InlineKeyboardMarkup(rows)


def deck_title(
    language: Language,
    theme: ThemeId,
    level: int,
    content: ContentType,
    *,
    several_levels: bool = True,
    icon: bool = False,
) -> str:
    """A deck's name: ``For Couples · Level 2``, ``Sex · Level 1 · Tasks``, ``Provocation``.

    The level and the content type are named only when the theme offers a choice of them.
    """
    parts = [theme_name(language, theme, icon=icon)]
    if several_levels:
        parts.append(level_title(language, theme, level))
    if len(THEMES[theme].contents) > 1:
        parts.append(content_name(language, content))
    return " · ".join(parts)


def menu_for(
    session: Session,
    library: Library,
    language: Language,
    *,
    place: Place = "private",
    table: Table | None = None,
) -> tuple[str, InlineKeyboardMarkup]:
    """The text and keyboard of the menu this game is at, in ``language``."""
    here = engine.step(session, library)
    theme, level, content = session.theme, session.level, session.content
    both = table.both_answer if table is not None else False
    if here == "theme" or theme is None:
        return t(language, "choose_theme"), themes_keyboard(language, place=place, both_answer=both)
    name = theme_name(language, theme, icon=True)
    levels = engine.theme_levels(library, theme)
    several = len(levels) > 1
    if here == "level" or level is None:
        key = "choose_heat" if theme in HEAT_THEMES else "choose_level"
        return t(language, key, theme=name), levels_keyboard(language, theme, levels)
    if here == "content" or content is None:
        markup = contents_keyboard(language, theme, level, several_levels=several)
        return t(language, "choose_content", theme=name), markup
    deck = library.deck(theme, level, content)
    drawn, total = engine.progress(session, deck) if deck is not None else (0, 0)
    title = deck_title(language, theme, level, content, several_levels=several, icon=True)
    text = t(language, "deck_intro", deck=title, drawn=drawn, total=total)
    if deck is not None and drawn >= total:
        markup = exhausted_keyboard(
            language, theme, level, content,
            next_level=engine.deeper_level(session, library), several_levels=several,
        )  # fmt: skip
        return text, markup
    return text, deck_keyboard(language, theme, level, content, several_levels=several)
