"""The one probe: every kind of answer, from real servers and real sockets."""

from __future__ import annotations

import asyncio

from tests.conftest import RedisFactory
from tests.support.redis_server import free_port
from vechnost_bot.config import RedisEndpoint
from vechnost_bot.redis.probe import probe
from vechnost_bot.service import backoff


async def test_answers_with_version_pid_and_passwordless_flag(redis_factory: RedisFactory) -> None:
    """A server that accepts us: answers, with its version and pid; passwordless only when
    it answered without a password."""
    protected = redis_factory(password="right-pass")
    found = await probe(RedisEndpoint("127.0.0.1", protected.port, password="right-pass"))
    assert found.kind == "answers"
    assert found.pid == protected.pid
    assert found.version
    assert not found.passwordless
    open_server = redis_factory()
    bare = await probe(RedisEndpoint("127.0.0.1", open_server.port))
    assert bare.answers
    assert bare.passwordless


async def test_refused_password_and_missing_password(redis_factory: RedisFactory) -> None:
    """WRONGPASS and NOAUTH are both auth_refused (by exception type, not message text)."""
    server = redis_factory(password="right-pass")
    wrong = await probe(RedisEndpoint("127.0.0.1", server.port, password="wrong"))
    assert wrong.kind == "auth_refused"
    assert wrong.is_redis
    missing = await probe(RedisEndpoint("127.0.0.1", server.port))
    assert missing.kind == "auth_refused"


async def test_hung_server_and_nothing_listening(redis_factory: RedisFactory) -> None:
    """SIGSTOPped: hung (connected, no answer in time). A free port: down."""
    server = redis_factory(password="pw-hung")
    server.pause()
    try:
        found = await probe(RedisEndpoint("127.0.0.1", server.port, password="pw-hung"), 0.3)
        assert found.kind == "hung"
    finally:
        server.resume()
    assert (await probe(RedisEndpoint("127.0.0.1", free_port()), 0.3)).kind == "down"


async def test_something_that_is_not_redis() -> None:
    """A TCP server answering HTTP is not_redis, not down and not hung."""

    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        found = await probe(RedisEndpoint("127.0.0.1", port), 0.5)
        assert found.kind == "not_redis"
        assert not found.is_redis
    finally:
        server.close()
        await server.wait_closed()


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    """backoff(): base, doubling, capped; the jitter only ever adds up to the fraction."""
    for attempt, floor in [(1, 0.25), (2, 0.5), (3, 1.0), (10, 5.0)]:
        samples = [backoff(attempt) for _ in range(50)]
        assert all(floor <= value <= floor * 1.5 for value in samples)
        assert len(set(samples)) > 1
    assert backoff(1, base=2.0, cap=3.0, jitter=0) == 2.0
    assert backoff(5, base=2.0, cap=3.0, jitter=0) == 3.0
