"""The local store: SQLite (WAL) on disk behind a bounded hot LRU in RAM.

It is the fallback tier of :class:`~vechnost_bot.storage.hybrid.HybridStorage` and
its memory of Redis:

- **Pending writes** made while Redis is away (``pending``), waiting for the
  failback reconcile (``storage/reconcile.py``), and counter increments with the
  token that makes their replay count once (persisted before they are sent).
- **The last-known Redis state** of recently used records, so a bot started while
  Redis is unusable still knows a returning player's game.

Every file operation runs in the store's two threads (one writer, one reader),
never on the event loop. A write is acknowledged once it is in RAM; the writer
commits whatever is queued as soon as it can (group commit, ``synchronous=NORMAL``,
which survives a killed process), so a SIGKILL loses only what was acknowledged in
the last few milliseconds (``commit_interval`` bounds it at about 50 ms; the
figure is measured by ``bench/memory_scale.py``). A write that cannot be committed
(full or read-only disk, no permission) stays in RAM, is retried with backoff, and
is loud: :attr:`LocalStore.write_error`, the ``vechnost_storage_local_errors_total``
metric and a ``storage_local_write_failed`` error event.

One file per process (``local-<pid>-<id>.sqlite3`` in the given directory), locked
while the process lives. At start a process takes over the files of processes that
died (their lock is free): the first one by renaming it (no copy, no replay), the
others by copying their rows in (records merged, increments by token). A file
that is not a readable database is moved aside (``*.damaged-<time>``), never deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import structlog
from filelock import FileLock, Timeout

from vechnost_bot.metrics import LOCAL_STORE_ERRORS
from vechnost_bot.storage.records import (
    HLC,
    RECORD_KINDS,
    R,
    Record,
    dump_value,
    load_value,
    merge,
)

__all__ = ["Entry", "LocalStore", "PendingIncrement"]

log = structlog.get_logger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS records (
  kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL,
  pending INTEGER NOT NULL, redis_version INTEGER NOT NULL, touched REAL NOT NULL,
  PRIMARY KEY (kind, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS records_pending ON records (kind, key) WHERE pending = 1;
CREATE TABLE IF NOT EXISTS increments (
  token TEXT PRIMARY KEY, name TEXT NOT NULL, delta INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS quarantine (
  kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB, reason TEXT NOT NULL, at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 0), last INTEGER NOT NULL);
"""
_PREFIX: Final = "local-"
_SUFFIX: Final = ".sqlite3"
_KNOWN_INTERVAL: Final = 1.0
_RETRY_FIRST: Final = 0.1
_RETRY_MAX: Final = 2.0

_RecordKey = tuple[str, str]


@dataclass(slots=True)
class Entry:
    """What the store knows about one record, as its stored bytes (parsed on use, so
    every reader gets its own copy)."""

    raw: bytes
    pending: bool
    redis_version: int
    """The version Redis had when this process last saw the record (0 = unknown)."""
    seq: int = 0
    """Which write made this entry (store-wide, growing), so a commit knows it is current."""

    def load(self, model: type[R], key: str) -> R:
        """A new copy of the record (ValueError when the bytes are not one)."""
        return load_value(model, key, self.raw)


@dataclass(slots=True)
class PendingIncrement:
    """Counter increments waiting for Redis, under the token that applies them once."""

    token: str
    name: str
    delta: int


@dataclass(slots=True)
class _Batch:
    """What the writer commits next (the latest value per record, increments by token)."""

    records: dict[_RecordKey, tuple[bytes, bool, int, int]] = field(default_factory=dict)
    increments: dict[str, PendingIncrement] = field(default_factory=dict)
    done_increments: set[str] = field(default_factory=set)
    quarantine: list[tuple[str, str, bytes | None, str]] = field(default_factory=list)
    clock: int = 0

    def __bool__(self) -> bool:
        return bool(self.records or self.increments or self.done_increments or self.quarantine)

    def absorb(self, newer: _Batch) -> None:
        self.records.update(newer.records)
        for token, inc in newer.increments.items():
            self.increments[token] = inc
        self.done_increments |= newer.done_increments
        for token in newer.done_increments:
            self.increments.pop(token, None)
        self.quarantine += newer.quarantine
        self.clock = max(self.clock, newer.clock)


class LocalStore:
    """Records, pending writes and increments of one process, in RAM and SQLite.

    ``directory=None`` keeps everything in RAM only (tests, benches of the baseline).
    All public methods are called from the event loop; none blocks on a file.
    """

    def __init__(
        self,
        directory: Path | None,
        *,
        clock: HLC,
        hot_size: int = 10_000,
        commit_interval: float = 0.01,
    ) -> None:
        self.directory = directory
        self.clock = clock
        self._hot_size = max(1, hot_size)
        self._hot: OrderedDict[_RecordKey, Entry] = OrderedDict()
        self._unsaved: dict[_RecordKey, Entry] = {}
        self._increments: dict[str, PendingIncrement] = {}
        self._open_tokens: dict[str, str] = {}
        self._pending_records = 0
        self._seq = 0
        self._known: dict[_RecordKey, tuple[bytes, bool, int, int]] = {}
        self._known_queued = False
        self._commit_interval = commit_interval
        self._queue: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        self._batch = _Batch()
        self._batch_queued = False
        self._writer: threading.Thread | None = None
        self._reader: ThreadPoolExecutor | None = None
        self._read_db: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock: FileLock | None = None
        self.path: Path | None = None
        self.write_error: str | None = None
        self.errors = 0
        self.adopted: list[str] = []
        self._unsaved_tokens: set[str] = set()
        self._closed = False
        self._idle = asyncio.Event()
        self._idle.set()

    # -- lifecycle ---------------------------------------------------------------------
    async def open(self) -> None:
        """Open (or take over) this process's file and start the threads."""
        self._loop = asyncio.get_running_loop()
        if self.directory is None:
            return
        orphans = await asyncio.to_thread(self._claim_files)
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="vechnost-local-read")
        pending, increments, last = await self._read(self._startup_counts)
        self._pending_records = pending
        for inc in increments:
            self._increments[inc.token] = inc
        self.clock.observe(last)
        self._writer = threading.Thread(
            target=self._write_loop, name="vechnost-local-write", daemon=True
        )
        self._writer.start()
        for orphan in orphans:
            await self._adopt(orphan)
        log.info(
            "storage_local_opened",
            path=str(self.path),
            pending=self.pending_count,
            adopted=len(self.adopted),
        )

    async def close(self) -> int:
        """Commit what is queued and stop; returns how many writes could not be kept."""
        if self._closed:
            return self.at_risk
        self._closed = True
        if self._writer is not None:
            self._batch.records = {**self._known, **self._batch.records}
            self._known = {}
            self._flush_now()
            self._queue.put(None)
            await asyncio.to_thread(self._writer.join, 10.0)
            self._writer = None
        if self._reader is not None:
            reader, self._reader = self._reader, None
            await asyncio.get_running_loop().run_in_executor(reader, self._close_reader)
            reader.shutdown(wait=True)
        if self._lock is not None:
            self._lock.release()
        at_risk = self.at_risk
        if at_risk:
            log.error("storage_local_writes_at_risk", writes=at_risk, error=self.write_error)
        return at_risk

    @property
    def at_risk(self) -> int:
        """Acknowledged writes not (yet) on disk: lost if the process dies now."""
        if self.directory is None:
            return 0
        return len(self._unsaved) + len(self._unsaved_tokens)

    @property
    def pending_count(self) -> int:
        """Writes waiting for Redis: records and counter tokens."""
        return self._pending_records + len(self._increments)

    async def wait_saved(self) -> None:
        """Until everything acknowledged so far is committed (or failed to be)."""
        self._flush_now()
        await self._idle.wait()

    # -- records -----------------------------------------------------------------------
    def cached(self, kind: str, key: str) -> Entry | None:
        """The entry if it is in RAM (no I/O)."""
        rkey = (kind, key)
        entry = self._unsaved.get(rkey)
        if entry is not None:
            return entry
        entry = self._hot.get(rkey)
        if entry is not None:
            self._hot.move_to_end(rkey)
        return entry

    async def entry(self, model: type[R], key: str) -> Entry | None:
        """The entry, from RAM or from disk (read in the reader thread)."""
        found = self.cached(model.KIND, key)
        if found is not None or self._reader is None:
            return found
        row = await self._read(self._select, model.KIND, key)
        found = self.cached(model.KIND, key)  # written while we read?
        if found is not None or row is None:
            return found
        value, pending, redis_version = row
        entry = Entry(value, bool(pending), int(redis_version))
        self._keep(model.KIND, key, entry)
        return entry

    def put(self, state: Record, *, pending: bool, redis_version: int) -> Entry:
        """Replace a record's entry with ``state``."""
        return self.put_raw(
            state.KIND, state.key, dump_value(state), pending=pending, redis_version=redis_version
        )

    def put_raw(
        self, kind: str, key: str, raw: bytes, *, pending: bool, redis_version: int
    ) -> Entry:
        """Replace a record's entry with its stored bytes.

        The caller has just fetched the entry with :meth:`entry` (nothing awaited since),
        so RAM knows whether a pending write is being replaced.
        """
        rkey = (kind, key)
        old = self._unsaved.get(rkey) or self._hot.get(rkey)
        self._seq += 1
        seq = self._seq
        if pending and (old is None or not old.pending):
            self._pending_records += 1
        elif not pending and old is not None and old.pending:
            self._pending_records -= 1
        entry = Entry(raw, pending, redis_version, seq)
        self._hot.pop(rkey, None)
        self._known.pop(rkey, None)  # a lazy copy of Redis's state must not come after this
        if self.directory is None:  # RAM only: a pending write is pinned, never evicted
            if pending:
                self._unsaved[rkey] = entry
            else:
                self._unsaved.pop(rkey, None)
                self._keep(*rkey, entry)
            return entry
        self._unsaved[rkey] = entry
        self._batch.records[rkey] = (raw, pending, redis_version, seq)
        self._schedule()
        return entry

    def remember(self, kind: str, key: str, raw: bytes, version: int) -> None:
        """Keep a state Redis holds (read or just written) unless a local write is pending.

        Redis has it, so it reaches the file lazily (about once a second, the latest per
        record): a hot chat costs one row write a second, not one per call.
        """
        rkey = (kind, key)
        old = self._unsaved.get(rkey) or self._hot.get(rkey)
        if old is not None and (old.pending or old.raw == raw):
            return
        self._seq += 1
        entry = Entry(raw, False, version, self._seq)
        if rkey in self._unsaved:
            self._unsaved[rkey] = entry
            self._batch.records[rkey] = (raw, False, version, entry.seq)
            self._schedule()
            return
        self._keep(kind, key, entry)
        if self.directory is not None:
            self._known[rkey] = (raw, False, version, entry.seq)
            if not self._known_queued and self._loop is not None:
                self._known_queued = True
                self._loop.call_later(_KNOWN_INTERVAL, self._flush_known)

    def _flush_known(self) -> None:
        self._known_queued = False
        if self._known and not self._closed:
            self._batch.records = {**self._known, **self._batch.records}
            self._known = {}
            self._schedule()

    async def pending_chunk(
        self, after: _RecordKey | None, limit: int
    ) -> tuple[list[tuple[_RecordKey, Entry]], _RecordKey | None]:
        """Up to ``limit`` pending records after ``after`` (in key order), with their
        entries (one query for the chunk, RAM first for what it holds), and the last key
        looked at (None when there is nothing after ``after``)."""
        rows: dict[_RecordKey, Entry] = {}
        if self._reader is not None:
            for kind, key, value, redis_version in await self._read(
                self._pending_rows, after, limit
            ):
                rows[(kind, key)] = Entry(value, True, redis_version)
        # Pending writes not committed yet are in RAM only.
        for rkey, entry in self._unsaved.items():
            if entry.pending and (after is None or rkey > after):
                rows[rkey] = entry
        chunk = []
        keys = sorted(rows)[:limit]
        for rkey in keys:
            known = self.cached(*rkey)
            if known is None:
                known = rows[rkey]
                self._keep(*rkey, known)
            entry = known
            if rkey[0] not in RECORD_KINDS:
                self._quarantine(*rkey, entry.raw, "unknown record kind")
                self.put_raw(*rkey, entry.raw, pending=False, redis_version=0)
                continue
            if entry.pending:
                chunk.append((rkey, entry))
        return chunk, keys[-1] if keys else None

    async def reconciled(self, entry: Entry, written: Record) -> None:
        """``entry`` (pending) is now in Redis as ``written``."""
        model = type(written)
        now = await self.entry(model, written.key)  # in RAM from here on (see put_raw)
        if now is None or now.raw == entry.raw:
            self.put(written, pending=False, redis_version=written.version)
        else:  # written to again meanwhile: keep that, on top of what Redis holds now
            mine = now.load(model, written.key)
            self.put(merge(mine, written), pending=True, redis_version=written.version)

    async def quarantine(self, kind: str, key: str, entry: Entry, reason: str) -> None:
        """Set a pending record aside (kept in the file), so it never blocks the others."""
        self._quarantine(kind, key, entry.raw, reason)
        model = RECORD_KINDS.get(kind)
        if model is not None:
            await self.entry(model, key)
        self.put_raw(kind, key, entry.raw, pending=False, redis_version=entry.redis_version)

    def _quarantine(self, kind: str, key: str, value: bytes | None, reason: str) -> None:
        log.error("storage_entry_quarantined", kind=kind, key=key, reason=reason)
        self._batch.quarantine.append((kind, key, value, reason))
        self._schedule()

    # -- increments --------------------------------------------------------------------
    def add_increment(self, name: str, delta: int, *, token: str | None = None) -> None:
        """Keep an increment for Redis; with ``token`` (an uncertain one) on its own."""
        if token is None:
            token = self._open_tokens.get(name)
            if token is None:
                token = self._open_tokens[name] = uuid.uuid4().hex
        inc = self._increments.get(token)
        if inc is None:
            inc = self._increments[token] = PendingIncrement(token, name, 0)
        inc.delta += delta
        if self.directory is not None:
            self._batch.increments[token] = PendingIncrement(token, name, inc.delta)
            self._unsaved_tokens.add(token)
            self._schedule()

    def seal_increments(self) -> list[PendingIncrement]:
        """Every pending increment; later ones go under new tokens."""
        self._open_tokens.clear()
        return [PendingIncrement(i.token, i.name, i.delta) for i in self._increments.values()]

    def increment_done(self, token: str) -> None:
        """A sealed increment is in Redis."""
        if self._increments.pop(token, None) is not None and self.directory is not None:
            self._batch.done_increments.add(token)
            self._batch.increments.pop(token, None)
            self._schedule()

    def pending_delta(self, name: str) -> int:
        """The sum of pending increments of counter ``name``."""
        return sum(i.delta for i in self._increments.values() if i.name == name)

    # -- RAM ---------------------------------------------------------------------------
    def _keep(self, kind: str, key: str, entry: Entry) -> None:
        hot = self._hot
        hot[(kind, key)] = entry
        hot.move_to_end((kind, key))
        while len(hot) > self._hot_size:
            hot.popitem(last=False)

    def _schedule(self) -> None:
        self._batch.clock = self.clock.last
        self._idle.clear()
        if not self._batch_queued and self._loop is not None:
            self._batch_queued = True
            self._loop.call_later(self._commit_interval, self._flush_now)

    def _flush_now(self) -> None:
        self._batch_queued = False
        if self._writer is None or not self._batch:
            if self.directory is None or (not self._unsaved and not self._unsaved_tokens):
                self._idle.set()
            return
        batch, self._batch = self._batch, _Batch()
        self._queue.put(batch)

    def _committed(self, batch: _Batch, error: str | None) -> None:
        """In the loop: the writer committed ``batch`` (or failed to, with ``error``)."""
        if error is not None:
            if self.write_error is None:
                log.error("storage_local_write_failed", error=error, path=str(self.path))
            self.write_error = error
            self.errors += 1
            LOCAL_STORE_ERRORS.inc()
            return
        if self.write_error is not None:
            log.warning("storage_local_write_recovered", path=str(self.path))
            self.write_error = None
        for rkey, (_, _, _, seq) in batch.records.items():
            entry = self._unsaved.get(rkey)
            if entry is not None and entry.seq == seq:
                del self._unsaved[rkey]
                self._keep(*rkey, entry)
        for token, inc in batch.increments.items():
            current = self._increments.get(token)
            if current is None or current.delta == inc.delta:
                self._unsaved_tokens.discard(token)
        self._unsaved_tokens -= batch.done_increments
        if not self._batch and not self._unsaved and not self._unsaved_tokens:
            self._idle.set()

    # -- the threads -------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        assert self.path is not None
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        return db

    def _write_loop(self) -> None:
        db: sqlite3.Connection | None = None
        carry: _Batch | None = None
        delay = _RETRY_FIRST
        stopping = False
        while True:
            if carry is None or stopping:
                item = self._queue.get() if not stopping else None
                if item is None and carry is None:
                    break
                if item is None:
                    stopping = True
                else:
                    carry = item if carry is None else _absorbed(carry, item)
            else:  # a failed batch: wait, take what came meanwhile, try again
                try:
                    item = self._queue.get(timeout=delay)
                except queue.Empty:
                    item = _Batch()
                if item is None:
                    stopping = True
                else:
                    carry = _absorbed(carry, item)
            while True:  # take everything queued: one transaction for all of it
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    stopping = True
                    break
                carry = _absorbed(carry, more) if carry is not None else more
            assert carry is not None
            try:
                if db is None:
                    db = self._connect()
                self._commit(db, carry)
            except (sqlite3.Error, OSError) as error:
                with contextlib.suppress(sqlite3.Error):
                    if db is not None:
                        db.rollback()
                self._post(carry, f"{type(error).__name__}: {error}")
                delay = min(delay * 2, _RETRY_MAX)
                if stopping:
                    break
                continue
            self._post(carry, None)
            carry = None
            delay = _RETRY_FIRST
            if stopping:
                break
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                db.close()

    def _post(self, batch: _Batch, error: str | None) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._committed, batch, error)

    @staticmethod
    def _commit(db: sqlite3.Connection, batch: _Batch) -> None:
        now = time.time()
        db.execute("BEGIN IMMEDIATE")
        db.executemany(
            "INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?, ?)",
            [
                (kind, key, raw, int(pending), redis_version, now)
                for (kind, key), (raw, pending, redis_version, _) in batch.records.items()
            ],
        )
        db.executemany(
            "INSERT OR REPLACE INTO increments VALUES (?, ?, ?)",
            [(i.token, i.name, i.delta) for i in batch.increments.values()],
        )
        db.executemany(
            "DELETE FROM increments WHERE token = ?", [(t,) for t in batch.done_increments]
        )
        db.executemany(
            "INSERT INTO quarantine VALUES (?, ?, ?, ?, ?)",
            [(*item, now) for item in batch.quarantine],
        )
        db.execute("INSERT OR REPLACE INTO clock VALUES (0, ?)", (batch.clock,))
        db.execute("COMMIT")

    async def _read(self, function: Any, *args: Any) -> Any:
        assert self._reader is not None
        return await asyncio.get_running_loop().run_in_executor(self._reader, function, *args)

    def _reader_db(self) -> sqlite3.Connection:
        if self._read_db is None:
            self._read_db = self._connect()
        return self._read_db

    def _close_reader(self) -> None:
        if self._read_db is not None:
            self._read_db.close()
            self._read_db = None

    def _select(self, kind: str, key: str) -> tuple[bytes, int, int] | None:
        row = (
            self._reader_db()
            .execute(
                "SELECT value, pending, redis_version FROM records WHERE kind = ? AND key = ?",
                (kind, key),
            )
            .fetchone()
        )
        return None if row is None else (bytes(row[0]), int(row[1]), int(row[2]))

    def _pending_rows(
        self, after: _RecordKey | None, limit: int
    ) -> list[tuple[str, str, bytes, int]]:
        db = self._reader_db()
        query = "SELECT kind, key, value, redis_version FROM records WHERE pending = 1"
        if after is None:
            rows = db.execute(f"{query} ORDER BY kind, key LIMIT ?", (limit,))
        else:
            rows = db.execute(
                f"{query} AND (kind, key) > (?, ?) ORDER BY kind, key LIMIT ?", (*after, limit)
            )
        return [(str(k), str(key), bytes(v), int(rv)) for k, key, v, rv in rows]

    def _startup_counts(self) -> tuple[int, list[PendingIncrement], int]:
        db = self._reader_db()
        pending = db.execute("SELECT count(*) FROM records WHERE pending = 1").fetchone()[0]
        increments = [
            PendingIncrement(str(t), str(n), int(d))
            for t, n, d in db.execute("SELECT token, name, delta FROM increments")
        ]
        row = db.execute("SELECT last FROM clock WHERE id = 0").fetchone()
        return int(pending), increments, int(row[0]) if row else 0

    # -- files of this and of dead processes ---------------------------------------------
    def _claim_files(self) -> list[Path]:
        """(Thread) Lock a file of our own: a dead process's, renamed, or a new one.

        Returns the other dead processes' files, to copy in.
        """
        directory = self.directory
        assert directory is not None
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        own = f"{_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.path = directory / f"{own}{_SUFFIX}"
        self._lock = FileLock(directory / f"{own}.lock", thread_local=False)
        self._lock.acquire(timeout=0)
        orphans: list[Path] = []
        with FileLock(directory / "local.lock", timeout=30):
            for candidate in sorted(directory.glob(f"{_PREFIX}*{_SUFFIX}")):
                if candidate == self.path:
                    continue
                if _owner_alive(candidate):
                    continue
                if not candidate.is_file() or not _readable_database(candidate):
                    _move_aside(candidate)
                    continue
                if not self.path.exists():
                    _rename_database(candidate, self.path)
                    self.adopted.append(candidate.name)
                else:
                    orphans.append(candidate)
            if self.path.exists() and not _readable_database(self.path):
                _move_aside(self.path)
            db = self._connect()
            try:
                db.executescript(_SCHEMA)
            finally:
                db.close()
            self.path.chmod(0o600)
        return orphans

    async def _adopt(self, orphan: Path) -> None:
        """Copy a dead process's pending writes, increments and known states in, then
        remove its file (its rows are ours now)."""
        rows, increments = await asyncio.to_thread(_read_orphan, orphan)
        for kind, key, value, pending, redis_version in rows:
            model = RECORD_KINDS.get(kind)
            if model is None:
                continue
            try:
                state = load_value(model, key, value)
                mine = await self.entry(model, key)
                if mine is None:
                    self.put(state, pending=bool(pending), redis_version=redis_version)
                elif pending or mine.pending:
                    self.put(
                        merge(mine.load(model, key), state),
                        pending=True,
                        redis_version=mine.redis_version if mine.pending else redis_version,
                    )
            except ValueError as error:
                self._quarantine(kind, key, value, f"adopted, unreadable: {type(error).__name__}")
        for token, name, delta in increments:
            if token not in self._increments:
                self._increments[token] = PendingIncrement(token, name, delta)
                self._batch.increments[token] = PendingIncrement(token, name, delta)
                self._unsaved_tokens.add(token)
        self._schedule()
        await self.wait_saved()
        if self.write_error is None:
            await asyncio.to_thread(_remove_database, orphan)
            self.adopted.append(orphan.name)
            log.info("storage_local_adopted", path=str(orphan), records=len(rows))


def _absorbed(older: _Batch, newer: _Batch) -> _Batch:
    older.absorb(newer)
    return older


def _lock_of(database: Path) -> Path:
    return database.with_name(database.name.removesuffix(_SUFFIX) + ".lock")


def _owner_alive(database: Path) -> bool:
    """True while the process that owns ``database`` holds its lock."""
    lock = FileLock(_lock_of(database))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


def _readable_database(path: Path) -> bool:
    try:
        db = sqlite3.connect(path)  # read-write: a dead owner's WAL is recovered into it
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return False
    return True


def _sidecars(path: Path) -> Iterator[Path]:
    for suffix in ("-wal", "-shm"):
        yield path.with_name(path.name + suffix)


def _rename_database(source: Path, target: Path) -> None:
    # A dead process's WAL holds committed writes: it moves with its database.
    for side, new in zip(_sidecars(source), _sidecars(target), strict=True):
        if side.exists():
            side.replace(new)
    source.replace(target)
    _lock_of(source).unlink(missing_ok=True)


def _move_aside(path: Path) -> None:
    aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    log.error("storage_local_file_moved_aside", path=str(path), moved_to=str(aside))
    path.replace(aside)
    for side in _sidecars(path):
        if side.exists():
            side.replace(side.with_name(f"{side.name}.damaged-{int(time.time())}"))


def _read_orphan(path: Path) -> tuple[list[tuple[str, str, bytes, int, int]], list[Any]]:
    db = sqlite3.connect(path)
    try:
        rows = [
            (str(k), str(key), bytes(v), int(p), int(rv))
            for k, key, v, p, rv in db.execute(
                "SELECT kind, key, value, pending, redis_version FROM records"
            )
        ]
        increments = list(db.execute("SELECT token, name, delta FROM increments"))
    finally:
        db.close()
    return rows, increments


def _remove_database(path: Path) -> None:
    for side in _sidecars(path):
        side.unlink(missing_ok=True)
    path.unlink(missing_ok=True)
    _lock_of(path).unlink(missing_ok=True)
