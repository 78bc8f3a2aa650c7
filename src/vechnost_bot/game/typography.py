"""Line-breaking typography for card texts: what must never end or start a line.

Russian and Czech typesetting keeps a one-letter word (a preposition or a
conjunction: "в доме", "k tobě") on the line of the word after it, and a line never
starts with a dash. Both are done the way typesetters do it, with non-breaking
spaces, so every consumer that wraps text (the card renderer, a Telegram client
showing a caption) keeps them together.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from vechnost_bot.storage.records import Language

__all__ = ["DASHES", "NBSP", "SHORT_WORDS", "bind_short_words"]

NBSP: Final = "\u00a0"

SHORT_WORDS: Final[Mapping[Language, frozenset[str]]] = {
    "ru": frozenset("виаксуоя"),
    "cs": frozenset("ksvzouai"),
    "en": frozenset(),
}
"""The one-letter words bound to the next word, by language (compared case-insensitively)."""

DASHES: Final = frozenset("—–-")
"""Dashes that stand alone between words and must not begin a line."""

# A one-letter word: at the start or after a space or an opening quote or bracket,
# followed by ordinary spaces (which become one non-breaking space).
_OPENERS: Final = "«„“\"'(["
_SHORT: Final[Mapping[Language, re.Pattern[str] | None]] = {
    language: re.compile(
        rf"(?<![^\s{re.escape(_OPENERS)}])([{''.join(sorted(letters))}])[ \t]+", re.IGNORECASE
    )
    if letters
    else None
    for language, letters in SHORT_WORDS.items()
}
_DASH: Final = re.compile(rf"[ \t]+([{''.join(sorted(DASHES))}])(?=\s)")


def bind_short_words(text: str, language: Language) -> str:
    """``text`` with non-breaking spaces where a line must not break.

    A one-letter word of ``language`` (ru: в и а к с у о я; cs: k s v z o u a i) is
    bound to the word after it, and a dash standing between words is bound to the
    word before it, so that no line starts with a dash.
    """
    pattern = _SHORT[language]
    if pattern is not None:
        text = pattern.sub(rf"\1{NBSP}", text)
    return _DASH.sub(rf"{NBSP}\1", text)
