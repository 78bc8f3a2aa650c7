"""``vechnost redis start|stop|status|ping [--json]``: the local Redis for operators.

``start`` leaves a daemonized redis-server running in the data dir after the
command exits (bots adopt it and never stop it); ``stop`` stops the server
recorded in the data dir; ``status`` and ``ping`` look at the server the bot
would use: ``REDIS_URL`` when it answers, else the one in the data dir.
Passwords are never printed.

Exit codes: 0 done; 1 failed (one line on stderr saying why); ``status`` 3 when
no Redis answers; ``ping`` 1 when no Redis answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from typing import Any

from redis.exceptions import RedisError as RedisClientError
from rich.console import Console
from rich.table import Table

from vechnost_bot.config import RedisEndpoint, Settings
from vechnost_bot.datadir import data_dir_lock, ensure_data_dir, read_int
from vechnost_bot.errors import VechnostError
from vechnost_bot.log import redact
from vechnost_bot.ops.snapshot import EXIT_NOT_RUNNING
from vechnost_bot.redis.autostart import (
    names_external,
    other_vechnost_clients,
    passwordless_warning,
)
from vechnost_bot.redis.manager import RedisManager, Stopped
from vechnost_bot.redis.probe import password_rejected_message, probe
from vechnost_bot.redis.process import LOOPBACK, is_our_redis_process, pid_alive

__all__ = ["command", "local_facts", "probe_facts"]

_LOCK_WAIT = 30.0


def command(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``vechnost redis <action>``; returns the exit code."""
    if settings.log_level != "DEBUG":
        # The one-line result says it all; LOG_LEVEL=DEBUG shows the lifecycle events.
        logging.getLogger("vechnost_bot.redis").setLevel(logging.CRITICAL)
    action: str = args.action
    as_json = bool(getattr(args, "json", False))
    if action == "start":
        return asyncio.run(_start(settings, as_json))
    if action == "stop":
        return asyncio.run(_stop(settings, as_json))
    if action == "status":
        return asyncio.run(_status(settings, as_json))
    if action == "ping":
        return asyncio.run(_ping(settings, as_json))
    print(f"vechnost: unknown redis action {action!r}", file=sys.stderr)
    return 2


def _emit(as_json: bool, data: dict[str, Any], text: str) -> None:
    print(json.dumps(data) if as_json else text)


async def _start(settings: Settings, as_json: bool) -> int:
    try:
        return await _start_server(settings, as_json)
    except VechnostError as error:
        if as_json:
            # Scripts read stdout: a JSON answer there too; main() prints the line on stderr.
            _emit_failure("start", redact(str(error)))
        raise


def _emit_failure(action: str, error: str) -> None:
    print(json.dumps({"action": action, "ok": False, "error": error}))


async def _start_server(settings: Settings, as_json: bool) -> int:
    external = settings.redis_target
    probed = await probe_facts(external)
    if external.password is not None and probed.get("auth_failed"):
        # The bot would stop right here (memory mode): a wrong password is not fixed by a
        # local server on another port.
        message = password_rejected_message(external)
        if as_json:
            _emit_failure("start", message)
        print(f"vechnost: {message}", file=sys.stderr)
        return 1
    manager = RedisManager(settings, started_by="cli")
    ensure_data_dir(manager.data_dir)
    replaced: Stopped | None = None
    async with data_dir_lock(manager.files, _LOCK_WAIT):
        already = await manager.adopt()
        if not already:
            if manager.unresponsive is not None:
                replaced = await manager.stop_unresponsive()
            await manager.start()
        pid, port = manager.pid, manager.port
        version = await manager.version()
        await manager.detach()
    # A Redis already answering at REDIS_URL (and not ours) is what the bot will use.
    bot_uses_external = bool(probed.get("answering")) and probed.get("pid") != pid
    # An external REDIS_URL that is down is waited for; the bot never uses this server then.
    waits_for = (
        None
        if bot_uses_external
        else await asyncio.to_thread(names_external, external, settings.data_dir)
    )
    data: dict[str, Any] = {
        "action": "start",
        "ok": True,
        "bot_uses_external": bot_uses_external,
        "bot_waits_for_external": waits_for is not None,
        "already_running": already,
        "pid": pid,
        "port": port,
        "version": version,
        "data_dir": str(manager.data_dir),
        "replaced_hung": None
        if replaced is None
        else {"pid": replaced.pid, "port": replaced.port, "how": replaced.how},
    }
    if replaced is not None and not as_json:
        print(
            f"vechnost: Redis pid {replaced.pid} in {manager.data_dir} did not answer PING "
            f"(hung); stopped it ({_how_text(replaced)}) and started a new one on its port",
            file=sys.stderr,
        )
    if bot_uses_external and not as_json:
        print(
            f"vechnost: note: a Redis already answers at REDIS_URL "
            f"({external.where}); the bot uses that one, not this server",
            file=sys.stderr,
        )
    if waits_for is not None and not as_json:
        print(
            f"vechnost: note: {waits_for}; the bot waits for that server and does not use this one",
            file=sys.stderr,
        )
    verb = "already running" if already else "started"
    _emit(
        as_json,
        data,
        f"Redis {verb}: pid {pid}, {LOOPBACK}:{port}, version {version}, "
        f"data dir {manager.data_dir}",
    )
    return 0


def _how_text(stopped: Stopped) -> str:
    """How the stop sequence ended the server, for people."""
    how = {
        "shutdown-save": "SHUTDOWN SAVE",
        "sigterm": "SIGTERM",
        "sigkill": "SIGKILL",
        "terminate": "terminated",
        "already-exited": "it had already exited",
        "left-running": "left running: it cannot save",
    }[stopped.how]
    if stopped.answered:
        return (
            how if stopped.how == "shutdown-save" else f"{how} after SHUTDOWN SAVE did not end it"
        )
    return f"{how} after no answer"


async def _stop(settings: Settings, as_json: bool) -> int:
    manager = RedisManager(settings)
    if not manager.data_dir.is_dir():
        _emit(as_json, {"action": "stop", "stopped": False}, "Redis is not running (no data dir)")
        return 0
    users: list[int] = []
    async with data_dir_lock(manager.files, _LOCK_WAIT):
        if await manager.adopt():
            endpoint = manager.endpoint
            if endpoint is not None:
                try:
                    users = await other_vechnost_clients(endpoint)
                except (RedisClientError, OSError, TimeoutError):
                    users = []
            stopped = await manager.stop()
        else:
            # Recorded in the data dir but hung: the same stop sequence, without SHUTDOWN.
            stopped = await manager.stop_unresponsive()
        if stopped is None:
            _emit(
                as_json,
                {"action": "stop", "stopped": False, "data_dir": str(manager.data_dir)},
                f"Redis is not running in {manager.data_dir}",
            )
            return 0
    if stopped.how == "left-running":
        message = f"Redis pid {stopped.pid} was not stopped: {stopped.reason}"
        if as_json:
            _emit_failure("stop", message)
        else:
            print(f"vechnost: {message}", file=sys.stderr)
        return 1
    if users:
        print(
            f"vechnost: warning: {len(users)} running bot process(es) used this server; "
            "their monitors will start it again (stop the bots first)",
            file=sys.stderr,
        )
    detail = "" if stopped.how == "shutdown-save" else f", {_how_text(stopped)}"
    _emit(
        as_json,
        {
            "action": "stop",
            "stopped": True,
            "pid": stopped.pid,
            "how": stopped.how,
            "answered": stopped.answered,
            "data_dir": str(manager.data_dir),
        },
        f"Redis stopped (pid {stopped.pid}{detail}); data kept in {manager.data_dir}",
    )
    return 0


async def probe_facts(endpoint: RedisEndpoint, wait: float = 1.0) -> dict[str, Any]:
    """The probe of ``endpoint`` (see :mod:`vechnost_bot.redis.probe`) as JSON-safe facts."""
    found = await probe(endpoint, wait, details=True)
    facts: dict[str, Any] = {
        "answering": found.answers,
        "kind": found.kind,
        "host": endpoint.host or None,
        "port": endpoint.port or None,
        "socket": endpoint.socket_path,
    }
    if not found.answers:
        facts["error"] = found.detail
        facts["auth_failed"] = found.kind == "auth_refused"
        facts["hung"] = found.kind == "hung"
        return facts
    facts.update(
        pid=found.pid,
        version=found.version,
        latency_ms=found.latency_ms,
        uptime_seconds=found.info.get("uptime_in_seconds"),
        memory_bytes=found.info.get("used_memory"),
        memory_human=found.info.get("used_memory_human"),
        keys=found.info.get("keys"),
        passwordless=found.passwordless,
    )
    return facts


async def local_facts(settings: Settings) -> dict[str, Any]:
    """What the data dir says about our server, and whether it answers (no side effects)."""
    files = settings.data_dir
    manager = RedisManager(settings)
    state = manager.state_file()
    facts: dict[str, Any] = {
        "data_dir": str(files.root),
        "started_by": state.get("started_by"),
        "answering": False,
    }
    pid = read_int(files.pid)
    port = state.get("port")
    try:
        password: str | None = files.password.read_text(encoding="utf-8").strip() or None
    except OSError:
        password = None
    facts.update(pid=pid, port=port)
    if pid is None or not isinstance(port, int) or not pid_alive(pid):
        facts["pid"] = None
        return facts
    if is_our_redis_process(pid, files.root, port) is False:
        facts.update(pid=None, stale_pid=pid)
        return facts
    probed = await probe_facts(RedisEndpoint(host=LOOPBACK, port=port, password=password))
    if probed.get("answering") and probed.get("pid") not in (None, pid):
        facts.update(pid=None, stale_pid=pid)
        return facts
    facts.update(probed)
    # Alive, ours (as far as the OS can tell) and silent: hung, e.g. SIGSTOPped.
    facts["hung"] = not probed.get("answering") and not probed.get("auth_failed")
    facts["pid"] = pid
    return facts


async def _which(settings: Settings) -> tuple[str | None, dict[str, Any], dict[str, Any]]:
    """(source, facts of the server in use, facts of the data dir server)."""
    external = settings.redis_target
    external_facts, local = await asyncio.gather(probe_facts(external), local_facts(settings))
    if external_facts.get("answering"):
        external_facts["url"] = external.url()
        return "external", external_facts, local
    if local.get("answering"):
        return "auto-started", local, local
    return None, external_facts, local


async def _status(settings: Settings, as_json: bool) -> int:
    source, facts, local = await _which(settings)
    data: dict[str, Any] = {
        "running": source is not None,
        "source": source,
        "pid": facts.get("pid"),
        "host": facts.get("host"),
        "port": facts.get("port"),
        "socket": facts.get("socket"),
        "version": facts.get("version"),
        "uptime_seconds": facts.get("uptime_seconds"),
        "memory_bytes": facts.get("memory_bytes"),
        "memory_human": facts.get("memory_human"),
        "keys": facts.get("keys"),
        "data_dir": local["data_dir"],
        "started_by": local.get("started_by") if source == "auto-started" else None,
        "redis_url": settings.redis_target.url(),
        "error": None if source else _no_redis_reason(facts, local),
        "warning": passwordless_warning(settings.redis_target)
        if source == "external" and facts.get("passwordless")
        else None,
    }
    if as_json:
        print(json.dumps(data))
    else:
        table = Table(title="Redis", show_header=False)
        table.add_column("what", style="bold")
        table.add_column("value")
        for key, value in data.items():
            table.add_row(key.replace("_", " "), "-" if value is None else str(value))
        Console(soft_wrap=True).print(table)
    if data["warning"] and not as_json:
        print(f"vechnost: warning: {data['warning']}", file=sys.stderr)
    return 0 if source else EXIT_NOT_RUNNING


def _no_redis_reason(facts: dict[str, Any], local: dict[str, Any]) -> str:
    if local.get("hung"):
        return (
            f"our Redis pid {local.get('pid')} in the data dir does not answer PING (hung); "
            "`vechnost redis stop` stops it"
        )
    return str(facts.get("error") or "no Redis answers")


async def _ping(settings: Settings, as_json: bool) -> int:
    source, facts, local = await _which(settings)
    if source is None:
        reason = facts.get("error") or "not running"
        if local.get("pid") is None:
            local_text = "not running"
        elif local.get("hung"):
            local_text = f"pid {local.get('pid')} does not answer (hung; `vechnost redis stop`)"
        else:
            local_text = "not answering"
        message = (
            f"no Redis answers: REDIS_URL {settings.redis_target.url()}: {reason}; "
            f"data dir server: {local_text}"
        )
        if as_json:
            print(json.dumps({"pong": False, "error": message}))
        else:
            print(f"vechnost: {message}", file=sys.stderr)
        return 1
    where = facts.get("socket") or f"{facts.get('host')}:{facts.get('port')}"
    data = {
        "pong": True,
        "source": source,
        "host": facts.get("host"),
        "port": facts.get("port"),
        "socket": facts.get("socket"),
        "latency_ms": facts.get("latency_ms"),
        "passwordless": bool(facts.get("passwordless")),
    }
    _emit(as_json, data, f"PONG from {where} ({source}) in {facts.get('latency_ms')} ms")
    return 0
