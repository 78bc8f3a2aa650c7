"""The monitor: real SIGKILL and SIGSTOP of owned servers, crash loops, external outages."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import redis
from structlog.testing import capture_logs

from tests.conftest import RedisFactory
from tests.support.lifecycle import data_dir, redis_pids_in, settings_for
from vechnost_bot.metrics import REDIS_RESTARTS, REDIS_STATE_CHANGES, REDIS_UP
from vechnost_bot.redis import RedisAutoStartManager, RedisEvent
from vechnost_bot.redis.process import pid_alive

__all__ = ["data_dir"]


async def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def _pid(manager: RedisAutoStartManager) -> int:
    pid = manager.status()["pid"]
    assert isinstance(pid, int)
    return pid


async def test_sigkilled_server_is_replaced_on_same_port_and_password(data_dir: Path) -> None:
    """SIGKILL of the owned server: restarted on the same port with the same password."""
    manager = RedisAutoStartManager(settings_for(data_dir))
    events: list[RedisEvent] = []
    manager.subscribe(events.append)
    restarts_before = REDIS_RESTARTS._value.get()
    await manager.start()
    try:
        before = manager.endpoint
        assert before is not None
        old = _pid(manager)
        client = redis.Redis(port=before.port, password=before.password, socket_timeout=2)
        client.set("kept", "yes")
        client.save()
        os.kill(old, signal.SIGKILL)
        await _until(lambda: manager.state == "running" and _pid(manager) != old)
        after = manager.endpoint
        assert after == before
        assert client.get("kept") == b"yes"  # same client reconnects transparently
        client.close()
        assert [(e.previous, e.state) for e in events] == [
            ("initializing", "running"),
            ("running", "restarting"),
            ("restarting", "running"),
        ]
        assert manager.status()["restarts"] == 1
        assert REDIS_RESTARTS._value.get() == restarts_before + 1
        assert REDIS_UP._value.get() == 1
    finally:
        await manager.stop()
    assert REDIS_UP._value.get() == 0


async def test_hung_server_is_killed_and_replaced(data_dir: Path) -> None:
    """SIGSTOP (PING times out): the hung server is SIGKILLed first, then replaced."""
    manager = RedisAutoStartManager(settings_for(data_dir))
    await manager.start()
    try:
        old = _pid(manager)
        os.kill(old, signal.SIGSTOP)
        with capture_logs() as logs:
            await _until(lambda: manager.state == "running" and _pid(manager) != old, 15)
        assert not pid_alive(old)
        reasons = [e.get("reason") or "" for e in logs if e["event"] == "redis_state_changed"]
        assert any("does not answer PING" in reason for reason in reasons)
        assert redis_pids_in(data_dir) == [_pid(manager)]
    finally:
        await manager.stop()


async def test_crash_loop_is_slowed_down_as_degraded(data_dir: Path) -> None:
    """Repeated crashes within the window: state degraded, restarts spaced by the backoff."""
    # Longer than the normal backoff of a third restart (0.5 s) plus detection, so the
    # gap below can only come from the degraded backoff.
    degraded_backoff = 1.2
    manager = RedisAutoStartManager(
        settings_for(data_dir),
        crash_loop_restarts=2,
        crash_loop_window=60.0,
        degraded_backoff=degraded_backoff,
    )
    states: list[str] = []
    restarted_at: list[float] = []

    def record(event: RedisEvent) -> None:
        states.append(event.state)
        if event.state == "running" and event.previous != "initializing":
            restarted_at.append(time.monotonic())

    manager.subscribe(record)
    state_count = REDIS_STATE_CHANGES.labels(state="degraded")._value.get()
    await manager.start()
    try:
        for _ in range(3):
            old = _pid(manager)
            os.kill(old, signal.SIGKILL)
            await _until(lambda old=old: manager.state == "running" and _pid(manager) != old, 15)
        assert "degraded" in states
        assert states.index("degraded") > states.index("restarting")
        assert REDIS_STATE_CHANGES.labels(state="degraded")._value.get() == state_count + 1
        assert manager.status()["restarts"] == 3
        assert len(restarted_at) == 3
        assert restarted_at[-1] - restarted_at[-2] >= degraded_backoff
    finally:
        await manager.stop()


async def test_external_server_down_is_reported_and_never_replaced(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """An external server that stops: state down, no rival started; back up: running. It
    comes back empty (no persistence), so the vanished epoch marker is reported once."""
    external = redis_factory(password="ext-pass")
    manager = RedisAutoStartManager(settings_for(data_dir, redis_url=external.url))
    states: list[str] = []
    lost: list[RedisEvent] = []
    manager.subscribe(
        lambda event: lost.append(event) if event.data_lost else states.append(event.state)
    )
    await manager.start()
    try:
        assert manager.source == "external"
        with capture_logs() as logs:
            external.kill()
            await _until(lambda: manager.state == "down")
        assert any(e["event"] == "redis_connection_failed" for e in logs)
        await asyncio.sleep(0.5)
        assert redis_pids_in(data_dir) == []
        assert manager.state == "down"
        external.start()
        await _until(lambda: manager.state == "running")
        assert states == ["running", "down", "running"]
        await _until(lambda: len(lost) == 1)
        assert manager.data_lost_count == 1
    finally:
        await manager.stop()
    assert external.client().ping()


async def test_wake_checks_immediately(data_dir: Path) -> None:
    """With a long interval, wake() makes the monitor notice a dead server at once."""
    manager = RedisAutoStartManager(settings_for(data_dir, redis_health_check_interval=30))
    await manager.start()
    try:
        old = _pid(manager)
        os.kill(old, signal.SIGKILL)
        started = time.monotonic()
        manager.wake()
        await _until(lambda: manager.state == "running" and _pid(manager) != old, 5)
        assert time.monotonic() - started < 5
    finally:
        await manager.stop()


async def test_memory_mode_recovers_when_external_appears(
    data_dir: Path, redis_factory: RedisFactory
) -> None:
    """An external REDIS_URL (with a password) down at start: memory mode, state down, no
    rival; once it answers, running."""
    external = redis_factory(password="later")
    external.stop()
    manager = RedisAutoStartManager(
        settings_for(data_dir, redis_url=external.url, redis_auto_start=False),
        retry_interval=0.2,
    )
    await manager.start()
    try:
        assert manager.state == "down"
        assert redis_pids_in(data_dir) == []
        external.start()
        await _until(lambda: manager.state == "running")
        assert manager.source == "external"
    finally:
        await manager.stop()


async def test_stop_is_bounded_and_safe_twice(data_dir: Path) -> None:
    """stop() ends the monitor and the server quickly; a second stop() does nothing."""
    manager = RedisAutoStartManager(settings_for(data_dir))
    async with manager:
        pid = _pid(manager)
    started = time.monotonic()
    await manager.stop()
    assert time.monotonic() - started < 1
    assert not pid_alive(pid)
    assert manager.state == "stopped"


async def test_observer_that_raises_does_not_break_the_monitor(data_dir: Path) -> None:
    """A raising observer is logged; the monitor still restarts a killed server."""
    manager = RedisAutoStartManager(settings_for(data_dir))

    def broken(_event: RedisEvent) -> None:
        raise ValueError("boom")

    manager.subscribe(broken)
    await manager.start()
    try:
        old = _pid(manager)
        with capture_logs() as logs:
            os.kill(old, signal.SIGKILL)
            await _until(lambda: manager.state == "running" and _pid(manager) != old)
        assert sum(1 for e in logs if e["event"] == "redis_observer_failed") == 2
    finally:
        await manager.stop()
