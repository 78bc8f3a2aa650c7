"""Webhook replicas × players, through a Telegram-like pusher, on one real Redis.

Each replica is the real ``vechnost run`` (BOT_MODE=webhook) in its own process; the
Bot API is the fake one in this process, and its updates are pushed the way Telegram
does (tests/support/webhook_pusher.py: one queue per chat, the next update after a 2xx,
Retry-After honoured) to the replicas behind a round-robin balancer. N players each
start a game and draw D cards, every tap waiting for the previous one's 2xx.

Runs: 1, 2 and 3 replicas; then 3 replicas with one SIGKILLed when half of the draws
are done (the balancer keeps sending to it: refused connections, retried on the next
replica); then 3 replicas on a Sentinel topology (a master, 2 replicas with
``min-replicas-to-write 1``, 3 sentinels) whose master is SIGKILLed when half of the
draws are done: ``no_master_s`` is the time from the kill to the first 2xx of an update
first tried after it, printed beside Sentinel's own election time (``election_s``).
Printed per run: updates/s, p50/p99 from Telegram's first try to its 2xx,
503 answers, refused connections, and what the players saw: updates lost (never got a
2xx), draws lost (an acknowledged tap with no card of its own), extra draws (a tap that
dealt two), repeats (a card dealt twice) and re-sends (the same card at the same place
again, after an update was processed a second time).

Usage: ``.venv/bin/python bench/scale.py [--players 12] [--draws 15]``. The last line
is one JSON object: every run, and the sums ``updates_lost``, ``draws_lost``,
``repeats``, ``extra_draws`` and, from the master-kill run, ``no_master_s`` and
``election_s``.
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
from tests.support.sentinel import MASTER_NAME, SentinelTopology
from tests.support.webhook_bot import SECRET, BotReplica, Player, WebhookBotApi, tally
from tests.support.webhook_pusher import WebhookPusher


def _pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _run(
    directory: Path, replicas: int, args: argparse.Namespace, *, kill: str | None
) -> dict[str, Any]:
    """One run; ``kill``: None, "replica" (the last one) or "master" (Sentinel's)."""
    extra = {"LOG_LEVEL": "WARNING"}
    redis: RedisServer | None = None
    topology: SentinelTopology | None = None
    bots: list[BotReplica] = []
    killed_at: float | None = None
    election: asyncio.Task[Any] | None = None
    try:
        if kill == "master":
            topology = SentinelTopology(
                directory / "topology",
                replicas=2,
                down_after_ms=args.down_after,
                extra_args=("--min-replicas-to-write", "1", "--min-replicas-max-lag", "10"),
            )
            await asyncio.to_thread(topology.start)
            url = "redis://localhost:6379/0"  # the default: with Sentinel the master is named
            extra |= {
                "REDIS_SENTINELS": ",".join(f"{h}:{p}" for h, p in topology.sentinel_addresses),
                "REDIS_SENTINEL_MASTER": MASTER_NAME,
            }
        else:
            redis = RedisServer(
                directory / "redis",
                password="bench-redis-pass-31",
                extra_args=("--appendonly", "yes", "--appendfsync", "everysec"),
            ).start()
            url = redis.url
        async with WebhookBotApi() as api:
            bots = [BotReplica(f"r{n}", directory, api, url, extra=extra) for n in range(replicas)]
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
                    nonlocal done, killed_at, election
                    for _ in range(args.draws):
                        await player.draw()
                        done += 1
                        if kill and not killed.is_set() and done >= args.players * args.draws // 2:
                            killed.set()
                            killed_at = time.monotonic()
                            if topology is not None:
                                old = await asyncio.to_thread(topology.kill_master)
                                election = asyncio.create_task(
                                    topology.wait_new_master(old, killed_at)
                                )
                            else:
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
            outage: dict[str, float] = {}
            if topology is not None and killed_at is not None and election is not None:
                after = [
                    d.at for d in pusher.deliveries if first_try.get(d.update_id, 0.0) > killed_at
                ]
                outage = {
                    "no_master_s": round(min(after) - killed_at, 2) if after else -1.0,
                    "election_s": round((await election).named_after, 2),
                }
            row: dict[str, Any] = {
                "replicas": replicas,
                "killed": kill or "none",
                **outage,
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
        if redis is not None:
            redis.stop()
        if topology is not None:
            await asyncio.to_thread(topology.stop)
    return row


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--players", type=int, default=12)
    parser.add_argument("--draws", type=int, default=15, help="cards per player (deck: 40+)")
    parser.add_argument("--replicas", type=int, nargs="*", default=[1, 2, 3])
    parser.add_argument("--no-kill", action="store_true", help="skip the replica-kill run")
    parser.add_argument("--no-master-kill", action="store_true", help="skip the Sentinel run")
    parser.add_argument("--down-after", type=int, default=1000, help="Sentinel's, in ms")
    args = parser.parse_args()
    plan: list[tuple[int, str | None]] = [(n, None) for n in args.replicas or []]
    if not args.no_kill:
        plan.append((max(args.replicas or [3]), "replica"))
    if not args.no_master_kill:
        plan.append((max(args.replicas or [3]), "master"))
    rows = []
    header = (
        f"{'replicas':>8} {'killed':>7} {'upd/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'503':>5} "
        f"{'no ans':>6} {'upd lost':>8} {'draws lost':>10} {'extra':>5} {'repeats':>7} "
        f"{'resent':>6}"
    )
    print(header)
    for number, (replicas, kill) in enumerate(plan):
        with tempfile.TemporaryDirectory(prefix=f"vechnost-scale-{number}-") as tmp:
            row = await _run(Path(tmp), replicas, args, kill=kill)
        rows.append(row)
        print(
            f"{row['replicas']:>8} {kill or 'no':>7} {row['updates_per_s']:>7.1f} "
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
        **{key: r[key] for r in rows for key in ("no_master_s", "election_s") if key in r},
    }
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    asyncio.run(main())
