"""The names a card carries on its face, in every language: its kind and its heat.

One owner for these words, so the card image and the bot's captions and buttons
say the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from vechnost_bot.game.content import CardKind
from vechnost_bot.storage.records import Language, ThemeId

__all__ = ["HEAT_THEMES", "heat_label", "kind_label"]

_KINDS: Final[Mapping[Language, Mapping[CardKind, str]]] = {
    "en": {
        "question": "Question",
        "task": "Task",
        "wildcard": "Wildcard",
        "guess": "Guess about me",
        "opening": "Before we start",
        "closing": "To finish",
    },
    "ru": {
        "question": "Вопрос",
        "task": "Задание",
        "wildcard": "Джокер",
        "guess": "Угадай обо мне",
        "opening": "Перед началом",
        "closing": "В завершение",
    },
    "cs": {
        "question": "Otázka",
        "task": "Úkol",
        "wildcard": "Žolík",
        "guess": "Hádej o mně",
        "opening": "Než začneme",
        "closing": "Na závěr",
    },
}

# Themes whose levels are a rising heat rather than a depth: named, not numbered.
_HEAT: Final[Mapping[ThemeId, Mapping[Language, tuple[str, ...]]]] = {
    "sex": {
        "en": ("Mild", "Hot"),
        "ru": ("Нежно", "Горячо"),
        "cs": ("Jemně", "Žhavě"),
    },
}

HEAT_THEMES: Final = frozenset(_HEAT)
"""The themes whose levels are shown by heat (mild, hot) instead of a number."""


def kind_label(kind: CardKind, language: Language) -> str:
    """What a card is, as its face says: ``Question``, ``Задание``, ``Žolík``…"""
    return _KINDS[language][kind]


def heat_label(theme: ThemeId, level: int, language: Language) -> str | None:
    """The heat of ``level`` (``Mild``, ``Горячо``) in a heat theme; None in the others.

    A level beyond the named ones (a theme that grows a third level before its name
    is written) is called by the hottest name.
    """
    names = _HEAT.get(theme)
    if names is None or level < 1:
        return None
    words = names[language]
    return words[min(level, len(words)) - 1]
