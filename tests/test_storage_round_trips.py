"""A card draw costs at most 3 Redis commands (one round trip) in the common case, counted by a
private redis-server itself (MONITOR lists each command a client sent; commands a
script runs are marked ``lua`` and are not round trips), cross-checked with INFO
commandstats."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import RedisFactory
from tests.support.bot_harness import running_bot
from tests.support.decks import write_decks
from tests.support.redis_server import RedisServer
from tests.support.storage_helpers import endpoint_of
from vechnost_bot.game.content import load_library
from vechnost_bot.storage import (
    HybridStorage,
    InMemoryStorage,
    RedisStorage,
    Session,
    Storage,
    UserStats,
    connect_redis,
)
from vechnost_bot.storage.base import Change
from vechnost_bot.storage.game_records import Table

PER_DECK = 8
# Not the bot's traffic: INFO itself, the storage's probe and PINGs, connection set-up.
_NOT_TRAFFIC = {"info", "ping", "client", "hello", "auth", "select", "command", "monitor", "set"}


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


async def test_a_draw_is_one_round_trip_of_three_commands(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    """With the deck's file ids known (the common case of a running bot), each "Next
    card" reads nothing from Redis (the process is the records' sole writer: it reads
    through what it saw last, and knows the chat plays no room) and writes the session,
    the table (turn, pacing, history, the card's message) and the stats after the card
    went out, in one script: EVALSHA, and inside it one MGET and one MSET."""
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
            stats_before = _commandstats(server)
            with _monitor(server) as commands:
                for _ in range(draws):
                    reply = await bot.tap(2, "N:a:2:q")
                    assert reply.method == "sendPhoto"
                await _stats_written(storage, 2, 2 + draws)
            evalsha = _evalsha_calls(server) - evalsha_before
            stats_after = _commandstats(server)
    finally:
        await storage.stop()
    sent = [c for c in commands if c.split(" ", 1)[0].upper() not in {"INFO", "PING"}]
    per_draw = len(sent) / draws
    assert per_draw <= 1.0, (per_draw, "\n".join(c[:75] for c in sent))
    assert evalsha <= draws
    spent = {
        name: n - stats_before.get(name, 0)
        for name, n in stats_after.items()
        if name.split("|")[0] not in _NOT_TRAFFIC - {"set"} and n > stats_before.get(name, 0)
    }
    assert sum(spent.values()) <= 3 * draws, spent


def _turn(table: Table) -> None:
    table.turn += 1


def _draw(card: str) -> Callable[[Session], None]:
    def mutate(session: Session) -> None:
        session.drawn = {"d": [*session.drawn.get("d", []), card]}
        session.last_card = card

    return mutate


def _changes(card: str) -> list[Change[Any]]:
    return [
        Change(Session, "1", lambda: Session(chat_id=1), _draw(card)),
        Change(Table, "1", lambda: Table(game_id=1), _turn),
    ]


@pytest.mark.parametrize("kind", ["redis", "hybrid", "memory"])
async def test_update_records_reapplies_only_what_a_replica_changed(
    kind: str, redis_factory: RedisFactory, tmp_path: Path
) -> None:
    """Two replicas on one store: the one whose view of the table is stale loses only the
    table's compare-and-set, re-applies its change to the replica's table and lands; the
    session it saw last lands at once. Nothing either of them wrote is lost."""
    first: Storage
    second: Storage
    if kind == "memory":
        first = second = InMemoryStorage()
    else:
        server = redis_factory(password="many-pass")
        if kind == "redis":
            first = RedisStorage(connect_redis(endpoint_of(server)))
            second = RedisStorage(connect_redis(endpoint_of(server)))
        else:
            first = HybridStorage(local_dir=tmp_path / "one")
            second = HybridStorage(local_dir=tmp_path / "two")
            for hybrid in (first, second):
                await hybrid.start(endpoint_of(server))
    try:
        session, table = await first.update_records(_changes("a"))
        assert (session.version, table.version) == (1, 1)
        await second.update_record(Table, "1", lambda: Table(game_id=1), _turn)
        session, table = await first.update_records(_changes("b"))
        assert isinstance(session, Session)
        assert isinstance(table, Table)
        assert session.drawn == {"d": ["a", "b"]}
        assert session.version == 2
        assert table.turn == 3
        assert table.version == 3
        fresh = await second.get_record(Table, "1")
        assert fresh is not None
        assert fresh.turn == 3
    finally:
        for storage in {id(first): first, id(second): second}.values():
            if isinstance(storage, HybridStorage):
                await storage.stop()
            else:
                await storage.close()


async def test_update_records_is_one_script_of_three_commands(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    """Three records this process saw written together: one EVALSHA, inside it one MGET
    and one MSET, and no read before it."""
    server = redis_factory(password="many-pass")
    storage = HybridStorage(local_dir=tmp_path / "local")
    await storage.start(endpoint_of(server))
    stats = Change(UserStats, "5", lambda: UserStats(user_id=5), _drawn_once)
    try:
        await storage.update_records([*_changes("a"), stats])  # loads the script
        before = _commandstats(server)
        await storage.update_records([*_changes("b"), stats])
        after = _commandstats(server)
    finally:
        await storage.stop()
    spent = {name: after[name] - before.get(name, 0) for name in after}
    assert {name: n for name, n in spent.items() if n and name not in _NOT_TRAFFIC} == {
        "evalsha": 1,
        "mget": 1,
        "mset": 1,
    }, spent


def _drawn_once(stats: UserStats) -> None:
    stats.cards_drawn += 1


def _commandstats(server: RedisServer) -> dict[str, int]:
    client = server.client()
    try:
        stats = client.info("commandstats")
    finally:
        client.close()
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
