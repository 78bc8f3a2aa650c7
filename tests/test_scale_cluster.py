"""Redis Cluster is refused with a clear message (docs/scaling.md, "Why not Redis Cluster").

A real one-node cluster-enabled redis-server: ``vechnost run`` pointed at it exits 2 with
one line saying why, and the lifecycle, meeting one later, stays in memory mode instead of
sending the storage's multi-key scripts to it.
"""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.env import bot_env
from tests.support.lifecycle import settings_for
from tests.support.redis_server import RedisServer, free_port
from vechnost_bot.config import parse_redis_url
from vechnost_bot.redis.autostart import RedisAutoStartManager
from vechnost_bot.redis.probe import probe

TOKEN = "123456789:AAE" + "x" * 32


def _free(port: int) -> bool:
    with socket.socket() as probe_socket:
        try:
            probe_socket.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture
def cluster_node(tmp_path: Path) -> Iterator[RedisServer]:
    """One redis-server with cluster-enabled yes (no slots assigned: INFO says cluster)."""
    # Cluster's bus listens on port + 10000: the port must leave room for it.
    port = next(p for p in iter(free_port, None) if p <= 55535 and _free(p + 10000))
    node = RedisServer(
        tmp_path / "cluster",
        port=port,
        password="cluster-pass",
        extra_args=(
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(tmp_path / "cluster" / "nodes.conf"),
        ),
    )
    node.start()
    try:
        yield node
    finally:
        node.stop()


async def test_probe_sees_a_cluster_node(cluster_node: RedisServer) -> None:
    """The probe's INFO tells a cluster node from a plain server."""
    found = await probe(parse_redis_url(cluster_node.url))
    assert found.answers
    assert found.cluster


async def test_vechnost_run_refuses_a_cluster_and_exits_2(
    cluster_node: RedisServer, tmp_path: Path
) -> None:
    """REDIS_URL naming a cluster node: exit 2, one `vechnost:` line naming REDIS_URL and
    Redis Cluster, no traceback, the password masked."""
    env = bot_env(
        "http://127.0.0.1:9/bot",
        TELEGRAM_BOT_TOKEN=TOKEN,
        REDIS_URL=cluster_node.url,
        REDIS_AUTO_START="false",
        REDIS_DATA_DIR=str(tmp_path / "data"),
        HEALTH_PORT=str(free_port()),
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vechnost_bot",
        "run",
        cwd=tmp_path,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = stderr.decode()
    assert process.returncode == 2, text
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("vechnost:")]
    assert len(errors) == 1, text
    assert "REDIS_URL" in errors[0]
    assert "Redis Cluster" in errors[0]
    assert "cluster-pass" not in text


async def test_the_lifecycle_stays_in_memory_on_a_cluster(
    cluster_node: RedisServer, tmp_path: Path
) -> None:
    """A loopback URL that turns out to be a cluster node (checked by the lifecycle, not
    at start): state unavailable, the reason says Redis Cluster, no endpoint for the
    storage, nothing started in its place."""
    settings = settings_for(tmp_path / "data", redis_url=cluster_node.url, redis_auto_start=True)
    manager = RedisAutoStartManager(settings)
    try:
        assert await manager.initialize() is False
        assert manager.state == "unavailable"
        assert manager.endpoint is None
        assert "Redis Cluster" in (manager.status()["last_error"] or "")
        assert manager.manager.pid is None
    finally:
        await manager.cleanup()
