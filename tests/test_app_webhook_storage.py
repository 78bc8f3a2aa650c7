"""FailClosedStorage on a real redis-server: records are Redis's or nobody's.

Two storages stand for two replicas. Checked: they share every session write; with
Redis killed a record call gives up after its budget with UpdateDeferredError (never a
replica's memory) while counters and the cache keep going; once one call of an update
gave up the next ones do not wait again; Redis back means served at once; the gate
refuses when Redis is away; and an update processed a second time replays its write
(the same random draw, nothing written twice).
"""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer
from vechnost_bot.bot.webhook import UpdateDeferredError
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage.failclosed import FailClosedStorage, UpdateRandom, update_scope
from vechnost_bot.storage.records import Session
from vechnost_bot.storage.redis import connect_redis

Factory = Callable[..., "FailClosedStorage"]
BUDGET = 0.5


@pytest.fixture
async def replicas(
    tmp_path: Path, redis_server: RedisServer
) -> AsyncIterator[list[FailClosedStorage]]:
    """Two fail-closed storages (two replicas) on one real redis-server."""
    endpoint = RedisEndpoint("127.0.0.1", redis_server.port, password=redis_server.password)
    made = []
    for name in ("a", "b"):
        storage = FailClosedStorage(
            budget=BUDGET, client_factory=connect_redis, local_dir=tmp_path / name
        )
        await storage.start(endpoint)
        made.append(storage)
    yield made
    for storage in made:
        await storage.stop()


def _draw(card: str) -> Callable[[Session], Session]:
    def mutate(session: Session) -> Session:
        session.drawn.setdefault("deck", []).append(card)
        return session

    return mutate


async def test_replicas_share_every_session_write(replicas: list[FailClosedStorage]) -> None:
    """Writes alternating between the replicas, each from a stale hint half the time,
    all land: 20 cards in order."""
    for number in range(20):
        await replicas[number % 2].update_session(7, _draw(f"c{number}"))
    for storage in replicas:
        session = await storage.get_session(7)
        assert session is not None
        assert session.drawn["deck"] == [f"c{n}" for n in range(20)]


async def test_redis_away_defers_records_but_not_counters_or_cache(
    replicas: list[FailClosedStorage], redis_server: RedisServer
) -> None:
    """Redis SIGKILLed: a session read gives up after about the budget with
    UpdateDeferredError (Retry-After 1) instead of answering from a replica's memory;
    counters journal and the byte cache answers from RAM. Started again, a write is
    served at once (the pool was dropped, no stale connection is reused)."""
    storage = replicas[0]
    await storage.update_session(8, _draw("x"))
    redis_server.kill()
    began = time.monotonic()
    with pytest.raises(UpdateDeferredError) as error:
        await storage.get_session(8)
    waited = time.monotonic() - began
    assert BUDGET * 0.8 <= waited < BUDGET + 1.0
    assert error.value.retry_after == 1.0
    with pytest.raises(UpdateDeferredError):
        await storage.update_session(8, _draw("y"))
    assert await storage.incr("cards", 2) == 2  # journaled, added on failback
    await storage.cache_set("k", b"v", 60)
    assert await storage.cache_get("k") == b"v"
    status = storage.status()
    assert status["records"] == "fail-closed"
    assert status["updates_deferred"] == 2
    redis_server.start()  # an empty server again (no persistence in this test)
    began = time.monotonic()
    session = await storage.update_session(8, _draw("z"))
    assert time.monotonic() - began < BUDGET
    assert session.drawn["deck"] == ["z"]


async def test_an_update_that_gave_up_does_not_wait_again(
    replicas: list[FailClosedStorage], redis_server: RedisServer
) -> None:
    """Inside one update, the second record call after a deferral raises at once: the
    update is answered 503 within one budget, not one per call."""
    redis_server.kill()
    with update_scope(1) as scope:
        with pytest.raises(UpdateDeferredError):
            await replicas[0].get_session(9)
        began = time.monotonic()
        with pytest.raises(UpdateDeferredError):
            await replicas[0].get_session(10)
        assert time.monotonic() - began < 0.05
    assert scope.deferred is not None


async def test_the_gate_refuses_when_redis_is_away(
    replicas: list[FailClosedStorage], redis_server: RedisServer
) -> None:
    """The update-id gate is Redis only: one replica's claim is seen by the other, and
    with Redis away a claim raises rather than succeed in a replica's memory."""
    a, b = replicas
    assert await a.gate.cache_add("webhook:update:1", b"claimed", 5) is True
    assert await b.gate.cache_add("webhook:update:1", b"claimed", 5) is False
    assert await b.gate.cache_get("webhook:update:1") == b"claimed"
    await b.gate.cache_set("webhook:update:1", b"done", 5)
    assert await a.gate.cache_get("webhook:update:1") == b"done"
    redis_server.kill()
    with pytest.raises(UpdateDeferredError):
        await a.gate.cache_add("webhook:update:2", b"claimed", 5)


def test_an_update_draws_the_same_wherever_it_is_processed() -> None:
    """Inside one update's scope the random source is seeded by the update (and a seed
    every replica shares): processing it again draws the same; another update draws
    anew; outside any update it is plain random."""
    rng = UpdateRandom()
    deck = [f"c{n}" for n in range(50)]
    draws = []
    for update_id in (77, 77, 78):
        with update_scope(update_id, seed=b"s"):
            draws.append(rng.sample(deck, 3))
    assert draws[0] == draws[1]
    assert draws[2] != draws[0]
    assert isinstance(rng.random(), float)
    assert isinstance(rng, random.Random)
