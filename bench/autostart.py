"""How long the Redis lifecycle takes, measured side by side in one run.

1. baseline: raw ``redis-server`` spawn (default config, no password) → first PONG;
2. ``RedisAutoStartManager.initialize()`` (fresh data dir each run: discovery,
   external probe, password, config, spawn, PING) → first successful write;
3. their ratio (goal: at most 1.5);
4. SIGKILL of an owned server → PONG from its replacement, with the default
   health check interval (goal: median ≤ 30 ms; the pidfd watch wakes the monitor)
   and with 0.5 s;
5. the time a HybridStorage wired to the lifecycle spends in memory mode per
   kill, with a writer calling it every millisecond (goal: median ≤ 100 ms).

Usage: ``.venv/bin/python bench/autostart.py [--runs N] [--kill-runs N]``.
The last line printed is one JSON object with every figure (seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis
import structlog
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from vechnost_bot.config import Settings
from vechnost_bot.redis import RedisAutoStartManager
from vechnost_bot.redis.process import pick_free_port
from vechnost_bot.storage.hybrid import HybridStorage
from vechnost_bot.storage.memory import InMemoryStorage
from vechnost_bot.storage.redis import connect_redis

_POLL = 0.005


def _client(port: int, password: str | None = None) -> aioredis.Redis:
    return aioredis.Redis(
        port=port,
        password=password,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        retry=Retry(NoBackoff(), 0),
    )


async def _until_pong(port: int, password: str | None, deadline: float) -> None:
    client = _client(port, password)
    try:
        while time.monotonic() < deadline:
            try:
                if await client.ping():
                    return
            except RedisError:
                pass
            await asyncio.sleep(_POLL)
        raise TimeoutError(f"no PONG on port {port}")
    finally:
        await client.aclose()


async def raw_spawn(binary: str) -> float:
    """Seconds from spawning a bare redis-server to its first PONG."""
    with tempfile.TemporaryDirectory() as directory:
        port = pick_free_port()
        started = time.monotonic()
        process = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            directory,
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            await _until_pong(port, None, started + 10)
            return time.monotonic() - started
        finally:
            process.kill()
            await process.wait()


async def managed_start() -> float:
    """Seconds from initialize() (fresh data dir) to the first successful write."""
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(
            redis_url=f"redis://127.0.0.1:{pick_free_port()}/0",
            redis_data_dir=Path(directory) / "data",
        )
        manager = RedisAutoStartManager(settings)
        started = time.monotonic()
        try:
            if not await manager.initialize():
                raise RuntimeError("initialize() failed")
            endpoint = manager.endpoint
            assert endpoint is not None
            client = _client(endpoint.port, endpoint.password)
            await client.set("bench", "1")
            elapsed = time.monotonic() - started
            await client.aclose()
            return elapsed
        finally:
            await manager.stop()


async def kill_to_pong(interval: float | None) -> float:
    """Seconds from SIGKILL of the owned server to PONG from its replacement."""
    with tempfile.TemporaryDirectory() as directory:
        values: dict[str, object] = {
            "redis_url": f"redis://127.0.0.1:{pick_free_port()}/0",
            "redis_data_dir": Path(directory) / "data",
        }
        if interval is not None:
            values["redis_health_check_interval"] = interval
        manager = RedisAutoStartManager(Settings(**values))  # type: ignore[arg-type]
        await manager.start()
        try:
            endpoint = manager.endpoint
            pid = manager.status()["pid"]
            assert endpoint is not None
            assert isinstance(pid, int)
            # Let the monitor settle into its rhythm at a random phase of the interval.
            await asyncio.sleep((interval or manager_default_interval()) * _phase())
            os.kill(pid, signal.SIGKILL)
            started = time.monotonic()
            await _until_pong(endpoint.port, endpoint.password, started + 60)
            return time.monotonic() - started
        finally:
            await manager.stop()


async def memory_mode_per_kill() -> float:
    """Seconds a storage wired to the lifecycle serves from memory around one SIGKILL."""
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(
            redis_url=f"redis://127.0.0.1:{pick_free_port()}/0",
            redis_data_dir=Path(directory) / "data",
        )
        manager = RedisAutoStartManager(settings)
        await manager.start()
        storage = HybridStorage(client_factory=connect_redis, memory=InMemoryStorage())
        await storage.start(manager.endpoint)
        manager.subscribe(storage.on_redis_event)
        stop = asyncio.Event()
        left_redis: list[float] = []

        async def writer() -> None:
            count = 0
            while not stop.is_set():
                count += 1
                await storage.incr("bench", 1)
                if storage.mode == "memory" and not left_redis:
                    left_redis.append(time.monotonic())
                await asyncio.sleep(0.001)

        task = asyncio.create_task(writer())
        try:
            await asyncio.sleep(0.3 + _phase() * 0.5)
            pid = manager.status()["pid"]
            assert isinstance(pid, int)
            assert storage.mode == "redis"
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            while storage.mode == "redis" and time.monotonic() - killed < 10:
                await asyncio.sleep(0.0005)
            entered = left_redis[0] if left_redis else time.monotonic()
            while storage.mode != "redis":
                if time.monotonic() - killed > 60:
                    raise TimeoutError("storage did not return to Redis mode")
                await asyncio.sleep(0.0005)
            return time.monotonic() - min(entered, time.monotonic())
        finally:
            stop.set()
            await task
            await storage.stop()
            await manager.stop()


def manager_default_interval() -> float:
    return float(Settings.model_fields["redis_health_check_interval"].default)


def _phase() -> float:
    return int.from_bytes(os.urandom(2), "big") / 65535


def _summary(samples: list[float]) -> dict[str, float]:
    return {
        "min": round(min(samples), 4),
        "median": round(statistics.median(samples), 4),
        "max": round(max(samples), 4),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs of each start figure")
    parser.add_argument("--kill-runs", type=int, default=10, help="runs of each kill figure")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed")

    raw: list[float] = []
    managed: list[float] = []
    await raw_spawn(binary)  # warm the page cache for both sides
    for _ in range(args.runs):
        # Interleaved, so that a noisy moment hurts both sides alike.
        raw.append(await raw_spawn(binary))
        managed.append(await managed_start())
    default_kill = [await kill_to_pong(None) for _ in range(args.kill_runs)]
    fast_kill = [await kill_to_pong(0.5) for _ in range(args.kill_runs)]
    memory_mode = [await memory_mode_per_kill() for _ in range(args.kill_runs)]

    figures = {
        "runs": args.runs,
        "kill_runs": args.kill_runs,
        "raw_spawn_to_pong_s": _summary(raw),
        "initialize_to_first_write_s": _summary(managed),
        "ratio_median": round(statistics.median(managed) / statistics.median(raw), 3),
        "ratio_min": round(min(managed) / min(raw), 3),
        "sigkill_to_pong_default_interval_s": _summary(default_kill),
        "default_interval_s": manager_default_interval(),
        "sigkill_to_pong_interval_0_5_s": _summary(fast_kill),
        "memory_mode_per_kill_s": _summary(memory_mode),
    }
    rows = [
        ("raw redis-server spawn → PONG", figures["raw_spawn_to_pong_s"]),
        ("initialize() → first write", figures["initialize_to_first_write_s"]),
        (
            f"SIGKILL → PONG (interval {manager_default_interval():g} s)",
            figures["sigkill_to_pong_default_interval_s"],
        ),
        ("SIGKILL → PONG (interval 0.5 s)", figures["sigkill_to_pong_interval_0_5_s"]),
        ("storage in memory mode per kill", figures["memory_mode_per_kill_s"]),
    ]
    print(f"{'figure':<40} {'min ms':>10} {'median ms':>10} {'max ms':>10}")
    for name, summary in rows:
        assert isinstance(summary, dict)
        print(
            f"{name:<40} {summary['min'] * 1000:>10.1f} {summary['median'] * 1000:>10.1f} "
            f"{summary['max'] * 1000:>10.1f}"
        )
    print("goals: SIGKILL → PONG (default interval) median ≤ 30 ms; memory mode median ≤ 100 ms")
    print(f"{'ratio initialize/raw (median, goal ≤ 1.5)':<40} {figures['ratio_median']:>21}")
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
