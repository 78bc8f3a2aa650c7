"""The storage contract, written once.

Backends implement the small abstract surface; the helpers the bot uses
(``get_session``, ``update_session`` …) are derived here. Backends return
copies, never live references.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Literal, TypeVar

from vechnost_bot.errors import VersionConflictError
from vechnost_bot.storage.models import Record, Session, UserStats

__all__ = ["Storage", "StorageMode"]

R = TypeVar("R", bound=Record)
StorageMode = Literal["redis", "memory"]

_MAX_CAS_RETRIES = 8


class Storage(abc.ABC):
    """Async storage for versioned records, counters, rate limits and a byte cache."""

    # -- records ---------------------------------------------------------------------
    @abc.abstractmethod
    async def get_record(self, model: type[R], key: str) -> R | None:
        """The stored record, or None. Corrupt or foreign values count as absent."""

    @abc.abstractmethod
    async def put_record(self, record: R, *, expected_version: int | None = None) -> R:
        """Store ``record`` and return the stored copy (version + 1, ``updated_at`` now).

        With ``expected_version`` the write is a compare-and-set: it raises
        :class:`VersionConflictError` when the stored version differs (absent = 0).
        """

    @abc.abstractmethod
    async def delete_record(self, model: type[Record], key: str) -> None:
        """Remove a record; removing an absent one is not an error."""

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
        """Read (or create), apply ``mutate``, and write back; retried on conflicts."""
        return await self._update(Session, str(chat_id), lambda: Session(chat_id=chat_id), mutate)

    async def get_user_stats(self, user_id: int) -> UserStats | None:
        """A player's stats, or None."""
        return await self.get_record(UserStats, str(user_id))

    async def update_user_stats(
        self, user_id: int, mutate: Callable[[UserStats], UserStats | None]
    ) -> UserStats:
        """Read (or create), apply ``mutate``, and write back; retried on conflicts."""
        return await self._update(
            UserStats, str(user_id), lambda: UserStats(user_id=user_id), mutate
        )

    async def _update(
        self,
        model: type[R],
        key: str,
        create: Callable[[], R],
        mutate: Callable[[R], R | None],
    ) -> R:
        conflict: VersionConflictError | None = None
        for _ in range(_MAX_CAS_RETRIES):
            current = await self.get_record(model, key) or create()
            changed = mutate(current)
            record = current if changed is None else changed
            try:
                return await self.put_record(record, expected_version=current.version)
            except VersionConflictError as error:
                conflict = error
        assert conflict is not None
        raise conflict
