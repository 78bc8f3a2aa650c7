"""Memory Mode: a bounded in-process store with the same contract as Redis.

Everything lives in ordered dicts with least-recently-used eviction, so nothing
grows without bound. Records are copied in and out: a caller never holds a live
reference into the store. Every method runs without suspending, so each call is
atomic within the event loop. HybridStorage uses it for rate-limit windows and the
byte cache while Redis is away (records go to the local store, ``storage/local.py``).
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from typing import Any

from vechnost_bot.storage.base import Cas, R, Storage
from vechnost_bot.storage.records import HLC, Record, is_live

__all__ = ["InMemoryStorage"]

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
        clock: HLC | None = None,
    ) -> None:
        if min(max_records, max_counters, max_cache_entries, max_rate_limit_keys) < 1:
            raise ValueError("InMemoryStorage bounds must be at least 1")
        self.clock = clock or HLC()
        self._max_records = max_records
        self._max_counters = max_counters
        self._max_cache = max_cache_entries
        self._max_rate = max_rate_limit_keys
        self._records: OrderedDict[_RecordKey, Record] = OrderedDict()
        self._counters: OrderedDict[str, int] = OrderedDict()
        self._cache: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self._rate: OrderedDict[str, deque[tuple[float, str | None]]] = OrderedDict()

    # -- records ---------------------------------------------------------------------
    async def _load(self, model: type[R], key: str) -> R | None:
        state = self._records.get((model.KIND, key))
        if not isinstance(state, model):
            return None
        self._records.move_to_end((model.KIND, key))
        return state.model_copy(deep=True)

    async def _cas(self, record: R, expected: int) -> Cas[R]:
        rkey = (record.KIND, record.key)
        state = self._records.get(rkey)
        found = state.version if state is not None and is_live(state) else 0
        if found != expected:
            current = None if state is None else state.model_copy(deep=True)
            return Cas(ok=False, record=current, found=found)  # type: ignore[arg-type]
        version = max(state.version if state is not None else 0, record.version) + 1
        stored = record.model_copy(
            update={"version": version, "updated_at": time.time()}, deep=True
        )
        self._records[rkey] = stored
        self._records.move_to_end(rkey)
        self._trim(self._records, self._max_records)
        return Cas(ok=True, record=stored.model_copy(deep=True), found=version)

    def clear(self) -> None:
        """Forget everything."""
        self._records.clear()
        self._counters.clear()
        self._cache.clear()
        self._rate.clear()

    @property
    def record_count(self) -> int:
        """Records and tombstones held."""
        return len(self._records)

    def set_counter(self, name: str, value: int) -> None:
        """Set counter ``name`` to ``value``."""
        self._counters[name] = value
        self._counters.move_to_end(name)
        self._trim(self._counters, self._max_counters)

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

    async def hit_rate_limit(
        self, key: str, limit: int, window: float, *, hit: str | None = None
    ) -> bool:
        """Sliding window: True when fewer than ``limit`` hits fell in the last ``window`` s
        (or ``hit`` is one of them: a redelivery)."""
        now = time.monotonic()
        hits = self._rate.get(key)
        if hits is None:
            hits = self._rate[key] = deque()
            self._trim(self._rate, self._max_rate)
        else:
            self._rate.move_to_end(key)
        horizon = now - window
        while hits and hits[0][0] <= horizon:
            hits.popleft()
        if hit is not None and any(seen == hit for _, seen in hits):
            return True
        if len(hits) >= limit:
            return False
        hits.append((now, hit))
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
    @staticmethod
    def _trim(data: OrderedDict[Any, Any], bound: int) -> None:
        while len(data) > bound:
            data.popitem(last=False)
