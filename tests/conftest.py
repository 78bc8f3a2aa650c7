"""Fixtures shared by every suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from tests.support.redis_server import RedisServer

RedisFactory = Callable[..., RedisServer]

pytest_plugins = ["tests.support.bot_fixtures"]


@pytest.fixture
def redis_factory(tmp_path: Path) -> Iterator[RedisFactory]:
    """Start real redis-server processes on free ports; all are stopped by pid after."""
    started: list[RedisServer] = []

    def start(**kwargs: object) -> RedisServer:
        server = RedisServer(tmp_path / f"redis-{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def redis_server(redis_factory: RedisFactory) -> RedisServer:
    """One real redis-server with a password, on a free port."""
    return redis_factory(password="test-pass-0123")


def _structlog_defaults_with_plain_tracebacks() -> None:
    """structlog's defaults, but an exception is rendered as a plain traceback.

    The default renders it with rich, every frame's locals included: one bot error
    handler's log line was 6,000 lines and held the test's event loop for 7 s on a busy
    machine, so the apology it was about to send missed a 10 s wait. The app itself
    renders plain tracebacks (``configure_logging``).
    """
    structlog.reset_defaults()
    renderer = structlog.get_config()["processors"][-1]
    assert isinstance(renderer, structlog.dev.ConsoleRenderer)
    renderer.exception_formatter = structlog.dev.plain_traceback


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """Each test starts with structlog's defaults, so capture_logs sees every event."""
    _structlog_defaults_with_plain_tracebacks()
    yield
    _structlog_defaults_with_plain_tracebacks()
