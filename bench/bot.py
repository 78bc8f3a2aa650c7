"""The bot under load: N simulated players at once against the fake Bot API.

Runs two real ``vechnost run`` processes side by side in one run: one with an
auto-started Redis (Redis mode), one with Redis off (memory mode); rounds of
players alternate between them. Each player
does /start → theme → level → D draws, waiting for each answer like a (very
fast) human. Measured from the bench's side: updates per second and the
update-to-reply latency (the moment the update is queued at the fake API until
the bot's reply arrives there). Also: cold card render time, and the share of
card sends that reused a Telegram file id instead of uploading.
Last line: one JSON object with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from tests.support.fake_bot_api import DEFAULT_TOKEN, FakeBotApi
from tests.support.redis_server import free_port

from vechnost_bot.game import render
from vechnost_bot.game.content import load_library


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


async def _status(port: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/status") as r:
        result: dict[str, Any] = await r.json()
        return result


async def _wait_ready(port: int, mode: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, ValueError):
            status = await _status(port)
            if status["bot"]["polling"] and status["storage"]["mode"] == mode:
                return status
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the bot did not become ready in {mode} mode")


async def _player(api: FakeBotApi, chat: int, draws: int, latencies: list[float]) -> int:
    updates = 0

    async def act(kind: str, value: str) -> None:
        nonlocal updates
        since = len(api.calls)
        started = time.monotonic()
        if kind == "say":
            await api.send_message(chat, value, language="en")
        else:
            await api.press(chat, value, language="en")
        reply = await api.wait_reply(chat, since=since, timeout=60)
        latencies.append(reply.at - started)
        updates += 1

    await act("say", "/start")
    await act("tap", "T:a")
    await act("tap", "V:a:1")
    for _ in range(draws):
        await act("tap", "N:a:1:q")
    return updates


class _BotUnderTest:
    """One ``vechnost run`` child in a given storage mode, with its own fake Bot API."""

    def __init__(self, mode: str, workdir: Path) -> None:
        self.mode = mode
        self.workdir = workdir
        self.api = FakeBotApi()
        self.health = free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.latencies: list[float] = []
        self.updates = 0
        self.seconds = 0.0
        self.next_chat = 10_000

    async def start(self) -> None:
        await self.api.start()
        ours = ("TELEGRAM_", "REDIS_", "HEALTH_", "LOG_", "RATE_LIMIT_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        env.update(
            TELEGRAM_BOT_TOKEN=DEFAULT_TOKEN,
            TELEGRAM_API_BASE_URL=self.api.base_url,
            TELEGRAM_FILE_BASE_URL=self.api.file_base_url,
            REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
            REDIS_AUTO_START="true" if self.mode == "redis" else "false",
            REDIS_DATA_DIR=str(self.workdir / self.mode),
            HEALTH_PORT=str(self.health),
            LOG_LEVEL="WARNING",
            LOG_FORMAT="json",
            RATE_LIMIT_UPDATES="1000000",
        )
        with (self.workdir / f"{self.mode}.log").open("wb") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "vechnost_bot", "run", cwd=self.workdir, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            )  # fmt: skip
        await _wait_ready(self.health, self.mode)

    async def round(self, players: int, draws: int) -> None:
        chats = range(self.next_chat, self.next_chat + players)
        self.next_chat += players
        started = time.monotonic()
        counts = await asyncio.gather(
            *(_player(self.api, chat, draws, self.latencies) for chat in chats)
        )
        self.seconds += time.monotonic() - started
        self.updates += sum(counts)

    async def stop(self) -> dict[str, Any]:
        status = await _status(self.health)
        process = self.process
        if process is not None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
                await process.wait()
        await self.api.stop()
        photos = [c for c in self.api.calls if c.method == "sendPhoto"]
        reused = sum(
            1 for c in photos if not str(c.params.get("photo", "")).startswith("attach://")
        )
        return {
            "mode": status["storage"]["mode"],
            "updates": self.updates,
            "seconds": round(self.seconds, 3),
            "updates_per_s": round(self.updates / self.seconds, 1),
            "p50_ms": round(statistics.median(self.latencies) * 1000, 2),
            "p99_ms": round(_percentile(self.latencies, 0.99) * 1000, 2),
            "card_sends": len(photos),
            "uploads": self.api.uploads,
            "file_id_reuse_share": round(reused / len(photos), 3) if photos else 0.0,
            "exit_code": process.returncode if process else None,
        }


def _render_cold(samples: int) -> dict[str, float]:
    library = load_library()
    cards = list(library.cards())[:samples]
    render._background_image.cache_clear()
    render._font.cache_clear()
    render.layout_text.cache_clear()
    started = time.perf_counter()
    render.render_card(cards[0], "ru", footer="x")
    first = time.perf_counter() - started
    times = []
    for card in cards[1:]:
        started = time.perf_counter()
        render.render_card(card, "en", footer="x")
        times.append(time.perf_counter() - started)
    return {
        "render_first_ms": round(first * 1000, 1),
        "render_uncached_card_ms": round(statistics.median(times) * 1000, 1),
    }


async def _main(players: int, draws: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vechnost-bench-") as tmp:
        bots = [_BotUnderTest(mode, Path(tmp)) for mode in ("redis", "memory")]
        try:
            for bot in bots:
                await bot.start()
            # Rounds alternate between the modes so that a noisy machine hits both alike.
            for _ in range(rounds):
                for bot in bots:
                    await bot.round(players, draws)
        finally:
            results = {}
            for bot in bots:
                results[bot.mode] = await bot.stop()
    return results


def main() -> int:
    """Run the benchmark and print a table, then one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--players", type=int, default=50)
    parser.add_argument("--draws", type=int, default=20, help="cards per player")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per mode")
    parser.add_argument("--render-samples", type=int, default=30)
    args = parser.parse_args()

    render_figures = _render_cold(args.render_samples)
    results = asyncio.run(_main(args.players, args.draws, args.rounds))
    print(
        f"{args.rounds} rounds per mode, alternating; each: {args.players} players at once, "
        f"3 + {args.draws} updates each; fake Bot API on loopback"
    )
    print(
        f"{'mode':<8}{'upd/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'sends':>7}{'uploads':>9}{'reuse':>7}"
    )
    for mode, row in results.items():
        print(
            f"{mode:<8}{row['updates_per_s']:>9}{row['p50_ms']:>9}{row['p99_ms']:>9}"
            f"{row['card_sends']:>7}{row['uploads']:>9}{row['file_id_reuse_share']:>7}"
        )
    print(
        f"card render, cold: first {render_figures['render_first_ms']} ms (fonts + background), "
        f"then {render_figures['render_uncached_card_ms']} ms per uncached card"
    )
    summary = {
        "players": args.players,
        "draws_per_player": args.draws,
        "rounds": args.rounds,
        **{
            f"{mode}_{key}": value
            for mode, row in results.items()
            for key, value in row.items()
            if key not in {"mode", "players"}
        },
        **render_figures,
        "modes_seen": [row["mode"] for row in results.values()],
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
