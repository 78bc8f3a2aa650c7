"""OS processes and ports for the local Redis server: free ports, live pids, spawn arguments.

On POSIX the server is started with ``daemonize yes`` from a launcher spawned in
its own session; on Windows it is a direct child in a new process group with no
console (see :func:`build_config` and :func:`spawn_arguments`).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import time
from pathlib import Path
from typing import Any

from vechnost_bot.datadir import DataDir, resolve_data_dir

__all__ = [
    "LOOPBACK",
    "build_config",
    "is_our_redis_process",
    "is_port_free",
    "is_windows",
    "pick_free_port",
    "pid_alive",
    "spawn_arguments",
    "wait_gone",
]

LOOPBACK = "127.0.0.1"
_CREATE_NEW_PROCESS_GROUP = 0x00000200
_DETACHED_PROCESS = 0x00000008


def is_windows(platform: str) -> bool:
    """True when ``platform`` (a ``sys.platform`` value) is Windows."""
    return platform.startswith(("win32", "cygwin", "msys"))


def is_port_free(port: int, host: str = LOOPBACK) -> bool:
    """True when nothing listens on ``host:port`` (a bind test, like redis-server's own)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if os.name == "posix":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def pick_free_port(host: str = LOOPBACK) -> int:
    """A port on ``host`` that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` exists and is not a zombie."""
    if pid <= 0:
        return False
    if is_windows(sys.platform):
        # os.kill(pid, 0) would terminate the process on Windows; PING decides there.
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return True
    return fields[0] not in {"Z", "X"}


def _linux_process(pid: int) -> tuple[str, str | None] | None:
    """(command line, cwd) of ``pid`` from /proc, or None where /proc is missing."""
    proc = Path(f"/proc/{pid}")
    if not proc.is_dir():
        return None
    try:
        cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return None
    try:
        cwd: str | None = str((proc / "cwd").readlink())
    except OSError:
        cwd = None
    return cmdline.strip(), cwd


def is_our_redis_process(pid: int, data_dir: Path, port: int | None) -> bool | None:
    """Is ``pid`` a redis-server working in ``data_dir``? None when the OS cannot tell.

    redis-server changes into its ``dir`` and shows ``<binary> 127.0.0.1:<port>``
    as its title, so /proc says whether a pid from a pid file is still ours.
    """
    if not sys.platform.startswith("linux"):
        return None
    info = _linux_process(pid)
    if info is None:
        return None
    cmdline, cwd = info
    if not re.search(r"(redis|valkey|memurai|keydb)[-\w.]*", cmdline.split(" ", 1)[0]):
        return False
    data_dir = resolve_data_dir(data_dir)
    if cwd is not None and Path(cwd) != data_dir:
        return False
    if port is None or f":{port}" in cmdline:
        return True
    # With proc-title changes off, the command line still names our config file.
    return str(DataDir(data_dir).config) in cmdline


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def build_config(
    *,
    data_dir: Path,
    port: int,
    password: str,
    max_memory: str | None,
    platform: str,
    host: str = LOOPBACK,
) -> str:
    """The redis.conf text: loopback only, password, protected mode, AOF + RDB in ``data_dir``."""
    files = DataDir(data_dir)
    lines = [
        "# Written by vechnost; regenerated on every start. Do not edit.",
        f"bind {host}",
        f"port {port}",
        "protected-mode yes",
        f"requirepass {_quote(password)}",
        f"dir {_quote(str(data_dir))}",
        'dbfilename "dump.rdb"',
        "appendonly yes",
        "appendfsync everysec",
        "save 3600 1 300 100 60 10000",
        f"logfile {_quote(str(files.log))}",
        f"pidfile {_quote(str(files.pid))}",
        "loglevel notice",
        "tcp-keepalive 60",
    ]
    if not is_windows(platform):
        lines.append("daemonize yes")
    if max_memory:
        lines.append(f"maxmemory {max_memory}")
    return "\n".join(lines) + "\n"


def spawn_arguments(platform: str, binary: str, config: Path) -> tuple[list[str], dict[str, Any]]:
    """argv and the extra ``create_subprocess_exec`` keywords for ``platform``.

    POSIX: a new session, so no signal meant for the bot's group reaches Redis.
    Windows: a new process group with no console, the equivalent there.
    """
    argv = [binary, str(config)]
    if is_windows(platform):
        return argv, {"creationflags": _CREATE_NEW_PROCESS_GROUP | _DETACHED_PROCESS}
    return argv, {"start_new_session": True}


async def wait_gone(pid: int, within: float) -> bool:
    """Wait up to ``within`` seconds for ``pid`` to exit; True when it did."""
    deadline = time.monotonic() + within
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True
