"""A HybridStorage in a child process, for the tests that kill it or starve its disk.

``python -m tests.support.storage_process <local dir> <mode> [port password]``

Modes:
- ``draw N``: draw N cards into chats 1..N (memory mode unless a port is given),
  printing ``acked <chat>`` after each acknowledged write, then wait to be killed.
- ``fill [recover]``: limit the file size (RLIMIT_FSIZE) so the local store's commits
  fail, write until the failure shows in status(), print status (with ``recover``:
  lift the limit and print status once the retries got through) and stop; the last
  line is JSON with ``writes_at_risk``.
- ``reconcile``: start against Redis and reconcile (the test kills it meanwhile).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import structlog

from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage import HybridStorage, Session


def _endpoint(args: list[str]) -> RedisEndpoint | None:
    if len(args) >= 2:
        return RedisEndpoint("127.0.0.1", int(args[0]), password=args[1])
    return None


async def _draw(storage: HybridStorage, chats: int) -> None:
    for chat in range(1, chats + 1):

        def mutate(session: Session, chat: int = chat) -> Session:
            session.drawn.setdefault("deck", []).append(f"card-{chat}")
            return session

        await storage.update_session(chat, mutate)
        await storage.incr("draws")
        print(f"acked {chat}", flush=True)
        await asyncio.sleep(0.001)


async def main() -> None:
    directory, mode, *rest = sys.argv[1:]
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    if mode == "draw":
        count, rest = int(rest[0]), rest[1:]
        storage = HybridStorage(local_dir=Path(directory), probe_initial=0.05, probe_max=0.2)
        await storage.start(_endpoint(rest))
        await _draw(storage, count)
        print("done", flush=True)
        await asyncio.sleep(120)
    elif mode == "fill":
        storage = HybridStorage(client_factory=None, local_dir=Path(directory))
        await storage.start(None)
        await storage.local.wait_saved()
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        size = sum(p.stat().st_size for p in Path(directory).iterdir() if p.is_file())
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 4096, resource.RLIM_INFINITY))
        chat = 0
        while storage.status()["degraded_reason"] is None and chat < 20_000:
            chat += 1
            big = [f"card-{chat}-{n}-{'x' * 40}" for n in range(20)]
            await storage.update_session(chat, lambda s, big=big: s.drawn.update(deck=big))
            await asyncio.sleep(0.002)
        print(json.dumps({"during": storage.status(), "acked": chat}), flush=True)
        if rest and rest[0] == "recover":  # space again: the retries commit everything
            resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY,) * 2)
            for _ in range(100):
                if storage.status()["degraded_reason"] is None and not storage.local.at_risk:
                    break
                await asyncio.sleep(0.1)
            print(json.dumps({"recovered": storage.status()}), flush=True)
        await storage.stop()
        print(json.dumps({"writes_at_risk": storage.writes_at_risk}), flush=True)
    elif mode == "reconcile":
        storage = HybridStorage(local_dir=Path(directory))
        print("starting", flush=True)
        await storage.start(_endpoint(rest))
        print(json.dumps({"status": storage.status()}), flush=True)
        await storage.stop()
    else:
        raise SystemExit(f"unknown mode {mode}")
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
