"""End to end: the real ``vechnost run`` process against the fake Bot API.

A scripted player plays 30 cards while the auto-started Redis is SIGKILLed and
comes back; then the language changes and the game goes on; then SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.env import bot_env, log_events
from tests.support.fake_bot_api import DEFAULT_TOKEN, ApiCall, FakeBotApi
from tests.support.redis_server import free_port

pytestmark = pytest.mark.slow

BAD_TOKEN = "555555555:AAThisTokenTelegramWillRejectForSure_x"
CHAT = 777


def _env(tmp_path: Path, api_url: str, **extra: str) -> dict[str, str]:
    settings = {
        "TELEGRAM_BOT_TOKEN": DEFAULT_TOKEN,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "REDIS_DATA_DIR": str(tmp_path / "data"),
        "REDIS_HEALTH_CHECK_INTERVAL": "0.5",
        "HEALTH_PORT": str(free_port()),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "RATE_LIMIT_UPDATES": "1000",
    }
    return bot_env(api_url, **{**settings, **extra})


@dataclass
class BotProcess:
    """A running ``vechnost run`` child with its stderr in a file."""

    process: asyncio.subprocess.Process
    stderr: Path
    health_port: int

    def log_events(self) -> list[dict[str, Any]]:
        return log_events(self.stderr.read_text(encoding="utf-8", errors="replace"))

    async def status(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.health_port}/status"
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            result: dict[str, Any] = await response.json()
            return result

    async def wait_status(self, predicate: Any, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        last: dict[str, Any] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, ValueError):
                last = await self.status()
                if predicate(last):
                    return last
            await asyncio.sleep(0.2)
        raise AssertionError(f"status never matched within {timeout}s: {last}")


async def _spawn(tmp_path: Path, env: dict[str, str]) -> BotProcess:
    stderr = tmp_path / "bot.stderr"
    handle = stderr.open("wb")
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vechnost_bot", "run",
            cwd=tmp_path, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=handle, stderr=handle,
        )  # fmt: skip
    finally:
        handle.close()
    return BotProcess(process, stderr, int(env.get("HEALTH_PORT", "0")))


@pytest.fixture
async def api() -> AsyncIterator[FakeBotApi]:
    """The fake Bot API, with one token it rejects."""
    async with FakeBotApi(bad_tokens=[BAD_TOKEN]) as fake:
        yield fake


def _progress(call: ApiCall) -> int:
    match = re.search(r"(\d+)/(\d+)", call.params.get("caption") or call.params.get("text", ""))
    assert match, call.params
    return int(match.group(1))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def test_player_survives_a_redis_kill(api: FakeBotApi, tmp_path: Path) -> None:
    """30 cards with Redis SIGKILLed mid-game: every update answered, no repeats, progress
    kept across the failover and a language switch; SIGTERM then stops it with exit 0."""
    bot = await _spawn(tmp_path, _env(tmp_path, api.base_url))
    redis_pids: set[int] = set()
    try:
        first = await bot.wait_status(
            lambda s: s["bot"]["polling"] and s["storage"]["mode"] == "redis", timeout=30
        )
        redis_pid = int(first["redis"]["pid"])
        redis_pids.add(redis_pid)
        pid_file = tmp_path / "data" / "redis.pid"
        if pid_file.exists():
            assert int(pid_file.read_text().strip()) == redis_pid

        async def step(action: str, value: str) -> ApiCall:
            since = len(api.calls)
            if action == "say":
                await api.send_message(CHAT, value, language="en")
            else:
                await api.press(CHAT, value, language="en")
            return await api.wait_reply(CHAT, since=since, timeout=20)

        reply = await step("say", "/start")
        assert "Acquaintance" in str(FakeBotApi.buttons(reply))
        await step("tap", "T:a")
        reply = await step("tap", "V:a:1")  # deals the first card (or the theme's opening)
        assert reply.method == "sendPhoto"
        while not re.search(r"\d+/\d+", reply.params.get("caption") or ""):
            reply = await step("tap", "N:a:1:q")  # the opening cards are not counted

        digests: list[str] = []
        for number in range(1, 31):
            if number == 11:
                os.kill(redis_pid, signal.SIGKILL)
            if number == 21:
                back = await bot.wait_status(
                    lambda s: (
                        s["storage"]["mode"] == "redis"
                        and s["redis"]["state"] == "running"
                        and s["redis"]["pid"] not in (None, redis_pid)
                    ),
                    timeout=30,
                )
                redis_pids.add(int(back["redis"]["pid"]))
                assert back["storage"]["failovers"] >= 1
            if number > 1:
                reply = await step("tap", "N:a:1:q")
            assert reply.method == "sendPhoto"
            assert _progress(reply) == number
            await asyncio.sleep(0.05)  # the bot records the file id after the API answers
            digest = api.photo_digest(reply)
            assert digest is not None
            digests.append(digest)
        assert len(set(digests)) == 30

        await step("say", "/language")
        reply = await step("tap", "L:ru")
        assert "30/" in reply.params["text"]
        for number in range(31, 36):
            reply = await step("tap", "N:a:1:q")
            assert _progress(reply) == number
            assert "Уровень 1" in reply.params["caption"]
            digest = api.photo_digest(reply)
            assert digest is not None
            digests.append(digest)
        # Russian images differ from English ones; the same card twice would show twice here.
        assert len(set(digests)) == 35

        final = await bot.status()
        assert (
            final["bot"]["updates_handled"] >= 39
        )  # /start, T, V (card 1), 29 N, /language, L, 5 N
        started = time.monotonic()
        bot.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(bot.process.wait(), 40)
        assert code == 0
        assert time.monotonic() - started < 40
        text = bot.stderr.read_text(encoding="utf-8")
        assert DEFAULT_TOKEN not in text
        events = {event.get("event") for event in bot.log_events()}
        assert {"vechnost_started", "vechnost_stopped", "bot_polling"} <= events
        for pid in redis_pids:
            for _ in range(50):
                if not _alive(pid):
                    break
                await asyncio.sleep(0.1)
    finally:
        if bot.process.returncode is None:
            bot.process.kill()
            await bot.process.wait()
        for pid in redis_pids:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("vechnost:")]


async def _run_to_exit(tmp_path: Path, env: dict[str, str], timeout: float = 40) -> str:
    bot = await _spawn(tmp_path, env)
    try:
        code = await asyncio.wait_for(bot.process.wait(), timeout)
    finally:
        if bot.process.returncode is None:
            bot.process.kill()
            await bot.process.wait()
    assert code == 2
    text = bot.stderr.read_text(encoding="utf-8")
    assert "Traceback" not in text
    return text


async def test_missing_or_malformed_token_exits_2(api: FakeBotApi, tmp_path: Path) -> None:
    """No token, or one that cannot be a token: one clear line, exit 2, nothing started."""
    env = _env(tmp_path, api.base_url)
    del env["TELEGRAM_BOT_TOKEN"]
    text = await _run_to_exit(tmp_path, env)
    assert _error_lines(text) == [line for line in text.splitlines() if line.strip()]
    assert len(_error_lines(text)) == 1
    assert "TELEGRAM_BOT_TOKEN is not set" in text
    text = await _run_to_exit(tmp_path, _env(tmp_path, api.base_url, TELEGRAM_BOT_TOKEN="abc:1"))
    assert len(_error_lines(text)) == 1
    assert "malformed" in text
    assert "abc:1" not in text
    assert api.calls == []


async def test_rejected_token_exits_2(api: FakeBotApi, tmp_path: Path) -> None:
    """A token Telegram answers 401 for: one clear line, exit 2, the token never printed."""
    text = await _run_to_exit(
        tmp_path,
        _env(tmp_path, api.base_url, TELEGRAM_BOT_TOKEN=BAD_TOKEN, REDIS_AUTO_START="false"),
    )
    lines = _error_lines(text)
    assert len(lines) == 1
    assert "rejected" in lines[0]
    assert BAD_TOKEN not in text


async def test_network_trouble_is_retried_and_sigterm_still_stops(tmp_path: Path) -> None:
    """Telegram unreachable: getMe is retried with backoff and logged; SIGTERM exits 0."""
    dead = f"http://127.0.0.1:{free_port()}/bot"
    bot = await _spawn(tmp_path, _env(tmp_path, dead, REDIS_AUTO_START="false"))
    try:
        deadline = time.monotonic() + 20
        attempts: list[dict[str, Any]] = []
        while time.monotonic() < deadline and len(attempts) < 2:
            await asyncio.sleep(0.2)
            attempts = [e for e in bot.log_events() if e.get("event") == "telegram_unreachable"]
        assert len(attempts) >= 2
        assert attempts[1]["retry_in"] > attempts[0]["retry_in"] * 0.9
        bot.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(bot.process.wait(), 30) == 0
    finally:
        if bot.process.returncode is None:
            bot.process.kill()
            await bot.process.wait()
