"""``vechnost logs [-f] [-n N]``: the bot's log file, without Docker.

The file is ``LOG_FILE``; when unset, ``vechnost.log`` in the data dir
(``REDIS_DATA_DIR``), which is also where ``deploy.sh`` points ``LOG_FILE``.
``-f`` follows the file across the rotations ``RotatingFileHandler`` makes.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
from pathlib import Path
from typing import IO, Final

from vechnost_bot.config import Settings
from vechnost_bot.log import redact

__all__ = ["LOG_FILE_NAME", "command", "follow", "log_path", "tail"]

LOG_FILE_NAME: Final = "vechnost.log"  # the name DataDir.bot_log uses
_BLOCK: Final = 64 * 1024
_POLL_SECONDS: Final = 0.25


def log_path(settings: Settings) -> Path:
    """Where the bot writes its log: ``LOG_FILE``, else ``<data dir>/vechnost.log``."""
    if settings.log_file is not None:
        return settings.log_file
    return settings.data_dir.bot_log


def _last_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of one file, reading from the end in blocks."""
    if count <= 0:
        return []
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        data = b""
        while position > 0 and data.count(b"\n") <= count:
            step = min(_BLOCK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:]


def tail(path: Path, count: int) -> list[str]:
    """The last ``count`` lines, reaching into ``<path>.1`` when the file is short."""
    lines = _last_lines(path, count)
    rotated = path.with_name(path.name + ".1")
    if len(lines) < count and rotated.is_file():
        lines = _last_lines(rotated, count - len(lines)) + lines
    return lines


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except OSError:
        return None


def _emit(chunk: bytes, out: IO[str]) -> None:
    if chunk:
        out.write(redact(chunk.decode("utf-8", errors="replace")))
        out.flush()


def follow(
    path: Path,
    out: IO[str],
    *,
    stop: threading.Event | None = None,
    poll_seconds: float = _POLL_SECONDS,
    from_end: bool = True,
) -> None:
    """Print what is appended to ``path`` until ``stop`` is set (or forever).

    When the file is rotated (renamed and recreated) or truncated, the rest of
    the old file is printed and the new one is read from its start.
    """
    stop = stop or threading.Event()
    handle = path.open("rb")
    try:
        if from_end:
            handle.seek(0, os.SEEK_END)
        opened = os.fstat(handle.fileno())
        identity = (opened.st_dev, opened.st_ino)
        while not stop.is_set():
            _emit(handle.read(), out)
            current = _stat(path)
            if current is not None and (current.st_dev, current.st_ino) != identity:
                # Rotated: finish the old file, then start on the new one.
                _emit(handle.read(), out)
                try:
                    fresh = path.open("rb")
                except FileNotFoundError:  # renamed again in between: look again later
                    stop.wait(poll_seconds)
                    continue
                handle.close()
                handle = fresh
                opened = os.fstat(handle.fileno())
                identity = (opened.st_dev, opened.st_ino)
                continue
            if current is not None and current.st_size < handle.tell():
                handle.seek(0)  # truncated in place
                continue
            stop.wait(poll_seconds)
    finally:
        handle.close()


def command(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``vechnost logs``; 1 with a clear message when there is no log file."""
    path = log_path(settings)
    lines = int(getattr(args, "lines", 50))
    if lines < 0:
        print("vechnost logs: -n must be 0 or more", file=sys.stderr)
        return 2
    if not path.is_file():
        print(
            f"vechnost logs: no log file at {path}.\n"
            "The bot writes one when LOG_FILE is set (deploy.sh sets it to this path); "
            "if it runs in Docker, use `docker logs vechnost-bot`.",
            file=sys.stderr,
        )
        return 1
    try:
        for line in tail(path, lines):
            print(redact(line))
        sys.stdout.flush()
        if getattr(args, "follow", False):
            follow(path, sys.stdout)
    except BrokenPipeError:
        # The reader went away (`vechnost logs | head`): that is the end, not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0
