"""The data dir of the local Redis server: where it is, its files, its lock.

Files in the data dir (the dir itself is 0700; secrets and config are 0600):

``redis.conf``      generated config (loopback, port, ``requirepass``, AOF + RDB)
``redis.password``  the generated password, reused by every later start
``redis.pid``       pid of the running server (written by redis-server itself)
``redis.json``      what was started: port, binary, who started it, when
``redis.log``       the server's own log (``redis-launch.log``: early output, Windows)
``redis.lock``      the file lock that lets one process on the host start it
``appendonlydir/``, ``dump.rdb``  the data (never deleted by us)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import structlog
from filelock import FileLock

from vechnost_bot.errors import RedisDataDirError, RedisStartError

__all__ = [
    "DataDirFiles",
    "data_dir_lock",
    "ensure_data_dir",
    "file_size",
    "read_int",
    "read_tail",
    "resolve_data_dir",
    "write_private",
]

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class DataDirFiles:
    """Paths of everything the manager keeps in the data dir."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "redis.conf"

    @property
    def password(self) -> Path:
        return self.root / "redis.password"

    @property
    def pid(self) -> Path:
        return self.root / "redis.pid"

    @property
    def state(self) -> Path:
        return self.root / "redis.json"

    @property
    def log(self) -> Path:
        return self.root / "redis.log"

    @property
    def launch_log(self) -> Path:
        return self.root / "redis-launch.log"

    @property
    def lock(self) -> Path:
        return self.root / "redis.lock"


def resolve_data_dir(path: Path) -> Path:
    """The data dir as the OS sees it: ``~`` expanded, symlinks and ``..`` resolved.

    redis-server reports (and /proc shows) the real folder it works in, so every
    comparison with it, and every path we hand to it, uses this form.
    """
    return path.expanduser().resolve()


def ensure_data_dir(path: Path) -> Path:
    """Create the data dir (0700) or tighten it; raise :class:`RedisDataDirError` if unusable."""
    path = resolve_data_dir(path)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RedisDataDirError(path, "a file is in the way of the folder") from None
    except OSError as error:
        raise RedisDataDirError(path, error.strerror or str(error)) from None
    if not path.is_dir():
        raise RedisDataDirError(path, "not a folder")
    if os.name == "posix" and path.stat().st_mode & 0o077:
        try:
            path.chmod(0o700)
        except OSError as error:
            log.warning("redis_data_dir_permissions", path=str(path), error=str(error))
    if not os.access(path, os.W_OK | os.X_OK):
        raise RedisDataDirError(path, "not writable by this user")
    return path


def write_private(path: Path, text: str, *, atomic: bool = True) -> None:
    """Write ``text`` to ``path`` with mode 0600 (atomically replaced unless ``atomic=False``)."""
    if not atomic:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            if os.name == "posix":
                os.fchmod(handle.fileno(), 0o600)
            handle.write(text)
        return
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        if os.name == "posix":
            temporary.chmod(0o600)
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


@contextlib.asynccontextmanager
async def data_dir_lock(files: DataDirFiles, wait: float) -> AsyncIterator[None]:
    """Hold ``redis.lock`` in the data dir: the one process holding it starts or stops Redis.

    Acquired by non-blocking attempts polled from the event loop, so the loop never
    blocks and a cancelled waiter leaves no thread behind holding the lock.
    """
    lock = FileLock(files.lock, thread_local=False, mode=0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            lock.acquire(blocking=False)
            break
        except TimeoutError:
            if time.monotonic() > deadline:
                raise RedisStartError(
                    f"another process holds {files.lock} for more than {wait:g} s",
                    reason="lock busy; remove the file if no vechnost process runs",
                ) from None
            await asyncio.sleep(0.05)
    try:
        yield
    finally:
        lock.release()


def read_tail(path: Path, offset: int = 0, limit: int = 8192) -> str:
    """The last ``limit`` bytes of ``path`` after ``offset``, as text (empty if unreadable)."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(offset, size - limit) if size > offset else size)
            return handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def file_size(path: Path) -> int:
    """Size of ``path`` in bytes, 0 when it is missing or unreadable."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def read_int(path: Path) -> int | None:
    """The number written in ``path`` (a pid file), or None when missing or not a number."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
