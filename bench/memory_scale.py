"""Memory mode at scale: 1k, 10k and 100k sessions in the local store, then failback.

For each N, in one process with a private redis-server that is down at first:

1. N sessions with 20 drawn cards each are written while Redis is away (pending
   writes of the local store: SQLite WAL behind a bounded hot LRU).
2. Steady play: 100 writes/s (draws on random chats, most of them outside the hot
   LRU) plus as many reads, for a few seconds, with a 1 ms event-loop probe.
   Printed: loop lag p99, call p50 / p99, RSS per record, store size on disk.
3. Restart: stop, then time a new start on the same directory (no replay).
4. Failback: the server starts, the lifecycle's 'running' event arrives, and the
   pending writes are reconciled; printed: reconcile time and loop lag meanwhile.

The goals at 100k (issue 8): lag p99 <= 5 ms, call p99 <= 2 ms, reconcile <= 10 s,
RSS <= 1.5 KB per record, restart <= 0.5 s. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog
from tests.support.redis_server import RedisServer

from vechnost_bot.redis.events import RedisEndpoint, RedisEvent
from vechnost_bot.storage import HybridStorage, Session

CARDS = 20


def _rss_kb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return float(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _pct(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class LagProbe:
    """Sleeps 1 ms again and again; the lateness of each wake-up is the loop's lag."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            self.samples.append(max(0.0, time.perf_counter() - started - 0.001))

    def start(self) -> None:
        self.samples = []
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> list[float]:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        return self.samples


def _deck(chat: int) -> list[str]:
    return [f"q{chat % 45}-{n}" for n in range(CARDS)]


async def _fill(storage: HybridStorage, n: int) -> None:
    for chat in range(n):
        deck = _deck(chat)

        def mutate(session: Session, deck: list[str] = deck) -> Session:
            session.language = "ru"
            session.theme = "couples"
            session.level = 2
            session.content = "questions"
            session.drawn = {"couples:2:questions": deck}
            session.last_card = deck[-1]
            return session

        await storage.update_session(chat, mutate)
        if chat % 500 == 0:
            await asyncio.sleep(0)  # let the writer's completions in


async def _steady(storage: HybridStorage, n: int, seconds: float) -> list[float]:
    """100 writes/s plus as many reads on random chats; returns call durations."""
    rng = random.Random(n)
    calls: list[float] = []
    deadline = time.perf_counter() + seconds
    step = 0
    while time.perf_counter() < deadline:
        chat = rng.randrange(n)
        step += 1
        card = f"extra-{step}"
        started = time.perf_counter()
        await storage.get_session(chat)
        calls.append(time.perf_counter() - started)

        def draw(session: Session, card: str = card) -> Session:
            session.drawn.setdefault("couples:2:questions", []).append(card)
            return session

        started = time.perf_counter()
        await storage.update_session(chat, draw)
        calls.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)  # 100 writes a second
    return calls


async def _one(n: int, tmp: Path, seconds: float) -> dict[str, float]:
    server = RedisServer(tmp / f"redis-{n}", password="scale-pass")
    local = tmp / f"local-{n}"
    # Not started yet: a dead endpoint, so the storage is in memory mode.
    endpoint = RedisEndpoint("127.0.0.1", server.port, password=server.password)
    storage = HybridStorage(local_dir=local, probe_initial=3600, probe_max=3600)
    await storage.start(endpoint)
    assert storage.mode == "memory"
    gc.collect()
    rss_before = _rss_kb()
    started = time.perf_counter()
    await _fill(storage, n)
    await storage.local.wait_saved()
    fill_s = time.perf_counter() - started
    probe = LagProbe()
    probe.start()
    calls = await _steady(storage, n, seconds)
    lag = await probe.stop()
    gc.collect()
    rss_per_record = (_rss_kb() - rss_before) / n
    await storage.stop()
    size = sum(p.stat().st_size for p in local.iterdir() if p.is_file())

    started = time.perf_counter()
    again = HybridStorage(local_dir=local, probe_initial=3600, probe_max=3600)
    await again.start(endpoint)
    restart_s = time.perf_counter() - started
    pending = again.local.pending_count

    await asyncio.to_thread(server.start)
    endpoint = RedisEndpoint("127.0.0.1", server.port, password=server.password)
    probe.start()
    started = time.perf_counter()
    await again.on_redis_event(RedisEvent("running", "down", endpoint, "auto-started"))
    while again.mode != "redis":
        await asyncio.sleep(0.005)
    reconcile_s = time.perf_counter() - started
    reconcile_lag = await probe.stop()
    check = await again.get_session(n - 1)
    assert check is not None
    assert check.drawn["couples:2:questions"][:CARDS] == _deck(n - 1)
    await again.stop()
    await asyncio.to_thread(server.stop)

    def ms(seconds: float) -> float:
        return round(seconds * 1000, 3)

    return {
        "fill_s": round(fill_s, 2),
        "lag_p99_ms": ms(_pct(lag, 0.99)),
        "call_p50_ms": ms(_pct(calls, 0.50)),
        "call_p99_ms": ms(_pct(calls, 0.99)),
        "rss_kb_per_record": round(rss_per_record, 3),
        "store_mb": round(size / 1e6, 2),
        "restart_s": round(restart_s, 3),
        "pending": float(pending),
        "reconcile_s": round(reconcile_s, 2),
        "reconcile_lag_p99_ms": ms(_pct(reconcile_lag, 0.99)),
    }


async def run(sizes: list[int], seconds: float) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="vechnost-scale-") as tmp:
        for n in sizes:
            result = await _one(n, Path(tmp), seconds)
            label = f"{n // 1000}k"
            print(
                f"{label:>5}: fill {result['fill_s']:.1f} s | lag p99 {result['lag_p99_ms']:.2f} ms"
                f" | call p50/p99 {result['call_p50_ms']:.3f}/{result['call_p99_ms']:.3f} ms"
                f" | RSS {result['rss_kb_per_record']:.2f} KB/record"
                f" | store {result['store_mb']:.1f} MB | restart {result['restart_s']:.3f} s"
                f" | reconcile {result['reconcile_s']:.2f} s"
                f" (lag p99 {result['reconcile_lag_p99_ms']:.2f} ms)",
                flush=True,
            )
            for key, value in result.items():
                figures[f"{key}_{label}"] = value
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--seconds", type=float, default=4.0, help="steady play per size")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    sizes = [int(size) for size in args.sizes.split(",")]
    print("goals at 100k: lag p99 <= 5 ms, call p99 <= 2 ms, reconcile <= 10 s, "
          "RSS <= 1.5 KB/record, restart <= 0.5 s")  # fmt: skip
    figures = asyncio.run(run(sizes, args.seconds))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
