"""Never split, never take over silently; recovery at the moment of death.

Real servers, real signals: an external Redis down at start, a passwordless one, a
FLUSHALL, and SIGKILL of our own server with the default 5 s health check interval.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.conftest import RedisFactory
from tests.support.lifecycle import data_dir, redis_pids_in, settings_for
from vechnost_bot.doctor import run_checks
from vechnost_bot.metrics import REDIS_DATA_LOST, REDIS_PASSWORDLESS
from vechnost_bot.redis import RedisAutoStartManager, RedisEvent
from vechnost_bot.redis.autostart import EPOCH_KEY
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.manager import RedisManager

__all__ = ["data_dir"]


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_external_that_answered_before_is_never_replaced_after_a_restart(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """REDIS_URL names a loopback, passwordless Redis that answered in an earlier run; it is
    down when the bot starts again: memory mode (down), no rival on its port; when it comes
    back the bot fails back to it."""
    external = redis_factory()
    settings = settings_for(data_dir, port=external.port)
    async with RedisAutoStartManager(settings) as first:
        assert first.source == "external"
    assert (data_dir / "redis-external.json").is_file()
    external.kill()
    second = RedisAutoStartManager(settings)
    events: list[RedisEvent] = []
    second.subscribe(events.append)
    await second.start()
    try:
        assert second.state == "down"
        assert second.source == "external"
        assert "no rival" in str(second.status()["last_error"])
        assert redis_pids_in(data_dir) == []
        external.start()
        second.wake()
        await _until(lambda: second.state == "running")
        assert events[-1].endpoint is not None
        assert events[-1].endpoint.port == external.port
        assert redis_pids_in(data_dir) == []
    finally:
        await second.stop()


async def test_nothing_configured_still_auto_starts(data_dir: Path) -> None:
    """A default-shaped REDIS_URL (loopback, no password) that never answered: auto-start."""
    async with RedisAutoStartManager(settings_for(data_dir)) as manager:
        assert manager.source == "auto-started"
        assert len(redis_pids_in(data_dir)) == 1


async def test_passwordless_external_is_used_with_a_loud_warning(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """A Redis without a password on REDIS_URL: used, but logged as a warning with the fix,
    shown in status, and a doctor WARN."""
    external = redis_factory()
    settings = settings_for(data_dir, port=external.port)
    with capture_logs() as logs:
        manager = RedisAutoStartManager(settings)
        assert await manager.initialize()
    try:
        warned = [entry for entry in logs if entry["event"] == "redis_without_password"]
        assert len(warned) == 1
        assert warned[0]["log_level"] == "warning"
        assert "requirepass" in warned[0]["fix"]
        status = manager.status()
        assert status["passwordless"] is True
        assert REDIS_PASSWORDLESS._value.get() == 1
        assert "without a password" in str(status["warning"])
    finally:
        await manager.cleanup()
    checks = {check.name: check for check in await run_checks(settings)}
    assert checks["redis"].level == "WARN"
    assert checks["redis"].fix is not None
    assert "requirepass" in checks["redis"].fix


async def test_flushall_is_detected_counted_and_told(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """An external FLUSHALL erases the epoch marker: logged as an error, counted, and
    observers get a data_lost event (the storage writes back from its local store)."""
    external = redis_factory(password="flush-pass")
    manager = RedisAutoStartManager(settings_for(data_dir, redis_url=external.url))
    lost: list[RedisEvent] = []
    manager.subscribe(lambda event: lost.append(event) if event.data_lost else None)
    await manager.start()
    try:
        assert external.client().get(EPOCH_KEY) is not None
        before = REDIS_DATA_LOST._value.get()
        with capture_logs() as logs:
            external.client().flushall()
            manager.wake()
            await _until(lambda: len(lost) == 1)
        assert manager.data_lost_count == 1
        assert REDIS_DATA_LOST._value.get() == before + 1
        errors = [entry for entry in logs if entry["event"] == "redis_data_lost"]
        assert errors
        assert errors[0]["log_level"] == "error"
        assert lost[0].endpoint is not None
        assert external.client().get(EPOCH_KEY) is not None  # a new epoch is written
        manager.wake()
        await asyncio.sleep(0.2)
        assert manager.data_lost_count == 1  # reported once, not on every check
    finally:
        await manager.stop()


async def test_sigkill_is_noticed_at_once_with_the_default_interval(data_dir: Path) -> None:
    """With the default 5 s health check interval, a SIGKILLed server of ours is replaced
    within a fraction of a second: the pidfd watch wakes the monitor (Linux)."""
    manager = RedisAutoStartManager(settings_for(data_dir, redis_health_check_interval=5.0))
    await manager.start()
    try:
        for _ in range(2):  # re-armed on every start
            endpoint = manager.endpoint
            pid = manager.manager.pid
            assert endpoint is not None
            assert pid is not None
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            await _until(lambda: manager.manager.pid not in (None, pid), 5)  # noqa: B023
            client = make_client(endpoint)
            try:
                while True:
                    try:
                        if await client.ping():
                            break
                    except Exception:
                        await asyncio.sleep(0.002)
            finally:
                await client.aclose()
            assert time.monotonic() - killed < 2.0
    finally:
        await manager.stop()


async def test_without_pidfd_the_ping_still_finds_a_dead_server(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where there is no pidfd (macOS, Windows, old kernels) the PING every interval still
    notices a SIGKILLed server and replaces it."""
    monkeypatch.setattr(RedisManager, "open_pidfd", lambda _self: None)
    manager = RedisAutoStartManager(settings_for(data_dir, redis_health_check_interval=0.2))
    await manager.start()
    try:
        pid = manager.manager.pid
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        await _until(lambda: manager.state == "running" and manager.manager.pid != pid)
        assert manager.status()["restarts"] == 1
    finally:
        await manager.stop()


async def test_doctor_says_what_the_bot_does_when_a_known_external_is_down(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """doctor makes the bot's decision: an external that answered before and is down is a
    WARN (memory mode, no rival) whose fix names the record to delete, not "will start one"."""
    external = redis_factory()
    settings = settings_for(data_dir, port=external.port)
    async with RedisAutoStartManager(settings):
        pass
    external.kill()
    checks = {check.name: check for check in await run_checks(settings)}
    assert checks["redis"].level == "WARN"
    assert "start no rival" in checks["redis"].detail
    assert checks["redis"].fix is not None
    assert "redis-external.json" in checks["redis"].fix


async def test_two_bots_on_one_server_report_a_flushall_once_each(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """Two bot processes' lifecycles on one external Redis: after a FLUSHALL each reports
    the loss once and they agree on the new epoch (no accusing each other afterwards)."""
    external = redis_factory(password="shared-pass")
    first = RedisAutoStartManager(settings_for(data_dir / "a", redis_url=external.url))
    second = RedisAutoStartManager(settings_for(data_dir / "b", redis_url=external.url))
    await first.start()
    await second.start()
    try:
        external.client().flushall()
        for _ in range(4):
            first.wake()
            second.wake()
            await asyncio.sleep(0.05)
        await _until(lambda: first.data_lost_count == 1 and second.data_lost_count == 1)
        for _ in range(4):
            first.wake()
            second.wake()
            await asyncio.sleep(0.05)
        assert (first.data_lost_count, second.data_lost_count) == (1, 1)
    finally:
        await first.stop()
        await second.stop()
