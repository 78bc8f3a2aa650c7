"""Failover under a steady load: SIGKILL Redis, bring it back after 3 s, count the damage.

Two outages in one run: the first is closed by HybridStorage's own probe alone,
the second by the 'running' event the lifecycle monitor publishes when the
server it restarted answers (as wired in the app).

A private redis-server (AOF, fsync always, so acknowledged writes survive the
kill) serves HybridStorage with its default probe. Tasks keep drawing cards
(read-modify-write of their own sessions) and reading them back. Printed:
failed calls, lost writes (acknowledged state missing from Redis at the end),
p99 call latency during the outage, time to detect, time from the server
answering PING again to Redis mode, records reconciled.
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog
from redis.exceptions import RedisError
from tests.support.redis_server import RedisServer

from vechnost_bot.redis.events import RedisEndpoint, RedisEvent
from vechnost_bot.storage import HybridStorage, RedisStorage, Session, connect_redis


def _pct(samples: list[float], q: float) -> float:
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(tasks: int, outage: float, tmp: Path) -> dict[str, float]:
    server = RedisServer(
        tmp / "redis",
        password="failover-pass",
        extra_args=("--appendonly", "yes", "--appendfsync", "always"),
    ).start()
    endpoint = RedisEndpoint("127.0.0.1", server.port, password=server.password)
    storage = HybridStorage(local_dir=tmp / "local")
    await storage.start(endpoint)
    acked: dict[int, list[str]] = {}
    calls: list[tuple[float, float]] = []  # (start, duration)
    failures: list[BaseException] = []
    stop = asyncio.Event()
    clock = time.time  # wall clock: comparable with status() timestamps

    async def worker(n: int) -> None:
        step = 0
        while not stop.is_set():
            chat = n * 10 + step % 4
            step += 1
            card = f"{n}-{step}"

            def draw(session: Session, card: str = card) -> Session:
                session.drawn.setdefault("deck", []).append(card)
                return session

            for call in ("write", "read"):
                started = clock()
                try:
                    if call == "write":
                        written = await storage.update_session(chat, draw)
                        acked[chat] = list(written.drawn["deck"])
                    else:
                        await storage.get_session(chat)
                except Exception as error:
                    failures.append(error)
                calls.append((started, clock() - started))
            await asyncio.sleep(0.002)

    async def wait_for_answer() -> float:
        probe = connect_redis(endpoint, socket_timeout=0.05)
        try:
            while True:
                try:
                    if await probe.ping():
                        return time.time()
                except RedisError:
                    pass
                await asyncio.sleep(0.001)
        finally:
            await probe.aclose()

    async def outage_cycle(announce: bool) -> dict[str, float]:
        """Kill, wait ``outage`` s, restart; with ``announce`` publish 'running' as the
        lifecycle monitor does, otherwise leave it to the storage's own probe."""
        killed = time.time()
        await asyncio.to_thread(server.kill)
        await asyncio.sleep(outage)
        answered = asyncio.create_task(wait_for_answer())
        starting = asyncio.create_task(asyncio.to_thread(server.start))
        answer = await answered
        if announce:
            await storage.on_redis_event(
                RedisEvent("running", "restarting", endpoint, "auto-started")
            )
        await starting
        deadline = time.time() + 60
        while storage.mode != "redis" and time.time() < deadline:
            await asyncio.sleep(0.001)
        status = storage.status()
        return {
            "killed": killed,
            "detected": float(status["last_failover_at"]),  # type: ignore[arg-type]
            "answer": answer,
            "back": float(status["last_failback_at"]),  # type: ignore[arg-type]
        }

    workers = [asyncio.create_task(worker(n)) for n in range(tasks)]
    await asyncio.sleep(1.5)
    probe_only = await outage_cycle(announce=False)
    await asyncio.sleep(1.5)
    with_event = await outage_cycle(announce=True)
    await asyncio.sleep(1.0)
    stop.set()
    await asyncio.gather(*workers)
    status = storage.status()
    await storage.stop()

    direct = RedisStorage(connect_redis(endpoint, socket_timeout=2))
    lost = 0
    for chat, deck in acked.items():
        stored = await direct.get_session(chat)
        if stored is None or stored.drawn.get("deck") != deck:
            lost += 1
    await direct.close()
    server.stop()

    during = [
        d
        for s, d in calls
        for cycle in (probe_only, with_event)
        if cycle["killed"] <= s <= cycle["back"]
    ]

    def ms(seconds: float) -> float:
        return round(seconds * 1000, 3)

    return {
        "calls": float(len(calls)),
        "failed_calls": float(len(failures)),
        "lost_writes": float(lost),
        "outage_calls": float(len(during)),
        "outage_p50_ms": ms(_pct(during, 0.50)),
        "outage_p99_ms": ms(_pct(during, 0.99)),
        "outage_max_ms": ms(max(during, default=0.0)),
        "time_to_detect_ms": ms(max(c["detected"] - c["killed"] for c in (probe_only, with_event))),
        "answer_to_redis_mode_ms": ms(probe_only["back"] - probe_only["answer"]),
        "answer_to_redis_mode_event_ms": ms(with_event["back"] - with_event["answer"]),
        "records_reconciled": float(status["records_reconciled"]),  # type: ignore[arg-type]
        "failovers": float(status["failovers"]),  # type: ignore[arg-type]
        "failbacks": float(status["failbacks"]),  # type: ignore[arg-type]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--outage", type=float, default=3.0, help="seconds Redis stays dead")
    args = parser.parse_args()
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(
            int(__import__("os").environ.get("BENCH_LOG_LEVEL", "30"))
        )
    )
    with tempfile.TemporaryDirectory(prefix="vechnost-failover-") as tmp:
        f = asyncio.run(run(args.tasks, args.outage, Path(tmp)))
    rows = [
        ("calls made", f"{f['calls']:.0f}", ""),
        ("failed calls", f"{f['failed_calls']:.0f}", "goal 0"),
        ("lost writes", f"{f['lost_writes']:.0f}", "goal 0"),
        ("calls during the outage", f"{f['outage_calls']:.0f}", ""),
        (
            "p50 / p99 / max during outage",
            (f"{f['outage_p50_ms']:.3f} / {f['outage_p99_ms']:.3f} / {f['outage_max_ms']:.3f} ms"),
            "goal p99 <= 2 ms",
        ),
        ("time to detect (worst of 2)", f"{f['time_to_detect_ms']:.1f} ms", ""),
        (
            "answer -> Redis mode, probe only",
            f"{f['answer_to_redis_mode_ms']:.1f} ms",
            "goal <= 1000 ms",
        ),
        (
            "answer -> Redis mode, 'running' event",
            f"{f['answer_to_redis_mode_event_ms']:.1f} ms",
            "goal <= 1000 ms",
        ),
        ("records reconciled", f"{f['records_reconciled']:.0f}", ""),
    ]
    for name, value, goal in rows:
        print(f"{name:38}{value:>30}  {goal}")
    print(json.dumps(f))


if __name__ == "__main__":
    main()
