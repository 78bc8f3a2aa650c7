"""The status snapshot: one typed shape, produced by the app, read by everyone.

``VechnostApp.snapshot()`` builds a :class:`Snapshot`; the health server serves it
as ``/status`` and derives ``/readyz`` from it; ``vechnost status`` prints it and
exits with :func:`exit_code_for`. The exit codes are defined here, once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal, TypedDict

__all__ = [
    "EXIT_DEGRADED",
    "EXIT_HEALTHY",
    "EXIT_NOT_RUNNING",
    "BotSnapshot",
    "OverallStatus",
    "RedisSnapshot",
    "Snapshot",
    "TelegramSnapshot",
    "exit_code_for",
    "section",
]

EXIT_HEALTHY: Final = 0
"""``vechnost status``: running on Redis and ok."""
EXIT_DEGRADED: Final = 1
"""``vechnost status``: running, but in memory mode, still starting, or with an error."""
EXIT_NOT_RUNNING: Final = 3
"""``vechnost status`` (and ``vechnost redis status``): nothing answers."""

OverallStatus = Literal["starting", "ok", "degraded"]


class RedisSnapshot(TypedDict):
    """The Redis lifecycle (``RedisAutoStartManager.status()``)."""

    state: str
    source: str | None
    pid: int | None
    port: int | None
    host: str | None
    socket: str | None
    version: str | None
    uptime_seconds: float | None
    restarts: int
    data_dir: str
    url: str | None
    last_error: str | None
    warning: str | None
    """A loud warning about the server in use (e.g. it has no password), with the fix."""
    passwordless: bool
    data_lost: int
    """How many times the epoch marker vanished (FLUSHALL, a new empty server)."""


class TelegramSnapshot(TypedDict):
    """Telegram polling: whether it runs and the last error Telegram gave."""

    polling: bool
    state: str
    """``starting`` · ``polling`` · ``retrying`` · ``stopped`` (set by the app)."""
    last_error: str | None
    last_error_at: float | None


class BotSnapshot(TypedDict):
    """The game bot's counters."""

    polling: bool
    updates_handled: int
    username: str
    cards_sent: int
    file_ids_reused: int


class Snapshot(TypedDict):
    """Everything ``/status`` serves and ``vechnost status`` prints."""

    status: OverallStatus
    version: str
    uptime_seconds: float
    pid: int
    bot: BotSnapshot
    telegram: TelegramSnapshot
    # The storage section belongs to HybridStorage.status(); its keys are its own.
    storage: Mapping[str, object]
    redis: RedisSnapshot | Mapping[str, object]


def section(snapshot: Mapping[str, object], name: str) -> Mapping[str, object]:
    """``snapshot[name]`` when it is a mapping (a snapshot read back from JSON), else {}."""
    value = snapshot.get(name)
    return value if isinstance(value, Mapping) else {}


def exit_code_for(snapshot: Mapping[str, object]) -> int:
    """0 when the bot runs on Redis and says ok; 1 otherwise (degraded/starting/error)."""
    if snapshot.get("status") == "ok" and section(snapshot, "storage").get("mode") == "redis":
        return EXIT_HEALTHY
    return EXIT_DEGRADED
