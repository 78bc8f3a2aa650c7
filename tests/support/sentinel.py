"""A real Redis Sentinel topology for tests: a master, replicas and sentinels on loopback.

Every process is a plain ``redis-server`` (sentinels run as ``redis-server CONF
--sentinel``, no extra package) on a free 127.0.0.1 port, in its own directory,
and is stopped by its pid. :meth:`SentinelTopology.start` returns once every
sentinel names the master, sees every replica and knows every other sentinel, so
that a failover can be authorised at once. The helpers kill the master (SIGKILL,
as a crash would), ask for a manual ``SENTINEL FAILOVER`` and wait, on the event
loop, for the sentinels to name another master.

Independent of the code under test, like :mod:`tests.support.redis_server`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tests.support.redis_server import (
    RedisServer,
    TlsFiles,
    free_port,
    redis_server_binary,
    spawn_answering,
)

__all__ = [
    "MASTER_NAME",
    "Election",
    "PooledWriters",
    "SentinelProcess",
    "SentinelTopology",
    "StorageOutage",
    "failover_under_writes",
    "missing_on",
    "storage_through_master_kill",
]

MASTER_NAME = "vechnost"


class SentinelProcess:
    """One ``redis-server CONF --sentinel`` child process, watching one master; with
    ``tls``, its port speaks TLS only and it reaches the data servers over TLS."""

    def __init__(
        self,
        directory: Path,
        *,
        master_port: int,
        quorum: int,
        down_after_ms: int,
        failover_timeout_ms: int,
        tls: TlsFiles | None = None,
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        listen = [f"port {self.port}"]
        if tls is not None:
            listen = ["port 0", f"tls-port {self.port}"]
            listen += [f"{name} {value}" for name, value in tls.settings()]
        # Sentinel rewrites its config file as the topology changes: it must be writable.
        self.config = directory / "sentinel.conf"
        self.config.write_text(
            "\n".join(
                [
                    *listen,
                    "bind 127.0.0.1",
                    "daemonize no",
                    f"dir {directory}",
                    f"logfile {directory / 'sentinel.log'}",
                    f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {quorum}",
                    f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}",
                    f"sentinel failover-timeout {MASTER_NAME} {failover_timeout_ms}",
                    f"sentinel parallel-syncs {MASTER_NAME} 1",
                    "",
                ]
            )
        )

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def client_kwargs(self) -> dict[str, Any]:
        """How a client reaches this sentinel (TLS or not)."""
        tls = self.tls.client_kwargs() if self.tls is not None else {}
        return {"host": "127.0.0.1", "port": self.port, **tls}

    def client(self) -> redis.Redis:
        return redis.Redis(socket_timeout=2, **self.client_kwargs)

    def start(self, timeout: float = 10.0) -> SentinelProcess:
        args = [redis_server_binary(), str(self.config), "--sentinel"]
        log = self.directory / "sentinel.log"
        self.process = spawn_answering(args, self.client, log, timeout)
        return self

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 5 s; safe twice."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass(frozen=True, slots=True)
class Election:
    """What a failover took: from ``since`` (the kill or the request) to a named master."""

    old_port: int
    new_port: int
    named_after: float
    """Seconds until a majority of sentinels named ``new_port``."""


class SentinelTopology:
    """``replicas`` + 1 redis-servers and ``sentinels`` sentinels, all on loopback.

    ``with SentinelTopology(tmp_path) as topo:`` starts and stops it; so do
    :meth:`start` and :meth:`stop` (safe twice). ``extra_args`` go to every data
    server (e.g. ``("--min-replicas-to-write", "1")``). With ``tls`` every process
    speaks TLS only, with client certificates (mutual TLS).
    """

    def __init__(
        self,
        directory: Path,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        down_after_ms: int = 200,
        failover_timeout_ms: int = 5_000,
        extra_args: tuple[str, ...] = (),
        tls: TlsFiles | None = None,
    ) -> None:
        if replicas < 1 or sentinels < 1:
            raise ValueError("a topology needs at least one replica and one sentinel")
        self.directory = directory
        self.down_after_ms = down_after_ms
        # Diskless sync waits 5 s by default for more replicas to join: not here.
        extra_args = ("--repl-diskless-sync-delay", "0", *extra_args)
        self.servers = [RedisServer(directory / "redis-0", extra_args=extra_args, tls=tls)]
        master_port = self.servers[0].port
        self.servers += [
            RedisServer(
                directory / f"redis-{index}",
                extra_args=(*extra_args, "--replicaof", "127.0.0.1", str(master_port)),
                tls=tls,
            )
            for index in range(1, replicas + 1)
        ]
        self.quorum = sentinels // 2 + 1
        self.sentinels = [
            SentinelProcess(
                directory / f"sentinel-{index}",
                master_port=master_port,
                quorum=self.quorum,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
                tls=tls,
            )
            for index in range(sentinels)
        ]

    # -- lifecycle -----------------------------------------------------------------------
    def __enter__(self) -> SentinelTopology:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def start(self, timeout: float = 20.0) -> SentinelTopology:
        """Start every process; return once the sentinels agree on the whole topology."""
        deadline = time.monotonic() + timeout
        try:
            for server in self.servers:
                server.start()
            self._wait(self._replicas_in_sync, deadline, "replicas did not sync")
            for sentinel in self.sentinels:
                sentinel.start()
            self._wait(self._sentinels_agree, deadline, "sentinels did not agree")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every sentinel, then every server, each by its pid; safe twice."""
        for sentinel in self.sentinels:
            sentinel.stop()
        for server in self.servers:
            server.stop()

    # -- facts ---------------------------------------------------------------------------
    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        return [sentinel.address for sentinel in self.sentinels]

    def server_on(self, port: int) -> RedisServer:
        """The data server that listens on ``port``."""
        for server in self.servers:
            if server.port == port:
                return server
        raise KeyError(port)

    def master_port(self) -> int:
        """The master's port as the first answering sentinel names it."""
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                _host, port = client.sentinel_get_master_addr_by_name(MASTER_NAME)
                return int(port)
            except redis.RedisError:
                continue
            finally:
                client.close()
        raise RuntimeError("no sentinel answers")

    def replica_ports(self) -> list[int]:
        master = self.master_port()
        return [server.port for server in self.servers if server.port != master]

    # -- faults --------------------------------------------------------------------------
    def kill_master(self) -> int:
        """SIGKILL the current master by its pid; return its port."""
        port = self.master_port()
        self.server_on(port).kill()
        return port

    def request_failover(self) -> int:
        """``SENTINEL FAILOVER`` on one sentinel (a manual switch-over); the old port."""
        port = self.master_port()
        client = self.sentinels[0].client()
        try:
            client.execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        finally:
            client.close()
        return port

    async def wait_new_master(self, old_port: int, since: float, timeout: float = 15.0) -> Election:
        """Poll the sentinels every 10 ms until a majority names a master other than
        ``old_port``; ``since`` is the ``time.monotonic()`` of the fault."""
        clients = [aioredis.Redis(socket_timeout=0.5, **s.client_kwargs) for s in self.sentinels]
        deadline = since + timeout
        try:
            while time.monotonic() < deadline:
                named = await asyncio.gather(*(self._named(c) for c in clients))
                for port in set(named):
                    if port not in (None, old_port) and named.count(port) >= self.quorum:
                        assert port is not None
                        return Election(old_port, port, time.monotonic() - since)
                await asyncio.sleep(0.01)
        finally:
            for client in clients:
                await client.aclose()
        raise TimeoutError(f"no new master within {timeout} s of the fault on port {old_port}")

    # -- internals -----------------------------------------------------------------------
    @staticmethod
    async def _named(client: aioredis.Redis) -> int | None:
        try:
            answer = await client.sentinel_get_master_addr_by_name(MASTER_NAME)
        except redis.RedisError:
            return None
        return None if answer is None else int(answer[1])

    def _replicas_in_sync(self) -> bool:
        for server in self.servers[1:]:
            client = server.client()
            try:
                info = client.info("replication")
            finally:
                client.close()
            if info.get("master_link_status") != "up":
                return False
        return True

    def _sentinels_agree(self) -> bool:
        master = self.servers[0].port
        for sentinel in self.sentinels:
            client = sentinel.client()
            try:
                state = client.sentinel_master(MASTER_NAME)
            finally:
                client.close()
            if (
                int(state["port"]) != master
                or int(state["num-slaves"]) != len(self.servers) - 1
                or int(state["num-other-sentinels"]) != len(self.sentinels) - 1
            ):
                return False
        return True

    @staticmethod
    def _wait(check: Callable[[], bool], deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            try:
                if check():
                    return
            except redis.RedisError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"sentinel topology: {what} before the deadline")


@dataclass(frozen=True, slots=True)
class StorageOutage:
    """What killing the master cost the bot's storage (HybridStorage + the lifecycle,
    built as ``vechnost run`` builds them, through REDIS_SENTINELS)."""

    named_s: float
    """Kill -> a majority of sentinels names another master."""
    no_master_s: float
    """Kill -> the storage serves from Redis again (its writes land in the new master)."""
    increments: int
    """Increments the writer made (all acknowledged; some while in memory mode)."""
    counted: int
    """The counter in Redis afterwards: equal to ``increments`` when none was lost."""
    status_port: object
    """The port ``vechnost status`` shows afterwards (the lifecycle's snapshot)."""
    new_port: int
    """The port of the master the sentinels elected."""


async def storage_through_master_kill(
    topo: SentinelTopology, data_dir: Path, *, settle: float = 0.5
) -> StorageOutage:
    """A writer increments a counter through the storage every 5 ms; the master is
    SIGKILLed; returns once the storage is back in Redis mode and its journal is empty."""
    from vechnost_bot.config import Settings
    from vechnost_bot.redis.autostart import RedisAutoStartManager
    from vechnost_bot.storage.hybrid import HybridStorage
    from vechnost_bot.storage.redis import connect_redis

    settings = Settings(  # type: ignore[call-arg]
        redis_sentinels=",".join(f"{h}:{p}" for h, p in topo.sentinel_addresses),
        redis_sentinel_master=MASTER_NAME,
        redis_data_dir=data_dir,
        redis_health_check_interval=1.0,
    )
    lifecycle = RedisAutoStartManager(settings)
    storage = HybridStorage(
        client_factory=connect_redis,
        local_dir=data_dir / "local",
        on_connection_lost=lifecycle.wake,
    )
    lifecycle.subscribe(storage.on_redis_event)
    await storage.start(None)
    await lifecycle.start()
    await storage.start(lifecycle.endpoint)
    stop = asyncio.Event()
    increments = 0

    async def writer() -> None:
        nonlocal increments
        while not stop.is_set():
            await storage.incr("outage")
            increments += 1
            await asyncio.sleep(0.005)

    task = asyncio.create_task(writer())
    try:
        deadline = time.monotonic() + 10
        while storage.mode != "redis" and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        assert storage.mode == "redis", "the storage never reached Redis through Sentinel"
        await asyncio.sleep(settle)
        killed_at = time.monotonic()
        old_port = topo.kill_master()
        election = asyncio.create_task(topo.wait_new_master(old_port, killed_at))
        while storage.mode == "redis" and time.monotonic() - killed_at < 10:
            await asyncio.sleep(0.002)
        while storage.mode != "redis" and time.monotonic() - killed_at < 30:
            await asyncio.sleep(0.005)
        back = time.monotonic() - killed_at
        elected = await election
        named = elected.named_after
        await asyncio.sleep(settle)
        stop.set()
        await task
        # Every increment in Redis: nothing left pending in the local store (a second,
        # spurious failover right after the first one may have sent some there).
        deadline = time.monotonic() + 20
        while (storage.mode != "redis" or storage.local.pending_count) and (
            time.monotonic() < deadline
        ):
            await asyncio.sleep(0.02)
        status_port = lifecycle.status()["port"]
    finally:
        stop.set()
        await task
        await storage.stop()
        await lifecycle.stop()
    counted = _read_counter(topo, "outage")
    return StorageOutage(named, back, increments, counted, status_port, elected.new_port)


def _read_counter(topo: SentinelTopology, name: str) -> int:
    from vechnost_bot.storage.redis import KEY_PREFIX

    client = topo.server_on(topo.master_port()).client()
    try:
        raw = client.get(f"{KEY_PREFIX}:counter:{name}")
    finally:
        client.close()
    return int(raw or 0)


@dataclass
class PooledWriters:
    """``tasks`` writers SETting distinct keys through one pooled client; a failed SET is
    retried (a key is acknowledged only when a SET of it returned)."""

    client: aioredis.Redis
    tasks: int = 8
    acked: list[str] = field(default_factory=list)
    acked_at: dict[str, float] = field(default_factory=dict)
    errors: int = 0
    last_error_at: float | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _one(self, number: int) -> None:
        index = 0
        while not self.stop.is_set():
            key = f"w{number}:{index}"
            try:
                await self.client.set(key, "1")
            except RedisError:
                self.errors += 1
                self.last_error_at = time.monotonic()
                await asyncio.sleep(0.005)
                continue
            self.acked.append(key)
            self.acked_at[key] = time.monotonic()
            index += 1
            await asyncio.sleep(0.001)

    async def run_until(self, done: asyncio.Event) -> None:
        tasks = [asyncio.create_task(self._one(n)) for n in range(self.tasks)]
        await done.wait()
        self.stop.set()
        await asyncio.gather(*tasks)


async def missing_on(port: int, keys: list[str]) -> list[str]:
    client = aioredis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
    try:
        missing: list[str] = []
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            values = await client.mget(chunk)
            missing += [key for key, value in zip(chunk, values, strict=True) if value is None]
        return missing
    finally:
        await client.aclose()


async def failover_under_writes(
    topo: SentinelTopology, client: aioredis.Redis, *, after: float
) -> tuple[PooledWriters, int, float]:
    """Writers run; SENTINEL FAILOVER; they go on until ``after`` s past the election.
    The writers, the new master's port and the seconds from the request to the last
    error the writers saw (0 when none)."""
    writers = PooledWriters(client)
    done = asyncio.Event()
    running = asyncio.create_task(writers.run_until(done))
    await asyncio.sleep(0.5)
    asked_at = time.monotonic()
    old_port = topo.request_failover()
    election = await topo.wait_new_master(old_port, asked_at)
    await asyncio.sleep(after)
    done.set()
    await running
    last_error = 0.0 if writers.last_error_at is None else writers.last_error_at - asked_at
    return writers, election.new_port, last_error
