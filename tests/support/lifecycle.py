"""Helpers for the Redis lifecycle suites: settings on free ports, and a reaper.

The reaper kills, by pid, a redis-server that a test left running in its own
``tmp_path`` data dir (checked through /proc: cwd is that data dir), so a failed
test never leaks a server.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.redis_server import free_port
from vechnost_bot.config import Settings

__all__ = ["data_dir", "redis_pids_in", "settings_for", "wait_until"]


def settings_for(directory: Path, *, port: int | None = None, **overrides: object) -> Settings:
    """Settings with REDIS_URL on a free loopback port and a data dir under ``directory``."""
    values: dict[str, object] = {
        "redis_url": f"redis://127.0.0.1:{port or free_port()}/0",
        "redis_data_dir": directory,
        "redis_health_check_interval": 0.2,
        "redis_startup_timeout": 5.0,
        "redis_server_bin": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def redis_pids_in(directory: Path) -> list[int]:
    """Pids of live (non-zombie) redis-server processes whose cwd is ``directory``."""
    directory = directory.resolve()  # /proc shows the real folder, symlinks resolved
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
            cwd = str((entry / "cwd").readlink())
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if "redis-server" in cmdline and Path(cwd) == directory and state not in {"Z", "X"}:
            found.append(int(entry.name))
    return found


def wait_until(predicate: object, timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll a zero-argument callable until it is truthy (sync tests only)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(step)
    return False


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    """A fresh data dir; any redis-server still running in it afterwards is SIGKILLed by pid."""
    directory = tmp_path / "data"
    yield directory
    for pid in redis_pids_in(directory):
        try:
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
