"""Log lines under hostile input: redaction is linear-time, values are bounded in size."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import pytest

from vechnost_bot.log import MAX_VALUE_CHARS, bound, configure_logging, redact

_SIZE = 200_000

HOSTILE = {
    "letters": "a" * _SIZE,
    "colons": "a:" * (_SIZE // 2),
    "digits": "1" * _SIZE,
    "digits_colon": ("1" * 10 + ":") * (_SIZE // 11),
    "schemes": "a://" * (_SIZE // 4),
    "credentials": "redis://:" + "x" * _SIZE,
    "at_signs": "redis://u:" + "p@" * (_SIZE // 2),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_redaction_is_linear(name: str) -> None:
    """200 000 characters of a pattern that made the old regexes quadratic take well under
    a second (the old URL regex took 0.2 s for 20 000)."""
    text = HOSTILE[name]
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 0.5


def test_redaction_still_masks() -> None:
    """Tokens, URL passwords and requirepass values are still masked."""
    text = (
        "url=redis://user:s3cret@127.0.0.1:6379/0 "
        "tok=123456789:AAFakeTokenForTestsOnly_abcdefghijk "
        "requirepass hunter22"
    )
    masked = redact(text)
    for secret in ("s3cret", "AAFakeToken", "hunter22"):
        assert secret not in masked
    assert "redis://user:***@127.0.0.1" in masked


def test_bound_cuts_and_escapes() -> None:
    """A long value is cut and says how much is left out; a lone surrogate is escaped."""
    cut = bound("x" * (MAX_VALUE_CHARS + 10))
    assert cut.endswith("…[10 more characters]")
    assert bound("Ann\ud800") == "Ann\\ud800"
    assert bound("short") == "short"


def test_a_huge_library_log_line_is_bounded(tmp_path: Path) -> None:
    """A library line carrying a 1 MB payload (python-telegram-bot logs the whole batch it
    could not parse) is written in bounded size, quickly."""
    log_file = tmp_path / "bot.log"
    configure_logging("INFO", "json", log_file, console=False)
    try:
        started = time.perf_counter()
        logging.getLogger("telegram.Bot").critical(
            "Error while parsing updates! Received data was %r", ["x" * 1_000_000]
        )
        elapsed = time.perf_counter() - started
    finally:
        for handler in logging.getLogger().handlers:
            handler.flush()
    line = log_file.read_text(encoding="utf-8").splitlines()[-1]
    assert len(line) < 3 * MAX_VALUE_CHARS
    assert json.loads(line)["event"].startswith("Error while parsing updates!")
    assert elapsed < 1.0
