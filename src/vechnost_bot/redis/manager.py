"""``RedisManager``: the seed's API over one server process, plus the adopt policy.

The process itself (config, spawn, ready, stop) is :mod:`vechnost_bot.redis.server`;
"what answers there" is :mod:`vechnost_bot.redis.probe`; the files are named by
:class:`vechnost_bot.datadir.DataDir`. This module decides which port and password
a start uses, how many attempts it gets, and whether a server found in the data
dir is ours to adopt.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError as RedisClientError

from vechnost_bot.config import RedisEndpoint, Settings
from vechnost_bot.datadir import DataDir, ensure_data_dir, read_int, write_private
from vechnost_bot.errors import RedisDataDirError, RedisError, RedisStartError
from vechnost_bot.log import add_secret
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.discovery import RedisBinary, find_binary, server_version
from vechnost_bot.redis.probe import probe
from vechnost_bot.redis.process import (
    LOOPBACK,
    is_our_redis_process,
    is_port_free,
    pick_free_port,
    pid_alive,
)
from vechnost_bot.redis.server import RedisServerProcess, StopHow, Stopped
from vechnost_bot.service import backoff

__all__ = ["RedisManager", "StartedBy", "StopHow", "Stopped", "UnresponsiveServer"]

log = structlog.get_logger(__name__)

StartedBy = Literal["bot", "cli"]

# adopt(): like the monitor, two missed PINGs before a live server counts as hung; each
# waits up to 1 s (less with a short health check interval, as the monitor's do).
_ADOPT_PING_TIMEOUT = 1.0
_ADOPT_PING_TIMEOUT_MIN = 0.5
_ADOPT_MISSES = 2
_ADOPT_RETRY_DELAY = 0.25


@dataclass(frozen=True, slots=True)
class UnresponsiveServer:
    """Our own server in the data dir, alive but not answering two PINGs (hung)."""

    pid: int
    port: int
    password: str = field(repr=False)


class RedisManager:
    """One local redis-server in the data dir: start, adopt, health check, stop.

    ``owned`` is True when this manager started the server, False when it
    adopted one already running. ``cleanup()`` (the seed's name) stops the
    server only when owned; ``stop()`` stops whatever server it manages.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        port: int | None = None,
        binary: RedisBinary | None = None,
        started_by: StartedBy = "bot",
        platform: str | None = None,
    ) -> None:
        self._settings = settings
        self._files = settings.data_dir
        target = settings.redis_target
        self._preferred_port = port
        if port is None and target.auto_start_can_serve:
            # Only a URL our server could be: never take the port of an external server.
            self._preferred_port = target.port
        self._binary = binary
        self._started_by: StartedBy = started_by
        self._platform = sys.platform if platform is None else platform
        self._server = RedisServerProcess(
            self._files,
            binary=binary.path if binary else "",
            platform=self._platform,
            startup_timeout=settings.redis_startup_timeout,
            max_memory=settings.redis_max_memory,
        )
        self._owned = False
        self._client: aioredis.Redis | None = None
        self._last_error: str | None = None
        self._unresponsive: UnresponsiveServer | None = None
        self._state: dict[str, Any] = {}

    # -- public facts ---------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._files.root

    @property
    def files(self) -> DataDir:
        return self._files

    @property
    def pid(self) -> int | None:
        return self._server.pid

    @property
    def port(self) -> int | None:
        return self._server.port

    @property
    def owned(self) -> bool:
        return self._owned

    @property
    def binary(self) -> RedisBinary | None:
        return self._binary

    @property
    def last_error(self) -> str | None:
        return self._last_error

    @property
    def unresponsive(self) -> UnresponsiveServer | None:
        """Our own server that the last :meth:`adopt` found alive but hung (not adopted)."""
        return self._unresponsive

    @property
    def running(self) -> bool:
        """True while a server is managed (started or adopted) and its pid is alive."""
        return self._server.alive

    @property
    def endpoint(self) -> RedisEndpoint | None:
        """How to reach the managed server, or None when none is managed."""
        return self._server.endpoint

    def open_pidfd(self) -> int | None:
        """A pidfd readable when the managed server exits (Linux), else None."""
        return self._server.open_pidfd()

    @property
    def recorded(self) -> dict[str, Any]:
        """``redis.json`` of the managed server as last written or read (no file access)."""
        return dict(self._state)

    def state_file(self) -> dict[str, Any]:
        """The contents of ``redis.json`` (empty when missing or unreadable)."""
        try:
            data = json.loads(self._files.state.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    # -- seed API ---------------------------------------------------------------------

    async def start_redis(self) -> bool:
        """Start Redis with retry logic; False (and the reason logged) when it fails."""
        try:
            await self.start()
        except RedisError as error:
            self._last_error = str(error)
            log.error(  # noqa: TRY400 - the message says what to do; no traceback
                "redis_start_failed", error=str(error), data_dir=str(self.data_dir)
            )
            return False
        return True

    async def health_check(self, within: float = 1.0) -> bool:
        """True when the managed server answers PING within ``within`` seconds."""
        endpoint = self.endpoint
        if endpoint is None:
            return False
        if self._client is None:
            self._client = make_client(endpoint, timeout=within)
        found = await probe(endpoint, within, client=self._client)
        if found.answers:
            return True
        self._last_error = f"PING failed: {found.detail}"
        await self._drop_client()
        return False

    async def cleanup(self) -> None:
        """Stop the server if this manager started it; leave an adopted one running."""
        if self._owned:
            await self.stop()
        else:
            await self.detach()

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Start a server, up to ``redis_max_startup_attempts`` tries with backoff.

        Raises :class:`RedisStartError`, :class:`RedisDataDirError`, or the
        discovery errors (binary missing or not Redis).
        """
        if self.running:
            return
        binary = await self._find_binary()
        unchecked = binary.version is None
        # File work in a thread: the event loop never waits on the disk.
        password = await asyncio.to_thread(self._prepare)
        attempts = self._settings.redis_max_startup_attempts
        preferred = self._server.port or self._preferred_port
        last: RedisStartError | None = None
        for attempt in range(1, attempts + 1):
            log.info("redis_startup_attempt", attempt=attempt, max_attempts=attempts)
            port = self._choose_port(preferred)
            await asyncio.to_thread(self._write_state, port)
            try:
                version = await self._server.start(port, password)
            except RedisStartError as error:
                if unchecked:
                    # A binary that is not Redis explains any failure better than its output:
                    # `--version` raises RedisBinaryInvalidError for /bin/false, a text file...
                    self._record_version(await server_version(binary.path))
                    unchecked = False
                last = error
                self._last_error = str(error)
                log.warning(
                    "redis_startup_attempt_failed",
                    attempt=attempt,
                    max_attempts=attempts,
                    port=port,
                    port_in_use=error.port_in_use,
                    exit_code=error.server_exit_code,
                    reason=error.reason or str(error),
                )
                if error.port_in_use:
                    preferred = None  # somebody else got the port: take any free one
                if attempt < attempts:
                    await asyncio.sleep(backoff(attempt))
                continue
            if unchecked:
                self._record_version(version)
            self._owned = True
            self._last_error = None
            return
        assert last is not None
        raise last

    def _prepare(self) -> str:
        """Create or check the data dir, and load (or create) the password."""
        ensure_data_dir(self.data_dir)
        try:
            return self._load_or_create_password()
        except OSError as error:
            raise RedisDataDirError(self.data_dir, error.strerror or str(error)) from None

    async def _find_binary(self) -> RedisBinary:
        if self._binary is None:
            self._binary = find_binary(self._settings.redis_server_bin)
            self._server.binary = self._binary.path
        if self._binary.version is None and self._binary.origin == "REDIS_SERVER_BIN":
            # The operator named this file: prove it is Redis (one `--version`, a few ms)
            # before any file is written for it. Found binaries are checked only on failure.
            self._record_version(await server_version(self._binary.path))
        return self._binary

    def _record_version(self, version: str) -> None:
        """Record the binary's version (from INFO of the started server, or ``--version``)."""
        binary = self._binary
        assert binary is not None
        self._binary = RedisBinary(path=binary.path, origin=binary.origin, version=version)
        log.info("redis_server_found", path=binary.path, origin=binary.origin, version=version)

    async def adopt(self) -> bool:
        """Adopt a server that a Vechnost process started earlier in this data dir.

        Needs the pid file, the stored password and port, a live pid that is
        really a redis-server in this data dir (checked through /proc on Linux),
        and a PING with the stored password whose INFO reports that same pid. A
        stale pid file is removed; its process is never signalled.

        Our own server that is alive but misses two PINGs in a row (hung, e.g.
        SIGSTOPped) is not adopted and not touched: it is recorded in
        :attr:`unresponsive`, and the caller decides (:meth:`stop_unresponsive`).
        """
        self._unresponsive = None
        if self.running:
            return True
        recorded = await asyncio.to_thread(self._recorded)
        if recorded is None:
            return False
        pid, port, password, alive, ours = recorded
        if not alive:
            log.info("redis_stale_pid_file", pid=pid, reason="process not running")
            await asyncio.to_thread(self._remove_pid_file, pid)
            return False
        if ours is False:
            log.warning(
                "redis_stale_pid_file",
                pid=pid,
                reason="pid belongs to another program; not adopted, not signalled",
            )
            await asyncio.to_thread(self._remove_pid_file, pid)
            return False
        endpoint = RedisEndpoint(host=LOOPBACK, port=port, password=password)
        deadline = time.monotonic() + self._settings.redis_startup_timeout
        interval = self._settings.redis_health_check_interval
        timeout = min(_ADOPT_PING_TIMEOUT, max(_ADOPT_PING_TIMEOUT_MIN, interval))
        misses = 0
        while misses < _ADOPT_MISSES:
            found = await probe(endpoint, timeout)
            if found.kind == "loading":
                if time.monotonic() > deadline:
                    log.info("redis_adopt_still_loading", pid=pid, port=port)
                    return False
                await asyncio.sleep(0.1)
                continue
            if found.kind == "auth_refused":
                # It answers, but not to our password: not ours to adopt, not hung.
                log.warning("redis_adopt_refused", pid=pid, port=port, error=found.detail)
                if ours:
                    # Our data dir's own server: a second one must never share the
                    # folder (AOF, RDB), so starting is refused too.
                    raise RedisStartError(
                        f"the redis-server of data dir {self.data_dir} (pid {pid}, "
                        f"port {port}) refuses the password stored there",
                        reason=f"stop it with `kill {pid}` (it saves on SIGTERM), then start again",
                        port=port,
                    )
                return False
            if found.answers:
                if found.pid != pid:
                    log.warning(
                        "redis_stale_pid_file",
                        pid=pid,
                        reason="server on the stored port reports another pid; not adopted",
                    )
                    return False
                self._adopted(pid, port, password, found.version)
                return True
            # Hung, down (it may be closing), or something else on the port.
            misses += 1
            log.info("redis_adopt_ping_failed", pid=pid, port=port, miss=misses, error=found.detail)
            if misses < _ADOPT_MISSES:
                await asyncio.sleep(_ADOPT_RETRY_DELAY)
        if ours and pid_alive(pid):
            self._unresponsive = UnresponsiveServer(pid=pid, port=port, password=password)
            log.warning("redis_server_not_answering", pid=pid, port=port, misses=misses)
        return False

    async def stop_unresponsive(self) -> Stopped | None:
        """Stop the hung server that :meth:`adopt` recorded (see :meth:`stop`); None if none.

        Afterwards :meth:`start` reuses its port, so clients find the new server
        where the old one was.
        """
        hung, self._unresponsive = self._unresponsive, None
        if hung is None:
            return None
        await self._drop_client()
        add_secret(hung.password)
        self._server.attach(hung.pid, hung.port, hung.password)
        self._owned = False
        return await self.stop()

    async def kill(self) -> None:
        """SIGKILL the managed server (a hung one ignores everything else)."""
        await self._drop_client()
        await self._server.kill()

    async def stop(self) -> Stopped | None:
        """Stop the managed server (see :meth:`RedisServerProcess.stop`); None if none.

        A server that cannot save is left running (``how="left-running"``) and stays
        managed, so a later stop can try again.
        """
        await self._drop_client()
        stopped = await self._server.stop()
        if stopped is None or stopped.how != "left-running":
            self._server.detach()
            self._owned = False
        return stopped

    async def detach(self) -> None:
        """Forget the server without stopping it (it keeps running for others)."""
        await self._drop_client()
        if self._server.pid is not None:
            log.info("redis_server_left_running", pid=self._server.pid, port=self._server.port)
        self._server.detach()
        self._owned = False

    async def version(self) -> str | None:
        """The server's version from INFO, or the binary's when it does not answer."""
        endpoint = self.endpoint
        if endpoint is not None:
            found = await probe(endpoint, 1.0)
            if found.version:
                return found.version
        return self._binary.version if self._binary else None

    async def __aenter__(self) -> Self:
        if not await self.adopt():
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.cleanup()

    # -- internals --------------------------------------------------------------------

    def _adopted(self, pid: int, port: int, password: str, version: str | None) -> None:
        add_secret(password)
        self._server.attach(pid, port, password)
        self._owned = False
        if self._binary is None and version:
            self._binary = RedisBinary(path="", origin="PATH", version=version)
        log.info("redis_adopted", pid=pid, port=port, data_dir=str(self.data_dir))

    def _recorded(self) -> tuple[int, int, str, bool, bool | None] | None:
        """(pid, port, password, pid alive, a redis-server in this data dir?) from the files,
        or None when the data dir records no server."""
        pid = read_int(self._files.pid)
        self._state = self.state_file()
        port = self._state.get("port")
        password = self._read_password()
        if pid is None or password is None or not isinstance(port, int):
            return None
        if not pid_alive(pid):
            return pid, port, password, False, None
        return pid, port, password, True, is_our_redis_process(pid, self.data_dir, port)

    def _read_password(self) -> str | None:
        try:
            text = self._files.password.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        add_secret(text)
        return text or None

    def _load_or_create_password(self) -> str:
        password = self._read_password()
        if password is None:
            password = secrets.token_urlsafe(32)
            add_secret(password)
            write_private(self._files.password, password + "\n")
            log.info("redis_password_generated", path=str(self._files.password))
        return password

    def _choose_port(self, preferred: int | None) -> int:
        if preferred is not None and 0 < preferred < 65536 and is_port_free(preferred):
            return preferred
        port = pick_free_port()
        if preferred is not None:
            log.info("redis_port_in_use_using_free_port", wanted=preferred, port=port)
        return port

    def _write_state(self, port: int) -> None:
        binary = self._binary
        state = {
            "port": port,
            "host": LOOPBACK,
            "started_by": self._started_by,
            "started_at": time.time(),
            "binary": binary.path if binary else None,
        }
        write_private(self._files.state, json.dumps(state, indent=2) + "\n")
        self._state = state

    def _remove_pid_file(self, pid: int) -> None:
        if read_int(self._files.pid) == pid:
            self._files.pid.unlink(missing_ok=True)

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except (RedisClientError, OSError, RuntimeError):
                log.debug("redis_client_close_failed")
