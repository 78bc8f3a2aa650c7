"""Decks of cards, loaded from the TOML files under ``game/data/<language>/``.

One file per theme and language; tables ``[<content>.<level>]`` map stable card
ids to texts. The ids are the same in every language, which is what lets a game
switch language without losing its progress.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, get_args

from vechnost_bot.errors import ContentError
from vechnost_bot.storage.records import ContentType, Language, ThemeId

__all__ = [
    "DATA_DIR",
    "LANGUAGES",
    "THEMES",
    "Card",
    "Deck",
    "Library",
    "Theme",
    "deck_key",
    "load_library",
]

DATA_DIR: Final = Path(__file__).parent / "data"
"""The decks shipped with the package."""

LANGUAGES: Final[tuple[Language, ...]] = get_args(Language)
CONTENT_TYPES: Final[tuple[ContentType, ...]] = get_args(ContentType)

RGB = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Theme:
    """What a theme offers: its levels, its content types, its colours, its age gate."""

    id: ThemeId
    code: str  # one letter, used in callback data
    levels: tuple[int, ...]
    contents: tuple[ContentType, ...]
    adult: bool
    colors: tuple[RGB, RGB]  # gradient from top to bottom of the card
    accent: RGB


THEMES: Final[Mapping[ThemeId, Theme]] = {
    "acquaintance": Theme(
        "acquaintance", "a", (1, 2, 3), ("questions",), False,
        ((38, 84, 124), (92, 164, 169)), (239, 223, 187),
    ),
    "couples": Theme(
        "couples", "c", (1, 2, 3), ("questions",), False,
        ((120, 40, 70), (226, 120, 120)), (255, 226, 204),
    ),
    "provocation": Theme(
        "provocation", "p", (1,), ("questions",), False,
        ((52, 22, 84), (214, 96, 52)), (255, 204, 102),
    ),
    "sex": Theme(
        "sex", "s", (1,), ("questions", "tasks"), True,
        ((30, 8, 22), (150, 20, 48)), (240, 160, 170),
    ),
}  # fmt: skip


def deck_key(theme: ThemeId, level: int, content: ContentType) -> str:
    """The key of a deck, as stored in ``Session.drawn``: ``"acquaintance:1:questions"``."""
    return f"{theme}:{level}:{content}"


@dataclass(frozen=True, slots=True)
class Card:
    """One card in every language: a stable id and its texts."""

    id: str
    theme: ThemeId
    level: int
    content: ContentType
    texts: Mapping[Language, str]

    def text(self, language: Language) -> str:
        """The card's text in ``language``."""
        return self.texts[language]


@dataclass(frozen=True, slots=True)
class Deck:
    """The cards of one theme, level and content type, in file order."""

    theme: ThemeId
    level: int
    content: ContentType
    cards: tuple[Card, ...]
    _by_id: dict[str, Card] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id.update({card.id: card for card in self.cards})

    @property
    def key(self) -> str:
        """This deck's key (see :func:`deck_key`)."""
        return deck_key(self.theme, self.level, self.content)

    @property
    def ids(self) -> tuple[str, ...]:
        """The card ids, in file order."""
        return tuple(card.id for card in self.cards)

    def __len__(self) -> int:
        return len(self.cards)

    def get(self, card_id: str) -> Card | None:
        """The card with ``card_id``, or None when it is not in this deck."""
        return self._by_id.get(card_id)


@dataclass(frozen=True, slots=True)
class Library:
    """Every deck, by key, and every card, by id."""

    decks: Mapping[str, Deck]
    languages: tuple[Language, ...] = LANGUAGES

    def deck(self, theme: ThemeId, level: int, content: ContentType) -> Deck | None:
        """The deck, or None when the theme has no such level or content type."""
        return self.decks.get(deck_key(theme, level, content))

    def card(self, card_id: str) -> Card | None:
        """A card by id, from any deck."""
        for deck in self.decks.values():
            found = deck.get(card_id)
            if found is not None:
                return found
        return None

    def cards(self) -> Iterator[Card]:
        """Every card of every deck."""
        for deck in self.decks.values():
            yield from deck.cards


def _read(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ContentError(f"deck file {path.name} is missing", path=path) from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ContentError(f"deck file {path.name} cannot be read: {error}", path=path) from None


def _texts_of(
    path: Path, data: Mapping[str, object], theme: Theme
) -> dict[tuple[int, ContentType], dict[str, str]]:
    """The tables of one file, checked: known tables, non-empty unique texts."""
    found: dict[tuple[int, ContentType], dict[str, str]] = {}
    for content_name, levels in data.items():
        if content_name not in theme.contents or not isinstance(levels, dict):
            raise ContentError(
                f"{path.name}: table [{content_name}] is not a content type of theme "
                f"{theme.id} (expected {', '.join(theme.contents)})",
                path=path,
            )
        content: ContentType = content_name
        for level_name, cards in levels.items():
            if not level_name.isdigit() or int(level_name) not in theme.levels:
                raise ContentError(
                    f"{path.name}: table [{content}.{level_name}] is not a level of theme "
                    f"{theme.id} (expected {', '.join(map(str, theme.levels))})",
                    path=path,
                )
            if not isinstance(cards, dict):
                raise ContentError(
                    f"{path.name}: [{content}.{level_name}] is not a table", path=path
                )
            seen: dict[str, str] = {}
            texts: dict[str, str] = {}
            for card_id, text in cards.items():
                if not isinstance(text, str) or not text.strip():
                    raise ContentError(f"{path.name}: card {card_id} is empty", path=path)
                normalized = " ".join(text.split()).casefold()
                if normalized in seen:
                    raise ContentError(
                        f"{path.name}: cards {seen[normalized]} and {card_id} have the same text",
                        path=path,
                    )
                seen[normalized] = card_id
                texts[card_id] = " ".join(text.split())
            found[(int(level_name), content)] = texts
    return found


def load_library(
    data_dir: Path = DATA_DIR, *, languages: tuple[Language, ...] = LANGUAGES
) -> Library:
    """Load and check every deck; raise :class:`ContentError` on the first problem.

    Checked: every theme file exists in every language, tables match the theme's
    levels and content types, no card is empty, no two cards of a deck share a
    text, a card id belongs to one deck only, and the ids are identical in every
    language.
    """
    if not languages:
        raise ContentError("no languages to load", path=data_dir)
    per_language: dict[Language, dict[tuple[ThemeId, int, ContentType], dict[str, str]]] = {}
    for language in languages:
        tables: dict[tuple[ThemeId, int, ContentType], dict[str, str]] = {}
        for theme in THEMES.values():
            path = data_dir / language / f"{theme.id}.toml"
            for (level, content), texts in _texts_of(path, _read(path), theme).items():
                tables[(theme.id, level, content)] = texts
        per_language[language] = tables

    reference_language = languages[0]
    reference = per_language[reference_language]
    owner: dict[str, str] = {}
    decks: dict[str, Deck] = {}
    for theme in THEMES.values():
        for level in theme.levels:
            for content in theme.contents:
                where = f"{theme.id} level {level} {content}"
                ids = list(reference.get((theme.id, level, content), {}))
                if not ids:
                    raise ContentError(
                        f"deck {where} has no cards in {reference_language}",
                        path=data_dir / reference_language / f"{theme.id}.toml",
                    )
                for language in languages[1:]:
                    other = per_language[language].get((theme.id, level, content), {})
                    missing = sorted(set(ids) - set(other))
                    extra = sorted(set(other) - set(ids))
                    if missing or extra:
                        raise ContentError(
                            f"deck {where}: ids differ between {reference_language} and "
                            f"{language} (missing in {language}: {missing[:5]}, "
                            f"only in {language}: {extra[:5]})",
                            path=data_dir / language / f"{theme.id}.toml",
                        )
                cards: list[Card] = []
                for card_id in ids:
                    if card_id in owner:
                        raise ContentError(
                            f"card id {card_id} is used in both {owner[card_id]} and {where}",
                            path=data_dir,
                        )
                    owner[card_id] = where
                    card_texts: dict[Language, str] = {
                        lang: per_language[lang][(theme.id, level, content)][card_id]
                        for lang in languages
                    }
                    cards.append(Card(card_id, theme.id, level, content, card_texts))
                deck = Deck(theme.id, level, content, tuple(cards))
                decks[deck.key] = deck
    return Library(decks=decks, languages=languages)
