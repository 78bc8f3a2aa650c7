"""One contract, three backends: memory, Redis and hybrid behave the same."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RedisFactory
from vechnost_bot.errors import VersionConflictError
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage import (
    HybridStorage,
    InMemoryStorage,
    RedisStorage,
    Session,
    Storage,
    UserStats,
    connect_redis,
)


@pytest.fixture(params=["memory", "redis", "hybrid", "hybrid-local", "hybrid-failed-over"])
async def storage(
    request: pytest.FixtureRequest, redis_factory: RedisFactory, tmp_path: Path
) -> AsyncIterator[Storage]:
    """Each backend, the Redis ones on a fresh real redis-server; the hybrid also with
    no Redis at all (local store only) and failed over (its server killed)."""
    async with contextlib.AsyncExitStack() as stack:
        backend = await _open(request.param, redis_factory, tmp_path, stack)
        yield backend
        await backend.close()  # safe twice: the stack closes it again


async def _open(
    kind: str, redis_factory: RedisFactory, tmp_path: Path, stack: contextlib.AsyncExitStack
) -> Storage:
    """One backend, closed by ``stack`` even when a check of its setup fails (else its
    connections are left for the garbage collector, a ResourceWarning in a later test)."""
    if kind == "memory":
        memory = InMemoryStorage()
        stack.push_async_callback(memory.close)
        return memory
    if kind == "hybrid-local":
        local = HybridStorage(client_factory=None, local_dir=tmp_path / "local")
        stack.push_async_callback(local.close)
        await local.start(None)
        return local
    server = redis_factory(password="contract-pass")
    endpoint = RedisEndpoint("127.0.0.1", server.port, password=server.password)
    if kind == "redis":
        redis = RedisStorage(connect_redis(endpoint))
        stack.push_async_callback(redis.close)
        return redis
    hybrid = HybridStorage(local_dir=tmp_path / "local", probe_initial=60, probe_max=60)
    stack.push_async_callback(hybrid.close)
    await hybrid.start(endpoint)
    assert hybrid.mode == "redis"
    if kind == "hybrid-failed-over":
        server.kill()
        await hybrid.get_session(0)  # meets the dead server: the circuit opens
        assert hybrid.mode == "memory"
    return hybrid


async def test_absent_record_is_none(storage: Storage) -> None:
    """A record never written reads as None."""
    assert await storage.get_session(404) is None
    assert await storage.get_user_stats(404) is None


async def test_put_bumps_version_and_time(storage: Storage) -> None:
    """A write returns the stored copy with version + 1 and a fresh updated_at."""
    first = await storage.put_record(Session(chat_id=1, language="ru"))
    assert first.version == 1
    assert first.updated_at > 0
    second = await storage.put_record(first.model_copy(update={"theme": "couples"}))
    assert second.version == 2
    assert second.updated_at >= first.updated_at
    read = await storage.get_session(1)
    assert read == second


async def test_returns_copies(storage: Storage) -> None:
    """Mutating what a call returned never changes what is stored."""
    stored = await storage.update_session(2, lambda s: s.model_copy(update={"drawn": {"a": ["1"]}}))
    stored.drawn["a"].append("2")
    read = await storage.get_session(2)
    assert read is not None
    assert read.drawn == {"a": ["1"]}
    read.drawn["a"].append("3")
    again = await storage.get_session(2)
    assert again is not None
    assert again.drawn == {"a": ["1"]}


async def test_compare_and_set_conflict(storage: Storage) -> None:
    """A write based on a stale version raises VersionConflictError with what was found."""
    current = await storage.put_record(Session(chat_id=3))
    await storage.save_session(current)
    with pytest.raises(VersionConflictError) as caught:
        await storage.save_session(current)
    assert caught.value.expected == 1
    assert caught.value.found == 2
    with pytest.raises(VersionConflictError):
        await storage.put_record(Session(chat_id=33), expected_version=5)


async def test_concurrent_updates_lose_nothing(storage: Storage) -> None:
    """Twenty concurrent read-modify-writes of one session all land (CAS + retry)."""

    def draw(card: str) -> object:
        def mutate(session: Session) -> Session:
            session.drawn.setdefault("deck", []).append(card)
            return session

        return mutate

    await asyncio.gather(
        *(storage.update_session(4, draw(str(n))) for n in range(6))  # type: ignore[arg-type]
    )
    session = await storage.get_session(4)
    assert session is not None
    assert sorted(session.drawn["deck"], key=int) == [str(n) for n in range(6)]
    assert session.version == 6


async def test_delete_then_recreate_continues_versions(storage: Storage) -> None:
    """Deleting leaves nothing readable; a new record after it gets a higher version."""
    await storage.delete_session(5)  # absent: not an error
    first = await storage.update_session(5, lambda s: None)
    first = await storage.update_session(5, lambda s: None)
    await storage.delete_session(5)
    assert await storage.get_session(5) is None
    again = await storage.update_session(5, lambda s: None)
    assert again.version > first.version


async def test_kinds_do_not_collide(storage: Storage) -> None:
    """Session 7 and user 7 are different records."""
    await storage.update_session(7, lambda s: s.model_copy(update={"language": "en"}))
    stats = await storage.update_user_stats(7, lambda u: u.model_copy(update={"cards_drawn": 3}))
    assert stats.cards_drawn == 3
    assert await storage.get_record(UserStats, "7") == stats
    session = await storage.get_session(7)
    assert session is not None
    assert session.language == "en"


async def test_counters_are_exact(storage: Storage) -> None:
    """Concurrent increments add up exactly; an unknown counter is 0."""
    assert await storage.get_counter("never") == 0
    results = await asyncio.gather(*(storage.incr("cards", 2) for _ in range(50)))
    assert sorted(results) == list(range(2, 101, 2))
    assert await storage.get_counter("cards") == 100
    assert await storage.incr("cards", -10) == 90


async def test_rate_limit_sliding_window(storage: Storage) -> None:
    """Three hits per window pass, the fourth is refused, and the window slides."""
    hits = [await storage.hit_rate_limit("user:1", 3, 0.3) for _ in range(4)]
    assert hits == [True, True, True, False]
    assert await storage.hit_rate_limit("user:2", 3, 0.3)
    await asyncio.sleep(0.35)
    assert await storage.hit_rate_limit("user:1", 3, 0.3)


async def test_cache_ttl(storage: Storage) -> None:
    """Cached bytes come back until the TTL passes; a non-positive TTL removes them."""
    assert await storage.cache_get("img") is None
    await storage.cache_set("img", b"\x89PNG", 0.2)
    await storage.cache_set("file_id", b"AgAC", 60)
    assert await storage.cache_get("img") == b"\x89PNG"
    await asyncio.sleep(0.25)
    assert await storage.cache_get("img") is None
    assert await storage.cache_get("file_id") == b"AgAC"
    await storage.cache_set("file_id", b"AgAC", 0)
    assert await storage.cache_get("file_id") is None


async def test_cache_add_is_once_per_ttl(storage: Storage) -> None:
    """cache_add sets only an absent key: of 20 concurrent callers exactly one wins,
    and the key can be added again once its ttl has passed."""
    results = await asyncio.gather(*(storage.cache_add("gate", b"1", 0.3) for _ in range(20)))
    assert results.count(True) == 1
    assert await storage.cache_get("gate") == b"1"
    await asyncio.sleep(0.4)
    assert await storage.cache_add("gate", b"2", 5) is True
    assert await storage.cache_get("gate") == b"2"
    assert await storage.cache_add("never", b"x", 0) is False
