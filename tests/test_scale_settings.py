"""The Sentinel settings: REDIS_SENTINELS, REDIS_SENTINEL_MASTER, the sentinel password.

Parsed once into ``settings.redis_target.sentinel``; every mistake is one line naming
the variable (exit 2), and the rule "Sentinel means an external Redis" is enforced.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vechnost_bot.config import Settings, load_settings, parse_sentinels
from vechnost_bot.errors import ConfigError
from vechnost_bot.log import redact


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No setting or .env leaks in from the machine."""
    for name in list(Settings.model_fields):
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)


def test_sentinels_become_a_typed_target(monkeypatch: pytest.MonkeyPatch) -> None:
    """host:port entries (IPv6 in brackets, spaces ignored), the master name, the data
    servers' password from REDIS_PASSWORD; auto-start off without being asked."""
    monkeypatch.setenv("REDIS_SENTINELS", "s1:26379, [fd00::2]:26380 ,10.0.0.3:26381")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "vechnost")
    monkeypatch.setenv("REDIS_PASSWORD", "data-pass")
    settings = load_settings()
    target = settings.redis_target
    assert target.sentinel is not None
    assert target.sentinel.addresses == (("s1", 26379), ("fd00::2", 26380), ("10.0.0.3", 26381))
    assert target.sentinel.master == "vechnost"
    assert target.password == "data-pass"
    assert settings.redis_auto_start is False
    assert not target.auto_start_can_serve
    assert target.url() == "sentinel://:***@s1:26379,[fd00::2]:26380,10.0.0.3:26381/vechnost/0"
    assert "data-pass" not in repr(target)


def test_the_sentinel_password_comes_from_a_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """REDIS_SENTINEL_PASSWORD_FILE fills the sentinels' password (newline stripped); it
    is masked in logs and never in a repr."""
    secret = tmp_path / "sentinel-password"
    secret.write_text("sentinel-s3cret\n")
    settings = load_settings(
        redis_sentinels="127.0.0.1:26379",
        redis_sentinel_master="m",
        redis_sentinel_password_file=str(secret),
    )
    sentinel = settings.redis_target.sentinel
    assert sentinel is not None
    assert sentinel.password == "sentinel-s3cret"
    assert "sentinel-s3cret" not in repr(sentinel)
    assert "sentinel-s3cret" not in repr(settings)
    assert "sentinel-s3cret" not in redact("auth sentinel-s3cret")


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("s1", "is not host:port"),
        ("::1:26379", "an IPv6 address goes in brackets"),
        ("s1:0", "not a number from 1 to 65535"),
        ("s1:70000", "not a number from 1 to 65535"),
        ("s1:1,s1:1", "listed twice"),
        (" , ", "names no sentinel"),
    ],
)
def test_a_bad_sentinel_list_says_which_entry(text: str, words: str) -> None:
    """Each mistake in the list is named in the message."""
    with pytest.raises(ValueError, match=words):
        parse_sentinels(text)


@pytest.mark.parametrize(
    ("settings", "variable", "words"),
    [
        ({"redis_sentinels": "s:1"}, "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER is not"),
        ({"redis_sentinel_master": "m"}, "REDIS_SENTINEL_MASTER", "REDIS_SENTINELS is not"),
        (
            {"redis_sentinels": "s:1", "redis_sentinel_master": "m", "redis_url": "redis://r:6380"},
            "REDIS_URL",
            "master's address comes from the sentinels",
        ),
        (
            {"redis_sentinels": "s:1", "redis_sentinel_master": "m", "redis_auto_start": "true"},
            "REDIS_AUTO_START",
            "Sentinel means an external Redis",
        ),
        ({"redis_sentinels": "s", "redis_sentinel_master": "m"}, "REDIS_SENTINELS", "host:port"),
        (
            {"redis_sentinels": "s:1", "redis_sentinel_master": "a b"},
            "REDIS_SENTINEL_MASTER",
            "sentinel monitor",
        ),
    ],
)
def test_the_rules_are_one_line_naming_the_variable(
    settings: dict[str, str], variable: str, words: str
) -> None:
    """A broken rule is a ConfigError (exit 2) naming the variable to change."""
    with pytest.raises(ConfigError, match=words) as caught:
        load_settings(**settings)
    assert caught.value.variable == variable
    assert caught.value.exit_code == 2
    assert "\n" not in str(caught.value)


def test_the_default_redis_url_and_auto_start_false_are_fine() -> None:
    """.env.example's REDIS_URL (the default) and REDIS_AUTO_START=false go with Sentinel."""
    settings = load_settings(
        redis_sentinels="s:26379",
        redis_sentinel_master="m",
        redis_url="redis://localhost:6379/0",
        redis_auto_start="false",
    )
    assert settings.redis_target.sentinel is not None
    assert settings.redis_auto_start is False


def test_without_sentinels_nothing_changes() -> None:
    """No REDIS_SENTINELS: REDIS_URL's endpoint, auto-start as configured."""
    settings = load_settings(redis_url="redis://127.0.0.1:7000/1")
    assert settings.redis_target.sentinel is None
    assert settings.redis_target.where == "127.0.0.1:7000"
    assert settings.redis_auto_start is True
