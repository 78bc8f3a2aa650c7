"""The bot under load, against a bare python-telegram-bot baseline, in one run.

Three child processes, each polling its own fake Bot API on loopback:

- ``redis``: the real ``vechnost run`` on a redis-server started by the bench (so that
  ``INFO commandstats`` can count the round trips of a draw);
- ``memory``: the real ``vechnost run`` with Redis off;
- ``bare``: a bare python-telegram-bot bot with the same ``concurrent_updates``: /start
  answers with a keyboard, each press with one ``editMessageMedia`` by file id.

Rounds of players alternate between them; each player does /start → theme → level → D
draws, waiting for each answer. Measured from the bench's side: updates per second and
the update-to-reply latency; from /proc: CPU seconds per update of each child (ours ÷
bare is ``cpu_per_update_ratio``). Then, on the Redis-mode bot:

- **draws**: Redis commands per draw, from ``INFO commandstats`` (``redis_calls_per_draw``);
- **flood**: 20 players play (pausing 0.5 s before each tap) while one user taps 300
  times a second; their p95 with and without the flood (``flood_p95_ratio``);
- **burst**: 20 taps 20 ms apart in one chat: cards out of order (``burst_out_of_order``)
  and "something went wrong" answers (``burst_errors``).

The bench's own event loop lag is measured with a 1 ms probe. Last line: one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
from tests.support.fake_bot_api import DEFAULT_TOKEN, FakeBotApi
from tests.support.redis_server import RedisServer, free_port

from vechnost_bot.bot.texts import t
from vechnost_bot.game import render
from vechnost_bot.game.content import load_library

CONCURRENT_UPDATES = 64
CONNECTIONS = 16
THINK = 0.5  # seconds a flood-round player pauses before each tap
_PROGRESS = re.compile(r"(\d+)/\d+")  # the caption's first line; the card text follows
# Commands that are not the bot's game traffic: our INFO, the lifecycle's and the
# storage probe's PINGs, connection set-up.
_NOT_TRAFFIC = {"info", "ping", "client", "hello", "auth", "select", "command"}


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


async def _act(
    api: FakeBotApi, chat: int, kind: str, value: str, latencies: list[float] | None
) -> None:
    since = len(api.calls)
    started = time.monotonic()
    if kind == "say":
        await api.send_message(chat, value, language="en")
    else:
        await api.press(chat, value, language="en")
    reply = await api.wait_reply(chat, since=since, timeout=60)
    if latencies is not None:
        latencies.append(reply.at - started)


async def _player(
    api: FakeBotApi, chat: int, draws: int, latencies: list[float], think: float = 0.0
) -> int:
    await _act(api, chat, "say", "/start", latencies)
    await _act(api, chat, "tap", "T:a", latencies)
    await _act(api, chat, "tap", "V:a:1", latencies)
    for _ in range(draws):
        if think:
            await asyncio.sleep(think)
        await _act(api, chat, "tap", "N:a:1:q", latencies)
    return 3 + draws


class _Child:
    """One bot process with its own fake Bot API."""

    def __init__(self, kind: str, workdir: Path) -> None:
        self.kind = kind
        self.workdir = workdir
        self.api = FakeBotApi()
        self.health = free_port()
        self.process: asyncio.subprocess.Process | None = None
        self.redis: RedisServer | None = None
        self.latencies: list[float] = []
        self.updates = 0
        self.seconds = 0.0
        self.cpu = 0.0
        self.methods: Counter[str] = Counter()  # Bot API calls made in the measured rounds
        self.next_chat = 10_000

    async def start(self) -> None:
        await self.api.start()
        if self.kind == "bare":
            argv = [str(Path(__file__).resolve()), "--bare-bot", self.api.base_url]
            env = dict(os.environ)
        else:
            argv = ["-m", "vechnost_bot", "run"]
            env = self._env()
        with (self.workdir / f"{self.kind}.log").open("wb") as log_file:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, *argv, cwd=self.workdir, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file,
            )  # fmt: skip
        if self.kind == "bare":
            await self.api.wait_for(lambda c: c.method == "sendPhoto", timeout=60)
        else:
            await _wait_ready(self.health, self.kind)

    def _env(self) -> dict[str, str]:
        ours = ("TELEGRAM_", "REDIS_", "HEALTH_", "LOG_", "RATE_LIMIT_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        if self.kind == "redis":
            self.redis = RedisServer(self.workdir / "redis-server", password="bench-pass")
            self.redis.start()
            redis_url = self.redis.url
        else:
            redis_url = f"redis://127.0.0.1:{free_port()}/0"
        env.update(
            TELEGRAM_BOT_TOKEN=DEFAULT_TOKEN,
            TELEGRAM_API_BASE_URL=self.api.base_url,
            TELEGRAM_FILE_BASE_URL=self.api.file_base_url,
            TELEGRAM_PACING="false",  # a local stand-in has no flood limits to keep
            REDIS_URL=redis_url,
            REDIS_AUTO_START="false",
            REDIS_DATA_DIR=str(self.workdir / self.kind),
            HEALTH_PORT=str(self.health),
            LOG_LEVEL="WARNING",
            LOG_FORMAT="json",
            # Above what a bench player sends in a window; the flood is far over it.
            RATE_LIMIT_UPDATES="60",
            RATE_LIMIT_WINDOW="10",
        )
        return env

    def chats(self, count: int) -> range:
        chats = range(self.next_chat, self.next_chat + count)
        self.next_chat += count
        return chats

    async def measured(self, work: Awaitable[int]) -> None:
        """Run ``work`` (returning the updates it sent); count its time and this child's CPU."""
        assert self.process is not None
        cpu = _cpu_seconds(self.process.pid)
        since = len(self.api.calls)
        started = time.monotonic()
        self.updates += await work
        self.seconds += time.monotonic() - started
        self.cpu += _cpu_seconds(self.process.pid) - cpu
        self.methods.update(c.method for c in self.api.calls[since:])

    async def round(self, players: int, draws: int) -> None:
        async def play() -> int:
            counts = await asyncio.gather(
                *(_player(self.api, chat, draws, self.latencies) for chat in self.chats(players))
            )
            return sum(counts)

        await self.measured(play())

    def commandstats(self) -> int:
        """Redis commands executed so far, other than monitoring and set-up."""
        assert self.redis is not None
        stats = self.redis.client().info("commandstats")
        return sum(
            int(value["calls"])
            for name, value in stats.items()
            if name.removeprefix("cmdstat_").split("|")[0] not in _NOT_TRAFFIC
        )

    async def _end_processes(self) -> None:
        process = self.process
        try:
            if process is not None and process.returncode is None:
                process.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(process.wait(), 60)
                except TimeoutError:
                    process.kill()
                    await process.wait()
            await self.api.stop()
        finally:
            if self.redis is not None:
                self.redis.stop()

    async def stop(self) -> dict[str, Any]:
        """Stop the bot, its fake Bot API and its redis-server, also after a failed run
        (a bot that no longer answers its status is stopped all the same)."""
        status: dict[str, Any] = {}
        try:
            if self.kind != "bare":
                status = await _status(self.health)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
            print(f"{self.kind}: no status at stop ({error!r})", file=sys.stderr)
        finally:
            await self._end_processes()
        photos = [c for c in self.api.calls if c.method == "sendPhoto"]
        reused = sum(
            1 for c in photos if not str(c.params.get("photo", "")).startswith("attach://")
        )
        return {
            "mode": status["storage"]["mode"] if status else "bare",
            "updates": self.updates,
            "seconds": round(self.seconds, 3),
            "updates_per_s": round(self.updates / self.seconds, 1),
            "p50_ms": round(statistics.median(self.latencies) * 1000, 2),
            "p99_ms": round(_percentile(self.latencies, 0.99) * 1000, 2),
            "cpu_ms_per_update": round(self.cpu / self.updates * 1000, 3),
            "card_sends": len(photos),
            "uploads": self.api.uploads,
            "file_id_reuse_share": round(reused / len(photos), 3) if photos else 0.0,
            "api_calls_per_update": round(sum(self.methods.values()) / self.updates, 3),
            "api_calls": dict(sorted(self.methods.items())),
            "exit_code": self.process.returncode if self.process else None,
        }


async def _draw_round(bot: _Child, players: int, draws: int) -> float:
    """Redis commands per draw: players already in a deck draw, INFO counts the commands."""
    chats = list(bot.chats(players))
    for chat in chats:
        await _act(bot.api, chat, "say", "/start", None)
        await _act(bot.api, chat, "tap", "T:a", None)
        await _act(bot.api, chat, "tap", "V:a:1", None)
    await asyncio.sleep(0.3)
    before = await asyncio.to_thread(bot.commandstats)

    async def draw(chat: int) -> None:
        for _ in range(draws):
            await _act(bot.api, chat, "tap", "N:a:1:q", None)

    await asyncio.gather(*(draw(chat) for chat in chats))
    await asyncio.sleep(0.3)  # the last draw's writes after its reply
    after = await asyncio.to_thread(bot.commandstats)
    return (after - before) / (players * draws)


async def _flood_round(bot: _Child, players: int, draws: int, rate: float) -> dict[str, float]:
    """The players' p95 without the flood (before and after it, averaged), and with one
    user tapping ``rate`` times a second."""

    async def play(latencies: list[float]) -> None:
        await asyncio.gather(
            *(_player(bot.api, c, draws, latencies, think=THINK) for c in bot.chats(players))
        )

    before: list[float] = []
    await play(before)
    flooder = next(iter(bot.chats(1)))
    await _act(bot.api, flooder, "say", "/start", None)
    await _act(bot.api, flooder, "tap", "T:a", None)
    await _act(bot.api, flooder, "tap", "V:a:1", None)
    done = asyncio.Event()
    sent = 0

    async def flood() -> None:
        nonlocal sent
        started = time.monotonic()
        while not done.is_set():
            due = int((time.monotonic() - started) * rate)
            while sent < due:
                await bot.api.press(flooder, "N:a:1:q")
                sent += 1
            await asyncio.sleep(0.005)

    flooding = asyncio.create_task(flood())
    await asyncio.sleep(0.5)
    flooded: list[float] = []
    started = time.monotonic()
    await play(flooded)
    seconds = time.monotonic() - started
    done.set()
    await flooding
    await asyncio.sleep(1.0)  # the flood's queue drains
    after: list[float] = []
    await play(after)
    quiet_p95 = (_percentile(before, 0.95) + _percentile(after, 0.95)) / 2
    flood_p95 = _percentile(flooded, 0.95)
    return {
        "flood_players": players,
        "flood_updates": sent,
        "flood_rate_per_s": round(sent / (seconds + 0.5), 1),
        "quiet_p95_ms": round(quiet_p95 * 1000, 2),
        "flooded_p95_ms": round(flood_p95 * 1000, 2),
        "flood_p95_ratio": round(flood_p95 / quiet_p95, 3),
    }


async def _burst_round(bot: _Child, taps: int = 20, gap: float = 0.02) -> dict[str, int]:
    """``taps`` taps ``gap`` s apart in one chat: cards out of order, error answers."""
    chat = next(iter(bot.chats(1)))
    await _act(bot.api, chat, "say", "/start", None)
    await _act(bot.api, chat, "tap", "T:p", None)
    since = len(bot.api.calls)
    for _ in range(taps):
        await bot.api.press(chat, "N:p:1:q")
        await asyncio.sleep(gap)
    deadline = time.monotonic() + 30
    photos: list[int] = []
    while time.monotonic() < deadline:
        replies = bot.api.replies(chat, since)
        photos = [
            int(m.group(1))
            for c in replies
            if c.method == "sendPhoto" and (m := _PROGRESS.search(str(c.params.get("caption"))))
        ]
        if len(photos) >= taps:
            break
        await asyncio.sleep(0.05)
    error = t("en", "error")
    errors = sum(1 for c in bot.api.replies(chat, since) if error in str(c.params.get("text")))
    out_of_order = sum(1 for i, n in enumerate(photos) if n != i + 1)
    return {
        "burst_taps": taps,
        "burst_cards": len(photos),
        "burst_out_of_order": out_of_order + (taps - len(photos)),
        "burst_errors": errors,
    }


class _LagProbe:
    """The bench's own event loop: how late a 1 ms sleep wakes up."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lags.append(time.perf_counter() - before - 0.001)

    def __enter__(self) -> _LagProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()


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


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="vechnost-bench-") as tmp, _LagProbe() as probe:
        bots = {kind: _Child(kind, Path(tmp)) for kind in ("redis", "memory", "bare")}
        extra: dict[str, Any] = {}
        try:
            for bot in bots.values():
                await bot.start()
            for bot in bots.values():  # not measured: every card rendered and uploaded once
                for deck in ("a", "p"):
                    chat = next(iter(bot.chats(1)))
                    await _act(bot.api, chat, "say", "/start", None)
                    await _act(bot.api, chat, "tap", f"T:{deck}", None)
                    if deck == "a":  # Provocation has one level: its deck comes at once
                        await _act(bot.api, chat, "tap", "V:a:1", None)
                    for _ in range(45):
                        await _act(bot.api, chat, "tap", f"N:{deck}:1:q", None)
            # Rounds alternate between the bots so that a noisy machine hits all alike.
            for _ in range(args.rounds):
                for bot in bots.values():
                    await bot.round(args.players, args.draws)
            redis = bots["redis"]
            extra["redis_calls_per_draw"] = round(await _draw_round(redis, 10, 10), 2)
            extra.update(await _flood_round(redis, 20, args.draws // 2, args.flood_rate))
            extra.update(await _burst_round(redis))
        finally:
            results = {kind: await bot.stop() for kind, bot in bots.items()}
        extra["bench_loop_lag_p99_ms"] = round(_percentile(probe.lags, 0.99) * 1000, 2)
    return {"bots": results, **extra}


def _bare_bot(base_url: str) -> int:
    """A bare python-telegram-bot bot: /start → a keyboard; a press → one editMessageMedia
    by file id (uploaded once at start-up)."""
    import io

    from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputMediaPhoto, Update
    from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("Next", callback_data="N")]])
    file_id = ""

    async def post_init(app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        nonlocal file_id
        card = next(iter(load_library().cards()))
        image = render.render_card(card, "en", footer="x")
        message = await app.bot.send_photo(1, io.BytesIO(image))
        file_id = message.photo[-1].file_id

    async def start(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await update.effective_chat.send_message("Hi", reply_markup=keyboard)

    async def press(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer()
        await query.edit_message_media(InputMediaPhoto(file_id), reply_markup=keyboard)

    app = (
        Application.builder()
        .token(DEFAULT_TOKEN)
        .base_url(base_url)
        .concurrent_updates(CONCURRENT_UPDATES)
        .connection_pool_size(CONNECTIONS)  # the transport ours uses
        .post_init(post_init)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(press))
    app.run_polling(poll_interval=0.0, timeout=10, stop_signals=(signal.SIGTERM, signal.SIGINT))
    return 0


def main() -> int:
    """Run the benchmark and print a table, then one JSON line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--players", type=int, default=50)
    parser.add_argument("--draws", type=int, default=20, help="cards per player")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per bot")
    parser.add_argument("--flood-rate", type=float, default=300.0, help="flood taps per s")
    parser.add_argument("--render-samples", type=int, default=30)
    parser.add_argument("--bare-bot", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_bot:
        return _bare_bot(args.bare_bot)

    render_figures = _render_cold(args.render_samples)
    figures = asyncio.run(_main(args))
    bots: dict[str, dict[str, Any]] = figures.pop("bots")
    print(
        f"{args.rounds} rounds per bot, alternating; each: {args.players} players at once, "
        f"3 + {args.draws} updates each; fake Bot API on loopback; "
        f"concurrent_updates={CONCURRENT_UPDATES}"
    )
    print(
        f"{'bot':<8}{'upd/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms/upd':>12}"
        f"{'sends':>7}{'uploads':>9}{'reuse':>7}"
    )
    for kind, row in bots.items():
        print(
            f"{kind:<8}{row['updates_per_s']:>9}{row['p50_ms']:>9}{row['p99_ms']:>9}"
            f"{row['cpu_ms_per_update']:>12}{row['card_sends']:>7}{row['uploads']:>9}"
            f"{row['file_id_reuse_share']:>7}"
        )
    bare_cpu = bots["bare"]["cpu_ms_per_update"]
    ratio = round(bots["memory"]["cpu_ms_per_update"] / bare_cpu, 3)
    redis_ratio = round(bots["redis"]["cpu_ms_per_update"] / bare_cpu, 3)
    print(f"CPU per update, ours ÷ bare: memory mode {ratio}, Redis mode {redis_ratio} (≤ 1.25)")
    print(f"Redis commands per draw: {figures['redis_calls_per_draw']} (≤ 3)")
    print(
        f"flood: {figures['flood_players']} players, one user at {figures['flood_rate_per_s']}"
        f" taps/s ({figures['flood_updates']} taps): p95 {figures['quiet_p95_ms']} ms → "
        f"{figures['flooded_p95_ms']} ms, ratio {figures['flood_p95_ratio']} (≤ 1.5)"
    )
    print(
        f"burst: {figures['burst_taps']} taps 20 ms apart: {figures['burst_cards']} cards, "
        f"{figures['burst_out_of_order']} out of order, {figures['burst_errors']} errors (0, 0)"
    )
    print(
        f"card render, cold: first {render_figures['render_first_ms']} ms (fonts + background), "
        f"then {render_figures['render_uncached_card_ms']} ms per uncached card; "
        f"bench loop lag p99 {figures['bench_loop_lag_p99_ms']} ms"
    )
    summary = {
        "players": args.players,
        "draws_per_player": args.draws,
        "rounds": args.rounds,
        **{
            f"{kind}_{key}": value
            for kind, row in bots.items()
            for key, value in row.items()
            if key not in {"mode", "players"}
        },
        "cpu_per_update_ratio": ratio,
        "cpu_per_update_ratio_redis": redis_ratio,
        **figures,
        **render_figures,
        "modes_seen": [row["mode"] for row in bots.values()],
    }
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
