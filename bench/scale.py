"""Webhook replicas × players, through a Telegram-like pusher, on one real Redis.

Each replica is the real ``vechnost run`` (BOT_MODE=webhook) in its own process; the
Bot API is the fake one in this process, and its updates are pushed the way Telegram
does (tests/support/webhook_pusher.py: one queue per chat, the next update after a 2xx,
Retry-After honoured) to the replicas behind a round-robin balancer. N players each
start a game and draw D cards, every tap waiting for the previous one's 2xx.

Runs: 1, 2 and 3 replicas; then 3 replicas with one SIGKILLed when half of the draws
are done (the balancer keeps sending to it: refused connections, retried on the next
replica). Printed per run: updates/s, p50/p99 from Telegram's first try to its 2xx,
503 answers, refused connections, and what the players saw: updates lost (never got a
2xx), draws lost (an acknowledged tap with no card of its own), extra draws (a tap that
dealt two), repeats (a card dealt twice) and re-sends (the same card at the same place
again, after an update was processed a second time).

Usage: ``.venv/bin/python bench/scale.py [--players 12] [--draws 15]``. The last line
is one JSON object: every run, and the sums ``updates_lost``, ``draws_lost``,
``repeats`` (``no_master_s`` needs the Sentinel client, not in this tree yet).
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.redis_server import RedisServer
from tests.support.webhook_bot import SECRET, BotReplica, Player, WebhookBotApi, tally
from tests.support.webhook_pusher import WebhookPusher


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _run(
    directory: Path, replicas: int, args: argparse.Namespace, *, kill: bool
) -> dict[str, Any]:
    redis = RedisServer(
        directory / "redis",
        password="bench-redis-pass-31",
        extra_args=("--appendonly", "yes", "--appendfsync", "everysec"),
    ).start()
    bots: list[BotReplica] = []
    try:
        async with WebhookBotApi() as api:
            extra = {"LOG_LEVEL": "WARNING"}
            bots = [
                BotReplica(f"r{n}", directory, api, redis.url, extra=extra) for n in range(replicas)
            ]
            for bot in bots:
                await bot.start()
            await asyncio.gather(*(bot.ready(timeout=60) for bot in bots))
            urls = [bot.url for bot in bots]
            async with WebhookPusher(
                urls, SECRET, balance="round_robin", give_up_after=120
            ) as pusher:
                api.pusher = pusher
                players = [Player(api, 10_000 + n) for n in range(args.players)]
                await asyncio.gather(*(player.begin() for player in players))
                first = len(pusher.attempts)
                done = 0
                killed = asyncio.Event()

                async def play(player: Player) -> None:
                    nonlocal done
                    for _ in range(args.draws):
                        await player.draw()
                        done += 1
                        if kill and not killed.is_set() and done >= args.players * args.draws // 2:
                            killed.set()
                            await bots[-1].kill()

                began = time.monotonic()
                await asyncio.gather(*(play(player) for player in players))
                await pusher.wait_idle(timeout=120)
                elapsed = time.monotonic() - began
            attempts = pusher.attempts[first:]
            first_try: dict[int, float] = {}
            for attempt in attempts:
                first_try.setdefault(attempt.update_id, attempt.started)
            latencies = [
                d.at - first_try[d.update_id] for d in pusher.deliveries if d.update_id in first_try
            ]
            pushed = {a.update_id for a in pusher.attempts}
            delivered = {d.update_id for d in pusher.deliveries}
            figures = tally(players)
            row: dict[str, Any] = {
                "replicas": replicas,
                "killed": kill,
                "players": args.players,
                "updates": len(first_try),
                "updates_per_s": round(len(first_try) / elapsed, 1),
                "p50_ms": round(statistics.median(latencies) * 1000, 1) if latencies else 0.0,
                "p99_ms": round(_pct(latencies, 0.99) * 1000, 1),
                "answers_503": sum(a.status == 503 for a in attempts),
                "no_answer": sum(a.status is None for a in attempts),
                "updates_lost": len(pushed - delivered) + len(pusher.dropped),
                **figures,
            }
    finally:
        for bot in bots:
            if bot.process is not None and bot.process.returncode is None:
                try:
                    await bot.terminate(timeout=40)
                except TimeoutError:
                    await bot.kill()
        redis.stop()
    return row


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--players", type=int, default=12)
    parser.add_argument("--draws", type=int, default=15, help="cards per player (deck: 40+)")
    parser.add_argument("--replicas", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--no-kill", action="store_true", help="skip the replica-kill run")
    args = parser.parse_args()
    plan = [(n, False) for n in args.replicas]
    if not args.no_kill:
        plan.append((max(args.replicas), True))
    rows = []
    header = (
        f"{'replicas':>8} {'killed':>6} {'upd/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'503':>5} "
        f"{'no ans':>6} {'upd lost':>8} {'draws lost':>10} {'extra':>5} {'repeats':>7} "
        f"{'resent':>6}"
    )
    print(header)
    for number, (replicas, kill) in enumerate(plan):
        with tempfile.TemporaryDirectory(prefix=f"vechnost-scale-{number}-") as tmp:
            row = await _run(Path(tmp), replicas, args, kill=kill)
        rows.append(row)
        print(
            f"{row['replicas']:>8} {'yes' if kill else 'no':>6} {row['updates_per_s']:>7.1f} "
            f"{row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} {row['answers_503']:>5} "
            f"{row['no_answer']:>6} {row['updates_lost']:>8} {row['draws_lost']:>10} "
            f"{row['extra_draws']:>5} {row['repeats']:>7} {row['resent']:>6}",
            flush=True,
        )
    summary = {
        "runs": rows,
        "updates_lost": sum(r["updates_lost"] for r in rows),
        "draws_lost": sum(r["draws_lost"] for r in rows),
        "repeats": sum(r["repeats"] for r in rows),
        "extra_draws": sum(r["extra_draws"] for r in rows),
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
