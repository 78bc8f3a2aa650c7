"""The bot's storage on a Sentinel Redis: a killed master costs about the election.

HybridStorage and the Redis lifecycle are built as ``vechnost run`` builds them, with
REDIS_SENTINELS. Before the watch, the storage's probe backed off 0.5, 1, 2 s and stayed
in memory mode 3.5 s after a failover (issue 11); now the lifecycle's SentinelWatch wakes
it at the switch, and it is back within half a second of Sentinel's own election.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.sentinel import SentinelTopology, storage_through_master_kill

pytestmark = pytest.mark.slow


async def test_master_kill_costs_the_election_and_loses_no_increment(tmp_path: Path) -> None:
    """SIGKILL the master (down-after 200 ms): the storage serves from Redis again within
    0.5 s of the sentinels naming the replica (plus slack for this loaded machine), and
    every increment made meanwhile is counted exactly once in the new master."""
    with SentinelTopology(tmp_path / "topo", replicas=1, down_after_ms=200) as topo:
        outage = await storage_through_master_kill(topo, tmp_path / "data")
    print(f"storage outage: {outage}")
    assert outage.increments > 100
    assert outage.counted == outage.increments
    assert outage.no_master_s - outage.named_s < 1.0, outage
    assert outage.status_port == outage.new_port  # status shows the master it follows
