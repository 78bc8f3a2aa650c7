"""The one way Vechnost builds a Redis client: fail fast, named after the process.

Every connection is named ``vechnost-<pid>`` (CLIENT SETNAME), so that a process
stopping an auto-started server can tell whether other Vechnost processes still
use it. The lifecycle, the probe, the CLI, doctor and the storage all build their
clients here, for TCP and unix socket endpoints alike.
"""

from __future__ import annotations

import inspect
import os
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from vechnost_bot.config import RedisEndpoint
from vechnost_bot.redis.sentinel import sentinel_client

__all__ = ["client_name", "make_client"]

# No CLIENT SETINFO on connect: one round trip less on every (re)connect, and no package
# metadata lookup per client (about 1 ms each in redis-py 8). redis-py 8 spells it
# ``driver_info=None``; 5.x to 7.x ``lib_name=None, lib_version=None``.
_NO_SETINFO: dict[str, Any] = (
    {"driver_info": None}
    if "driver_info" in inspect.signature(aioredis.Redis.__init__).parameters
    else {"lib_name": None, "lib_version": None}
)


def client_name(pid: int | None = None) -> str:
    """The CLIENT SETNAME of every connection a Vechnost process opens (``vechnost-<pid>``)."""
    return f"vechnost-{os.getpid() if pid is None else pid}"


def make_client(
    endpoint: RedisEndpoint, *, timeout: float = 1.0, name: str | None = None
) -> aioredis.Redis:
    """A redis.asyncio client for ``endpoint`` that fails fast: no retries, short timeouts.

    With ``endpoint.sentinel`` set, a client of the master those sentinels name
    (:mod:`vechnost_bot.redis.sentinel`)."""
    if endpoint.sentinel is not None:
        return sentinel_client(
            endpoint, timeout=timeout, name=name or client_name(), extra=_NO_SETINFO
        )
    if endpoint.socket_path is not None:
        return aioredis.Redis(
            unix_socket_path=endpoint.socket_path,
            db=endpoint.db,
            username=endpoint.username,
            password=endpoint.password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
            client_name=name or client_name(),
            **_NO_SETINFO,
        )
    return aioredis.Redis(
        host=endpoint.host,
        port=endpoint.port,
        db=endpoint.db,
        username=endpoint.username,
        password=endpoint.password,
        **endpoint.tls_kwargs(),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
        client_name=name or client_name(),
        **_NO_SETINFO,
    )
