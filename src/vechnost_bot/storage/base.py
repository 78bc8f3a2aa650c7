"""The storage contract, written once.

A backend implements two record primitives (``_load``: the stored state, tombstones
included; ``_cas``: one compare-and-set that hands back the current state when it
loses) plus counters, rate limits and a byte cache. Everything the bot calls is
derived here: stamping a record's changes with the hybrid logical clock, merging a
write made without knowing the stored version, re-applying an update after a
conflict, deleting. Backends return objects the caller owns (copies, never live
references).
"""

from __future__ import annotations

import abc
import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal

from vechnost_bot.errors import VersionConflictError
from vechnost_bot.storage.records import (
    HLC,
    R,
    Record,
    Session,
    UserStats,
    is_live,
    merge,
    stamp,
    tombstone,
)

__all__ = ["Cas", "Change", "R", "Storage", "StorageMode"]

StorageMode = Literal["redis", "memory"]

CONFLICT_BUDGET = 30.0
"""Seconds an update may keep losing compare-and-set races before it gives up: a time,
not a small count, so that any number of concurrent taps on one chat all land."""


@dataclass(slots=True)
class Cas(Generic[R]):
    """What one compare-and-set did.

    ``ok``: written, and ``record`` is the stored copy. Not ``ok``: ``record`` is the
    state the store holds (None when absent), ``found`` its live version (0 when absent
    or deleted), so the caller merges or re-applies without another read.
    """

    ok: bool
    record: R | None
    found: int


@dataclass(frozen=True, slots=True)
class Change(Generic[R]):
    """One record's update for :meth:`Storage.update_records`: ``mutate`` is applied to
    the current record (``create()`` when there is none) and may be applied again, to
    what the store holds, after a lost compare-and-set. It changes the record in place
    (returning None) or returns the new one."""

    model: type[R]
    key: str
    create: Callable[[], R]
    mutate: Callable[[R], R | None]


class Storage(abc.ABC):
    """Async storage for mergeable records, counters, rate limits and a byte cache."""

    clock: HLC = HLC()  # replaced per instance by every backend's __init__

    # -- record primitives (backends) ----------------------------------------------------
    @abc.abstractmethod
    async def _load(self, model: type[R], key: str) -> R | None:
        """The stored state (a tombstone too), or None. Corrupt values count as absent."""

    @abc.abstractmethod
    async def _cas(self, record: R, expected: int) -> Cas[R]:
        """Store ``record`` (already stamped) if the live version is ``expected`` (absent or
        deleted = 0), as version ``max(stored, record.version) + 1``."""

    def _hint(self, model: type[R], key: str) -> R | None:
        """A recently seen state of the record (a copy, maybe stale), to skip a read."""
        del model, key
        return None

    async def _cas_many(self, writes: Sequence[tuple[Record, int]]) -> list[Cas[Any]]:
        """:meth:`_cas` for several distinct records, each on its own (one may lose while
        the others land); results in order. A backend that can do them in one round trip
        overrides this."""
        return [await self._cas(record, expected) for record, expected in writes]

    # -- counters, limits, cache ---------------------------------------------------------
    @abc.abstractmethod
    async def incr(self, name: str, amount: int = 1) -> int:
        """Atomically add ``amount`` to counter ``name``; return the new value."""

    @abc.abstractmethod
    async def get_counter(self, name: str) -> int:
        """The counter's value (0 when never incremented)."""

    @abc.abstractmethod
    async def hit_rate_limit(self, key: str, limit: int, window: float) -> bool:
        """Count one hit for ``key``; True when it is within ``limit`` per ``window`` s."""

    @abc.abstractmethod
    async def cache_get(self, key: str) -> bytes | None:
        """A cached value, or None when absent or expired."""

    @abc.abstractmethod
    async def cache_set(self, key: str, value: bytes, ttl: float) -> None:
        """Cache ``value`` for ``ttl`` seconds."""

    @abc.abstractmethod
    async def cache_add(self, key: str, value: bytes, ttl: float) -> bool:
        """Cache ``value`` for ``ttl`` seconds only if ``key`` is absent; True when added.

        Atomic: of many concurrent callers exactly one gets True (a "once per window" gate).
        """

    async def close(self) -> None:  # noqa: B027 - optional hook, default does nothing
        """Release connections and flush what must survive; safe to call twice."""

    # -- records (derived) ---------------------------------------------------------------
    async def get_record(self, model: type[R], key: str) -> R | None:
        """The stored record, or None (absent, deleted, corrupt)."""
        state = await self._observed(model, key)
        return state if state is not None and is_live(state) else None

    async def put_record(self, record: R, *, expected_version: int | None = None) -> R:
        """Store ``record`` and return the stored copy (version + 1, ``updated_at`` now).

        The fields that differ from the record's metadata become new dated events. With
        ``expected_version`` the write is a compare-and-set that raises
        :class:`VersionConflictError` when the live version differs (absent = 0).
        Without it the record is *merged* with whatever is stored, so a newer write
        from another process is kept, never overwritten.
        """
        stamped = stamp(record, self.clock)
        if expected_version is not None:
            result = await self._cas_observed(stamped, expected_version)
            if not result.ok:
                raise VersionConflictError(
                    f"{record.KIND}:{record.key}", expected_version, result.found
                )
            assert result.record is not None
            return result.record
        return await self._merge_in(stamped, stamped.version)

    async def delete_record(self, model: type[Record], key: str) -> None:
        """Delete a record (a dated tombstone, merged like any write); absent is fine."""
        hint = self._hint(model, key)
        guess = hint.version if hint is not None and is_live(hint) else 0
        await self._merge_in(tombstone(model, key, self.clock), guess)

    async def _merge_in(self, record: R, guess: int) -> R:
        """Read-merge-compare-and-set until it lands, starting with a guessed version."""
        deadline = time.monotonic() + CONFLICT_BUDGET
        attempt = 0
        while True:
            result = await self._cas_observed(record, guess)
            if result.ok:
                assert result.record is not None
                return result.record
            if result.record is not None:
                record = merge(result.record, record)
            guess = result.found
            attempt = await _after_conflict(attempt, deadline, record, guess)

    async def update_record(
        self,
        model: type[R],
        key: str,
        create: Callable[[], R],
        mutate: Callable[[R], R | None],
    ) -> R:
        """Apply ``mutate`` to the current record (``create()`` when absent) and store it;
        after a lost compare-and-set apply it again to what the store holds now (the
        store hands it back). Returns the stored copy.

        Usually one round trip: the base is the state this process saw last.
        """
        (stored,) = await self.update_records([Change(model, key, create, mutate)])
        return stored  # type: ignore[return-value]  # the Change's own model

    async def update_records(self, changes: Sequence[Change[Any]]) -> list[Record]:
        """:meth:`update_record` for several distinct records at once: their
        compare-and-sets go together (one round trip where the backend can), and only the
        ones that lost are re-applied and sent again. Returns the stored copies, in order.
        """
        bases: list[Record | None] = [self._hint(c.model, c.key) for c in changes]
        unknown = [i for i, base in enumerate(bases) if base is None]
        if unknown:
            loaded = await asyncio.gather(
                *(self._observed(changes[i].model, changes[i].key) for i in unknown)
            )
            for i, state in zip(unknown, loaded, strict=True):
                bases[i] = state
        stored: list[Record | None] = [None] * len(changes)
        pending = list(range(len(changes)))
        deadline = time.monotonic() + CONFLICT_BUDGET
        attempt = 0
        while True:
            writes = [_applied(changes[i], bases[i], self.clock) for i in pending]
            results = await self._cas_many(writes)
            lost: list[int] = []
            for i, result in zip(pending, results, strict=True):
                if result.ok:
                    stored[i] = result.record
                else:
                    if result.record is not None:
                        self.clock.observe(max(result.record.stamp, result.record.deleted))
                    bases[i] = result.record
                    lost.append(i)
            if not lost:
                return [record for record in stored if record is not None]
            record, _ = writes[pending.index(lost[0])]
            found = results[pending.index(lost[0])].found
            pending = lost
            attempt = await _after_conflict(attempt, deadline, record, found)

    async def recent_record(self, model: type[R], key: str) -> R | None:
        """The record as this process saw it last (no round trip), else as stored.

        Current only where this process is the record's sole writer; elsewhere use it
        only where a stale state is harmless or corrected by the write that follows.
        """
        hint = self._hint(model, key)
        if hint is None:
            return await self.get_record(model, key)
        return hint if is_live(hint) else None

    async def _observed(self, model: type[R], key: str) -> R | None:
        state = await self._load(model, key)
        if state is not None:
            self.clock.observe(max(state.stamp, state.deleted))
        return state

    async def _cas_observed(self, record: R, expected: int) -> Cas[R]:
        result = await self._cas(record, expected)
        if not result.ok and result.record is not None:
            self.clock.observe(max(result.record.stamp, result.record.deleted))
        return result

    # -- derived helpers -----------------------------------------------------------------
    async def get_session(self, chat_id: int) -> Session | None:
        """The chat's session, or None."""
        return await self.get_record(Session, str(chat_id))

    async def save_session(self, session: Session) -> Session:
        """Compare-and-set ``session`` against the version it was read at."""
        return await self.put_record(session, expected_version=session.version)

    async def delete_session(self, chat_id: int) -> None:
        """Forget a chat's game."""
        await self.delete_record(Session, str(chat_id))

    async def update_session(
        self, chat_id: int, mutate: Callable[[Session], Session | None]
    ) -> Session:
        """Read (or create), apply ``mutate``, and write back; re-applied on conflicts.

        Usually one round trip: the base is the state this process saw last, and a lost
        compare-and-set hands back the current one.
        """
        return await self.update_record(
            Session, str(chat_id), lambda: Session(chat_id=chat_id), mutate
        )

    async def get_user_stats(self, user_id: int) -> UserStats | None:
        """A player's stats, or None."""
        return await self.get_record(UserStats, str(user_id))

    async def update_user_stats(
        self, user_id: int, mutate: Callable[[UserStats], UserStats | None]
    ) -> UserStats:
        """Like :meth:`update_session`: written without a read when this process saw the
        player last (the usual case), counted exactly once in any case."""
        return await self.update_record(
            UserStats, str(user_id), lambda: UserStats(user_id=user_id), mutate
        )


def _applied(change: Change[Any], base: Record | None, clock: HLC) -> tuple[Record, int]:
    """``change`` applied to ``base`` (the stored state, None when absent), stamped, with
    the live version the compare-and-set expects."""
    if base is None:
        current, expected = change.create(), 0
    elif is_live(base):
        current, expected = base, base.version
    else:  # a tombstone: start from nothing, dated after the delete
        current, expected = base, 0
        current.__dict__["version"] = 0
    changed = change.mutate(current)
    return stamp(current if changed is None else changed, clock), expected


async def _after_conflict(attempt: int, deadline: float, record: Record, found: int) -> int:
    """Yield after a lost race (at once the first times, then a short random pause)."""
    if time.monotonic() > deadline:
        raise VersionConflictError(f"{record.KIND}:{record.key}", record.version, found)
    if attempt < 3:
        await asyncio.sleep(0)
    else:
        await asyncio.sleep(random.uniform(0, min(0.02, 0.0005 * 2**attempt)))
    return attempt + 1
