"""The composition root in-process: start order, snapshot, readiness, stop twice."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from tests.support.decks import write_decks
from tests.support.fake_bot_api import DEFAULT_TOKEN, FakeBotApi
from tests.support.redis_server import RedisServer, free_port
from tests.support.waiting import wait_until
from vechnost_bot.app import VechnostApp, check_token
from vechnost_bot.config import Settings
from vechnost_bot.errors import ConfigError, TelegramTokenError
from vechnost_bot.game.content import load_library


def _settings(tmp_path: Path, api: FakeBotApi, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "telegram_bot_token": DEFAULT_TOKEN,
        "telegram_api_base_url": api.base_url,
        "telegram_file_base_url": api.file_base_url,
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "redis_auto_start": False,
        "redis_data_dir": tmp_path / "data",
        "health_port": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def test_check_token() -> None:
    """Missing and malformed tokens raise TelegramTokenError (exit code 2) without the value."""
    assert check_token(DEFAULT_TOKEN) == DEFAULT_TOKEN
    with pytest.raises(TelegramTokenError, match="not set") as missing:
        check_token(None)
    assert missing.value.exit_code == 2
    with pytest.raises(TelegramTokenError, match="malformed") as bad:
        check_token("12345:short")
    assert "short" not in str(bad.value)


async def test_memory_mode_start_snapshot_stop(tmp_path: Path) -> None:
    """Without Redis the app runs in memory mode: ready, status degraded, game playable."""
    library = load_library(write_decks(tmp_path / "decks", per_deck=3))
    async with FakeBotApi() as api:
        app = VechnostApp(_settings(tmp_path, api), library=library)
        assert app.snapshot()["status"] == "starting"
        assert not app.ready()
        try:
            await app.start()
            assert app.ready()
            snapshot = app.snapshot()
            assert snapshot["status"] == "degraded"
            assert snapshot["bot"] == {
                "polling": True, "updates_handled": 0, "username": api.username,
                "cards_sent": 0, "file_ids_reused": 0,
            }  # fmt: skip
            assert snapshot["storage"]["mode"] == "memory"  # type: ignore[index]
            commands = [c for c in api.calls if c.method == "setMyCommands"]
            assert len(commands) == 8  # default, ru, en, cs, and uk, be, kk, sk clients
            since = len(api.calls)
            await api.send_message(5, "/start")
            reply = await api.wait_reply(5, since=since)
            assert reply.params["text"].startswith("Hi")
            assert app.health is not None
            url = f"http://127.0.0.1:{app.health.port}/readyz"
            async with aiohttp.ClientSession() as http, http.get(url) as response:
                assert response.status == 200
        finally:
            await app.stop()
            await app.stop()
        assert not app.polling


async def test_external_redis_gives_status_ok(tmp_path: Path, redis_server: RedisServer) -> None:
    """With a reachable Redis the storage runs in Redis mode and the status is ok."""
    library = load_library(write_decks(tmp_path / "decks", per_deck=3))
    async with FakeBotApi() as api:
        app = VechnostApp(_settings(tmp_path, api, redis_url=redis_server.url), library=library)
        try:
            await app.start()
            await wait_until(  # Redis is taken up in the background, after polling starts
                lambda: app.snapshot()["status"] == "ok", interval=0.05, what="status ok"
            )
            snapshot = app.snapshot()
            assert snapshot["status"] == "ok"
            assert snapshot["redis"]["source"] == "external"  # type: ignore[index]
        finally:
            await app.stop()


async def test_rejected_token_stops_what_started(tmp_path: Path) -> None:
    """A 401 on getMe raises TelegramTokenError; stop() still cleans up."""
    bad = "222222222:AAThisTokenIsRejectedByTheFakeApi_yy"
    library = load_library(write_decks(tmp_path / "decks", per_deck=3))
    async with FakeBotApi(bad_tokens=[bad]) as api:
        app = VechnostApp(_settings(tmp_path, api, telegram_bot_token=bad), library=library)
        try:
            with pytest.raises(TelegramTokenError, match="rejected"):
                await app.start()
        finally:
            await app.stop()
        assert not app.ready()


async def test_health_port_in_use_is_a_config_error(tmp_path: Path) -> None:
    """A taken HEALTH_PORT is one clear ConfigError naming the variable, and nothing leaks."""
    library = load_library(write_decks(tmp_path / "decks", per_deck=3))
    async with FakeBotApi() as api:
        app = VechnostApp(_settings(tmp_path, api, health_port=api.port), library=library)
        try:
            with pytest.raises(ConfigError, match="HEALTH_PORT") as caught:
                await app.start()
            assert caught.value.variable == "HEALTH_PORT"
        finally:
            await app.stop()
        assert not app.polling
