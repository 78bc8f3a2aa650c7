"""The one way Vechnost builds a Redis client: fail fast, named after the process.

Every connection is named ``vechnost-<pid>`` (CLIENT SETNAME), so that a process
stopping an auto-started server can tell whether other Vechnost processes still
use it. The lifecycle and the storage both build their clients here.
"""

from __future__ import annotations

import os

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from vechnost_bot.redis.events import RedisEndpoint

__all__ = ["client_name", "make_client"]


def client_name(pid: int | None = None) -> str:
    """The CLIENT SETNAME of every connection a Vechnost process opens (``vechnost-<pid>``)."""
    return f"vechnost-{os.getpid() if pid is None else pid}"


def make_client(
    endpoint: RedisEndpoint, *, timeout: float = 1.0, name: str | None = None
) -> aioredis.Redis:
    """A redis.asyncio client for ``endpoint`` that fails fast: no retries, short timeouts."""
    return aioredis.Redis(
        host=endpoint.host,
        port=endpoint.port,
        db=endpoint.db,
        username=endpoint.username,
        password=endpoint.password,
        ssl=endpoint.tls,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        client_name=name or client_name(),
    )
