"""Token buckets in the process, one per key: the per-user update limit and send pacing;
and :class:`SharedLimit`, the per-user limit shared by replicas through the storage.

A check costs a dict lookup and some arithmetic, never a storage or network call, so
a flood is refused in microseconds. Memory follows the active keys: a bucket that
has refilled is the same as no bucket and is dropped (oldest first, as keys are
touched), and the table never holds more than ``max_keys``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

__all__ = ["KeyedBuckets", "SharedLimit"]

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    noticed_at: float | None = None


class KeyedBuckets(Generic[K]):
    """``capacity`` tokens per key, refilled at ``per_second``; a burst of ``capacity``
    is allowed, then ``per_second`` on average."""

    def __init__(
        self,
        capacity: float,
        per_second: float,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or per_second <= 0:
            raise ValueError("capacity must be at least 1 and per_second positive")
        self.capacity = float(capacity)
        self.per_second = float(per_second)
        self.window = self.capacity / self.per_second  # an empty bucket is full again after it
        self._max_keys = max(1, max_keys)
        self._clock = clock
        self._buckets: OrderedDict[K, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: K) -> bool:
        """Take one token for ``key``; False (nothing taken) when its bucket is empty."""
        now = self._clock()
        bucket = self._bucket(key, now)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return True
        return False

    def reserve(self, key: K) -> float:
        """Take one token for ``key`` now or in the future; the seconds to wait until it
        is due (0 when there was one). Reservations queue up: the bucket goes negative."""
        now = self._clock()
        bucket = self._bucket(key, now)
        bucket.tokens -= 1.0
        return 0.0 if bucket.tokens >= 0 else -bucket.tokens / self.per_second

    def notice_due(self, key: K) -> bool:
        """True once per ``window`` for ``key``: whether to tell the user to slow down."""
        now = self._clock()
        bucket = self._bucket(key, now)
        if bucket.noticed_at is not None and now - bucket.noticed_at < self.window:
            return False
        bucket.noticed_at = now
        return True

    def _bucket(self, key: K, now: float) -> _Bucket:
        buckets = self._buckets
        bucket = buckets.get(key)
        if bucket is None:
            self._prune(now)
            bucket = buckets[key] = _Bucket(self.capacity, now)
            return bucket
        buckets.move_to_end(key)
        bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.per_second)
        bucket.stamp = now
        return bucket

    def _prune(self, now: float) -> None:
        """Drop buckets that are full again with no notice pending, from the least recently
        used end; past ``max_keys``, drop the least recently used whatever its state."""
        buckets = self._buckets
        while buckets:
            key, oldest = next(iter(buckets.items()))
            full = oldest.tokens + (now - oldest.stamp) * self.per_second >= self.capacity
            quiet = oldest.noticed_at is None or now - oldest.noticed_at >= self.window
            if (full and quiet) or len(buckets) >= self._max_keys:
                del buckets[key]
            else:
                break


class SharedLimit:
    """The per-user update limit across replicas: a sliding window in the storage (in
    Redis: timed by the server's clock, each ``update_id`` counted once).

    It stands behind the handlers' local :class:`KeyedBuckets` of the same size, the fast
    first gate: that one refuses only what this window would refuse too (one replica sees
    at most all of a user's updates), so a flood costs no storage call past the first
    ``limit`` updates, and what passes it is counted here, where the replicas' counts add
    up. A Telegram redelivery of a counted update (same ``update_id``) is allowed again
    and not counted twice here (the local bucket, being per process, may count it twice
    on one replica). While Redis is away the window falls back to this replica's memory
    (the storage's rule for rate windows): each replica then allows up to ``limit``.
    """

    def __init__(self, storage: _RateStorage, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._storage = storage

    async def allow(self, user_id: int, update_id: int | None = None) -> bool:
        """Count this update of ``user_id``; True when it is within the limit."""
        hit = None if update_id is None else str(update_id)
        return await self._storage.hit_rate_limit(
            f"user:{user_id}", self.limit, self.window, hit=hit
        )


class _RateStorage(Protocol):
    async def hit_rate_limit(
        self, key: str, limit: int, window: float, *, hit: str | None = None
    ) -> bool: ...
