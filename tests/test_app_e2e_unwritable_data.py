"""End to end: ``vechnost run`` whose data dir cannot be used (issue 9 item 6, 8 item 4).

The real bot against the fake Bot API, without Redis, with ``REDIS_DATA_DIR`` below a
regular file, so creating ``<data dir>/store`` fails for real (ENOTDIR, even as root).
It must start, say once why it runs from memory, answer /start and a draw, report the
trouble on /readyz, and on SIGTERM exit non-zero naming the writes that never reached
a disk; never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
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

pytestmark = pytest.mark.slow

CHAT = 4343


async def _get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{port}{path}"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        body: dict[str, Any] = await response.json(content_type=None)
        return response.status, body


async def _wait_status(port: int, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, ValueError):
            _, last = await _get(port, "/status")
            if last["bot"]["polling"]:
                return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"the bot never polled within {timeout}s: {last}")


async def test_run_with_an_unusable_data_dir_serves_from_memory(tmp_path: Path) -> None:
    """The data dir cannot be created: the bot serves /start and a draw from memory,
    /readyz and /status name the reason, one ``storage_local_open_failed`` error line
    gives the path and errno, and SIGTERM exits non-zero with the writes at risk."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory\n")
    data_dir = blocker / "data"
    health_port = free_port()
    async with FakeBotApi() as api:
        env = bot_env(
            api.base_url,
            TELEGRAM_BOT_TOKEN=DEFAULT_TOKEN,
            REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            REDIS_AUTO_START="false",
            REDIS_DATA_DIR=str(data_dir),
            HEALTH_PORT=str(health_port),
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vechnost_bot", "run",
            cwd=tmp_path, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert process.stderr is not None
        stderr = asyncio.create_task(process.stderr.read())
        try:
            status = await _wait_status(health_port, timeout=30)
            assert status["storage"]["mode"] == "memory"

            await api.act(CHAT, "say", "/start")
            await api.act(CHAT, "tap", "T:a")
            await api.act(CHAT, "tap", "V:a:1")
            await api.act(CHAT, "tap", "N:a:1:q")
            code_ready, ready = await _get(health_port, "/readyz")
            _, status = await _get(health_port, "/status")
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
    assert "Traceback" not in text, text[-3000:]
    assert str(data_dir) in ready["degraded_reason"], ready
    assert code_ready == 200  # serving, but degraded: it says so
    assert ready["status"] == "degraded"
    local = status["storage"]["local_store"]
    assert local["write_error"]
    assert local["writes_at_risk"] >= 1
    failed = [e for e in events if e.get("event") == "storage_local_open_failed"]
    assert len(failed) == 1, text[-3000:]
    assert failed[0]["level"] == "error"
    assert failed[0]["errno"] == 20  # ENOTDIR
    assert str(data_dir) in failed[0]["path"]
    assert code != 0, text[-3000:]
    stopped = [e for e in events if e.get("event") == "vechnost_stopped_with_writes_at_risk"]
    assert len(stopped) == 1, text[-3000:]
