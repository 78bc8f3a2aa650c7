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
from dataclasses import dataclass
from pathlib import Path

import redis
import redis.asyncio as aioredis

from tests.support.redis_server import RedisServer, free_port, redis_server_binary

__all__ = ["MASTER_NAME", "Election", "SentinelProcess", "SentinelTopology"]

MASTER_NAME = "vechnost"


class SentinelProcess:
    """One ``redis-server CONF --sentinel`` child process, watching one master."""

    def __init__(
        self,
        directory: Path,
        *,
        master_port: int,
        quorum: int,
        down_after_ms: int,
        failover_timeout_ms: int,
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)
        # Sentinel rewrites its config file as the topology changes: it must be writable.
        self.config = directory / "sentinel.conf"
        self.config.write_text(
            "\n".join(
                [
                    f"port {self.port}",
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

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2)

    def start(self, timeout: float = 10.0) -> SentinelProcess:
        args = [redis_server_binary(), str(self.config), "--sentinel"]
        self.process = subprocess.Popen(args, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                log = (self.directory / "sentinel.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"sentinel exited early: {log}")
            client = self.client()
            try:
                if client.ping():
                    return self
            except redis.RedisError:
                time.sleep(0.02)
            finally:
                client.close()
        raise RuntimeError(f"sentinel on port {self.port} did not answer PING")

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
    server (e.g. ``("--min-replicas-to-write", "1")``).
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
    ) -> None:
        if replicas < 1 or sentinels < 1:
            raise ValueError("a topology needs at least one replica and one sentinel")
        self.directory = directory
        self.down_after_ms = down_after_ms
        # Diskless sync waits 5 s by default for more replicas to join: not here.
        extra_args = ("--repl-diskless-sync-delay", "0", *extra_args)
        self.servers = [RedisServer(directory / "redis-0", extra_args=extra_args)]
        master_port = self.servers[0].port
        self.servers += [
            RedisServer(
                directory / f"redis-{index}",
                extra_args=(*extra_args, "--replicaof", "127.0.0.1", str(master_port)),
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
        clients = [
            aioredis.Redis(host="127.0.0.1", port=s.port, socket_timeout=0.5)
            for s in self.sentinels
        ]
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
