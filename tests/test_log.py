"""Logging: the seed's console format, JSON elsewhere, and secrets masked everywhere."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from vechnost_bot.log import add_secret, configure_logging, redact

TOKEN = "123456789:AAHk3bQ-very-secret-token-value_XYZ12"


@pytest.fixture(autouse=True)
def _restore_root_logging() -> Iterator[None]:
    """configure_logging replaces the root handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
        if handler not in handlers:
            handler.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_redact_masks_tokens_url_passwords_and_requirepass() -> None:
    """Bot tokens, URL passwords and requirepass values never survive redaction."""
    text = (
        f"GET https://api.telegram.org/bot{TOKEN}/getMe "
        "redis://:hunter2pass@127.0.0.1:6379/0 requirepass s3cr3tvalue"
    )
    masked = redact(text)
    assert TOKEN not in masked
    assert "hunter2pass" not in masked
    assert "s3cr3tvalue" not in masked
    assert "redis://:***@127.0.0.1:6379/0" in masked


def test_registered_secret_is_masked_anywhere() -> None:
    """A secret added at runtime (a generated Redis password) is masked in free text."""
    add_secret("generated-password-42")
    assert "generated-password-42" not in redact("auth failed for generated-password-42!")


def test_console_format_matches_the_seed(capsys: pytest.CaptureFixture[str]) -> None:
    """Console lines look like '2025-09-23 15:18:20 [info     ] event key=value'."""
    configure_logging("INFO", "console")
    structlog.get_logger("t").info("redis_startup_attempt", attempt=1, max_attempts=3)
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line[19:] == " [info     ] redis_startup_attempt attempt=1 max_attempts=3"


def test_json_format_and_redaction_of_foreign_logs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """JSON lines carry the event; a library's log line with a token is masked too,
    on the console and in the rotating log file."""
    log_file = tmp_path / "logs" / "vechnost.log"
    configure_logging("INFO", "json", log_file)
    structlog.get_logger("t").warning("redis_connection_failed", url="redis://:pw1234@h:1/0")
    logging.getLogger("telegram.ext").error("POST https://api.telegram.org/bot%s/getMe", TOKEN)
    lines = [json.loads(line) for line in capsys.readouterr().err.strip().splitlines()]
    assert lines[0]["event"] == "redis_connection_failed"
    assert lines[0]["level"] == "warning"
    assert lines[0]["url"] == "redis://:***@h:1/0"
    assert TOKEN not in lines[1]["event"]
    for handler in logging.getLogger().handlers:
        handler.flush()
    written = log_file.read_text()
    assert "redis_connection_failed" in written
    assert TOKEN not in written
    assert "pw1234" not in written


def test_console_off_keeps_errors_only(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """With console=False and a log file, the file has every line, the console errors only."""
    log_file = tmp_path / "vechnost.log"
    configure_logging("INFO", "console", log_file, console=False)
    log = structlog.get_logger("t")
    log.info("storage_ready", mode="redis")
    log.error("redis_start_failed", error="boom")
    err = capsys.readouterr().err
    assert "redis_start_failed" in err
    assert "storage_ready" not in err
    for handler in logging.getLogger().handlers:
        handler.flush()
    written = log_file.read_text()
    assert "storage_ready" in written
    assert "redis_start_failed" in written


def test_log_file_is_private(tmp_path: Path) -> None:
    """LOG_FILE is created 0600 (at DEBUG it holds message texts and names); an existing
    0644 one of ours is narrowed to 0600."""
    fresh = tmp_path / "logs" / "bot.log"
    configure_logging("INFO", "json", fresh)
    structlog.get_logger("t").info("hello")
    assert fresh.stat().st_mode & 0o777 == 0o600
    old = tmp_path / "old.log"
    old.write_text("before\n")
    old.chmod(0o644)
    configure_logging("INFO", "json", old)
    structlog.get_logger("t").info("again")
    assert old.stat().st_mode & 0o777 == 0o600
    assert old.read_text().startswith("before\n")


def test_unwritable_log_file_degrades_to_the_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A LOG_FILE that cannot be opened (here: a symlink, never followed; a file in the way
    of its folder) gives one warning line on the console, and logging goes on there."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n")
    link = tmp_path / "link.log"
    link.symlink_to(victim)
    blocked = tmp_path / "file" / "bot.log"
    (tmp_path / "file").write_text("in the way\n")
    for path in (link, blocked):
        configure_logging("INFO", "json", path, console=False)
        structlog.get_logger("t").info("still_logged")
        err = capsys.readouterr().err
        lines = [json.loads(line) for line in err.splitlines()]
        assert [line["event"] for line in lines] == ["log_file_unwritable", "still_logged"]
        assert lines[0]["path"] == str(path)
        assert "LOG_FILE" in lines[0]["fix"]
    assert victim.read_text() == "keep\n"
