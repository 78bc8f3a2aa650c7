"""A card draw costs at most 8 Redis commands (5 sequential rounds) in the common case, counted by a
private redis-server itself (MONITOR lists each command a client sent; commands a
script runs are marked ``lua`` and are not round trips), cross-checked with INFO
commandstats."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.conftest import RedisFactory
from tests.support.bot_harness import running_bot
from tests.support.decks import write_decks
from tests.support.redis_server import RedisServer
from tests.support.storage_helpers import endpoint_of
from vechnost_bot.game.content import load_library
from vechnost_bot.storage import HybridStorage, UserStats

PER_DECK = 8


@contextmanager
def _monitor(server: RedisServer) -> Iterator[list[str]]:
    """Every command clients send to ``server`` meanwhile (script internals left out)."""
    seen: list[str] = []
    client = server.client()
    ready = threading.Event()
    stop = threading.Event()

    def watch() -> None:
        with client.monitor() as monitor:
            ready.set()
            try:
                for entry in monitor.listen():
                    if stop.is_set():
                        return
                    if entry.get("client_type") != "lua":
                        seen.append(str(entry["command"])[:90])
            except redis.ConnectionError:
                return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    ready.wait(5)
    try:
        yield seen
    finally:
        stop.set()
        server.client().ping()  # one more command, so that listen() wakes and sees stop
        thread.join(5)
        client.close()


async def _stats_written(storage: HybridStorage, user_id: int, cards: int) -> None:
    """Until the player's stats with ``cards`` draws are stored (watched in the local
    store's copy of what Redis holds, so the wait itself sends nothing to Redis)."""
    for _ in range(1000):
        entry = storage.local.cached("user", str(user_id))
        if entry is not None and entry.load(UserStats, str(user_id)).cards_drawn >= cards:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"stats of {user_id} never reached {cards} draws")


def _evalsha_calls(server: RedisServer) -> int:
    client = server.client()
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return int(stats.get("cmdstat_evalsha", {}).get("calls", 0))


async def test_a_draw_is_at_most_eight_commands(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    """With the deck's file ids known (the common case of a running bot), each "Next
    card" is the rate-limit script, one concurrent round of four reads (the chat's room
    link, the game's session and table, the player: language and 18+), then the session
    update, the table update (turn, pacing, history, the card's message) and the stats
    update: 8 commands, in 5 sequential rounds."""
    library = load_library(write_decks(tmp_path / "decks", per_deck=PER_DECK))
    server = redis_factory(password="rt-pass")
    storage = HybridStorage(local_dir=tmp_path / "local")
    await storage.start(endpoint_of(server))
    try:
        async with running_bot(storage, library) as bot:
            for chat in (1, 2):
                await bot.say(chat, "/start", language="en")
                await bot.tap(chat, "T:a")
                await bot.tap(chat, "V:a:2")
            # Choosing the level dealt each chat its first card.
            for _ in range(PER_DECK - 1):  # chat 1 uploads every card once: file ids known
                await bot.tap(1, "N:a:2:q")
            await bot.tap(2, "N:a:2:q")  # warm: this process has seen chat 2 and its player
            draws = PER_DECK - 2
            await _stats_written(storage, 2, 2)  # it lands after the photo
            evalsha_before = _evalsha_calls(server)
            with _monitor(server) as commands:
                for _ in range(draws):
                    reply = await bot.tap(2, "N:a:2:q")
                    assert reply.method == "sendPhoto"
                await _stats_written(storage, 2, 2 + draws)
            evalsha = _evalsha_calls(server) - evalsha_before
    finally:
        await storage.stop()
    sent = [c for c in commands if c.split(" ", 1)[0].upper() not in {"INFO", "PING"}]
    per_draw = len(sent) / draws
    assert per_draw <= 8.0, (per_draw, "\n".join(c[:75] for c in sent))
    assert evalsha <= 4 * draws
