"""The one answer to "what is at this Redis endpoint?".

:func:`probe` connects, PINGs and reads ``INFO server``, and classifies the
result by exception type (never by message text):

``answers``       PONG: version, pid and uptime from INFO; ``passwordless`` when it
                  answered without a password
``loading``       it is Redis, loading its data set (LOADING)
``auth_refused``  it is Redis and refuses our credentials (NOAUTH, WRONGPASS, NOPERM…)
``hung``          it accepted the connection but did not answer in time (SIGSTOP, BUSY)
``down``          nothing accepts a connection there
``not_redis``     something answers, but not in the Redis protocol

The monitor, adopt, ``vechnost redis status|ping`` and doctor all use it, so they
cannot classify one server differently.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import redis.asyncio as aioredis
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    InvalidResponse,
    NoPermissionError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError as RedisClientError
from redis.exceptions import TimeoutError as RedisTimeoutError

from vechnost_bot.config import RedisEndpoint
from vechnost_bot.errors import ConfigError
from vechnost_bot.redis.client import make_client

__all__ = [
    "CLUSTER_REFUSED",
    "Probe",
    "ProbeKind",
    "password_rejected_message",
    "probe",
    "refuse_cluster",
]

ProbeKind = Literal["answers", "loading", "auth_refused", "hung", "down", "not_redis"]


@dataclass(frozen=True, slots=True)
class Probe:
    """What :func:`probe` found at ``endpoint``."""

    kind: ProbeKind
    endpoint: RedisEndpoint
    detail: str
    version: str | None = None
    pid: int | None = None
    uptime_seconds: float | None = None
    latency_ms: float | None = None
    info: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def answers(self) -> bool:
        """True when it answered PING with our credentials."""
        return self.kind == "answers"

    @property
    def is_redis(self) -> bool:
        """True when a Redis server is there (answering, loading, refusing us or hung)."""
        return self.kind in {"answers", "loading", "auth_refused"}

    @property
    def cluster(self) -> bool:
        """True when it answered as a Redis Cluster node (``redis_mode:cluster``)."""
        return self.answers and self.info.get("redis_mode") == "cluster"

    @property
    def passwordless(self) -> bool:
        """True when it answered with no password: anyone on the host can read and write it."""
        return self.answers and self.endpoint.password is None


def password_rejected_message(endpoint: RedisEndpoint) -> str:
    """What the bot logs, and the CLI and doctor print, when REDIS_URL's password is refused."""
    return f"the Redis at {endpoint.where} rejected the password in REDIS_URL; fix the password"


CLUSTER_REFUSED = (
    "is a Redis Cluster node, which Vechnost does not support: its scripts touch keys in "
    "more than one slot and are pipelined to one node (docs/scaling.md, 'Why not Redis "
    "Cluster'); use one Redis, or a master with replicas and Sentinel (REDIS_SENTINELS)"
)


async def refuse_cluster(endpoint: RedisEndpoint, wait: float = 1.0) -> None:
    """Raise :class:`ConfigError` (exit 2) when ``endpoint`` answers as a Redis Cluster
    node; a server that does not answer is left to the lifecycle."""
    found = await probe(endpoint, wait)
    if found.cluster:
        variable = "REDIS_SENTINELS" if endpoint.sentinel is not None else "REDIS_URL"
        raise ConfigError(f"{variable} {endpoint.url()} {CLUSTER_REFUSED}", variable=variable)


async def _reachable(endpoint: RedisEndpoint, wait: float) -> str | None:
    """None when something accepts a connection at ``endpoint``, else why not."""
    try:
        if endpoint.socket_path is not None:
            opened = asyncio.open_unix_connection(endpoint.socket_path)
        else:
            opened = asyncio.open_connection(endpoint.host, endpoint.port)
        _reader, writer = await asyncio.wait_for(opened, wait)
    except (OSError, TimeoutError) as error:
        return str(error) or type(error).__name__
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return None


async def probe(
    endpoint: RedisEndpoint,
    wait: float = 1.0,
    *,
    client: aioredis.Redis | None = None,
    details: bool = False,
) -> Probe:
    """Classify ``endpoint`` (see the module doc) within about ``wait`` seconds per step.

    ``client``: an open client to reuse (the monitor's); else a fresh one is built and
    closed. ``details``: also INFO memory and DBSIZE (for ``redis status``).
    """
    if client is None and not endpoint.tls and endpoint.sentinel is None:
        # Nothing listening is the common case at first start: a bare connect says so.
        unreachable = await _reachable(endpoint, wait)
        if unreachable is not None:
            return Probe("down", endpoint, unreachable)
    own = client is None
    active = make_client(endpoint, timeout=wait) if client is None else client
    try:
        started = time.perf_counter()
        await asyncio.wait_for(active.ping(), wait * 2)
        latency = round((time.perf_counter() - started) * 1000, 3)
        info: dict[str, Any] = await asyncio.wait_for(active.info("server"), wait * 2)
        if details:
            info = {**info, **await asyncio.wait_for(active.info("memory"), wait * 2)}
            info["keys"] = await asyncio.wait_for(active.dbsize(), wait * 2)
    except BusyLoadingError as error:
        return Probe("loading", endpoint, str(error) or "loading")
    except (AuthenticationError, NoPermissionError) as error:
        return Probe("auth_refused", endpoint, str(error) or "authentication failed")
    except (TimeoutError, RedisTimeoutError) as error:
        return Probe("hung", endpoint, f"no answer within {wait:g} s ({error or 'timeout'})")
    except InvalidResponse as error:
        return Probe("not_redis", endpoint, f"not the Redis protocol ({error})")
    except ResponseError as error:
        # An error reply to PING or INFO that is not about auth (e.g. BUSY script): it
        # speaks Redis but cannot serve us; the callers treat it as a hang.
        return Probe("hung", endpoint, str(error))
    except (RedisConnectionError, OSError) as error:
        return Probe("down", endpoint, str(error) or type(error).__name__)
    except RedisClientError as error:
        return Probe("not_redis", endpoint, str(error) or type(error).__name__)
    finally:
        if own:
            with contextlib.suppress(RedisClientError, OSError, RuntimeError):
                await active.aclose()
    uptime = info.get("uptime_in_seconds")
    return Probe(
        "answers",
        endpoint,
        "PONG",
        version=str(info.get("redis_version") or "") or None,
        pid=int(info.get("process_id", 0)) or None,
        uptime_seconds=float(uptime) if isinstance(uptime, int | float) else None,
        latency_ms=latency,
        info=info,
    )
