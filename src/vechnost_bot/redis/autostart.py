"""The Redis policy: use an external server, adopt ours, or start one; then watch it.

Order in :meth:`RedisAutoStartManager.initialize`:

1. ``REDIS_URL`` answers PING with its credentials → source ``external``, start nothing.
2. ``REDIS_AUTO_START`` is false → state ``unavailable`` (the bot runs from memory).
3. Under a file lock in the data dir (so that one process on the host starts the
   server and the others adopt it): adopt the server recorded there (``adopted``)
   or start one (``auto-started``). Our own server there that misses two PINGs
   (hung) is stopped first, and the new one takes its port.

The monitor then PINGs every ``redis_health_check_interval``: a server we
started or adopted that died or hangs is replaced on the same port with the
same password; five restarts within a minute mean a crash loop (state
``degraded``, restarts slowed down). An external server that stops answering is
``down``: reported and retried, never replaced by a rival on its port.

Shared servers: every connection is named ``vechnost-<pid>``. :meth:`stop`
shuts the server down only when no other live Vechnost process is connected to
it (and it was not started by ``vechnost redis start``); otherwise it is left
running and the others keep using it (and adopt it on their next start).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import time
from collections import deque
from pathlib import Path
from typing import ClassVar, Literal
from urllib.parse import unquote, urlsplit

import structlog
from redis.exceptions import AuthenticationError, ResponseError
from redis.exceptions import RedisError as RedisClientError

from vechnost_bot.config import Settings
from vechnost_bot.errors import RedisBinaryNotFoundError, RedisError, RedisStartError
from vechnost_bot.log import add_secret
from vechnost_bot.metrics import REDIS_RESTARTS, REDIS_STATE_CHANGES, REDIS_UP
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.datadir import DataDirFiles, data_dir_lock, ensure_data_dir
from vechnost_bot.redis.events import (
    RedisEndpoint,
    RedisEvent,
    RedisObserver,
    RedisSource,
    RedisState,
)
from vechnost_bot.redis.manager import RedisManager
from vechnost_bot.redis.process import pid_alive
from vechnost_bot.service import Service

__all__ = [
    "RedisAutoStartManager",
    "endpoint_from_url",
    "other_vechnost_clients",
    "password_rejected_message",
]

log = structlog.get_logger(__name__)

_Probe = Literal["ok", "auth", "down"]
_CLIENT_NAME_RE = re.compile(r"^vechnost-(\d+)$")
_OBSERVER_TIMEOUT = 5.0
_MONITOR_STOP_TIMEOUT = 5.0
_STOP_LOCK_TIMEOUT = 5.0


def endpoint_from_url(url: str) -> RedisEndpoint | None:
    """The endpoint a ``redis://`` / ``rediss://`` URL names (None for ``unix://``)."""
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"} or not parts.hostname:
        return None
    db = parts.path.lstrip("/")
    password = unquote(parts.password) if parts.password is not None else None
    username = unquote(parts.username) if parts.username else None
    if password is not None:
        add_secret(password)
    return RedisEndpoint(
        host=parts.hostname,
        port=parts.port or 6379,
        db=int(db) if db.isdigit() else 0,
        password=password or None,
        username=username,
        tls=parts.scheme == "rediss",
    )


def password_rejected_message(endpoint: RedisEndpoint) -> str:
    """What the bot logs, and the CLI and doctor print, when REDIS_URL's password is refused."""
    return (
        f"the Redis at {endpoint.host}:{endpoint.port} rejected the password in REDIS_URL; "
        "fix the password"
    )


async def other_vechnost_clients(endpoint: RedisEndpoint, *, wait: float = 1.0) -> list[int]:
    """Pids of other live Vechnost processes connected to the server (``vechnost-<pid>``)."""
    own = os.getpid()
    client = make_client(endpoint, timeout=wait)
    try:
        clients = await client.client_list()
    finally:
        await client.aclose()
    pids: set[int] = set()
    for entry in clients:
        match = _CLIENT_NAME_RE.match(str(entry.get("name", "")))
        if match and int(match.group(1)) != own and pid_alive(int(match.group(1))):
            pids.add(int(match.group(1)))
    return sorted(pids)


class RedisAutoStartManager(Service):
    """High-level Redis auto-start manager with fallback strategy (see module doc)."""

    # Managers of this process using a local server, by data dir (tests run several).
    _users: ClassVar[dict[Path, set[int]]] = {}

    def __init__(
        self,
        settings: Settings,
        *,
        crash_loop_restarts: int = 5,
        crash_loop_window: float = 60.0,
        degraded_backoff: float = 30.0,
        retry_interval: float | None = None,
    ) -> None:
        self._settings = settings
        self._external = endpoint_from_url(settings.redis_url)
        self._manager = RedisManager(settings, port=self._external.port if self._external else None)
        self._files = DataDirFiles(self._manager.data_dir)
        self._crash_loop_restarts = crash_loop_restarts
        self._crash_loop_window = crash_loop_window
        self._degraded_backoff = degraded_backoff
        self._retry_interval = retry_interval or max(30.0, settings.redis_health_check_interval)
        self._state: RedisState = "initializing"
        self._source: RedisSource | None = None
        self._endpoint: RedisEndpoint | None = None
        self._observers: list[RedisObserver] = []
        self._restarts = 0
        self._restart_times: deque[float] = deque()
        self._ping_failures = 0
        self._last_error: str | None = None
        self._version: str | None = None
        self._external_pid: int | None = None
        self._server_since: float | None = None
        self._last_recovery = 0.0
        self._monitor_task: asyncio.Task[None] | None = None
        self._wake_event: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._stopped = False

    # -- facts ------------------------------------------------------------------------

    @property
    def endpoint(self) -> RedisEndpoint | None:
        """Where Redis is usable right now, or None (memory mode)."""
        return self._endpoint

    @property
    def state(self) -> RedisState:
        return self._state

    @property
    def source(self) -> RedisSource | None:
        return self._source

    @property
    def manager(self) -> RedisManager:
        """The process-level manager of the local server (started or adopted)."""
        return self._manager

    def subscribe(self, observer: RedisObserver) -> None:
        """Call ``observer`` with a :class:`RedisEvent` on every change of state."""
        self._observers.append(observer)

    def status(self) -> dict[str, object]:
        """JSON-safe facts for ``vechnost status``; the password is masked."""
        local = self._source in {"auto-started", "adopted"}
        pid = self._manager.pid if local else self._external_pid
        uptime = None
        if self._server_since is not None and self._state in {"running", "degraded"}:
            uptime = round(time.monotonic() - self._server_since, 1)
        return {
            "state": self._state,
            "source": self._source,
            "pid": pid,
            "port": self._endpoint.port if self._endpoint else None,
            "host": self._endpoint.host if self._endpoint else None,
            "version": self._version,
            "uptime_seconds": uptime,
            "restarts": self._restarts,
            "data_dir": str(self._manager.data_dir),
            "url": self._endpoint.url(redacted=True) if self._endpoint else None,
            "last_error": self._last_error,
        }

    # -- lifecycle ----------------------------------------------------------------------

    async def initialize(self) -> bool:
        """Initialize Redis with auto-start and fallback; True when Redis is usable."""
        log.info(
            "initializing_redis_auto_start",
            auto_start=self._settings.redis_auto_start,
            url=self._external.url() if self._external else self._settings.redis_url,
            data_dir=str(self._manager.data_dir),
        )
        ok = await self._acquire(first=True)
        if ok:
            log.info(
                "redis_started_successfully"
                if self._source == "auto-started"
                else "redis_connected",
                source=self._source,
                pid=self.status()["pid"],
                port=self._endpoint.port if self._endpoint else None,
                version=self._version,
            )
        return ok

    async def start(self) -> None:
        """initialize(), then start the monitor task."""
        self._stopped = False
        self._wake_event = asyncio.Event()
        self._stopping = asyncio.Event()
        await self.initialize()
        self._monitor_task = asyncio.create_task(self._monitor(), name="redis-monitor")

    async def stop(self) -> None:
        """Stop the monitor, then cleanup(). Safe twice."""
        if self._stopping is not None:
            self._stopping.set()
        if self._wake_event is not None:
            self._wake_event.set()
        task, self._monitor_task = self._monitor_task, None
        if task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), _MONITOR_STOP_TIMEOUT)
            if not task.done():
                task.cancel("redis lifecycle stopping: monitor did not finish in time")
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.cleanup()

    async def cleanup(self) -> None:
        """Stop only what this program started, and only when no other Vechnost uses it."""
        if self._stopped:
            return
        self._stopped = True
        endpoint = self._manager.endpoint
        if self._source in {"auto-started", "adopted"} and endpoint is not None:
            await self._release_local(endpoint)
        self._endpoint = None
        await self._set_state("stopped", reason="cleanup")

    async def wake(self) -> None:
        """Ask the monitor to check Redis now (e.g. when storage sees errors)."""
        if self._wake_event is not None:
            self._wake_event.set()

    # -- acquisition ----------------------------------------------------------------------

    async def _acquire(self, *, first: bool) -> bool:
        """Find Redis: external, else (auto-start on) adopt or start under the lock."""
        if self._external is not None:
            probe, detail = await self._probe(self._external)
            if probe == "ok":
                self._endpoint = self._external
                self._source = "external"
                await self._set_state("running")
                return True
            if probe == "auth" and self._external.password is not None:
                reason = f"{password_rejected_message(self._external)} (staying in memory mode)"
                log.error("redis_connection_failed", url=self._external.url(), reason=reason)
                return await self._fallback(reason, first=first)
            if first or self._state != "unavailable":
                log.warning(
                    "redis_connection_failed",
                    url=self._external.url(),
                    reason=detail
                    if probe == "down"
                    else f"{detail}: another program owns this port; it is left alone",
                )
        if not self._settings.redis_auto_start:
            return await self._fallback(
                "REDIS_URL does not answer and REDIS_AUTO_START is false", first=first
            )
        log.info("starting_redis_instance", data_dir=str(self._manager.data_dir))
        try:
            ensure_data_dir(self._manager.data_dir)
            async with self._locked():
                source = await self._adopt_or_start()
        except RedisBinaryNotFoundError as error:
            if first or self._state != "unavailable":  # retries do not repeat the error
                log.error(  # noqa: TRY400 - a known condition, a traceback would only confuse
                    "redis_server_not_found", message=str(error), searched=error.searched
                )
            return await self._fallback(str(error), first=first)
        except RedisError as error:
            if first or self._state != "unavailable":
                log.error("redis_auto_start_failed", error=str(error))  # noqa: TRY400 - message says it all
            return await self._fallback(str(error), first=first)
        self._use_local(source)
        await self._set_state("running")
        return True

    async def _adopt_or_start(self) -> RedisSource:
        manager = self._manager
        if await manager.adopt():
            return "adopted"
        if manager.unresponsive is not None:
            # Our own server, alive but it missed two PINGs: stop it (SIGCONT + SIGTERM lets
            # it save; SIGKILL after the bounded wait) and start its replacement on its port.
            stopped = await manager.stop_unresponsive()
            log.warning(
                "redis_hung_server_replaced",
                pid=stopped.pid if stopped else None,
                how=stopped.how if stopped else None,
            )
        await manager.start()
        return "auto-started"

    def _use_local(self, source: RedisSource) -> None:
        self._users.setdefault(self._manager.data_dir, set()).add(id(self))
        self._source = source
        self._endpoint = self._manager.endpoint
        binary = self._manager.binary
        self._version = binary.version if binary else None
        state = self._manager.state_file()
        started_at = state.get("started_at")
        if isinstance(started_at, int | float):
            self._server_since = time.monotonic() - max(0.0, time.time() - started_at)
        else:
            self._server_since = time.monotonic()
        self._ping_failures = 0
        self._last_error = None

    async def _fallback(self, reason: str, *, first: bool) -> bool:
        self._last_error = reason
        self._endpoint = None
        if first or self._state != "unavailable":
            log.warning("redis_auto_start_failed_fallback_to_memory", reason=reason)
        await self._set_state("unavailable", reason=reason)
        return False

    async def _probe(self, endpoint: RedisEndpoint) -> tuple[_Probe, str]:
        """PING (and INFO) ``endpoint`` with its credentials."""
        if not endpoint.tls:
            # Nothing listening is the common case at first start: a bare connect says so
            # without building a client.
            try:
                _reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(endpoint.host, endpoint.port), self._ping_timeout()
                )
            except (OSError, TimeoutError) as error:
                return "down", str(error) or type(error).__name__
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        client = make_client(endpoint, timeout=self._ping_timeout())
        try:
            await client.ping()
            info = await client.info("server")
        except AuthenticationError as error:
            return "auth", str(error) or "authentication failed"
        except ResponseError as error:
            text = str(error)
            if "NOAUTH" in text or "WRONGPASS" in text or "AUTH" in text:
                return "auth", text
            return "down", text
        except (RedisClientError, OSError, TimeoutError) as error:
            return "down", str(error) or type(error).__name__
        finally:
            await client.aclose()
        self._version = str(info.get("redis_version") or "") or None
        self._external_pid = int(info.get("process_id", 0)) or None
        uptime = info.get("uptime_in_seconds")
        since = time.monotonic() - float(uptime) if isinstance(uptime, int | float) else None
        self._server_since = since if since is not None else time.monotonic()
        return "ok", "PONG"

    def _locked(self, wait: float | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the data dir's file lock (see :func:`data_dir_lock`)."""
        if wait is None:
            settings = self._settings
            wait = settings.redis_startup_timeout * settings.redis_max_startup_attempts + 10
        return data_dir_lock(self._files, wait)

    async def _release_local(self, endpoint: RedisEndpoint) -> None:
        """cleanup() for a local server: stop it, or leave it to the others still using it."""
        manager = self._manager
        users = self._users.get(manager.data_dir, set())
        users.discard(id(self))
        if users:
            log.info("redis_left_running_for_other_clients", clients=len(users), same_process=True)
            await manager.detach()
            return
        try:
            async with self._locked(wait=_STOP_LOCK_TIMEOUT):
                started_by = manager.state_file().get("started_by")
                if started_by == "cli" and not manager.owned:
                    log.info("redis_left_running", reason="started by `vechnost redis start`")
                    await manager.detach()
                    return
                try:
                    others = await other_vechnost_clients(endpoint)
                except (RedisClientError, OSError, TimeoutError):
                    others = []
                if others:
                    log.info("redis_left_running_for_other_clients", clients=len(others))
                    await manager.detach()
                    return
                await manager.stop()
        except RedisStartError as error:
            log.warning("redis_left_running", reason=str(error))
            await manager.detach()

    # -- monitor ------------------------------------------------------------------------------

    def _interval(self) -> float:
        return float(self._settings.redis_health_check_interval)

    def _ping_timeout(self) -> float:
        return min(2.0, max(0.5, self._interval()))

    async def _monitor(self) -> None:
        assert self._wake_event is not None
        assert self._stopping is not None
        wake, stopping = self._wake_event, self._stopping
        while not stopping.is_set():
            # After a missed PING, look again soon rather than a whole interval later.
            wait = min(self._interval(), 0.25) if self._ping_failures else self._interval()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), wait)
            wake.clear()
            if stopping.is_set():
                break
            try:
                await self._check(stopping)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the monitor must outlive any one failure
                self._last_error = str(error)
                log.exception("redis_monitor_error", error=str(error))

    async def _check(self, stopping: asyncio.Event) -> None:
        if self._state == "unavailable":
            if time.monotonic() - self._last_recovery >= self._retry_interval:
                self._last_recovery = time.monotonic()
                await self._acquire(first=False)
            return
        if self._source == "external":
            await self._check_external()
            return
        if self._source in {"auto-started", "adopted"}:
            await self._check_local(stopping)

    async def _check_external(self) -> None:
        assert self._external is not None
        probe, detail = await self._probe(self._external)
        if probe == "ok":
            if self._state != "running":
                await self._set_state("running")
            return
        self._last_error = detail
        if self._state != "down":
            log.warning("redis_connection_failed", url=self._external.url(), reason=detail)
            await self._set_state("down", reason=detail)

    async def _check_local(self, stopping: asyncio.Event) -> None:
        manager = self._manager
        alive = manager.running
        if alive and await manager.health_check(self._ping_timeout()):
            self._ping_failures = 0
            if self._state != "running":
                await self._set_state("running")
            return
        if alive:
            self._ping_failures += 1
            if self._ping_failures < 2 and self._state == "running":
                return  # one missed PING is not yet a hang
            reason = f"redis-server pid {manager.pid} does not answer PING (hung)"
        else:
            reason = f"redis-server pid {manager.pid} is gone"
        await self._restart(reason, stopping)

    async def _restart(self, reason: str, stopping: asyncio.Event) -> None:
        now = time.monotonic()
        window = self._restart_times
        while window and now - window[0] > self._crash_loop_window:
            window.popleft()
        self._last_error = reason
        if len(window) >= self._crash_loop_restarts:
            await self._set_state(
                "degraded",
                reason=f"crash loop: {len(window)} restarts in {self._crash_loop_window:g} s; "
                f"next try in {self._degraded_backoff:g} s ({reason})",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self._degraded_backoff)
            if stopping.is_set():
                return
        else:
            await self._set_state("restarting", reason=reason)
            if window:
                delay = min(5.0, 0.25 * 2 ** (len(window) - 1))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                if stopping.is_set():
                    return
        window.append(time.monotonic())
        self._restarts += 1
        REDIS_RESTARTS.inc()
        previous_port = self._manager.port
        try:
            async with self._locked():
                await self._manager.kill()
                source = await self._adopt_or_start()
        except RedisError as error:
            self._last_error = str(error)
            log.error("redis_restart_failed", error=str(error))  # noqa: TRY400 - message says it all
            return
        self._use_local(source)
        log.info(
            "redis_restarted",
            source=source,
            pid=self._manager.pid,
            port=self._manager.port,
            previous_port=previous_port,
            restarts=self._restarts,
        )
        await self._set_state("running")

    # -- state changes ------------------------------------------------------------------------

    async def _set_state(self, state: RedisState, *, reason: str | None = None) -> None:
        previous = self._state
        if state == previous:
            return
        self._state = state
        REDIS_STATE_CHANGES.labels(state=state).inc()
        REDIS_UP.set(1 if state in {"running", "degraded"} and self._endpoint else 0)
        fields = {
            "state": state,
            "previous": previous,
            "source": self._source,
            "port": self._endpoint.port if self._endpoint else None,
            "reason": reason,
        }
        if state in {"running", "stopped", "initializing"}:
            log.info("redis_state_changed", **fields)
        else:
            log.warning("redis_state_changed", **fields)
        event = RedisEvent(
            state=state,
            previous=previous,
            endpoint=self._endpoint,
            source=self._source,
            reason=reason,
        )
        for observer in list(self._observers):
            try:
                result = observer(event)
                if inspect.isawaitable(result):
                    await asyncio.wait_for(result, _OBSERVER_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # an observer must never break the monitor
                log.exception("redis_observer_failed", observer=repr(observer), error=str(error))
