"""`vechnost doctor` with REDIS_SENTINELS: the sentinels and the master they name.

A real topology (a master, a replica, 3 sentinels on loopback ports). In Sentinel mode
there is no binary or port of ours to check: the report asks every sentinel, names the
master they agree on, and PINGs it; a sentinel that does not answer, a master name no
sentinel monitors, and a dead master each get their own verdict and fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.lifecycle import settings_for
from tests.support.sentinel import SentinelTopology
from vechnost_bot.config import Settings
from vechnost_bot.doctor import Check, redis_checks, run_checks


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[SentinelTopology]:
    topo = SentinelTopology(tmp_path / "topology", replicas=1).start()
    try:
        yield topo
    finally:
        topo.stop()


def _settings(tmp_path: Path, topo: SentinelTopology, master: str = "vechnost") -> Settings:
    hosts = ",".join(f"{host}:{port}" for host, port in topo.sentinel_addresses)
    return settings_for(
        tmp_path / "data",
        redis_url="redis://localhost/0",
        redis_sentinels=hosts,
        redis_sentinel_master=master,
        redis_auto_start=False,
        telegram_bot_token=None,
    )


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


async def test_a_healthy_topology_names_its_master(
    tmp_path: Path, topology: SentinelTopology
) -> None:
    """Every sentinel answers, the master they name answers PING; nothing about a binary
    or a port, and the configuration line shows the Sentinel settings, not a URL."""
    checks = _by_name(await run_checks(_settings(tmp_path, topology)))
    assert set(checks) == {"configuration", "sentinels", "data dir", "redis", "telegram"}
    assert checks["sentinels"].level == "OK"
    assert checks["sentinels"].detail == (
        f"3 of 3 sentinels answer; master 'vechnost' is at 127.0.0.1:{topology.master_port()}"
    )
    assert checks["redis"].level == "WARN"  # the test servers have no password
    assert "the master answers PING" in checks["redis"].detail
    assert "REDIS_PASSWORD" in (checks["redis"].fix or "")
    assert checks["configuration"].detail.startswith("REDIS_SENTINELS=127.0.0.1:")
    assert "REDIS_URL" not in checks["configuration"].detail


async def test_a_silent_sentinel_is_a_warning_naming_it(
    tmp_path: Path, topology: SentinelTopology
) -> None:
    topology.sentinels[0].stop()
    checks = _by_name(await redis_checks(_settings(tmp_path, topology)))
    sentinels = checks["sentinels"]
    assert sentinels.level == "WARN"
    assert sentinels.detail.startswith("2 of 3 sentinels answer; master 'vechnost' is at")
    assert f"127.0.0.1:{topology.sentinels[0].port}:" in sentinels.detail
    assert "majority" in (sentinels.fix or "")
    assert checks["redis"].level == "WARN"  # the master itself is fine


async def test_a_master_name_no_sentinel_monitors_fails(
    tmp_path: Path, topology: SentinelTopology
) -> None:
    checks = _by_name(await redis_checks(_settings(tmp_path, topology, master="nosuch")))
    assert checks["sentinels"].level == "FAIL"
    assert "none names a master 'nosuch'" in checks["sentinels"].detail
    assert "REDIS_SENTINEL_MASTER" in (checks["sentinels"].fix or "")
    assert checks["redis"].level == "FAIL"
    assert checks["redis"].fix == "fix the sentinels first (above)"


async def test_a_dead_master_fails_with_where_it_should_be(
    tmp_path: Path, topology: SentinelTopology
) -> None:
    """Killed, before the sentinels' down-after: they still name it, and it does not
    answer; the fix names the address."""
    port = await asyncio.to_thread(topology.kill_master)
    checks = _by_name(await redis_checks(_settings(tmp_path, topology)))
    redis = checks["redis"]
    assert redis.level == "FAIL"
    assert redis.detail.startswith("the master does not answer")
    if checks["sentinels"].level == "OK":  # not failed over yet
        assert redis.fix == f"start the master at 127.0.0.1:{port}, or let the sentinels fail over"
