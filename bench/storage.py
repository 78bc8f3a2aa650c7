"""Session get+save through HybridStorage against raw redis.asyncio GET+SET, side by side.

Starts a private redis-server on a free loopback port, then alternates rounds of
the baseline (GET + SET of the same JSON payload) and of HybridStorage in Redis
mode (get_session + save_session: GET + EVALSHA compare-and-set, with the merge
metadata and the local store's copy of what Redis holds), so a noisy machine
affects both alike. The baseline's payload is the very value we store. Also
measures HybridStorage in memory mode (the local store: RAM + SQLite), and, for
reference, the same GET+SET over the storage's own command path
(:class:`~vechnost_bot.redis.pipelined.PipelinedConnection`, which HybridStorage's
record calls use instead of redis-py's ``execute_command``): ours against it is what
the storage's record layer costs over the bare commands.

Besides wall-clock throughput (which other load on the machine moves by ±30 %), it
prints the bench process's CPU time per op in the same bursts: the Python cost of a
call, ours against the baseline's (redis-server's own CPU is not in it), the steadier
figure for work on the storage's per-call cost.
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog
from tests.support.redis_server import RedisServer

from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.redis.pipelined import PipelinedConnection, pack_command
from vechnost_bot.storage import HybridStorage, Session, connect_redis
from vechnost_bot.storage.records import dump_value

Op = Callable[[int], Awaitable[None]]


def _session(chat_id: int) -> Session:
    return Session(
        chat_id=chat_id,
        language="ru",
        theme="couples",
        level=2,
        content="questions",
        drawn={f"couples:{lvl}:questions": [f"q{lvl}-{n}" for n in range(12)] for lvl in (1, 2)},
        adult_confirmed=True,
        last_card="q2-11",
    )


async def _latency_pair(
    a: Op, b: Op, iterations: int, chats: int
) -> tuple[list[float], list[float]]:
    """Alternate ``a`` and ``b`` call by call, so both see the same machine noise."""
    samples_a, samples_b = [], []
    clock = time.perf_counter
    for i in range(iterations):
        chat = i % chats
        started = clock()
        await a(chat)
        middle = clock()
        await b(chat)
        samples_a.append(middle - started)
        samples_b.append(clock() - middle)
    return samples_a, samples_b


async def _throughput(op: Op, tasks: int, per_task: int, chats: int) -> float:
    async def worker(offset: int) -> None:
        for i in range(per_task):
            # each task owns its chats, as one chat's updates come one at a time
            await op((offset + i * tasks) % chats)

    started = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in range(tasks)))
    return tasks * per_task / (time.perf_counter() - started)


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(rounds: int, iterations: int, tasks: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="vechnost-bench-") as tmp:
        server = RedisServer(Path(tmp) / "redis", password="bench-pass").start()
        try:
            return await _measure(server, Path(tmp), rounds, iterations, tasks)
        finally:
            server.stop()


async def _measure(
    server: RedisServer, tmp: Path, rounds: int, iterations: int, tasks: int
) -> dict[str, float]:
    endpoint = RedisEndpoint("127.0.0.1", server.port, password=server.password)
    raw = connect_redis(endpoint)
    hybrid = HybridStorage(local_dir=tmp / "hybrid")
    await hybrid.start(endpoint)
    memory = HybridStorage(client_factory=None, local_dir=tmp / "memory")
    await memory.start(None)
    chats = tasks
    payloads = {}
    for c in range(chats):
        stored = await hybrid.put_record(_session(c))
        await memory.put_record(_session(c))
        payloads[c] = dump_value(stored)  # the same bytes Redis holds for our record
        await raw.set(f"raw:session:{c}", payloads[c])

    async def raw_op(chat: int) -> None:
        value = await raw.get(f"raw:session:{chat}")
        await raw.set(f"raw:session:{chat}", value or payloads[chat])

    wire = PipelinedConnection.for_client(raw)
    assert wire is not None

    async def wire_op(chat: int) -> None:
        key = f"raw:session:{chat}"
        value = await wire.execute(pack_command("GET", key))
        await wire.execute(pack_command("SET", key, value or payloads[chat]))

    def storage_op(storage: HybridStorage) -> Op:
        async def op(chat: int) -> None:
            session = await storage.get_session(chat)
            assert session is not None
            await storage.save_session(session)

        return op

    hybrid_op, memory_op = storage_op(hybrid), storage_op(memory)
    await _latency_pair(raw_op, hybrid_op, 300, chats)  # warm up pools, scripts, caches
    await _throughput(memory_op, tasks, 20, chats)

    lat: dict[str, list[float]] = {"raw": [], "hybrid": []}
    ops: dict[str, list[float]] = {"raw": [], "hybrid": [], "wire": [], "memory": []}
    cpu: dict[str, list[float]] = {"raw": [], "hybrid": [], "wire": []}

    async def burst(name: str, op: Op) -> None:
        cpu_started = time.process_time()
        ops[name].append(await _throughput(op, tasks, per_task, chats))
        cpu[name].append((time.process_time() - cpu_started) / (tasks * per_task))

    per_task = max(1, iterations // tasks // 4)
    for _ in range(rounds):
        raw_lat, hybrid_lat = await _latency_pair(raw_op, hybrid_op, iterations, chats)
        lat["raw"] += raw_lat
        lat["hybrid"] += hybrid_lat
        for _ in range(4):  # short alternating throughput bursts
            await burst("raw", raw_op)
            await burst("hybrid", hybrid_op)
            await burst("wire", wire_op)
        ops["memory"].append(await _throughput(memory_op, tasks, per_task, chats))
    assert hybrid.mode == "redis"
    await hybrid.stop()
    await memory.stop()
    await wire.disconnect()
    await raw.aclose()

    figures = {
        "raw_p50_us": _pct(lat["raw"], 0.50) * 1e6,
        "raw_p99_us": _pct(lat["raw"], 0.99) * 1e6,
        "hybrid_p50_us": _pct(lat["hybrid"], 0.50) * 1e6,
        "hybrid_p99_us": _pct(lat["hybrid"], 0.99) * 1e6,
        "raw_ops_s": statistics.median(ops["raw"]),
        "hybrid_ops_s": statistics.median(ops["hybrid"]),
        "wire_ops_s": statistics.median(ops["wire"]),
        "memory_ops_s": statistics.median(ops["memory"]),
        "raw_cpu_us_per_op": statistics.median(cpu["raw"]) * 1e6,
        "hybrid_cpu_us_per_op": statistics.median(cpu["hybrid"]) * 1e6,
        "wire_cpu_us_per_op": statistics.median(cpu["wire"]) * 1e6,
    }
    figures["p50_ratio"] = figures["hybrid_p50_us"] / figures["raw_p50_us"]
    figures["p99_ratio"] = figures["hybrid_p99_us"] / figures["raw_p99_us"]
    figures["throughput_ratio"] = figures["hybrid_ops_s"] / figures["raw_ops_s"]
    figures["cpu_per_op_ratio"] = figures["hybrid_cpu_us_per_op"] / figures["raw_cpu_us_per_op"]
    figures["cpu_over_wire_ratio"] = figures["hybrid_cpu_us_per_op"] / figures["wire_cpu_us_per_op"]
    return {k: round(v, 3) for k, v in figures.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=2000, help="get+save pairs per round")
    parser.add_argument("--tasks", type=int, default=32, help="concurrent tasks for ops/s")
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    f = asyncio.run(run(args.rounds, args.iterations, args.tasks))
    print("session get+save (one op = get + compare-and-set save)")
    print(f"{'':24}{'p50 us':>10}{'p99 us':>10}{'ops/s':>12}{'cpu us/op':>12}")
    print(
        f"{'raw redis GET+SET':24}{f['raw_p50_us']:>10.1f}{f['raw_p99_us']:>10.1f}"
        f"{f['raw_ops_s']:>12.0f}{f['raw_cpu_us_per_op']:>12.1f}"
    )
    print(
        f"{'HybridStorage (redis)':24}{f['hybrid_p50_us']:>10.1f}{f['hybrid_p99_us']:>10.1f}"
        f"{f['hybrid_ops_s']:>12.0f}{f['hybrid_cpu_us_per_op']:>12.1f}"
    )
    print(f"{'HybridStorage (memory)':24}{'':>10}{'':>10}{f['memory_ops_s']:>12.0f}")
    print(
        f"{'GET+SET, our wire':24}{'':>10}{'':>10}"
        f"{f['wire_ops_s']:>12.0f}{f['wire_cpu_us_per_op']:>12.1f}"
    )
    print(
        f"ratios: p50 {f['p50_ratio']:.2f}x (goal <= 1.2)  p99 {f['p99_ratio']:.2f}x  "
        f"throughput {f['throughput_ratio']:.2f}x (goal >= 0.85)  "
        f"cpu per op {f['cpu_per_op_ratio']:.2f}x (over our wire {f['cpu_over_wire_ratio']:.2f}x)"
    )
    print(json.dumps(f))


if __name__ == "__main__":
    main()
