"""deploy.sh for real, against the fake Bot API server.

auto → status → logs → restart → stop: the bot auto-starts a real redis-server on a
free port with a temporary data dir. redis: a stand-in ``docker`` on PATH runs a real
redis-server for ``compose up -d redis`` (no Docker engine here), and the bot must use
it as an external Redis. The run dir is a temporary VECHNOST_RUN_DIR; the
repository's .venv is used as it is: deploy.sh must not reinstall it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.env import bot_env
from tests.support.fake_bot_api import DEFAULT_TOKEN
from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[1]
DEPLOY_SH = ROOT / "deploy.sh"

pytestmark = pytest.mark.slow


def _wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return True
    return state != "Z"


def _pid(pid_file: Path) -> int:
    """The pid in deploy.sh's pid file (its first line; the second is the start time)."""
    return int(pid_file.read_text().splitlines()[0])


def _kill(pid: int) -> None:
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _fake_api_process(*extra: str) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.fake_bot_api", "--port", str(port), *extra],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_port(port)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


@pytest.fixture
def fake_api() -> Iterator[int]:
    """The fake Telegram Bot API as its own process on a free loopback port."""
    with _fake_api_process() as port:
        yield port


def _bot_env(tmp_path: Path, api_port: int, **extra: str) -> dict[str, str]:
    settings = {
        "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
        "HEALTH_HOST": "127.0.0.1",
        "HEALTH_PORT": str(free_port()),
        "REDIS_DATA_DIR": str(tmp_path / "data"),
        "VECHNOST_RUN_DIR": str(tmp_path / "run"),
        "VECHNOST_READY_TIMEOUT": "45",
        "VECHNOST_STOP_TIMEOUT": "20",
    }
    return bot_env(f"http://127.0.0.1:{api_port}/bot", **{**settings, **extra})


def _say_start(api_port: int, chat_id: int) -> None:
    user = {"id": chat_id, "is_bot": False, "first_name": "Player", "language_code": "en"}
    update = {
        "message": {
            "message_id": 1,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Player"},
            "from": user,
            "text": "/start",
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        }
    }
    request = urllib.request.Request(
        f"http://127.0.0.1:{api_port}/_control/updates",
        data=json.dumps(update).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310 (loopback http)
        pass


def _wait_reply(api_port: int, chat_id: int, timeout: float = 15.0) -> None:
    """Wait until the bot answered in ``chat_id`` (it polled, handled and stored)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        url = f"http://127.0.0.1:{api_port}/_control/calls"
        with urllib.request.urlopen(url, timeout=5) as response:
            calls = json.loads(response.read())
        for call in calls:
            if call["method"].startswith("send") and str(call["params"].get("chat_id")) == str(
                chat_id
            ):
                return
        time.sleep(0.1)
    raise AssertionError(f"the bot never answered /start in chat {chat_id}")


def _run(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DEPLOY_SH), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _status_json(text: str) -> dict[str, object]:
    """deploy.sh status --json prints only JSON on stdout (its own lines go to stderr)."""
    data = json.loads(text)
    assert isinstance(data, dict)
    return data


def test_deploy_auto_status_logs_stop(tmp_path: Path, fake_api: int) -> None:
    """The operator's whole loop works on this machine, with nothing reinstalled or left behind."""
    health_port = free_port()
    redis_port = free_port()
    run_dir = tmp_path / "run"
    data_dir = tmp_path / "data"
    env = _bot_env(
        tmp_path,
        fake_api,
        HEALTH_PORT=str(health_port),
        REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
        REDIS_DATA_DIR=str(data_dir),
        VECHNOST_RUN_DIR=str(run_dir),
    )
    bot_pid = redis_pid = first_redis_pid = 0
    try:
        deployed = _run(env, "auto")
        pid_file = run_dir / "vechnost.pid"
        if pid_file.exists():
            bot_pid = _pid(pid_file)
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "installing" not in deployed.stdout, "deploy.sh reinstalled an up-to-date .venv"
        assert "ready: storage redis" in deployed.stdout
        assert "storage mode" in deployed.stdout
        assert bot_pid > 0
        assert _alive(bot_pid)

        _say_start(fake_api, chat_id=4242)
        _wait_reply(fake_api, chat_id=4242)

        status = _run(env, "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        snapshot = _status_json(status.stdout)
        storage, redis, bot = snapshot["storage"], snapshot["redis"], snapshot["bot"]
        assert isinstance(storage, dict)
        assert isinstance(redis, dict)
        assert isinstance(bot, dict)
        assert storage["mode"] == "redis"
        assert redis["source"] == "auto-started"
        assert redis["port"] == redis_port
        assert bot["polling"] is True
        assert int(bot["updates_handled"]) >= 1
        redis_pid = int(redis["pid"])
        assert DEFAULT_TOKEN not in status.stdout

        again = _run(env, "auto")
        assert again.returncode == 1
        assert "already runs" in again.stderr

        logs = _run(env, "logs", "-n", "500")
        assert logs.returncode == 0, logs.stderr
        assert "initializing_redis_auto_start" in logs.stdout
        assert DEFAULT_TOKEN not in logs.stdout
        assert (data_dir / "vechnost.log").is_file()

        restarted = _run(env, "restart")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        old_pid, bot_pid = bot_pid, _pid(pid_file)
        first_redis_pid = redis_pid
        assert bot_pid != old_pid
        assert not _alive(old_pid)
        assert "ready: storage redis" in restarted.stdout
        snapshot = _status_json(_run(env, "status", "--json").stdout)
        redis = snapshot["redis"]
        assert isinstance(redis, dict)
        redis_pid = int(redis["pid"])
        assert redis_pid != first_redis_pid
        assert not _alive(first_redis_pid), "stop left the first redis-server running"

        stopped = _run(env, "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "stopped" in stopped.stdout
        assert not _alive(bot_pid)
        deadline = time.monotonic() + 10
        while _alive(redis_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _alive(redis_pid), "the auto-started redis-server outlived the bot"
        assert not pid_file.exists()

        after = _run(env, "status")
        assert after.returncode == 3
    finally:
        for pid in (bot_pid, redis_pid, first_redis_pid):
            if pid:
                _kill(pid)


# A stand-in for the docker CLI: `compose ... up -d redis` starts a real redis-server
# with the password and port deploy.sh passes to Compose; `inspect` says healthy.
_FAKE_DOCKER = """#!/bin/sh
set -e
case "$*" in
  "compose version"|"info") exit 0 ;;
  *"up -d redis")
    echo "$*" >> "$FAKE_DOCKER_DIR/calls"
    exec redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --requirepass "$REDIS_PASSWORD" \\
      --daemonize yes --pidfile "$FAKE_DOCKER_DIR/redis.pid" --dir "$FAKE_DOCKER_DIR" \\
      --save "" --appendonly no --logfile "$FAKE_DOCKER_DIR/redis.log" ;;
  inspect*) echo healthy ;;
  *" ps redis") echo "vechnost-redis   running (healthy)" ;;
  *) echo "fake docker: unexpected: $*" >&2; exit 1 ;;
esac
"""


def test_deploy_redis_mode_uses_the_compose_redis(tmp_path: Path, fake_api: int) -> None:
    """./deploy.sh redis starts the compose redis service and runs the bot against it."""
    fake_dir = tmp_path / "docker"
    fake_dir.mkdir()
    docker = fake_dir / "docker"
    docker.write_text(_FAKE_DOCKER)
    docker.chmod(0o755)
    redis_port = free_port()
    env = _bot_env(tmp_path, fake_api)
    env.update(
        PATH=f"{fake_dir}{os.pathsep}{env['PATH']}",
        FAKE_DOCKER_DIR=str(fake_dir),
        REDIS_PORT=str(redis_port),
    )
    run_dir = Path(env["VECHNOST_RUN_DIR"])
    bot_pid = redis_pid = 0
    try:
        deployed = _run(env, "redis")
        if (fake_dir / "redis.pid").exists():
            redis_pid = int((fake_dir / "redis.pid").read_text().strip())
        if (run_dir / "vechnost.pid").exists():
            bot_pid = _pid(run_dir / "vechnost.pid")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        assert "--profile redis-external up -d redis" in (fake_dir / "calls").read_text()
        password_file = run_dir / "redis-password"
        assert password_file.stat().st_mode & 0o777 == 0o600
        password = password_file.read_text().strip()
        assert password not in deployed.stdout + deployed.stderr

        status = _run(env, "status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        assert password not in status.stdout
        snapshot = _status_json(status.stdout)
        storage, redis = snapshot["storage"], snapshot["redis"]
        assert isinstance(storage, dict)
        assert isinstance(redis, dict)
        assert storage["mode"] == "redis"
        assert redis["source"] == "external"
        assert redis["port"] == redis_port

        stopped = _run(env, "stop")
        assert stopped.returncode == 0
        assert "keeps running" in stopped.stdout
        assert not _alive(bot_pid)
        assert _alive(redis_pid), "stop must leave the external Redis alone"
    finally:
        for pid in (bot_pid, redis_pid):
            if pid:
                _kill(pid)


def test_deploy_auto_reports_a_bot_that_dies_at_startup(tmp_path: Path) -> None:
    """A token Telegram rejects: deploy.sh says the bot exited and prints the log tail."""
    with _fake_api_process("--bad-token", DEFAULT_TOKEN) as api_port:
        env = _bot_env(tmp_path, api_port)
        env["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
        deployed = _run(env, "auto")
    assert deployed.returncode == 1
    assert "vechnost exited during startup" in deployed.stderr
    assert "--- last lines of" in deployed.stderr
    assert "Telegram rejected TELEGRAM_BOT_TOKEN" in deployed.stderr
    assert DEFAULT_TOKEN not in deployed.stderr
    assert not (Path(env["VECHNOST_RUN_DIR"]) / "vechnost.pid").exists()


def test_restart_checks_before_it_stops_and_keeps_the_settings(
    tmp_path: Path, fake_api: int
) -> None:
    """restart from a shell without the token or REDIS_DATA_DIR brings the same bot back on
    the same data dir (run/env); a restart that could not start leaves the bot running."""
    env = _bot_env(tmp_path, fake_api, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    run_dir = Path(env["VECHNOST_RUN_DIR"])
    pid_file = run_dir / "vechnost.pid"
    pids: list[int] = []
    try:
        deployed = _run(env, "auto")
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        pids.append(_pid(pid_file))
        assert (run_dir / "env").stat().st_mode & 0o777 == 0o600
        bare = {
            key: value
            for key, value in env.items()
            if key not in {"TELEGRAM_BOT_TOKEN", "REDIS_DATA_DIR", "REDIS_URL"}
        }

        broken = _run({**bare, "HEALTH_PORT": "not-a-port"}, "restart")
        assert broken.returncode == 2, broken.stdout + broken.stderr
        assert "HEALTH_PORT" in broken.stderr
        assert _alive(pids[0]), "a restart that cannot start stopped the running bot"

        restarted = _run(bare, "restart")
        assert restarted.returncode == 0, restarted.stdout + restarted.stderr
        pids.append(_pid(pid_file))
        assert pids[1] != pids[0]
        assert not _alive(pids[0])
        status = _status_json(_run(bare, "status", "--json").stdout)
        redis = status["redis"]
        assert isinstance(redis, dict)
        assert Path(str(redis["data_dir"])).resolve() == Path(env["REDIS_DATA_DIR"]).resolve()

        # An older deploy without run/env, and no token in this shell: nothing is stopped.
        (run_dir / "env").unlink()
        refused = _run(bare, "restart")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "TELEGRAM_BOT_TOKEN is not set" in refused.stderr
        assert _alive(pids[1])
        assert _run(bare, "status").returncode == 0
    finally:
        _run(env, "stop")
        for pid in pids:
            _kill(pid)


def test_stale_pid_file_never_signals_a_bystander(tmp_path: Path) -> None:
    """A pid file naming another live process, even one whose command line says
    'vechnost', is stale: stop and status leave that process alone."""
    bystander = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "vechnost", "run"],
        start_new_session=True,
    )
    try:
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        for content in (f"{bystander.pid}\n", f"{bystander.pid}\n12345\n"):
            (run_dir / "vechnost.pid").write_text(content)
            env = _bot_env(tmp_path, free_port())
            stopped = _run(env, "stop")
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr
            assert "not running" in stopped.stdout
            assert bystander.poll() is None, "deploy.sh signalled a process that is not its bot"
            assert _run(env, "status").returncode == 3
    finally:
        bystander.kill()
        bystander.wait(5)


def test_failed_start_shows_this_runs_error_first(tmp_path: Path) -> None:
    """An older run's traceback in the log file is not what a failed start shows: this
    start's own error comes first, the old lines not at all."""
    with _fake_api_process("--bad-token", DEFAULT_TOKEN) as api_port:
        env = _bot_env(tmp_path, api_port, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
        log = Path(env["REDIS_DATA_DIR"]) / "vechnost.log"
        log.parent.mkdir(parents=True)
        log.write_text("Traceback (most recent call last):\n  OldRunError: from yesterday\n")
        deployed = _run(env, "auto")
    assert deployed.returncode == 1
    assert "OldRunError" not in deployed.stderr
    first_error = deployed.stderr.index("Telegram rejected TELEGRAM_BOT_TOKEN")
    assert first_error < deployed.stderr.index("--- last lines of")


def _quick_start_commands() -> list[str]:
    """The commands of the README's Quick start block, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    block = section.split("```bash\n", 1)[1].split("```", 1)[0]
    return [
        line.split("#", 1)[0].strip()
        for line in block.splitlines()
        if line.split("#", 1)[0].strip()
    ]


def test_readme_quick_start_on_a_clean_clone(tmp_path: Path, fake_api: int) -> None:
    """The Quick start as written, in a fresh clone: cp .env.example .env, the token put
    in .env, ./deploy.sh auto from a shell without any setting. It even repairs a .venv
    left without pip (python3-venv missing on the first try). The bot answers /start.
    (./scripts/check is this test suite itself.)"""
    assert _quick_start_commands() == [
        "cp .env.example .env",
        "./deploy.sh auto",
        "./scripts/check",
    ]
    clone = tmp_path / "clone"
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(clone)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    env = _bot_env(tmp_path, fake_api)
    for name in [key for key in env if key.startswith(("TELEGRAM_", "REDIS_", "HEALTH_"))]:
        del env[name]
    del env["VECHNOST_RUN_DIR"]
    # A venv made while python3-venv was missing: python but no pip.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(clone / ".venv")],
        check=True, timeout=120,
    )  # fmt: skip
    health_port = free_port()
    bot_pid = 0
    try:
        copied = subprocess.run(
            ["sh", "-c", "cp .env.example .env"], cwd=clone, env=env, check=False, timeout=30
        )
        assert copied.returncode == 0
        dotenv = clone / ".env"
        text = dotenv.read_text().replace(
            "TELEGRAM_BOT_TOKEN=\n", f"TELEGRAM_BOT_TOKEN={DEFAULT_TOKEN}\n"
        )
        assert DEFAULT_TOKEN in text, ".env.example has no TELEGRAM_BOT_TOKEN= line to fill"
        # This machine's test setup: the fake Bot API, free ports, a private data dir.
        text += (
            f"TELEGRAM_API_BASE_URL=http://127.0.0.1:{fake_api}/bot\n"
            f"HEALTH_PORT={health_port}\n"
            f"REDIS_URL=redis://127.0.0.1:{free_port()}/0\n"
            f"REDIS_DATA_DIR={tmp_path / 'data'}\n"
        )
        dotenv.write_text(text)
        deployed = subprocess.run(
            ["./deploy.sh", "auto"], cwd=clone, env=env, capture_output=True, text=True,
            timeout=600, check=False,
        )  # fmt: skip
        pid_file = clone / "run" / "vechnost.pid"
        if pid_file.exists():
            bot_pid = _pid(pid_file)
        assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]
        assert "repairing" in deployed.stdout
        assert "ready: storage" in deployed.stdout
        _say_start(fake_api, chat_id=5151)
        _wait_reply(fake_api, chat_id=5151)
        for command in ("status", "doctor"):
            done = subprocess.run(
                ["./deploy.sh", command], cwd=clone, env=env, capture_output=True, text=True,
                timeout=60, check=False,
            )  # fmt: skip
            assert DEFAULT_TOKEN not in done.stdout + done.stderr
            if command == "doctor":
                assert "OK    telegram" in done.stdout, done.stdout
                assert "TELEGRAM_BOT_TOKEN is not set" not in done.stdout
            else:
                assert done.returncode in (0, 1), done.stdout + done.stderr
        stopped = subprocess.run(
            ["./deploy.sh", "stop"], cwd=clone, env=env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert stopped.returncode == 0
        assert not _alive(bot_pid)
    finally:
        if bot_pid:
            _kill(bot_pid)


def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"{what} within {timeout}s")


def test_ctrl_c_in_the_readiness_wait_says_what_keeps_running(tmp_path: Path) -> None:
    """Ctrl-C while deploy.sh waits for /readyz (Telegram unreachable: never ready): exit
    130, no traceback, and it names the bot that keeps running in the background."""
    env = _bot_env(tmp_path, free_port(), REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    pid_file = Path(env["VECHNOST_RUN_DIR"]) / "vechnost.pid"
    deploy = subprocess.Popen(
        [str(DEPLOY_SH), "auto"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    bot_pid = 0
    try:
        _wait_for(pid_file.exists, 30, "deploy.sh never started the bot")
        bot_pid = _pid(pid_file)
        time.sleep(1)
        os.killpg(deploy.pid, signal.SIGINT)  # what Ctrl-C in the terminal sends
        out, err = deploy.communicate(timeout=30)
        assert deploy.returncode == 130, out + err
        assert "Traceback" not in err
        assert f"vechnost (pid {bot_pid}) keeps running" in err
        assert "./deploy.sh stop" in err
        assert _alive(bot_pid)
        assert _run(env, "stop").returncode == 0
        assert not _alive(bot_pid)
    finally:
        if deploy.poll() is None:
            deploy.kill()
            deploy.communicate()
        if bot_pid:
            _kill(bot_pid)


def test_foreground_leaves_no_pid_file(tmp_path: Path, fake_api: int) -> None:
    """--foreground: the pid file names the bot while it runs (so status finds it) and is
    gone after Ctrl-C stops it."""
    env = _bot_env(tmp_path, fake_api, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    pid_file = Path(env["VECHNOST_RUN_DIR"]) / "vechnost.pid"
    deploy = subprocess.Popen(
        [str(DEPLOY_SH), "auto", "--foreground"], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    bot_pid = 0
    try:
        _wait_for(
            lambda: _run(env, "status").returncode == 0, 60, "the foreground bot was not ready"
        )
        bot_pid = _pid(pid_file)
        status = _run(env, "status")
        assert f"pid {bot_pid}" in status.stderr + status.stdout
        os.killpg(deploy.pid, signal.SIGINT)
        deploy.wait(45)
        assert not pid_file.exists(), "--foreground left its pid file behind"
        assert not _alive(bot_pid)
    finally:
        if deploy.poll() is None:
            os.killpg(deploy.pid, signal.SIGKILL)
            deploy.wait(10)
        if bot_pid:
            _kill(bot_pid)
