"""End to end: ``vechnost run`` whose local store cannot write, stopped by SIGTERM.

The real bot runs without Redis (auto-start off, nothing listening), so every draw is
kept by the local store alone. Once it is up, the test caps the process's file size
(``prlimit`` RLIMIT_FSIZE on the child, with SIGXFSZ ignored as a full disk would
answer: EFBIG on every write), so the store's commits fail for real. The player still
gets every card; the stop must then say how many writes are at risk and exit non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import signal
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.env import bot_env, log_events
from tests.support.fake_bot_api import DEFAULT_TOKEN, FakeBotApi
from tests.support.redis_server import free_port

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prlimit is Linux only"),
]

CHAT = 4242


def _ignore_sigxfsz() -> None:
    # Runs in the child before exec: an ignored signal stays ignored across exec, so a
    # write past the cap fails with EFBIG (as on a full disk) instead of killing the bot.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


async def _status(port: int) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/status"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        result: dict[str, Any] = await response.json()
        return result


async def _wait_status(port: int, predicate: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, ValueError):
            last = await _status(port)
            if predicate(last):
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"status never matched within {timeout}s: {last}")


async def test_stop_with_unwritable_local_store_exits_non_zero(tmp_path: Path) -> None:
    """Draws acknowledged while the local store cannot write: SIGTERM ends the bot with a
    non-zero exit code and the error line ``vechnost_stopped_with_writes_at_risk`` naming
    how many writes are lost (the same number ``status`` showed before the stop)."""
    health_port = free_port()
    async with FakeBotApi() as api:
        env = bot_env(
            api.base_url,
            TELEGRAM_BOT_TOKEN=DEFAULT_TOKEN,
            REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            REDIS_AUTO_START="false",
            REDIS_DATA_DIR=str(tmp_path / "data"),
            HEALTH_PORT=str(health_port),
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            RATE_LIMIT_UPDATES="1000",
        )
        # stderr is a pipe: the file-size cap below must not stop the bot's own log.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vechnost_bot", "run",
            cwd=tmp_path, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            preexec_fn=_ignore_sigxfsz,
        )  # fmt: skip
        assert process.stderr is not None
        stderr = asyncio.create_task(process.stderr.read())
        try:
            await _wait_status(
                health_port,
                lambda s: s["bot"]["polling"] and s["storage"]["mode"] == "memory",
                timeout=30,
            )
            resource.prlimit(process.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))

            await api.act(CHAT, "say", "/start")
            await api.act(CHAT, "tap", "T:a")
            await api.act(CHAT, "tap", "V:a:1")
            for _ in range(5):
                await api.act(CHAT, "tap", "N:a:1:q")
            before = await _wait_status(
                health_port,
                lambda s: (
                    s["storage"]["local_store"]["write_error"] is not None
                    and s["storage"]["degraded_reason"] is not None
                ),
                timeout=20,
            )
            at_risk = before["storage"]["local_store"]["writes_at_risk"]
            assert at_risk >= 1  # records whose acknowledged state is not on disk

            process.send_signal(signal.SIGTERM)
            code = await asyncio.wait_for(process.wait(), 60)
            text = (await asyncio.wait_for(stderr, 10)).decode("utf-8", "replace")
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            if not stderr.done():
                stderr.cancel()
    events = log_events(text)
    assert code != 0, text[-3000:]
    stopped = [e for e in events if e.get("event") == "vechnost_stopped_with_writes_at_risk"]
    assert len(stopped) == 1, text[-3000:]
    assert stopped[0]["level"] == "error"
    assert stopped[0]["writes"] == at_risk  # nothing written since the status above
    assert "Traceback" not in text
