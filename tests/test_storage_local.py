"""The local store and what it keeps: returning players, dead processes' writes, full
disks, damaged files, kills during a reconcile, clocks stepped back, bad entries.

Real redis-server processes, real SQLite files, real SIGKILL and a real file-size limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.conftest import RedisFactory
from tests.support.redis_server import RedisServer
from tests.support.storage_helpers import endpoint_of
from tests.support.waiting import wait_until
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage import HLC, HybridStorage, RedisStorage, Session, connect_redis
from vechnost_bot.storage.records import dump_value

ROOT = Path(__file__).resolve().parent.parent
HybridFactory = Callable[..., Awaitable[HybridStorage]]


@pytest.fixture
async def make_hybrid() -> AsyncIterator[HybridFactory]:
    """Start HybridStorage instances with a fast probe; all are stopped after the test."""
    made: list[HybridStorage] = []

    async def make(endpoint: RedisEndpoint | None, **kwargs: object) -> HybridStorage:
        options: dict[str, object] = {"probe_initial": 0.05, "probe_max": 0.2}
        options.update(kwargs)
        storage = HybridStorage(**options)  # type: ignore[arg-type]
        made.append(storage)
        await storage.start(endpoint)
        return storage

    yield make
    for storage in made:
        await storage.stop()


def _draw(card: str) -> Callable[[Session], Session]:
    def mutate(session: Session) -> Session:
        session.drawn.setdefault("deck", []).append(card)
        session.last_card = card
        return session

    return mutate


async def _direct(server: RedisServer, chat: int) -> Session | None:
    direct = RedisStorage(connect_redis(endpoint_of(server), socket_timeout=2))
    try:
        return await direct.get_session(chat)
    finally:
        await direct.close()


async def _child(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.storage_process",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _read_until(process: asyncio.subprocess.Process, prefix: bytes) -> list[bytes]:
    assert process.stdout is not None
    lines = []
    while True:
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        assert line, f"the child exited before {prefix!r}"
        lines.append(line.strip())
        if line.startswith(prefix):
            return lines


async def test_returning_player_keeps_the_game_across_a_restart_without_redis(
    redis_factory: RedisFactory, make_hybrid: HybridFactory, tmp_path: Path
) -> None:
    """A player drew 5 cards (in Redis); the bot restarts while Redis is unusable: the
    player is greeted with their game, the next draws continue it, and on failback
    Redis has all of it (no blank session replacing the saved one)."""
    server = redis_factory(password="pw-return")
    local = tmp_path / "local"
    first = await make_hybrid(endpoint_of(server), local_dir=local)
    for n in range(5):
        await first.update_session(1, _draw(f"c{n}"))
    await first.update_session(1, lambda s: s.model_copy(update={"adult_confirmed": True}))
    await first.stop()
    server.kill()

    offline = await make_hybrid(endpoint_of(server), local_dir=local)
    assert offline.mode == "memory"
    known = await offline.get_session(1)
    assert known is not None
    assert known.drawn["deck"] == [f"c{n}" for n in range(5)]
    assert known.adult_confirmed
    await offline.update_session(1, _draw("c5"))

    server.start()  # the same data: the saved game is there
    await wait_until(lambda: offline.mode == "redis")
    stored = await _direct(server, 1)
    assert stored is not None
    assert stored.drawn["deck"] == [f"c{n}" for n in range(6)]
    assert stored.adult_confirmed


async def test_a_killed_process_s_writes_are_adopted_by_the_next(
    redis_factory: RedisFactory, make_hybrid: HybridFactory, tmp_path: Path
) -> None:
    """Two processes share a data dir in memory mode; one is SIGKILLed after its draws
    were acknowledged. The next process takes its file over and reconciles every one;
    the survivor's own file is never touched."""
    local = tmp_path / "local"
    survivor = await make_hybrid(None, local_dir=local, client_factory=None)
    await survivor.update_session(100, _draw("mine"))
    child = await _child(str(local), "draw", "18")
    try:
        await _read_until(child, b"done")
        await asyncio.sleep(0.2)  # several commit intervals
    finally:
        child.kill()
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    await survivor.local.wait_saved()
    assert len(list(local.glob("local-*.sqlite3"))) == 2

    server = redis_factory(password="pw-adopt")
    heir = await make_hybrid(endpoint_of(server), local_dir=local)
    assert heir.mode == "redis"
    assert heir.status()["local_store"]["adopted"]  # type: ignore[index]
    for chat in range(1, 19):
        stored = await _direct(server, chat)
        assert stored is not None, chat
        assert stored.drawn["deck"] == [f"card-{chat}"]
    assert await heir.get_counter("draws") == 18
    mine = await survivor.get_session(100)
    assert mine is not None
    assert mine.drawn["deck"] == ["mine"]  # the live process's pending write is still its own
    assert survivor.status()["journal_size"] == 1


async def test_sigkill_loses_at_most_the_last_commit_interval(tmp_path: Path) -> None:
    """A process killed while drawing as fast as it can: every write acknowledged more
    than ~50 ms before the kill is in its file (the next process reads it)."""
    local = tmp_path / "local"
    child = await _child(str(local), "draw", "100000")
    acked: list[int] = []
    try:
        assert child.stdout is not None
        while len(acked) < 300:
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            if line.startswith(b"acked"):
                acked.append(int(line.split()[1]))
    finally:
        child.kill()
        await child.wait()
    heir = HybridStorage(client_factory=None, local_dir=local)
    await heir.start(None)
    try:
        present = [chat for chat in range(1, acked[-1] + 1) if await heir.get_session(chat)]
    finally:
        await heir.stop()
    missing = set(acked) - set(present)
    # a draw takes about a millisecond here: 50 ms is ~50 writes, and usually none is lost
    assert len(missing) <= 50, sorted(missing)
    assert set(acked[:-50]) <= set(present)


async def test_a_full_disk_is_loud_retried_and_counted_on_stop(tmp_path: Path) -> None:
    """The local store's file cannot grow (a real file-size limit): status() names the
    trouble and the writes at risk while the bot keeps serving, and stop() says how
    many acknowledged writes could not be kept."""
    child = await _child(str(tmp_path / "local"), "fill")
    assert child.stdout is not None
    out, _ = await asyncio.wait_for(child.communicate(), 120)
    during, after = (json.loads(line) for line in out.decode().strip().splitlines()[-2:])
    status = during["during"]
    assert "cannot write" in status["degraded_reason"]
    assert status["local_store"]["write_error"]
    assert status["local_store"]["writes_at_risk"] > 0
    assert after["writes_at_risk"] > 0
    assert child.returncode == 0


async def test_a_full_disk_that_gets_space_again_keeps_every_write(tmp_path: Path) -> None:
    """The same full disk, then space again: the retried commits get through, the
    trouble leaves status(), and nothing is at risk on stop."""
    child = await _child(str(tmp_path / "local"), "fill", "recover")
    out, _ = await asyncio.wait_for(child.communicate(), 120)
    during, recovered, after = (json.loads(line) for line in out.decode().split("\n")[-4:-1])
    assert during["during"]["local_store"]["write_error"]
    assert recovered["recovered"]["degraded_reason"] is None
    assert recovered["recovered"]["local_store"]["write_errors"] >= 1
    assert after["writes_at_risk"] == 0
    heir = HybridStorage(client_factory=None, local_dir=tmp_path / "local")
    await heir.start(None)
    try:
        assert heir.status()["journal_size"] == during["acked"]
    finally:
        await heir.stop()


async def test_damaged_local_files_are_moved_aside_and_the_bot_starts(
    make_hybrid: HybridFactory, tmp_path: Path
) -> None:
    """A file of garbage and a directory where a dead process's store should be: both
    are moved aside (kept), logged, and the store opens."""
    local = tmp_path / "local"
    local.mkdir()
    (local / "local-1-aaaaaaaa.sqlite3").write_bytes(b"\xff\xfenot a database" * 100)
    (local / "local-2-bbbbbbbb.sqlite3").mkdir()
    with capture_logs() as logs:
        storage = await make_hybrid(None, local_dir=local, client_factory=None)
    await storage.update_session(1, _draw("a"))
    moved = [e for e in logs if e["event"] == "storage_local_file_moved_aside"]
    assert len(moved) == 2
    assert len(list(local.glob("*.damaged-*"))) == 2


@pytest.mark.parametrize(
    "line",
    [
        b"\xff\xfe{not utf-8}",
        b"[1, 2, 3]",
        b"42",
        b"null",
        b'{"op": "incr", "name": "c", "delta": Infinity}',
        b'{"op": "incr", "name": "c", "delta": 1e400}',
        b'{"op": "incr", "name": "c", "delta": true}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"op": "put", "kind": "session", "record": {"chat_id": 9, "version": -1}}',
        b'{"op": "teleport"}',
    ],
)
async def test_a_damaged_legacy_journal_never_stops_the_bot(
    redis_factory: RedisFactory, make_hybrid: HybridFactory, tmp_path: Path, line: bytes
) -> None:
    """An earlier version's journal.jsonl with one broken line: the line is skipped and
    logged with its number, every other entry reaches Redis, and the file is kept."""
    journal = tmp_path / "journal.jsonl"
    good = json.dumps(
        {"op": "put", "kind": "session", "record": {"chat_id": 1, "drawn": {"d": ["x"]}}}
    ).encode()
    journal.write_bytes(
        b'{"format": "vechnost-journal", "version": 1}\n'
        + line
        + b"\n"
        + good
        + b'\n{"op": "incr", "name": "c", "delta": 2}\n'
    )
    server = redis_factory(password="pw-legacy")
    with capture_logs() as logs:
        storage = await make_hybrid(
            endpoint_of(server), local_dir=tmp_path / "local", legacy_journal=journal
        )
    corrupt = [e for e in logs if e["event"] == "storage_journal_corrupt_line"]
    assert [e["line"] for e in corrupt] == [2]
    assert storage.mode == "redis"
    stored = await _direct(server, 1)
    assert stored is not None
    assert stored.drawn == {"d": ["x"]}
    assert await storage.get_counter("c") == 2
    assert not journal.exists()
    assert list(tmp_path.glob("journal.jsonl.imported-*"))


async def test_a_directory_in_the_legacy_journal_s_place(
    make_hybrid: HybridFactory, tmp_path: Path
) -> None:
    """A directory where journal.jsonl should be is moved aside; the bot starts."""
    journal = tmp_path / "journal.jsonl"
    journal.mkdir()
    storage = await make_hybrid(
        None, client_factory=None, local_dir=tmp_path / "local", legacy_journal=journal
    )
    assert storage.mode == "memory"
    assert list(tmp_path.glob("journal.jsonl.damaged-*"))


async def test_a_kill_during_reconcile_counts_every_increment_once(
    redis_factory: RedisFactory, make_hybrid: HybridFactory, tmp_path: Path
) -> None:
    """Pending draws and increments; the process reconciling them is SIGKILLed midway;
    the next one finishes. Every record is there and the counter is exact (the
    increment's token was saved before it was ever sent)."""
    local = tmp_path / "local"
    offline = await make_hybrid(None, client_factory=None, local_dir=local)
    for chat in range(1, 401):
        await offline.update_session(chat, _draw("x"))
    for _ in range(20):
        await offline.incr("draws", 1000)
    await offline.stop()

    server = redis_factory(password="pw-mid")
    for delay in (0.0, 0.01, 0.03):
        child = await _child(str(local), "reconcile", str(server.port), "pw-mid")
        try:
            await _read_until(child, b"starting")
            await asyncio.sleep(delay)
        finally:
            with contextlib.suppress(ProcessLookupError):  # it may have finished
                child.kill()
            await child.wait()
    heir = await make_hybrid(endpoint_of(server), local_dir=local)
    assert heir.mode == "redis"
    assert await heir.get_counter("draws") == 20_000
    for chat in (1, 200, 400):
        stored = await _direct(server, chat)
        assert stored is not None
        assert stored.drawn["deck"] == ["x"]


async def test_a_clock_stepped_back_never_drops_an_acknowledged_write(
    redis_factory: RedisFactory, make_hybrid: HybridFactory, tmp_path: Path
) -> None:
    """Written in Redis at T; restarted with the wall clock an hour behind and Redis
    down; the newer write made then wins on failback."""
    server = redis_factory(password="pw-clock")
    local = tmp_path / "local"
    first = await make_hybrid(endpoint_of(server), local_dir=local)
    await first.update_session(1, lambda s: s.model_copy(update={"theme": "couples"}))
    await first.stop()
    server.kill()

    import time

    behind = HLC(wall=lambda: time.time() - 3600)
    offline = await make_hybrid(endpoint_of(server), local_dir=local, clock=behind)
    assert offline.mode == "memory"
    await offline.update_session(1, lambda s: s.model_copy(update={"theme": "sex"}))
    server.start()
    await wait_until(lambda: offline.mode == "redis")
    stored = await _direct(server, 1)
    assert stored is not None
    assert stored.theme == "sex"


async def test_a_negative_version_is_quarantined_and_blocks_nothing(
    redis_factory: RedisFactory, make_hybrid: HybridFactory, tmp_path: Path
) -> None:
    """One pending row with version -1 among good ones: it is set aside with a log
    event, the others reach Redis, and the storage goes back to Redis mode."""
    local = tmp_path / "local"
    offline = await make_hybrid(None, client_factory=None, local_dir=local)
    for chat in (1, 2, 3):
        await offline.update_session(chat, _draw("ok"))
    await offline.stop()
    (database,) = local.glob("local-*.sqlite3")
    bad = dump_value(Session(chat_id=2, stamp=5)).replace(b":0:", b":-1:", 1)
    with sqlite3.connect(database) as db:
        db.execute("UPDATE records SET value = ? WHERE key = '2'", (bad,))
    db.close()

    server = redis_factory(password="pw-neg")
    with capture_logs() as logs:
        storage = await make_hybrid(endpoint_of(server), local_dir=local)
    assert storage.mode == "redis"
    assert [e["key"] for e in logs if e["event"] == "storage_entry_quarantined"] == ["2"]
    for chat in (1, 3):
        stored = await _direct(server, chat)
        assert stored is not None
        assert stored.drawn["deck"] == ["ok"]
    assert await _direct(server, 2) is None


async def test_nineteen_concurrent_taps_all_land(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """19 concurrent draws on one chat from two processes' worth of storages: every one
    lands (conflicts are retried inside the storage, no small limit)."""
    server = redis_factory(password="pw-taps")
    a = await make_hybrid(endpoint_of(server))
    b = await make_hybrid(endpoint_of(server))
    await asyncio.gather(*((a if n % 2 else b).update_session(1, _draw(str(n))) for n in range(19)))
    stored = await _direct(server, 1)
    assert stored is not None
    assert sorted(stored.drawn["deck"], key=int) == [str(n) for n in range(19)]


async def test_a_connection_reset_wakes_the_lifecycle_at_once(
    redis_factory: RedisFactory, make_hybrid: HybridFactory
) -> None:
    """The first call that meets a dead server calls the on_connection_lost hook."""
    server = redis_factory(password="pw-wake")
    woken = asyncio.Event()

    async def wake() -> None:
        woken.set()

    storage = await make_hybrid(endpoint_of(server), on_connection_lost=wake)
    await storage.update_session(1, _draw("a"))
    server.kill()
    await storage.update_session(1, _draw("b"))
    await asyncio.wait_for(woken.wait(), 1)
