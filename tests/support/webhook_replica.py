"""One webhook replica as its own process, for tests that SIGKILL it mid-request.

``python -m tests.support.webhook_replica --port P --redis-port R --name A --secret S``
serves :class:`~vechnost_bot.bot.webhook.WebhookServer` on 127.0.0.1:P with the real
:class:`~vechnost_bot.storage.RedisStorage` on 127.0.0.1:R as its dedup gate.
Processing an update is one visible effect in that Redis: the replica's name is
appended to ``replica-test:processed:<update_id>`` and the update id to
``replica-test:order:<chat>``. Two switches make a replica hang, so that a test can
kill it at a chosen point of a request:

* ``--hang-in-process ID``: before the effect (the replica dies with only its lease);
* ``--hang-after-done ID``: after the update was processed and marked done, before
  the answer leaves (the replica dies between its commit and its reply).

With ``--sentinel PORT`` (repeated) the replica reaches the master through
``Sentinel.master_for`` instead of ``--redis-port``, and a Redis error while
processing drops the pool and defers the update (503 + Retry-After), as the bot's
storage is to do in webhook mode: Telegram redelivers it once a master is elected.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tests.support.sentinel import MASTER_NAME
from tests.support.webhook_pusher import chat_of
from vechnost_bot.bot.webhook import UpdateDeferredError, WebhookServer
from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage import RedisStorage, connect_redis

PATH = "/telegram/webhook"


class _HangingGate:
    """The real storage gate; marking one chosen update done then never returns."""

    def __init__(self, storage: RedisStorage, hang_after_done: set[int]) -> None:
        self._storage = storage
        self._hang = {f"webhook:update:{update_id}" for update_id in hang_after_done}

    async def cache_add(self, key: str, value: bytes, ttl: float) -> bool:
        return await self._storage.cache_add(key, value, ttl)

    async def cache_get(self, key: str) -> bytes | None:
        return await self._storage.cache_get(key)

    async def cache_set(self, key: str, value: bytes, ttl: float) -> None:
        await self._storage.cache_set(key, value, ttl)
        if ttl > 0 and key in self._hang:
            await asyncio.Event().wait()


def _client(args: argparse.Namespace) -> aioredis.Redis:
    if not args.sentinel:
        return connect_redis(RedisEndpoint("127.0.0.1", args.redis_port), socket_timeout=2)
    sentinel = Sentinel([("127.0.0.1", port) for port in args.sentinel], socket_timeout=0.5)
    return sentinel.master_for(
        MASTER_NAME, socket_timeout=0.5, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0)
    )


async def _serve(args: argparse.Namespace) -> None:
    client = _client(args)
    storage = RedisStorage(client)

    async def process(update: dict[str, Any]) -> None:
        update_id = int(update["update_id"])
        if update_id in args.hang_in_process:
            await asyncio.Event().wait()
        try:
            async with client.pipeline(transaction=True) as pipe:
                pipe.rpush(f"replica-test:processed:{update_id}", args.name)
                pipe.rpush(f"replica-test:order:{chat_of(update)}", update_id)
                await pipe.execute()
        except RedisError as error:
            # The next try asks Sentinel (or the server) again for the master.
            await client.connection_pool.disconnect()
            raise UpdateDeferredError(type(error).__name__, retry_after=1) from error

    server = WebhookServer(
        host="127.0.0.1",
        port=args.port,
        path=PATH,
        secret=args.secret,
        process=process,
        gate=_HangingGate(storage, set(args.hang_after_done)),
        process_timeout=args.process_timeout,
        lease_margin=args.lease_margin,
        drain_timeout=1.0,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    await storage.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-port", type=int, default=0)
    parser.add_argument("--sentinel", type=int, action="append", default=[])
    parser.add_argument("--name", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--process-timeout", type=float, default=1.0)
    parser.add_argument("--lease-margin", type=float, default=0.3)
    parser.add_argument("--hang-in-process", type=int, action="append", default=[])
    parser.add_argument("--hang-after-done", type=int, action="append", default=[])
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args()))


if __name__ == "__main__":
    main()
