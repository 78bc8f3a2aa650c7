"""What a Sentinel failover costs the bot, measured on real processes.

Two rounds, each on a fresh topology from tests/support/sentinel.py (loopback):

**Master killed** (1 master + 1 replica + 3 sentinels), for each
``down-after-milliseconds`` (200, 500, 1000). The bot's storage (HybridStorage + the
lifecycle, built as ``vechnost run`` builds them with REDIS_SENTINELS) increments a
counter every 5 ms; the master is SIGKILLed:

* ``named_s``: kill -> a majority of sentinels names the replica;
* ``no_master_s``: kill -> the storage serves from Redis again;
* ``gap_s``: ``no_master_s - named_s``, what the bot adds to Sentinel's own election
  (issue 11's goal: within 0.5 s; before the watch the probe's backoff added seconds);
* ``lost``: increments missing from the new master once the journal is empty.

**Manual SENTINEL FAILOVER** (1 master + 1 replica, no min-replicas-to-write), 8 pooled
writers SETting keys: acknowledged writes missing from the new master, with redis-py's
plain ``master_for`` and with ours (make_client + SentinelWatch).

Usage: ``.venv/bin/python bench/sentinel.py [--runs N] [--down-after MS ...]``.
The last line printed is one JSON object with the medians (and ranges) per setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog
from redis.asyncio.sentinel import Sentinel
from tests.support.sentinel import (
    MASTER_NAME,
    SentinelTopology,
    failover_under_writes,
    missing_on,
    storage_through_master_kill,
)

from vechnost_bot.config import RedisEndpoint, SentinelTarget
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.sentinel import SentinelWatch


async def _kill_run(down_after_ms: int) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix="vechnost-sentinel-") as tmp,
        SentinelTopology(Path(tmp) / "t", replicas=1, down_after_ms=down_after_ms) as topo,
    ):
        outage = await storage_through_master_kill(topo, Path(tmp) / "data")
    return {
        "named_s": outage.named_s,
        "no_master_s": outage.no_master_s,
        "gap_s": outage.no_master_s - outage.named_s,
        "lost": float(outage.increments - outage.counted),
        "increments": float(outage.increments),
    }


async def _manual_run(ours: bool) -> tuple[int, int]:
    with (
        tempfile.TemporaryDirectory(prefix="vechnost-sentinel-") as tmp,
        SentinelTopology(Path(tmp), replicas=1, down_after_ms=1000) as topo,
    ):
        watch: SentinelWatch | None = None
        sentinel: Sentinel | None = None
        if ours:
            target = SentinelTarget(tuple(topo.sentinel_addresses), MASTER_NAME)
            client = make_client(RedisEndpoint(sentinel=target), timeout=0.5)
            watch = SentinelWatch(target)
            await watch.start()
        else:
            sentinel = Sentinel(topo.sentinel_addresses, socket_timeout=0.5)  # type: ignore[no-untyped-call]
            client = sentinel.master_for(MASTER_NAME, socket_timeout=0.5)
        try:
            writers, new_port, _ = await failover_under_writes(topo, client, after=1.5)
            missing = await missing_on(new_port, writers.acked)
        finally:
            if watch is not None:
                await watch.stop()
            await client.aclose()
            if sentinel is not None:
                await sentinel.aclose()
    return len(missing), len(writers.acked)


def _summary(runs: list[dict[str, float]]) -> dict[str, object]:
    return {
        key: {
            "median": round(statistics.median(run[key] for run in runs), 3),
            "range": [round(min(r[key] for r in runs), 3), round(max(r[key] for r in runs), 3)],
        }
        for key in runs[0]
    }


async def main() -> None:
    # The storage's and the lifecycle's logs would bury the table: errors only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--down-after", type=int, nargs="+", default=[200, 500, 1000])
    args = parser.parse_args()
    summary: dict[str, object] = {}
    print(f"{'down-after':>10} {'run':>3} {'named s':>8} {'no_master s':>11} "
          f"{'gap s':>6} {'lost':>9}")  # fmt: skip
    for down_after in args.down_after:
        runs = []
        for number in range(1, args.runs + 1):
            run = await _kill_run(down_after)
            runs.append(run)
            print(
                f"{down_after:>10} {number:>3} {run['named_s']:>8.2f} {run['no_master_s']:>11.2f} "
                f"{run['gap_s']:>6.2f} {run['lost']:>4.0f}/{run['increments']:<4.0f}"
            )
        summary[str(down_after)] = _summary(runs)
    manual: dict[str, list[list[int]]] = {"plain_master_for": [], "ours": []}
    for number in range(1, args.runs + 1):
        for name, ours in (("plain_master_for", False), ("ours", True)):
            lost, acked = await _manual_run(ours)
            manual[name].append([lost, acked])
            print(f"manual SENTINEL FAILOVER run {number} {name:>16}: lost {lost} of {acked}")
    print(
        json.dumps(
            {"master_killed_by_down_after_ms": summary, "manual_failover_lost_of_acked": manual},
            sort_keys=True,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
