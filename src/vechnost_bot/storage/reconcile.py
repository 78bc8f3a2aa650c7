"""Failback: the local store's pending writes go into Redis, merged, in chunks.

Each pending record is written with compare-and-set against the version Redis had
when this process last saw it. If Redis holds something else (another process
wrote, or this record was never seen), the script hands that back, the two are
merged (``records.merge``) and the merge is written with compare-and-set again,
until it lands: a newer write from elsewhere is merged, never overwritten. Chunks
of a few hundred go in one pipelined round trip, and the loop yields between
chunks, so the cost per chunk does not grow with the journal. An entry that Redis
refuses for its own reasons, or that cannot be read, is quarantined (kept in the
local file, logged as ``storage_entry_quarantined``) and never blocks the others.

Counter increments are added with a token each (``incr_once``); the token was
persisted with the increment before it was ever sent, so a reconcile cut short by a
kill is replayed by the next process and still counts once.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import structlog
from redis.exceptions import (
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
)
from redis.exceptions import (
    RedisError as RedisClientError,
)

from vechnost_bot.storage.local import Entry, LocalStore
from vechnost_bot.storage.records import RECORD_KINDS, Record, merge
from vechnost_bot.storage.redis import RedisStorage, ScriptCall

__all__ = ["CHUNK", "reconcile"]

log = structlog.get_logger(__name__)

CHUNK: Final = 64
_TROUBLE_PREFIXES: Final = ("MISCONF", "NOSCRIPT", "NOAUTH", "WRONGPASS", "LOADING", "BUSY")


def _is_trouble(error: BaseException) -> bool:
    """True when an error in a pipelined reply means "Redis cannot serve", not "this entry"."""
    if isinstance(error, ReadOnlyError | OutOfMemoryError | NoScriptError):
        return True
    if isinstance(error, ResponseError):
        return str(error).startswith(_TROUBLE_PREFIXES)
    return isinstance(error, RedisClientError | OSError)


async def reconcile(
    redis: RedisStorage,
    local: LocalStore,
    *,
    chunk: int = CHUNK,
    remember_counter: Any = None,
) -> int:
    """One pass over every pending write; returns how many went into Redis.

    Raises the Redis error that stopped it (the caller stays in memory mode; what was
    done is done, the rest is still pending).
    """
    done = 0
    after: tuple[str, str] | None = None
    while True:
        entries, last = await local.pending_chunk(after, chunk)
        if last is None:
            break
        after = last  # rows committed as reconciled a moment ago are skipped, not an end
        if entries:
            done += await _records(redis, local, entries)
        await asyncio.sleep(0)
    sealed = local.seal_increments()
    for start in range(0, len(sealed), chunk):
        part = sealed[start : start + chunk]
        calls = [redis.incr_once_call(inc.name, inc.delta, inc.token) for inc in part]
        results = await redis.run_batch(calls, raise_on_error=False)
        for inc, result in zip(part, results, strict=True):
            if isinstance(result, BaseException):
                if _is_trouble(result):
                    raise result
                log.error(
                    "storage_entry_quarantined",
                    kind="counter",
                    key=inc.name,
                    reason=type(result).__name__,
                )
                continue
            local.increment_done(inc.token)
            if remember_counter is not None:
                remember_counter(inc.name, int(result))
            done += 1
        await asyncio.sleep(0)
    return done


async def _records(
    redis: RedisStorage, local: LocalStore, entries: list[tuple[tuple[str, str], Entry]]
) -> int:
    """Merge one chunk into Redis; conflicts go round again (merged) until they land."""
    work: list[tuple[tuple[str, str], Entry, Record, int]] = []
    for (kind, key), entry in entries:
        try:
            state = entry.load(RECORD_KINDS[kind], key)
        except (KeyError, ValueError) as error:
            await local.quarantine(kind, key, entry, f"unreadable: {type(error).__name__}")
            continue
        work.append(((kind, key), entry, state, entry.redis_version))
    done = 0
    started = time.monotonic()
    while work:
        prepared: list[tuple[ScriptCall, Record]] = [
            redis.cas_call(state, guess) for _, _, state, guess in work
        ]
        results = await redis.run_batch([call for call, _ in prepared], raise_on_error=False)
        again: list[tuple[tuple[str, str], Entry, Record, int]] = []
        for (rkey, entry, state, _), (_, stored), reply in zip(
            work, prepared, results, strict=True
        ):
            if isinstance(reply, BaseException):
                if _is_trouble(reply):
                    raise reply
                await local.quarantine(*rkey, entry, f"refused by Redis: {reply}"[:200])
                continue
            result = await redis.cas_result(state, stored, reply)
            if result.ok:
                assert result.record is not None
                await local.reconciled(entry, result.record)
                done += 1
                continue
            merged = state if result.record is None else merge(result.record, state)
            redis.clock.observe(max(merged.stamp, merged.deleted))
            again.append((rkey, entry, merged, result.found))
        work = again
        if work:
            log.debug(
                "storage_reconcile_conflicts",
                records=len(work),
                seconds=round(time.monotonic() - started, 3),
            )
            await asyncio.sleep(0)
    return done
