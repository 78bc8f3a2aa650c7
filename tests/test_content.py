"""The shipped decks: complete, consistent, and every card fits on its image."""

from __future__ import annotations

import re

import pytest

from vechnost_bot.game.content import LANGUAGES, THEMES, Library, load_library
from vechnost_bot.game.render import fits

MIN_CARDS = 40
_PREFIX = {"acquaintance": "acq", "couples": "cpl", "provocation": "prv", "sex": "sex"}


@pytest.fixture(scope="module")
def library() -> Library:
    """The real decks under src/vechnost_bot/game/data (the loader checks ids and emptiness)."""
    return load_library()


def test_every_deck_has_enough_cards(library: Library) -> None:
    """At least 40 cards per deck per language, Sex questions and tasks included."""
    for theme in THEMES.values():
        for level in theme.levels:
            for content in theme.contents:
                deck = library.deck(theme.id, level, content)
                assert deck is not None
                assert len(deck) >= MIN_CARDS, deck.key


def test_ids_follow_the_naming_scheme(library: Library) -> None:
    """Ids are <theme prefix><level><q|t><NN>, inside the deck they belong to."""
    for deck in library.decks.values():
        pattern = re.compile(rf"{_PREFIX[deck.theme]}{deck.level}{deck.content[0]}\d{{2,3}}")
        bad = [card_id for card_id in deck.ids if not pattern.fullmatch(card_id)]
        assert bad == [], deck.key


def test_no_empty_or_duplicate_cards(library: Library) -> None:
    """No blank text, no text repeated anywhere in a language, every id in every language."""
    for language in LANGUAGES:
        texts = [card.text(language) for card in library.cards()]
        assert all(text.strip() for text in texts)
        normalized = [" ".join(text.split()).casefold() for text in texts]
        duplicates = {text for text in normalized if normalized.count(text) > 1}
        assert duplicates == set(), language
        assert all(language in card.texts for card in library.cards())


def test_every_card_fits_on_its_image(library: Library) -> None:
    """Every text, in every language, fits the card at a readable size (and ≤ 200 chars)."""
    too_long = [
        (card.id, language)
        for card in library.cards()
        for language in LANGUAGES
        if len(card.text(language)) > 200 or not fits(card.text(language), language)
    ]
    assert too_long == []


def test_czech_cards_avoid_gendered_forms(library: Library) -> None:
    """Czech cards are phrased so that they fit any player: no "udělal(a)" forms."""
    gendered = [card.id for card in library.cards() if "(a)" in card.text("cs")]
    assert gendered == []
