"""What the Redis lifecycle tells the rest of the program.

The lifecycle (``RedisAutoStartManager``) publishes a :class:`RedisEvent` on every
change of state; the storage layer subscribes to reconnect or to wake its probe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

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
class RedisEndpoint:
    """How to reach the Redis in use. ``password`` never shows in repr or logs."""

    host: str
    port: int
    db: int = 0
    password: str | None = field(default=None, repr=False)
    username: str | None = None
    tls: bool = False

    def url(self, *, redacted: bool = True) -> str:
        """A ``redis://`` URL; with the password masked unless ``redacted=False``."""
        scheme = "rediss" if self.tls else "redis"
        auth = ""
        if self.password is not None:
            secret = "***" if redacted else quote(self.password, safe="")
            auth = f"{quote(self.username or '', safe='')}:{secret}@"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{auth}{host}:{self.port}/{self.db}"


@dataclass(frozen=True, slots=True)
class RedisEvent:
    """One change of the lifecycle state."""

    state: RedisState
    previous: RedisState
    endpoint: RedisEndpoint | None
    source: RedisSource | None
    reason: str | None = None


RedisObserver = Callable[[RedisEvent], Awaitable[None] | None]
"""Called on every state change; may be a plain function or a coroutine function."""
