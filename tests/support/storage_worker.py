"""A HybridStorage in its own process, driven by JSON lines on stdin (for two-instance tests).

Commands: {"op": "draw", "chat": 1, "card": "x"} -> the deck after the write;
{"op": "get", "chat": 1}; {"op": "status"}; {"op": "stop"}. Every answer is one
JSON line: {"ok": true, ...} or {"ok": false, "error": "..."}.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import structlog

from vechnost_bot.redis.events import RedisEndpoint
from vechnost_bot.storage import HybridStorage, Session


async def _serve(storage: HybridStorage, command: dict[str, Any]) -> dict[str, Any]:
    op = command["op"]
    if op == "draw":
        card = str(command["card"])

        def draw(session: Session) -> Session:
            session.drawn.setdefault("deck", []).append(card)
            return session

        written = await storage.update_session(int(command["chat"]), draw)
        return {"deck": written.drawn["deck"], "version": written.version}
    if op == "get":
        read = await storage.get_session(int(command["chat"]))
        return {"deck": None if read is None else read.drawn.get("deck", [])}
    if op == "status":
        return {"status": storage.status()}
    raise ValueError(f"unknown op {op}")


async def main() -> None:
    port, password, journal = int(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    storage = HybridStorage(local_dir=journal, probe_initial=0.05, probe_max=0.2)
    await storage.start(RedisEndpoint("127.0.0.1", port, password=password))
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ok": True, "ready": True}), flush=True)
    while line := await reader.readline():
        command = json.loads(line)
        if command["op"] == "stop":
            break
        try:
            answer = {"ok": True, **await _serve(storage, command)}
        except Exception as error:
            answer = {"ok": False, "error": repr(error)}
        print(json.dumps(answer), flush=True)
    await storage.stop()
    print(json.dumps({"ok": True, "stopped": True}), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
