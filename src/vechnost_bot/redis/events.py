"""What the Redis lifecycle tells the rest of the program.

The lifecycle (``RedisAutoStartManager``) publishes a :class:`RedisEvent` on every
change of state; the storage layer subscribes to reconnect or to wake its probe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from vechnost_bot.config import RedisEndpoint

__all__ = [
    "RedisEndpoint",
    "RedisEvent",
    "RedisObserver",
    "RedisSource",
    "RedisState",
]

RedisSource = Literal["external", "auto-started", "adopted"]
"""Where the Redis in use comes from."""

RedisState = Literal[
    "initializing",  # initialize() has not finished
    "running",  # PING answers
    "restarting",  # a server we own died or hung and is being replaced
    "degraded",  # crash loop: restarts slowed down
    "down",  # an external server stopped answering; we retry, we never start a rival
    "unavailable",  # no Redis at all (no binary, start failed, auto-start off): memory mode
    "stopped",  # cleanup() ran
]


@dataclass(frozen=True, slots=True)
class RedisEvent:
    """One change of the lifecycle state."""

    state: RedisState
    previous: RedisState
    endpoint: RedisEndpoint | None
    source: RedisSource | None
    reason: str | None = None
    data_lost: bool = False
    """True when Redis lost our data (the epoch marker vanished): write back what you hold."""


RedisObserver = Callable[[RedisEvent], Awaitable[None] | None]
"""Called on every state change; may be a plain function or a coroutine function."""
