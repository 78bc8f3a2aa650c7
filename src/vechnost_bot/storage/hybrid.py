"""Hybrid Mode: one storage API that survives Redis going away and coming back.

``_ensure_redis_connection`` is the single place that decides where a call goes.
While Redis answers, calls go to :class:`RedisStorage` and recently used records
are remembered (as their stored bytes) in a bounded local cache. The first Redis
error of any kind opens the circuit: that call and every later one is served by
:class:`InMemoryStorage`, seeded lazily from the local cache so that a game in
progress goes on. Memory-mode writes are journaled. A background probe (backoff
0.5 s doubling to 30 s, woken at once by the lifecycle's events) reconciles the
journal into Redis with server-side compare-and-set, and only then lets Redis
serve again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import TracebackType
from typing import Final, Self, TypeVar

import redis.asyncio as aioredis
import structlog
from pydantic import ValidationError
from redis.exceptions import RedisError

from vechnost_bot.log import redact
from vechnost_bot.metrics import (
    JOURNAL_SIZE,
    RECORDS_RECONCILED,
    STORAGE_FAILBACKS,
    STORAGE_FAILOVERS,
    STORAGE_LATENCY,
    STORAGE_MODE,
)
from vechnost_bot.redis.events import RedisEndpoint, RedisEvent
from vechnost_bot.storage.base import R, Storage, StorageMode
from vechnost_bot.storage.journal import Journal, JournalPut
from vechnost_bot.storage.memory import InMemoryStorage, RecordState
from vechnost_bot.storage.models import Record
from vechnost_bot.storage.redis import RedisStorage, StoredRecord, connect_redis, dump_body

__all__ = ["HybridStorage"]

log = structlog.get_logger(__name__)

ClientFactory = Callable[[RedisEndpoint], aioredis.Redis]

# Everything that means "Redis cannot serve this call right now". ConnectionError
# covers refused, reset, AuthenticationError and BusyLoadingError; ResponseError
# covers READONLY, MISCONF, OOM. Data problems are handled inside RedisStorage.
_TROUBLE: Final = (RedisError, OSError, TimeoutError)
_CIRCUIT_STATES: Final = frozenset({"down", "restarting", "degraded", "unavailable", "stopped"})
_RECONCILE_ROUNDS: Final = 4

_LATENCY = {
    op: STORAGE_LATENCY.labels(op)
    for op in ("get", "put", "delete", "incr", "counter", "rate_limit", "cache_get", "cache_set")
}

_RecordKey = tuple[str, str]
T = TypeVar("T")


def _describe(error: BaseException) -> str:
    return redact(f"{type(error).__name__}: {error}")[:300]


class HybridStorage(Storage):
    """Redis when it answers, memory when it does not, and no lost write in between."""

    def __init__(
        self,
        *,
        client_factory: ClientFactory | None = connect_redis,
        memory: InMemoryStorage | None = None,
        journal_path: Path | None = None,
        cache_size: int = 10_000,
        probe_initial: float = 0.5,
        probe_max: float = 30.0,
        journal_flush_interval: float = 1.0,
    ) -> None:
        self._factory = client_factory
        self._memory = memory if memory is not None else InMemoryStorage()
        self._journal = Journal(journal_path)
        self._cache_size = max(1, cache_size)
        self._cache: OrderedDict[_RecordKey, StoredRecord] = OrderedDict()
        self._counter_cache: OrderedDict[str, int] = OrderedDict()
        self._probe_initial = probe_initial
        self._probe_max = probe_max
        self._redis: RedisStorage | None = None
        self._endpoint: RedisEndpoint | None = None
        self._mode: StorageMode = "memory"
        self._lock = asyncio.Lock()  # serialises failbacks and client swaps
        self._gate = asyncio.Event()  # cleared only while the last reconcile round runs
        self._gate.set()
        self._wake = asyncio.Event()
        self._probe_task: asyncio.Task[None] | None = None
        self._flush_interval = journal_flush_interval
        self._flush_task: asyncio.Task[None] | None = None
        self._rebase: set[_RecordKey] = set()
        self._token_prefix = uuid.uuid4().hex[:16]
        self._tokens = 0
        self._started = False
        self._closed = False
        self._connected_once = False
        self._failovers = 0
        self._failbacks = 0
        self._records_reconciled = 0
        self._last_failover_at: float | None = None
        self._last_failback_at: float | None = None
        self._last_error: str | None = None
        self._set_mode_gauge()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, endpoint: RedisEndpoint | None) -> None:
        """Load the journal file, connect when ``endpoint`` is given, start the probe."""
        if self._started:
            if endpoint is not None:
                await self._use_endpoint(endpoint)
                self._wake.set()
            return
        self._started = True
        self._closed = False
        await asyncio.to_thread(self._journal.load)
        self._replay_journal_into_memory()
        self._probe_task = asyncio.create_task(self._probe_loop(), name="storage-probe")
        if self._journal.path is not None:
            self._flush_task = asyncio.create_task(
                self._flush_loop(self._journal.changes), name="storage-journal"
            )
        if endpoint is not None:
            await self._use_endpoint(endpoint)
            await self._try_failback()
        log.info("storage_started", mode=self._mode, journal_size=len(self._journal))

    async def stop(self) -> None:
        """Stop the probe, flush the journal to its file, close the client; safe twice."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        for task in (self._probe_task, self._flush_task):
            if task is not None:
                task.cancel("storage stopping")
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._probe_task = self._flush_task = None
        self._gate.set()
        if self._mode == "redis":
            self._mode = "memory"  # calls after stop() stay local; nothing is left to reconcile
            self._set_mode_gauge()
        try:
            await asyncio.to_thread(self._journal.flush)
            if len(self._journal):
                log.info("storage_journal_flushed", entries=len(self._journal))
        finally:
            client, self._redis = self._redis, None
            if client is not None:
                with contextlib.suppress(*_TROUBLE):
                    await client.close()

    async def close(self) -> None:
        """Same as :meth:`stop`."""
        await self.stop()

    async def __aenter__(self) -> Self:
        if not self._started:
            await self.start(None)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def on_redis_event(self, event: RedisEvent) -> None:
        """Lifecycle observer: follow a new endpoint, open the circuit, wake the probe."""
        if event.endpoint is not None and event.endpoint != self._endpoint:
            await self._use_endpoint(event.endpoint)
        if event.state == "running":
            self._wake.set()
        elif event.state in _CIRCUIT_STATES and self._mode == "redis":
            self._failover(None, reason=event.state)

    @property
    def mode(self) -> StorageMode:
        """Where calls go now: ``redis`` or ``memory``."""
        return self._mode

    def status(self) -> dict[str, object]:
        """JSON-safe facts for ``vechnost status`` (no secrets)."""
        return {
            "mode": self._mode,
            "failovers": self._failovers,
            "failbacks": self._failbacks,
            "journal_size": len(self._journal),
            "records_reconciled": self._records_reconciled,
            "last_failover_at": self._last_failover_at,
            "last_failback_at": self._last_failback_at,
            "last_error": self._last_error,
        }

    # -- routing -----------------------------------------------------------------------
    async def _ensure_redis_connection(self) -> bool:
        """The single place that decides where a call goes: True for Redis, False for memory.

        Never touches the network: the circuit is opened by a failed call and closed
        by the probe. It waits only while a failback runs its last, short round.
        """
        if not self._gate.is_set():
            await self._gate.wait()
        return self._mode == "redis"

    def _failover(self, error: BaseException | None, *, reason: str | None = None) -> None:
        if self._mode != "redis":
            return
        self._mode = "memory"
        self._failovers += 1
        self._last_failover_at = time.time()
        self._last_error = _describe(error) if error is not None else reason
        log.warning(
            "redis_connection_failed",
            error=self._last_error,
            action="serving from memory",
        )
        log.warning("storage_mode_changed", **{"from": "redis", "to": "memory"})
        STORAGE_FAILOVERS.inc()
        self._set_mode_gauge()
        self._wake.set()

    # -- records ---------------------------------------------------------------------
    async def get_record(self, model: type[R], key: str) -> R | None:
        """The stored record, or None."""
        started = time.perf_counter()
        try:
            redis = self._redis if await self._ensure_redis_connection() else None
            if redis is not None:
                try:
                    record, stored = await redis.fetch(model, key)
                except _TROUBLE as error:
                    self._failover(error)
                else:
                    self._remember((model.KIND, key), stored)
                    return record
            self._hydrate(model, key)
            return await self._memory.get_record(model, key)
        finally:
            _LATENCY["get"].observe(time.perf_counter() - started)

    async def put_record(self, record: R, *, expected_version: int | None = None) -> R:
        """Store ``record`` (CAS with ``expected_version``); never fails because Redis is down."""
        started = time.perf_counter()
        try:
            redis = self._redis if await self._ensure_redis_connection() else None
            if redis is not None:
                try:
                    result, stored = await redis.store(record, expected_version=expected_version)
                except _TROUBLE as error:
                    self._failover(error)
                else:
                    self._remember((record.KIND, record.key), stored)
                    return result
            rkey = self._hydrate(type(record), record.key)
            written = await self._memory.put_record(record, expected_version=expected_version)
            self._journal.put(written.model_copy(deep=True), rebase=rkey in self._rebase)
            JOURNAL_SIZE.set(len(self._journal))
            return written
        finally:
            _LATENCY["put"].observe(time.perf_counter() - started)

    async def delete_record(self, model: type[Record], key: str) -> None:
        """Delete a record (journaled in memory mode)."""
        started = time.perf_counter()
        try:
            redis = self._redis if await self._ensure_redis_connection() else None
            if redis is not None:
                try:
                    tombstone = await redis.remove(model, key)
                except _TROUBLE as error:
                    self._failover(error)
                else:
                    self._remember((model.KIND, key), tombstone)
                    return
            rkey = self._hydrate(model, key)
            state = self._memory.delete_versioned(model, key)
            if state is None and not self._memory.knows(model.KIND, key):
                # Memory never saw this record: delete by time whatever Redis holds.
                state = RecordState(None, 0, time.time())
                self._memory.restore(model.KIND, key, state)
            if state is not None:
                self._journal.delete(
                    model, key, state.version, state.updated_at, rebase=rkey in self._rebase
                )
                JOURNAL_SIZE.set(len(self._journal))
        finally:
            _LATENCY["delete"].observe(time.perf_counter() - started)

    # -- counters, limits, cache -------------------------------------------------------
    async def incr(self, name: str, amount: int = 1) -> int:
        """Add ``amount``; in memory mode the increment is journaled and added on failback."""
        started = time.perf_counter()
        try:
            token: str | None = None
            redis = self._redis if await self._ensure_redis_connection() else None
            if redis is not None:
                token = self._next_token()
                try:
                    value = await redis.incr_once(name, amount, token)
                except _TROUBLE as error:
                    self._failover(error)
                else:
                    self._remember_counter(name, value)
                    return value
            self._hydrate_counter(name)
            value = await self._memory.incr(name, amount)
            if token is None:
                self._journal.increment(name, amount)
            else:
                # Redis may have applied it before the reply was lost: replay at most once.
                self._journal.uncertain_increment(name, amount, token)
            JOURNAL_SIZE.set(len(self._journal))
            return value
        finally:
            _LATENCY["incr"].observe(time.perf_counter() - started)

    async def get_counter(self, name: str) -> int:
        """The counter's value."""
        started = time.perf_counter()
        try:
            redis = self._redis if await self._ensure_redis_connection() else None
            if redis is not None:
                try:
                    value = await redis.get_counter(name)
                except _TROUBLE as error:
                    self._failover(error)
                else:
                    self._remember_counter(name, value)
                    return value
            self._hydrate_counter(name)
            return await self._memory.get_counter(name)
        finally:
            _LATENCY["counter"].observe(time.perf_counter() - started)

    async def hit_rate_limit(self, key: str, limit: int, window: float) -> bool:
        """Count a hit; memory-mode windows are not carried back to Redis."""
        return await self._either("rate_limit", lambda s: s.hit_rate_limit(key, limit, window))

    async def cache_get(self, key: str) -> bytes | None:
        """A cached value, or None."""
        return await self._either("cache_get", lambda s: s.cache_get(key))

    async def cache_set(self, key: str, value: bytes, ttl: float) -> None:
        """Cache ``value`` for ``ttl`` seconds (memory-mode entries stay local)."""
        await self._either("cache_set", lambda s: s.cache_set(key, value, ttl))

    async def cache_add(self, key: str, value: bytes, ttl: float) -> bool:
        """Cache ``value`` only if absent (atomic; memory-mode entries stay local)."""
        return await self._either("cache_set", lambda s: s.cache_add(key, value, ttl))

    async def _either(self, op: str, call: Callable[[Storage], Awaitable[T]]) -> T:
        """Route a call whose memory-mode effect is not carried back to Redis."""
        started = time.perf_counter()
        try:
            redis = self._redis if await self._ensure_redis_connection() else None
            if redis is not None:
                try:
                    return await call(redis)
                except _TROUBLE as error:
                    self._failover(error)
            return await call(self._memory)
        finally:
            _LATENCY[op].observe(time.perf_counter() - started)

    # -- the local cache of Redis records ------------------------------------------------
    def _remember(self, rkey: _RecordKey, stored: StoredRecord | None) -> None:
        cache = self._cache
        if stored is None:
            cache.pop(rkey, None)
            return
        cache[rkey] = stored
        cache.move_to_end(rkey)
        if len(cache) > self._cache_size:
            cache.popitem(last=False)

    def _remember_counter(self, name: str, value: int) -> None:
        counters = self._counter_cache
        counters[name] = value
        counters.move_to_end(name)
        if len(counters) > self._cache_size:
            counters.popitem(last=False)

    def _hydrate(self, model: type[Record], key: str) -> _RecordKey:
        """Make sure memory knows what Redis last said about a record, if we know it."""
        rkey = (model.KIND, key)
        if self._memory.knows(model.KIND, key):
            return rkey
        pending = self._journal.entry(model.KIND, key)
        if pending is not None:
            # Memory evicted a record whose write is still pending: the journal has it.
            if isinstance(pending, JournalPut):
                written = pending.record
                state = RecordState(
                    written.model_copy(deep=True), written.version, written.updated_at
                )
            else:
                state = RecordState(None, pending.version, pending.updated_at)
            self._memory.restore(model.KIND, key, state)
            if pending.rebase:
                self._rebase.add(rkey)
            return rkey
        stored = self._cache.get(rkey)
        if stored is None:
            self._rebase.add(rkey)  # a memory-mode write here will not know Redis's version
            return rkey
        try:
            record = stored.load(model)
        except ValidationError:
            self._rebase.add(rkey)
            return rkey
        self._memory.restore(
            model.KIND, key, RecordState(record, stored.version, stored.updated_at)
        )
        return rkey

    def _hydrate_counter(self, name: str) -> None:
        if not self._memory.has_counter(name) and name in self._counter_cache:
            self._memory.set_counter(name, self._counter_cache[name])

    def _next_token(self) -> str:
        self._tokens += 1
        return f"{self._token_prefix}:{self._tokens}"

    # -- failback ----------------------------------------------------------------------
    async def _use_endpoint(self, endpoint: RedisEndpoint) -> None:
        async with self._lock:
            if endpoint == self._endpoint and self._redis is not None:
                return
            self._endpoint = endpoint
            old, self._redis = self._redis, None
            if self._factory is not None:
                self._redis = RedisStorage(self._factory(endpoint))
            if old is not None:
                if self._mode == "redis":
                    # Calls in flight on the old client fail over; new ones take the new one.
                    self._failover(None, reason="redis endpoint changed")
                with contextlib.suppress(*_TROUBLE):
                    await old.close()

    async def _probe_loop(self) -> None:
        delay = self._probe_initial
        while not self._closed:
            if self._mode == "redis":
                await self._wake.wait()
                self._wake.clear()
                delay = self._probe_initial
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=delay)
            self._wake.clear()
            if self._closed or self.mode == "redis":
                continue
            try:
                back = await self._try_failback()
            except Exception as error:  # the probe must outlive any bug
                log.exception("storage_probe_error", error=_describe(error))
                back = False
            delay = self._probe_initial if back else min(delay * 2, self._probe_max)

    async def _try_failback(self) -> bool:
        """Probe Redis; when it answers, reconcile the journal and switch to Redis mode."""
        async with self._lock:
            if self._mode == "redis":
                return True
            redis = self._redis
            if redis is None or self._closed:
                return False
            reconciled = 0
            try:
                # Connections pooled before the trouble may be dead (a restarted server):
                # start clean so that the first call after failback does not fail over again.
                await redis.reset_connections()
                await redis.probe()
                log.debug("redis_probe_succeeded", journal=len(self._journal))
                await redis.load_scripts()  # a restarted server forgot them
                # One round while calls go on; what they write meanwhile (usually a few
                # records) is left for the short round below.
                if self._journal:
                    reconciled += await self._reconcile_round(redis)
                # Last round with new calls held at the gate, so nothing is written to
                # memory between the journal running dry and Redis taking over.
                self._gate.clear()
                try:
                    # Calls that were already waiting on Redis when the circuit opened may
                    # still fall back to memory during this round: go again until dry.
                    switched = False
                    for _ in range(_RECONCILE_ROUNDS):
                        reconciled += await self._reconcile_round(redis)
                        if not self._journal:
                            self._switch_to_redis(reconciled)
                            switched = True
                            break
                finally:
                    self._gate.set()
            except _TROUBLE as error:
                self._last_error = _describe(error)
                log.debug("redis_probe_failed", error=self._last_error)
                return False
            return switched

    async def _reconcile_round(self, redis: RedisStorage) -> int:
        """Replay the journal into Redis (pipelined); entries rewritten meanwhile stay."""
        entries = self._journal.record_entries()
        sealed = self._journal.seal_increments()
        calls = [
            redis.put_if_newer_call(entry.record, rebase=entry.rebase)
            if isinstance(entry, JournalPut)
            else redis.delete_if_not_newer_call(
                entry.model, entry.key, entry.version, entry.updated_at, rebase=entry.rebase
            )
            for entry in entries
        ]
        calls += [redis.incr_once_call(name, delta, token) for token, name, delta in sealed]
        started = time.perf_counter()
        results = await redis.run_batch(calls)
        log.debug(
            "storage_reconcile_round",
            entries=len(calls),
            seconds=round(time.perf_counter() - started, 4),
        )
        for entry, result in zip(entries, results, strict=False):
            latest = self._journal.done(entry)
            if isinstance(entry, JournalPut):
                record = entry.record
                rkey = (record.KIND, record.key)
                written = int(result)
                if latest and written:
                    # What Redis holds now, so that the next failover starts from it.
                    body = dump_body(record)
                    self._remember(rkey, StoredRecord(written, record.updated_at, body))
                else:
                    self._cache.pop(rkey, None)
                if written != record.version:
                    self._rebase.add(rkey)  # memory no longer lines up with Redis's version
            else:
                rkey = (entry.model.KIND, entry.key)
                self._cache.pop(rkey, None)
                if not result:
                    self._rebase.add(rkey)
        for (token, name, _), value in zip(sealed, results[len(entries) :], strict=True):
            self._journal.done_increment(token)
            self._remember_counter(name, int(value))
        JOURNAL_SIZE.set(len(self._journal))
        return len(calls)

    async def _flush_loop(self, written: int) -> None:
        """Keep the journal file current (about once a second) while writes are pending,
        so that a crash or a hard kill loses at most the last interval of memory-mode
        writes. A change during a write (a failback emptying the journal) is written at
        once after it. ``written``: the journal's change count that the file holds."""
        while not self._closed:
            await asyncio.sleep(self._flush_interval)
            while self._journal.changes != written:
                written = self._journal.changes
                try:
                    await asyncio.to_thread(self._journal.write, self._journal.render())
                except OSError as error:
                    log.warning("storage_journal_write_failed", error=str(error))
                    break

    def _switch_to_redis(self, reconciled: int) -> None:
        previous = self._mode
        self._mode = "redis"
        self._memory.clear()
        self._rebase.clear()
        self._records_reconciled += reconciled
        RECORDS_RECONCILED.inc(reconciled)
        self._journal.remove_file()
        self._last_failback_at = time.time()
        self._last_error = None  # status shows the current trouble, not a healed one
        if self._connected_once:
            self._failbacks += 1
            STORAGE_FAILBACKS.inc()
        self._connected_once = True
        self._set_mode_gauge()
        log.info("storage_reconciled", records=reconciled)
        log.info("storage_mode_changed", **{"from": previous, "to": "redis"})

    def _replay_journal_into_memory(self) -> None:
        """Journal entries loaded from the file become memory's state until failback."""
        for entry in self._journal.record_entries():
            if isinstance(entry, JournalPut):
                record = entry.record.model_copy(deep=True)
                state = RecordState(record, record.version, record.updated_at)
                self._memory.restore(record.KIND, record.key, state)
                rkey = (record.KIND, record.key)
            else:
                state = RecordState(None, entry.version, entry.updated_at)
                self._memory.restore(entry.model.KIND, entry.key, state)
                rkey = (entry.model.KIND, entry.key)
            if entry.rebase:
                self._rebase.add(rkey)
        for name, delta in self._journal.increments_by_counter().items():
            self._memory.set_counter(name, delta)
        JOURNAL_SIZE.set(len(self._journal))

    def _set_mode_gauge(self) -> None:
        STORAGE_MODE.labels("redis").set(1 if self._mode == "redis" else 0)
        STORAGE_MODE.labels("memory").set(1 if self._mode == "memory" else 0)
