"""Inline keyboards for every menu, and the text that goes with the current one."""

from __future__ import annotations

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from vechnost_bot.bot.callbacks import Callback, encode
from vechnost_bot.bot.texts import LANGUAGE_NAMES, content_name, level_name, t, theme_name
from vechnost_bot.game import engine
from vechnost_bot.game.content import LANGUAGES, THEMES, Library
from vechnost_bot.game.labels import heat_label
from vechnost_bot.storage.records import ContentType, Language, Session, ThemeId

__all__ = [
    "adult_keyboard",
    "contents_keyboard",
    "deck_keyboard",
    "deck_title",
    "exhausted_keyboard",
    "language_keyboard",
    "levels_keyboard",
    "menu_for",
    "themes_keyboard",
]


def _button(text: str, callback: Callback) -> InlineKeyboardButton:
    return InlineKeyboardButton(text, callback_data=encode(callback))


def language_keyboard(back: Language | None = None) -> InlineKeyboardMarkup:
    """One button per language, each written in its own language; with ``back`` (the
    player's language) a "Back" row that returns to the menu the player was at."""
    rows = [
        [_button(LANGUAGE_NAMES[lang], Callback("language", language=lang))] for lang in LANGUAGES
    ]
    if back is not None:
        rows.append([_button(t(back, "btn_back"), Callback("current"))])
    return InlineKeyboardMarkup(rows)


def themes_keyboard(language: Language) -> InlineKeyboardMarkup:
    """The four themes, two per row, then help and language."""
    buttons = [
        _button(theme_name(language, theme, icon=True), Callback("theme", theme=theme))
        for theme in THEMES
    ]
    rows = [buttons[index : index + 2] for index in range(0, len(buttons), 2)]
    rows.append(
        [
            _button(t(language, "btn_help"), Callback("help")),
            _button(t(language, "btn_language"), Callback("language_menu")),
        ]
    )
    return InlineKeyboardMarkup(rows)


def adult_keyboard(language: Language) -> InlineKeyboardMarkup:
    """Yes, we are 18+ / no, go back."""
    return InlineKeyboardMarkup(
        [
            [_button(t(language, "btn_adult_yes"), Callback("adult", yes=True))],
            [_button(t(language, "btn_adult_no"), Callback("adult", yes=False))],
        ]
    )


def _level_title(language: Language, theme: ThemeId, level: int) -> str:
    """``Level 2``, or the heat (``Hot``) in a theme whose levels are heats."""
    return heat_label(theme, level, language) or level_name(language, level)


def levels_keyboard(
    language: Language, theme: ThemeId, *, levels: tuple[int, ...]
) -> InlineKeyboardMarkup:
    """The theme's levels (``Library.levels``), then back to the themes."""
    buttons = [
        _button(_level_title(language, theme, level), Callback("level", theme=theme, level=level))
        for level in levels
    ]
    return InlineKeyboardMarkup([buttons, [_button(t(language, "btn_back"), Callback("back"))]])


def _back_from_deck(theme: ThemeId, level: int, levels: tuple[int, ...]) -> Callback:
    info = THEMES[theme]
    if len(info.contents) > 1:
        return Callback("back", theme=theme, level=level)
    if len(levels) > 1:
        return Callback("back", theme=theme)
    return Callback("back")


def contents_keyboard(
    language: Language, theme: ThemeId, level: int, *, levels: tuple[int, ...]
) -> InlineKeyboardMarkup:
    """Questions / Tasks, then back."""
    contents = [
        _button(
            content_name(language, content),
            Callback("content", theme=theme, level=level, content=content),
        )
        for content in THEMES[theme].contents
    ]
    back = Callback("back", theme=theme) if len(levels) > 1 else Callback("back")
    return InlineKeyboardMarkup([contents, [_button(t(language, "btn_back"), back)]])


def deck_keyboard(
    language: Language, theme: ThemeId, level: int, content: ContentType, *, levels: tuple[int, ...]
) -> InlineKeyboardMarkup:
    """Next card, then back and themes."""
    deck = {"theme": theme, "level": level, "content": content}
    return InlineKeyboardMarkup(
        [
            [_button(t(language, "btn_next"), Callback("next", **deck))],  # type: ignore[arg-type]
            [
                _button(t(language, "btn_back"), _back_from_deck(theme, level, levels)),
                _button(t(language, "btn_menu"), Callback("menu")),
            ],
        ]
    )


def exhausted_keyboard(
    language: Language, theme: ThemeId, level: int, content: ContentType, *, levels: tuple[int, ...]
) -> InlineKeyboardMarkup:
    """Shuffle again, then back and themes."""
    callback = Callback("reshuffle", theme=theme, level=level, content=content)
    return InlineKeyboardMarkup(
        [
            [_button(t(language, "btn_reshuffle"), callback)],
            [
                _button(t(language, "btn_back"), _back_from_deck(theme, level, levels)),
                _button(t(language, "btn_menu"), Callback("menu")),
            ],
        ]
    )


def deck_title(
    language: Language,
    theme: ThemeId,
    level: int,
    content: ContentType,
    *,
    levels: tuple[int, ...],
    icon: bool = False,
) -> str:
    """A deck's name: ``For Couples · Level 2``, ``Sex · Tasks``, ``Provocation``.

    The level and the content type are named only when the theme offers a choice of them.
    """
    info = THEMES[theme]
    parts = [theme_name(language, theme, icon=icon)]
    if len(levels) > 1:
        parts.append(_level_title(language, theme, level))
    if len(info.contents) > 1:
        parts.append(content_name(language, content))
    return " · ".join(parts)


def menu_for(session: Session, library: Library) -> tuple[str, InlineKeyboardMarkup]:
    """The text and keyboard of the menu this session is at."""
    language = session.language or "en"
    here = engine.step(session, library)
    theme, level, content = session.theme, session.level, session.content
    if here == "language":
        return t(language, "choose_language"), language_keyboard()
    if here == "theme" or theme is None:
        return t(language, "choose_theme"), themes_keyboard(language)
    name = theme_name(language, theme, icon=True)
    if here == "level" or level is None:
        levels = library.levels(theme)
        return t(language, "choose_level", theme=name), levels_keyboard(
            language, theme, levels=levels
        )
    if here == "content" or content is None:
        markup = contents_keyboard(language, theme, level, levels=library.levels(theme))
        return t(language, "choose_content", theme=name), markup
    deck = library.deck(theme, level, content)
    drawn, total = engine.progress(session, deck) if deck is not None else (0, 0)
    levels = library.levels(theme)
    title = deck_title(language, theme, level, content, levels=levels, icon=True)
    text = t(language, "deck_intro", deck=title, drawn=drawn, total=total)
    if deck is not None and drawn >= total:
        return text, exhausted_keyboard(language, theme, level, content, levels=levels)
    return text, deck_keyboard(language, theme, level, content, levels=levels)
