"""Settings: defaults, environment parsing, and one-line errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from vechnost_bot.config import Settings, default_data_dir, load_settings
from vechnost_bot.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No VECHNOST-related variables or .env leak in from the machine."""
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def test_defaults_match_the_design() -> None:
    """REDIS_URL and REDIS_AUTO_START default as DESIGN.md says; data dir is per-user."""
    settings = load_settings()
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.redis_auto_start is True
    assert settings.redis_max_startup_attempts == 3
    assert settings.redis_data_dir == default_data_dir()
    assert settings.token is None
    assert settings.health_host == "127.0.0.1"


def test_environment_and_dotenv_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Variables come from the environment first, then from .env in the working dir."""
    (tmp_path / ".env").write_text("LOG_LEVEL=debug\nREDIS_AUTO_START=false\n")
    monkeypatch.setenv("REDIS_URL", "redis://:secret@127.0.0.1:7000/2")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    settings = load_settings()
    assert settings.log_level == "DEBUG"
    assert settings.log_format == "json"
    assert settings.redis_auto_start is False
    assert settings.redis_url.endswith(":7000/2")


@pytest.mark.parametrize(
    ("variable", "value", "words"),
    [
        ("REDIS_URL", "http://localhost:6379", "must start with redis://"),
        ("REDIS_URL", "redis://localhost:70000/0", "port that is not a number"),
        ("REDIS_URL", "redis://localhost:6379/abc", "database that is not a number"),
        ("REDIS_URL", "redis://:6379", "must name a host"),
        ("HEALTH_PORT", "99999", "less than or equal to 65535"),
        ("LOG_LEVEL", "LOUD", "DEBUG"),
        ("REDIS_AUTO_START", "perhaps", "boolean"),
        ("REDIS_MAX_STARTUP_ATTEMPTS", "0", "greater than or equal to 1"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, words: str
) -> None:
    """A bad value raises ConfigError whose one line names the variable and the rule."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert variable in message
    assert words in message
    assert "\n" not in message
    assert caught.value.variable == variable
    assert caught.value.exit_code == 2


def test_token_never_echoed_in_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """The bot token stays out of error messages and reprs."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:SECRET-TOKEN-VALUE-THAT-IS-LONG-ENOUGH")
    monkeypatch.setenv("HEALTH_PORT", "-1")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "SECRET" not in str(caught.value)
    monkeypatch.delenv("HEALTH_PORT")
    settings = load_settings()
    assert "SECRET" not in repr(settings)
    assert settings.token == "123456:SECRET-TOKEN-VALUE-THAT-IS-LONG-ENOUGH"


def test_blank_token_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """A token of spaces is the same as no token."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "   ")
    assert load_settings().token is None


def test_password_in_a_bad_url_is_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed REDIS_URL is echoed with its password masked."""
    monkeypatch.setenv("REDIS_URL", "redis://:supersecret@127.0.0.1:99999/0")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "supersecret" not in str(caught.value)
    assert "redis://:***@127.0.0.1:99999/0" in str(caught.value)


def test_file_url_follows_a_self_hosted_api(monkeypatch: pytest.MonkeyPatch) -> None:
    """TELEGRAM_FILE_BASE_URL defaults to the file URL beside TELEGRAM_API_BASE_URL."""
    assert load_settings().file_base_url == "https://api.telegram.org/file/bot"
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", "http://127.0.0.1:8081/bot")
    assert load_settings().file_base_url == "http://127.0.0.1:8081/file/bot"
    monkeypatch.setenv("TELEGRAM_FILE_BASE_URL", "http://files.local/file/bot")
    assert load_settings().file_base_url == "http://files.local/file/bot"
