"""Small deck files for tests, written to a temporary data directory."""

from __future__ import annotations

from pathlib import Path

from vechnost_bot.game.content import LANGUAGES, THEMES

__all__ = ["write_decks"]

_PREFIX = {"acquaintance": "acq", "couples": "cpl", "provocation": "prv", "sex": "sex"}
_WORD = {"ru": "Вопрос", "en": "Question", "cs": "Otázka"}


def write_decks(root: Path, *, per_deck: int = 5) -> Path:
    """Write ``per_deck`` cards for every deck of every theme in every language."""
    for language in LANGUAGES:
        folder = root / language
        folder.mkdir(parents=True, exist_ok=True)
        for theme in THEMES.values():
            lines: list[str] = []
            for content in theme.contents:
                for level in theme.levels:
                    lines.append(f"[{content}.{level}]")
                    kind = content[0]
                    for number in range(1, per_deck + 1):
                        card_id = f"{_PREFIX[theme.id]}{level}{kind}{number:02d}"
                        text = f"{_WORD[language]} {theme.id} {level} {content} №{number}"
                        lines.append(f'{card_id} = "{text}"')
                    lines.append("")
            (folder / f"{theme.id}.toml").write_text("\n".join(lines), encoding="utf-8")
    return root
