"""HybridStorage: every kind of Redis trouble fails over to memory and comes back.

Each test uses a real redis-server and a real fault (signal, restart, CONFIG).
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis
from structlog.testing import capture_logs

from tests.conftest import RedisFactory
from tests.support.redis_server import RedisServer
from tests.support.storage_helpers import endpoint_of, event
from tests.support.waiting import wait_until
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage import (
    HybridStorage,
    RedisStorage,
    Session,
    connect_redis,
)

HybridFactory = Callable[..., Awaitable[HybridStorage]]

_admins: list[redis.Redis] = []


def closing(client: redis.Redis) -> redis.Redis:
    """Remember a sync admin client so that the fixture below closes it."""
    _admins.append(client)
    return client


@pytest.fixture(autouse=True)
def _close_admin_clients() -> Iterator[None]:
    """Close every sync admin client a test opened (no socket left to the GC)."""
    yield
    while _admins:
        _admins.pop().close()


@pytest.fixture
async def make_hybrid(tmp_path: Path) -> AsyncIterator[HybridFactory]:
    """Start HybridStorage instances with a fast probe; all are stopped after the test."""
    made: list[HybridStorage] = []

    async def make(endpoint: RedisEndpoint | None, **kwargs: object) -> HybridStorage:
        options: dict[str, object] = {
            "local_dir": tmp_path / f"local-{len(made)}",
            "probe_initial": 0.05,
            "probe_max": 0.2,
        }
        options.update(kwargs)
        storage = HybridStorage(**options)  # type: ignore[arg-type]
        made.append(storage)
        await storage.start(endpoint)
        return storage

    yield make
    for storage in made:
        await storage.stop()


async def _draw(storage: HybridStorage, chat_id: int, card: str) -> Session:
    def mutate(session: Session) -> Session:
        session.drawn.setdefault("deck", []).append(card)
        session.last_card = card
        return session

    return await storage.update_session(chat_id, mutate)


async def _read_direct(server: RedisServer, chat_id: int) -> Session | None:
    direct = RedisStorage(connect_redis(endpoint_of(server), socket_timeout=2))
    try:
        return await direct.get_session(chat_id)
    finally:
        await direct.close()


def _events(logs: list[dict[str, object]], name: str) -> list[dict[str, object]]:
    return [entry for entry in logs if entry["event"] == name]


async def _failover_and_back(
    storage: HybridStorage,
    server: RedisServer,
    break_it: Callable[[], None],
    fix_it: Callable[[], None],
) -> str:
    """Break Redis, keep playing from memory, fix Redis, and check nothing was lost.

    Returns the error that opened the circuit.
    """
    for card in ("a", "b"):
        await _draw(storage, 1, card)
    assert storage.mode == "redis"
    with capture_logs() as logs:
        break_it()
        started = time.monotonic()
        during = await _draw(storage, 1, "c")  # this very call is served, from memory
        assert time.monotonic() - started < 1.0
        assert storage.mode == "memory"
        first_error = str(storage.status()["last_error"])
        assert during.drawn["deck"] == ["a", "b", "c"]  # the game went on where it was
        await _draw(storage, 1, "d")
        await storage.incr("cards", 2)
        await storage.delete_session(2)
        fix_it()
        await wait_until(lambda: storage.mode == "redis")
    assert storage.status()["last_error"] is None  # healed: status shows no current trouble
    assert _events(logs, "redis_connection_failed")
    changed = [(e["from"], e["to"]) for e in _events(logs, "storage_mode_changed")]
    assert changed == [("redis", "memory"), ("memory", "redis")]
    reconciled = _events(logs, "storage_reconciled")
    assert reconciled
    assert reconciled[-1]["records"] >= 2  # type: ignore[operator]
    stored = await _read_direct(server, 1)
    assert stored is not None
    assert stored.drawn["deck"] == ["a", "b", "c", "d"]
    assert await storage.get_session(2) is None
    status = storage.status()
    assert status["failovers"] == 1
    assert status["failbacks"] == 1
    assert status["journal_size"] == 0
    json.dumps(status)
    return first_error


async def test_connection_refused_kill_and_restart(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """SIGKILL: calls go to memory at once; after a restart the journal is reconciled."""
    server = redis_factory(password="pw-kill")
    storage = await make_hybrid(endpoint_of(server))
    await storage.update_session(2, lambda s: None)
    error = await _failover_and_back(storage, server, server.kill, server.start)
    assert "ConnectionError" in error
    # the restarted server lost its data (no persistence): the counter holds memory's +2
    assert await storage.get_counter("cards") == 2


async def test_timeout_sigstop_sigcont(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """SIGSTOP: one call waits the short socket timeout, then memory; SIGCONT brings Redis back."""
    server = redis_factory(password="pw-stop")
    storage = await make_hybrid(endpoint_of(server))
    await storage.incr("cards", 5)
    error = await _failover_and_back(storage, server, server.pause, server.resume)
    assert "TimeoutError" in error
    assert await storage.get_counter("cards") == 7


async def test_auth_error_after_restart_with_new_password(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """A restart with another password fails auth until the lifecycle announces the endpoint."""
    server = redis_factory(password="pw-old")
    storage = await make_hybrid(endpoint_of(server))

    def restart_with_new_password() -> None:
        server.restart(password="pw-new")

    async def announce() -> None:
        await storage.on_redis_event(event("running", endpoint_of(server)))

    for card in ("a", "b"):
        await _draw(storage, 1, card)
    restart_with_new_password()
    await _draw(storage, 1, "c")
    assert storage.mode == "memory"
    await wait_until(lambda: "AuthenticationError" in str(storage.status()["last_error"]))
    assert storage.mode == "memory"
    await announce()
    await wait_until(lambda: storage.mode == "redis")
    stored = await _read_direct(server, 1)
    assert stored is not None
    assert stored.drawn["deck"] == ["a", "b", "c"]


async def test_readonly_replica(redis_factory: RedisFactory, make_hybrid: HybridFactory) -> None:
    """READONLY (the server became a replica of a dead master) takes the failover path."""
    server = redis_factory(password="pw-ro")
    storage = await make_hybrid(endpoint_of(server))
    admin = closing(server.client())
    dead_port = redis_factory().port  # a port that will be dead

    def make_replica() -> None:
        admin.execute_command("REPLICAOF", "127.0.0.1", str(dead_port + 1))

    def make_primary() -> None:
        admin.execute_command("REPLICAOF", "NO", "ONE")

    error = await _failover_and_back(storage, server, make_replica, make_primary)
    assert "ReadOnlyError" in error


async def test_misconf_failed_background_save(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """MISCONF (a background save failed, writes refused) takes the failover path."""
    server = redis_factory(password="pw-misconf", extra_args=("--dbfilename", "blocked.rdb"))
    storage = await make_hybrid(endpoint_of(server))
    admin = closing(server.client())
    blocker = server.directory / "blocked.rdb"

    def break_disk() -> None:
        # The rename of the finished dump onto a directory fails, as on a broken disk.
        blocker.mkdir()
        admin.config_set("save", "3600 1")
        admin.bgsave()
        deadline = time.monotonic() + 5
        while admin.info("persistence")["rdb_last_bgsave_status"] != "err":
            assert time.monotonic() < deadline
            time.sleep(0.01)

    def fix_disk() -> None:
        blocker.rmdir()
        admin.bgsave()

    error = await _failover_and_back(storage, server, break_disk, fix_disk)
    assert "MISCONF" in error


async def test_oom_maxmemory(redis_factory: RedisFactory, make_hybrid: HybridFactory) -> None:
    """OOM (maxmemory reached, noeviction) takes the failover path."""
    server = redis_factory(password="pw-oom")
    storage = await make_hybrid(endpoint_of(server))
    admin = closing(server.client())

    def fill() -> None:
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", "1")

    def free() -> None:
        admin.config_set("maxmemory", "0")

    error = await _failover_and_back(storage, server, fill, free)
    assert "OutOfMemoryError" in error


async def test_lifecycle_events_open_circuit_and_wake_probe(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """'restarting' opens the circuit without a failed call; 'running' brings it back at once."""
    server = redis_factory(password="pw-events")
    storage = await make_hybrid(endpoint_of(server), probe_initial=30.0, probe_max=30.0)
    await _draw(storage, 9, "a")
    await storage.on_redis_event(event("restarting", endpoint_of(server)))
    assert storage.mode == "memory"
    await _draw(storage, 9, "b")
    took = await storage_back_after_event(storage, server)
    assert took < 1.0
    stored = await _read_direct(server, 9)
    assert stored is not None
    assert stored.drawn["deck"] == ["a", "b"]


async def storage_back_after_event(storage: HybridStorage, server: RedisServer) -> float:
    """Announce 'running' and measure how long until Redis mode."""
    await storage.on_redis_event(event("running", endpoint_of(server)))
    return await wait_until(lambda: storage.mode == "redis", timeout=2)


async def test_many_concurrent_calls_during_failover(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """Hundreds of calls in flight when Redis dies: none raises, one failover is counted."""
    server = redis_factory(password="pw-many")
    storage = await make_hybrid(endpoint_of(server))

    async def worker(n: int) -> None:
        for step in range(20):
            await _draw(storage, 100 + n, str(step))
            await storage.incr("total")
            if step == 5 and n == 0:
                server.kill()

    await asyncio.gather(*(worker(n) for n in range(30)))
    assert storage.mode == "memory"
    assert storage.status()["failovers"] == 1
    server.start()
    await wait_until(lambda: storage.mode == "redis")
    for n in range(30):
        stored = await _read_direct(server, 100 + n)
        assert stored is not None
        # records last written before the kill were lost with the server's data; every
        # record written in memory mode came back complete
        assert stored.drawn["deck"][-1] == "19"


async def test_graceful_restart_in_memory_mode(
    redis_factory: RedisFactory, make_hybrid: HybridFactory, tmp_path: Path
) -> None:
    """Write in memory mode, stop (local store file, 0600), start again, reconcile, read back."""
    server = redis_factory(password="pw-graceful")
    journal = tmp_path / "data"
    first = await make_hybrid(endpoint_of(server), local_dir=journal)
    await _draw(first, 1, "a")
    server.kill()
    await _draw(first, 1, "b")
    await first.incr("cards", 3)
    await first.delete_session(1)
    await _draw(first, 2, "x")
    await first.stop()
    assert first.writes_at_risk == 0
    (database,) = journal.glob("local-*.sqlite3")
    assert database.stat().st_mode & 0o777 == 0o600

    offline = await make_hybrid(None, local_dir=journal)  # no Redis yet: memory mode
    assert offline.mode == "memory"
    assert await offline.get_session(1) is None
    second_read = await offline.get_session(2)
    assert second_read is not None
    assert second_read.drawn["deck"] == ["x"]
    await offline.stop()

    server.start()
    again = await make_hybrid(endpoint_of(server), local_dir=journal)
    assert again.mode == "redis"
    assert again.status()["journal_size"] == 0  # reconciled
    assert len(list(journal.glob("local-*.sqlite3"))) == 1  # taken over, not copied
    assert await again.get_session(1) is None
    stored = await again.get_session(2)
    assert stored is not None
    assert stored.drawn["deck"] == ["x"]
    assert await again.get_counter("cards") == 3


async def test_corrupt_wrong_type_and_old_schema_are_absent(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """Bad values are logged as storage_corrupt_value, read as absent, and never fail over."""
    server = redis_factory(password="pw-corrupt")
    storage = await make_hybrid(endpoint_of(server))
    admin = closing(server.client())
    admin.hset("vechnost:v1:session:1", mapping={"a": "wrong type"})
    admin.set("vechnost:v1:session:2", "1:4:1.5:{oops")
    admin.set("vechnost:v1:session:3", "0:9:1.5:{}")
    admin.set("vechnost:v1:session:4", '1:2:1.5:{"a":1}')
    admin.set("vechnost:v1:session:5", "garbage")
    admin.hset("vechnost:v1:counter:c", mapping={"x": "1"})
    admin.lpush("vechnost:v1:cache:img", "x")
    with capture_logs() as logs:
        for chat_id in (1, 2, 3, 4, 5):
            assert await storage.get_session(chat_id) is None
            session = await storage.update_session(chat_id, lambda s: None)
            assert session.chat_id == chat_id
        assert await storage.get_counter("c") == 0
        assert await storage.incr("c") == 1
        assert await storage.cache_get("img") is None
        assert await storage.hit_rate_limit("img", 1, 1)  # zset key free; cache key untouched
    reasons = {entry["reason"] for entry in _events(logs, "storage_corrupt_value")}
    assert {"wrong_type", "invalid", "schema"} <= reasons
    assert storage.mode == "redis"
    assert storage.status()["failovers"] == 0


async def test_status_has_no_secrets(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """status() is JSON-safe and never shows the password, even after errors."""
    server = redis_factory(password="s3cret-pass-xyz")
    storage = await make_hybrid(endpoint_of(server))
    server.restart(password="an0ther-s3cret")
    await storage.get_session(1)
    await wait_until(lambda: storage.status()["last_error"] is not None)
    text = json.dumps(storage.status())
    assert "s3cret" not in text
    assert json.loads(text)["mode"] == "memory"


async def test_memory_only_without_client_factory(make_hybrid: HybridFactory) -> None:
    """Without a client factory the hybrid is a plain memory store and never probes."""
    storage = await make_hybrid(None, client_factory=None)
    await storage.on_redis_event(event("running", RedisEndpoint("127.0.0.1", 1)))
    await _draw(storage, 1, "a")
    assert storage.mode == "memory"
    assert storage.status()["journal_size"] == 1


async def test_stop_is_safe_twice_and_context_manager(tmp_path: Path) -> None:
    """stop() twice is fine; the async context manager starts and stops."""
    async with HybridStorage(local_dir=tmp_path / "local") as storage:
        await storage.incr("x")
    await storage.stop()
    assert list((tmp_path / "local").glob("local-*.sqlite3"))


async def test_increment_lost_in_a_timeout_counts_once(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """An INCR sent to a frozen server is applied when it wakes, and replayed: it counts once."""
    server = redis_factory(password="pw-incr")
    storage = await make_hybrid(endpoint_of(server))
    assert await storage.incr("cards", 10) == 10
    server.pause()
    await storage.incr("cards", 5)  # times out: served from memory, journaled with a token
    assert storage.mode == "memory"
    await storage.incr("cards", 1)
    server.resume()
    await wait_until(lambda: storage.mode == "redis")
    assert await storage.get_counter("cards") == 16


async def test_unknown_record_written_in_memory_mode_is_merged(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """A record this process never saw, written while Redis is away, meets what another
    instance wrote meanwhile: on failback both draws are kept (merged, never replaced),
    and the position takes the later write."""
    server = redis_factory(password="pw-rebase")
    storage = await make_hybrid(endpoint_of(server), hot_size=1)
    other = RedisStorage(connect_redis(endpoint_of(server), socket_timeout=2))
    try:
        for _ in range(5):  # another instance made record 1 reach version 5
            await other.update_session(1, lambda s: s.drawn.setdefault("deck", []).append("t1"))
        # Away for this storage only: new connections fail AUTH (the probe's too), while
        # the other instance's open connection stays authenticated.
        await other.client.config_set("requirepass", "pw-away")
        await storage.on_redis_event(event("down", endpoint_of(server)))
        assert storage.mode == "memory"
        mine = await _draw(storage, 1, "mine")  # unknown here: starts at version 1
        assert mine.version == 1
        await _draw(storage, 2, "mine-too")
        await asyncio.sleep(0.01)

        def theirs(session: Session) -> Session:
            session.drawn.setdefault("deck", []).append("theirs")
            session.theme = "sex"
            return session

        await other.update_session(2, theirs)
        assert storage.mode == "memory"
        await other.client.config_set("requirepass", "pw-rebase")
        await storage.on_redis_event(event("running", endpoint_of(server)))
        await wait_until(lambda: storage.mode == "redis")
        first = await other.get_session(1)
        assert first is not None
        assert first.drawn["deck"] == ["t1", "mine"]
        assert first.last_card == "mine"
        assert first.version > 5
        second = await other.get_session(2)
        assert second is not None
        assert sorted(second.drawn["deck"]) == ["mine-too", "theirs"]
        assert second.theme == "sex"
    finally:
        await other.close()


async def test_memory_eviction_never_loses_a_pending_write(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """With memory bounded to 2 records, 5 chats written during an outage all read back
    (from the local store's file) and all reach Redis on failback."""
    server = redis_factory(password="pw-evict")
    storage = await make_hybrid(endpoint_of(server), hot_size=2)
    server.kill()
    for chat in range(1, 6):
        await storage.update_session(chat, lambda s, c=chat: s.drawn.update(d=[f"card{c}"]))
    assert storage.mode == "memory"
    for chat in range(1, 6):
        session = await storage.get_session(chat)
        assert session is not None
        assert session.drawn == {"d": [f"card{chat}"]}
    # a further write to an evicted chat continues from its pending version
    updated = await storage.update_session(1, lambda s: s.drawn["d"].append("second"))
    assert updated.drawn == {"d": ["card1", "second"]}
    assert updated.version == 2
    server.start()
    await wait_until(lambda: storage.mode == "redis")
    check = RedisStorage(connect_redis(endpoint_of(server)))
    try:
        for chat in range(2, 6):
            stored = await check.get_session(chat)
            assert stored is not None
            assert stored.drawn == {"d": [f"card{chat}"]}
        first = await check.get_session(1)
        assert first is not None
        assert first.drawn == {"d": ["card1", "second"]}
    finally:
        await check.close()


_HARD_KILL_WRITER = """
import asyncio, sys
from pathlib import Path
from vechnost_bot.storage import HybridStorage

async def main() -> None:
    storage = HybridStorage(local_dir=Path(sys.argv[1]))
    await storage.start(None)
    for chat in range(1, 6):
        await storage.update_session(chat, lambda s, c=chat: s.drawn.update(deck=[str(c)]))
    await storage.incr("cards", 5)
    print("written", flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


async def test_hard_kill_in_memory_mode_keeps_flushed_writes(
    redis_factory: RedisFactory, make_hybrid: HybridFactory, tmp_path: Path
) -> None:
    """A process in memory mode SIGKILLed half a second after its writes (no graceful
    stop) left them in its local store: the next start takes it over and reconciles
    them into Redis."""
    journal = tmp_path / "local"
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HARD_KILL_WRITER, str(journal), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert writer.stdout is not None
        line = b""
        while line.strip() != b"written":  # structlog's default output shares stdout
            line = await asyncio.wait_for(writer.stdout.readline(), 30)
            assert line, "the writer exited early"
        await asyncio.sleep(0.5)
    finally:
        writer.kill()
        await writer.wait()
    assert writer.returncode == -signal.SIGKILL
    server = redis_factory(password="pw-hard-kill")
    storage = await make_hybrid(endpoint_of(server), local_dir=journal)
    assert storage.mode == "redis"
    for chat in range(1, 6):
        session = await storage.get_session(chat)
        assert session is not None
        assert session.drawn == {"deck": [str(chat)]}
    assert await storage.get_counter("cards") == 5
    assert storage.status()["journal_size"] == 0


async def test_call_latencies_reach_the_histogram(make_hybrid: HybridFactory) -> None:
    """Storage call latencies are counted in RAM and reach the histogram within a second,
    and at stop: every call counted once, in the bucket of its time."""
    from vechnost_bot.metrics import REGISTRY

    def count(op: str) -> float:
        value = REGISTRY.get_sample_value("vechnost_storage_call_seconds_count", {"op": op})
        return value or 0.0

    storage = await make_hybrid(None, client_factory=None)
    gets, puts = count("get"), count("put")
    for chat_id in range(5):
        assert await storage.get_session(chat_id) is None  # one read each
        await storage.put_record(Session(chat_id=chat_id))  # one write each
    await wait_until(lambda: count("put") - puts == 5 and count("get") - gets == 5)
    await storage.get_session(1)
    await storage.stop()
    assert count("get") - gets == 6
    buckets = REGISTRY.get_sample_value(
        "vechnost_storage_call_seconds_bucket", {"op": "get", "le": "+Inf"}
    )
    assert buckets == count("get")
