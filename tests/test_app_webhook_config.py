"""Webhook mode's settings: BOT_MODE, WEBHOOK_URL, WEBHOOK_SECRET(_FILE), the listener,
and what ``vechnost run`` says when they are missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.env import bot_env
from tests.support.fake_bot_api import DEFAULT_TOKEN, FakeBotApi
from tests.support.redis_server import free_port
from vechnost_bot.config import Settings, load_settings
from vechnost_bot.errors import ConfigError
from vechnost_bot.ops.telegram_check import check_telegram

URL = "https://bot.example.com/telegram/webhook"
SECRET = "a-secret_of-the-right-shape-42"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No Vechnost variables or .env leak in from the machine."""
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def test_polling_is_the_default_and_needs_no_webhook_settings() -> None:
    """Without BOT_MODE the bot polls; nothing about webhooks is required."""
    settings = load_settings()
    assert settings.bot_mode == "polling"
    assert settings.webhook_url is None
    assert settings.webhook_secret_text is None
    assert (settings.webhook_host, settings.webhook_port) == ("127.0.0.1", 8443)


def test_webhook_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """BOT_MODE=webhook with a URL and secret; the served path is the URL's unless
    WEBHOOK_PATH names another (a proxy that rewrites it); the secret never shows in
    repr."""
    monkeypatch.setenv("BOT_MODE", "webhook")
    monkeypatch.setenv("WEBHOOK_URL", URL)
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("WEBHOOK_PORT", "9443")
    settings = load_settings()
    assert settings.bot_mode == "webhook"
    assert settings.webhook_listen_path == "/telegram/webhook"
    assert settings.webhook_port == 9443
    assert SECRET not in repr(settings)
    monkeypatch.setenv("WEBHOOK_PATH", "/hook")
    assert load_settings().webhook_listen_path == "/hook"


def test_the_secret_can_come_from_a_file(tmp_path: Path) -> None:
    """WEBHOOK_SECRET_FILE (a Docker/Kubernetes secret) fills WEBHOOK_SECRET, without the
    trailing newline; WEBHOOK_SECRET itself wins when both are set."""
    path = tmp_path / "webhook-secret"
    path.write_text(SECRET + "\n")
    settings = load_settings(bot_mode="webhook", webhook_url=URL, webhook_secret_file=path)
    assert settings.webhook_secret_text == SECRET
    both = load_settings(
        bot_mode="webhook", webhook_url=URL, webhook_secret="other", webhook_secret_file=path
    )
    assert both.webhook_secret_text == "other"


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({}, "WEBHOOK_URL: is required when BOT_MODE=webhook"),
        ({"webhook_url": URL}, "WEBHOOK_SECRET: is required"),
        ({"webhook_url": URL, "webhook_secret": "has space"}, "WEBHOOK_SECRET: must be"),
        ({"webhook_url": "ftp://x/hook", "webhook_secret": SECRET}, "WEBHOOK_URL: must be"),
        ({"webhook_url": URL, "webhook_secret": SECRET, "webhook_path": "hook"}, "WEBHOOK_PATH"),
    ],
)
def test_webhook_mode_refuses_what_it_cannot_use(values: dict[str, str], words: str) -> None:
    """A missing URL or secret, a secret Telegram would refuse, a URL that is not http(s):
    one ConfigError (exit 2) that names the variable."""
    with pytest.raises(ConfigError) as error:
        load_settings(bot_mode="webhook", **values)
    assert words in str(error.value)
    assert error.value.exit_code == 2
    assert "has space" not in str(error.value)


def test_unreadable_secret_file_is_a_config_error(tmp_path: Path) -> None:
    """A WEBHOOK_SECRET_FILE that cannot be read is said at once."""
    with pytest.raises(ConfigError, match="WEBHOOK_SECRET_FILE"):
        load_settings(bot_mode="webhook", webhook_url=URL, webhook_secret_file=tmp_path / "missing")


@pytest.mark.slow
def test_vechnost_run_in_webhook_mode_without_url_exits_2(tmp_path: Path) -> None:
    """The real CLI: BOT_MODE=webhook without WEBHOOK_URL prints one line and exits 2
    before it contacts anything."""
    env = bot_env(
        f"http://127.0.0.1:{free_port()}/bot",
        TELEGRAM_BOT_TOKEN=DEFAULT_TOKEN,
        BOT_MODE="webhook",
        WEBHOOK_SECRET=SECRET,
        REDIS_AUTO_START="false",
        REDIS_DATA_DIR=str(tmp_path / "data"),
    )
    done = subprocess.run(
        [sys.executable, "-m", "vechnost_bot", "run"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "WEBHOOK_URL: is required when BOT_MODE=webhook" in lines[0]
    assert SECRET not in done.stderr


async def test_doctor_in_webhook_mode_expects_the_webhook(tmp_path: Path) -> None:
    """`vechnost doctor` in webhook mode: a webhook set to WEBHOOK_URL is OK (polling's
    warning would be wrong advice); none yet, or another URL, is a warning."""
    async with FakeBotApi() as api:
        settings = load_settings(
            telegram_bot_token=DEFAULT_TOKEN, telegram_api_base_url=api.base_url,
            redis_data_dir=tmp_path / "data", bot_mode="webhook", webhook_url=URL,
            webhook_secret=SECRET,
        )  # fmt: skip
        levels = []
        for url in (URL, "", "https://elsewhere.example/hook"):
            api.webhook_url = url
            checks = await check_telegram(settings)
            levels.append(checks[1].level)
            assert "elsewhere" not in checks[1].detail
    assert levels == ["OK", "WARN", "WARN"]
