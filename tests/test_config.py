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
        ("REDIS_MAX_MEMORY", "lots", "must be a memory size"),
        ("REDIS_MAX_MEMORY", "12 gigs", "must be a memory size"),
        ("REDIS_URL", "unix://relative.sock", "absolute path"),
        ("REDIS_DATA_DIR", "/tmp/a\nsave 1 1", "control characters"),
        ("REDIS_URL", "unix:///run/redis.sock?db=x", "database that is not a number"),
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


def test_redis_url_is_parsed_once_into_a_typed_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """REDIS_URL becomes one RedisEndpoint (TCP or unix socket, password hidden from repr);
    every consumer reads ``settings.redis_target``."""
    monkeypatch.setenv("REDIS_URL", "redis://bob:s3cret-pass@127.0.0.1:7001/3")
    target = load_settings().redis_target
    assert (target.host, target.port, target.db, target.username) == ("127.0.0.1", 7001, 3, "bob")
    assert target.password == "s3cret-pass"
    assert "s3cret" not in repr(target)
    assert "s3cret" not in repr(load_settings())
    assert target.url() == "redis://bob:***@127.0.0.1:7001/3"
    assert not target.auto_start_can_serve  # a password: an external server, named explicitly
    monkeypatch.setenv("REDIS_URL", "unix://:pw-in-url@/run/redis/redis.sock?db=2")
    unix = load_settings().redis_target
    assert (unix.socket_path, unix.db, unix.password, unix.is_unix) == (
        "/run/redis/redis.sock",
        2,
        "pw-in-url",
        True,
    )
    assert unix.url() == "unix://:***@/run/redis/redis.sock?db=2"
    assert not unix.auto_start_can_serve
    monkeypatch.delenv("REDIS_URL")
    default = load_settings().redis_target
    assert (default.host, default.port, default.auto_start_can_serve) == ("localhost", 6379, True)


def test_data_dir_is_resolved_once_from_home_and_relative_paths(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """REDIS_DATA_DIR with `~`, or relative as a .env holds it, resolves to one real folder
    (symlinks too); the journal, the local store and Redis's files are all named in it."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    (tmp_path / ".env").write_text("REDIS_DATA_DIR=~/vechnost-data\n")
    settings = load_settings()
    assert settings.redis_data_dir == home / "vechnost-data"
    files = settings.data_dir
    assert files.root == home / "vechnost-data"
    assert files.journal == home / "vechnost-data" / "journal.jsonl"
    assert files.local_store_dir == home / "vechnost-data" / "store"
    assert files.config.parent == files.journal.parent == files.log.parent
    (tmp_path / ".env").write_text("REDIS_DATA_DIR=relative/data\n")
    assert load_settings().data_dir.root == tmp_path / "relative" / "data"
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / ".env").write_text("REDIS_DATA_DIR=link/../link\n")
    assert load_settings().data_dir.root == tmp_path / "real"
