"""The Telegram-like webhook pusher against a tiny ASGI app served by a real uvicorn.

The pusher stands in for the Bot API server in the webhook tests, so its own
promises are checked here: one chat at a time in order, chats in parallel, the
secret header on every request, ``Retry-After`` honoured on a non-2xx, and a
redelivery to the next target when a connection fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from tests.support.redis_server import free_port
from tests.support.webhook_pusher import WebhookPusher, chat_of
from vechnost_bot.bot.webhook import AsgiServer

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Recorder:
    """A tiny ASGI app: records each request, holds it ``delay`` s, answers a scripted status."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.seen: list[tuple[int, int, str | None]] = []  # (chat, update_id, secret)
        self.in_flight: dict[int, int] = defaultdict(int)
        self.max_in_flight_per_chat = 0
        self.max_in_flight = 0
        self.statuses: dict[int, list[tuple[int, str | None]]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        update = json.loads(body)
        headers = dict(scope["headers"])
        secret = headers.get(b"x-telegram-bot-api-secret-token")
        chat = chat_of(update)
        self.seen.append((chat, update["update_id"], None if secret is None else secret.decode()))
        self.in_flight[chat] += 1
        self.max_in_flight_per_chat = max(self.max_in_flight_per_chat, self.in_flight[chat])
        self.max_in_flight = max(self.max_in_flight, sum(self.in_flight.values()))
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.in_flight[chat] -= 1
        script = self.statuses.get(update["update_id"])
        status, retry_after = script.pop(0) if script else (200, None)
        response_headers = [(b"content-length", b"0")]
        if retry_after is not None:
            response_headers.append((b"retry-after", retry_after.encode()))
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": b""})


@contextlib.asynccontextmanager
async def serve(app: Recorder) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn (the server the webhook uses) on a free port; its URL."""
    server = AsgiServer(app, "127.0.0.1", 0)
    await server.start()
    try:
        yield server.url + "/hook"
    finally:
        await server.stop()


def message(chat: int, text: str = "hi") -> dict[str, Any]:
    return {"message": {"message_id": 1, "date": 0, "chat": {"id": chat, "type": "private"},
                        "text": text}}  # fmt: skip


async def test_one_chat_at_a_time_in_order_and_chats_in_parallel() -> None:
    """Each chat's updates arrive one after the other in push order; chats overlap."""
    app = Recorder(delay=0.05)
    async with serve(app) as url, WebhookPusher([url], "s3cret") as pusher:
        pushed: dict[int, list[int]] = defaultdict(list)
        for _round in range(5):
            for chat in (1, 2, 3, 4):
                pushed[chat].append(pusher.push(message(chat)))
        await pusher.wait_idle()
    assert app.max_in_flight_per_chat == 1
    assert app.max_in_flight > 1
    for chat, ids in pushed.items():
        assert pusher.delivered_ids(chat) == ids
        assert [u for c, u, _ in app.seen if c == chat] == ids
    assert {secret for *_, secret in app.seen} == {"s3cret"}
    assert all(d.attempts == 1 and d.status == 200 for d in pusher.deliveries)


async def test_non_2xx_is_retried_after_retry_after_and_holds_the_chat() -> None:
    """A 503 with ``Retry-After`` is redelivered no sooner than asked, and the chat's
    next update waits for it; another chat is not held."""
    app = Recorder()
    async with serve(app) as url, WebhookPusher([url], None) as pusher:
        app.statuses[1] = [(503, "0.3"), (429, "0.2")]
        first = pusher.push({**message(7), "update_id": 1})
        second = pusher.push({**message(7), "update_id": 2})
        other = pusher.push({**message(8), "update_id": 3})
        await pusher.wait_idle()
    tries = pusher.attempts_for(first)
    assert [a.status for a in tries] == [503, 429, 200]
    assert tries[1].started - tries[0].finished >= 0.29
    assert tries[2].started - tries[1].finished >= 0.19
    assert pusher.delivered_ids(7) == [first, second]
    assert pusher.attempts_for(second)[0].started >= tries[2].finished
    assert pusher.attempts_for(other)[0].finished < tries[1].started
    assert [c for c, *_ in app.seen].count(7) == 4


async def test_no_answer_moves_to_the_next_target_and_redelivers() -> None:
    """A target that refuses connections is left for the next one; nothing is lost."""
    dead = f"http://127.0.0.1:{free_port()}/hook"
    app = Recorder()
    async with serve(app) as url, WebhookPusher([dead, url], "x") as pusher:
        ids = [pusher.push(message(5)) for _ in range(3)]
        await pusher.wait_idle()
    first = pusher.attempts_for(ids[0])
    assert first[0].target == dead
    assert first[0].status is None
    assert first[0].error
    assert first[1].target == url
    assert first[1].status == 200
    assert pusher.delivered_ids(5) == ids
    assert all(d.target == url for d in pusher.deliveries)


async def test_round_robin_spreads_requests_over_the_targets() -> None:
    """With ``balance="round_robin"`` consecutive requests alternate between targets."""
    one, two = Recorder(), Recorder()
    async with serve(one) as first, serve(two) as second:
        pusher = WebhookPusher([first, second], None, balance="round_robin")
        async with pusher:
            for _ in range(6):
                pusher.push(message(1))
            await pusher.wait_idle()
    assert [d.target for d in pusher.deliveries] == [first, second] * 3
    assert len(one.seen) == len(two.seen) == 3


async def test_gives_up_after_the_budget() -> None:
    """An update that never gets a 2xx is dropped once ``give_up_after`` has passed."""
    app = Recorder()
    async with serve(app) as url, WebhookPusher([url], None, give_up_after=0.3) as pusher:
        app.statuses[1] = [(500, "0.1")] * 20
        pusher.push({**message(1), "update_id": 1})
        started = time.monotonic()
        await pusher.wait_idle()
    assert pusher.dropped == [1]
    assert pusher.deliveries == []
    assert time.monotonic() - started < 2


def test_chat_of_reads_messages_and_callbacks() -> None:
    """Updates are queued by the chat of their message or of their callback's message."""
    assert chat_of(message(42)) == 42
    assert chat_of({"callback_query": {"id": "1", "message": message(9)["message"]}}) == 9
    assert chat_of({"poll": {}}) == 0


def test_a_pusher_needs_a_target() -> None:
    """No target is a programming error, said at once."""
    with pytest.raises(ValueError, match="target"):
        WebhookPusher([], None)
