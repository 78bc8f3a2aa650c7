"""One exception tree for the whole program.

Every error the program raises on purpose derives from :class:`VechnostError`.
Messages say what happened and what to do; context travels as attributes.
``exit_code`` is what the CLI returns when the error reaches it.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "RedisBinaryNotFoundError",
    "RedisError",
    "RedisStartError",
    "StorageError",
    "TelegramTokenError",
    "VechnostError",
    "VersionConflictError",
]


class VechnostError(Exception):
    """Root of every error raised on purpose by Vechnost."""

    exit_code: int = 1


class ConfigError(VechnostError):
    """A setting is missing or has a value the program cannot use."""

    exit_code = 2

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class TelegramTokenError(ConfigError):
    """The bot token is missing, malformed or rejected by Telegram."""


class RedisError(VechnostError):
    """Something about the Redis server (not the storage calls) went wrong."""


class RedisBinaryNotFoundError(RedisError):
    """No redis-server binary could be found."""

    def __init__(self, searched: list[str] | None = None) -> None:
        super().__init__("Redis server binary not found. Please install Redis or use Docker.")
        self.searched = searched or []


class RedisStartError(RedisError):
    """A redis-server could not be started; ``reason`` comes from its own log."""

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message if reason is None else f"{message}: {reason}")
        self.reason = reason


class StorageError(VechnostError):
    """A storage call failed for a reason other than Redis being unavailable."""


class VersionConflictError(StorageError):
    """A record changed between read and write (optimistic concurrency)."""

    def __init__(self, key: str, expected: int, found: int) -> None:
        super().__init__(
            f"record {key} changed concurrently (expected version {expected}, found {found}); "
            "re-read and retry"
        )
        self.key = key
        self.expected = expected
        self.found = found
