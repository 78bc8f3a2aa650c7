"""`vechnost doctor`: each check's verdict and the exit code."""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path

import pytest

from tests.conftest import RedisFactory
from tests.support.lifecycle import data_dir, settings_for
from vechnost_bot import doctor
from vechnost_bot.doctor import Check, run_checks
from vechnost_bot.redis.manager import RedisManager

__all__ = ["data_dir"]


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


async def test_healthy_setup_has_no_failures(data_dir: Path) -> None:
    """Binary present, port free, data dir creatable: no FAIL; the token is only a WARN."""
    checks = _by_name(await run_checks(settings_for(data_dir, telegram_bot_token=None)))
    assert checks["redis binary"].level == "OK"
    assert "redis-server" in checks["redis binary"].detail
    assert checks["port"].level == "OK"
    assert checks["data dir"].level == "OK"
    assert "will be created" in checks["data dir"].detail
    assert checks["redis"].level == "OK"
    assert checks["configuration"].level == "WARN"
    assert not data_dir.exists()  # doctor changes nothing


def test_command_prints_report_and_exit_code(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The report has one line per check, fixes under them, and exit 0 when nothing FAILs."""
    code = doctor.command(settings_for(data_dir), argparse.Namespace())
    out = capsys.readouterr().out
    assert code == 0
    assert "OK    redis binary" in out
    assert "6 checks: 0 failed" in out  # the last one: Telegram, not checked without a token


def test_bad_binary_and_data_dir_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """REDIS_SERVER_BIN=/bin/false and a data dir under a file: two FAILs with fixes, exit 1."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    settings = settings_for(blocker / "data", redis_server_bin=Path("/bin/false"))
    code = doctor.command(settings, argparse.Namespace())
    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL  redis binary" in out
    assert "fix: fix or unset REDIS_SERVER_BIN" in out
    assert "FAIL  data dir" in out
    assert "REDIS_DATA_DIR" in out


async def test_group_writable_data_dir_fails(data_dir: Path) -> None:
    """A data dir that group or others can write is a FAIL (the bot refuses it and runs
    from memory) whose fix is `chmod go-w`; a readable 0755 one of ours is OK."""
    data_dir.mkdir()
    data_dir.chmod(0o775)
    checks = _by_name(await run_checks(settings_for(data_dir)))
    assert checks["data dir"].level == "FAIL"
    assert checks["data dir"].fix is not None
    assert "chmod go-w" in checks["data dir"].fix
    data_dir.chmod(0o755)
    checks = _by_name(await run_checks(settings_for(data_dir)))
    assert checks["data dir"].level == "OK"


async def test_port_owned_by_foreign_redis_warns(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """A password-protected Redis on the REDIS_URL port: WARN, left alone, free port used."""
    foreign = redis_factory(password="theirs")
    checks = _by_name(await run_checks(settings_for(data_dir, port=foreign.port)))
    assert checks["port"].level == "WARN"
    assert "left alone" in checks["port"].detail


async def test_wrong_password_in_url_fails(data_dir: Path, redis_factory: RedisFactory) -> None:
    """REDIS_URL carries a password the server rejects: the reachability check FAILs."""
    server = redis_factory(password="right")
    url = f"redis://:wrong@127.0.0.1:{server.port}/0"
    checks = _by_name(await run_checks(settings_for(data_dir, redis_url=url)))
    assert checks["redis"].level == "FAIL"
    assert "wrong" not in checks["redis"].detail
    assert "fix the password" in (checks["redis"].fix or "")


async def test_running_servers_are_reported(data_dir: Path, redis_factory: RedisFactory) -> None:
    """An answering REDIS_URL, or our own server in the data dir, is reported OK."""
    external = redis_factory(password="ext")
    checks = _by_name(await run_checks(settings_for(data_dir, redis_url=external.url)))
    assert checks["redis"].level == "OK"
    assert "REDIS_URL answers PING" in checks["redis"].detail
    settings = settings_for(data_dir)
    async with RedisManager(settings):
        checks = _by_name(await run_checks(settings))
    assert checks["redis"].level == "OK"
    assert "adopt it" in checks["redis"].detail
    assert checks["port"].level == "OK"


async def test_memory_mode_without_auto_start_warns(data_dir: Path) -> None:
    """Nothing answers and REDIS_AUTO_START=false: WARN that the bot runs from memory."""
    checks = _by_name(await run_checks(settings_for(data_dir, redis_auto_start=False)))
    assert checks["redis"].level == "WARN"
    assert "memory" in checks["redis"].detail


@pytest.mark.parametrize("value", ["256mb", "1GB"])
async def test_max_memory_sizes_pass(data_dir: Path, value: str) -> None:
    """A valid REDIS_MAX_MEMORY passes the configuration check (WARN only for the token);
    a bad one never reaches doctor: the settings refuse it (test_config)."""
    settings = settings_for(data_dir, redis_max_memory=value, telegram_bot_token=None)
    checks = _by_name(await run_checks(settings))
    assert checks["configuration"].level == "WARN"


async def test_rejected_url_password_fails_even_with_our_server_running(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """REDIS_URL's password is refused: FAIL (the bot goes to memory), not "will adopt it"."""
    foreign = redis_factory(password="right")
    url = f"redis://:wrongpw@127.0.0.1:{foreign.port}/0"
    async with RedisManager(settings_for(data_dir)):
        checks = _by_name(await run_checks(settings_for(data_dir, redis_url=url)))
    assert checks["redis"].level == "FAIL"
    assert "rejected the password in REDIS_URL" in checks["redis"].detail
    assert "memory" in checks["redis"].detail
    assert checks["redis"].fix == "fix the password in REDIS_URL"
    assert checks["port"].level == "WARN"
    assert "rejected the password in REDIS_URL" in checks["port"].detail
    assert "put its password" not in (checks["port"].fix or "")
    for check in checks.values():
        assert "wrongpw" not in check.detail + (check.fix or "")


async def test_hung_own_server_is_named_with_what_to_do(data_dir: Path) -> None:
    """Our server SIGSTOPped on the REDIS_URL port: its pid, "hung", and `vechnost redis stop`."""
    settings = settings_for(data_dir)
    async with RedisManager(settings) as manager:
        pid = manager.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            checks = _by_name(await run_checks(settings))
        finally:
            os.kill(pid, signal.SIGCONT)
    for name in ("port", "redis"):
        assert checks[name].level == "WARN", name
        assert f"pid {pid}" in checks[name].detail, name
        assert "hung" in checks[name].detail, name
        assert "vechnost redis stop" in (checks[name].fix or ""), name
    assert "another program" not in checks["port"].detail
    assert "no Redis runs now" not in checks["redis"].detail
