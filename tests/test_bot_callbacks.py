"""Callback data: every button round-trips, stays within 64 bytes, and forgeries parse to None."""

from __future__ import annotations

import pytest

from tests.support.decks import LEVELS
from vechnost_bot.bot.callbacks import MAX_CALLBACK_BYTES, Callback, encode, parse
from vechnost_bot.game.content import LANGUAGES, THEMES


def _every_callback() -> list[Callback]:
    found = [Callback("menu"), Callback("help"), Callback("language_menu"), Callback("back")]
    found.append(Callback("current"))
    found += [Callback("adult", yes=True), Callback("adult", yes=False)]
    found += [Callback("language", language=lang) for lang in LANGUAGES]
    for theme in THEMES.values():
        found.append(Callback("theme", theme=theme.id))
        found.append(Callback("back", theme=theme.id))
        for level in LEVELS[theme.id]:
            found.append(Callback("level", theme=theme.id, level=level))
            found.append(Callback("back", theme=theme.id, level=level))
            for content in theme.contents:
                for action in ("content", "next", "reshuffle"):
                    found.append(Callback(action, theme=theme.id, level=level, content=content))  # type: ignore[arg-type]
    found += [Callback("save", card="acq1q01"), Callback("swap", card="sex2t45")]
    found += [Callback("previous", number=1), Callback("favourite", number=999)]
    found += [Callback("end"), Callback("both"), Callback("room"), Callback("leave")]
    found += [Callback("reset_deck"), Callback("reset_all")]
    return found


def test_every_button_round_trips_within_64_bytes() -> None:
    """encode → parse gives the same callback back, and no data is longer than 64 bytes."""
    for callback in _every_callback():
        data = encode(callback)
        assert len(data.encode()) <= MAX_CALLBACK_BYTES
        assert parse(data) == callback


@pytest.mark.parametrize(
    "data",
    [
        None, "", "x", "T", "T:", "T:z", "T:a:1", "V:a", "V:a:0", "V:a:10", "V:p:x", "V:a:01",
        "C:a:1:t", "C:a:1:x", "N:s:2:z", "N:a:1", "R:a:1:q:q", "A:maybe", "A", "L:de", "L:RU",
        "M:1", "H:x", "K:a", "B:a:0", "B:z", "S:xyz", "S:acq1q1", "S:abc1q01", "W", "P:01",
        "P:1000", "P:x", "F:", "X:z", "X", "E:1", "Q:q", "B:a:1:q", "t:a", " T:a", "T:a ",
        "T:a\n", "Т:а",
        "N:a:1:q" + ":x" * 40, "💥", "N:a:1:" + "q" * 100,
    ],
)  # fmt: skip
def test_tampered_or_unknown_data_is_rejected(data: str | None) -> None:
    """Anything outside the grammar, or naming a content type a theme lacks, is None (a level
    a theme lacks parses: which levels exist is the decks' business, and the handler treats
    it as a stale button)."""
    assert parse(data) is None


def test_incomplete_callbacks_cannot_be_encoded() -> None:
    """encode refuses callbacks that would not parse back."""
    with pytest.raises(ValueError, match="cannot encode"):
        encode(Callback("save"))
    with pytest.raises(ValueError, match="cannot encode"):
        encode(Callback("next", theme="couples", level=1))
