"""Hybrid Mode: one storage API that survives Redis going away and coming back.

``_ensure_redis_connection`` is the single place that decides where a call goes.
While Redis answers, calls go to :class:`RedisStorage`, and what Redis holds of
every record used is kept in the local store (RAM, then SQLite), so that the next
update needs no read and a bot started without Redis still knows returning
players. The first Redis error of any kind opens the circuit: that call and every
later one is served by the local store (:class:`LocalStore`), and its writes are
kept as pending. A background probe (backoff 0.5 s doubling to 30 s, woken at once
by the lifecycle's events) reconciles the pending writes into Redis, merged with
whatever Redis holds (``storage/reconcile.py``), and only then lets Redis serve
again. Rate-limit windows and the byte cache live in RAM while Redis is away.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, TypeVar

import redis.asyncio as aioredis
import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

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
from vechnost_bot.storage.base import Cas, R, Storage, StorageMode
from vechnost_bot.storage.legacy_journal import import_legacy_journal
from vechnost_bot.storage.local import LocalStore
from vechnost_bot.storage.memory import InMemoryStorage
from vechnost_bot.storage.reconcile import reconcile
from vechnost_bot.storage.records import HLC, SCHEMA_VERSION, Record, is_live
from vechnost_bot.storage.redis import RedisStorage, connect_redis

__all__ = ["HybridStorage"]

log = structlog.get_logger(__name__)

ClientFactory = Callable[[RedisEndpoint], aioredis.Redis]
ConnectionLostHook = Callable[[], Coroutine[Any, Any, None] | None]
"""Called at once when a call meets a reset or timed-out connection (a plain function,
or a coroutine function whose coroutine is run as a task)."""

# Everything that means "Redis cannot serve this call right now". ConnectionError
# covers refused, reset, AuthenticationError and BusyLoadingError; ResponseError
# covers READONLY, MISCONF, OOM. Data problems are handled inside RedisStorage.
_TROUBLE: Final = (RedisError, OSError, TimeoutError)
_CONNECTION_LOST: Final = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)
_CIRCUIT_STATES: Final = frozenset({"down", "restarting", "degraded", "unavailable", "stopped"})
_RECONCILE_ROUNDS: Final = 8
_SCHEMA: Final = str(SCHEMA_VERSION).encode()


class _Latency:
    """One op's latency histogram, counted in RAM and added to the metric in bulk.

    ``Histogram.observe`` takes a lock per sum and bucket and scans the bounds (about a
    microsecond, a tenth of what the storage adds to a call); here a call costs a bisect
    and two additions, and the counts reach the metric within a second (at once when
    many are waiting, and at :meth:`HybridStorage.stop`).
    """

    __slots__ = ("_bounds", "_child", "_counts", "_loop", "_sum", "_waiting")

    def __init__(self, child: Any) -> None:
        self._child = child
        bounds: list[float] = list(getattr(child, "_upper_bounds", ()))
        buckets = getattr(child, "_buckets", ())
        fits = bool(bounds) and len(bounds) == len(buckets) and hasattr(child, "_sum")
        self._bounds = bounds if fits else None
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        self._waiting = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def observe(self, seconds: float) -> None:
        bounds = self._bounds
        if bounds is None:  # a prometheus_client without the parts used below
            self._child.observe(seconds)
            return
        self._counts[bisect.bisect_left(bounds, seconds)] += 1
        self._sum += seconds
        self._waiting += 1
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop.call_later(_LATENCY_FLUSH, self.flush)
        elif self._waiting >= _LATENCY_WAITING:  # the loop that was to flush went away?
            self.flush()

    def flush(self) -> None:
        """Add what was counted to the histogram."""
        self._loop = None
        if not self._waiting:
            return
        child, counts = self._child, self._counts
        child._sum.inc(self._sum)
        for index, count in enumerate(counts):
            if count:
                child._buckets[index].inc(count)
                counts[index] = 0
        self._sum = 0.0
        self._waiting = 0


_LATENCY_FLUSH: Final = 1.0
_LATENCY_WAITING: Final = 10_000
_LATENCY = {
    op: _Latency(STORAGE_LATENCY.labels(op))
    for op in ("get", "put", "incr", "counter", "rate_limit", "cache_get", "cache_set")
}
_LATENCY_GET: Final = _LATENCY["get"]
_LATENCY_PUT: Final = _LATENCY["put"]

T = TypeVar("T")


def _describe(error: BaseException) -> str:
    return redact(f"{type(error).__name__}: {error}")[:300]


class HybridStorage(Storage):
    """Redis when it answers, the local store when it does not, no lost write in between."""

    def __init__(
        self,
        *,
        client_factory: ClientFactory | None = connect_redis,
        local_dir: Path | None = None,
        memory: InMemoryStorage | None = None,
        hot_size: int = 10_000,
        probe_initial: float = 0.5,
        probe_max: float = 30.0,
        commit_interval: float = 0.01,
        on_connection_lost: ConnectionLostHook | None = None,
        clock: HLC | None = None,
        legacy_journal: Path | None = None,
    ) -> None:
        self.clock = clock or HLC()
        self._factory = client_factory
        self._local = LocalStore(
            local_dir, clock=self.clock, hot_size=hot_size, commit_interval=commit_interval
        )
        self._memory = memory if memory is not None else InMemoryStorage(clock=self.clock)
        self._counter_cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size = max(1, hot_size)
        self._probe_initial = probe_initial
        self._probe_max = probe_max
        self._on_connection_lost = on_connection_lost
        self._legacy_journal = legacy_journal
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._redis: RedisStorage | None = None
        self._endpoint: RedisEndpoint | None = None
        self._mode: StorageMode = "memory"
        self._lock = asyncio.Lock()  # serialises failbacks and client swaps
        self._gate = asyncio.Event()  # cleared only while the last reconcile round runs
        self._gate.set()
        self._wake = asyncio.Event()
        self._probe_task: asyncio.Task[None] | None = None
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
        self.writes_at_risk = 0
        """After :meth:`stop`: acknowledged writes that could not be kept on disk."""
        self._set_mode_gauge()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self, endpoint: RedisEndpoint | None) -> None:
        """Open the local store, connect when ``endpoint`` is given, start the probe."""
        if self._started:
            if endpoint is not None:
                await self._use_endpoint(endpoint)
                self._wake.set()
            return
        self._started = True
        self._closed = False
        for latency in _LATENCY.values():
            latency.flush()  # counts left by a storage of a loop that is gone (tests)
        await self._local.open()
        if self._legacy_journal is not None:
            await import_legacy_journal(self._legacy_journal, self._local)
        JOURNAL_SIZE.set(self._local.pending_count)
        self._probe_task = asyncio.create_task(self._probe_loop(), name="storage-probe")
        if endpoint is not None:
            await self._use_endpoint(endpoint)
            await self._try_failback()
        log.info("storage_started", mode=self._mode, journal_size=self._local.pending_count)

    async def stop(self) -> None:
        """Stop the probe, commit the local store, close the client; safe twice.

        Afterwards :attr:`writes_at_risk` says how many acknowledged writes could not be
        kept (a full or read-only disk); the app exits non-zero when it is not 0.
        """
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        if self._probe_task is not None:
            self._probe_task.cancel("storage stopping")
            with contextlib.suppress(asyncio.CancelledError):
                await self._probe_task
            self._probe_task = None
        self._gate.set()
        for latency in _LATENCY.values():
            latency.flush()
        if self._mode == "redis":
            self._mode = "memory"  # calls after stop() stay local
            self._set_mode_gauge()
        try:
            self.writes_at_risk = await self._local.close()
            if self._local.pending_count:
                log.info("storage_journal_flushed", entries=self._local.pending_count)
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

    @property
    def degraded_reason(self) -> str | None:
        """Why writes are not safe now (the local store cannot write), or None."""
        error = self._local.write_error
        if error is None:
            return None
        return f"the local store cannot write ({error}); {self._local.at_risk} writes at risk"

    def status(self) -> dict[str, object]:
        """JSON-safe facts for ``vechnost status`` (no secrets)."""
        local = self._local
        return {
            "mode": self._mode,
            "failovers": self._failovers,
            "failbacks": self._failbacks,
            "journal_size": local.pending_count,
            "records_reconciled": self._records_reconciled,
            "last_failover_at": self._last_failover_at,
            "last_failback_at": self._last_failback_at,
            "last_error": self._last_error,
            "degraded_reason": self.degraded_reason,
            "local_store": {
                "path": None if local.path is None else str(local.path),
                "write_error": local.write_error,
                "writes_at_risk": local.at_risk,
                "write_errors": local.errors,
                "adopted": list(local.adopted),
            },
        }

    # -- routing -----------------------------------------------------------------------
    async def _ensure_redis_connection(self) -> bool:
        """The single place that decides where a call goes: True for Redis, False for local.

        Never touches the network: the circuit is opened by a failed call and closed
        by the probe. It waits only while a failback runs its last, short round.
        """
        if not self._gate.is_set():
            await self._gate.wait()
        return self._mode == "redis"

    async def _route(self) -> RedisStorage | None:
        return self._redis if await self._ensure_redis_connection() else None

    def _failover(self, error: BaseException | None, *, reason: str | None = None) -> None:
        if self._mode != "redis":
            return
        self._mode = "memory"
        self.clock.new_lineage()
        self._failovers += 1
        self._last_failover_at = time.time()
        self._last_error = _describe(error) if error is not None else reason
        log.warning(
            "redis_connection_failed",
            error=self._last_error,
            action="serving from memory",  # memory mode: the local store
        )
        log.warning("storage_mode_changed", **{"from": "redis", "to": "memory"})
        STORAGE_FAILOVERS.inc()
        self._set_mode_gauge()
        self._wake.set()
        if isinstance(error, _CONNECTION_LOST) and self._on_connection_lost is not None:
            woken = self._on_connection_lost()
            if woken is not None:
                task = asyncio.get_running_loop().create_task(woken)
                self._hook_tasks.add(task)
                task.add_done_callback(self._hook_tasks.discard)

    # -- record primitives -------------------------------------------------------------
    async def _load(self, model: type[R], key: str) -> R | None:
        started = time.perf_counter()
        try:
            # the routing of _ensure_redis_connection, without a coroutine while no
            # failback holds the gate (every call but a few)
            redis = (
                self._redis
                if self._gate.is_set() and self._mode == "redis"
                else await self._route()
            )
            if redis is not None:
                try:
                    state, raw = await redis.load_with_raw(model, key)
                except _TROUBLE as error:
                    self._failover(error)
                else:
                    if raw is not None:
                        assert state is not None
                        self._local.remember(model.KIND, key, raw, state.version)
                    return state
            entry = await self._local.entry(model, key)
            if entry is None:
                return None
            try:
                return entry.load(model, key)
            except ValueError as error:
                log.warning(
                    "storage_corrupt_value",
                    key=f"local:{model.KIND}:{key}",
                    reason="invalid",
                    error=type(error).__name__,
                )
                return None
        finally:
            _LATENCY_GET.observe(time.perf_counter() - started)

    async def _cas(self, record: R, expected: int) -> Cas[R]:
        started = time.perf_counter()
        try:
            redis = (
                self._redis
                if self._gate.is_set() and self._mode == "redis"
                else await self._route()
            )
            if redis is not None:
                try:
                    result, raw = await redis.cas_with_raw(record, expected)
                except _TROUBLE as error:
                    self._failover(error)
                else:
                    if raw is not None:
                        assert result.record is not None
                        self._local.remember(record.KIND, record.key, raw, result.record.version)
                    return result
            return await self._local_cas(record, expected)
        finally:
            _LATENCY_PUT.observe(time.perf_counter() - started)

    async def _cas_many(self, writes: Sequence[tuple[Record, int]]) -> list[Cas[Any]]:
        started = time.perf_counter()
        try:
            redis = await self._route()
            if redis is not None:
                try:
                    call, stored = redis.cas_many_call(writes)
                    reply = await redis.run_call(call)
                    results = await redis.cas_many_result(writes, stored, reply)
                except _TROUBLE as error:
                    self._failover(error)
                else:
                    for i, (copy, result) in enumerate(zip(stored, results, strict=True)):
                        self._remember_cas(copy, call.args[2 * i + 1], reply[3 * i :], result)
                    return results
            return [await self._local_cas(record, expected) for record, expected in writes]
        finally:
            _LATENCY_PUT.observe(time.perf_counter() - started)

    def _remember_cas(self, stored: Record, body: bytes, reply: Any, result: Cas[Any]) -> None:
        """Keep what one compare-and-set showed of Redis: the value it wrote, or the
        current one it handed back."""
        if result.ok:
            raw = b"%s:%d:%r:%s" % (_SCHEMA, result.found, stored.updated_at, body)
            self._local.remember(stored.KIND, stored.key, raw, result.found)
        elif result.record is not None and reply[2]:
            self._local.remember(stored.KIND, stored.key, bytes(reply[2]), result.record.version)

    async def _local_cas(self, record: R, expected: int) -> Cas[R]:
        model = type(record)
        entry = await self._local.entry(model, record.key)
        # From here to the put nothing awaits: the check and the write are one step.
        current = None
        if entry is not None:
            try:
                current = entry.load(model, record.key)
            except ValueError:
                current = None
        found = current.version if current is not None and is_live(current) else 0
        if found != expected:
            return Cas(ok=False, record=current, found=found)
        version = max(current.version if current is not None else 0, record.version) + 1
        stored = record.__copy__()
        stored.__dict__.update(version=version, updated_at=time.time())
        self._local.put(
            stored, pending=True, redis_version=entry.redis_version if entry is not None else 0
        )
        JOURNAL_SIZE.set(self._local.pending_count)
        return Cas(ok=True, record=stored, found=version)

    def _hint(self, model: type[R], key: str) -> R | None:
        entry = self._local.cached(model.KIND, key)
        if entry is None:
            return None
        try:
            return entry.load(model, key)
        except ValueError:
            return None

    # -- counters, limits, cache -------------------------------------------------------
    async def incr(self, name: str, amount: int = 1) -> int:
        """Add ``amount``; while Redis is away the increment is kept (with its token) and
        added on failback exactly once."""
        started = time.perf_counter()
        try:
            token: str | None = None
            redis = await self._route()
            if redis is not None:
                token = self._next_token()
                try:
                    value = await redis.incr_once(name, amount, token)
                except _TROUBLE as error:
                    self._failover(error)
                else:
                    self._remember_counter(name, value)
                    return value
            # Redis may have applied an increment whose reply was lost: its own token.
            self._local.add_increment(name, amount, token=token)
            JOURNAL_SIZE.set(self._local.pending_count)
            return self._counter_cache.get(name, 0) + self._local.pending_delta(name)
        finally:
            _LATENCY["incr"].observe(time.perf_counter() - started)

    async def get_counter(self, name: str) -> int:
        """The counter's value."""
        started = time.perf_counter()
        try:
            redis = await self._route()
            if redis is not None:
                try:
                    value = await redis.get_counter(name)
                except _TROUBLE as error:
                    self._failover(error)
                else:
                    self._remember_counter(name, value)
                    return value
            return self._counter_cache.get(name, 0) + self._local.pending_delta(name)
        finally:
            _LATENCY["counter"].observe(time.perf_counter() - started)

    async def hit_rate_limit(
        self, key: str, limit: int, window: float, *, hit: str | None = None
    ) -> bool:
        """Count a hit; windows counted while Redis is away are not carried back."""
        return await self._either(
            "rate_limit", lambda s: s.hit_rate_limit(key, limit, window, hit=hit)
        )

    async def cache_get(self, key: str) -> bytes | None:
        """A cached value, or None."""
        return await self._either("cache_get", lambda s: s.cache_get(key))

    async def cache_set(self, key: str, value: bytes, ttl: float) -> None:
        """Cache ``value`` for ``ttl`` seconds (entries made while Redis is away stay local)."""
        await self._either("cache_set", lambda s: s.cache_set(key, value, ttl))

    async def cache_add(self, key: str, value: bytes, ttl: float) -> bool:
        """Cache ``value`` only if absent (atomic; entries made while Redis is away stay
        local)."""
        return await self._either("cache_set", lambda s: s.cache_add(key, value, ttl))

    async def _either(self, op: str, call: Callable[[Storage], Awaitable[T]]) -> T:
        """Route a call whose memory-mode effect is not carried back to Redis."""
        started = time.perf_counter()
        try:
            redis = await self._route()
            if redis is not None:
                try:
                    return await call(redis)
                except _TROUBLE as error:
                    self._failover(error)
            return await call(self._memory)
        finally:
            _LATENCY[op].observe(time.perf_counter() - started)

    def _remember_counter(self, name: str, value: int) -> None:
        counters = self._counter_cache
        counters[name] = value
        counters.move_to_end(name)
        if len(counters) > self._cache_size:
            counters.popitem(last=False)

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
                self._redis = RedisStorage(self._factory(endpoint), clock=self.clock)
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
        """Probe Redis; when it answers, reconcile the pending writes and switch to Redis."""
        async with self._lock:
            if self._mode == "redis":
                return True
            redis = self._redis
            if redis is None or self._closed:
                return False
            reconciled = 0
            switched = False
            try:
                # Connections pooled before the trouble may be dead (a restarted server):
                # start clean so that the first call after failback does not fail over again.
                await redis.reset_connections()
                await redis.probe()
                log.debug("redis_probe_succeeded", journal=self._local.pending_count)
                await redis.load_scripts()  # a restarted server forgot them
                # One pass while calls go on; what they write meanwhile (usually a few
                # records) is left for the short rounds below.
                if self._local.pending_count:
                    reconciled += await self._reconcile(redis)
                # Last rounds with new calls held at the gate, so nothing is written
                # locally between the pending writes running dry and Redis taking over.
                self._gate.clear()
                try:
                    for _ in range(_RECONCILE_ROUNDS):
                        reconciled += await self._reconcile(redis)
                        if not self._local.pending_count:
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

    async def _reconcile(self, redis: RedisStorage) -> int:
        started = time.perf_counter()
        done = await reconcile(redis, self._local, remember_counter=self._remember_counter)
        JOURNAL_SIZE.set(self._local.pending_count)
        log.debug(
            "storage_reconcile_round",
            entries=done,
            seconds=round(time.perf_counter() - started, 4),
        )
        return done

    def _switch_to_redis(self, reconciled: int) -> None:
        previous = self._mode
        self._mode = "redis"
        self.clock.new_lineage()
        self._memory.clear()
        self._records_reconciled += reconciled
        RECORDS_RECONCILED.inc(reconciled)
        self._last_failback_at = time.time()
        self._last_error = None  # status shows the current trouble, not a healed one
        if self._connected_once:
            self._failbacks += 1
            STORAGE_FAILBACKS.inc()
        self._connected_once = True
        self._set_mode_gauge()
        log.info("storage_reconciled", records=reconciled)
        log.info("storage_mode_changed", **{"from": previous, "to": "redis"})

    def _set_mode_gauge(self) -> None:
        STORAGE_MODE.labels("redis").set(1 if self._mode == "redis" else 0)
        STORAGE_MODE.labels("memory").set(1 if self._mode == "memory" else 0)

    # -- for tests and benches ---------------------------------------------------------
    @property
    def local(self) -> LocalStore:
        """The local store (pending writes and known Redis states)."""
        return self._local
