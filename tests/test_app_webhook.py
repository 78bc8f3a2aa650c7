"""End to end: ``vechnost run`` with BOT_MODE=webhook, as real replica processes on one
real redis-server, behind the Telegram-like pusher (per-chat order, next update after a
2xx, Retry-After honoured).

Checked: players whose updates alternate between two replicas get every card once and
lose no draw; setWebhook runs once for both replicas and deleteWebhook never; a wrong
secret is refused; a duplicate update_id is processed once; Redis SIGKILLed and
restarted turns updates into 503 + Retry-After that land later, in order, with no fork;
SIGTERM stops readiness first and finishes the update in flight; a replica SIGKILLed
after sending its card, before or after writing its draw, but before its answer does not
make the redelivery deal a second card.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.support.fake_bot_api import Fault
from tests.support.redis_server import RedisServer
from tests.support.storage_helpers import endpoint_of
from tests.support.webhook_bot import NEXT, SECRET, BotReplica, Player, WebhookBotApi, progress_of
from tests.support.webhook_pusher import SECRET_HEADER, WebhookPusher
from vechnost_bot.storage import RedisStorage, connect_redis

pytestmark = pytest.mark.slow


@pytest.fixture
async def api() -> AsyncIterator[WebhookBotApi]:
    """The fake Bot API with Telegram's webhook side."""
    async with WebhookBotApi() as fake:
        yield fake


@pytest.fixture
def redis_aof(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server that keeps every acknowledged write across a SIGKILL (AOF,
    fsync always), with a password."""
    server = RedisServer(
        tmp_path / "redis",
        password="e2e-redis-pass-9d8f",
        extra_args=("--appendonly", "yes", "--appendfsync", "always"),
    ).start()
    yield server
    server.stop()


@pytest.fixture
async def replicas() -> AsyncIterator[list[BotReplica]]:
    """Replicas a test starts are killed by pid afterwards if still running."""
    started: list[BotReplica] = []
    yield started
    for replica in started:
        await replica.kill()


def _ordered(pusher: WebhookPusher) -> bool:
    """Every chat's updates got their 2xx in push order (ids are pushed increasing)."""
    chats = {d.chat_id for d in pusher.deliveries}
    return all(pusher.delivered_ids(chat) == sorted(pusher.delivered_ids(chat)) for chat in chats)


async def _post(url: str, body: dict[str, object], secret: str | None) -> int:
    headers = {} if secret is None else {SECRET_HEADER: secret}
    async with aiohttp.ClientSession() as http, http.post(url, json=body, headers=headers) as r:
        return r.status


async def test_two_replicas_share_the_games_each_card_once(
    api: WebhookBotApi, redis_aof: RedisServer, tmp_path: Path, replicas: list[BotReplica]
) -> None:
    """Two replicas on one Redis, two players whose updates alternate between them:
    progress 1..12 without a gap, no card twice. setWebhook ran once (the second replica
    found it set as configured), a wrong or missing secret got 403, a duplicate
    update_id was answered without being processed again, and stopping both replicas
    (exit 0) never called deleteWebhook."""
    a = BotReplica("a", tmp_path, api, redis_aof.url)
    replicas.append(await a.start())
    await a.ready()
    await _wait(lambda: any(e.get("event") == "webhook_set" for e in a.events()))
    b = BotReplica("b", tmp_path, api, redis_aof.url)
    replicas.append(await b.start())
    await b.ready()
    await _wait(lambda: any(e.get("event") == "webhook_unchanged" for e in b.events()))
    assert api.calls_of("setWebhook") == 1
    assert api.webhook["url"] == "https://bot.example.test/telegram/webhook"
    assert api.webhook["secret_token"] == SECRET
    assert sorted(api.webhook["allowed_updates"]) == ["callback_query", "message"]

    message = {"message": {"message_id": 1, "date": 0, "chat": {"id": 5, "type": "private"},
                           "from": {"id": 5, "is_bot": False, "first_name": "X"},
                           "text": "/help"}}  # fmt: skip
    assert await _post(a.url, {**message, "update_id": 900001}, "wrong-secret") == 403
    assert await _post(b.url, {**message, "update_id": 900001}, None) == 403
    assert api.replies(5) == []

    async with WebhookPusher([a.url, b.url], SECRET, balance="round_robin") as pusher:
        api.pusher = pusher
        players = [Player(api, 701), Player(api, 702)]
        await asyncio.gather(*(p.begin() for p in players))
        for _ in range(11):
            await asyncio.gather(*(p.draw() for p in players))
        await pusher.wait_idle()
    for player in players:
        assert player.check() == 0
        assert len(player.dealt()[0]) == 12
    assert {d.target for d in pusher.deliveries} == {a.url, b.url}
    assert _ordered(pusher)
    # No refusal; a connection that broke in flight is retried, as Telegram does.
    refused = [a for a in pusher.attempts if a.status is not None and a.status != 200]
    assert refused == [], refused

    # Telegram resends an update whose answer it missed: the copy is not processed.
    replies = len(api.replies(5))
    assert await _post(a.url, {**message, "update_id": 900002}, SECRET) == 200
    await api.wait_reply(5, since=0)
    replies = len(api.replies(5))
    assert await _post(b.url, {**message, "update_id": 900002}, SECRET) == 200
    assert await _post(a.url, {**message, "update_id": 900002}, SECRET) == 200
    await asyncio.sleep(0.3)
    assert len(api.replies(5)) == replies

    assert await a.terminate() == 0
    assert await b.terminate() == 0
    assert api.calls_of("deleteWebhook") == 0
    assert api.calls_of("getUpdates") == 0


async def test_redis_killed_updates_wait_and_land_in_order(
    api: WebhookBotApi, redis_aof: RedisServer, tmp_path: Path, replicas: list[BotReplica]
) -> None:
    """Redis SIGKILLed for about 4 s mid-game, then started again: updates meanwhile are
    answered 503 with Retry-After (never served from a replica's memory), Telegram's
    redelivery lands once Redis is back, each chat in order, and the games go on with no
    draw lost and no card twice."""
    extra = {"WEBHOOK_RETRY_BUDGET": "1"}
    a = BotReplica("a", tmp_path, api, redis_aof.url, extra=extra)
    b = BotReplica("b", tmp_path, api, redis_aof.url, extra=extra)
    replicas += [await a.start(), await b.start()]
    await asyncio.gather(a.ready(), b.ready())
    async with WebhookPusher([a.url, b.url], SECRET, balance="round_robin") as pusher:
        api.pusher = pusher
        players = [Player(api, 801), Player(api, 802)]
        await asyncio.gather(*(p.begin() for p in players))
        for _ in range(3):
            await asyncio.gather(*(p.draw() for p in players))
        redis_aof.kill()
        killed = time.monotonic()
        drawing = asyncio.gather(*(p.draw() for p in players))
        await asyncio.sleep(4.0)
        redis_aof.start()
        restarted = time.monotonic()
        await drawing
        for _ in range(3):
            await asyncio.gather(*(p.draw() for p in players))
        await pusher.wait_idle()
    for player in players:
        player.check()
        assert len(player.dealt()[0]) == 8
    refused = [t for t in pusher.attempts if t.status == 503]
    assert refused, "no update was refused while Redis was away"
    assert all(t.retry_after is not None and t.retry_after >= 1 for t in refused)
    late = [(t.update_id, round(t.started - restarted, 2)) for t in refused
            if not killed <= t.started <= restarted + 5]  # fmt: skip
    assert late == [], late
    assert _ordered(pusher)
    assert pusher.dropped == []
    events = [e.get("event") for r in (a, b) for e in r.events()]
    assert "storage_unavailable_update_deferred" in events
    assert await a.terminate() == 0
    assert await b.terminate() == 0


async def test_sigterm_drains_the_update_in_flight(
    api: WebhookBotApi, redis_aof: RedisServer, tmp_path: Path, replicas: list[BotReplica]
) -> None:
    """SIGTERM while a card is being sent (the Bot API answers after 2 s): /readyz turns
    503 at once, the update in flight still finishes and gets its 200, and the process
    exits 0 without deleting the webhook."""
    a = BotReplica("a", tmp_path, api, redis_aof.url)
    replicas.append(await a.start())
    await a.ready()
    async with WebhookPusher([a.url], SECRET) as pusher, aiohttp.ClientSession() as http:
        api.pusher = pusher
        player = Player(api, 901)
        await player.begin()
        api.fail("sendPhoto", Fault(deliver=True, delay=2.0), chat_id=901)
        since = len(api.calls)
        update_id = await api.press(901, NEXT, language="en")
        await api.wait_for(lambda c: c.method == "sendPhoto", since=since)
        assert a.process is not None
        a.process.send_signal(signal.SIGTERM)
        await _wait_async(lambda: _status_or_none(a, http), 503, timeout=1.5)
        await pusher.wait_idle(timeout=20)
    assert [(d.update_id, d.status) for d in pusher.deliveries][-1] == (update_id, 200)
    assert await a.terminate() == 0
    events = [e.get("event") for e in a.events()]
    assert events.index("webhook_draining") < events.index("webhook_server_stopped")
    assert api.calls_of("deleteWebhook") == 0


async def test_replica_killed_after_its_draw_does_not_deal_twice(
    api: WebhookBotApi, redis_aof: RedisServer, tmp_path: Path, replicas: list[BotReplica]
) -> None:
    """Replica A draws card k, sends it (the Bot API shows it but holds the answer), and
    is SIGKILLed before its write and its 200. Telegram redelivers the tap to B once A's
    lease is gone: B's random source, seeded by the update id, chooses card k again, not
    a card k+1; the next tap deals k+1."""
    extra = {"WEBHOOK_PROCESS_TIMEOUT": "2"}
    async with _a_then_b(api, redis_aof, tmp_path, replicas, extra) as (a, b, pusher):
        player = await _at_card_3(api, 1001)
        api.fail("sendPhoto", Fault(deliver=True, delay=30.0), chat_id=1001)
        since = len(api.calls)
        update_id = await api.press(1001, NEXT, language="en")
        shown = await api.wait_for(lambda c: c.method == "sendPhoto", since=since)
        await a.kill()
        delivery = await pusher.wait_delivered(update_id)
        player.draws += 1
        await player.draw()
    assert progress_of(shown) == 4
    assert delivery.target == b.url
    assert player.check() == 1  # card 4 shown again by B (A's answer never came)
    assert [number for number, _ in player.dealt()[0]] == [1, 2, 3, 4, 5]
    assert await b.terminate() == 0


async def test_replica_killed_after_its_write_does_not_deal_again(
    api: WebhookBotApi, redis_aof: RedisServer, tmp_path: Path, replicas: list[BotReplica]
) -> None:
    """Replica A draws card 4, sends it, writes the draw (session, table and stats in one
    write) while the Bot API holds its removal of card 3's keyboard, and is SIGKILLed
    before its 200. Telegram redelivers the tap to B once A's lease is gone: B finds the
    tap in the session and shows card 4 again, as A showed it, instead of dealing card 5;
    the next tap deals card 5, and the stats count 5 cards."""
    direct = RedisStorage(connect_redis(endpoint_of(redis_aof), socket_timeout=2))
    async with _a_then_b(api, redis_aof, tmp_path, replicas) as (a, b, pusher):
        player = await _at_card_3(api, 1101)
        api.fail("editMessageReplyMarkup", Fault(deliver=True, delay=30.0), chat_id=1101)
        since = len(api.calls)
        update_id = await api.press(1101, NEXT, language="en")
        await api.wait_for(lambda c: c.method == "editMessageReplyMarkup", since=since)
        await _wait_async(lambda: _cards_drawn(direct, 1101), 4, timeout=5)
        await a.kill()
        delivery = await pusher.wait_delivered(update_id)
        player.draws += 1
        await player.draw()
        # The draw's records are written after its card is sent (the reply awaited).
        await _wait_async(lambda: _stats_drawn(direct, 1101), 5, timeout=5)
        stats = await direct.get_user_stats(1101)
        await direct.close()
    shown = [c for c in api.calls[since:] if c.chat_id == 1101 and progress_of(c) is not None]
    assert [progress_of(c) for c in shown] == [4, 4, 5]
    assert shown[1].params["caption"] == shown[0].params["caption"]
    assert shown[1].params["reply_markup"] == shown[0].params["reply_markup"]
    assert delivery.target == b.url
    assert player.check() == 1  # card 4 shown again by B, not a card 5 for the same tap
    assert [number for number, _ in player.dealt()[0]] == [1, 2, 3, 4, 5]
    assert stats is not None
    assert stats.cards_drawn == 5
    assert any(e.get("event") == "update_redelivered" for e in b.events())
    assert await b.terminate() == 0


@asynccontextmanager
async def _a_then_b(
    api: WebhookBotApi,
    redis: RedisServer,
    tmp_path: Path,
    replicas: list[BotReplica],
    extra: dict[str, str] | None = None,
) -> AsyncIterator[tuple[BotReplica, BotReplica, WebhookPusher]]:
    """Replicas A and B, ready, behind a pusher that tries A first and B when A does not
    answer."""
    a = BotReplica("a", tmp_path, api, redis.url, extra=extra or {})
    b = BotReplica("b", tmp_path, api, redis.url, extra=extra or {})
    replicas += [await a.start(), await b.start()]
    await asyncio.gather(a.ready(), b.ready())
    async with WebhookPusher([a.url, b.url], SECRET) as pusher:
        api.pusher = pusher
        yield a, b, pusher


async def _at_card_3(api: WebhookBotApi, chat_id: int) -> Player:
    """A player in the acquaintance deck who has been dealt three cards."""
    player = Player(api, chat_id)
    await player.begin()
    for _ in range(2):
        await player.draw()
    return player


async def _cards_drawn(storage: RedisStorage, chat_id: int) -> int:
    session = await storage.get_session(chat_id)
    return sum(len(ids) for ids in session.drawn.values()) if session else 0


async def _stats_drawn(storage: RedisStorage, user_id: int) -> int | None:
    stats = await storage.get_user_stats(user_id)
    return None if stats is None else stats.cards_drawn


async def _status_or_none(replica: BotReplica, http: aiohttp.ClientSession) -> int | None:
    try:
        return await replica.readyz(http)
    except aiohttp.ClientError:
        return None


async def _wait_async(probe: object, expected: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await probe() == expected:  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not {expected!r} within {timeout}s")


async def _wait(check: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
