"""Secrets for containers: *_FILE variables and a Redis password kept out of the URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from vechnost_bot.config import load_settings
from vechnost_bot.errors import ConfigError

_SETTINGS = ("TELEGRAM_BOT_TOKEN", "REDIS_URL", "REDIS_PASSWORD")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting from this machine, and no .env from the working directory."""
    for name in (*_SETTINGS, "TELEGRAM_BOT_TOKEN_FILE", "REDIS_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_token_file_fills_the_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """TELEGRAM_BOT_TOKEN_FILE (a Docker secret) gives the token, trailing newline dropped."""
    secret = tmp_path / "token"
    secret.write_text("123456:ABCdef\n")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN_FILE", str(secret))
    assert load_settings().token == "123456:ABCdef"


def test_token_variable_wins_over_its_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A set TELEGRAM_BOT_TOKEN is used as is; the file is only a fallback."""
    secret = tmp_path / "token"
    secret.write_text("1:from-file")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN_FILE", str(secret))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "2:from-env")
    assert load_settings().token == "2:from-env"


def test_unreadable_secret_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A *_FILE that cannot be read stops with one line naming the variable, exit code 2."""
    monkeypatch.setenv("REDIS_PASSWORD_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.variable == "REDIS_PASSWORD_FILE"
    assert "cannot read" in str(caught.value)
    assert caught.value.exit_code == 2


def test_empty_file_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compose passes REDIS_PASSWORD_FILE="" when it is not set: that is no file."""
    monkeypatch.setenv("REDIS_PASSWORD_FILE", "")
    assert load_settings().redis_url == "redis://localhost:6379/0"


@pytest.mark.parametrize("password", ["p@ss/w#rd", "a:b%c$d", "plain"])
def test_redis_password_is_url_encoded_into_the_url(
    monkeypatch: pytest.MonkeyPatch, password: str
) -> None:
    """REDIS_PASSWORD with / # @ : % reaches Redis intact: the URL stays valid."""
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    monkeypatch.setenv("REDIS_PASSWORD", password)
    endpoint = load_settings().redis_target
    assert (endpoint.host, endpoint.port, endpoint.password) == ("redis", 6379, password)


def test_redis_password_file_replaces_the_url_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """REDIS_PASSWORD_FILE sets the password even over one written in REDIS_URL."""
    secret = tmp_path / "redis-password"
    secret.write_text("s3cr#t/\n")
    monkeypatch.setenv("REDIS_URL", "redis://user:old@[::1]:7000/2")
    monkeypatch.setenv("REDIS_PASSWORD_FILE", str(secret))
    url = load_settings().redis_url
    assert url == "redis://user:s3cr%23t%2F@[::1]:7000/2"
