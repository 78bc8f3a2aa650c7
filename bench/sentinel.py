"""How long Sentinel leaves the bot without a master, measured on real processes.

For each ``down-after-milliseconds`` (200, 500, 1000): 1 master + 1 replica + 3
sentinels on loopback (tests/support/sentinel.py). A writer keeps SETting keys
through ``redis.asyncio.sentinel.Sentinel.master_for`` (dropping its pool after an
error, so that the next call asks Sentinel again). The master is SIGKILLed, and the
run records:

* ``named_s``: kill -> a majority of sentinels names the replica;
* ``writable_s``: kill -> the writer's first acknowledged write on the new master;
* ``writable_minus_named_s``: what the client adds on top of Sentinel's own election
  (issue 11's goal for the bot: within 0.5 s);
* ``acked_lost``: acknowledged writes missing on the new master (async replication
  can lose the last few milliseconds before a crash);
* ``errors``: failed writes during the outage.

Usage: ``.venv/bin/python bench/sentinel.py [--runs N] [--down-after MS ...]``.
The last line printed is one JSON object with the medians per setting.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError
from tests.support.sentinel import MASTER_NAME, SentinelTopology


async def _one_run(down_after_ms: int) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix="vechnost-sentinel-") as tmp,
        SentinelTopology(Path(tmp), replicas=1, down_after_ms=down_after_ms) as topo,
    ):
        sentinel = Sentinel(topo.sentinel_addresses, socket_timeout=0.2)
        master = sentinel.master_for(MASTER_NAME, socket_timeout=0.2)
        acked: list[int] = []
        errors = 0
        killed_at: float | None = None
        writable_at: float | None = None
        stop = asyncio.Event()

        async def writer() -> None:
            nonlocal errors, writable_at
            index = 0
            while not stop.is_set():
                index += 1
                try:
                    await master.set(f"bench:{index}", index)
                except RedisError:
                    errors += killed_at is not None
                    await master.connection_pool.disconnect()
                    await asyncio.sleep(0.01)
                    continue
                acked.append(index)
                if killed_at is not None and writable_at is None and errors:
                    writable_at = time.monotonic()
                await asyncio.sleep(0.002)

        task = asyncio.create_task(writer())
        await asyncio.sleep(0.5)
        killed_at = time.monotonic()
        old_port = topo.kill_master()
        election = await topo.wait_new_master(old_port, killed_at)
        while writable_at is None and time.monotonic() - killed_at < 20:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        stop.set()
        await task
        present = 0
        for start in range(0, len(acked), 500):
            chunk = acked[start : start + 500]
            values = await master.mget([f"bench:{i}" for i in chunk])
            present += sum(value is not None for value in values)
        await master.aclose()
        for client in sentinel.sentinels:
            await client.aclose()
    writable = (writable_at or float("nan")) - killed_at
    return {
        "named_s": election.named_after,
        "writable_s": writable,
        "writable_minus_named_s": writable - election.named_after,
        "acked_lost": float(len(acked) - present),
        "acked": float(len(acked)),
        "errors": float(errors),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--down-after", type=int, nargs="+", default=[200, 500, 1000])
    args = parser.parse_args()
    summary: dict[str, dict[str, float]] = {}
    print(f"{'down-after':>10} {'run':>3} {'named s':>8} {'writable s':>10} "
          f"{'client +s':>9} {'errors':>6} {'lost/acked':>11}")  # fmt: skip
    for down_after in args.down_after:
        runs = []
        for number in range(1, args.runs + 1):
            run = await _one_run(down_after)
            runs.append(run)
            print(
                f"{down_after:>10} {number:>3} {run['named_s']:>8.2f} {run['writable_s']:>10.2f} "
                f"{run['writable_minus_named_s']:>9.2f} {run['errors']:>6.0f} "
                f"{run['acked_lost']:>5.0f}/{run['acked']:<5.0f}"
            )
        summary[str(down_after)] = {
            key: round(statistics.median(run[key] for run in runs), 3) for key in runs[0]
        }
        summary[str(down_after)]["acked_lost_max"] = max(run["acked_lost"] for run in runs)
    print(json.dumps({"median_by_down_after_ms": summary}, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
