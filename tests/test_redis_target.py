"""REDIS_URL end to end: a unix socket server is adopted as external, never doubled; the
data dir from `~` holds Redis's files and the journal in one place."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tests.conftest import RedisFactory
from tests.support.lifecycle import data_dir, redis_pids_in, settings_for
from vechnost_bot.config import load_settings
from vechnost_bot.doctor import run_checks
from vechnost_bot.redis import RedisAutoStartManager
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.commands import command as redis_command
from vechnost_bot.redis.manager import RedisManager

__all__ = ["data_dir"]


async def test_unix_socket_server_is_used_and_no_rival_started(
    data_dir: Path, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    """A real redis-server answering on a unix socket named by REDIS_URL is used (source
    external, writes land in it); no second Redis is started in the data dir."""
    socket = tmp_path / "redis.sock"
    server = redis_factory(
        password="sock-pass", extra_args=("--unixsocket", str(socket), "--unixsocketperm", "700")
    )
    url = f"unix://:sock-pass@{socket}?db=0"
    manager = RedisAutoStartManager(settings_for(data_dir, redis_url=url))
    await manager.start()
    try:
        assert manager.state == "running"
        assert manager.source == "external"
        endpoint = manager.endpoint
        assert endpoint is not None
        assert endpoint.socket_path == str(socket)
        assert manager.status()["socket"] == str(socket)
        assert manager.status()["pid"] == server.pid
        client = make_client(endpoint)
        try:
            await client.set("through-the-socket", "1")
        finally:
            await client.aclose()
        assert server.client().get("through-the-socket") == b"1"
        assert redis_pids_in(data_dir) == []
    finally:
        await manager.stop()
    assert server.client().ping()


async def test_unix_socket_down_at_start_is_memory_mode_not_a_rival(
    data_dir: Path, tmp_path: Path
) -> None:
    """A unix socket REDIS_URL with nothing behind it: memory mode (state down), and no
    TCP server of ours is started in its place."""
    url = f"unix://{tmp_path / 'missing.sock'}"
    manager = RedisAutoStartManager(settings_for(data_dir, redis_url=url))
    await manager.start()
    try:
        assert manager.state == "down"
        assert manager.source == "external"
        assert redis_pids_in(data_dir) == []
    finally:
        await manager.stop()


def test_redis_ping_and_status_over_a_unix_socket(
    data_dir: Path,
    redis_factory: RedisFactory,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`vechnost redis ping|status --json` reach the socket server REDIS_URL names."""
    socket = tmp_path / "cli.sock"
    server = redis_factory(password="pw-cli", extra_args=("--unixsocket", str(socket)))
    settings = settings_for(data_dir, redis_url=f"unix://:pw-cli@{socket}")
    assert redis_command(settings, argparse.Namespace(action="ping", json=True)) == 0
    ping = json.loads(capsys.readouterr().out)
    assert (ping["pong"], ping["socket"], ping["source"]) == (True, str(socket), "external")
    assert redis_command(settings, argparse.Namespace(action="status", json=True)) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["pid"], status["socket"]) == (server.pid, str(socket))


async def test_doctor_over_a_unix_socket(
    data_dir: Path, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    """doctor probes the socket with the one probe: OK, the bot will use it."""
    socket = tmp_path / "doc.sock"
    redis_factory(password="pw-doc", extra_args=("--unixsocket", str(socket)))
    checks = {
        check.name: check
        for check in await run_checks(settings_for(data_dir, redis_url=f"unix://:pw-doc@{socket}"))
    }
    assert checks["redis"].level == "OK"
    assert "will use it" in checks["redis"].detail
    assert checks["port"].level == "OK"


async def test_home_relative_data_dir_holds_redis_files_and_journal(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """REDIS_DATA_DIR=~/… (issue 8): the auto-started server's files and the storage's journal
    end up in the same resolved folder, not in a literal `~` under the working dir."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("REDIS_DATA_DIR", "~/bot-data")
    monkeypatch.setenv("REDIS_URL", settings_for(tmp_path).redis_url)
    settings = load_settings(_env_file=None)
    async with RedisManager(settings) as manager:
        assert manager.data_dir == home / "bot-data"
        assert (home / "bot-data" / "redis.conf").is_file()
    assert settings.data_dir.journal.parent == home / "bot-data"
    assert not (tmp_path / "~").exists()
