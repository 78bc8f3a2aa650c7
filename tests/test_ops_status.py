"""``vechnost status`` against a real HealthServer on a loopback port."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.redis_server import free_port
from vechnost_bot.config import Settings
from vechnost_bot.ops import HealthServer
from vechnost_bot.ops.status import command, exit_code_for, status_url

PASSWORD = "planted-pass-5c4b3a2"


def _snapshot(mode: str = "redis") -> dict[str, object]:
    return {
        "status": "ok" if mode == "redis" else "degraded",
        "version": "0.1.0",
        "uptime_seconds": 3725,
        "pid": 4242,
        "bot": {"polling": True, "updates_handled": 7, "username": "vechnost_test_bot"},
        "storage": {"mode": mode, "failovers": 2, "failbacks": 1, "journal_size": 5},
        "redis": {
            "state": "running" if mode == "redis" else "unavailable",
            "source": "auto-started",
            "pid": 31337,
            "port": 6390,
            "version": "7.2.4",
            "uptime_seconds": 61,
            "restarts": 3,
            "url": f"redis://:{PASSWORD}@127.0.0.1:6390/0",
            "password": PASSWORD,
        },
    }


class _Box:
    snapshot: Mapping[str, object] = _snapshot()


@pytest.fixture
async def running() -> AsyncIterator[tuple[HealthServer, _Box]]:
    """A HealthServer serving a mutable snapshot."""
    box = _Box()
    async with HealthServer("127.0.0.1", 0, lambda: box.snapshot, lambda: True) as server:
        yield server, box


def _settings(port: int, host: str = "127.0.0.1") -> Settings:
    return Settings(health_host=host, health_port=port, _env_file=None)  # type: ignore[call-arg]


async def _run(port: int, *, as_json: bool) -> int:
    # The command is a blocking CLI; run it off the loop that serves the endpoint.
    return await asyncio.to_thread(
        command, _settings(port), argparse.Namespace(json=as_json, command="status")
    )


async def test_healthy_table(
    running: tuple[HealthServer, _Box], capsys: pytest.CaptureFixture[str]
) -> None:
    """Redis mode: exit 0 and a table with the storage and Redis facts."""
    server, _ = running
    assert await _run(server.port, as_json=False) == 0
    out = capsys.readouterr().out
    for fact in ("storage mode", "redis", "auto-started", "31337", "6390", "7.2.4", "1h 2m 5s"):
        assert fact in out
    assert "journal size" in out
    assert "updates handled" in out
    assert PASSWORD not in out


async def test_healthy_json(
    running: tuple[HealthServer, _Box], capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints the snapshot as JSON, masked, and exits 0."""
    server, _ = running
    assert await _run(server.port, as_json=True) == 0
    out = capsys.readouterr().out
    data = json.loads(out)
    assert data["storage"]["mode"] == "redis"
    assert data["redis"]["source"] == "auto-started"
    assert data["redis"]["password"] == "***"
    assert PASSWORD not in out


async def test_memory_mode_is_degraded(
    running: tuple[HealthServer, _Box], capsys: pytest.CaptureFixture[str]
) -> None:
    """Memory mode exits 1 and says degraded, in both outputs."""
    server, box = running
    box.snapshot = _snapshot("memory")
    assert await _run(server.port, as_json=False) == 1
    assert "degraded" in capsys.readouterr().out
    assert await _run(server.port, as_json=True) == 1
    assert json.loads(capsys.readouterr().out)["storage"]["mode"] == "memory"


async def test_starting_is_not_healthy(running: tuple[HealthServer, _Box]) -> None:
    """A bot still starting is not healthy yet (exit 1)."""
    server, box = running
    box.snapshot = {**_snapshot(), "status": "starting"}
    assert await _run(server.port, as_json=True) == 1


async def test_not_running(capsys: pytest.CaptureFixture[str]) -> None:
    """Nothing on the port: exit 3 and a message saying how to start it."""
    port = free_port()
    assert await _run(port, as_json=False) == 3
    err = capsys.readouterr().err
    assert "not running" in err
    assert "deploy.sh" in err
    assert await _run(port, as_json=True) == 3
    assert json.loads(capsys.readouterr().out)["status"] == "not_running"


def test_status_url_reaches_wildcard_binds_on_loopback() -> None:
    """HEALTH_HOST=0.0.0.0 (containers) is read through 127.0.0.1; IPv6 is bracketed."""
    assert status_url(_settings(8080, "0.0.0.0")) == "http://127.0.0.1:8080/status"
    assert status_url(_settings(8080, "::1")) == "http://[::1]:8080/status"


def test_exit_code_rules() -> None:
    """0 only for status ok on Redis; anything else is 1."""
    assert exit_code_for(_snapshot()) == 0
    assert exit_code_for(_snapshot("memory")) == 1
    assert exit_code_for({}) == 1


def test_cli_dispatch_not_running(tmp_path: Path) -> None:
    """`vechnost status --json` as a real process: exit 3 when nothing runs."""
    env = {
        **os.environ,
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_PORT": str(free_port()),
        "REDIS_DATA_DIR": str(tmp_path),
    }
    env.pop("LOG_FILE", None)
    done = subprocess.run(
        [sys.executable, "-m", "vechnost_bot", "status", "--json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout)["status"] == "not_running"


async def test_snapshot_error_is_degraded(
    running: tuple[HealthServer, _Box], capsys: pytest.CaptureFixture[str]
) -> None:
    """A bot whose /status fails (500) is running but not healthy: exit 1."""
    server, _ = running

    def broken() -> Mapping[str, object]:
        raise RuntimeError("boom")

    server._snapshot = broken
    assert await _run(server.port, as_json=False) == 1
    assert "error" in capsys.readouterr().out


async def test_foreign_server_is_not_vechnost(capsys: pytest.CaptureFixture[str]) -> None:
    """Another program on the health port (404, not our JSON) counts as not running."""
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        assert await _run(port, as_json=False) == 3
        assert "404" in capsys.readouterr().err
    finally:
        await runner.cleanup()


def test_exit_codes_and_verdict_are_defined_once() -> None:
    """`vechnost status`, `vechnost redis status` and /readyz read one set of exit codes and
    one verdict, from ops.snapshot."""
    from vechnost_bot.ops import snapshot, status
    from vechnost_bot.redis import commands

    assert (status.EXIT_HEALTHY, status.EXIT_DEGRADED, status.EXIT_NOT_RUNNING) == (0, 1, 3)
    assert status.exit_code_for is snapshot.exit_code_for
    assert commands.EXIT_NOT_RUNNING is snapshot.EXIT_NOT_RUNNING
    assert snapshot.exit_code_for({"status": "ok", "storage": {"mode": "redis"}}) == 0
    assert snapshot.exit_code_for({"status": "ok", "storage": {"mode": "memory"}}) == 1
    assert snapshot.exit_code_for({"status": "starting"}) == 1
    assert set(snapshot.Snapshot.__annotations__) >= {"telegram", "redis", "storage", "bot"}
