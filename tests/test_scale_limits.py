"""Shared limits across replicas: the per-user rate window lives in Redis.

Two storages on one real redis-server stand for two bot replicas. The window is timed by
the server's clock (``redis.call('TIME')``), so replicas whose clocks disagree still
share it, and a Telegram redelivery (the same ``update_id``) is counted once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.bot_harness import running_bot
from tests.support.decks import write_decks
from tests.support.redis_server import RedisServer
from vechnost_bot.bot.ratelimit import SharedLimit
from vechnost_bot.bot.texts import t
from vechnost_bot.config import parse_redis_url
from vechnost_bot.game.content import load_library
from vechnost_bot.storage import redis as redis_storage
from vechnost_bot.storage.hybrid import HybridStorage
from vechnost_bot.storage.memory import InMemoryStorage
from vechnost_bot.storage.redis import RedisStorage, connect_redis


@pytest.fixture
async def replicas(redis_server: RedisServer) -> AsyncIterator[tuple[RedisStorage, RedisStorage]]:
    """Two storages (two replicas' clients) on one Redis."""
    endpoint = parse_redis_url(redis_server.url)
    first = RedisStorage(connect_redis(endpoint, socket_timeout=2))
    second = RedisStorage(connect_redis(endpoint, socket_timeout=2))
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_replicas_share_one_window(replicas: tuple[RedisStorage, RedisStorage]) -> None:
    """A user's 30 updates alternating between two replicas, limit 20: 20 pass in all
    (with per-replica windows it would be 30)."""
    limits = [SharedLimit(storage, 20, 10.0) for storage in replicas]
    allowed = [await limits[n % 2].allow(7, update_id=1000 + n) for n in range(30)]
    assert allowed == [True] * 20 + [False] * 10


async def test_a_redelivery_is_counted_once(replicas: tuple[RedisStorage, RedisStorage]) -> None:
    """The same update_id delivered again (to the other replica) is allowed and not
    counted: of 3 allowed, the redelivery leaves room for 2 more distinct updates."""
    first, second = (SharedLimit(storage, 3, 10.0) for storage in replicas)
    assert await first.allow(8, update_id=1)
    assert await second.allow(8, update_id=1)  # Telegram resent it
    assert await first.allow(8, update_id=1)
    assert await second.allow(8, update_id=2)
    assert await first.allow(8, update_id=3)
    assert not await second.allow(8, update_id=4)
    assert await first.allow(8, update_id=2)  # a redelivery of a counted update: allowed


async def test_the_window_runs_on_the_servers_clock(
    replicas: tuple[RedisStorage, RedisStorage], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A replica whose clock is an hour ahead shares the window all the same: the times
    are Redis's (TIME), not the callers'."""
    first, second = (SharedLimit(storage, 4, 5.0) for storage in replicas)
    assert await first.allow(9, update_id=1)
    assert await first.allow(9, update_id=2)
    real = time.time
    monkeypatch.setattr(redis_storage.time, "time", lambda: real() + 3600)
    assert await second.allow(9, update_id=3)
    assert await second.allow(9, update_id=4)
    assert not await second.allow(9, update_id=5)
    assert not await first.allow(9, update_id=6)


async def test_the_window_slides(replicas: tuple[RedisStorage, RedisStorage]) -> None:
    """After the window has passed, the user may go on."""
    limit = SharedLimit(replicas[0], 2, 0.3)
    assert [await limit.allow(10, update_id=n) for n in range(3)] == [True, True, False]
    await asyncio.sleep(0.35)
    assert await limit.allow(10, update_id=3)


async def test_memory_counts_a_redelivery_once() -> None:
    """The per-replica fallback (memory) also counts an update_id once."""
    memory = InMemoryStorage()
    assert await memory.hit_rate_limit("u", 2, 10.0, hit="1")
    assert await memory.hit_rate_limit("u", 2, 10.0, hit="1")
    assert await memory.hit_rate_limit("u", 2, 10.0, hit="2")
    assert not await memory.hit_rate_limit("u", 2, 10.0, hit="3")
    assert not await memory.hit_rate_limit("u", 2, 10.0)


async def test_the_gate_counts_the_other_replicas_hits(
    replicas: tuple[RedisStorage, RedisStorage], tmp_path: Path, redis_server: RedisServer
) -> None:
    """A user who spent the whole limit on another replica is refused here (the bot says
    "slow down"), although this replica's own bucket is full."""
    storage = HybridStorage(local_dir=tmp_path / "local")
    await storage.start(parse_redis_url(redis_server.url))
    library = load_library(write_decks(tmp_path / "decks", per_deck=3))
    try:
        async with running_bot(storage, library, rate_limit_updates=5) as bot:
            bot.game.shared_limit = SharedLimit(storage, 5, 10.0)
            other = SharedLimit(replicas[1], 5, 10.0)
            for update_id in range(5):
                assert await other.allow(77, update_id=10_000 + update_id)
            reply = await bot.say(77, "/start")
            assert reply.params["text"] == t("en", "slow_down")
            fresh = await bot.say(78, "/start")  # another user is not limited
            assert fresh.params["text"] != t("en", "slow_down")
    finally:
        await storage.close()
