"""Memory Mode: a bounded in-process store with the same contract as Redis.

Everything lives in ordered dicts with least-recently-used eviction, so a long
outage cannot grow the process without bound. Records are deep-copied in and out:
a caller never holds a live reference into the store. Every method runs without
suspending, so each call is atomic within the event loop.

Deleted records leave a small *tombstone* (their last version), so that a record
created again continues the version sequence and "newer wins" stays true across
a delete.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any

from vechnost_bot.errors import VersionConflictError
from vechnost_bot.storage.base import R, Storage
from vechnost_bot.storage.models import Record

__all__ = ["InMemoryStorage", "RecordState"]


@dataclass(slots=True)
class RecordState:
    """What the store knows about one record id: the record, or a tombstone."""

    record: Record | None
    version: int
    updated_at: float


_RecordKey = tuple[str, str]


class InMemoryStorage(Storage):
    """Bounded, TTL-aware, copy-returning storage in the process's memory."""

    def __init__(
        self,
        *,
        max_records: int = 100_000,
        max_counters: int = 10_000,
        max_cache_entries: int = 10_000,
        max_rate_limit_keys: int = 100_000,
    ) -> None:
        if min(max_records, max_counters, max_cache_entries, max_rate_limit_keys) < 1:
            raise ValueError("InMemoryStorage bounds must be at least 1")
        self._max_records = max_records
        self._max_counters = max_counters
        self._max_cache = max_cache_entries
        self._max_rate = max_rate_limit_keys
        self._records: OrderedDict[_RecordKey, RecordState] = OrderedDict()
        self._counters: OrderedDict[str, int] = OrderedDict()
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._rate: OrderedDict[str, deque[float]] = OrderedDict()

    # -- records ---------------------------------------------------------------------
    async def get_record(self, model: type[R], key: str) -> R | None:
        """The stored record (a deep copy), or None."""
        state = self._records.get((model.KIND, key))
        if state is None or not isinstance(state.record, model):
            return None
        self._records.move_to_end((model.KIND, key))
        return state.record.model_copy(deep=True)

    async def put_record(self, record: R, *, expected_version: int | None = None) -> R:
        """Store a copy of ``record`` with the next version; CAS when asked."""
        rkey = (record.KIND, record.key)
        state = self._records.get(rkey)
        found = state.version if state is not None and state.record is not None else 0
        if expected_version is not None and found != expected_version:
            raise VersionConflictError(f"{record.KIND}:{record.key}", expected_version, found)
        base = state.version if state is not None else 0
        version = max(base, record.version) + 1
        updated_at = time.time()
        if state is not None and updated_at <= state.updated_at:
            updated_at = state.updated_at + 1e-6  # a clock step back must not look older
        stored = record.model_copy(update={"version": version, "updated_at": updated_at}, deep=True)
        self._set_state(rkey, RecordState(stored, version, updated_at))
        return stored.model_copy(deep=True)

    async def delete_record(self, model: type[Record], key: str) -> None:
        """Remove a record, leaving a tombstone with its last version."""
        self.delete_versioned(model, key)

    def delete_versioned(self, model: type[Record], key: str) -> RecordState | None:
        """Delete and return the tombstone written, or None when nothing was stored."""
        rkey = (model.KIND, key)
        state = self._records.get(rkey)
        if state is None or state.record is None:
            return None
        updated_at = max(time.time(), state.updated_at + 1e-6)
        tombstone = RecordState(None, state.version, updated_at)
        self._set_state(rkey, tombstone)
        return RecordState(None, tombstone.version, tombstone.updated_at)

    # -- helpers for HybridStorage (not part of the contract) --------------------------
    def peek(self, kind: str, key: str) -> RecordState | None:
        """The record or tombstone for ``kind:key`` (a copy), without touching LRU order."""
        state = self._records.get((kind, key))
        if state is None:
            return None
        record = None if state.record is None else state.record.model_copy(deep=True)
        return RecordState(record, state.version, state.updated_at)

    def knows(self, kind: str, key: str) -> bool:
        """True when a record or a tombstone for ``kind:key`` is held."""
        return (kind, key) in self._records

    def restore(self, kind: str, key: str, state: RecordState) -> None:
        """Put ``state`` in place as-is (no version bump); the store takes ownership."""
        self._set_state((kind, key), state)

    def has_counter(self, name: str) -> bool:
        """True when counter ``name`` has a value here."""
        return name in self._counters

    def set_counter(self, name: str, value: int) -> None:
        """Set counter ``name`` to ``value`` (seeding from Redis's last known value)."""
        self._counters[name] = value
        self._counters.move_to_end(name)
        self._trim(self._counters, self._max_counters)

    def clear(self) -> None:
        """Forget everything (Redis is the truth again)."""
        self._records.clear()
        self._counters.clear()
        self._cache.clear()
        self._rate.clear()

    @property
    def record_count(self) -> int:
        """Records and tombstones held."""
        return len(self._records)

    # -- counters, limits, cache -------------------------------------------------------
    async def incr(self, name: str, amount: int = 1) -> int:
        """Add ``amount`` to counter ``name`` and return the new value."""
        value = self._counters.get(name, 0) + amount
        self.set_counter(name, value)
        return value

    async def get_counter(self, name: str) -> int:
        """The counter's value (0 when never incremented)."""
        value = self._counters.get(name)
        if value is None:
            return 0
        self._counters.move_to_end(name)
        return value

    async def hit_rate_limit(self, key: str, limit: int, window: float) -> bool:
        """Sliding window: True when fewer than ``limit`` hits fell in the last ``window`` s."""
        now = time.monotonic()
        hits = self._rate.get(key)
        if hits is None:
            hits = self._rate[key] = deque()
            self._trim(self._rate, self._max_rate)
        else:
            self._rate.move_to_end(key)
        horizon = now - window
        while hits and hits[0] <= horizon:
            hits.popleft()
        if len(hits) >= limit:
            return False
        hits.append(now)
        return True

    async def cache_get(self, key: str) -> bytes | None:
        """A cached value, or None when absent or expired."""
        entry = self._cache.get(key)
        if entry is None:
            return None
        value, expires = entry
        if time.monotonic() >= expires:
            del self._cache[key]
            return None
        self._cache.move_to_end(key)
        return value

    async def cache_set(self, key: str, value: bytes, ttl: float) -> None:
        """Cache ``value`` for ``ttl`` seconds (a non-positive ttl removes it)."""
        if ttl <= 0:
            self._cache.pop(key, None)
            return
        self._cache[key] = (bytes(value), time.monotonic() + ttl)
        self._cache.move_to_end(key)
        self._trim(self._cache, self._max_cache)

    async def cache_add(self, key: str, value: bytes, ttl: float) -> bool:
        """Cache ``value`` unless a live entry exists; True when added."""
        if await self.cache_get(key) is not None:
            return False
        await self.cache_set(key, value, ttl)
        return ttl > 0

    # -- internals ---------------------------------------------------------------------
    def _set_state(self, rkey: _RecordKey, state: RecordState) -> None:
        self._records[rkey] = state
        self._records.move_to_end(rkey)
        self._trim(self._records, self._max_records)

    @staticmethod
    def _trim(data: OrderedDict[Any, Any], bound: int) -> None:
        while len(data) > bound:
            data.popitem(last=False)
