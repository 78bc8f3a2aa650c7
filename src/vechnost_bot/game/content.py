"""Decks of cards, loaded from the TOML files under ``game/data/<language>/``.

One file per theme and language (the format is described in ``docs/game.md``):

- ``[<content>.<level>]`` tables (``[questions.1]``, ``[tasks.2]``) map stable card ids
  to texts; the levels a theme offers are the levels its files hold;
- an optional ``[opening]`` table: the cards dealt first when a game of the theme starts;
- an optional ``[closing]`` table: the one card offered when the players end a game.

Card ids follow ``<theme prefix><level><kind letter><two digits>`` (``cpl2q07``,
``sex1t12``, ``acq0o01``) and are the same in every language, which is what lets a
game switch language, or a saved game survive a rewrite of the texts.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal, get_args

from vechnost_bot.errors import ContentError
from vechnost_bot.storage.records import ContentType, Language, ThemeId

__all__ = [
    "CARD_ID",
    "DATA_DIR",
    "KINDS",
    "LANGUAGES",
    "THEMES",
    "Card",
    "CardKind",
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

CardKind = Literal["question", "task", "wildcard", "guess", "opening", "closing"]
"""What a card asks of the players; the letter in its id says which."""

KINDS: Final[Mapping[str, CardKind]] = {
    "q": "question",
    "t": "task",
    "w": "wildcard",
    "g": "guess",
    "o": "opening",
    "c": "closing",
}
"""Card kind by the letter in a card id."""

CARD_ID: Final = re.compile(r"(acq|cpl|prv|sex)([0-9])([qtwgoc])([0-9]{2})")
"""The grammar of a card id (use ``fullmatch``): prefix, level, kind letter, number."""

# Which kind letters each table may hold: a deck mixes its own kind with wildcards
# and guess cards; opening and closing cards stand apart, at level 0.
_LETTERS: Final[Mapping[str, str]] = {
    "questions": "qwg",
    "tasks": "twg",
    "opening": "o",
    "closing": "c",
}

RGB = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Theme:
    """What a theme is: its id prefix, callback code, content types, age gate and colours.

    Its levels are not here: they are what the deck files hold (:meth:`Library.levels`).
    """

    id: ThemeId
    code: str  # one letter, used in callback data
    prefix: str  # the first three letters of its card ids
    contents: tuple[ContentType, ...]
    adult: bool
    colors: tuple[RGB, RGB]  # gradient from top to bottom of the card
    accent: RGB


THEMES: Final[Mapping[ThemeId, Theme]] = {
    "acquaintance": Theme(
        "acquaintance", "a", "acq", ("questions",), False,
        ((38, 84, 124), (92, 164, 169)), (239, 223, 187),
    ),
    "couples": Theme(
        "couples", "c", "cpl", ("questions",), False,
        ((120, 40, 70), (226, 120, 120)), (255, 226, 204),
    ),
    "provocation": Theme(
        "provocation", "p", "prv", ("questions",), False,
        ((52, 22, 84), (214, 96, 52)), (255, 204, 102),
    ),
    "sex": Theme(
        "sex", "s", "sex", ("questions", "tasks"), True,
        ((30, 8, 22), (150, 20, 48)), (240, 160, 170),
    ),
}  # fmt: skip


def deck_key(theme: ThemeId, level: int, content: ContentType) -> str:
    """The key of a deck, as stored in ``Session.drawn``: ``"acquaintance:1:questions"``."""
    return f"{theme}:{level}:{content}"


@dataclass(frozen=True, slots=True)
class Card:
    """One card in every language: a stable id and its texts.

    ``level`` is 0 and ``content`` None for opening and closing cards, which belong
    to the theme rather than to one of its decks.
    """

    id: str
    theme: ThemeId
    level: int
    content: ContentType | None
    texts: Mapping[Language, str]

    @property
    def kind(self) -> CardKind:
        """Question, task, wildcard, guess, opening or closing: the letter in the id."""
        return KINDS[self.id[4]]

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
    """Every deck by key, each theme's opening and closing cards, every card by id."""

    decks: Mapping[str, Deck]
    languages: tuple[Language, ...] = LANGUAGES
    openings: Mapping[ThemeId, tuple[Card, ...]] = field(default_factory=dict)
    closings: Mapping[ThemeId, Card] = field(default_factory=dict)
    _by_id: dict[str, Card] = field(default_factory=dict, repr=False, compare=False)
    _levels: dict[ThemeId, tuple[int, ...]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for card in self.cards():
            self._by_id[card.id] = card
        levels: dict[ThemeId, set[int]] = {}
        for deck in self.decks.values():
            levels.setdefault(deck.theme, set()).add(deck.level)
        self._levels.update({theme: tuple(sorted(found)) for theme, found in levels.items()})

    def deck(self, theme: ThemeId, level: int, content: ContentType) -> Deck | None:
        """The deck, or None when the theme has no such level or content type."""
        return self.decks.get(deck_key(theme, level, content))

    def levels(self, theme: ThemeId) -> tuple[int, ...]:
        """The levels ``theme`` offers, ascending: the levels its deck files hold."""
        return self._levels.get(theme, ())

    def opening(self, theme: ThemeId) -> tuple[Card, ...]:
        """The cards dealt first when a game of ``theme`` starts (may be none)."""
        return self.openings.get(theme, ())

    def closing(self, theme: ThemeId) -> Card | None:
        """The closing ritual of ``theme``, or None when it has none."""
        return self.closings.get(theme)

    def card(self, card_id: str) -> Card | None:
        """A card by id: from any deck, or an opening or closing card."""
        return self._by_id.get(card_id)

    def cards(self) -> Iterator[Card]:
        """Every card: every deck's, then the opening and closing cards."""
        for deck in self.decks.values():
            yield from deck.cards
        for cards in self.openings.values():
            yield from cards
        yield from self.closings.values()


# A table of one file: ("opening",), ("closing",) or (content, level).
_TableKey = tuple[str, int]
_Tables = dict[_TableKey, dict[str, str]]


def _read(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ContentError(f"deck file {path.name} is missing", path=path) from None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ContentError(f"deck file {path.name} cannot be read: {error}", path=path) from None


def _table_name(key: _TableKey) -> str:
    name, level = key
    return f"[{name}.{level}]" if level else f"[{name}]"


def _cards_of(path: Path, theme: Theme, key: _TableKey, cards: object) -> dict[str, str]:
    """One table's cards, checked: ids in the grammar and in this table, texts unique."""
    where = f"{path.parent.name}/{path.name}"
    name, level = key
    if not isinstance(cards, dict) or not cards:
        raise ContentError(f"{where}: {_table_name(key)} is not a table of cards", path=path)
    seen: dict[str, str] = {}
    texts: dict[str, str] = {}
    for card_id, text in cards.items():
        match = CARD_ID.fullmatch(card_id)
        if match is None:
            raise ContentError(
                f"{where}: card id {card_id!r} does not follow <prefix><level><kind><NN> "
                f"(like {theme.prefix}{level}{_LETTERS[name][0]}01)",
                path=path,
            )
        prefix, id_level, letter, _number = match.groups()
        if prefix != theme.prefix or int(id_level) != level or letter not in _LETTERS[name]:
            raise ContentError(
                f"{where}: card id {card_id} does not belong in {_table_name(key)} (its ids "
                f"are {theme.prefix}{level}<{'|'.join(_LETTERS[name])}><NN>)",
                path=path,
            )
        if not isinstance(text, str) or not text.strip():
            raise ContentError(f"{where}: card {card_id} is empty", path=path)
        normalized = " ".join(text.split()).casefold()
        if normalized in seen:
            raise ContentError(
                f"{where}: cards {seen[normalized]} and {card_id} have the same text", path=path
            )
        seen[normalized] = card_id
        texts[card_id] = " ".join(text.split())
    return texts


def _tables_of(path: Path, data: Mapping[str, object], theme: Theme) -> _Tables:
    """The tables of one file, checked: known tables, good ids, non-empty unique texts."""
    where = f"{path.parent.name}/{path.name}"
    found: _Tables = {}
    for name, value in data.items():
        if name in {"opening", "closing"}:
            found[(name, 0)] = _cards_of(path, theme, (name, 0), value)
            if name == "closing" and len(found[(name, 0)]) != 1:
                raise ContentError(f"{where}: [closing] must hold exactly one card", path=path)
            continue
        if name not in theme.contents or not isinstance(value, dict):
            raise ContentError(
                f"{where}: table [{name}] is not a content type of theme {theme.id} "
                f"(expected {', '.join(theme.contents)}, opening or closing)",
                path=path,
            )
        for level_name, cards in value.items():
            if len(level_name) != 1 or level_name not in "123456789":
                raise ContentError(
                    f"{where}: table [{name}.{level_name}] is not a level (1 to 9)", path=path
                )
            key = (name, int(level_name))
            found[key] = _cards_of(path, theme, key, cards)
    return found


def _levels_of(path: Path, tables: _Tables, theme: Theme) -> tuple[int, ...]:
    """The levels a file holds: 1, 2, … without a gap, each with every content type."""
    where = f"{path.parent.name}/{path.name}"
    levels = sorted({level for (name, level) in tables if name in CONTENT_TYPES})
    if levels != list(range(1, len(levels) + 1)):
        raise ContentError(
            f"{where}: levels {levels} must run 1, 2, … without a gap (theme {theme.id})",
            path=path,
        )
    for level in levels:
        for content in theme.contents:
            if (content, level) not in tables:
                raise ContentError(
                    f"{where}: level {level} has no [{content}.{level}] table; every level "
                    f"of theme {theme.id} needs {', '.join(theme.contents)}",
                    path=path,
                )
    return tuple(levels)


def _content_type(name: str) -> ContentType | None:
    """The content type a table is of, or None for the opening and closing tables."""
    for content in CONTENT_TYPES:
        if content == name:
            return content
    return None


def load_library(
    data_dir: Path = DATA_DIR, *, languages: tuple[Language, ...] = LANGUAGES
) -> Library:
    """Load and check every deck; raise :class:`ContentError` on the first problem.

    Checked: every theme file exists in every language; its tables are the theme's
    content types at levels 1, 2, … (each level with every content type), plus an
    optional ``[opening]`` and a one-card ``[closing]``; every id follows the grammar
    and belongs in its table; no card is empty; no two cards of a table share a text;
    an id is used once; the tables and ids are identical in every language.
    """
    if not languages:
        raise ContentError("no languages to load", path=data_dir)
    reference_language, *others = languages
    owner: dict[str, str] = {}
    decks: dict[str, Deck] = {}
    openings: dict[ThemeId, tuple[Card, ...]] = {}
    closings: dict[ThemeId, Card] = {}
    for theme in THEMES.values():
        per_language: dict[Language, _Tables] = {}
        for language in languages:
            path = data_dir / language / f"{theme.id}.toml"
            per_language[language] = tables = _tables_of(path, _read(path), theme)
            _levels_of(path, tables, theme)
        reference = per_language[reference_language]
        if not any(name in CONTENT_TYPES for name, _level in reference):
            raise ContentError(
                f"{reference_language}/{theme.id}.toml holds no deck",
                path=data_dir / reference_language / f"{theme.id}.toml",
            )
        for language in others:
            path = data_dir / language / f"{theme.id}.toml"
            other = per_language[language]
            for key in sorted(set(reference) | set(other)):
                ids, other_ids = reference.get(key, {}), other.get(key, {})
                missing = sorted(set(ids) - set(other_ids))
                extra = sorted(set(other_ids) - set(ids))
                if missing or extra:
                    raise ContentError(
                        f"{theme.id} {_table_name(key)}: ids differ between "
                        f"{reference_language} and {language} (missing in {language}: "
                        f"{missing[:5]}, only in {language}: {extra[:5]})",
                        path=path,
                    )
        for key, texts in reference.items():
            name, level = key
            where = f"{theme.id} {_table_name(key)}"
            content = _content_type(name)
            cards: list[Card] = []
            for card_id in texts:
                if card_id in owner:
                    raise ContentError(
                        f"card id {card_id} is used in both {owner[card_id]} and {where}",
                        path=data_dir / reference_language / f"{theme.id}.toml",
                    )
                owner[card_id] = where
                card_texts: dict[Language, str] = {
                    language: per_language[language][key][card_id] for language in languages
                }
                cards.append(Card(card_id, theme.id, level, content, card_texts))
            if content is not None:
                deck = Deck(theme.id, level, content, tuple(cards))
                decks[deck.key] = deck
            elif name == "opening":
                openings[theme.id] = tuple(cards)
            else:
                closings[theme.id] = cards[0]
    return Library(decks=decks, languages=languages, openings=openings, closings=closings)
