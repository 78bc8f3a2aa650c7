"""PipelinedConnection against a real redis-server: replies in order, redis-py's error
classes, timeouts, lost connections, cancelled callers, the handshake."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.exceptions import (
    AuthenticationError,
    NoScriptError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from tests.conftest import RedisFactory
from tests.support.redis_server import RedisServer, free_port
from tests.support.storage_helpers import endpoint_of
from vechnost_bot.config import RedisEndpoint, SentinelTarget
from vechnost_bot.redis.pipelined import PipelinedConnection, pack_command
from vechnost_bot.storage import connect_redis


def _connection(server: RedisServer, *, timeout: float = 0.25) -> PipelinedConnection:
    client = connect_redis(endpoint_of(server), socket_timeout=timeout)
    wire = PipelinedConnection.for_client(client)
    assert wire is not None
    return wire


async def test_concurrent_commands_get_their_own_replies(redis_server: RedisServer) -> None:
    wire = _connection(redis_server)
    try:
        values = {f"k{i}": b"v%d" % i * (i % 7 + 1) for i in range(300)}
        sets = await asyncio.gather(
            *(wire.execute(pack_command("SET", key, value)) for key, value in values.items())
        )
        assert sets == [b"OK"] * len(values)
        gets = await asyncio.gather(*(wire.execute(pack_command("GET", key)) for key in values))
        assert gets == list(values.values())
        assert await wire.execute(pack_command("GET", "absent")) is None
        assert await wire.execute(pack_command("INCRBY", "n", 5)) == 5
        reply = await wire.execute(pack_command("EVAL", "return {1, false, 'x'}", 0))
        assert reply == [1, None, b"x"]
    finally:
        await wire.disconnect()


async def test_a_reply_split_across_reads_is_joined(redis_server: RedisServer) -> None:
    wire = _connection(redis_server, timeout=2)
    try:
        big = bytes(range(256)) * 8192  # 2 MiB, many socket reads
        await wire.execute(pack_command("SET", "big", big))
        assert await wire.execute(pack_command("GET", "big")) == big
    finally:
        await wire.disconnect()


async def test_error_replies_raise_redis_py_classes(redis_server: RedisServer) -> None:
    wire = _connection(redis_server)
    try:
        await wire.execute(pack_command("LPUSH", "list", "x"))
        with pytest.raises(ResponseError, match=r"^WRONGTYPE"):
            await wire.execute(pack_command("GET", "list"))
        with pytest.raises(NoScriptError):
            await wire.execute(pack_command("EVALSHA", "0" * 40, 0))
        assert await wire.execute(pack_command("PING")) == b"PONG"  # still usable
    finally:
        await wire.disconnect()


async def test_a_wrong_password_is_an_authentication_error(redis_server: RedisServer) -> None:
    endpoint = RedisEndpoint("127.0.0.1", redis_server.port, password="wrong")
    wire = PipelinedConnection.for_client(connect_redis(endpoint))
    assert wire is not None
    with pytest.raises(AuthenticationError):
        await wire.execute(pack_command("PING"))


async def test_a_refused_connection_is_a_connection_error() -> None:
    wire = PipelinedConnection.for_client(connect_redis(RedisEndpoint("127.0.0.1", free_port())))
    assert wire is not None
    with pytest.raises(RedisConnectionError):
        await wire.execute(pack_command("PING"))


async def test_a_hung_server_times_out_and_the_next_command_connects_again(
    redis_server: RedisServer,
) -> None:
    wire = _connection(redis_server, timeout=0.3)
    try:
        assert await wire.execute(pack_command("PING")) == b"PONG"
        redis_server.pause()
        started = time.monotonic()
        try:
            with pytest.raises(RedisTimeoutError):
                await asyncio.gather(*(wire.execute(pack_command("PING")) for _ in range(3)))
        finally:
            redis_server.resume()
        assert 0.25 < time.monotonic() - started < 1.5
        assert await wire.execute(pack_command("PING")) == b"PONG"
    finally:
        await wire.disconnect()


async def test_a_server_killed_mid_command_fails_it(redis_factory: RedisFactory) -> None:
    server = redis_factory()
    wire = _connection(server, timeout=5)
    try:
        await wire.execute(pack_command("PING"))
        waiting = wire.execute(pack_command("BLPOP", "never", 0))  # a reply that never comes
        await asyncio.sleep(0.05)
        server.kill()
        with pytest.raises(RedisConnectionError):
            await asyncio.wait_for(waiting, 3)
    finally:
        await wire.disconnect()


async def test_an_idle_connection_closed_by_the_server_is_replaced(
    redis_server: RedisServer,
) -> None:
    wire = _connection(redis_server)
    admin = redis_server.client()
    try:
        await wire.execute(pack_command("CLIENT", "SETNAME", "to-kill"))
        assert admin.client_kill_filter(_type="normal", skipme=True) >= 1
        await asyncio.sleep(0.05)
        # as redis-py's pool does with a dead idle connection: a new one, no error
        assert await wire.execute(pack_command("PING")) == b"PONG"
    finally:
        admin.close()
        await wire.disconnect()


async def test_a_cancelled_caller_does_not_shift_the_replies(redis_server: RedisServer) -> None:
    wire = _connection(redis_server)
    try:
        await wire.execute(pack_command("SET", "a", "A"))
        await wire.execute(pack_command("SET", "b", "B"))
        first = asyncio.ensure_future(wire.execute(pack_command("GET", "a")))
        second = wire.execute(pack_command("GET", "b"))
        first.cancel()
        assert await second == b"B"
        assert await wire.execute(pack_command("GET", "a")) == b"A"
    finally:
        await wire.disconnect()


async def test_the_connection_is_named_and_selects_its_db(redis_factory: RedisFactory) -> None:
    server = redis_factory(password="pw-name")
    endpoint = RedisEndpoint("127.0.0.1", server.port, password="pw-name", db=3)
    wire = PipelinedConnection.for_client(connect_redis(endpoint, client_name="vechnost-test"))
    assert wire is not None
    admin = server.client()
    try:
        await wire.execute(pack_command("SET", "in-db-3", "x"))
        assert admin.get("in-db-3") is None
        names = [c["name"] for c in admin.client_list() if c.get("db") == "3"]
        assert names == ["vechnost-test"]
    finally:
        admin.close()
        await wire.disconnect()


def test_sentinel_and_tls_clients_keep_redis_py() -> None:
    sentinel = RedisEndpoint(
        password="pw", sentinel=SentinelTarget(addresses=(("127.0.0.1", 1),), master="m")
    )
    assert PipelinedConnection.for_client(connect_redis(sentinel)) is None
    tls = RedisEndpoint("127.0.0.1", 1, tls=True)
    assert PipelinedConnection.for_client(connect_redis(tls)) is None
