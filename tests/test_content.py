"""The shipped decks: complete, consistent, well-formed ids, and every card fits its image
with the typography rules kept (one-letter words bound, no line starting with a dash)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from vechnost_bot.game.content import CARD_ID, LANGUAGES, THEMES, Library, load_library
from vechnost_bot.game.render import layout_text
from vechnost_bot.game.typography import DASHES, SHORT_WORDS

MIN_CARDS = 45
MIN_WILDCARDS = 3
MIN_GUESSES = 3
MAX_CHARS = 180
_DECK_LETTERS = {"questions": "qwg", "tasks": "twg"}


@pytest.fixture(scope="module")
def library() -> Library:
    """The real decks under src/vechnost_bot/game/data (the loader checks ids and emptiness)."""
    return load_library()


def test_every_deck_has_enough_cards(library: Library) -> None:
    """At least 45 cards per deck, every level holding every content type of its theme."""
    for theme in THEMES.values():
        assert library.levels(theme.id), theme.id
        for level in library.levels(theme.id):
            for content in theme.contents:
                deck = library.deck(theme.id, level, content)
                assert deck is not None, (theme.id, level, content)
                assert len(deck) >= MIN_CARDS, deck.key


def test_decks_with_wildcards_or_guesses_have_enough_of_them(library: Library) -> None:
    """Once a deck has wildcards or guess cards, it has at least 3 of each."""
    for deck in library.decks.values():
        kinds = Counter(card.kind for card in deck.cards)
        if kinds["wildcard"] or kinds["guess"]:
            assert kinds["wildcard"] >= MIN_WILDCARDS, deck.key
            assert kinds["guess"] >= MIN_GUESSES, deck.key


def test_opening_and_closing_cards(library: Library) -> None:
    """A theme's opening is one or two cards at level 0; its closing is one card, if any."""
    for theme in THEMES.values():
        opening = library.opening(theme.id)
        assert len(opening) <= 2, theme.id
        assert all(card.kind == "opening" and card.level == 0 for card in opening)
        closing = library.closing(theme.id)
        assert closing is None or (closing.kind, closing.level) == ("closing", 0)


def test_ids_follow_the_grammar_in_every_language(library: Library) -> None:
    """Ids are <prefix><level><kind><NN>, in the deck of their theme, level and content type,
    unique, and every one of them has a text in all three languages."""
    ids = [card.id for card in library.cards()]
    assert len(ids) == len(set(ids))
    for card in library.cards():
        match = CARD_ID.fullmatch(card.id)
        assert match is not None, card.id
        prefix, level, letter, _number = match.groups()
        assert prefix == THEMES[card.theme].prefix, card.id
        assert int(level) == card.level, card.id
        if card.content is not None:
            assert letter in _DECK_LETTERS[card.content], card.id
        assert set(card.texts) == set(LANGUAGES), card.id
        assert library.card(card.id) is card


def test_no_empty_or_duplicate_cards(library: Library) -> None:
    """No blank text, and no text repeated anywhere in a language."""
    for language in LANGUAGES:
        texts = [card.text(language) for card in library.cards()]
        assert all(text.strip() for text in texts)
        normalized = Counter(" ".join(text.split()).casefold() for text in texts)
        assert [text for text, count in normalized.items() if count > 1] == [], language


def test_every_card_fits_and_keeps_the_typography(library: Library) -> None:
    """Every text in every language is at most 180 characters and fits the card at a readable
    size; in its wrapped lines no line ends with a one-letter word (ru: в и а к с у о я; cs:
    k s v z o u a i) and none starts with a dash."""
    problems: list[tuple[str, str, str]] = []
    for card in library.cards():
        for language in LANGUAGES:
            text = card.text(language)
            layout = layout_text(text, language)
            if len(text) > MAX_CHARS or layout is None:
                problems.append((card.id, language, "does not fit"))
                continue
            assert " ".join(layout.lines).split() == text.split(), card.id
            for number, line in enumerate(layout.lines):
                words = line.split()  # at every space, the non-breaking ones too
                last = words[-1].strip("«„“\"'(").casefold()
                if number < len(layout.lines) - 1 and last in SHORT_WORDS[language]:
                    problems.append((card.id, language, f"line ends with {last!r}: {line}"))
                if words[0] in DASHES:
                    problems.append((card.id, language, f"line starts with a dash: {line}"))
    assert problems == []


def test_czech_cards_avoid_gendered_forms(library: Library) -> None:
    """Czech cards are phrased so that they fit any player: no "udělal(a)" forms."""
    gendered = [card.id for card in library.cards() if "(a)" in card.text("cs")]
    assert gendered == []


_RU_GENDERED = re.compile(
    r"\b(?:ты|я|кто из нас)\s+(?:\w+\s+)?\w+л\s+бы\b|\bбы\s+(?:ты|я)\s+\w+л\b"
    r"|\b(?:ты|я)\s+(?:был|была|сделал|сделала|стал|стала)\b",
    re.IGNORECASE,
)
_RU_MIXED_CONDITIONAL = re.compile(r"\bесли бы\b[^?!.]*\b\w+(?:ешь|ишь|ёшь)\b", re.IGNORECASE)
_CS_MIXED_CONDITIONAL = re.compile(r"\bkdyby\b[^?!.]*\b\w+(?:íš|eš|áš)\?", re.IGNORECASE)


def test_russian_cards_fit_any_player_and_keep_one_mood(library: Library) -> None:
    """No «ты стал бы» / «я сделала» (the past tense names a gender), and no «если бы …,
    что ты сделаешь?» (a wish answered in the future tense reads as a slip)."""
    found = [
        (card.id, card.text("ru"))
        for card in library.cards()
        if _RU_GENDERED.search(card.text("ru")) or _RU_MIXED_CONDITIONAL.search(card.text("ru"))
    ]
    assert found == []


def test_czech_cards_keep_one_mood(library: Library) -> None:
    """No "kdyby …, kterou vymažeš?": a wish is answered in the conditional."""
    found = [
        (card.id, card.text("cs"))
        for card in library.cards()
        if _CS_MIXED_CONDITIONAL.search(card.text("cs"))
    ]
    assert found == []
