"""The Sentinel client (vechnost_bot.redis.sentinel) on a real topology.

A manual ``SENTINEL FAILOVER`` leaves the old master up and accepting writes for about
10 s: redis-py's plain ``master_for`` keeps its pooled connections on it. Issue 11
measured 1 830 of 3 087 acknowledged writes lost that way. These tests run pooled
writers through :func:`~vechnost_bot.redis.client.make_client` (the one client factory)
with the :class:`~vechnost_bot.redis.sentinel.SentinelWatch` running, and count the
acknowledged writes that the new master does not have.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import redis
from redis.asyncio.sentinel import Sentinel

from tests.support.sentinel import (
    MASTER_NAME,
    PooledWriters,
    SentinelTopology,
    failover_under_writes,
    missing_on,
)
from vechnost_bot.config import RedisEndpoint, SentinelTarget
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.probe import probe
from vechnost_bot.redis.sentinel import SentinelWatch, newest_master

pytestmark = pytest.mark.slow


def _endpoint(topo: SentinelTopology) -> RedisEndpoint:
    return RedisEndpoint(sentinel=SentinelTarget(tuple(topo.sentinel_addresses), MASTER_NAME))


def _longest_pause(writers: PooledWriters) -> float:
    times = sorted(writers.acked_at.values())
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


async def _run_with_watch(
    topo: SentinelTopology, *, after: float
) -> tuple[PooledWriters, list[str], SentinelWatch, float]:
    endpoint = _endpoint(topo)
    assert endpoint.sentinel is not None
    client = make_client(endpoint, timeout=0.5)
    watch = SentinelWatch(endpoint.sentinel, interval=0.1)
    await watch.start()
    try:
        writers, new_port, last_error = await failover_under_writes(topo, client, after=after)
        missing = await missing_on(new_port, writers.acked)
    finally:
        await watch.stop()
        await client.aclose()
    return writers, missing, watch, last_error


async def test_manual_failover_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """The recommended topology (2 replicas, min-replicas-to-write 1) with the watch
    running: SENTINEL FAILOVER under 8 pooled writers loses 0 acknowledged writes. The
    writers are fenced from the start of the failover to the switch (they wait, they do
    not fail), then write to the new master."""
    extra = ("--min-replicas-to-write", "1", "--min-replicas-max-lag", "2")
    with SentinelTopology(tmp_path, replicas=2, down_after_ms=1000, extra_args=extra) as topo:
        writers, missing, watch, last_error = await _run_with_watch(topo, after=2.0)
    pause = _longest_pause(writers)
    print(
        f"manual failover: acked={len(writers.acked)} lost={len(missing)} "
        f"errors={writers.errors} last_error_after={last_error:.2f}s longest_pause={pause:.2f}s"
    )
    assert len(writers.acked) > 300
    assert missing == []
    assert watch.switches == 1
    assert pause < 3.0  # the fence is bounded (FENCE_TIMEOUT 2 s)


async def test_plain_master_for_keeps_writing_to_the_old_master(tmp_path: Path) -> None:
    """The failure this module fixes, on the same topology without min-replicas-to-write:
    redis-py's own master_for goes on writing to the old master after the switch, and
    those acknowledged writes are not on the new one."""
    with SentinelTopology(tmp_path, replicas=1, down_after_ms=1000) as topo:
        sentinel = Sentinel(topo.sentinel_addresses, socket_timeout=0.5)
        client = sentinel.master_for(MASTER_NAME, socket_timeout=0.5)
        try:
            writers, new_port, _ = await failover_under_writes(topo, client, after=1.0)
            missing = await missing_on(new_port, writers.acked)
        finally:
            await client.aclose()
            await sentinel.aclose()
        print(f"plain master_for: acked={len(writers.acked)} lost={len(missing)}")
        assert len(missing) > 100


async def test_the_fence_needs_no_server_setting(tmp_path: Path) -> None:
    """1 master + 1 replica without min-replicas-to-write (where plain master_for loses
    thousands, the test above): the fence alone loses 0 acknowledged writes."""
    with SentinelTopology(tmp_path, replicas=1, down_after_ms=1000) as topo:
        writers, missing, watch, _ = await _run_with_watch(topo, after=1.5)
    print(f"fence only: acked={len(writers.acked)} lost={len(missing)}")
    assert watch.switches == 1
    assert len(writers.acked) > 300
    assert missing == []


async def test_the_probe_and_the_client_reach_the_master_through_sentinels(
    tmp_path: Path,
) -> None:
    """make_client for a sentinel endpoint talks to the master; probe() says it answers;
    the master's address is the one the sentinels name with the highest epoch."""
    with SentinelTopology(tmp_path, replicas=1, down_after_ms=1000) as topo:
        endpoint = _endpoint(topo)
        found = await probe(endpoint, 1.0)
        assert found.answers, found
        client = make_client(endpoint, timeout=1.0)
        try:
            assert (await client.info("replication"))["role"] == "master"
        finally:
            await client.aclose()
        sentinels = [s.client() for s in topo.sentinels]
        try:
            states: list[object] = [s.sentinel_master(MASTER_NAME) for s in sentinels]
        finally:
            for s in sentinels:
                s.close()
        assert newest_master(states) == ("127.0.0.1", topo.master_port())


def test_newest_master_believes_the_highest_epoch() -> None:
    """A sentinel that has not heard of the failover yet (lower epoch) is outvoted; one that
    sees the master down, or did not answer, is ignored."""
    old = {"is_master": True, "ip": "10.0.0.1", "port": 6379, "config-epoch": 3}
    new = {"is_master": True, "ip": "10.0.0.2", "port": 6379, "config-epoch": 4}
    down = {**new, "config-epoch": 9, "is_sdown": True}
    leader = {**old, "config-epoch": 4, "flags": "master,failover_in_progress,force_failover"}
    assert newest_master([old, new, old]) == ("10.0.0.2", 6379)
    assert newest_master([leader, new, old]) == ("10.0.0.2", 6379)
    assert newest_master([old, redis.ConnectionError("refused"), down]) == ("10.0.0.1", 6379)
    assert newest_master([down, redis.TimeoutError()]) is None
