"""The Redis policy: use an external server, adopt ours, or start one; then watch it.

This class is the one owner of the lifecycle state (state, source, endpoint,
restarts, epoch, warnings); :class:`RedisManager` below it only knows its process.

Order in :meth:`RedisAutoStartManager.initialize`:

1. ``REDIS_URL`` answers PING with its credentials → source ``external``, start
   nothing. Without a password it is used with a loud warning
   (``redis_without_password``, in ``status`` and doctor too).
2. ``REDIS_URL`` names an external server that does not answer → the bot serves
   from memory (state ``down``, source ``external``) and fails back when it
   returns; it **never** starts a rival. "External" means either:
   - the URL is one an auto-started server could not be: another host, a unix
     socket, a password or TLS (:attr:`RedisEndpoint.auto_start_can_serve`); or
   - it answered as an external server before: this process saw it, or an earlier
     one recorded it in the data dir (``redis-external.json``).
   Only a loopback, passwordless URL that never answered (the default
   ``redis://localhost:6379/0``: "nothing here, nothing configured") goes on.
3. ``REDIS_AUTO_START`` is false → state ``unavailable`` (memory mode).
4. Under a file lock in the data dir (so that one process on the host starts the
   server and the others adopt it): adopt the server recorded there (``adopted``)
   or start one (``auto-started``). Our own server there that misses two PINGs
   (hung) is stopped first, and the new one takes its port.

The monitor wakes every ``redis_health_check_interval`` to PING, at once when
:meth:`wake` is called (the storage calls it on a connection reset), and, on
Linux, the moment a server we own exits (a pidfd watched by the event loop,
re-armed on every start). A server we own that died or hangs is replaced on the
same port with the same password; five restarts within a minute mean a crash
loop (state ``degraded``, restarts slowed down). An external server that stops
answering is ``down``: reported and retried, never replaced.

Each check also reads an epoch marker key (``vechnost:epoch``) written on first
use: when it vanished (FLUSHALL, a new empty server at the same address) that is
logged as ``redis_data_lost``, counted, and told to observers
(``RedisEvent.data_lost``), so the storage can write back what it holds locally.

Shared servers: every connection is named ``vechnost-<pid>``. :meth:`stop`
shuts the server down only when no other live Vechnost process is connected to
it (and it was not started by ``vechnost redis start``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import re
import secrets
import time
from collections import deque
from pathlib import Path
from typing import ClassVar

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError as RedisClientError

from vechnost_bot.config import RedisEndpoint, Settings
from vechnost_bot.datadir import DataDir, data_dir_lock, ensure_data_dir, write_private
from vechnost_bot.errors import RedisBinaryNotFoundError, RedisError, RedisStartError
from vechnost_bot.metrics import (
    REDIS_DATA_LOST,
    REDIS_PASSWORDLESS,
    REDIS_RESTARTS,
    REDIS_STATE_CHANGES,
    REDIS_UP,
)
from vechnost_bot.ops.snapshot import RedisSnapshot
from vechnost_bot.redis.client import make_client
from vechnost_bot.redis.events import (
    RedisEvent,
    RedisObserver,
    RedisSource,
    RedisState,
)
from vechnost_bot.redis.manager import RedisManager
from vechnost_bot.redis.probe import (
    CLUSTER_REFUSED,
    Probe,
    password_rejected_message,
    probe,
)
from vechnost_bot.redis.process import pid_alive
from vechnost_bot.redis.sentinel import SentinelWatch
from vechnost_bot.service import Service, backoff

__all__ = [
    "EPOCH_KEY",
    "RedisAutoStartManager",
    "names_external",
    "other_vechnost_clients",
    "passwordless_warning",
]

log = structlog.get_logger(__name__)

EPOCH_KEY = "vechnost:epoch"
_CLIENT_NAME_RE = re.compile(r"^vechnost-(\d+)$")
_OBSERVER_TIMEOUT = 5.0
_MONITOR_STOP_TIMEOUT = 5.0
_STOP_LOCK_TIMEOUT = 5.0


def passwordless_warning(endpoint: RedisEndpoint) -> str:
    """The warning (log, status, doctor) for an external Redis that needs no password;
    it names the setting the password goes in (with Sentinel, not REDIS_URL)."""
    sentinel = endpoint.sentinel
    if sentinel is not None:
        sentinels_too = (
            ", and the sentinels' own `requirepass` in REDIS_SENTINEL_PASSWORD "
            "(or REDIS_SENTINEL_PASSWORD_FILE)"
            if sentinel.password is None
            else ""
        )
        return (
            f"the Redis master that the sentinels {sentinel.where} name answers without a "
            "password: any local user or program can read and overwrite every player's "
            "data; set `requirepass` and `masterauth` on every data server and `sentinel "
            "auth-pass` on the sentinels, put the password in REDIS_PASSWORD (or "
            f"REDIS_PASSWORD_FILE){sentinels_too}"
        )
    return (
        f"the Redis at {endpoint.where} answers without a password: any local user or "
        "program can read and overwrite every player's data; set `requirepass` on it and put "
        "the password in REDIS_URL (redis://:PASSWORD@host:port/0), or point REDIS_URL "
        "elsewhere so the bot starts its own password-protected Redis"
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


def _read_external_record(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    url = data.get("url") if isinstance(data, dict) else None
    return url if isinstance(url, str) else None


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def names_external(target: RedisEndpoint, files: DataDir, *, seen: bool = False) -> str | None:
    """Why ``target`` is an external server that auto-start must never stand in for, or
    None when it is "nothing configured" (see the module doc). Reads one small file."""
    if not target.auto_start_can_serve:
        return "REDIS_URL names an external server (another host, a socket or a password)"
    if seen:
        return "REDIS_URL answered as an external server earlier"
    if _read_external_record(files.external) == target.url():
        return f"REDIS_URL answered as an external server before ({files.external})"
    return None


def _write_external_record(path: Path, url: str) -> None:
    ensure_data_dir(path.parent)
    write_private(path, json.dumps({"url": url, "seen_at": time.time()}) + "\n")


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
        self._target = settings.redis_target
        self._manager = RedisManager(settings)
        self._files = settings.data_dir
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
        self._warning: str | None = None
        self._version: str | None = None
        self._external_pid: int | None = None
        self._external_seen = False
        self._server_since: float | None = None
        self._next_retry = 0.0
        self._retries = 0
        self._epoch: str | None = None
        self._data_lost = 0
        self._client: aioredis.Redis | None = None
        self._client_for: RedisEndpoint | None = None
        self._pidfd: int | None = None
        self._monitor_task: asyncio.Task[None] | None = None
        self._wake_event: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._stopped = False
        self._sentinel_watch: SentinelWatch | None = None

    # -- facts ------------------------------------------------------------------------

    @property
    def endpoint(self) -> RedisEndpoint | None:
        """Where Redis is (or, while an external one is ``down``, is expected); None: memory."""
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

    @property
    def data_lost_count(self) -> int:
        """How many times the epoch marker vanished (Redis lost our data)."""
        return self._data_lost

    def subscribe(self, observer: RedisObserver) -> None:
        """Call ``observer`` with a :class:`RedisEvent` on every change of state, and on
        data loss (``event.data_lost``)."""
        self._observers.append(observer)

    def status(self) -> RedisSnapshot:
        """The ``redis`` section of the status snapshot; the password is masked."""
        local = self._source in {"auto-started", "adopted"}
        uptime = None
        if self._server_since is not None and self._state in {"running", "degraded"}:
            uptime = round(time.monotonic() - self._server_since, 1)
        endpoint = self._endpoint
        tcp = endpoint is not None and not endpoint.is_unix
        host, port = (endpoint.host, endpoint.port) if endpoint and tcp else (None, None)
        watch = self._sentinel_watch
        if endpoint is not None and watch is not None and watch.master is not None:
            host, port = watch.master  # the master the sentinels name now
        return {
            "state": self._state,
            "source": self._source,
            "pid": self._manager.pid if local else self._external_pid,
            "port": port,
            "host": host,
            "socket": endpoint.socket_path if endpoint else None,
            "version": self._version,
            "uptime_seconds": uptime,
            "restarts": self._restarts,
            "data_dir": str(self._files.root),
            "url": endpoint.url(redacted=True) if endpoint else None,
            "last_error": self._last_error,
            "warning": self._warning,
            "passwordless": self._warning is not None,
            "data_lost": self._data_lost,
        }

    # -- lifecycle ----------------------------------------------------------------------

    async def initialize(self) -> bool:
        """Initialize Redis with auto-start and fallback; True when Redis is usable."""
        log.info(
            "initializing_redis_auto_start",
            auto_start=self._settings.redis_auto_start,
            url=self._target.url(),
            data_dir=str(self._files.root),
        )
        ok = await self._acquire(first=True)
        if ok:
            log.info(
                "redis_started_successfully"
                if self._source == "auto-started"
                else "redis_connected",
                source=self._source,
                pid=self.status()["pid"],
                version=self._version,
                **self._server_fields(),
            )
        return ok

    async def start(self) -> None:
        """initialize(), then start the monitor task."""
        self._stopped = False
        self._wake_event = asyncio.Event()
        self._stopping = asyncio.Event()
        if self._target.sentinel is not None and self._sentinel_watch is None:
            # REDIS_SENTINELS: follow the sentinels' failovers (redis/sentinel.py).
            self._sentinel_watch = SentinelWatch(
                self._target.sentinel, on_switch=self._on_master_switch
            )
            await self._sentinel_watch.start()
        await self.initialize()
        self._arm_pidfd()
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
        self._disarm_pidfd()
        watch, self._sentinel_watch = self._sentinel_watch, None
        if watch is not None:
            await watch.stop()
        await self.cleanup()

    async def _on_master_switch(self, address: tuple[str, int]) -> None:
        """The sentinels named another master: check it now, and tell the observers at
        once (the storage probes then instead of at its backoff's next step)."""
        self.wake()
        if self._state == "running":
            host, port = address
            await self._notify(
                RedisEvent(
                    state="running",
                    previous="running",
                    endpoint=self._endpoint,
                    source=self._source,
                    reason=f"the sentinels switched the master to {host}:{port}",
                )
            )

    async def cleanup(self) -> None:
        """Stop only what this program started, and only when no other Vechnost uses it."""
        if self._stopped:
            return
        self._stopped = True
        self._disarm_pidfd()  # our own stop must not wake the monitor
        await self._drop_client()
        endpoint = self._manager.endpoint
        if self._source in {"auto-started", "adopted"} and endpoint is not None:
            await self._release_local(endpoint)
        self._endpoint = None
        await self._set_state("stopped", reason="cleanup")

    def wake(self) -> None:
        """Make the monitor check Redis now (the storage calls it on a connection reset).

        Plain function, safe from any callback on the loop; awaiting its result is
        not needed (it returns None).
        """
        if self._wake_event is not None:
            self._wake_event.set()

    # -- acquisition ----------------------------------------------------------------------

    async def _acquire(self, *, first: bool) -> bool:
        """Find Redis: external, else (only when nothing is configured) adopt or start."""
        target = self._target
        found = await probe(target, self._ping_timeout())
        if found.cluster:
            reason = f"the Redis at {target.where} {CLUSTER_REFUSED} (staying in memory mode)"
            if first or self._state != "unavailable":
                log.error("redis_cluster_refused", url=target.url(), reason=reason)
            return await self._fallback(reason, first=first)
        if found.answers:
            await self._use_external(found)
            return True
        if found.kind == "auth_refused" and target.password is not None:
            reason = f"{password_rejected_message(target)} (staying in memory mode)"
            log.error("redis_connection_failed", url=target.url(), reason=reason)
            return await self._fallback(reason, first=first)
        external = await asyncio.to_thread(
            names_external, target, self._files, seen=self._external_seen
        )
        if external is not None:
            return await self._external_down(found, external)
        if first or self._state != "unavailable":
            reason = found.detail
            if found.kind == "auth_refused":
                reason = f"{found.detail}: another program owns this port; it is left alone"
            log.warning("redis_connection_failed", url=target.url(), reason=reason)
        if not self._settings.redis_auto_start:
            return await self._fallback(
                "REDIS_URL does not answer and REDIS_AUTO_START is false", first=first
            )
        log.info("starting_redis_instance", data_dir=str(self._files.root))
        try:
            await asyncio.to_thread(ensure_data_dir, self._files.root)
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
                log.error("redis_auto_start_failed", error=str(error))  # noqa: TRY400
            return await self._fallback(str(error), first=first)
        self._use_local(source)
        await self._check_epoch()
        await self._set_state("running")
        return True

    async def _external_down(self, found: Probe, why: str) -> bool:
        """An external server is not answering: memory mode until it is back; no rival."""
        reason = f"{found.detail}; {why}: serving from memory until it answers, no rival started"
        self._last_error = reason
        self._source = "external"
        self._endpoint = self._target
        if self._state != "down":
            log.warning("redis_connection_failed", url=self._target.url(), reason=reason)
        await self._set_state("down", reason=reason)
        return False

    async def _use_external(self, found: Probe) -> None:
        self._endpoint = self._target
        self._source = "external"
        self._version = found.version
        self._external_pid = found.pid
        since = found.uptime_seconds
        self._server_since = time.monotonic() - (since or 0.0)
        self._last_error = None
        if found.passwordless:
            self._warning = passwordless_warning(self._target)
            log.warning("redis_without_password", url=self._target.url(), fix=self._warning)
        else:
            self._warning = None
        REDIS_PASSWORDLESS.set(1 if found.passwordless else 0)
        if not self._external_seen:
            self._external_seen = True
            try:
                await asyncio.to_thread(
                    _write_external_record, self._files.external, self._target.url()
                )
            except (OSError, RedisError) as error:
                # Unwritable data dir: this process still remembers it (_external_seen).
                log.warning("redis_external_record_failed", error=str(error))
        await self._check_epoch()
        await self._set_state("running")

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
        self._users.setdefault(self._files.root, set()).add(id(self))
        self._source = source
        self._endpoint = self._manager.endpoint
        self._warning = None
        REDIS_PASSWORDLESS.set(0)
        binary = self._manager.binary
        self._version = binary.version if binary else None
        started_at = self._manager.recorded.get("started_at")
        if isinstance(started_at, int | float):
            self._server_since = time.monotonic() - max(0.0, time.time() - started_at)
        else:
            self._server_since = time.monotonic()
        self._ping_failures = 0
        self._last_error = None
        self._arm_pidfd()

    async def _fallback(self, reason: str, *, first: bool) -> bool:
        self._last_error = reason
        self._endpoint = None
        if first or self._state != "unavailable":
            log.warning("redis_auto_start_failed_fallback_to_memory", reason=reason)
        await self._set_state("unavailable", reason=reason)
        return False

    def _locked(self, wait: float | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the data dir's file lock (see :func:`data_dir_lock`)."""
        if wait is None:
            settings = self._settings
            wait = settings.redis_startup_timeout * settings.redis_max_startup_attempts + 10
        return data_dir_lock(self._files, wait)

    async def _release_local(self, endpoint: RedisEndpoint) -> None:
        """cleanup() for a local server: stop it, or leave it to the others still using it."""
        manager = self._manager
        users = self._users.get(self._files.root, set())
        users.discard(id(self))
        if users:
            log.info("redis_left_running_for_other_clients", clients=len(users), same_process=True)
            await manager.detach()
            return
        try:
            async with self._locked(wait=_STOP_LOCK_TIMEOUT):
                started_by = manager.recorded.get("started_by")
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
                stopped = await manager.stop()
                if stopped is not None and stopped.how == "left-running":
                    self._last_error = stopped.reason
                    await manager.detach()
        except RedisStartError as error:
            log.warning("redis_left_running", reason=str(error))
            await manager.detach()

    # -- the pidfd watch ---------------------------------------------------------------------

    def _arm_pidfd(self) -> None:
        """Watch the server we own: its exit wakes the monitor at once (Linux pidfd)."""
        self._disarm_pidfd()
        if self._wake_event is None or self._source not in {"auto-started", "adopted"}:
            return
        fd = self._manager.open_pidfd()
        if fd is None:
            return
        try:
            asyncio.get_running_loop().add_reader(fd, self._on_server_exit, fd)
        except (NotImplementedError, RuntimeError, ValueError):
            os.close(fd)  # a loop without add_reader (Windows proactor): PING only
            return
        self._pidfd = fd

    def _disarm_pidfd(self) -> None:
        fd, self._pidfd = self._pidfd, None
        if fd is None:
            return
        with contextlib.suppress(RuntimeError, ValueError):
            asyncio.get_running_loop().remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)

    def _on_server_exit(self, fd: int) -> None:
        if fd == self._pidfd:
            self._disarm_pidfd()
            log.info("redis_server_exited", pid=self._manager.pid)
            self.wake()

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
            if time.monotonic() >= self._next_retry:
                self._retries += 1
                self._next_retry = time.monotonic() + backoff(
                    self._retries, base=min(1.0, self._retry_interval), cap=self._retry_interval
                )
                if await self._acquire(first=False):
                    self._retries = 0
            return
        if self._source == "external":
            await self._check_external()
            return
        if self._source in {"auto-started", "adopted"}:
            await self._check_local(stopping)

    async def _check_external(self) -> None:
        found = await probe(
            self._target, self._ping_timeout(), client=self._client_of(self._target)
        )
        if found.answers:
            if self._state != "running":
                await self._use_external(found)
            else:
                await self._check_epoch()
            return
        await self._drop_client()
        self._last_error = found.detail
        if self._state != "down":
            log.warning("redis_connection_failed", url=self._target.url(), reason=found.detail)
            await self._set_state("down", reason=found.detail)

    async def _check_local(self, stopping: asyncio.Event) -> None:
        manager = self._manager
        alive = manager.running
        if alive and await manager.health_check(self._ping_timeout()):
            self._ping_failures = 0
            if self._pidfd is None:
                self._arm_pidfd()
            await self._check_epoch()
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
        await self._drop_client()
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
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), backoff(len(window)))
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
            log.error("redis_restart_failed", error=str(error))  # noqa: TRY400
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
        await self._check_epoch()
        await self._set_state("running")

    # -- the epoch marker -------------------------------------------------------------------

    def _client_of(self, endpoint: RedisEndpoint) -> aioredis.Redis:
        if self._client is None or self._client_for != endpoint:
            self._client = make_client(endpoint, timeout=self._ping_timeout())
            self._client_for = endpoint
        return self._client

    async def _drop_client(self) -> None:
        client, self._client, self._client_for = self._client, None, None
        if client is not None:
            with contextlib.suppress(RedisClientError, OSError, RuntimeError):
                await client.aclose()

    async def _check_epoch(self) -> None:
        """Write the epoch marker on first use; report it when it vanished (data lost).

        A missing marker is re-created with SET NX and whatever is there is adopted, so
        processes sharing one server agree on the new epoch and each reports the loss once
        (none overwrites another's marker, which would make them accuse each other).
        """
        endpoint = self._endpoint
        if endpoint is None:
            return
        client = self._client_of(endpoint)
        try:
            current = _text(await client.get(EPOCH_KEY))
            if current is not None and current == self._epoch:
                return
            if current is None:
                await client.set(EPOCH_KEY, secrets.token_hex(8), nx=True)
                current = _text(await client.get(EPOCH_KEY))
        except (RedisClientError, OSError, TimeoutError) as error:
            # Read-only, OOM or gone: the next check (or the storage) will say more.
            log.debug("redis_epoch_check_failed", error=str(error))
            await self._drop_client()
            return
        previous, self._epoch = self._epoch, current
        if previous is None:
            return  # first use: nothing to compare with yet
        self._data_lost += 1
        REDIS_DATA_LOST.inc()
        reason = (
            f"the epoch marker {EPOCH_KEY} vanished from {endpoint.where} "
            f"(FLUSHALL, or a new empty server there): Redis lost the data it held; "
            "the storage writes back what its local store holds"
        )
        self._last_error = reason
        log.error("redis_data_lost", url=endpoint.url(), epoch=current, reason=reason)
        await self._notify(
            RedisEvent(
                state=self._state,
                previous=self._state,
                endpoint=endpoint,
                source=self._source,
                reason=reason,
                data_lost=True,
            )
        )

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
            **self._server_fields(),
            "reason": reason,
        }
        if state in {"running", "stopped", "initializing"}:
            log.info("redis_state_changed", **fields)
        else:
            log.warning("redis_state_changed", **fields)
        await self._notify(
            RedisEvent(
                state=state,
                previous=previous,
                endpoint=self._endpoint,
                source=self._source,
                reason=reason,
            )
        )

    def _server_fields(self) -> dict[str, object]:
        """How a log line names the server in use: ``port``; with Sentinel (whose
        endpoint has no port) ``master``, the ``host:port`` the sentinels name now, or
        ``sentinels`` (``master@host:port,…``) until one has answered."""
        endpoint = self._endpoint
        if endpoint is None or endpoint.sentinel is None:
            return {"port": endpoint.port if endpoint else None}
        watch = self._sentinel_watch
        if watch is not None and watch.where is not None:
            return {"master": watch.where}
        return {"sentinels": endpoint.sentinel.where}

    async def _notify(self, event: RedisEvent) -> None:
        for observer in list(self._observers):
            try:
                result = observer(event)
                if inspect.isawaitable(result):
                    await asyncio.wait_for(result, _OBSERVER_TIMEOUT)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # an observer must never break the monitor
                log.exception("redis_observer_failed", observer=repr(observer), error=str(error))
