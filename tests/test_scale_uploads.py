"""Card uploads are single-flight across replicas, through the storage's ``cache_add``.

Two CardSenders, each on its own HybridStorage (two replicas) on one real redis-server,
send the same uncached card at once: one uploads it, the other waits for its file id.
A claim left by a replica that died is waited for only ``upload_wait`` seconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram import Bot

from tests.conftest import RedisFactory
from tests.support.decks import write_decks
from tests.support.fake_bot_api import DEFAULT_TOKEN, FakeBotApi
from vechnost_bot.bot.cards import CardSender
from vechnost_bot.game.content import Card, Library, load_library
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage.hybrid import HybridStorage


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Library:
    """Fixture decks with three cards each."""
    return load_library(write_decks(tmp_path_factory.mktemp("decks"), per_deck=3))


@pytest.fixture
async def replicas(
    redis_factory: RedisFactory, tmp_path: Path
) -> AsyncIterator[tuple[HybridStorage, HybridStorage]]:
    """Two storages in Redis mode on one redis-server, as two replicas have."""
    server = redis_factory(password="uploads-pass")
    endpoint = RedisEndpoint("127.0.0.1", server.port, password=server.password)
    storages = (
        HybridStorage(local_dir=tmp_path / "a"),
        HybridStorage(local_dir=tmp_path / "b"),
    )
    for storage in storages:
        await storage.start(endpoint)
        assert storage.mode == "redis"
    try:
        yield storages
    finally:
        for storage in storages:
            await storage.close()


def _card(library: Library) -> Card:
    deck = library.deck("couples", 2, "questions")
    assert deck is not None
    return deck.cards[0]


async def test_two_replicas_upload_a_card_once(
    library: Library, replicas: tuple[HybridStorage, HybridStorage]
) -> None:
    """6 sends on each replica of one uncached card, at once: 1 upload in all, the other
    11 sends reuse its file id."""
    senders = [CardSender(storage) for storage in replicas]
    card = _card(library)
    async with FakeBotApi() as api:
        tg = Bot(DEFAULT_TOKEN, base_url=api.base_url, base_file_url=api.file_base_url)
        async with tg:
            messages = await asyncio.gather(
                *(
                    senders[n % 2].send(tg, 800 + n, card, "en", caption="1/3", footer="x")
                    for n in range(12)
                )
            )
    assert api.uploads == 1
    assert sum(sender.stats.reused for sender in senders) == 11
    assert len({m.photo[-1].file_id for m in messages}) == 1


async def test_a_dead_replicas_claim_is_waited_for_a_bounded_time(
    library: Library, replicas: tuple[HybridStorage, HybridStorage]
) -> None:
    """A claim whose replica died (it never stores a file id): the next sender waits
    ``upload_wait`` (0.3 s here), then uploads itself; later sends reuse that upload."""
    card = _card(library)
    sender = CardSender(replicas[1], upload_wait=0.3)
    async with FakeBotApi() as api:
        tg = Bot(DEFAULT_TOKEN, base_url=api.base_url, base_file_url=api.file_base_url)
        async with tg:
            fid_key = sender.file_id_key(tg.id, card, "en")
            assert await replicas[0].cache_add(f"{fid_key}:uploading", b"1", 60)
            started = time.monotonic()
            await sender.send(tg, 900, card, "en", caption="1/3", footer="x")
            waited = time.monotonic() - started
            await sender.send(tg, 901, card, "en", caption="1/3", footer="x")
    assert api.uploads == 1
    assert 0.3 <= waited < 5.0
    assert sender.stats.reused == 1
