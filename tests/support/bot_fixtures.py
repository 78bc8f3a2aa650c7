"""The fixtures of the bot suites: fixture decks, the bot on an in-memory storage, and a
HybridStorage on a real redis-server (registered in ``tests/conftest.py``).

A suite says how many cards a deck holds with a module-level ``PER_DECK``; a suite that
needs another bot (another read timeout, names) defines its own ``bot``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import RedisFactory
from tests.support.bot_harness import Harness, running_bot
from tests.support.decks import write_decks
from vechnost_bot.game.content import Library, load_library
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage.hybrid import HybridStorage
from vechnost_bot.storage.memory import InMemoryStorage


@pytest.fixture(scope="module")
def library(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Library:
    """Fixture decks with the suite's ``PER_DECK`` cards each."""
    per_deck: int = request.module.PER_DECK
    return load_library(write_decks(tmp_path_factory.mktemp("decks"), per_deck=per_deck))


@pytest.fixture
async def bot(library: Library) -> AsyncIterator[Harness]:
    """The bot on an in-memory storage, polling a fresh fake Bot API."""
    async with running_bot(InMemoryStorage(), library) as harness:
        yield harness


@pytest.fixture
async def redis_storage(
    redis_factory: RedisFactory, tmp_path: Path
) -> AsyncIterator[HybridStorage]:
    """A HybridStorage in Redis mode on a fresh real redis-server."""
    server = redis_factory(password="bot-pass")
    storage = HybridStorage(local_dir=tmp_path / "local")
    try:
        await storage.start(RedisEndpoint("127.0.0.1", server.port, password=server.password))
        assert storage.mode == "redis"
        yield storage
    finally:
        await storage.close()
