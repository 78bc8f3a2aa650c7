"""The rules: navigation, the 18+ gate, drawing without repeats, reshuffle, language."""

from __future__ import annotations

import random

import pytest

from tests.support.decks import write_decks
from vechnost_bot.game import engine
from vechnost_bot.game.content import Library, load_library
from vechnost_bot.storage.records import Session


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """Fixture decks with 6 cards each."""
    return load_library(write_decks(tmp_path_factory.mktemp("decks"), per_deck=6))


def _session() -> Session:
    return Session(chat_id=1, language="en")


def test_steps_follow_the_choices(library: Library) -> None:
    """language → theme → level → deck; single levels and content types are chosen at once."""
    session = Session(chat_id=1)
    assert engine.step(session, library) == "language"
    session = engine.choose_language(session, "ru")
    assert engine.step(session, library) == "theme"
    session = engine.choose_theme(session, "acquaintance", library)
    assert engine.step(session, library) == "level"
    session = engine.choose_level(session, 2, library)
    assert engine.step(session, library) == "deck"
    assert session.content == "questions"
    session = engine.choose_theme(session, "provocation", library)
    assert (session.level, session.content, engine.step(session, library)) == (
        1,
        "questions",
        "deck",
    )


def test_adult_theme_needs_confirmation(library: Library) -> None:
    """Sex cannot be chosen before the chat confirmed 18+; afterwards it asks for content."""
    session = _session()
    assert engine.needs_adult_confirmation(session, "sex")
    with pytest.raises(PermissionError):
        engine.choose_theme(session, "sex", library)
    session = engine.confirm_adult(session)
    session = engine.choose_theme(session, "sex", library)
    assert engine.step(session, library) == "content"
    session = engine.choose_content(session, "tasks")
    assert engine.step(session, library) == "deck"
    assert not engine.needs_adult_confirmation(session, "couples")


def test_invalid_choices_raise(library: Library) -> None:
    """Levels and content types a theme does not have are refused."""
    session = engine.choose_theme(_session(), "couples", library)
    with pytest.raises(ValueError, match="level 4"):
        engine.choose_level(session, 4, library)
    with pytest.raises(ValueError, match="tasks"):
        engine.choose_content(session, "tasks")
    with pytest.raises(ValueError, match="level first"):
        engine.choose_content(session, "questions")
    with pytest.raises(ValueError, match="level 1"):
        engine.choose_level(_session(), 1, library)


def test_back_goes_one_meaningful_step(library: Library) -> None:
    """Back skips the menus that had one choice only."""
    session = engine.choose_level(engine.choose_theme(_session(), "couples", library), 3, library)
    session = engine.go_back(session, library)
    assert (session.theme, session.level) == ("couples", None)
    session = engine.go_back(session, library)
    assert session.theme is None
    session = engine.go_back(session, library)
    assert session.theme is None
    session = engine.choose_theme(_session(), "provocation", library)
    assert engine.go_back(session, library).theme is None
    session = engine.confirm_adult(_session())
    session = engine.choose_content(engine.choose_theme(session, "sex", library), "questions")
    session = engine.go_back(session, library)
    assert (session.theme, session.content) == ("sex", None)
    assert engine.go_back(session, library).theme is None
    assert engine.current_deck(session, library) is None


def test_draw_never_repeats_until_exhausted(library: Library) -> None:
    """Every card of a deck comes once; then the deck says exhausted; reshuffle starts over."""
    session = engine.choose_level(
        engine.choose_theme(_session(), "acquaintance", library), 1, library
    )
    rng = random.Random(7)
    seen: list[str] = []
    for number in range(1, 7):
        session, outcome = engine.draw(session, library, rng)
        assert outcome.card is not None
        assert (outcome.drawn, outcome.total) == (number, 6)
        seen.append(outcome.card.id)
    assert len(set(seen)) == 6
    session, outcome = engine.draw(session, library, rng)
    assert outcome.exhausted
    assert (outcome.drawn, outcome.total) == (6, 6)
    session = engine.reshuffle(session, "acquaintance", 1, "questions")
    session, outcome = engine.draw(session, library, rng)
    assert outcome.card is not None
    assert outcome.drawn == 1


def test_language_switch_keeps_progress(library: Library) -> None:
    """Drawn ids are stable across languages, so progress survives a language switch."""
    session = engine.choose_level(engine.choose_theme(_session(), "couples", library), 2, library)
    for _ in range(3):
        session, _outcome = engine.draw(session, library)
    session = engine.choose_language(session, "cs")
    deck = engine.current_deck(session, library)
    assert deck is not None
    assert engine.progress(session, deck) == (3, 6)
    session, outcome = engine.draw(session, library)
    assert outcome.card is not None
    assert outcome.card.text("cs").startswith("Otázka")
    assert outcome.drawn == 4


def test_progress_ignores_removed_cards_and_reset_keeps_language(library: Library) -> None:
    """Ids no longer in a deck do not count; reset forgets the game but not the language."""
    session = engine.choose_level(engine.choose_theme(_session(), "couples", library), 1, library)
    session.drawn = {"couples:1:questions": ["gone", "cpl1q01"]}
    deck = engine.current_deck(session, library)
    assert deck is not None
    assert engine.progress(session, deck) == (1, 6)
    session = engine.confirm_adult(session)
    session = engine.reset(session)
    assert (session.theme, session.drawn, session.language) == (None, {}, "en")
    assert session.adult_confirmed
    with pytest.raises(ValueError, match="choose a theme"):
        engine.draw(session, library)


def test_undrawn_card_comes_next_and_reshuffle_does_not_repeat(library: Library) -> None:
    """A card put back after a failed send is the next one drawn, without repeats; after a
    reshuffle the deck's last card is not favoured."""
    rng = random.Random(7)
    session = engine.choose_theme(_session(), "provocation", library)
    session, first = engine.draw(session, library, rng)
    session, second = engine.draw(session, library, rng)
    assert first.card is not None
    assert second.card is not None
    session = engine.undraw(session, "provocation:1:questions", second.card.id)
    assert session.drawn["provocation:1:questions"] == [first.card.id]
    assert engine.undraw(session, "provocation:1:questions", "prv1q99").drawn == session.drawn
    session, again = engine.draw(session, library, rng)
    assert again.card == second.card
    assert again.drawn == 2
    for _ in range(3):
        session, outcome = engine.draw(session, library, rng)
    ids = session.drawn["provocation:1:questions"]
    assert len(ids) == len(set(ids)) == outcome.drawn == 5
    session = engine.reshuffle(session, "provocation", 1, "questions")
    assert session.last_card is None
    firsts = {
        engine.draw(session.model_copy(deep=True), library, random.Random(n))[0].last_card
        for n in range(30)
    }
    assert len(firsts) > 1
