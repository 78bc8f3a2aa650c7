"""What answering Telegram only after processing costs, against answering at once.

Telegram pushes (tests/support/webhook_pusher.py: one queue per chat, the next update
after a 2xx) C chats x U updates to 1 or 2 replicas behind a round-robin balancer.
Processing one update is one step of a game: an append to the chat's list in a real
redis-server plus ``--work-ms`` of awaited I/O (the reply the bot sends to Telegram).

* ``ours``: :class:`vechnost_bot.bot.webhook.WebhookServer`, processing before the
  reply, with the update-id gate in that Redis;
* ``queue_seq``: python-telegram-bot's custom-webhook example: 200 at once, the update
  on a queue that one task per replica works through in order;
* ``queue_conc``: the same with updates processed concurrently (PTB's
  ``concurrent_updates``), up to 40 at once per replica: the replicas share one
  redis-py pool of 100 connections here.

Printed per variant: updates/s, p50/p99 from push to processed, chats whose updates
were processed out of order, and the event loop's lag (1 ms probe). The replicas run
in this process, on one loop: the figures compare the designs, not machines.

Usage: ``.venv/bin/python bench/webhook.py [--chats 50] [--updates 10] [--work-ms 20]``.
The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tests.support.redis_server import RedisServer
from tests.support.webhook_pusher import WebhookPusher, chat_of

from vechnost_bot.bot.webhook import SECRET_HEADER, AsgiServer, WebhookServer
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage import RedisStorage, connect_redis

SECRET = "bench-secret"
PATH = "/hook"
Work = Callable[[dict[str, Any]], Awaitable[None]]


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class _Lag:
    """Sleeps 1 ms in a loop and records how late each wake-up is."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.001)
            self.samples.append(time.perf_counter() - began - 0.001)

    def __enter__(self) -> _Lag:
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


def _queue_replica(work: Work, *, concurrent: bool) -> tuple[Starlette, asyncio.Task[None]]:
    """PTB's custom-webhook shape: put the update on a queue, answer 200 at once."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    tasks: set[asyncio.Task[None]] = set()
    limit = asyncio.Semaphore(40)

    async def bounded(update: dict[str, Any]) -> None:
        async with limit:
            await work(update)

    async def consume() -> None:
        while True:
            update = await queue.get()
            if concurrent:
                task = asyncio.create_task(bounded(update))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            else:
                await work(update)

    async def hook(request: Request) -> Response:
        if request.headers.get(SECRET_HEADER) != SECRET:
            return Response(status_code=403)
        queue.put_nowait(await request.json())
        return Response(status_code=200)

    return Starlette(routes=[Route(PATH, hook, methods=["POST"])]), asyncio.create_task(consume())


async def _variant(
    name: str, replicas: int, server: RedisServer, args: argparse.Namespace
) -> dict[str, float]:
    client = connect_redis(RedisEndpoint("127.0.0.1", server.port), socket_timeout=2)
    storage = RedisStorage(client, owns_client=False)
    await client.flushdb()
    pushed_at: dict[int, float] = {}
    processed_at: dict[int, float] = {}
    order: dict[int, list[int]] = defaultdict(list)
    all_done = asyncio.Event()
    total = args.chats * args.updates

    async def work(update: dict[str, Any]) -> None:
        chat = chat_of(update)
        await client.rpush(f"bench:order:{chat}", update["update_id"])
        await asyncio.sleep(args.work_ms / 1000)  # the reply sent to Telegram
        order[chat].append(update["update_id"])
        processed_at[update["update_id"]] = time.monotonic()
        if len(processed_at) == total:
            all_done.set()

    servers: list[Any] = []
    consumers: list[asyncio.Task[None]] = []
    for _ in range(replicas):
        if name == "ours":
            servers.append(
                WebhookServer(
                    host="127.0.0.1", port=0, path=PATH, secret=SECRET, process=work, gate=storage
                )
            )
        else:
            app, consumer = _queue_replica(work, concurrent=name == "queue_conc")
            servers.append(AsgiServer(app, "127.0.0.1", 0))
            consumers.append(consumer)
    for replica in servers:
        await replica.start()
    urls = [
        replica.url if isinstance(replica, WebhookServer) else replica.url + PATH
        for replica in servers
    ]
    pushed: dict[int, list[int]] = defaultdict(list)
    try:
        async with WebhookPusher(urls, SECRET, balance="round_robin") as pusher:
            with _Lag() as lag:
                began = time.monotonic()
                for _ in range(args.updates):
                    for chat in range(1, args.chats + 1):
                        update_id = pusher.push({"message": {"chat": {"id": chat}, "text": "x"}})
                        pushed_at[update_id] = time.monotonic()
                        pushed[chat].append(update_id)
                await pusher.wait_idle(timeout=600)
                # Bounded: an update answered but never processed must show, not hang.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(all_done.wait(), 30)
                elapsed = time.monotonic() - began
    finally:
        for consumer in consumers:
            consumer.cancel()
        for replica in servers:
            await replica.stop()
        await client.aclose()
    latencies = [processed_at[i] - pushed_at[i] for i in processed_at]
    return {
        "updates_per_s": total / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": _pct(latencies, 0.99) * 1000,
        "unprocessed": float(total - len(processed_at)),
        "chats_out_of_order": float(sum(order[c] != pushed[c] for c in pushed)),
        "loop_lag_p99_ms": _pct(lag.samples, 0.99) * 1000,
        "loop_lag_max_ms": max(lag.samples, default=0.0) * 1000,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chats", type=int, default=50)
    parser.add_argument("--updates", type=int, default=10)
    parser.add_argument("--work-ms", type=float, default=20.0)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="vechnost-webhook-bench-") as tmp:
        server = RedisServer(Path(tmp) / "redis").start()
        try:
            print(f"{'variant':<14} {'replicas':>8} {'upd/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
                  f"{'chats out of order':>18} {'lost':>5} {'lag p99 ms':>10}")  # fmt: skip
            for replicas in (1, 2):
                for name in ("ours", "queue_seq", "queue_conc"):
                    row = await _variant(name, replicas, server, args)
                    figures[f"{name}_{replicas}"] = {k: round(v, 2) for k, v in row.items()}
                    print(
                        f"{name:<14} {replicas:>8} {row['updates_per_s']:>8.0f} "
                        f"{row['p50_ms']:>8.1f} {row['p99_ms']:>8.1f} "
                        f"{row['chats_out_of_order']:>11.0f}/{args.chats:<6} "
                        f"{row['unprocessed']:>5.0f} "
                        f"{row['loop_lag_p99_ms']:>10.2f}"
                    )
        finally:
            server.stop()
    for replicas in (1, 2):
        ours, seq = figures[f"ours_{replicas}"], figures[f"queue_seq_{replicas}"]
        conc = figures[f"queue_conc_{replicas}"]
        figures[f"ratio_{replicas}"] = {
            "throughput_ours_vs_queue_conc": round(
                ours["updates_per_s"] / conc["updates_per_s"], 2
            ),
            "throughput_ours_vs_queue_seq": round(ours["updates_per_s"] / seq["updates_per_s"], 2),
            "p99_ours_vs_queue_seq": round(ours["p99_ms"] / seq["p99_ms"], 2),
        }
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
