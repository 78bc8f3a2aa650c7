"""The data dir: resolved once (in :mod:`vechnost_bot.config`), every file in it named here.

Files in the data dir (secrets, config and state are 0600; the server runs with
umask 077, so its own files are private too):

``redis.conf``      generated config (loopback, port, ``requirepass``, AOF + RDB)
``redis.password``  the generated password, reused by every later start
``redis.pid``       pid of the running server (written by redis-server itself)
``redis.json``      what was started: port, binary, who started it, when
``redis.log``       the server's own log (``redis-launch.log``: early output, Windows)
``redis.lock``      the file lock that lets one process on the host start it
``redis-external.json``  the external ``REDIS_URL`` that answered (never replaced by ours)
``vechnost.log``    the bot's log when ``LOG_FILE`` is not set elsewhere
``journal.jsonl``   the storage's journal of memory-mode writes
``store/``          the storage's local store (:attr:`DataDir.local_store_dir`)
``appendonlydir/``, ``dump.rdb``  the data (never deleted by us)

Safety: a data dir that exists is used only when this user owns it and neither
group nor others can write it (it is never chmodded: the bot did not create it);
one the bot creates is 0700. Files are written through a new temporary file
(``O_EXCL | O_NOFOLLOW``) renamed over the old one, so a planted symlink is
replaced, never followed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import stat
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import structlog
from filelock import FileLock

from vechnost_bot.errors import RedisDataDirError, RedisStartError

__all__ = [
    "DataDir",
    "DataDirFiles",
    "data_dir_lock",
    "data_dir_problem",
    "ensure_data_dir",
    "file_size",
    "open_private_append",
    "read_int",
    "read_tail",
    "resolve_data_dir",
    "write_private",
]

log = structlog.get_logger(__name__)

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def resolve_data_dir(path: Path) -> Path:
    """The data dir as the OS sees it: ``~`` expanded, relative to the working dir, symlinks
    and ``..`` resolved. redis-server reports (and /proc shows) this real folder."""
    return path.expanduser().resolve()


@dataclass(frozen=True, slots=True)
class DataDir:
    """The data dir and every file in it (see the module doc)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", resolve_data_dir(self.root))

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
        """redis-server's own log."""
        return self.root / "redis.log"

    @property
    def launch_log(self) -> Path:
        return self.root / "redis-launch.log"

    @property
    def lock(self) -> Path:
        return self.root / "redis.lock"

    @property
    def external(self) -> Path:
        """Record of the external ``REDIS_URL`` that answered (see docs/redis.md)."""
        return self.root / "redis-external.json"

    @property
    def bot_log(self) -> Path:
        """The bot's own log file when ``LOG_FILE`` names no other place."""
        return self.root / "vechnost.log"

    @property
    def journal(self) -> Path:
        """The storage's journal of memory-mode writes."""
        return self.root / "journal.jsonl"

    @property
    def local_store_dir(self) -> Path:
        """The folder of the storage's local store (created by the storage)."""
        return self.root / "store"


DataDirFiles = DataDir
"""The earlier name of :class:`DataDir`."""


def data_dir_problem(path: Path) -> str | None:
    """Why an existing ``path`` must not be used as a data dir, with what to do; None if fine.

    Only POSIX has owners and modes to check; a missing folder is fine (it is created 0700).
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as error:
        return (
            f"cannot be read ({error.strerror or error}); set REDIS_DATA_DIR to a folder of yours"
        )
    if not stat.S_ISDIR(info.st_mode):
        return "a file is in the way of the folder; set REDIS_DATA_DIR to a folder path"
    if os.name != "posix":
        return None
    if info.st_uid != os.geteuid():
        return (
            f"it belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()}); "
            "set REDIS_DATA_DIR to a folder of this user's, e.g. unset it for the default"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022:
        return (
            f"group or others can write it (mode {mode:04o}), so they could plant or swap files; "
            f"run `chmod go-w {path}` or set REDIS_DATA_DIR to a private folder"
        )
    return None


def ensure_data_dir(path: Path) -> Path:
    """Create the data dir (0700), or check the existing one; raise :class:`RedisDataDirError`.

    An existing folder is never chmodded: one owned by another user, or writable by
    group or others, is refused with what to do.
    """
    path = resolve_data_dir(path)
    problem = data_dir_problem(path)
    if problem is not None:
        raise RedisDataDirError(path, problem)
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise RedisDataDirError(path, "a file is in the way of the folder") from None
    except OSError as error:
        raise RedisDataDirError(path, error.strerror or str(error)) from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise RedisDataDirError(path, "not writable by this user")
    return path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (0600): a new temporary file, renamed over the old one.

    The temporary file is created with ``O_EXCL | O_NOFOLLOW``, and the rename replaces
    a symlink at ``path`` instead of following it.
    """
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
    descriptor = os.open(temporary, flags, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise


def open_private_append(path: Path) -> int:
    """A descriptor appending to ``path``, created 0600 (``O_NOFOLLOW``: never via a symlink).

    An existing file of ours that others may read is narrowed to 0600.
    """
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW, 0o600)
    if os.name == "posix":
        info = os.fstat(descriptor)
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(descriptor, 0o600)
    return descriptor


@contextlib.asynccontextmanager
async def data_dir_lock(files: DataDir, wait: float) -> AsyncIterator[None]:
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
