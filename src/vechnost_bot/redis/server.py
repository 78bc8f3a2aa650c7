"""One ``redis-server`` process, on its own (as mirakuru's ``Executor`` / ``TCPExecutor``).

:meth:`RedisServerProcess.start`: write the config → spawn in its own session →
wait until it answers ``INFO`` before a deadline. :meth:`RedisServerProcess.stop`:
``SHUTDOWN SAVE`` → ``SIGTERM`` → ``SIGKILL``, each bounded, and report how it
ended. Errors carry attributes (``reason``, ``server_exit_code``, ``port``,
``port_in_use``); callers branch on those, never on message text.

On POSIX the server is started with ``daemonize yes`` from a launcher spawned in
its own session (umask 077, so its data and log are private): the server is
re-parented away from us, so it survives the bot (other bot processes, or the
next run, adopt it). On Windows it is a direct child in a new process group.

A server that cannot save (full disk, MISCONF) refuses ``SHUTDOWN SAVE`` and
``SIGTERM`` alike; it holds acknowledged writes, so it is never SIGKILLed: the
stop waits a bounded time for the save to succeed, then leaves it running and
says so (``how="left-running"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from typing import Literal

import structlog
from redis.exceptions import RedisError as RedisClientError
from redis.exceptions import ResponseError

from vechnost_bot.config import RedisEndpoint
from vechnost_bot.datadir import DataDir, file_size, read_int, read_tail, write_private
from vechnost_bot.errors import RedisDataDirError, RedisStartError
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.probe import probe
from vechnost_bot.redis.process import (
    LOOPBACK,
    build_config,
    is_our_redis_process,
    is_port_free,
    is_windows,
    pid_alive,
    spawn_arguments,
    wait_gone,
)
from vechnost_bot.service import backoff

__all__ = ["RedisServerProcess", "StopHow", "Stopped"]

log = structlog.get_logger(__name__)

StopHow = Literal[
    "shutdown-save", "sigterm", "sigkill", "terminate", "already-exited", "left-running"
]
"""Which step of the stop sequence ended the server (``left-running``: it could not save)."""

_SHUTDOWN_WAIT = 10.0
_PING_TIMEOUT = 0.5
_TERM_WAIT = 5.0
_KILL_WAIT = 3.0
# How long a server that cannot save (full disk) gets to save before it is left running.
_SAVE_RETRY_WINDOW = 10.0
# Lines of redis-server's own log that mean "this start is failing" (so it is not waited
# for until the deadline); what failed is decided from exit codes and the port, not these.
_FATAL_RE = re.compile(
    r"FATAL|Fatal error|Aborting|Can't|Could not create|Failed opening|Permission denied|"
    r"Bad directive|Wrong number of arguments|Invalid argument|Unrecoverable error|"
    r"Bad file format|Address already in use"
)
_LOG_PREFIX_RE = re.compile(r"^\d+:[A-Z] [^#*.-]*?\d\d:\d\d:\d\d\.\d+ [#*.-] ")


@dataclass(frozen=True, slots=True)
class Stopped:
    """What :meth:`RedisServerProcess.stop` did: which pid, and which step ended it."""

    pid: int
    port: int
    how: StopHow
    answered: bool
    """False when the server did not answer PING, so SHUTDOWN SAVE was not tried."""
    exit_code: int | None = None
    reason: str | None = None
    """Why it was left running (``how="left-running"``)."""


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
            return _LOG_PREFIX_RE.sub("", line)[:300]
    return _LOG_PREFIX_RE.sub("", lines[-1])[:300] if lines else None


@dataclass(slots=True)
class RedisServerProcess:
    """One redis-server in ``files.root``: started here, or attached to by pid."""

    files: DataDir
    binary: str
    platform: str
    startup_timeout: float = 10.0
    max_memory: str | None = None
    pid: int | None = None
    port: int | None = None
    password: str | None = field(default=None, repr=False)
    exit_code: int | None = None
    _child: asyncio.subprocess.Process | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> RedisEndpoint | None:
        """How to reach it, or None when no server is running here."""
        if self.port is None or self.pid is None:
            return None
        return RedisEndpoint(host=LOOPBACK, port=self.port, password=self.password)

    @property
    def alive(self) -> bool:
        return self.pid is not None and pid_alive(self.pid)

    def attach(self, pid: int, port: int, password: str) -> None:
        """Take over a running server (adopted, or found hung) by its pid."""
        self.pid, self.port, self.password = pid, port, password
        self._child = None

    def open_pidfd(self) -> int | None:
        """A pidfd that becomes readable when the server exits (Linux ≥ 5.3), else None.

        Works for the daemonized server too, which is not our child.
        """
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is None or self.pid is None:
            return None
        try:
            return int(pidfd_open(self.pid))
        except OSError:
            return None

    # -- start ------------------------------------------------------------------------

    async def start(self, port: int, password: str) -> str:
        """Write the config, spawn, wait for INFO; return the server's version.

        Raises :class:`RedisStartError` (``reason``, ``server_exit_code``, ``port``,
        ``port_in_use``) or :class:`RedisDataDirError`.
        """
        config = build_config(
            data_dir=self.files.root,
            port=port,
            password=password,
            max_memory=self.max_memory,
            platform=self.platform,
        )
        log_offset = await asyncio.to_thread(self._write_config, config)
        process = await self._spawn()
        started = time.monotonic()
        endpoint = RedisEndpoint(host=LOOPBACK, port=port, password=password)
        try:
            return await self._wait_ready(process, endpoint, log_offset, started)
        except RedisStartError:
            await self._kill_unready(port)
            raise
        except asyncio.CancelledError:
            # Stopped while it starts (SIGTERM during start-up): no half-started server stays,
            # nor a launcher that never got as far as daemonizing.
            if process.returncode is None:
                process.kill()
                await asyncio.shield(process.wait())
            await asyncio.shield(self._kill_unready(port))
            raise

    def _write_config(self, config: str) -> int:
        """Write redis.conf, drop a stale pid file; the log's size (where this start begins)."""
        try:
            write_private(self.files.config, config)
        except OSError as error:
            raise RedisDataDirError(self.files.root, error.strerror or str(error)) from None
        with contextlib.suppress(OSError):
            self.files.pid.unlink()
        return file_size(self.files.log)

    async def _spawn(self) -> asyncio.subprocess.Process:
        argv, extra = spawn_arguments(self.platform, self.binary, self.files.config)
        daemonized = not is_windows(self.platform)
        # POSIX: the launcher's output (config errors come before the log file opens) goes
        # through a pipe; the daemon re-points its stdio at /dev/null, so the pipe ends with
        # the launcher. Windows: the server is the child and keeps its stdio, so a file.
        output: int = (
            asyncio.subprocess.PIPE
            if daemonized
            else os.open(self.files.launch_log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        )
        if daemonized:
            extra = {**extra, "umask": 0o077}
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.files.root,
                **extra,
            )
        except OSError as error:
            raise RedisStartError(
                f"cannot run {self.binary}", reason=error.strerror or str(error)
            ) from None
        finally:
            if not daemonized:
                os.close(output)
        self._child = None if daemonized else process
        return process

    async def _wait_ready(
        self,
        process: asyncio.subprocess.Process,
        endpoint: RedisEndpoint,
        log_offset: int,
        started: float,
    ) -> str:
        daemonized = not is_windows(self.platform)
        deadline = started + self.startup_timeout
        fatal_since: float | None = None
        next_log_check = started
        port = endpoint.port
        client = make_client(endpoint, timeout=0.5)
        try:
            while True:
                # redis-server writes its pid file once it listens: until then a stat() is
                # all the waiting costs, so the wait does not compete with it for the CPU.
                if self.files.pid.exists():
                    found = await probe(endpoint, 0.5, client=client)
                    if found.kind == "auth_refused":
                        # Another server answers on the port with another password.
                        raise RedisStartError(
                            "redis-server failed to start",
                            reason=f"port {port} is served by another program",
                            port=port,
                            port_in_use=True,
                        )
                    pid = (found.pid or read_int(self.files.pid)) if found.answers else None
                    if pid:
                        if daemonized:
                            await _launcher_output(process)  # it exits right after forking
                        self.pid, self.port, self.password = pid, port, endpoint.password
                        self.exit_code = None
                        if not self.files.pid.exists():
                            write_private(self.files.pid, f"{pid}\n")
                        log.info(
                            "redis_server_ready",
                            pid=pid,
                            port=port,
                            seconds=round(time.monotonic() - started, 3),
                            data_dir=str(self.files.root),
                        )
                        return found.version or "unknown"
                now = time.monotonic()
                code = process.returncode
                if code is not None and (not daemonized or code != 0):
                    self.exit_code = code
                    raise RedisStartError(
                        f"redis-server exited with code {code} while starting",
                        reason=self._reason(log_offset, await _launcher_output(process)),
                        server_exit_code=code,
                        port=port,
                        port_in_use=not is_port_free(port),
                    )
                if now >= next_log_check and _FATAL_RE.search(
                    read_tail(self.files.log, log_offset)
                ):
                    fatal_since = fatal_since or now
                    if now - fatal_since > 0.3:
                        raise RedisStartError(
                            "redis-server failed to start",
                            reason=self._reason(log_offset, await _launcher_output(process)),
                            port=port,
                            port_in_use=not is_port_free(port),
                        )
                if now >= next_log_check:
                    next_log_check = now + 0.02
                if now > deadline:
                    if daemonized and process.returncode is None:
                        process.kill()
                    raise RedisStartError(
                        f"redis-server did not answer PING within {self.startup_timeout:g} s",
                        reason=self._reason(log_offset, await _launcher_output(process)),
                        port=port,
                    )
                await asyncio.sleep(0.001 if now - started < 0.2 else 0.02)
        finally:
            await client.aclose()

    def _reason(self, log_offset: int, launcher: str) -> str | None:
        if is_windows(self.platform):
            launcher = read_tail(self.files.launch_log)
        return _reason_from(launcher + "\n" + read_tail(self.files.log, log_offset))

    async def _kill_unready(self, port: int) -> None:
        pid = read_int(self.files.pid)
        if pid is not None and is_our_redis_process(pid, self.files.root, port) is not False:
            await self._terminate(pid, graceful=False)
        child, self._child = self._child, None
        if child is not None and child.returncode is None:
            child.kill()
            self.exit_code = await child.wait()

    # -- stop -------------------------------------------------------------------------

    async def stop(self) -> Stopped | None:
        """SHUTDOWN SAVE if it answers PING, else SIGCONT + SIGTERM; SIGKILL after a bounded
        wait, unless it answers but cannot save (then it is left running). None when no
        server is here; safe twice. The data files are never touched."""
        pid, endpoint = self.pid, self.endpoint
        if pid is None or endpoint is None:
            return None
        how: StopHow = "already-exited"
        answered = False
        reason: str | None = None
        if pid_alive(pid):
            answered = (await probe(endpoint, _PING_TIMEOUT)).answers
            if answered:
                how, reason = await self._shutdown(pid, endpoint)
            else:
                log.warning("redis_server_not_answering", pid=pid, port=endpoint.port)
                how = await self._terminate(pid, graceful=True)
        if how == "left-running":
            log.error("redis_left_running", pid=pid, port=endpoint.port, reason=reason)
            return Stopped(pid=pid, port=endpoint.port, how=how, answered=True, reason=reason)
        exit_code = await self._reap_child()
        self._forget(pid)
        log.info(
            "redis_server_stopped",
            pid=pid,
            port=endpoint.port,
            how=how,
            answered=answered,
            exit_code=exit_code,
            data_dir=str(self.files.root),
        )
        return Stopped(pid=pid, port=endpoint.port, how=how, answered=answered, exit_code=exit_code)

    async def kill(self) -> None:
        """SIGKILL the server (a hung one ignores everything else); for dead or hung ones."""
        pid = self.pid
        if pid is not None and pid_alive(pid):
            await self._terminate(pid, graceful=False)
        await self._reap_child()
        if pid is not None:
            self._forget(pid)

    def detach(self) -> None:
        """Forget the server without stopping it."""
        self.pid = None
        self._child = None

    async def _shutdown(self, pid: int, endpoint: RedisEndpoint) -> tuple[StopHow, str | None]:
        """SHUTDOWN SAVE; a refused save is retried with backoff, then the server is left."""
        deadline = time.monotonic() + _SAVE_RETRY_WINDOW
        attempt = 0
        while True:
            attempt += 1
            client = make_client(endpoint, timeout=_SHUTDOWN_WAIT)
            refused: str | None = None
            try:
                await client.shutdown(save=True)
            except ResponseError as error:
                # An error *reply*: the server is up and could not save (disk full, dir gone).
                refused = str(error) or "SHUTDOWN SAVE refused"
            except (RedisClientError, OSError, TimeoutError) as error:
                # The connection drops as the server exits: that is the expected answer.
                log.debug("redis_shutdown_reply", error=str(error))
            finally:
                await client.aclose()
            if refused is None:
                if await wait_gone(pid, _SHUTDOWN_WAIT):
                    return "shutdown-save", None
                return await self._terminate(pid, graceful=True), None
            log.warning("redis_cannot_save", pid=pid, attempt=attempt, error=refused)
            if time.monotonic() + backoff(attempt) > deadline:
                return "left-running", (
                    f"it cannot save its data ({refused}); it still holds acknowledged writes, "
                    f"so it was not killed: free disk space in {self.files.root}, "
                    "then run `vechnost redis stop`"
                )
            await asyncio.sleep(backoff(attempt))

    async def _terminate(self, pid: int, *, graceful: bool) -> StopHow:
        """SIGTERM (when graceful) then SIGKILL, each with a bounded wait."""
        if is_windows(self.platform):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGTERM)
            await wait_gone(pid, _KILL_WAIT)
            return "terminate"
        if graceful:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGTERM)
            if await wait_gone(pid, _TERM_WAIT):
                return "sigterm"
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        await wait_gone(pid, _KILL_WAIT)
        return "sigkill"

    async def _reap_child(self) -> int | None:
        child, self._child = self._child, None
        if child is None:
            return None
        with contextlib.suppress(TimeoutError):
            self.exit_code = await asyncio.wait_for(child.wait(), _KILL_WAIT)
            return self.exit_code
        return None

    def _forget(self, pid: int) -> None:
        if read_int(self.files.pid) == pid:
            with contextlib.suppress(OSError):
                self.files.pid.unlink()
        self.pid = None


async def _launcher_output(process: asyncio.subprocess.Process) -> str:
    """What the launcher printed, once it exited (empty for a direct child still running)."""
    if process.stdout is None:
        return ""
    try:
        output, _ = await asyncio.wait_for(process.communicate(), _KILL_WAIT)
    except TimeoutError:
        process.kill()
        output, _ = await process.communicate()
    return output.decode("utf-8", errors="replace") if output else ""
