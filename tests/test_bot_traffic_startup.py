"""Start-up never waits on Redis: the bot answers at once from the local store while the
Redis lifecycle works in the background, even with a redis-server that hangs."""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.support.decks import write_decks
from tests.support.fake_bot_api import DEFAULT_TOKEN, FakeBotApi
from tests.support.redis_server import RedisServer, free_port
from tests.support.waiting import wait_until
from vechnost_bot.app import VechnostApp
from vechnost_bot.config import Settings
from vechnost_bot.game.content import load_library

_HANGING_SERVER = """#!/bin/sh
echo "Redis server v=7.2.4 sha=00000000:0 malloc=libc bits=64 build=0000000000000000"
if [ "$1" = "--version" ]; then exit 0; fi
echo $$ > "{pid_file}"
exec sleep 120
"""


def _settings(tmp_path: Path, api: FakeBotApi, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "telegram_bot_token": DEFAULT_TOKEN,
        "telegram_api_base_url": api.base_url,
        "telegram_file_base_url": api.file_base_url,
        "redis_url": f"redis://127.0.0.1:{free_port()}/0",
        "redis_data_dir": tmp_path / "data",
        "health_port": 0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


async def test_a_hanging_redis_server_does_not_delay_the_first_answer(tmp_path: Path) -> None:
    """A redis-server that prints its version and then hangs: the first /start is answered
    within a second or so (it used to take 31.6 s: 3 × 10 s attempts before polling), the
    bot serves from memory meanwhile, and stopping kills the hung child."""
    pid_file = tmp_path / "hung.pid"
    binary = tmp_path / "redis-server"
    binary.write_text(_HANGING_SERVER.format(pid_file=pid_file), encoding="utf-8")
    binary.chmod(0o755)
    library = load_library(write_decks(tmp_path / "decks", per_deck=3))
    async with FakeBotApi() as api:
        settings = _settings(
            tmp_path, api, redis_auto_start=True, redis_server_bin=binary,
            redis_startup_timeout=10,
        )  # fmt: skip
        app = VechnostApp(settings, library=library)
        try:
            started = time.monotonic()
            await app.start()
            since = len(api.calls)
            await api.send_message(5, "/start")
            reply = await api.wait_reply(5, since=since, timeout=10)
            elapsed = time.monotonic() - started
            assert reply.params["text"].startswith("Hi")
            assert elapsed < 2.5, elapsed
            assert app.ready()
            assert app.snapshot()["storage"]["mode"] == "memory"  # type: ignore[index]
            await wait_until(pid_file.exists, interval=0.05, what="the hung server spawned")
        finally:
            stopping = time.monotonic()
            await app.stop()
            assert time.monotonic() - stopping < 10
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        os.kill(pid, 9)
        raise AssertionError("the hung redis-server was left running")


async def test_the_storage_fails_back_once_redis_answers(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    """With a reachable Redis the bot starts in memory and goes to Redis by itself."""
    library = load_library(write_decks(tmp_path / "decks", per_deck=3))
    async with FakeBotApi() as api:
        app = VechnostApp(
            _settings(tmp_path, api, redis_url=redis_server.url, redis_auto_start=False),
            library=library,
        )
        try:
            await app.start()
            await wait_until(
                lambda: app.snapshot()["status"] == "ok", interval=0.05, what="status ok"
            )
            assert app.snapshot()["storage"]["mode"] == "redis"  # type: ignore[index]
        finally:
            await app.stop()
