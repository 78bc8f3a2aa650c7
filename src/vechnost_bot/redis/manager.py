"""One local ``redis-server`` process: configure, spawn, wait for PING, stop, adopt.

The files it keeps in the data dir are listed in :mod:`vechnost_bot.redis.datadir`;
ports, pids and spawn arguments are in :mod:`vechnost_bot.redis.process`.

On POSIX the server is started with ``daemonize yes`` from a launcher spawned in
its own session: the server is re-parented away from us, so it survives the bot
(other bot processes, or the next run, adopt it) and no asyncio transport can
kill it when it is garbage-collected. On Windows it is a direct child in a new
process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import redis.asyncio as aioredis
import structlog
from redis.exceptions import AuthenticationError, BusyLoadingError, ResponseError
from redis.exceptions import RedisError as RedisClientError

from vechnost_bot.config import Settings
from vechnost_bot.errors import RedisDataDirError, RedisError, RedisStartError
from vechnost_bot.log import add_secret
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.datadir import (
    DataDirFiles,
    ensure_data_dir,
    file_size,
    read_int,
    read_tail,
    resolve_data_dir,
    write_private,
)
from vechnost_bot.redis.discovery import RedisBinary, find_binary, server_version
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.redis.process import (
    LOOPBACK,
    build_config,
    is_our_redis_process,
    is_port_free,
    is_windows,
    pick_free_port,
    pid_alive,
    spawn_arguments,
    wait_gone,
)

__all__ = [
    "RedisManager",
    "StartedBy",
    "StopHow",
    "Stopped",
    "UnresponsiveServer",
]

log = structlog.get_logger(__name__)

StartedBy = Literal["bot", "cli"]
StopHow = Literal["shutdown-save", "sigterm", "sigkill", "terminate", "already-exited"]
"""Which step of the stop sequence ended the server."""

_STOP_SHUTDOWN_WAIT = 10.0
# A local server answers PING in well under a millisecond; one that does not answer in
# this time gets SIGTERM, which makes Redis save and exit just as SHUTDOWN SAVE does.
_STOP_PING_TIMEOUT = 0.5
# adopt(): like the monitor, two missed PINGs before a live server counts as hung; each
# waits up to 1 s (less with a short health check interval, as the monitor's do).
_ADOPT_PING_TIMEOUT = 1.0
_ADOPT_PING_TIMEOUT_MIN = 0.5
_ADOPT_MISSES = 2
_ADOPT_RETRY_DELAY = 0.25
_STOP_TERM_WAIT = 5.0
_STOP_KILL_WAIT = 3.0
_BACKOFF_BASE = 0.25
_BACKOFF_CAP = 5.0
# Lines of redis-server's own log that mean "this start is failing".
_FATAL_RE = re.compile(
    r"Address already in use|FATAL|Fatal error|Aborting|Can't|Could not create|"
    r"Failed opening|Permission denied|Bad directive|Wrong number of arguments|"
    r"Invalid argument|Unrecoverable error|Bad file format"
)


@dataclass(frozen=True, slots=True)
class Stopped:
    """What :meth:`RedisManager.stop` did: which pid, and which step ended it."""

    pid: int
    port: int
    how: StopHow
    answered: bool
    """False when the server did not answer PING, so SHUTDOWN SAVE was not tried."""


@dataclass(frozen=True, slots=True)
class UnresponsiveServer:
    """Our own server in the data dir, alive but not answering two PINGs (hung)."""

    pid: int
    port: int
    password: str = field(repr=False)


def _reason_from(text: str) -> str | None:
    """The most telling line of a redis-server log excerpt, without its prefix."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if "FATAL CONFIG FILE ERROR" in line:
            # "Reading the configuration file, at line 2" / ">>> 'maxmemory lots'" / "why"
            detail = [item.removeprefix(">>> ") for item in lines[index + 1 : index + 4]]
            return (
                "bad config: " + " ".join(detail).replace("Reading the configuration file, ", "")
            )[:300]
    for line in reversed(lines):
        if _FATAL_RE.search(line):
            # "123:M 01 Jan 2026 10:00:00.000 # message" -> "message"
            return re.sub(r"^\d+:[A-Z] [^#*.-]*?\d\d:\d\d:\d\d\.\d+ [#*.-] ", "", line)[:300]
    if lines:
        return re.sub(r"^\d+:[A-Z] [^#*.-]*?\d\d:\d\d:\d\d\.\d+ [#*.-] ", "", lines[-1])[:300]
    return None


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
        self._data_dir = resolve_data_dir(settings.redis_data_dir)
        self._files = DataDirFiles(self._data_dir)
        self._preferred_port = port if port is not None else _port_from_url(settings.redis_url)
        self._binary = binary
        self._started_by: StartedBy = started_by
        self._platform = sys.platform if platform is None else platform
        self._password: str | None = None
        self._port: int | None = None
        self._pid: int | None = None
        self._owned = False
        self._started_monotonic: float | None = None
        self._client: aioredis.Redis | None = None
        self._child: asyncio.subprocess.Process | None = None
        self._last_error: str | None = None
        self._unresponsive: UnresponsiveServer | None = None

    # -- public facts ---------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._data_dir

    @property
    def files(self) -> DataDirFiles:
        return self._files

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def port(self) -> int | None:
        return self._port

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
        return self._pid is not None and pid_alive(self._pid)

    @property
    def endpoint(self) -> RedisEndpoint | None:
        """How to reach the managed server, or None when none is managed."""
        if self._port is None or self._pid is None:
            return None
        return RedisEndpoint(host=LOOPBACK, port=self._port, password=self._password)

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
                "redis_start_failed", error=str(error), data_dir=str(self._data_dir)
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
        try:
            return bool(await asyncio.wait_for(self._client.ping(), within))
        except (RedisClientError, OSError, TimeoutError) as error:
            self._last_error = f"PING failed: {error or type(error).__name__}"
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
        if self.running and self._port is not None:
            return
        ensure_data_dir(self._data_dir)
        if self._binary is None:
            self._binary = find_binary(self._settings.redis_server_bin)
        if self._binary.version is None and self._binary.origin == "REDIS_SERVER_BIN":
            # The operator named this file: prove it is Redis (one `--version`, a few ms)
            # before any file is written for it. Found binaries are checked only on failure.
            self._record_version(await server_version(self._binary.path))
        unchecked = self._binary.version is None
        try:
            password = self._load_or_create_password()
        except OSError as error:
            raise RedisDataDirError(self._data_dir, error.strerror or str(error)) from None
        attempts = self._settings.redis_max_startup_attempts
        preferred = self._port or self._preferred_port
        last: RedisStartError | None = None
        for attempt in range(1, attempts + 1):
            log.info("redis_startup_attempt", attempt=attempt, max_attempts=attempts)
            port = self._choose_port(preferred)
            try:
                await self._spawn_and_wait(port, password)
            except RedisStartError as error:
                if unchecked:
                    # A binary that is not Redis explains any failure better than its output:
                    # `--version` raises RedisBinaryInvalidError for /bin/false, a text file...
                    self._record_version(await server_version(self._binary.path))
                    unchecked = False
                last = error
                self._last_error = str(error)
                log.warning(
                    "redis_startup_attempt_failed",
                    attempt=attempt,
                    max_attempts=attempts,
                    port=port,
                    reason=error.reason or str(error),
                )
                if error.reason and "Address already in use" in error.reason:
                    preferred = None  # somebody else got the port: take any free one
                if attempt < attempts:
                    await asyncio.sleep(_backoff(attempt))
                continue
            return
        assert last is not None
        raise last

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
        if self.running and self._port is not None:
            return True
        pid = read_int(self._files.pid)
        state = self.state_file()
        port = state.get("port")
        password = self._read_password()
        if pid is None or password is None or not isinstance(port, int):
            return False
        if not pid_alive(pid):
            log.info("redis_stale_pid_file", pid=pid, reason="process not running")
            self._remove_pid_file(pid)
            return False
        ours = is_our_redis_process(pid, self._data_dir, port)
        if ours is False:
            log.warning(
                "redis_stale_pid_file",
                pid=pid,
                reason="pid belongs to another program; not adopted, not signalled",
            )
            self._remove_pid_file(pid)
            return False
        endpoint = RedisEndpoint(host=LOOPBACK, port=port, password=password)
        deadline = time.monotonic() + self._settings.redis_startup_timeout
        interval = self._settings.redis_health_check_interval
        timeout = min(_ADOPT_PING_TIMEOUT, max(_ADOPT_PING_TIMEOUT_MIN, interval))
        client = make_client(endpoint, timeout=timeout)
        misses = 0
        try:
            while misses < _ADOPT_MISSES:
                try:
                    info = await client.info("server")
                except BusyLoadingError:
                    if time.monotonic() > deadline:
                        log.info("redis_adopt_still_loading", pid=pid, port=port)
                        return False
                    await asyncio.sleep(0.1)
                    continue
                except (RedisClientError, OSError, TimeoutError) as error:
                    if _refuses_auth(error):
                        # It answers, but not to our password: not ours to adopt, not hung.
                        log.warning("redis_adopt_refused", pid=pid, port=port, error=str(error))
                        if ours:
                            # Our data dir's own server: a second one must never share the
                            # folder (AOF, RDB), so starting is refused too.
                            raise RedisStartError(
                                f"the redis-server of data dir {self._data_dir} (pid {pid}, "
                                f"port {port}) refuses the password stored there",
                                reason=f"stop it with `kill {pid}` (it saves on SIGTERM), "
                                "then start again",
                            ) from None
                        return False
                    # A timeout, a refused connection, BUSY (a script that does not end)…
                    misses += 1
                    log.info(
                        "redis_adopt_ping_failed",
                        pid=pid,
                        port=port,
                        miss=misses,
                        error=str(error) or type(error).__name__,
                    )
                    if misses < _ADOPT_MISSES:
                        await asyncio.sleep(_ADOPT_RETRY_DELAY)
                    continue
                if int(info.get("process_id", -1)) != pid:
                    log.warning(
                        "redis_stale_pid_file",
                        pid=pid,
                        reason="server on the stored port reports another pid; not adopted",
                    )
                    return False
                self._adopted(pid, port, password, str(info.get("redis_version", "")) or None)
                return True
        finally:
            await client.aclose()
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
        self._pid = hung.pid
        self._port = hung.port
        self._password = hung.password
        self._owned = False
        return await self.stop()

    async def restart(self) -> None:
        """Kill the managed server (dead, hung or alive) and start a new one on the same port."""
        await self.kill()
        await self.start()

    async def kill(self) -> None:
        """SIGKILL the managed server (a hung one ignores everything else)."""
        await self._drop_client()
        pid = self._pid
        if pid is not None and pid_alive(pid):
            await self._terminate(pid, graceful=False)
        if pid is not None:
            self._remove_pid_file(pid)
        self._pid = None

    async def stop(self) -> Stopped | None:
        """SHUTDOWN SAVE if it answers PING, else SIGCONT + SIGTERM; SIGKILL after a bounded wait.

        Safe twice (None when no server is managed). The pid file is removed; the
        data files are never touched.
        """
        pid = self._pid
        endpoint = self.endpoint
        await self._drop_client()
        self._pid = None
        self._owned = False
        if pid is None or endpoint is None:
            return None
        how: StopHow = "already-exited"
        answered = False
        if pid_alive(pid):
            answered = await _answers_ping(endpoint)
            if answered:
                how = await self._shutdown(pid, endpoint)
            else:
                log.warning("redis_server_not_answering", pid=pid, port=endpoint.port)
                how = await self._terminate(pid, graceful=True)
        exit_code = await self._reap_child()
        self._remove_pid_file(pid)
        log.info(
            "redis_server_stopped",
            pid=pid,
            port=endpoint.port,
            how=how,
            answered=answered,
            exit_code=exit_code,
            data_dir=str(self._data_dir),
        )
        return Stopped(pid=pid, port=endpoint.port, how=how, answered=answered)

    async def detach(self) -> None:
        """Forget the server without stopping it (it keeps running for others)."""
        await self._drop_client()
        if self._pid is not None:
            log.info("redis_server_left_running", pid=self._pid, port=self._port)
        self._pid = None
        self._owned = False
        self._child = None

    async def version(self) -> str | None:
        """The server's version from INFO, or the binary's when it does not answer."""
        info = await self.info("server")
        if info and info.get("redis_version"):
            return str(info["redis_version"])
        return self._binary.version if self._binary else None

    async def info(self, section: str = "server") -> dict[str, Any] | None:
        """INFO ``section`` from the managed server, or None when it does not answer."""
        endpoint = self.endpoint
        if endpoint is None:
            return None
        if self._client is None:
            self._client = make_client(endpoint, timeout=1.0)
        try:
            result: dict[str, Any] = await self._client.info(section)
        except (RedisClientError, OSError, TimeoutError):
            await self._drop_client()
            return None
        return result

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
        self._pid = pid
        self._port = port
        self._password = password
        self._owned = False
        if self._binary is None and version:
            self._binary = RedisBinary(path="", origin="PATH", version=version)
        log.info("redis_adopted", pid=pid, port=port, data_dir=str(self._data_dir))

    def _read_password(self) -> str | None:
        try:
            text = self._files.password.read_text(encoding="utf-8").strip()
        except OSError:
            return None
        if text:
            add_secret(text)
        return text or None

    def _load_or_create_password(self) -> str:
        password = self._read_password()
        if password is None:
            password = secrets.token_urlsafe(32)
            add_secret(password)
            write_private(self._files.password, password + "\n")
            log.info("redis_password_generated", path=str(self._files.password))
        elif os.name == "posix" and self._files.password.stat().st_mode & 0o077:
            self._files.password.chmod(0o600)
        self._password = password
        return password

    def _choose_port(self, preferred: int | None) -> int:
        if preferred is not None and 0 < preferred < 65536 and is_port_free(preferred):
            return preferred
        port = pick_free_port()
        if preferred is not None:
            log.info("redis_port_in_use_using_free_port", wanted=preferred, port=port)
        return port

    async def _spawn_and_wait(self, port: int, password: str) -> str:
        """Spawn redis-server on ``port``; wait for INFO; return the server's version."""
        assert self._binary is not None
        config = build_config(
            data_dir=self._data_dir,
            port=port,
            password=password,
            max_memory=self._settings.redis_max_memory,
            platform=self._platform,
        )
        try:
            write_private(self._files.config, config, atomic=False)
        except OSError as error:
            raise RedisDataDirError(self._data_dir, error.strerror or str(error)) from None
        with contextlib.suppress(OSError):
            self._files.pid.unlink()
        log_offset = file_size(self._files.log)
        argv, extra = spawn_arguments(self._platform, self._binary.path, self._files.config)
        started = time.monotonic()
        deadline = started + self._settings.redis_startup_timeout
        daemonized = not is_windows(self._platform)
        # POSIX: the launcher's output (config errors come before the log file opens) goes
        # through a pipe; the daemon re-points its stdio at /dev/null, so the pipe ends with
        # the launcher. Windows: the server is the child and keeps its stdio, so a file.
        output: int = (
            asyncio.subprocess.PIPE
            if daemonized
            else os.open(self._files.launch_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        )
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self._data_dir,
                **extra,
            )
        except OSError as error:
            raise RedisStartError(
                f"cannot run {self._binary.path}", reason=error.strerror or str(error)
            ) from None
        finally:
            if not daemonized:
                os.close(output)
        if not daemonized:
            self._child = process
        # Written while the server initialises (the pid is in redis.pid, written by it).
        self._write_state(port, time.time())
        endpoint = RedisEndpoint(host=LOOPBACK, port=port, password=password)
        client = make_client(endpoint, timeout=0.5)
        fatal_since: float | None = None
        next_log_check = started
        pid_file = self._files.pid
        try:
            while True:
                info = None
                # redis-server writes its pid file once it listens: until then a stat() is
                # all the waiting costs, so the wait does not compete with it for the CPU.
                try:
                    if pid_file.exists():
                        info = await client.info("server")
                except BusyLoadingError:
                    info = None
                except (AuthenticationError, ResponseError) as error:
                    if isinstance(error, ResponseError) and "AUTH" not in str(error):
                        raise
                    # Another server answers on the port with another password: ours lost the race.
                    await self._kill_unready(port)
                    raise RedisStartError(
                        "redis-server failed to start",
                        reason=f"Address already in use: port {port} is served by another program",
                    ) from None
                except (RedisClientError, OSError, TimeoutError):
                    info = None
                if info is not None:
                    pid = int(info.get("process_id", 0)) or read_int(self._files.pid)
                    if pid:
                        if daemonized:
                            # The launcher exits right after forking the server.
                            await _launcher_output(process)
                        version = str(info.get("redis_version") or "unknown")
                        if self._binary.version is None:
                            # It answered INFO with a version: it is Redis, and this is its version.
                            self._record_version(version)
                        self._ready(pid, port, password, started)
                        return version
                now = time.monotonic()
                if process.returncode is not None and (not daemonized or process.returncode != 0):
                    raise RedisStartError(
                        f"redis-server exited with code {process.returncode} while starting",
                        reason=self._reason(log_offset, await _launcher_output(process)),
                    )
                if now >= next_log_check and _FATAL_RE.search(
                    read_tail(self._files.log, log_offset)
                ):
                    fatal_since = fatal_since or now
                    if now - fatal_since > 0.3:
                        raise RedisStartError(
                            "redis-server failed to start",
                            reason=self._reason(log_offset, await _launcher_output(process)),
                        )
                if now >= next_log_check:
                    next_log_check = now + 0.02
                if now > deadline:
                    if daemonized and process.returncode is None:
                        process.kill()
                    await self._kill_unready(port)
                    raise RedisStartError(
                        "redis-server did not answer PING within "
                        f"{self._settings.redis_startup_timeout:g} s",
                        reason=self._reason(log_offset, await _launcher_output(process)),
                    )
                await asyncio.sleep(0.001 if now - started < 0.2 else 0.02)
        except asyncio.CancelledError:
            # Stopped while it starts (SIGTERM during start-up): no half-started child stays.
            if daemonized and process.returncode is None:
                process.kill()
            await asyncio.shield(self._kill_unready(port))
            raise
        finally:
            await client.aclose()

    async def _kill_unready(self, port: int) -> None:
        pid = read_int(self._files.pid)
        if pid is not None and is_our_redis_process(pid, self._data_dir, port) is not False:
            await self._terminate(pid, graceful=False)
        if self._child is not None and self._child.returncode is None:
            self._child.kill()
            await self._child.wait()

    def _ready(self, pid: int, port: int, password: str, started: float) -> None:
        self._pid = pid
        self._port = port
        self._password = password
        self._owned = True
        self._started_monotonic = started
        self._last_error = None
        if not self._files.pid.exists():
            write_private(self._files.pid, f"{pid}\n")
        log.info(
            "redis_server_ready",
            pid=pid,
            port=port,
            seconds=round(time.monotonic() - started, 3),
            data_dir=str(self._data_dir),
        )

    def _write_state(self, port: int, started_at: float) -> None:
        binary = self._binary
        state = {
            "port": port,
            "host": LOOPBACK,
            "started_by": self._started_by,
            "started_at": started_at,
            "binary": binary.path if binary else None,
        }
        write_private(self._files.state, json.dumps(state, indent=2) + "\n")

    def _reason(self, log_offset: int, launcher: str) -> str | None:
        if is_windows(self._platform):
            launcher = read_tail(self._files.launch_log)
        text = launcher + "\n" + read_tail(self._files.log, log_offset)
        return _reason_from(text)

    async def _shutdown(self, pid: int, endpoint: RedisEndpoint) -> StopHow:
        client = make_client(endpoint, timeout=_STOP_SHUTDOWN_WAIT)
        try:
            await client.shutdown(save=True)
        except (RedisClientError, OSError, TimeoutError) as error:
            # The connection drops as the server exits: that is the expected answer.
            log.debug("redis_shutdown_reply", error=str(error))
        finally:
            await client.aclose()
        if await wait_gone(pid, _STOP_SHUTDOWN_WAIT):
            return "shutdown-save"
        return await self._terminate(pid, graceful=True)

    async def _terminate(self, pid: int, *, graceful: bool) -> StopHow:
        """SIGTERM (when graceful) then SIGKILL, each with a bounded wait."""
        if is_windows(self._platform):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
            await wait_gone(pid, _STOP_KILL_WAIT)
            return "terminate"
        if graceful:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGTERM)
            if await wait_gone(pid, _STOP_TERM_WAIT):
                return "sigterm"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        await wait_gone(pid, _STOP_KILL_WAIT)
        return "sigkill"

    async def _reap_child(self) -> int | None:
        child, self._child = self._child, None
        if child is None:
            return None
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(child.wait(), _STOP_KILL_WAIT)
        return None

    def _remove_pid_file(self, pid: int) -> None:
        if read_int(self._files.pid) == pid:
            with contextlib.suppress(OSError):
                self._files.pid.unlink()

    async def _drop_client(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(RedisClientError, OSError, RuntimeError):
                await client.aclose()


async def _launcher_output(process: asyncio.subprocess.Process) -> str:
    """What the launcher printed, once it exited (empty for a direct child still running)."""
    if process.stdout is None:
        return ""
    try:
        output, _ = await asyncio.wait_for(process.communicate(), _STOP_KILL_WAIT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
    return output.decode("utf-8", errors="replace") if output else ""


def _refuses_auth(error: BaseException) -> bool:
    """True for NOAUTH / WRONGPASS / invalid password: the server answered, and said no."""
    if isinstance(error, AuthenticationError):
        return True
    return isinstance(error, ResponseError) and "AUTH" in str(error).upper()


async def _answers_ping(endpoint: RedisEndpoint) -> bool:
    """True when ``endpoint`` answers PING within ``_STOP_PING_TIMEOUT``."""
    client = make_client(endpoint, timeout=_STOP_PING_TIMEOUT)
    try:
        return bool(await asyncio.wait_for(client.ping(), _STOP_PING_TIMEOUT * 2))
    except (RedisClientError, OSError, TimeoutError):
        return False
    finally:
        await client.aclose()


def _backoff(attempt: int) -> float:
    """Exponential backoff with jitter: 0.25 s, 0.5 s, 1 s … capped at 5 s, plus up to 50 %."""
    base = min(_BACKOFF_CAP, _BACKOFF_BASE * float(2 ** (attempt - 1)))
    return base * (1 + random.random() / 2)


def _port_from_url(url: str) -> int | None:
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"}:
        return None
    try:
        return parts.port or 6379
    except ValueError:
        return None
