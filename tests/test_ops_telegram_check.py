"""`vechnost doctor`'s Telegram checks against the real local Bot API stand-in."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.fake_bot_api import DEFAULT_TOKEN, FakeBotApi
from tests.support.lifecycle import settings_for
from tests.support.redis_server import free_port
from vechnost_bot import doctor
from vechnost_bot.config import Settings
from vechnost_bot.ops.telegram_check import check_telegram

BAD_TOKEN = "555555555:AAThisTokenTelegramWillRejectForSure_x"


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    """The fake Bot API on a free loopback port, with one token it rejects."""
    async with FakeBotApi(bad_tokens=[BAD_TOKEN]) as fake:
        yield fake


def _settings(tmp_path: Path, base_url: str, token: str | None) -> Settings:
    return settings_for(tmp_path / "data", telegram_api_base_url=base_url, telegram_bot_token=token)


async def test_accepted_token_names_the_bot(api: FakeBotApi, tmp_path: Path) -> None:
    """getMe answers: OK with the bot's @username; no webhook: OK too."""
    checks = await check_telegram(_settings(tmp_path, api.base_url, DEFAULT_TOKEN))
    assert [check.level for check in checks] == ["OK", "OK"]
    assert "@vechnost_test_bot" in checks[0].detail
    assert "none set" in checks[1].detail
    assert {call.method for call in api.calls} == {"getMe", "getWebhookInfo"}
    assert all(DEFAULT_TOKEN not in check.detail for check in checks)


async def test_rejected_token_fails_with_the_botfather_fix(api: FakeBotApi, tmp_path: Path) -> None:
    """A token the Bot API answers 401 for: FAIL, what to do, and the token never shown."""
    checks = await check_telegram(_settings(tmp_path, api.base_url, BAD_TOKEN))
    assert len(checks) == 1
    assert checks[0].level == "FAIL"
    assert "rejected TELEGRAM_BOT_TOKEN (401" in checks[0].detail
    assert checks[0].fix is not None
    assert "@BotFather" in checks[0].fix
    assert BAD_TOKEN not in checks[0].detail + checks[0].fix


async def test_webhook_set_elsewhere_warns(api: FakeBotApi, tmp_path: Path) -> None:
    """A webhook on the token: WARN naming its host (polling would take the updates)."""
    api.webhook_url = "https://bots.example.org/hook/secret-path"
    checks = await check_telegram(_settings(tmp_path, api.base_url, DEFAULT_TOKEN))
    assert checks[1].level == "WARN"
    assert "bots.example.org" in checks[1].detail
    assert "secret-path" not in checks[1].detail


async def test_unreachable_api_fails(tmp_path: Path) -> None:
    """Nothing listens at TELEGRAM_API_BASE_URL: FAIL saying it is not reachable."""
    url = f"http://127.0.0.1:{free_port()}/bot"
    checks = await check_telegram(_settings(tmp_path, url, DEFAULT_TOKEN))
    assert [check.level for check in checks] == ["FAIL"]
    assert "not reachable" in checks[0].detail


async def test_no_token_is_not_checked(tmp_path: Path) -> None:
    """Without a token nothing is asked; the WARN says where the token goes."""
    checks = await check_telegram(_settings(tmp_path, "http://127.0.0.1:9/bot", None))
    assert [check.level for check in checks] == ["WARN"]
    assert checks[0].fix is not None
    assert ".env" in checks[0].fix


def test_doctor_reports_telegram_and_reads_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`vechnost doctor` in a folder whose .env has the token (as the bot reads it): the
    token is found and Telegram is checked through TELEGRAM_API_BASE_URL."""
    import asyncio
    import threading

    loop = asyncio.new_event_loop()
    fake = FakeBotApi()
    started = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(fake.start())
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    started.wait(10)
    try:
        for name in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_API_BASE_URL", "REDIS_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.chdir(tmp_path)
        (tmp_path / ".env").write_text(
            f"TELEGRAM_BOT_TOKEN={DEFAULT_TOKEN}\nTELEGRAM_API_BASE_URL={fake.base_url}\n"
        )
        from vechnost_bot.config import load_settings

        code = doctor.command(load_settings(redis_data_dir=tmp_path / "data"), argparse.Namespace())
        out = capsys.readouterr().out
        assert "TELEGRAM_BOT_TOKEN is not set" not in out
        assert "OK    telegram" in out
        assert "@vechnost_test_bot" in out
        assert DEFAULT_TOKEN not in out
        assert code == 0
    finally:
        asyncio.run_coroutine_threadsafe(fake.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def test_status_shows_the_telegram_error(tmp_path: Path) -> None:
    """A real bot that cannot reach Telegram: `vechnost status` names the error it keeps
    getting, and --json carries it in the telegram section."""
    import json
    import subprocess
    import sys
    import time

    from tests.support.env import bot_env

    health = free_port()
    env = bot_env(
        f"http://127.0.0.1:{free_port()}/bot",
        TELEGRAM_BOT_TOKEN=DEFAULT_TOKEN,
        HEALTH_PORT=str(health),
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        REDIS_AUTO_START="false",
        REDIS_DATA_DIR=str(tmp_path / "data"),
    )
    bot = subprocess.Popen(
        [sys.executable, "-m", "vechnost_bot", "run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        snapshot: dict[str, object] = {}
        while time.monotonic() < deadline:
            done = subprocess.run(
                [sys.executable, "-m", "vechnost_bot", "status", "--json"],
                cwd=tmp_path, env=env, capture_output=True, text=True, check=False, timeout=20,
            )  # fmt: skip
            snapshot = json.loads(done.stdout)
            telegram = snapshot.get("telegram")
            if isinstance(telegram, dict) and telegram.get("last_error"):
                break
            time.sleep(0.3)
        telegram = snapshot.get("telegram")
        assert isinstance(telegram, dict), snapshot
        assert telegram["polling"] is False
        assert telegram["state"] == "retrying"
        assert "NetworkError" in str(telegram["last_error"])
        table = subprocess.run(
            [sys.executable, "-m", "vechnost_bot", "status"],
            cwd=tmp_path, env={**env, "COLUMNS": "200"}, capture_output=True, text=True,
            check=False, timeout=20,
        )  # fmt: skip
        assert "telegram last error" in table.stdout
        assert "NetworkError" in table.stdout
        assert DEFAULT_TOKEN not in table.stdout
    finally:
        bot.terminate()
        bot.wait(30)
