"""The server process on its own: a server that cannot save is never SIGKILLed; a service
whose start fails is stopped by ``async with``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from tests.support.lifecycle import data_dir, settings_for
from vechnost_bot.redis import server as server_module
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.commands import command as redis_command
from vechnost_bot.redis.manager import RedisManager
from vechnost_bot.redis.process import pid_alive
from vechnost_bot.service import Service

__all__ = ["data_dir"]


async def test_server_that_cannot_save_is_left_running_not_killed(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SHUTDOWN SAVE fails (a folder sits where its temp RDB file goes, so the save fails
    as on a full disk): the stop retries within a bound, then leaves the server running with
    its acknowledged writes and says what to do; once it can save again, stop() ends it
    with SHUTDOWN SAVE and the data is on disk."""
    monkeypatch.setattr(server_module, "_SAVE_RETRY_WINDOW", 0.8)
    manager = RedisManager(settings_for(data_dir))
    await manager.start()
    pid = manager.pid
    endpoint = manager.endpoint
    assert pid is not None
    assert endpoint is not None
    admin = make_client(endpoint)
    try:
        await admin.set("acknowledged", "write")
    finally:
        await admin.aclose()
    blocker = data_dir / f"temp-{pid}.rdb"
    blocker.mkdir()
    stopped = await manager.stop()
    assert stopped is not None
    assert stopped.how == "left-running"
    assert stopped.reason is not None
    assert "vechnost redis stop" in stopped.reason
    assert pid_alive(pid)
    blocker.rmdir()
    stopped = await manager.stop()
    assert stopped is not None
    assert stopped.how == "shutdown-save"
    assert not pid_alive(pid)
    assert (data_dir / "dump.rdb").is_file()


class _FailsToStart(Service):
    def __init__(self) -> None:
        self.stopped = 0

    async def start(self) -> None:
        raise RuntimeError("half started")

    async def stop(self) -> None:
        self.stopped += 1


async def test_async_with_stops_a_service_whose_start_failed() -> None:
    """As PTB's Application does: a failed start() is followed by stop(), then re-raised."""
    service = _FailsToStart()
    with pytest.raises(RuntimeError, match="half started"):
        async with service:
            pytest.fail("the body must not run")
    assert service.stopped == 1


def test_redis_stop_of_a_server_that_cannot_save_exits_1_and_says_why(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vechnost redis stop` on a server that cannot save: exit 1, one line with what to do,
    and the server still runs with its data."""
    monkeypatch.setattr(server_module, "_SAVE_RETRY_WINDOW", 0.5)
    settings = settings_for(data_dir)
    assert redis_command(settings, argparse.Namespace(action="start", json=True)) == 0
    pid = json.loads(capsys.readouterr().out.splitlines()[-1])["pid"]
    blocker = data_dir / f"temp-{pid}.rdb"
    blocker.mkdir()
    try:
        assert redis_command(settings, argparse.Namespace(action="stop", json=False)) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"vechnost: Redis pid {pid} was not stopped")
        assert "free disk space" in err
        assert "\n" not in err
        assert pid_alive(pid)
    finally:
        blocker.rmdir()
    assert redis_command(settings, argparse.Namespace(action="stop", json=False)) == 0
    assert not pid_alive(pid)
