"""Callback data: compact (at most 64 bytes, as Telegram requires) and parsed strictly.

Grammar (``<t>`` is a theme's one-letter code, ``<c>`` is ``q`` or ``t``)::

    L:<lang>          choose language          T:<t>             choose theme
    A:y | A:n         18+ confirmation         V:<t>:<level>     choose level
    C:<t>:<level>:<c> choose content type      N:<t>:<level>:<c> next card
    R:<t>:<level>:<c> reshuffle the deck       B | B:<t> | B:<t>:<level>  back to a menu
    M                 themes menu              H                 help
    G                 language menu            K                 back to the current menu
    S:<card id>       save / unsave a card ♥   W:<card id>       swap (pass) a card
    P:<n>             the card n before now    F:<n>             the n-th favourite
    E                 end the game             Y                 both-answer rule on/off
    X:d | X:a         reset this deck / all    I                 make a room (invite link)
    Q                 leave the room

Buttons carry the full context they were made for, so the handler can tell a
stale keyboard from a current one. Anything else parses to None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

from vechnost_bot.game.content import LANGUAGES, THEMES
from vechnost_bot.storage.records import ContentType, Language, ThemeId

__all__ = ["MAX_CALLBACK_BYTES", "Action", "Callback", "encode", "parse"]

MAX_CALLBACK_BYTES: Final = 64

Action = Literal[
    "language", "theme", "adult", "level", "content", "next", "reshuffle", "back", "menu",
    "help", "language_menu", "current", "save", "swap", "previous", "favourite", "end",
    "both", "reset_deck", "reset_all", "room", "leave",
]  # fmt: skip

_THEME_BY_CODE: Final[dict[str, ThemeId]] = {theme.code: theme.id for theme in THEMES.values()}
_CONTENT_BY_CODE: Final[dict[str, ContentType]] = {"q": "questions", "t": "tasks"}
_SIMPLE: Final[dict[str, Action]] = {
    "M": "menu", "H": "help", "G": "language_menu", "K": "current", "E": "end", "Y": "both",
    "I": "room", "Q": "leave",
}  # fmt: skip
_CARD_ACTIONS: Final[dict[str, Action]] = {"S": "save", "W": "swap"}
_NUMBER_ACTIONS: Final[dict[str, Action]] = {"P": "previous", "F": "favourite"}
_RESET_ACTIONS: Final[dict[str, Action]] = {"d": "reset_deck", "a": "reset_all"}
_CARD_ID: Final = re.compile(r"(?:acq|cpl|prv|sex)[0-9][qtwgoc][0-9]{2}")
MAX_NUMBER: Final = 999
_DECK_ACTIONS: Final[dict[str, Action]] = {"C": "content", "N": "next", "R": "reshuffle"}
_PATTERN: Final = re.compile(r"[A-Z](?::[a-z0-9]{1,7}){0,3}")


@dataclass(frozen=True, slots=True)
class Callback:
    """A parsed button press."""

    action: Action
    language: Language | None = None
    theme: ThemeId | None = None
    level: int | None = None
    content: ContentType | None = None
    yes: bool | None = None
    card: str | None = None
    number: int | None = None


def encode(callback: Callback) -> str:
    """The callback data string for ``callback``; ``ValueError`` when it is incomplete."""
    action = callback.action
    theme = THEMES[callback.theme].code if callback.theme else None
    content = callback.content[0] if callback.content else None
    data: str | None = None
    if action in _SIMPLE.values():
        data = {v: k for k, v in _SIMPLE.items()}[action]
    elif action == "language" and callback.language:
        data = f"L:{callback.language}"
    elif action == "theme" and theme:
        data = f"T:{theme}"
    elif action == "adult" and callback.yes is not None:
        data = f"A:{'y' if callback.yes else 'n'}"
    elif action == "level" and theme and callback.level:
        data = f"V:{theme}:{callback.level}"
    elif action in _DECK_ACTIONS.values() and theme and callback.level and content:
        letter = {v: k for k, v in _DECK_ACTIONS.items()}[action]
        data = f"{letter}:{theme}:{callback.level}:{content}"
    elif action in _CARD_ACTIONS.values() and callback.card:
        letter = {v: k for k, v in _CARD_ACTIONS.items()}[action]
        data = f"{letter}:{callback.card}"
    elif action in _NUMBER_ACTIONS.values() and callback.number is not None:
        letter = {v: k for k, v in _NUMBER_ACTIONS.items()}[action]
        data = f"{letter}:{callback.number}"
    elif action in _RESET_ACTIONS.values():
        data = f"X:{ {v: k for k, v in _RESET_ACTIONS.items()}[action] }"
    elif action == "back":
        parts = ["B"]
        if theme:
            parts.append(theme)
            if callback.level:
                parts.append(str(callback.level))
        data = ":".join(parts)
    if data is None or parse(data) != callback:
        raise ValueError(f"cannot encode {callback!r}")
    return data


def _theme(code: str) -> ThemeId | None:
    return _THEME_BY_CODE.get(code)


def _level(_theme: ThemeId, text: str) -> int | None:
    # Which levels a theme has is the decks' business (engine.theme_levels): a level the
    # theme lacks parses, and the handler answers it as a stale button.
    if not text.isdigit() or len(text) > 1 or text == "0":
        return None
    return int(text)


def parse(data: str | None) -> Callback | None:
    """The button press ``data`` encodes, or None for anything unknown or malformed."""
    if not data or len(data.encode("utf-8")) > MAX_CALLBACK_BYTES or not _PATTERN.fullmatch(data):
        return None
    head, *args = data.split(":")
    if head in _SIMPLE and not args:
        return Callback(_SIMPLE[head])
    if head == "L" and len(args) == 1 and args[0] in LANGUAGES:
        return Callback("language", language=args[0])
    if head == "A" and args in (["y"], ["n"]):
        return Callback("adult", yes=args[0] == "y")
    if head in _CARD_ACTIONS and len(args) == 1 and _CARD_ID.fullmatch(args[0]):
        return Callback(_CARD_ACTIONS[head], card=args[0])
    if head in _NUMBER_ACTIONS and len(args) == 1 and args[0].isdigit():
        number = int(args[0])
        if str(number) == args[0] and number <= MAX_NUMBER:
            return Callback(_NUMBER_ACTIONS[head], number=number)
        return None
    if head == "X" and len(args) == 1 and args[0] in _RESET_ACTIONS:
        return Callback(_RESET_ACTIONS[args[0]])
    if not args and head != "B":
        return None
    theme = _theme(args[0]) if args else None
    if args and theme is None:
        return None
    if head == "T" and len(args) == 1:
        return Callback("theme", theme=theme)
    if head == "B" and len(args) <= 2:
        level = _level(theme, args[1]) if theme and len(args) == 2 else None
        if len(args) == 2 and level is None:
            return None
        return Callback("back", theme=theme, level=level)
    if theme is None:
        return None
    if head == "V" and len(args) == 2:
        level = _level(theme, args[1])
        return Callback("level", theme=theme, level=level) if level else None
    if head in _DECK_ACTIONS and len(args) == 3:
        level = _level(theme, args[1])
        content = _CONTENT_BY_CODE.get(args[2])
        if level is None or content is None or content not in THEMES[theme].contents:
            return None
        return Callback(_DECK_ACTIONS[head], theme=theme, level=level, content=content)
    return None
