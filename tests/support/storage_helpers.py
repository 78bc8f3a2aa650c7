"""Small helpers shared by the storage suites."""

from __future__ import annotations

from tests.support.redis_server import RedisServer
from vechnost_bot.redis.events import RedisEndpoint, RedisEvent, RedisState

__all__ = ["endpoint_of", "event"]


def endpoint_of(server: RedisServer) -> RedisEndpoint:
    """The endpoint of a test server (with its current password)."""
    return RedisEndpoint("127.0.0.1", server.port, password=server.password)


def event(state: RedisState, endpoint: RedisEndpoint | None) -> RedisEvent:
    """A lifecycle event as the Redis manager would publish it."""
    return RedisEvent(state=state, previous="running", endpoint=endpoint, source="auto-started")
