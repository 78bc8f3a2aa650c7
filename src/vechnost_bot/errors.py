"""One exception tree for the whole program.

Every error the program raises on purpose derives from :class:`VechnostError`.
Messages say what happened and what to do; context travels as attributes.
``exit_code`` is what the CLI returns when the error reaches it.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ConfigError",
    "ContentError",
    "NotRunningError",
    "RedisBinaryInvalidError",
    "RedisBinaryNotFoundError",
    "RedisDataDirError",
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
    """A redis-server could not be started; ``reason`` comes from its own log.

    ``server_exit_code``: the server's (or its launcher's) exit code when it exited
    (``exit_code`` is what the CLI returns, as for every error); ``port``: the port it
    tried; ``port_in_use``: another program holds that port (the next try takes a free one).
    """

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        server_exit_code: int | None = None,
        port: int | None = None,
        port_in_use: bool = False,
    ) -> None:
        super().__init__(message if reason is None else f"{message}: {reason}")
        self.reason = reason
        self.server_exit_code = server_exit_code
        self.port = port
        self.port_in_use = port_in_use


class RedisBinaryInvalidError(RedisError):
    """A binary was given or found that is not a working Redis server."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(
            f"{path} is not a usable Redis server ({problem}); "
            "point REDIS_SERVER_BIN at a redis-server binary or unset it"
        )
        self.path = path
        self.problem = problem


class RedisDataDirError(RedisError):
    """The data dir cannot be created or written."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(
            f"Redis data dir {path} is not usable ({problem}); "
            "set REDIS_DATA_DIR to a folder this user can write"
        )
        self.path = path
        self.problem = problem


class ContentError(VechnostError):
    """A deck file is missing, unreadable or inconsistent with the others."""

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(f"{message}; fix the card files under {path}")
        self.path = path


class NotRunningError(VechnostError):
    """Nothing (or something that is not Vechnost) answers on the health port."""

    exit_code = 3


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
