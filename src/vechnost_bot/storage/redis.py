"""Redis Mode: the storage contract on redis.asyncio, one round trip per call.

Key layout: ``vechnost:v{SCHEMA_VERSION}:<kind>:<key>``. A record is one string
``<schema>:<version>:<updated_at>:<JSON body>`` (one GET to read; see
:func:`~vechnost_bot.storage.records.dump_value`); a body starting with ``~`` is a
tombstone (a deleted record, kept for a week so that a late merge cannot bring it
back). Every write is one Lua compare-and-set run with EVALSHA, which hands back the
stored value when it loses, so merging or re-applying needs no extra read. Values
that are corrupt, of the wrong type or of another schema are logged as
``storage_corrupt_value`` and treated as absent.
"""

from __future__ import annotations

import hashlib
import itertools
import time
import uuid
from collections.abc import Sequence
from typing import Any, Final, NamedTuple, cast

import redis.asyncio as aioredis
import structlog
from redis.exceptions import NoScriptError, ResponseError

from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.redis.pipelined import PipelinedConnection, pack_command
from vechnost_bot.storage.base import Cas, R, Storage
from vechnost_bot.storage.records import (
    HLC,
    SCHEMA_VERSION,
    Record,
    dump_body,
    load_value,
    shallow_copy,
)

__all__ = ["KEY_PREFIX", "RedisStorage", "ScriptCall", "connect_redis"]

log = structlog.get_logger(__name__)

KEY_PREFIX: Final = f"vechnost:v{SCHEMA_VERSION}"
_SCHEMA: Final = str(SCHEMA_VERSION).encode()

# A record is one string "<schema>:<version>:<updated_at>:<body>", read with a plain GET
# and written with SET (which also replaces a value of any other type). A body that
# starts with "~" (or is empty, as older versions wrote them) is a tombstone.
_LUA_READ_STATE = """
local function state(key)
  local ok, cur = pcall(redis.call, 'GET', key)
  if not ok or not cur then return false, 0, false, false end
  local s, v, pos = string.match(cur, '^([^:]*):([^:]*):[^:]*:()')
  if s ~= SCHEMA or not tonumber(v) then return false, 0, false, false end
  local live = pos <= #cur and string.sub(cur, pos, pos) ~= '~'
  return true, tonumber(v), live, cur
end
"""

# The one write. KEYS[1]; ARGV[1]: "<expected or -1>:<record version>:<updated_at>:<ttl ms>",
# ARGV[2]: body. Written: {1, version}. A conflict: {0, found, the stored value}, so that
# the caller merges or re-applies without another read.
_LUA_PUT = (
    _LUA_READ_STATE
    + """
local exists, sv, live, cur = state(KEYS[1])
local e, rv, now, ttl = string.match(ARGV[1], '^(-?%d+):(%d+):([^:]+):(%d+)$')
e, ttl = tonumber(e), tonumber(ttl)
local found = 0
if live then found = sv end
if e >= 0 and found ~= e then return {0, found, cur} end
local v = math.max(sv, tonumber(rv)) + 1
local value = SCHEMA .. ':' .. v .. ':' .. now .. ':' .. ARGV[2]
if ttl > 0 then
  redis.call('SET', KEYS[1], value, 'PX', ttl)
else
  redis.call('SET', KEYS[1], value)
end
return {1, v}
"""
)

# The write of several records in one round trip: KEYS[i] with ARGV[2i-1], ARGV[2i] as
# in _LUA_PUT. Each record is compared and set on its own; one MGET and one MSET (a
# tombstone: SET PX) for all. Per key: {1, version, ''} written, {0, found, stored or ''}.
_LUA_PUT_MANY = """
local values = redis.call('MGET', unpack(KEYS))
local out, sets = {}, {}
for i, key in ipairs(KEYS) do
  local cur, sv, live = values[i], 0, false
  if cur then
    local s, v, pos = string.match(cur, '^([^:]*):([^:]*):[^:]*:()')
    if s == SCHEMA and tonumber(v) then
      sv = tonumber(v)
      live = pos <= #cur and string.sub(cur, pos, pos) ~= '~'
    else
      cur = false
    end
  end
  local e, rv, now, ttl = string.match(ARGV[2 * i - 1], '^(-?%d+):(%d+):([^:]+):(%d+)$')
  e, ttl = tonumber(e), tonumber(ttl)
  local found = 0
  if live then found = sv end
  if e >= 0 and found ~= e then
    out[#out + 1], out[#out + 2], out[#out + 3] = 0, found, cur or ''
  else
    local v = math.max(sv, tonumber(rv)) + 1
    local value = SCHEMA .. ':' .. v .. ':' .. now .. ':' .. ARGV[2 * i]
    if ttl > 0 then
      redis.call('SET', key, value, 'PX', ttl)
    else
      sets[#sets + 1], sets[#sets + 2] = key, value
    end
    out[#out + 1], out[#out + 2], out[#out + 3] = 1, v, ''
  end
end
if #sets > 0 then redis.call('MSET', unpack(sets)) end
return out
"""

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

# Sliding window on a sorted set, timed by the server's clock (TIME), never a client's:
# replicas whose clocks differ share one window. A member already in the window is a
# redelivery of a counted hit: allowed, not counted again. KEYS[1]; ARGV: window ms,
# limit, member
_LUA_RATE = """
if redis.replicate_commands then redis.replicate_commands() end
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'zset' and kind ~= 'none' then redis.call('DEL', KEYS[1]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local window = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZSCORE', KEYS[1], ARGV[3]) then return 1 end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
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
_DISCARD_IF_SAME = _Script(_LUA_DISCARD_IF_SAME)
_RATE = _Script(_LUA_RATE)
_INCR_ONCE = _Script(_LUA_INCR_ONCE)
_PUT_MANY = _Script(_with_schema(_LUA_PUT_MANY))
_ALL_SCRIPTS = (_PUT, _PUT_MANY, _DISCARD_IF_SAME, _RATE, _INCR_ONCE)


class ScriptCall(NamedTuple):
    """One prepared script call, to run alone or in a pipelined batch (a tuple: the cheapest
    object to build, once per write)."""

    script: _Script
    keys: tuple[str, ...]
    args: tuple[Any, ...]

    async def run(self, client: aioredis.Redis) -> Any:
        """Run it by itself."""
        return await self.script.keys(client, self.keys, *self.args)


# EVALSHA <sha of _PUT> 1, packed once: a compare-and-set appends its key and arguments
_PUT_PACKED: Final = b"*6\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n$1\r\n1\r\n" % _PUT.sha.encode()


def _pack_args(key: str, header: str, body: bytes) -> bytes:
    """The key and the two arguments of a packed :data:`_PUT_PACKED` call."""
    k, h = key.encode(), header.encode()
    return b"$%d\r\n%s\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(h), h, len(body), body)


_BATCH = 256
# How long "this increment was applied" markers live: as long as tombstones, so that a
# journal adopted days later (a process that died during an outage) still counts once.
_MARKER_TTL = 7 * 24 * 3600.0


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
        clock: HLC | None = None,
    ) -> None:
        self.client = client
        self.clock = clock or HLC()
        self._prefix = prefix
        self._tombstone_ms = int(tombstone_ttl * 1000)
        self._owns_client = owns_client
        self._member = itertools.count()
        self._instance = uuid.uuid4().hex[:12]
        self._wire = PipelinedConnection.for_client(client)
        """The record calls' own connection (GET, the compare-and-set), where it covers
        the client: a tenth of redis-py's cost per command (redis/pipelined.py)."""

    def record_key(self, kind: str, key: str) -> str:
        """The Redis key of record ``kind:key``."""
        return f"{self._prefix}:{kind}:{key}"

    # -- records ---------------------------------------------------------------------
    async def _load(self, model: type[R], key: str) -> R | None:
        state, _ = await self.load_with_raw(model, key)
        return state

    async def load_with_raw(self, model: type[R], key: str) -> tuple[R | None, bytes | None]:
        """The stored state (tombstones too) and the bytes it was read from."""
        rkey = f"{self._prefix}:{model.KIND}:{key}"
        wire = self._wire
        try:
            if wire is not None:
                encoded = rkey.encode()
                raw = await wire.execute(
                    b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(encoded), encoded)
                )
            else:
                raw = cast("bytes | None", await self.client.get(rkey))
        except ResponseError as error:
            if not _is_data_error(error):
                raise
            log.warning("storage_corrupt_value", key=rkey, reason="wrong_type")
            return None, None
        if raw is None:
            return None, None
        try:
            return load_value(model, key, raw), raw
        except ValueError as error:  # pydantic's ValidationError is a ValueError
            await self._corrupt(rkey, raw, error)
            return None, None

    async def _decode(self, model: type[R], key: str, raw: bytes) -> R | None:
        try:
            return load_value(model, key, raw)
        except ValueError as error:
            await self._corrupt(self.record_key(model.KIND, key), raw, error)
            return None

    async def _corrupt(self, rkey: str, raw: bytes, error: ValueError) -> None:
        """Log a value that is not one of our records; replace it if it is garbage (not
        merely of another schema) with a tombstone, unless it changed meanwhile."""
        reason = "schema" if str(error) == "schema" else "invalid"
        log.warning("storage_corrupt_value", key=rkey, reason=reason, error=type(error).__name__)
        if reason == "invalid":
            replacement = b"%s:0:%r:" % (_SCHEMA, time.time())
            await _DISCARD_IF_SAME(self.client, rkey, raw, replacement, self._tombstone_ms)

    async def _cas(self, record: R, expected: int) -> Cas[R]:
        result, _ = await self.cas_with_raw(record, expected)
        return result

    async def cas_with_raw(self, record: R, expected: int) -> tuple[Cas[R], bytes | None]:
        """One compare-and-set (one EVALSHA), and the bytes Redis holds afterwards when they
        are a record: the value written, or the one that won (for the local store's copy)."""
        call, stored = self.cas_call(record, expected)
        wire = self._wire
        try:
            if wire is not None:
                reply = await wire.execute(_PUT_PACKED + _pack_args(call.keys[0], *call.args))
            else:
                reply = await self.client.evalsha(_PUT.sha, 1, *call.keys, *call.args)
        except NoScriptError:
            if wire is not None:
                reply = await wire.execute(
                    pack_command("EVAL", _PUT.source, 1, *call.keys, *call.args)
                )
            else:
                reply = await self.client.eval(_PUT.source, 1, *call.keys, *call.args)
        if int(reply[0]):
            version = int(reply[1])
            stored.__dict__["version"] = version
            raw = b"%s:%d:%r:%s" % (_SCHEMA, version, stored.updated_at, call.args[1])
            return Cas(ok=True, record=stored, found=version), raw
        result = await self.cas_result(record, stored, reply)
        return result, bytes(reply[2]) if result.record is not None else None

    def cas_call(self, record: R, expected: int) -> tuple[ScriptCall, R]:
        """One compare-and-set, prepared (to run alone or in :meth:`run_batch`), with the
        stored copy it writes when it wins (its version is filled in by the reply)."""
        now = time.time()
        stored = shallow_copy(record)  # the caller's objects, never ours, are shared
        stored.__dict__["updated_at"] = now
        live = record.stamp > record.deleted
        body = dump_body(stored)
        call = ScriptCall(
            _PUT,
            (f"{self._prefix}:{record.KIND}:{record.key}",),
            (f"{expected}:{record.version}:{now!r}:{0 if live else self._tombstone_ms}", body),
        )
        return call, stored

    async def cas_result(self, record: R, stored: R, reply: Any) -> Cas[R]:
        """The :class:`Cas` for one reply of :meth:`cas_call`."""
        if int(reply[0]):
            stored.__dict__["version"] = int(reply[1])
            return Cas(ok=True, record=stored, found=int(reply[1]))
        current = reply[2] if len(reply) > 2 else None
        state = None if not current else await self._decode(type(record), record.key, current)
        return Cas(ok=False, record=state, found=int(reply[1]))

    async def _cas_many(self, writes: Sequence[tuple[Record, int]]) -> list[Cas[Any]]:
        call, stored = self.cas_many_call(writes)
        return await self.cas_many_result(writes, stored, await self.run_call(call))

    def cas_many_call(
        self, writes: Sequence[tuple[Record, int]]
    ) -> tuple[ScriptCall, list[Record]]:
        """:meth:`cas_call` for several distinct records, as one script call."""
        calls = [self.cas_call(record, expected) for record, expected in writes]
        keys = tuple(key for call, _ in calls for key in call.keys)
        args = tuple(arg for call, _ in calls for arg in call.args)
        return ScriptCall(_PUT_MANY, keys, args), [stored for _, stored in calls]

    async def cas_many_result(
        self, writes: Sequence[tuple[Record, int]], stored: list[Record], reply: Any
    ) -> list[Cas[Any]]:
        """The :class:`Cas` of each record for one reply of :meth:`cas_many_call`."""
        return [
            await self.cas_result(record, copy, reply[3 * i : 3 * i + 3])
            for i, ((record, _), copy) in enumerate(zip(writes, stored, strict=True))
        ]

    async def run_call(self, call: ScriptCall) -> Any:
        """Run one prepared call by itself, on the record calls' connection where there is
        one (EVALSHA, then EVAL when the server does not know the script)."""
        wire = self._wire
        if wire is None:
            return await call.run(self.client)
        keys, args = call.keys, call.args
        try:
            return await wire.execute(
                pack_command("EVALSHA", call.script.sha, len(keys), *keys, *args)
            )
        except NoScriptError:
            return await wire.execute(
                pack_command("EVAL", call.script.source, len(keys), *keys, *args)
            )

    async def load_scripts(self) -> None:
        """SCRIPT LOAD every script (a restarted server has none)."""
        for script in _ALL_SCRIPTS:
            await self.client.script_load(script.source)

    async def run_batch(self, calls: list[ScriptCall], *, raise_on_error: bool = True) -> list[Any]:
        """Run prepared calls pipelined, a few hundred per round trip; results in order.

        Every call here is safe to replay. With ``raise_on_error=False`` a reply that is
        an error comes back as the exception, in its place (one bad entry does not hide
        the others' results); errors of the connection itself always raise. Call
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
                results.extend(await pipe.execute(raise_on_error=raise_on_error))
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
        return int(await self.run_call(self.incr_once_call(name, amount, token, ttl=ttl)))

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

    async def hit_rate_limit(
        self, key: str, limit: int, window: float, *, hit: str | None = None
    ) -> bool:
        """Atomic sliding window (a sorted set of hits, trimmed by a Lua script on the
        server's clock); ``hit`` already in the window is allowed and not counted again."""
        member = f"h:{hit}" if hit is not None else f"{self._instance}:{next(self._member)}"
        allowed = await self.run_call(
            ScriptCall(
                _RATE, (f"{self._prefix}:rate:{key}",), (repr(window * 1000.0), limit, member)
            )
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
    async def probe(self) -> None:
        """A small write: raises unless the server answers *and* accepts writes.

        PING alone would pass on a read-only replica, a full disk (MISCONF) or a
        full memory (OOM).
        """
        await self.client.set(f"{self._prefix}:probe:{self._instance}", b"1", px=10_000)

    async def reset_connections(self) -> None:
        """Drop every pooled connection, so that none left over from a dead server is reused."""
        if self._wire is not None:
            await self._wire.disconnect()
        await self.client.connection_pool.disconnect()

    async def close(self) -> None:
        """Close the record calls' connection, and the client's pool when this storage owns
        it; safe twice."""
        if self._wire is not None:
            await self._wire.disconnect()
        if self._owns_client:
            await self.client.aclose()
