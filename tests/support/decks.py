"""Small deck files for tests, written to a temporary data directory."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from vechnost_bot.game.content import LANGUAGES, THEMES
from vechnost_bot.storage.records import ThemeId

__all__ = ["LEVELS", "write_decks"]

LEVELS: Mapping[ThemeId, tuple[int, ...]] = {
    "acquaintance": (1, 2, 3),
    "couples": (1, 2, 3),
    "provocation": (1,),
    "sex": (1,),
}
"""The levels each theme gets unless a test asks for others."""

_WORD = {"ru": "Вопрос", "en": "Question", "cs": "Otázka"}


def write_decks(
    root: Path,
    *,
    per_deck: int = 5,
    levels: Mapping[ThemeId, tuple[int, ...]] = LEVELS,
    extras: bool = False,
) -> Path:
    """Write ``per_deck`` cards for every deck of every theme in every language.

    With ``extras``, every theme also gets two opening cards and a closing card, and
    every deck a wildcard and a guess card after its ``per_deck`` cards.
    """
    for language in LANGUAGES:
        folder = root / language
        folder.mkdir(parents=True, exist_ok=True)
        for theme in THEMES.values():
            word = f"{_WORD[language]} {theme.id}"
            lines: list[str] = []
            if extras:
                lines.append("[opening]")
                lines += [f'{theme.prefix}0o0{n} = "{word} opening {n}"' for n in (1, 2)]
                lines += ["", "[closing]", f'{theme.prefix}0c01 = "{word} closing"', ""]
            for offset, content in enumerate(theme.contents):
                for level in levels[theme.id]:
                    lines.append(f"[{content}.{level}]")
                    for number in range(1, per_deck + 1):
                        card_id = f"{theme.prefix}{level}{content[0]}{number:02d}"
                        lines.append(f'{card_id} = "{word} {level} {content} №{number}"')
                    if extras:
                        # A level's wildcards and guesses are numbered apart per content type.
                        for letter in "wg":
                            card_id = f"{theme.prefix}{level}{letter}{offset + 1:02d}"
                            lines.append(f'{card_id} = "{word} {level} {content} {letter}"')
                    lines.append("")
            (folder / f"{theme.id}.toml").write_text("\n".join(lines), encoding="utf-8")
    return root
