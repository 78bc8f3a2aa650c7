"""The CLI edge: help, version, and configuration errors as one line with exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vechnost_bot.cli import build_parser, main


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    """`vechnost --help` names run, status, logs, redis and doctor."""
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(["--help"])
    assert caught.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "status", "logs", "redis", "doctor"):
        assert command in out


def test_bad_setting_is_one_line_and_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A malformed REDIS_URL stops any command with one line naming it, exit code 2."""
    monkeypatch.setenv("REDIS_URL", "mysql://nope")
    assert main(["doctor"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vechnost: invalid setting REDIS_URL:")
    assert "\n" not in err


def test_module_entry_point_runs() -> None:
    """`python -m vechnost_bot --version` works without any configuration."""
    result = subprocess.run(
        [sys.executable, "-m", "vechnost_bot", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.startswith("vechnost ")


def test_bad_max_memory_stops_every_command_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """REDIS_MAX_MEMORY=lots is refused before redis-server could reject it three times:
    one line naming the variable, exit 2, doctor included."""
    monkeypatch.setenv("REDIS_MAX_MEMORY", "lots")
    for argv in (["doctor"], ["redis", "start"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("vechnost: invalid setting REDIS_MAX_MEMORY:")
        assert "\n" not in err
