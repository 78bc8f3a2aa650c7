"""The in-process token buckets: limits, reservations, notices and bounded memory."""

from __future__ import annotations

from vechnost_bot.bot.ratelimit import KeyedBuckets


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_the_refill_rate() -> None:
    """Capacity 3 at 1 per second: 3 at once, then one more per second."""
    clock = _Clock()
    buckets: KeyedBuckets[int] = KeyedBuckets(3, 1.0, clock=clock)
    assert [buckets.take(1) for _ in range(4)] == [True, True, True, False]
    assert buckets.take(2)  # another key has its own bucket
    clock.now += 1.0
    assert buckets.take(1)
    assert not buckets.take(1)


def test_reservations_queue_up() -> None:
    """reserve() always takes a token and says how long to wait for it."""
    clock = _Clock()
    buckets: KeyedBuckets[str] = KeyedBuckets(2, 2.0, clock=clock)
    assert [buckets.reserve("c") for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]


def test_one_notice_per_window() -> None:
    """notice_due() is True once per window (capacity / rate seconds)."""
    clock = _Clock()
    buckets: KeyedBuckets[int] = KeyedBuckets(5, 1.0, clock=clock)
    assert buckets.window == 5.0
    assert buckets.notice_due(1)
    assert not buckets.notice_due(1)
    clock.now += 5.0
    assert buckets.notice_due(1)


def test_memory_follows_the_active_keys() -> None:
    """Refilled buckets are dropped as new keys come; the table never passes max_keys."""
    clock = _Clock()
    buckets: KeyedBuckets[int] = KeyedBuckets(2, 1.0, clock=clock, max_keys=50)
    for key in range(40):
        buckets.take(key)
    clock.now += 10.0
    buckets.take(1000)
    assert len(buckets) == 1
    for key in range(200):
        buckets.take(key)
    assert len(buckets) <= 50
