"""The real ``vechnost run`` in webhook mode, as replicas behind the webhook pusher.

:class:`WebhookBotApi` is the fake Bot API with Telegram's webhook side: ``setWebhook``
and ``getWebhookInfo`` keep and report what was set, and every update a test injects
(``send_message``, ``press``, ``act``) is pushed by a :class:`WebhookPusher` to the
replicas instead of waiting for getUpdates. :class:`BotReplica` is one ``vechnost run``
process (BOT_MODE=webhook) with its own ports and data dir, stopped or killed by pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.env import bot_env, log_events
from tests.support.fake_bot_api import DEFAULT_TOKEN, ApiCall, FakeBotApi
from tests.support.redis_server import free_port
from tests.support.webhook_pusher import WebhookPusher

__all__ = [
    "NEXT",
    "PATH",
    "PUBLIC_URL",
    "SECRET",
    "BotReplica",
    "Player",
    "WebhookBotApi",
    "progress_of",
    "tally",
]

SECRET = "e2e-webhook-secret_0123456789"
PUBLIC_URL = "https://bot.example.test/telegram/webhook"  # what setWebhook is given
PATH = "/telegram/webhook"
NEXT = "N:a:1:q"  # "next card" in the acquaintance deck, level 1, questions


class WebhookBotApi(FakeBotApi):
    """The fake Bot API whose updates are pushed to a webhook (set :attr:`pusher`)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pusher: WebhookPusher | None = None
        self.webhook: dict[str, Any] = {}
        self._push_ids = itertools.count(1)

    async def inject(self, update: Mapping[str, Any], *, force: bool = False) -> int:
        """Push the update (with a new update_id) through the pusher; its id."""
        del force
        assert self.pusher is not None, "set api.pusher first"
        return self.pusher.push({**update, "update_id": next(self._push_ids)})

    async def _api_setWebhook(  # noqa: N802 - the Bot API's name
        self, params: dict[str, Any], _f: dict[str, bytes]
    ) -> bool:
        self.webhook = {
            "url": params.get("url", ""),
            "secret_token": params.get("secret_token"),
            "allowed_updates": params.get("allowed_updates"),
            "max_connections": int(params.get("max_connections") or 40),
        }
        return True

    async def _api_getWebhookInfo(  # noqa: N802 - the Bot API's name
        self, _p: dict[str, Any], _f: dict[str, bytes]
    ) -> dict[str, Any]:
        info: dict[str, Any] = {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": 0,
        }
        if self.webhook:
            info["max_connections"] = self.webhook["max_connections"]
            if self.webhook["allowed_updates"] is not None:
                info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    def calls_of(self, method: str) -> int:
        """How many times the bot called ``method``."""
        return sum(call.method == method for call in self.calls)


@dataclass
class BotReplica:
    """One ``vechnost run`` process in webhook mode."""

    name: str
    directory: Path
    api: FakeBotApi
    redis_url: str
    extra: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    health_port: int = field(default_factory=free_port)
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        """Where the pusher posts (the replica's own listener, behind the 'balancer')."""
        return f"http://127.0.0.1:{self.port}{PATH}"

    @property
    def stderr(self) -> Path:
        return self.directory / f"{self.name}.stderr"

    def env(self) -> dict[str, str]:
        settings = {
            "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
            "TELEGRAM_PACING": "false",
            "BOT_MODE": "webhook",
            "WEBHOOK_URL": PUBLIC_URL,
            "WEBHOOK_SECRET": SECRET,
            "WEBHOOK_HOST": "127.0.0.1",
            "WEBHOOK_PORT": str(self.port),
            "WEBHOOK_PATH": PATH,
            "REDIS_URL": self.redis_url,
            "REDIS_AUTO_START": "false",
            "REDIS_DATA_DIR": str(self.directory / f"data-{self.name}"),
            "REDIS_HEALTH_CHECK_INTERVAL": "0.5",
            "HEALTH_PORT": str(self.health_port),
            "LOG_FORMAT": "json",
            "LOG_LEVEL": "INFO",
            "RATE_LIMIT_UPDATES": "1000",
        }
        return bot_env(self.api.base_url, **{**settings, **self.extra})

    async def start(self) -> BotReplica:
        handle = self.stderr.open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "vechnost_bot", "run",
                cwd=self.directory, env=self.env(), stdin=asyncio.subprocess.DEVNULL,
                stdout=handle, stderr=handle, start_new_session=True,
            )  # fmt: skip
        finally:
            handle.close()
        return self

    async def ready(self, timeout: float = 40.0) -> BotReplica:
        """Wait until the webhook's /readyz answers 200 (and the storage is on Redis)."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.process is not None
                assert self.process.returncode is None, self.tail()
                with contextlib.suppress(aiohttp.ClientError, ValueError):
                    if await self.readyz(http) == 200:
                        status = await self.status(http)
                        if status["storage"]["mode"] == "redis":
                            return self
                await asyncio.sleep(0.1)
        raise TimeoutError(f"replica {self.name} not ready: {self.tail()}")

    async def readyz(self, http: aiohttp.ClientSession) -> int:
        async with http.get(f"http://127.0.0.1:{self.port}/readyz") as response:
            return response.status

    async def status(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get(f"http://127.0.0.1:{self.health_port}/status") as response:
            result: dict[str, Any] = await response.json()
            return result

    def events(self) -> list[dict[str, Any]]:
        return log_events(self.stderr.read_text(encoding="utf-8", errors="replace"))

    def tail(self, lines: int = 30) -> str:
        if not self.stderr.exists():
            return ""
        return "\n".join(self.stderr.read_text(errors="replace").splitlines()[-lines:])

    async def terminate(self, timeout: float = 40.0) -> int:
        """SIGTERM and wait; the exit code."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.process.wait(), timeout)

    async def kill(self) -> None:
        """SIGKILL by pid, as a crash (or an OOM kill) would."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGKILL)
            await self.process.wait()


@dataclass
class Player:
    """One chat playing the acquaintance deck through the pusher.

    A step is pushed and awaited until Telegram got its 2xx (the next one is pushed only
    then, as a player taps the newest card). What the chat saw is read from the Bot API's
    record at the end: see :meth:`dealt`.
    """

    api: WebhookBotApi
    chat: int
    draws: int = 0  # taps on "next card" that got their 2xx (after the first card)

    async def step(self, action: str, value: str) -> int:
        pusher = self.api.pusher
        assert pusher is not None
        if action == "say":
            update_id = await self.api.send_message(self.chat, value, language="en")
        else:
            update_id = await self.api.press(self.chat, value, language="en")
        await pusher.wait_delivered(update_id)
        return update_id

    async def begin(self) -> None:
        await self.step("say", "/start")
        await self.step("tap", "T:a")
        await self.step("tap", "V:a:1")
        while not self.shown():
            await self.step("tap", NEXT)  # the opening cards are not counted

    async def draw(self) -> None:
        await self.step("tap", NEXT)
        self.draws += 1

    def shown(self) -> list[tuple[int, str]]:
        """Every numbered card the chat was sent: (progress, image digest), in order."""
        shown = []
        for call in self.api.calls:
            progress = progress_of(call)
            if call.chat_id == self.chat and call.delivered and progress is not None:
                digest = self.api.photo_digest(call)
                assert digest is not None
                shown.append((progress, digest))
        return shown

    def dealt(self) -> tuple[list[tuple[int, str]], int]:
        """The cards dealt, and how many were sent again: an update processed a second
        time after a deferral or a crash (its 503 or its missing answer) shows the same
        card at the same place again; that is a re-send, not a second draw."""
        dealt: list[tuple[int, str]] = []
        for card in self.shown():
            if not dealt or dealt[-1] != card:
                dealt.append(card)
        return dealt, len(self.shown()) - len(dealt)

    def check(self) -> int:
        """No draw lost (progress 1, 2, 3 … and one card per acknowledged tap) and no card
        dealt twice; the number of re-sends."""
        dealt, resent = self.dealt()
        progress = [number for number, _ in dealt]
        assert progress == list(range(1, self.draws + 2)), progress
        digests = [digest for _, digest in dealt]
        assert len(set(digests)) == len(digests), "a card was dealt twice"
        return resent


def progress_of(call: ApiCall) -> int | None:
    """The card number a sendPhoto's caption shows (``… · 4/40``), or None."""
    if call.method != "sendPhoto":
        return None
    match = re.search(r"(\d+)/(\d+)", call.params.get("caption") or "")
    return int(match.group(1)) if match else None


def tally(players: list[Player]) -> dict[str, int]:
    """What the players saw, summed: draws lost (acknowledged taps with no card of their
    own), extra draws (a tap that dealt two), cards dealt twice, and re-sends."""
    figures = {"draws": 0, "draws_lost": 0, "extra_draws": 0, "repeats": 0, "resent": 0}
    for player in players:
        dealt, resent = player.dealt()
        expected = player.draws + 1
        final = max((number for number, _ in dealt), default=0)
        digests = [digest for _, digest in dealt]
        figures["draws"] += expected
        figures["draws_lost"] += max(0, expected - final)
        figures["extra_draws"] += max(0, final - expected)
        figures["repeats"] += len(digests) - len(set(digests))
        figures["resent"] += resent
    return figures
