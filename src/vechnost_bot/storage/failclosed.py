"""Fail-closed storage for webhook replicas: records never fall back per replica.

Several bot replicas share one Redis. If each fell back to its own memory when Redis
is away, one chat's updates (spread over the replicas) would fork its game: measured
for issue 11, 3 of 6 acknowledged draws were gone after failback. So here every
*record* read and write (sessions, tables, players, stats) goes to Redis only. A call
that meets Redis trouble drops the client's pool (the next try asks Sentinel, or the
server, again: ``READONLY`` and ``NOREPLICAS`` mean "not the master any more") and
retries with backoff within ``budget`` seconds (a Sentinel failover takes 1.4-2.4 s).
When the budget runs out it raises :class:`~vechnost_bot.bot.webhook.UpdateDeferredError`:
the webhook answers 503 with ``Retry-After`` and Telegram redelivers the update, in
order, to whichever replica is up. The player sees a delay, never a forked game.

What still falls back per replica (inherited from :class:`HybridStorage`):

* counters journal their increments and add them on failback exactly once
  (``incr_once``), so nothing is lost or counted twice;
* the byte cache (Telegram file ids) and rate windows live in the replica's RAM while
  Redis is away: a card may be uploaded again by another replica, a rate window
  restarts. The update-id gate is not among them: :class:`RedisGate` is Redis only, and
  the webhook answers 503 rather than guess (see ``bot/webhook.py``).

A redelivered update should not deal a second card. The update-id gate covers a
replica that dies after it marked the update done. For one that dies after sending the
card but before its write (the game sends first and writes after), the game's random
source is :class:`UpdateRandom`, seeded per update (the same on every replica): the
redelivery reads the same session and deals the same card again, a re-send. What is
not covered: a replica that dies after its write but before its answer; the
redelivery then deals the next card (an extra draw, never a repeat).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import hashlib
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import structlog
from redis.exceptions import RedisError

from vechnost_bot.bot.webhook import UpdateDeferredError
from vechnost_bot.log import redact
from vechnost_bot.metrics import UPDATES_DEFERRED
from vechnost_bot.service import backoff
from vechnost_bot.storage.base import Cas, R
from vechnost_bot.storage.hybrid import HybridStorage
from vechnost_bot.storage.records import Record, dump_body
from vechnost_bot.storage.redis import RedisStorage

__all__ = [
    "FailClosedStorage",
    "RedisGate",
    "UpdateRandom",
    "UpdateScope",
    "current_scope",
    "update_scope",
]

log = structlog.get_logger(__name__)

_TROUBLE: Final = (RedisError, OSError, TimeoutError)
# A redelivery after a crash comes within seconds; the gate remembers "done" as long.
_MEMO_TTL: Final = 3600.0
T = TypeVar("T")


@dataclass
class UpdateScope:
    """What one update's processing has done so far (a context variable holds it)."""

    update_id: int
    deferred: UpdateDeferredError | None = None
    seed: bytes = b""
    rng: random.Random = field(default_factory=random.Random)

    def reseed(self) -> None:
        """Start the update's random draws from its own seed (the same on every replica)."""
        digest = hashlib.sha256(b"%s:%d" % (self.seed, self.update_id)).digest()
        self.rng.seed(int.from_bytes(digest[:16], "big"))


_SCOPE: contextvars.ContextVar[UpdateScope | None] = contextvars.ContextVar(
    "vechnost_update_scope", default=None
)


def current_scope() -> UpdateScope | None:
    """The scope of the update being processed in this task, or None."""
    return _SCOPE.get()


@contextlib.contextmanager
def update_scope(update_id: int, *, seed: bytes = b"") -> Iterator[UpdateScope]:
    """Process one update inside this: its random draws are reproducible (``seed`` must
    be the same on every replica), and a deferral is remembered in the scope (see
    :attr:`UpdateScope.deferred`)."""
    scope = UpdateScope(update_id, seed=seed)
    scope.reseed()
    token = _SCOPE.set(scope)
    try:
        yield scope
    finally:
        _SCOPE.reset(token)


class UpdateRandom(random.Random):
    """A random source that, inside :func:`update_scope`, draws from the update's seeded
    generator, so that processing an update again draws the same cards; outside, it is
    an ordinary ``random.Random``."""

    def random(self) -> float:
        scope = _SCOPE.get()
        return scope.rng.random() if scope is not None else super().random()

    def getrandbits(self, k: int, /) -> int:
        scope = _SCOPE.get()
        return scope.rng.getrandbits(k) if scope is not None else super().getrandbits(k)


class FailClosedStorage(HybridStorage):
    """:class:`HybridStorage` whose records are served by Redis or not at all.

    ``budget``: seconds one call retries before it raises ``UpdateDeferredError`` with
    ``retry_after``. The other keyword arguments are HybridStorage's.
    """

    def __init__(
        self,
        *,
        budget: float = 3.0,
        retry_after: float = 1.0,
        hint_size: int = 10_000,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._budget = budget
        self._retry_after = retry_after
        self._hints: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._hint_size = max(1, hint_size)
        self.updates_deferred = 0
        self.record_retries = 0
        self.gate = RedisGate(self)
        """The webhook's update-id gate (Redis only, same budget)."""

    # -- facts -------------------------------------------------------------------------
    def status(self) -> dict[str, object]:
        """HybridStorage's facts, plus how records are kept and what was deferred."""
        return {
            **super().status(),
            "records": "fail-closed",
            "updates_deferred": self.updates_deferred,
            "record_retries": self.record_retries,
        }

    # -- the one retry loop ------------------------------------------------------------
    async def _fail_closed(self, op: str, call: Callable[[RedisStorage], Awaitable[T]]) -> T:
        scope = _SCOPE.get()
        if scope is not None and scope.deferred is not None:
            raise scope.deferred  # this update gave up already: no second wait
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._budget
        attempt = 0
        last = "no Redis endpoint yet"
        while True:
            # HybridStorage's client, whatever its circuit says: records never go local.
            redis = None if self._closed else self._redis
            if redis is not None:
                try:
                    return await call(redis)
                except _TROUBLE as error:
                    last = redact(f"{type(error).__name__}: {error}")[:300]
                    # READONLY, NOREPLICAS, a reset or a hung connection: the next try
                    # must connect afresh (through Sentinel, to the current master).
                    with contextlib.suppress(*_TROUBLE):
                        await redis.reset_connections()
            attempt += 1
            self.record_retries += 1
            left = deadline - loop.time()
            if left <= 0:
                raise self._deferral(op, last, scope)
            # The last pause ends at the deadline: one more try uses the whole budget.
            await asyncio.sleep(min(left, backoff(attempt, base=0.05, cap=0.5, jitter=0.5)))

    def _deferral(self, op: str, reason: str, scope: UpdateScope | None) -> UpdateDeferredError:
        error = UpdateDeferredError(reason, retry_after=self._retry_after)
        self.updates_deferred += 1
        UPDATES_DEFERRED.inc()
        log.warning(
            "storage_unavailable_update_deferred",
            op=op,
            error=reason,
            budget=self._budget,
            update_id=None if scope is None else scope.update_id,
        )
        if scope is not None:
            scope.deferred = error
        return error

    # -- record primitives -------------------------------------------------------------
    async def _load(self, model: type[R], key: str) -> R | None:
        state, _ = await self._fail_closed("get", lambda redis: redis.load_with_raw(model, key))
        self._remember(model.KIND, key, state)
        return state

    async def _cas(self, record: R, expected: int) -> Cas[R]:
        body = dump_body(record)
        uncertain = False

        async def attempt(redis: RedisStorage) -> Cas[R]:
            nonlocal uncertain
            call, stored = redis.cas_call(record, expected)
            try:
                reply = await call.run(redis.client)
            except _TROUBLE:
                # The write may have been applied before the connection broke.
                uncertain = True
                raise
            return await redis.cas_result(record, stored, reply)

        result = await self._fail_closed("put", attempt)
        if (
            not result.ok
            and uncertain
            and result.record is not None
            and result.found == expected + 1
            and dump_body(result.record) == body
        ):
            # Our own write, applied by the try whose reply was lost: not a conflict
            # (re-applying the change would draw a second card).
            result = Cas(ok=True, record=result.record, found=result.found)
        self._remember(record.KIND, record.key, result.record)
        return result

    def _hint(self, model: type[R], key: str) -> R | None:
        hint = self._hints.get((model.KIND, key))
        return None if hint is None else hint.__copy__()

    def _remember(self, kind: str, key: str, state: Any) -> None:
        hints = self._hints
        if state is None:
            hints.pop((kind, key), None)
            return
        hints[(kind, key)] = state.__copy__()
        hints.move_to_end((kind, key))
        if len(hints) > self._hint_size:
            hints.popitem(last=False)

    async def _cas_many(self, writes: Sequence[tuple[Record, int]]) -> list[Cas[Any]]:
        """Several records' compare-and-sets, each fail-closed (never the local store)."""
        return [await self._cas(record, expected) for record, expected in writes]


class RedisGate:
    """The webhook's update-id gate on Redis only, with the records' retry budget.

    HybridStorage's byte cache falls back to the replica's RAM, where another replica
    cannot see a claim: the gate must not. A call that runs out of budget raises, and
    the webhook server answers 503 rather than process an update unguarded.
    """

    def __init__(self, storage: FailClosedStorage) -> None:
        self._storage = storage

    async def cache_add(self, key: str, value: bytes, ttl: float) -> bool:
        return await self._storage._fail_closed(
            "gate", lambda redis: redis.cache_add(key, value, ttl)
        )

    async def cache_get(self, key: str) -> bytes | None:
        return await self._storage._fail_closed("gate", lambda redis: redis.cache_get(key))

    async def cache_set(self, key: str, value: bytes, ttl: float) -> None:
        await self._storage._fail_closed("gate", lambda redis: redis.cache_set(key, value, ttl))
