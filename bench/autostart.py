"""How long the Redis lifecycle takes, measured side by side in one run.

1. baseline: raw ``redis-server`` spawn (default config, no password) → first PONG;
2. ``RedisAutoStartManager.initialize()`` (fresh data dir each run: discovery,
   external probe, password, config, spawn, PING) → first successful write;
3. their ratio (goal: at most 1.5);
4. SIGKILL of an owned server → PONG from its replacement, with the default
   health check interval and with 0.5 s.

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


def manager_default_interval() -> float:
    return float(Settings.model_fields["redis_health_check_interval"].default)


def _phase() -> float:
    return int.from_bytes(os.urandom(2), "big") / 65535


def _summary(samples: list[float]) -> dict[str, float]:
    return {"min": round(min(samples), 4), "median": round(statistics.median(samples), 4)}


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
    }
    rows = [
        ("raw redis-server spawn → PONG", figures["raw_spawn_to_pong_s"]),
        ("initialize() → first write", figures["initialize_to_first_write_s"]),
        (
            f"SIGKILL → PONG (interval {manager_default_interval():g} s)",
            figures["sigkill_to_pong_default_interval_s"],
        ),
        ("SIGKILL → PONG (interval 0.5 s)", figures["sigkill_to_pong_interval_0_5_s"]),
    ]
    print(f"{'figure':<40} {'min ms':>10} {'median ms':>10}")
    for name, summary in rows:
        assert isinstance(summary, dict)
        print(f"{name:<40} {summary['min'] * 1000:>10.1f} {summary['median'] * 1000:>10.1f}")
    print(f"{'ratio initialize/raw (median, goal ≤ 1.5)':<40} {figures['ratio_median']:>21}")
    print(json.dumps(figures))


if __name__ == "__main__":
    asyncio.run(main())
