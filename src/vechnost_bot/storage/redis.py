"""Redis Mode: the storage contract on redis.asyncio, one round trip per call.

Key layout: ``vechnost:v{SCHEMA_VERSION}:<kind>:<key>``. A record is one string
``<schema>:<version>:<updated_at>:<JSON body>`` (one GET to read); an empty body is
a tombstone (a deleted record that remembers its last version for a while, so
that "newer wins" holds across deletes). Every write that must be atomic is a Lua
script run with EVALSHA. Values that are corrupt, of the wrong type or of another
schema are logged as ``storage_corrupt_value`` and treated as absent.
"""

from __future__ import annotations

import hashlib
import itertools
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final, cast

import redis.asyncio as aioredis
import structlog
from pydantic import ValidationError
from redis.exceptions import NoScriptError, ResponseError

from vechnost_bot.errors import VersionConflictError
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage.base import R, Storage
from vechnost_bot.storage.models import SCHEMA_VERSION, Record

__all__ = ["KEY_PREFIX", "RedisStorage", "ScriptCall", "StoredRecord", "connect_redis"]

log = structlog.get_logger(__name__)

KEY_PREFIX: Final = f"vechnost:v{SCHEMA_VERSION}"
_SCHEMA: Final = str(SCHEMA_VERSION).encode()
_BODY_EXCLUDE: Final[set[str]] = {"version", "updated_at"}

# A record is one string "<schema>:<version>:<updated_at>:<JSON body>", read with a
# plain GET and written with SET (which also replaces a value of any other type).
_LUA_READ_STATE = """
local function state(key)
  local ok, cur = pcall(redis.call, 'GET', key)
  if not ok or not cur then return false, 0, 0, false end
  local s, v, t, pos = string.match(cur, '^([^:]*):([^:]*):([^:]*):()')
  if s ~= SCHEMA or not tonumber(v) then return false, 0, 0, false end
  return true, tonumber(v), tonumber(t) or 0, pos <= #cur
end
"""

# The hot path. KEYS[1]; ARGV: "<expected or -1>:<record version>:<updated_at>", body
_LUA_PUT = (
    _LUA_READ_STATE
    + """
local exists, sv, st, live = state(KEYS[1])
local e, rv, now = string.match(ARGV[1], '^(-?%d+):(%d+):(.+)$')
e = tonumber(e)
local found = 0
if live then found = sv end
if e >= 0 and found ~= e then return {0, found} end
local v = math.max(sv, tonumber(rv)) + 1
redis.call('SET', KEYS[1], SCHEMA .. ':' .. v .. ':' .. now .. ':' .. ARGV[2])
return {1, v}
"""
)

# KEYS[1]; ARGV: "<version>:<updated_at>:<rebase 0|1>", body. With rebase the writer
# did not know the stored version: the later write wins and continues the sequence.
_LUA_PUT_IF_NEWER = (
    _LUA_READ_STATE
    + """
local exists, sv, st = state(KEYS[1])
local v, t, rebase = string.match(ARGV[1], '^(%d+):([^:]+):(%d)$')
local rv, rt = tonumber(v), tonumber(t)
if rebase == '1' then
  if exists and st >= rt then return 0 end
  if exists and sv >= rv then rv = sv + 1 end
elseif exists and (sv > rv or (sv == rv and st > rt)) then
  return 0
elseif exists and sv == rv and st == rt then
  return rv -- already there (a replayed reconciliation)
end
redis.call('SET', KEYS[1], SCHEMA .. ':' .. rv .. ':' .. t .. ':' .. ARGV[2])
return rv
"""
)

# KEYS[1]; ARGV: updated_at, tombstone ttl ms -> {deleted, version}
_LUA_DELETE = (
    _LUA_READ_STATE
    + """
local exists, sv, st, live = state(KEYS[1])
if not live then return {0, sv} end
redis.call('SET', KEYS[1], SCHEMA .. ':' .. sv .. ':' .. ARGV[1] .. ':', 'PX', ARGV[2])
return {1, sv}
"""
)

# KEYS[1]; ARGV: version, updated_at, tombstone ttl ms, rebase
_LUA_DELETE_IF_NOT_NEWER = (
    _LUA_READ_STATE
    + """
local exists, sv, st = state(KEYS[1])
local rv, rt = tonumber(ARGV[1]), tonumber(ARGV[2])
if ARGV[4] == '1' then
  if exists and st > rt then return 0 end
elseif exists and (sv > rv or (sv == rv and st > rt)) then
  return 0
end
local tombstone = SCHEMA .. ':' .. math.max(sv, rv) .. ':' .. ARGV[2] .. ':'
redis.call('SET', KEYS[1], tombstone, 'PX', ARGV[3])
return 1
"""
)

# KEYS[1]; ARGV: the unusable value, its replacement (a tombstone), ttl ms
_LUA_DISCARD_IF_SAME = """
local ok, cur = pcall(redis.call, 'GET', KEYS[1])
if ok and cur == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
"""

# An increment applied at most once per token (a call whose reply was lost may be
# replayed from the journal). KEYS[1] counter, KEYS[2] marker; ARGV: amount, ttl ms
_LUA_INCR_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'PX', ARGV[2]) then
  if redis.call('TYPE', KEYS[1])['ok'] ~= 'string' then redis.call('DEL', KEYS[1]) end
  local ok, value = pcall(redis.call, 'INCRBY', KEYS[1], ARGV[1])
  if not ok then
    redis.call('DEL', KEYS[1])
    value = redis.call('INCRBY', KEYS[1], ARGV[1])
  end
  return value
end
return tonumber(redis.call('GET', KEYS[1])) or 0
"""

# Sliding window on a sorted set. KEYS[1]; ARGV: now ms, window ms, limit, member
_LUA_RATE = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window) + 1)
  return 1
end
return 0
"""


def connect_redis(
    endpoint: RedisEndpoint, *, socket_timeout: float = 0.25, client_name: str | None = None
) -> aioredis.Redis:
    """The storage's client: one pool, no retries, short timeouts, so a dead server fails
    fast (the circuit in HybridStorage does the rest). Nothing connects until the first
    command."""
    return make_client(endpoint, timeout=socket_timeout, name=client_name)


@dataclass(slots=True)
class StoredRecord:
    """A record as Redis holds it: version, time and JSON body (None = tombstone)."""

    version: int
    updated_at: float
    body: bytes | None

    def load(self, model: type[R]) -> R | None:
        """The record, or None for a tombstone; raises ValidationError on a bad body."""
        if self.body is None:
            return None
        record = model.model_validate_json(self.body)
        # Plain attribute writes: the values come from our own header, already typed.
        record.__dict__["version"] = self.version
        record.__dict__["updated_at"] = self.updated_at
        return record


def dump_body(record: Record) -> bytes:
    """The JSON body stored for ``record`` (version and time are kept beside it)."""
    return record.model_dump_json(exclude=_BODY_EXCLUDE).encode()


def _with_schema(source: str) -> str:
    return source.replace("SCHEMA", f"'{SCHEMA_VERSION}'")


class _Script:
    """A Lua script called by EVALSHA, loaded again after a server restart."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode(), usedforsecurity=False).hexdigest()

    async def __call__(self, client: aioredis.Redis, key: str, *args: Any) -> Any:
        try:
            return await client.evalsha(self.sha, 1, key, *args)
        except NoScriptError:
            return await client.eval(self.source, 1, key, *args)

    async def keys(self, client: aioredis.Redis, keys: tuple[str, ...], *args: Any) -> Any:
        """Run with several keys."""
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return await client.eval(self.source, len(keys), *keys, *args)


_PUT = _Script(_with_schema(_LUA_PUT))
_PUT_IF_NEWER = _Script(_with_schema(_LUA_PUT_IF_NEWER))
_DELETE = _Script(_with_schema(_LUA_DELETE))
_DELETE_IF_NOT_NEWER = _Script(_with_schema(_LUA_DELETE_IF_NOT_NEWER))
_DISCARD_IF_SAME = _Script(_LUA_DISCARD_IF_SAME)
_RATE = _Script(_LUA_RATE)
_INCR_ONCE = _Script(_LUA_INCR_ONCE)
_ALL_SCRIPTS = (
    _PUT,
    _PUT_IF_NEWER,
    _DELETE,
    _DELETE_IF_NOT_NEWER,
    _DISCARD_IF_SAME,
    _RATE,
    _INCR_ONCE,
)


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One prepared script call, to run alone or in a pipelined batch."""

    script: _Script
    keys: tuple[str, ...]
    args: tuple[Any, ...]

    async def run(self, client: aioredis.Redis) -> Any:
        """Run it by itself."""
        return await self.script.keys(client, self.keys, *self.args)


_BATCH = 256
# How long "this increment was applied" markers live. A replay of an uncertain
# increment normally happens within seconds of the server answering again.
_MARKER_TTL = 600.0


def _is_data_error(error: ResponseError) -> bool:
    message = str(error)
    return message.startswith(("WRONGTYPE", "ERR value is not an integer", "value is not an"))


class RedisStorage(Storage):
    """The contract on a ready ``redis.asyncio.Redis`` client (built by :func:`connect_redis`).

    Redis errors (connection, timeout, READONLY, MISCONF, OOM …) propagate: deciding
    what to do about them is :class:`~vechnost_bot.storage.hybrid.HybridStorage`'s job.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = KEY_PREFIX,
        tombstone_ttl: float = 7 * 24 * 3600.0,
        owns_client: bool = True,
    ) -> None:
        self.client = client
        self._prefix = prefix
        self._tombstone_ms = int(tombstone_ttl * 1000)
        self._owns_client = owns_client
        self._member = itertools.count()
        self._instance = uuid.uuid4().hex[:12]

    def record_key(self, kind: str, key: str) -> str:
        """The Redis key of record ``kind:key``."""
        return f"{self._prefix}:{kind}:{key}"

    # -- records ---------------------------------------------------------------------
    async def get_record(self, model: type[R], key: str) -> R | None:
        """The stored record, or None (absent, tombstone, corrupt, foreign)."""
        record, _ = await self.fetch(model, key)
        return record

    async def fetch(self, model: type[R], key: str) -> tuple[R | None, StoredRecord | None]:
        """The record and its stored form (None when absent or unusable)."""
        rkey = f"{self._prefix}:{model.KIND}:{key}"
        try:
            raw = cast("bytes | None", await self.client.get(rkey))
        except ResponseError as error:
            if not _is_data_error(error):
                raise
            log.warning("storage_corrupt_value", key=rkey, reason="wrong_type")
            return None, None
        if raw is None:
            return None, None
        parts = raw.split(b":", 3)
        if len(parts) == 4 and parts[0] != _SCHEMA and parts[0].isdigit():
            log.warning("storage_corrupt_value", key=rkey, reason="schema", schema=parts[0])
            return None, None
        try:
            _, version, updated_at, body = parts
            stored = StoredRecord(int(version), float(updated_at), body or None)
            return stored.load(model), stored
        except (TypeError, ValueError, ValidationError) as error:
            log.warning(
                "storage_corrupt_value", key=rkey, reason="invalid", error=type(error).__name__
            )
            tombstone = b"%s:0:%r:" % (_SCHEMA, time.time())
            await _DISCARD_IF_SAME(self.client, rkey, raw, tombstone, self._tombstone_ms)
            return None, None

    async def put_record(self, record: R, *, expected_version: int | None = None) -> R:
        """Store with the next version; with ``expected_version`` a server-side CAS."""
        stored, _ = await self.store(record, expected_version=expected_version)
        return stored

    async def store(
        self, record: R, *, expected_version: int | None = None
    ) -> tuple[R, StoredRecord]:
        """Like :meth:`put_record`, also returning the stored form."""
        rkey = f"{self._prefix}:{record.KIND}:{record.key}"
        body = record.model_dump_json(exclude=_BODY_EXCLUDE).encode()
        now = time.time()
        expected = -1 if expected_version is None else expected_version
        ok, version = await _PUT(self.client, rkey, f"{expected}:{record.version}:{now!r}", body)
        if not ok:
            raise VersionConflictError(f"{record.KIND}:{record.key}", expected, int(version))
        stored = record.__copy__()  # shallow: the caller's record, not ours, is shared
        stored.__dict__.update(version=int(version), updated_at=now)
        return stored, StoredRecord(int(version), now, body)

    async def delete_record(self, model: type[Record], key: str) -> None:
        """Delete (leaving a tombstone that expires); absent is fine."""
        await self.remove(model, key)

    async def remove(self, model: type[Record], key: str) -> StoredRecord | None:
        """Delete and return the tombstone written, or None when nothing was live."""
        now = time.time()
        deleted, version = await _DELETE(
            self.client, self.record_key(model.KIND, key), repr(now), self._tombstone_ms
        )
        return StoredRecord(int(version), now, None) if deleted else None

    async def put_if_newer(self, record: Record, *, rebase: bool = False) -> int:
        """Reconciliation CAS: write ``record`` as-is when nothing newer is stored.

        Returns the version stored for it, or 0 when the stored record won. With
        ``rebase`` the writer did not know the stored version: the later
        ``updated_at`` wins and the version continues the stored sequence.
        """
        return int(await self.put_if_newer_call(record, rebase=rebase).run(self.client))

    def put_if_newer_call(self, record: Record, *, rebase: bool = False) -> ScriptCall:
        """:meth:`put_if_newer`, prepared for :meth:`run_batch`."""
        return ScriptCall(
            _PUT_IF_NEWER,
            (self.record_key(record.KIND, record.key),),
            (f"{record.version}:{record.updated_at!r}:{1 if rebase else 0}", dump_body(record)),
        )

    async def delete_if_not_newer(
        self,
        model: type[Record],
        key: str,
        version: int,
        updated_at: float,
        *,
        rebase: bool = False,
    ) -> bool:
        """Reconciliation of a delete: tombstone the record unless a newer one is stored.

        With ``rebase`` (the deleter did not know the stored version) the later time wins.
        """
        call = self.delete_if_not_newer_call(model, key, version, updated_at, rebase=rebase)
        return bool(await call.run(self.client))

    def delete_if_not_newer_call(
        self,
        model: type[Record],
        key: str,
        version: int,
        updated_at: float,
        *,
        rebase: bool = False,
    ) -> ScriptCall:
        """:meth:`delete_if_not_newer`, prepared for :meth:`run_batch`."""
        return ScriptCall(
            _DELETE_IF_NOT_NEWER,
            (self.record_key(model.KIND, key),),
            (version, repr(updated_at), self._tombstone_ms, "1" if rebase else "0"),
        )

    async def load_scripts(self) -> None:
        """SCRIPT LOAD every script (a restarted server has none)."""
        for script in _ALL_SCRIPTS:
            await self.client.script_load(script.source)

    async def run_batch(self, calls: list[ScriptCall]) -> list[Any]:
        """Run prepared calls pipelined, a few hundred per round trip; results in order.

        Raises on the first Redis error; every call here is safe to replay. Call
        :meth:`load_scripts` first after a server restart (pipelines do not retry
        NOSCRIPT).
        """
        if not calls:
            return []
        results: list[Any] = []
        for start in range(0, len(calls), _BATCH):
            async with self.client.pipeline(transaction=False) as pipe:
                for call in calls[start : start + _BATCH]:
                    pipe.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
                results.extend(await pipe.execute())
        return results

    # -- counters, limits, cache -------------------------------------------------------
    async def incr(self, name: str, amount: int = 1) -> int:
        """INCRBY; a foreign value under the key is logged and replaced."""
        rkey = f"{self._prefix}:counter:{name}"
        try:
            return int(await self.client.incrby(rkey, amount))
        except ResponseError as error:
            if not _is_data_error(error):
                raise
            log.warning("storage_corrupt_value", key=rkey, reason="not_a_counter")
            await self.client.delete(rkey)
            return int(await self.client.incrby(rkey, amount))

    async def incr_once(
        self, name: str, amount: int, token: str, *, ttl: float = _MARKER_TTL
    ) -> int:
        """INCRBY that applies ``token`` at most once (for replays of uncertain increments).

        The marker lives ``ttl`` seconds; a replay after that would count again.
        """
        return int(await self.incr_once_call(name, amount, token, ttl=ttl).run(self.client))

    def incr_once_call(
        self, name: str, amount: int, token: str, *, ttl: float = _MARKER_TTL
    ) -> ScriptCall:
        """:meth:`incr_once`, prepared for :meth:`run_batch`."""
        return ScriptCall(
            _INCR_ONCE,
            (f"{self._prefix}:counter:{name}", f"{self._prefix}:applied:{token}"),
            (amount, int(ttl * 1000)),
        )

    async def get_counter(self, name: str) -> int:
        """The counter's value; 0 when absent or not a number."""
        rkey = f"{self._prefix}:counter:{name}"
        try:
            raw = await self.client.get(rkey)
        except ResponseError as error:
            if not _is_data_error(error):
                raise
            log.warning("storage_corrupt_value", key=rkey, reason="wrong_type")
            return 0
        if raw is None:
            return 0
        try:
            return int(raw)
        except ValueError:
            log.warning("storage_corrupt_value", key=rkey, reason="not_a_counter")
            return 0

    async def hit_rate_limit(self, key: str, limit: int, window: float) -> bool:
        """Atomic sliding window (a sorted set of hit times, trimmed by a Lua script)."""
        now_ms = time.time() * 1000.0
        member = f"{self._instance}:{next(self._member)}"
        allowed = await _RATE(
            self.client,
            f"{self._prefix}:rate:{key}",
            repr(now_ms),
            repr(window * 1000.0),
            limit,
            member,
        )
        return bool(allowed)

    async def cache_get(self, key: str) -> bytes | None:
        """GET; a foreign value under the key counts as absent."""
        rkey = f"{self._prefix}:cache:{key}"
        try:
            return cast("bytes | None", await self.client.get(rkey))
        except ResponseError as error:
            if not _is_data_error(error):
                raise
            log.warning("storage_corrupt_value", key=rkey, reason="wrong_type")
            return None

    async def cache_set(self, key: str, value: bytes, ttl: float) -> None:
        """SET PX (a non-positive ttl removes the entry)."""
        rkey = f"{self._prefix}:cache:{key}"
        if ttl <= 0:
            await self.client.delete(rkey)
            return
        await self.client.set(rkey, value, px=max(1, int(ttl * 1000)))

    async def cache_add(self, key: str, value: bytes, ttl: float) -> bool:
        """SET NX PX: True when the entry was absent and is now set."""
        if ttl <= 0:
            return False
        rkey = f"{self._prefix}:cache:{key}"
        return bool(await self.client.set(rkey, value, px=max(1, int(ttl * 1000)), nx=True))

    # -- lifecycle ---------------------------------------------------------------------
    async def ping(self) -> bool:
        """True when the server answers PING."""
        return bool(await self.client.ping())

    async def probe(self) -> None:
        """A small write: raises unless the server answers *and* accepts writes.

        PING alone would pass on a read-only replica, a full disk (MISCONF) or a
        full memory (OOM).
        """
        await self.client.set(f"{self._prefix}:probe:{self._instance}", b"1", px=10_000)

    async def reset_connections(self) -> None:
        """Drop every pooled connection, so that none left over from a dead server is reused."""
        await self.client.connection_pool.disconnect()

    async def close(self) -> None:
        """Close the client's pool when this storage owns it; safe twice."""
        if self._owns_client:
            await self.client.aclose()
