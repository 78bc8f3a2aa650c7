"""The deck loader: structure, checks, and the errors it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.decks import write_decks
from vechnost_bot.errors import ContentError, VechnostError
from vechnost_bot.game.content import THEMES, deck_key, load_library


def test_loads_every_deck_of_every_theme(tmp_path: Path) -> None:
    """Each theme's levels and content types become one deck, with cards in every language."""
    library = load_library(write_decks(tmp_path, per_deck=4))
    expected = {
        deck_key(theme.id, level, content)
        for theme in THEMES.values()
        for level in theme.levels
        for content in theme.contents
    }
    assert set(library.decks) == expected
    deck = library.deck("sex", 1, "tasks")
    assert deck is not None
    assert len(deck) == 4
    assert deck.ids[0] == "sex1t01"
    card = library.card("acq2q03")
    assert card is not None
    assert card.text("cs").startswith("Otázka")
    assert card.text("ru").startswith("Вопрос")
    assert library.deck("provocation", 2, "questions") is None


def test_theme_metadata() -> None:
    """Sex is the only 18+ theme and the only one with tasks; callback codes are unique."""
    assert [t.id for t in THEMES.values() if t.adult] == ["sex"]
    assert THEMES["sex"].contents == ("questions", "tasks")
    assert THEMES["provocation"].levels == (1,)
    assert len({t.code for t in THEMES.values()}) == len(THEMES)


def _replace(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")


def test_missing_file_is_reported(tmp_path: Path) -> None:
    """A missing theme file names the file and says where to fix it."""
    write_decks(tmp_path)
    (tmp_path / "cs" / "couples.toml").unlink()
    with pytest.raises(ContentError, match=r"couples\.toml is missing"):
        load_library(tmp_path)


def test_empty_card_is_rejected(tmp_path: Path) -> None:
    """A card whose text is blank is an error."""
    write_decks(tmp_path)
    _replace(tmp_path / "en" / "acquaintance.toml", 'acq1q02 = "Question', 'acq1q02 = "  "\nx = "')
    with pytest.raises(ContentError, match="acq1q02 is empty"):
        load_library(tmp_path)


def test_duplicate_text_is_rejected(tmp_path: Path) -> None:
    """Two cards of a deck with the same text (ignoring case and spaces) are an error."""
    write_decks(tmp_path)
    path = tmp_path / "ru" / "provocation.toml"
    path.write_text(
        '[questions.1]\nprv1q01 = "Один  вопрос"\nprv1q02 = "один вопрос"\n', encoding="utf-8"
    )
    with pytest.raises(ContentError, match="same text"):
        load_library(tmp_path)


def test_ids_must_match_across_languages(tmp_path: Path) -> None:
    """An id present in one language only is named in the error."""
    write_decks(tmp_path)
    _replace(tmp_path / "cs" / "sex.toml", "sex1q03", "sex1q99")
    with pytest.raises(ContentError, match="sex1q99"):
        load_library(tmp_path)


def test_unknown_level_or_table_is_rejected(tmp_path: Path) -> None:
    """A level the theme does not have, or a content type it does not offer, is an error."""
    write_decks(tmp_path)
    _replace(tmp_path / "en" / "provocation.toml", "[questions.1]", "[questions.2]")
    with pytest.raises(ContentError, match="not a level"):
        load_library(tmp_path)
    write_decks(tmp_path)
    _replace(tmp_path / "en" / "couples.toml", "[questions.1]", "[tasks.1]")
    with pytest.raises(ContentError, match="not a content type"):
        load_library(tmp_path)


def test_broken_toml_and_shared_ids(tmp_path: Path) -> None:
    """Unparsable TOML and an id used by two decks are errors of the VechnostError tree."""
    write_decks(tmp_path)
    (tmp_path / "ru" / "sex.toml").write_text("[questions.1\n", encoding="utf-8")
    with pytest.raises(VechnostError, match="cannot be read"):
        load_library(tmp_path)
    write_decks(tmp_path)
    for language in ("ru", "en", "cs"):
        _replace(tmp_path / language / "couples.toml", "cpl1q01", "acq1q01")
    with pytest.raises(ContentError, match="acq1q01 is used in both"):
        load_library(tmp_path)
