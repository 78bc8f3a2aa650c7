"""`vechnost redis start|stop|status|ping` as an operator runs it (real subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import RedisFactory
from tests.support.lifecycle import data_dir, redis_pids_in
from tests.support.redis_server import free_port
from vechnost_bot.redis.process import pid_alive

__all__ = ["data_dir"]


def _env(data_dir: Path, port: int, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("REDIS_", "LOG_", "TELEGRAM_"))
    }
    env.update(REDIS_DATA_DIR=str(data_dir), REDIS_URL=f"redis://127.0.0.1:{port}/0")
    env.update(LOG_FORMAT="json")
    env.update(extra)
    return env


def _vechnost(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vechnost_bot", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_start_status_ping_stop_cycle(data_dir: Path) -> None:
    """start leaves a server running after the command exits; status/ping see it; stop ends it."""
    env = _env(data_dir, free_port())
    started = _vechnost(env, "redis", "start", "--json")
    assert started.returncode == 0, started.stderr
    facts = json.loads(started.stdout)
    assert facts["already_running"] is False
    pid = facts["pid"]
    assert pid_alive(pid)
    assert redis_pids_in(data_dir) == [pid]

    again = _vechnost(env, "redis", "start")
    assert again.returncode == 0
    assert again.stdout.startswith("Redis already running: pid")

    status = _vechnost(env, "redis", "status", "--json")
    assert status.returncode == 0
    data = json.loads(status.stdout)
    assert data["running"] is True
    assert data["source"] == "auto-started"
    assert data["pid"] == pid
    assert data["keys"] == 0
    assert data["data_dir"] == str(data_dir)
    assert data["started_by"] == "cli"
    for key in ("port", "version", "uptime_seconds", "memory_human"):
        assert data[key] is not None, key

    table = _vechnost(env, "redis", "status")
    assert "auto-started" in table.stdout
    password = (data_dir / "redis.password").read_text().strip()
    for output in (started, again, status, table):
        assert password not in output.stdout + output.stderr

    ping = _vechnost(env, "redis", "ping")
    assert ping.returncode == 0
    assert ping.stdout.startswith("PONG from 127.0.0.1:")
    assert " ms" in ping.stdout

    stopped = _vechnost(env, "redis", "stop")
    assert stopped.returncode == 0
    assert f"Redis stopped (pid {pid})" in stopped.stdout
    assert not pid_alive(pid)
    assert (data_dir / "appendonlydir").is_dir()

    assert _vechnost(env, "redis", "stop").stdout.startswith("Redis is not running")
    assert _vechnost(env, "redis", "status", "--json").returncode == 3
    unreachable = _vechnost(env, "redis", "ping")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("vechnost: no Redis answers")


@pytest.mark.parametrize("binary", ["/bin/false", "text"])
def test_start_with_bad_binary_fails_with_one_line(data_dir: Path, binary: str) -> None:
    """REDIS_SERVER_BIN that is not Redis: non-zero exit, one clear line, no traceback."""
    if binary == "text":
        text = data_dir.parent / "server.txt"
        text.write_text("hello\n")
        binary = str(text)
    result = _vechnost(_env(data_dir, free_port(), REDIS_SERVER_BIN=binary), "redis", "start")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"vechnost: {binary} is not a usable Redis server")
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    # The binary is checked before anything is written for it.
    assert not (data_dir / "redis.conf").exists()
    assert not (data_dir / "redis.password").exists()


def test_failed_start_with_json_prints_a_json_error(data_dir: Path) -> None:
    """`redis start --json` that fails: exit 1 and {"ok": false, "error": ...} on stdout."""
    env = _env(data_dir, free_port(), REDIS_SERVER_BIN="/bin/false")
    result = _vechnost(env, "redis", "start", "--json")
    assert result.returncode == 1
    answer = json.loads(result.stdout)
    assert answer["ok"] is False
    assert answer["action"] == "start"
    assert "/bin/false is not a usable Redis server" in answer["error"]


def test_start_with_rejected_url_password_fails(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """REDIS_URL's password is refused by the server there: exit 1, one line, nothing started."""
    foreign = redis_factory(password="right")
    env = _env(data_dir, foreign.port)
    env["REDIS_URL"] = f"redis://:wrongpw@127.0.0.1:{foreign.port}/0"
    result = _vechnost(env, "redis", "start")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"vechnost: the Redis at 127.0.0.1:{foreign.port} rejected the password in REDIS_URL; "
        "fix the password"
    ]
    assert result.stdout == ""
    as_json = _vechnost(env, "redis", "start", "--json")
    assert as_json.returncode == 1
    answer = json.loads(as_json.stdout)
    assert answer["ok"] is False
    assert "rejected the password in REDIS_URL" in answer["error"]
    for output in (result, as_json):
        assert "wrongpw" not in output.stdout + output.stderr
    assert redis_pids_in(data_dir) == []
    assert foreign.client().ping()


def test_start_twice_through_symlink_gives_one_server(data_dir: Path, tmp_path: Path) -> None:
    """REDIS_DATA_DIR through a symlink: the second start adopts; status and stop find it."""
    data_dir.mkdir()
    link = tmp_path / "link"
    link.symlink_to(data_dir)
    env = _env(link, free_port())
    first = json.loads(_vechnost(env, "redis", "start", "--json").stdout)
    second = json.loads(_vechnost(env, "redis", "start", "--json").stdout)
    assert first["already_running"] is False
    assert second["already_running"] is True
    assert second["pid"] == first["pid"]
    assert first["data_dir"] == str(data_dir)
    assert redis_pids_in(data_dir) == [first["pid"]]
    real = _env(data_dir, free_port())
    status = json.loads(_vechnost(real, "redis", "status", "--json").stdout)
    assert status["pid"] == first["pid"]
    stopped = _vechnost(env, "redis", "stop")
    assert f"Redis stopped (pid {first['pid']})" in stopped.stdout
    assert not pid_alive(first["pid"])


def test_stop_of_hung_server_stops_it_and_says_how(data_dir: Path) -> None:
    """A SIGSTOPped server: `redis stop` ends it (SIGTERM or SIGKILL) and says so."""
    # A short interval shortens the PING timeouts that tell a hang (0.5 s instead of 1 s).
    env = _env(data_dir, free_port(), REDIS_HEALTH_CHECK_INTERVAL="0.2")
    pid = json.loads(_vechnost(env, "redis", "start", "--json").stdout)["pid"]
    os.kill(pid, signal.SIGSTOP)
    result = _vechnost(env, "redis", "stop", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["stopped"] is True
    assert answer["pid"] == pid
    assert answer["answered"] is False
    assert answer["how"] in {"sigterm", "sigkill"}
    assert not pid_alive(pid)
    assert not (data_dir / "redis.pid").exists()


def test_start_on_hung_server_reports_what_it_did(data_dir: Path) -> None:
    """A SIGSTOPped server of ours: `redis start` says so, stops it, starts on its port."""
    # A short interval shortens the PING timeouts that tell a hang (0.5 s instead of 1 s).
    env = _env(data_dir, free_port(), REDIS_HEALTH_CHECK_INTERVAL="0.2")
    first = json.loads(_vechnost(env, "redis", "start", "--json").stdout)
    os.kill(first["pid"], signal.SIGSTOP)
    result = _vechnost(env, "redis", "start")
    assert result.returncode == 0, result.stderr
    assert f"Redis pid {first['pid']} in {data_dir} did not answer PING (hung)" in result.stderr
    assert "SIGTERM after no answer" in result.stderr or "SIGKILL after no answer" in result.stderr
    assert result.stdout.startswith("Redis started: pid")
    assert f"127.0.0.1:{first['port']}," in result.stdout
    assert not pid_alive(first["pid"])
    (pid,) = redis_pids_in(data_dir)
    assert pid != first["pid"]
    assert _vechnost(env, "redis", "stop").returncode == 0


def test_start_with_unwritable_data_dir_fails(tmp_path: Path) -> None:
    """A data dir under a regular file: exit 1 with a message naming REDIS_DATA_DIR."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _vechnost(_env(blocker / "data", free_port()), "redis", "start")
    assert result.returncode == 1
    assert "REDIS_DATA_DIR" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("url", ["redis://localhost:99999/0", "mysql://localhost/0"])
def test_bad_redis_url_is_exit_2(data_dir: Path, url: str) -> None:
    """A malformed REDIS_URL or a port out of range: exit 2, the variable named, no traceback."""
    env = _env(data_dir, free_port())
    env["REDIS_URL"] = url
    result = _vechnost(env, "redis", "status")
    assert result.returncode == 2
    assert result.stderr.startswith("vechnost: invalid setting REDIS_URL")
    assert "Traceback" not in result.stderr


def test_bot_adopts_cli_server_and_leaves_it_running(data_dir: Path) -> None:
    """A server from `vechnost redis start` is adopted by the bot and not stopped by it."""
    port = free_port()
    env = _env(data_dir, port)
    started = json.loads(_vechnost(env, "redis", "start", "--json").stdout)
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from vechnost_bot.config import Settings\n"
        "from vechnost_bot.redis import RedisAutoStartManager\n"
        "async def main():\n"
        "    s = Settings(redis_url=sys.argv[1], redis_data_dir=Path(sys.argv[2]))\n"
        "    m = RedisAutoStartManager(s)\n"
        "    assert await m.initialize()\n"
        "    print(m.source)\n"
        "    await m.stop()\n"
        "asyncio.run(main())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, env["REDIS_URL"], str(data_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "adopted" in result.stdout
    assert pid_alive(started["pid"])
    assert _vechnost(env, "redis", "stop").returncode == 0


def test_start_notes_that_the_bot_uses_an_answering_redis_url(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """REDIS_URL already answers: start still starts the data-dir server when asked, but
    says that the bot will use the one at REDIS_URL; stop ends ours, not that one."""
    external = redis_factory()
    env = _env(data_dir, external.port)
    started = _vechnost(env, "redis", "start")
    try:
        assert started.returncode == 0, started.stderr
        assert f"a Redis already answers at REDIS_URL (127.0.0.1:{external.port})" in (
            started.stderr
        )
        facts = json.loads(_vechnost(env, "redis", "start", "--json").stdout)
        assert facts["bot_uses_external"] is True
        assert facts["already_running"] is True
        assert facts["port"] != external.port
    finally:
        assert _vechnost(env, "redis", "stop").returncode == 0
    assert redis_pids_in(data_dir) == []
    assert external.client().ping()


def test_start_notes_that_the_bot_waits_for_an_external_url(data_dir: Path) -> None:
    """REDIS_URL names an external server (it has a password) that is down: `redis start`
    starts the data-dir server asked for, and says the bot will wait for that one instead."""
    their_port = free_port()
    env = _env(data_dir, their_port, REDIS_URL=f"redis://:theirs@127.0.0.1:{their_port}/0")
    started = _vechnost(env, "redis", "start")
    try:
        assert started.returncode == 0, started.stderr
        assert "the bot waits for that server and does not use this one" in started.stderr
        again = _vechnost(env, "redis", "start", "--json")
        facts = json.loads(again.stdout)
        assert facts["bot_waits_for_external"] is True, again
        assert facts["bot_uses_external"] is False
        assert facts["port"] != their_port  # never the external server's port
    finally:
        assert _vechnost(env, "redis", "stop").returncode == 0
    assert redis_pids_in(data_dir) == []
