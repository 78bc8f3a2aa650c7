"""The health HTTP server, served for real on an ephemeral loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import aiohttp
import pytest
from prometheus_client import CONTENT_TYPE_LATEST

from vechnost_bot.ops import HealthServer

PASSWORD = "s3cr3t-redis-pass-9f8e7d"
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"


def _snapshot(mode: str = "redis", **redis: object) -> dict[str, object]:
    return {
        "status": "ok" if mode == "redis" else "degraded",
        "version": "0.1.0",
        "uptime_seconds": 12.5,
        "pid": 4242,
        "bot": {"polling": True, "updates_handled": 7, "username": "vechnost_test_bot"},
        "storage": {"mode": mode, "failovers": 1, "failbacks": 1, "journal_size": 0},
        "redis": {
            "state": "running",
            "source": "auto-started",
            "pid": 999,
            "port": 6390,
            "version": "7.2.4",
            "url": "redis://:***@127.0.0.1:6390/0",
            **redis,
        },
    }


class _State:
    """Mutable inputs for the server's callables."""

    def __init__(self) -> None:
        self.snapshot: Mapping[str, object] = _snapshot()
        self.ready = True


@pytest.fixture
def state() -> _State:
    """What the server's snapshot() and ready() return; tests change it."""
    return _State()


@pytest.fixture
async def server(state: _State) -> AsyncIterator[HealthServer]:
    """A started HealthServer on 127.0.0.1, port 0."""
    async with HealthServer(
        "127.0.0.1", 0, snapshot=lambda: state.snapshot, ready=lambda: state.ready
    ) as running:
        yield running


async def _get(server: HealthServer, path: str) -> tuple[int, str, str]:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{server.port}{path}") as response,
    ):
        return response.status, response.headers["Content-Type"], await response.text()


async def test_binds_an_ephemeral_port(server: HealthServer) -> None:
    """Port 0 binds a real free port, reported by .port."""
    assert server.port > 0
    assert server.url == f"http://127.0.0.1:{server.port}"


async def test_healthz_says_alive(server: HealthServer, state: _State) -> None:
    """/healthz answers 200 alive even when the bot is not ready."""
    state.ready = False
    status, ctype, body = await _get(server, "/healthz")
    assert status == 200
    assert ctype.startswith("application/json")
    assert '"status": "alive"' in body


async def test_readyz_ready_in_redis_mode(server: HealthServer) -> None:
    """/readyz is 200 "ready" with the storage mode and Redis source."""
    status, _, body = await _get(server, "/readyz")
    assert status == 200
    assert '"status": "ready"' in body
    assert '"storage_mode": "redis"' in body
    assert '"redis_source": "auto-started"' in body


async def test_readyz_memory_mode_is_ready_but_degraded(
    server: HealthServer, state: _State
) -> None:
    """Memory mode serves traffic (200) but is flagged degraded."""
    state.snapshot = _snapshot("memory", state="unavailable", source=None)
    status, _, body = await _get(server, "/readyz")
    assert status == 200
    assert '"status": "degraded"' in body
    assert '"storage_mode": "memory"' in body
    assert "memory mode" in body


async def test_readyz_503_when_not_ready(server: HealthServer, state: _State) -> None:
    """/readyz is 503 while ready() is false."""
    state.ready = False
    status, _, body = await _get(server, "/readyz")
    assert status == 503
    assert '"status": "not_ready"' in body


async def test_readyz_503_when_ready_check_raises(server: HealthServer) -> None:
    """A ready() that raises means not ready, not a server error."""

    def broken() -> bool:
        raise RuntimeError("boom")

    server._ready = broken
    status, _, _ = await _get(server, "/readyz")
    assert status == 503


async def test_status_serves_the_snapshot(server: HealthServer) -> None:
    """/status is the snapshot as JSON."""
    status, ctype, body = await _get(server, "/status")
    assert status == 200
    assert ctype.startswith("application/json")
    assert '"username": "vechnost_test_bot"' in body
    assert '"version": "7.2.4"' in body


async def test_status_500_when_snapshot_raises(server: HealthServer) -> None:
    """A snapshot that raises gives a 500 with no traceback in the body."""

    def broken() -> Mapping[str, object]:
        raise RuntimeError(f"failed with redis://:{PASSWORD}@127.0.0.1:1/0")

    server._snapshot = broken
    status, _, body = await _get(server, "/status")
    assert status == 500
    assert PASSWORD not in body


async def test_metrics_prometheus_text(server: HealthServer) -> None:
    """/metrics serves REGISTRY in the Prometheus text format, with every issue metric."""
    status, ctype, body = await _get(server, "/metrics")
    assert status == 200
    assert ctype == CONTENT_TYPE_LATEST
    for name in (
        "vechnost_storage_mode",
        "vechnost_redis_up",
        "vechnost_redis_restarts_total",
        "vechnost_storage_failovers_total",
        "vechnost_storage_failbacks_total",
        "vechnost_storage_records_reconciled_total",
        "vechnost_storage_journal_size",
        "vechnost_updates_handled_total",
        "vechnost_errors_total",
    ):
        assert f"# HELP {name} " in body
    assert "# TYPE vechnost_storage_call_seconds histogram" in body


@pytest.mark.parametrize("path", ["/status", "/readyz"])
async def test_no_secret_ever_appears(server: HealthServer, state: _State, path: str) -> None:
    """Passwords and tokens planted in the snapshot are masked in every body."""
    state.snapshot = _snapshot(
        url=f"redis://default:{PASSWORD}@127.0.0.1:6390/0",
        password=PASSWORD,
        source=f"redis://:{PASSWORD}@10.0.0.1:6379",
        note=f"token {TOKEN} in a free-text field",
    )
    status, _, body = await _get(server, path)
    assert status == 200
    assert PASSWORD not in body
    assert TOKEN not in body
    if path == "/status":
        assert "redis://default:***@127.0.0.1:6390/0" in body


async def test_stop_is_safe_twice_and_frees_the_port(state: _State) -> None:
    """stop() twice is fine; after it nothing answers on the port."""
    server = HealthServer("127.0.0.1", 0, lambda: state.snapshot, lambda: True)
    await server.start()
    port = server.port
    await server.stop()
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz"),
        ):
            pass


async def test_port_in_use_raises(server: HealthServer, state: _State) -> None:
    """Starting on a port that is taken raises OSError and leaves nothing behind."""
    other = HealthServer("127.0.0.1", server.port, lambda: state.snapshot, lambda: True)
    with pytest.raises(OSError, match=r"address already in use|Errno"):
        await other.start()
    await other.stop()
