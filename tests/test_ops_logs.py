"""``vechnost logs``: tail, -n, rotation-aware follow, missing file."""

from __future__ import annotations

import argparse
import io
import threading
import time
from pathlib import Path

import pytest

from vechnost_bot.config import Settings
from vechnost_bot.ops.logs import command, follow, log_path, tail


def _settings(tmp_path: Path, log_file: Path | None) -> Settings:
    return Settings(  # type: ignore[call-arg]
        redis_data_dir=tmp_path / "data", log_file=log_file, _env_file=None
    )


def _args(lines: int = 50, follow: bool = False) -> argparse.Namespace:
    return argparse.Namespace(lines=lines, follow=follow, command="logs")


def _write(path: Path, count: int, prefix: str = "line") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        for number in range(count):
            handle.write(f"{prefix} {number}\n")


def test_default_path_is_in_the_data_dir(tmp_path: Path) -> None:
    """Without LOG_FILE the log is <data dir>/vechnost.log."""
    assert log_path(_settings(tmp_path, None)) == tmp_path / "data" / "vechnost.log"
    assert log_path(_settings(tmp_path, tmp_path / "x.log")) == tmp_path / "x.log"


def test_prints_the_last_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The default prints the last 50 lines; -n N the last N."""
    path = tmp_path / "bot.log"
    _write(path, 200)
    assert command(_settings(tmp_path, path), _args()) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"line {n}" for n in range(150, 200)]
    assert command(_settings(tmp_path, path), _args(lines=3)) == 0
    assert capsys.readouterr().out.splitlines() == ["line 197", "line 198", "line 199"]


def test_tail_of_a_big_file_reads_blocks(tmp_path: Path) -> None:
    """A file bigger than one read block still gives exactly the last N lines."""
    path = tmp_path / "big.log"
    _write(path, 20000, prefix="x" * 40)
    assert tail(path, 2500) == [f"{'x' * 40} {n}" for n in range(17500, 20000)]


def test_short_file_reaches_into_the_rotated_one(tmp_path: Path) -> None:
    """Right after a rotation, older lines come from vechnost.log.1."""
    path = tmp_path / "vechnost.log"
    _write(tmp_path / "vechnost.log.1", 5, prefix="old")
    _write(path, 2, prefix="new")
    assert tail(path, 4) == ["old 3", "old 4", "new 0", "new 1"]


def test_missing_file_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No log file: exit 1 and a message naming the path and LOG_FILE."""
    assert command(_settings(tmp_path, None), _args()) == 1
    err = capsys.readouterr().err
    assert str(tmp_path / "data" / "vechnost.log") in err
    assert "LOG_FILE" in err


def test_negative_count_is_refused(tmp_path: Path) -> None:
    """-n must not be negative."""
    path = tmp_path / "bot.log"
    _write(path, 1)
    assert command(_settings(tmp_path, path), _args(lines=-1)) == 2


def test_lines_are_redacted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A secret that reached the file is masked on the way out."""
    path = tmp_path / "bot.log"
    path.write_text("connect redis://:hunter2-pass@127.0.0.1:6379/0\n", encoding="utf-8")
    assert command(_settings(tmp_path, path), _args()) == 0
    assert "hunter2-pass" not in capsys.readouterr().out


def _wait_for(buffer: io.StringIO, text: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in buffer.getvalue():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not seen; got {buffer.getvalue()!r}")
        time.sleep(0.02)


def test_follow_across_rotation_and_truncation(tmp_path: Path) -> None:
    """-f prints appended lines, the rest of a rotated file, the new file, and after a truncate."""
    path = tmp_path / "vechnost.log"
    _write(path, 3, prefix="before")
    out = io.StringIO()
    stop = threading.Event()
    worker = threading.Thread(
        target=follow, args=(path, out), kwargs={"stop": stop, "poll_seconds": 0.02}
    )
    worker.start()
    try:
        time.sleep(0.1)
        _write(path, 1, prefix="appended")
        _wait_for(out, "appended 0")
        _write(path, 1, prefix="last-of-old")
        path.rename(tmp_path / "vechnost.log.1")
        _write(path, 1, prefix="rotated")
        _wait_for(out, "rotated 0")
        path.write_text("", encoding="utf-8")
        time.sleep(0.2)  # a truncate is seen by size, so let a poll see it before writing
        _write(path, 1, prefix="after-truncate")
        _wait_for(out, "after-truncate 0")
    finally:
        stop.set()
        worker.join(5)
    text = out.getvalue()
    assert "before" not in text
    assert text.index("appended 0") < text.index("last-of-old 0") < text.index("rotated 0")
