"""Small helpers shared by the storage suites."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from tests.support.redis_server import RedisServer
from vechnost_bot.redis.events import RedisEndpoint, RedisEvent, RedisState

__all__ = ["endpoint_of", "event", "wait_until"]


def endpoint_of(server: RedisServer) -> RedisEndpoint:
    """The endpoint of a test server (with its current password)."""
    return RedisEndpoint("127.0.0.1", server.port, password=server.password)


def event(state: RedisState, endpoint: RedisEndpoint | None) -> RedisEvent:
    """A lifecycle event as the Redis manager would publish it."""
    return RedisEvent(state=state, previous="running", endpoint=endpoint, source="auto-started")


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> float:
    """Poll ``predicate`` every 5 ms; return the seconds it took, fail after ``timeout``."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(0.005)
    return time.monotonic() - started
