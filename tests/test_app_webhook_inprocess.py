"""The composition root in webhook mode, in-process: two replicas (two VechnostApp) on
one real redis-server behind the pusher; setWebhook once, retried when Telegram fails;
readiness, metrics, the port in use; stop never deletes the webhook."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.decks import write_decks
from tests.support.fake_bot_api import DEFAULT_TOKEN, Fault
from tests.support.redis_server import RedisServer
from tests.support.webhook_bot import PATH, PUBLIC_URL, SECRET, WebhookBotApi
from tests.support.webhook_pusher import SECRET_HEADER, WebhookPusher
from vechnost_bot.app import VechnostApp
from vechnost_bot.config import Settings
from vechnost_bot.errors import ConfigError
from vechnost_bot.game.content import Library, load_library


@pytest.fixture
def library(tmp_path: Path) -> Library:
    return load_library(write_decks(tmp_path / "decks", per_deck=3))


@pytest.fixture
async def api() -> AsyncIterator[WebhookBotApi]:
    async with WebhookBotApi() as fake:
        yield fake


def _settings(
    tmp_path: Path, api: WebhookBotApi, redis: RedisServer, name: str, **overrides: object
) -> Settings:
    values: dict[str, object] = {
        "telegram_bot_token": DEFAULT_TOKEN,
        "telegram_api_base_url": api.base_url,
        "telegram_file_base_url": api.file_base_url,
        "telegram_pacing": False,
        "redis_url": redis.url,
        "redis_auto_start": False,
        "redis_data_dir": tmp_path / f"data-{name}",
        "health_port": 0,
        "bot_mode": "webhook",
        "webhook_url": PUBLIC_URL,
        "webhook_secret": SECRET,
        "webhook_port": 0,
        "webhook_path": PATH,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def _until(check: object, timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_two_replicas_set_the_webhook_once_and_serve_a_game(
    tmp_path: Path, api: WebhookBotApi, redis_server: RedisServer, library: Library
) -> None:
    """The first replica sets the webhook (URL, secret, update types); the second finds
    it set as configured and does not. Both are ready on /readyz (webhook port and health
    port), serve /metrics, and answer a player whose updates alternate between them.
    Stopping both never calls deleteWebhook."""
    one = VechnostApp(_settings(tmp_path, api, redis_server, "a"), library=library)
    two = VechnostApp(_settings(tmp_path, api, redis_server, "b"), library=library)
    try:
        await one.start()
        await _until(lambda: api.calls_of("setWebhook") == 1)
        assert api.webhook["secret_token"] == SECRET
        await two.start()
        registration = two._webhook_registration
        assert registration is not None
        await asyncio.wait_for(registration, 15)
        assert api.calls_of("setWebhook") == 1
        assert api.calls_of("getWebhookInfo") >= 2
        assert one.ready()
        assert two.ready()
        assert one.snapshot()["telegram"]["state"] == "webhook"
        assert one.webhook is not None
        assert two.webhook is not None
        assert one.health is not None
        base = f"http://127.0.0.1:{one.webhook.port}"
        async with aiohttp.ClientSession() as http:
            for url in (f"{base}/readyz", f"http://127.0.0.1:{one.health.port}/readyz"):
                async with http.get(url) as response:
                    assert response.status == 200, url
            async with http.get(f"{base}/metrics") as response:
                assert "vechnost_updates_deferred_total" in await response.text()
            async with http.post(one.webhook.url, json={"update_id": 1}) as response:
                assert response.status == 403
        targets = [one.webhook.url, two.webhook.url]
        async with WebhookPusher(targets, SECRET, balance="round_robin") as pusher:
            api.pusher = pusher
            reply = await api.act(5, "say", "/start")
            assert reply.params["text"].startswith("Hi")
            await api.act(5, "say", "/help")
            await pusher.wait_idle()
        assert {d.target for d in pusher.deliveries} == set(targets)
    finally:
        await one.stop()
        await two.stop()
        await one.stop()
    assert not one.ready()
    assert api.calls_of("deleteWebhook") == 0


async def test_a_failed_set_webhook_is_retried(
    tmp_path: Path, api: WebhookBotApi, redis_server: RedisServer, library: Library
) -> None:
    """Telegram refusing setWebhook once (a 500) does not stop the bot: it tries again."""
    api.fail("setWebhook", Fault(status=500))
    app = VechnostApp(_settings(tmp_path, api, redis_server, "a"), library=library)
    try:
        await app.start()
        await _until(lambda: api.webhook.get("url") == PUBLIC_URL, timeout=15)
        assert api.calls_of("setWebhook") == 2
    finally:
        await app.stop()


async def test_a_changed_secret_sets_the_webhook_again(
    tmp_path: Path, api: WebhookBotApi, redis_server: RedisServer, library: Library
) -> None:
    """getWebhookInfo cannot show the secret: the digest kept in Redis tells that the
    webhook was set with another one, so a replica with a new secret sets it again."""
    first = VechnostApp(_settings(tmp_path, api, redis_server, "a"), library=library)
    try:
        await first.start()
        await _until(lambda: api.calls_of("setWebhook") == 1)
    finally:
        await first.stop()
    second = VechnostApp(
        _settings(tmp_path, api, redis_server, "b", webhook_secret="another-secret-77"),
        library=library,
    )
    try:
        await second.start()
        await _until(lambda: api.calls_of("setWebhook") == 2)
        assert api.webhook["secret_token"] == "another-secret-77"
    finally:
        await second.stop()


async def test_webhook_port_in_use_is_a_config_error(
    tmp_path: Path, api: WebhookBotApi, redis_server: RedisServer, library: Library
) -> None:
    """A WEBHOOK_PORT another program holds: ConfigError naming WEBHOOK_PORT, and what
    had started is stopped."""
    app = VechnostApp(
        _settings(tmp_path, api, redis_server, "a", webhook_port=api.port), library=library
    )
    try:
        with pytest.raises(ConfigError) as error:
            await app.start()
        assert error.value.variable == "WEBHOOK_PORT"
    finally:
        await app.stop()


async def test_updates_are_refused_while_redis_is_away(
    tmp_path: Path, api: WebhookBotApi, redis_server: RedisServer, library: Library
) -> None:
    """Redis SIGKILLed: an update gets 503 with Retry-After (the gate and the records
    fail closed), while /healthz and /readyz stay 200 (liveness and readiness never
    depend on the shared Redis)."""
    app = VechnostApp(
        _settings(tmp_path, api, redis_server, "a", webhook_retry_budget=0.3), library=library
    )
    try:
        await app.start()
        assert app.webhook is not None
        redis_server.kill()
        body = {"update_id": 5, "message": {"message_id": 1, "date": 0, "text": "/help",
                                            "chat": {"id": 3, "type": "private"}}}  # fmt: skip
        base = f"http://127.0.0.1:{app.webhook.port}"
        async with aiohttp.ClientSession() as http:
            headers = {SECRET_HEADER: SECRET}
            async with http.post(app.webhook.url, json=body, headers=headers) as response:
                assert response.status == 503
                assert response.headers["Retry-After"] == "1"
            for path in ("/healthz", "/readyz"):
                async with http.get(base + path) as response:
                    assert response.status == 200, path
        assert api.replies(3) == []
    finally:
        await app.stop()
