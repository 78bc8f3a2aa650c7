"""End to end: ``vechnost run`` whose data dir cannot be used (issue 9 item 6, 8 item 4).

The real bot against the fake Bot API, without Redis, with ``REDIS_DATA_DIR`` below a
regular file, so creating ``<data dir>/store`` fails for real (ENOTDIR, even as root).
It must start, say once why it runs from memory, answer /start and a draw, report the
trouble on /readyz, and on SIGTERM exit non-zero naming the writes that never reached
a disk; never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.bot_harness import bot_process
from tests.support.env import bot_env, log_events
from tests.support.fake_bot_api import DEFAULT_TOKEN, FakeBotApi
from tests.support.redis_server import free_port

pytestmark = pytest.mark.slow

CHAT = 4343


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
        async with bot_process(tmp_path, env, health_port) as bot:
            status = await bot.wait_status(lambda s: bool(s["bot"]["polling"]))
            assert status["storage"]["mode"] == "memory"

            await api.act(CHAT, "say", "/start")
            await api.act(CHAT, "tap", "T:a")
            await api.act(CHAT, "tap", "V:a:1")
            await api.act(CHAT, "tap", "N:a:1:q")
            code_ready, ready = await bot.get("/readyz")
            _, status = await bot.get("/status")
            code, text = await bot.stop()
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
