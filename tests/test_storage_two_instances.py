"""Two HybridStorage instances in two processes on one Redis; one is cut off by a proxy."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from tests.conftest import RedisFactory
from tests.support.storage_helpers import endpoint_of
from tests.support.tcp_proxy import TcpProxy
from vechnost_bot.storage import RedisStorage, connect_redis

ROOT = Path(__file__).resolve().parent.parent


class _Worker:
    """One child process running tests/support/storage_worker.py."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def call(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(command).encode() + b"\n")
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout=10)
        answer: dict[str, Any] = json.loads(line)
        assert answer["ok"], answer
        return answer

    async def mode(self) -> str:
        return str((await self.call(op="status"))["status"]["mode"])

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.call(op="stop")
        try:
            await asyncio.wait_for(self.process.wait(), timeout=5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


async def _spawn(port: int, password: str, journal: Path) -> _Worker:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.storage_worker",
        str(port),
        password,
        str(journal),
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    assert process.stdout is not None
    ready = json.loads(await asyncio.wait_for(process.stdout.readline(), timeout=15))
    assert ready["ready"]
    return _Worker(process)


async def test_cut_off_instance_is_merged_never_overwritten(
    redis_factory: RedisFactory, tmp_path: Path
) -> None:
    """B is partitioned and draws from its local store while A draws in Redis; after B's
    failback every acknowledged draw of both is there: merged, never overwritten."""
    server = redis_factory(password="two-pass")
    proxy = await TcpProxy(server.port).start()
    a = await _spawn(server.port, "two-pass", tmp_path / "a")
    b = await _spawn(proxy.port, "two-pass", tmp_path / "b")
    try:
        only_b, both, only_a = range(1, 5), range(5, 9), range(9, 11)
        for chat in range(1, 11):
            await a.call(op="draw", chat=chat, card="init")
            assert (await b.call(op="get", chat=chat))["deck"] == ["init"]
        assert await b.mode() == "redis"

        proxy.cut()
        for chat in [*only_b, *both]:
            answer = await b.call(op="draw", chat=chat, card="b-cut")
            assert answer["deck"] == ["init", "b-cut"]
        assert await b.mode() == "memory"
        for chat in both:
            for card in ("a1", "a2", "a3"):
                await a.call(op="draw", chat=chat, card=card)
        for chat in only_a:
            await a.call(op="draw", chat=chat, card="a1")

        proxy.restore()
        for _ in range(200):
            if await b.mode() == "redis":
                break
            await asyncio.sleep(0.025)
        assert await b.mode() == "redis"
        status = (await b.call(op="status"))["status"]
        assert status["records_reconciled"] == len(only_b) + len(both)

        direct = RedisStorage(connect_redis(endpoint_of(server), socket_timeout=2))
        try:
            for chat in only_b:
                stored = await direct.get_session(chat)
                assert stored is not None
                assert stored.drawn["deck"] == ["init", "b-cut"]
            for chat in both:
                stored = await direct.get_session(chat)
                assert stored is not None
                assert stored.drawn["deck"] == ["init", "b-cut", "a1", "a2", "a3"]
            for chat in only_a:
                stored = await direct.get_session(chat)
                assert stored is not None
                assert stored.drawn["deck"] == ["init", "a1"]
        finally:
            await direct.close()
        assert (await b.call(op="get", chat=1))["deck"] == ["init", "b-cut"]
        assert (await b.call(op="get", chat=5))["deck"] == ["init", "b-cut", "a1", "a2", "a3"]
    finally:
        await a.close()
        await b.close()
        await proxy.stop()
