"""End to end: ``vechnost run`` whose local store cannot write, stopped by SIGTERM.

The real bot runs without Redis (auto-start off, nothing listening), so every draw is
kept by the local store alone. Once it is up, the test caps the process's file size
(``prlimit`` RLIMIT_FSIZE on the child, with SIGXFSZ ignored as a full disk would
answer: EFBIG on every write), so the store's commits fail for real. The player still
gets every card; the stop must then say how many writes are at risk and exit non-zero.
"""

from __future__ import annotations

import resource
import signal
import sys
from pathlib import Path

import pytest

from tests.support.bot_harness import bot_process
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
        async with bot_process(tmp_path, env, health_port, preexec_fn=_ignore_sigxfsz) as bot:
            await bot.wait_status(
                lambda s: s["bot"]["polling"] and s["storage"]["mode"] == "memory"
            )
            resource.prlimit(bot.process.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))

            await api.act(CHAT, "say", "/start")
            await api.act(CHAT, "tap", "T:a")
            await api.act(CHAT, "tap", "V:a:1")
            for _ in range(5):
                await api.act(CHAT, "tap", "N:a:1:q")
            before = await bot.wait_status(
                lambda s: (
                    s["storage"]["local_store"]["write_error"] is not None
                    and s["storage"]["degraded_reason"] is not None
                )
            )
            at_risk = before["storage"]["local_store"]["writes_at_risk"]
            assert at_risk >= 1  # records whose acknowledged state is not on disk
            code, text = await bot.stop()
    events = log_events(text)
    assert code != 0, text[-3000:]
    stopped = [e for e in events if e.get("event") == "vechnost_stopped_with_writes_at_risk"]
    assert len(stopped) == 1, text[-3000:]
    assert stopped[0]["level"] == "error"
    assert stopped[0]["writes"] == at_risk  # nothing written since the status above
    assert "Traceback" not in text
