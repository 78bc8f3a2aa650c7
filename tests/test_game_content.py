"""The deck loader: structure, kinds, levels from the files, and the errors it gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.decks import LEVELS, write_decks
from vechnost_bot.errors import ContentError, VechnostError
from vechnost_bot.game.content import THEMES, deck_key, load_library


def test_loads_every_deck_of_every_theme(tmp_path: Path) -> None:
    """Each theme's levels and content types become one deck, with cards in every language."""
    library = load_library(write_decks(tmp_path, per_deck=4))
    expected = {
        deck_key(theme.id, level, content)
        for theme in THEMES.values()
        for level in LEVELS[theme.id]
        for content in theme.contents
    }
    assert set(library.decks) == expected
    deck = library.deck("sex", 1, "tasks")
    assert deck is not None
    assert len(deck) == 4
    assert deck.ids[0] == "sex1t01"
    card = library.card("acq2q03")
    assert card is not None
    assert (card.kind, card.level, card.content) == ("question", 2, "questions")
    assert card.text("cs").startswith("Otázka")
    assert card.text("ru").startswith("Вопрос")
    assert library.deck("provocation", 2, "questions") is None
    assert library.card("acq9q01") is None


def test_todays_files_have_no_opening_or_closing(tmp_path: Path) -> None:
    """Files without [opening] and [closing] load: no opening cards, no closing card."""
    library = load_library(write_decks(tmp_path))
    assert library.opening("couples") == ()
    assert library.closing("couples") is None


def test_opening_closing_wildcards_and_guesses(tmp_path: Path) -> None:
    """The new tables load: opening cards in file order, one closing card, and every kind is
    read from the id letter; all of them are found by id."""
    library = load_library(write_decks(tmp_path, extras=True))
    opening = library.opening("sex")
    assert [card.id for card in opening] == ["sex0o01", "sex0o02"]
    assert {(card.kind, card.level, card.content) for card in opening} == {("opening", 0, None)}
    closing = library.closing("acquaintance")
    assert closing is not None
    assert (closing.id, closing.kind) == ("acq0c01", "closing")
    assert closing.text("ru").startswith("Вопрос acquaintance closing")
    tasks = library.deck("sex", 1, "tasks")
    assert tasks is not None
    assert [library.card(i).kind for i in tasks.ids[-3:]] == ["task", "wildcard", "guess"]  # type: ignore[union-attr]
    assert library.card("sex0o02") is opening[1]
    assert library.card("cpl3g01") is not None
    ids = [card.id for card in library.cards()]
    assert len(ids) == len(set(ids))
    assert {"acq0o01", "acq0c01", "sex1w02"} <= set(ids)


def test_levels_come_from_the_files(tmp_path: Path) -> None:
    """A theme has the levels its files hold: Sex gets level 2 by adding its tables."""
    library = load_library(write_decks(tmp_path, levels={**LEVELS, "sex": (1, 2)}))
    assert library.levels("sex") == (1, 2)
    assert library.levels("acquaintance") == (1, 2, 3)
    assert library.levels("provocation") == (1,)
    assert library.deck("sex", 2, "tasks") is not None


def test_a_level_must_hold_every_content_type(tmp_path: Path) -> None:
    """A Sex level with questions but no tasks is an error naming the missing table."""
    write_decks(tmp_path, levels={**LEVELS, "sex": (1, 2)})
    path = tmp_path / "en" / "sex.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.index("[tasks.2]")], encoding="utf-8")
    with pytest.raises(ContentError, match=r"en/sex\.toml: level 2 has no \[tasks\.2\]"):
        load_library(tmp_path)


def test_levels_must_not_have_a_gap(tmp_path: Path) -> None:
    """Levels 1 and 3 without 2 is an error; so is a level that is not one digit."""
    write_decks(tmp_path, levels={**LEVELS, "couples": (1, 3)})
    with pytest.raises(ContentError, match="without a gap"):
        load_library(tmp_path)
    write_decks(tmp_path)
    _replace(tmp_path / "ru" / "provocation.toml", "[questions.1]", "[questions.x]")
    with pytest.raises(ContentError, match=r"\[questions\.x\] is not a level"):
        load_library(tmp_path)


def test_levels_must_match_across_languages(tmp_path: Path) -> None:
    """A level present in one language only is an error naming the table."""
    write_decks(tmp_path)
    write_decks(tmp_path / "extra", levels={**LEVELS, "provocation": (1, 2)})
    (tmp_path / "extra" / "cs" / "provocation.toml").replace(tmp_path / "cs" / "provocation.toml")
    with pytest.raises(ContentError, match=r"provocation \[questions\.2\]: ids differ"):
        load_library(tmp_path)


def test_theme_metadata() -> None:
    """Sex is the only 18+ theme and the only one with tasks; codes and prefixes are unique."""
    assert [t.id for t in THEMES.values() if t.adult] == ["sex"]
    assert THEMES["sex"].contents == ("questions", "tasks")
    assert len({t.code for t in THEMES.values()}) == len(THEMES)
    assert len({t.prefix for t in THEMES.values()}) == len(THEMES)


def _replace(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("cpl2q03", "cpl2q3", r"en/couples\.toml: card id 'cpl2q3' does not follow"),
        ("cpl2q03", "CPL2q03", r"card id 'CPL2q03' does not follow"),
        ("cpl2q03", "acq2q03", r"en/couples\.toml: card id acq2q03 does not belong in"),
        ("cpl2q03", "cpl1q03", r"card id cpl1q03 does not belong in \[questions\.2\]"),
        ("cpl2q03", "cpl2t03", r"card id cpl2t03 does not belong in \[questions\.2\]"),
        ("cpl2q03", "cpl2o03", r"card id cpl2o03 does not belong"),
        ("cpl0o01", "cpl0q01", r"card id cpl0q01 does not belong in \[opening\]"),
        ("cpl0c01", "cpl1c01", r"card id cpl1c01 does not belong in \[closing\]"),
    ],
)  # fmt: skip
def test_ids_outside_the_grammar_are_named(
    tmp_path: Path, old: str, new: str, message: str
) -> None:
    """An id that breaks the grammar, or sits in the wrong table, names its file and itself."""
    write_decks(tmp_path, extras=True)
    _replace(tmp_path / "en" / "couples.toml", old, new)
    with pytest.raises(ContentError, match=message):
        load_library(tmp_path)


def test_closing_holds_exactly_one_card(tmp_path: Path) -> None:
    """Two closing cards are an error; so is an empty table."""
    write_decks(tmp_path, extras=True)
    path = tmp_path / "ru" / "sex.toml"
    _replace(path, "[closing]\n", '[closing]\nsex0c02 = "Ещё одна"\n')
    with pytest.raises(ContentError, match=r"ru/sex\.toml: \[closing\] must hold exactly one"):
        load_library(tmp_path)
    write_decks(tmp_path, extras=True)
    _replace(path, 'sex0c01 = "Вопрос sex closing"', "")
    with pytest.raises(ContentError, match=r"\[closing\] is not a table of cards"):
        load_library(tmp_path)


def test_shared_wildcard_id_in_questions_and_tasks_is_rejected(tmp_path: Path) -> None:
    """A wildcard id used in both Sex decks of a level (easy to do by hand) is an error."""
    write_decks(tmp_path, extras=True)
    for language in ("ru", "en", "cs"):
        _replace(tmp_path / language / "sex.toml", "sex1w02", "sex1w01")
    with pytest.raises(ContentError, match="sex1w01 is used in both"):
        load_library(tmp_path)


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


def test_unknown_table_or_empty_theme_is_rejected(tmp_path: Path) -> None:
    """A content type the theme does not offer is an error; so is a file with no deck."""
    write_decks(tmp_path)
    _replace(tmp_path / "en" / "couples.toml", "[questions.1]", "[tasks.1]")
    with pytest.raises(ContentError, match="not a content type"):
        load_library(tmp_path)
    write_decks(tmp_path, extras=True)
    path = tmp_path / "en" / "provocation.toml"
    text = path.read_text(encoding="utf-8")
    path.write_text(text[: text.index("[questions.1]")], encoding="utf-8")
    with pytest.raises(ContentError, match=r"en/provocation\.toml holds no deck"):
        load_library(tmp_path, languages=("en",))


def test_broken_toml_and_no_languages(tmp_path: Path) -> None:
    """Unparsable TOML is an error of the VechnostError tree; so is loading no language."""
    write_decks(tmp_path)
    (tmp_path / "ru" / "sex.toml").write_text("[questions.1\n", encoding="utf-8")
    with pytest.raises(VechnostError, match="cannot be read"):
        load_library(tmp_path)
    with pytest.raises(ContentError, match="no languages"):
        load_library(tmp_path, languages=())
