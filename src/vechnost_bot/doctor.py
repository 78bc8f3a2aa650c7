"""``vechnost doctor``: check configuration, binary, port, data dir, Redis and Telegram.

Each check prints ``OK``, ``WARN`` or ``FAIL`` with what it found and, when not
OK, what to do. Nothing is started, created or changed. Exit code 0 when no
check FAILs, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from vechnost_bot.config import Settings
from vechnost_bot.datadir import data_dir_problem
from vechnost_bot.errors import RedisBinaryInvalidError, RedisBinaryNotFoundError
from vechnost_bot.ops.telegram_check import check_telegram
from vechnost_bot.redis.autostart import names_external, passwordless_warning
from vechnost_bot.redis.commands import local_facts, probe_facts
from vechnost_bot.redis.discovery import RedisBinary, discover
from vechnost_bot.redis.probe import password_rejected_message
from vechnost_bot.redis.process import is_port_free
from vechnost_bot.redis.sentinel import SentinelAnswers, ask_sentinels

__all__ = ["Check", "command", "redis_checks", "run_checks"]

Level = Literal["OK", "WARN", "FAIL"]
_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
_HUNG_FIX = (
    "run `vechnost redis stop` (it stops a hung server: SIGTERM, then SIGKILL), "
    "or leave it to the bot: its monitor or its next start replaces it"
)
_INSTALL_HINT = (
    "install Redis (apt install redis-server · brew install redis · Memurai on Windows), "
    "or pip install 'vechnost-bot[embedded]', or set REDIS_SERVER_BIN"
)


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the report."""

    level: Level
    name: str
    detail: str
    fix: str | None = None


def command(settings: Settings, args: argparse.Namespace) -> int:
    """Run every check, print the report; 0 when nothing FAILs."""
    del args
    if settings.log_level != "DEBUG":
        logging.getLogger("vechnost_bot.redis").setLevel(logging.CRITICAL)
    checks = asyncio.run(run_checks(settings))
    width = max(len(check.name) for check in checks)
    for check in checks:
        print(f"{check.level:<4}  {check.name:<{width}}  {check.detail}")
        if check.fix:
            print(f"{'':<4}  {'':<{width}}  fix: {check.fix}")
    failed = sum(check.level == "FAIL" for check in checks)
    warned = sum(check.level == "WARN" for check in checks)
    print(f"\n{len(checks)} checks: {failed} failed, {warned} warnings")
    return 1 if failed else 0


async def run_checks(settings: Settings) -> list[Check]:
    """All checks, in the order they are printed: configuration, then Redis's, then
    Telegram's (asked while the Redis checks run)."""
    telegram = asyncio.create_task(check_telegram(settings))
    redis = await redis_checks(settings)
    found = [Check(t.level, t.name, t.detail, t.fix) for t in await telegram]
    return [_check_config(settings), *redis, *found]


async def redis_checks(settings: Settings) -> list[Check]:
    """Binary, port, data dir, and what the bot will do for Redis."""
    if settings.redis_target.sentinel is not None:
        return await _sentinel_checks(settings)
    binary_check, _binary = await _check_binary(settings)
    # Both probes wait up to 1 s on a hung server: run them side by side.
    external_facts, local = await asyncio.gather(
        probe_facts(settings.redis_target), local_facts(settings)
    )
    external = await asyncio.to_thread(names_external, settings.redis_target, settings.data_dir)
    return [
        binary_check,
        _check_port(settings, external_facts, local, external),
        _check_data_dir(settings.data_dir.root),
        _check_reachability(settings, binary_check, external_facts, local, external),
    ]


async def _sentinel_checks(settings: Settings) -> list[Check]:
    """With REDIS_SENTINELS the master is external and found through the sentinels: no
    binary or port to check, only the sentinels, the master they name, the data dir."""
    target = settings.redis_target.sentinel
    assert target is not None
    answers, facts = await asyncio.gather(ask_sentinels(target), probe_facts(settings.redis_target))
    return [
        _check_sentinels(answers, target.master),
        _check_data_dir(settings.data_dir.root),
        _check_master(settings, answers, facts),
    ]


def _check_sentinels(answers: SentinelAnswers, master: str) -> Check:
    name = "sentinels"
    heard = f"{answers.answered} of {answers.total} sentinels answer"
    missing = "; ".join(answers.errors)
    if answers.master is None:
        return Check(
            "FAIL",
            name,
            f"{heard}, and none names a master {master!r} that is up"
            + (f" ({missing})" if missing else ""),
            "check REDIS_SENTINELS (host:port of each sentinel), REDIS_SENTINEL_MASTER (the "
            "name in `sentinel monitor`) and REDIS_SENTINEL_PASSWORD",
        )
    named = f"{heard}; master {master!r} is at {_address(answers.master)}"
    if answers.errors:
        return Check(
            "WARN",
            name,
            f"{named} (not answering: {missing})",
            "start the sentinels that do not answer: a failover needs a majority of them",
        )
    return Check("OK", name, named)


def _check_master(settings: Settings, answers: SentinelAnswers, facts: dict[str, Any]) -> Check:
    name = "redis"
    if facts.get("answering") and facts.get("passwordless"):
        return Check(
            "WARN",
            name,
            f"the master answers PING (Redis {facts.get('version')}) without a password: "
            "the bot will use it, and so can anyone who reaches it",
            passwordless_warning(settings.redis_target).split("; ", 1)[1],
        )
    if facts.get("answering"):
        return Check(
            "OK",
            name,
            f"the master answers PING (Redis {facts.get('version')}, "
            f"{facts.get('latency_ms')} ms): the bot will use it",
        )
    error = str(facts.get("error") or "not reachable")
    if facts.get("auth_failed"):
        fix = "fix REDIS_PASSWORD (or REDIS_PASSWORD_FILE): it is the data servers' password"
    elif answers.master is None:
        fix = "fix the sentinels first (above)"
    else:
        fix = f"start the master at {_address(answers.master)}, or let the sentinels fail over"
    return Check(
        "FAIL",
        name,
        f"the master does not answer ({error}): in webhook mode updates get 503 until it "
        "does, in polling mode the bot runs from memory",
        fix,
    )


def _address(address: tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _check_config(settings: Settings) -> Check:
    target = settings.redis_target.sentinel
    redis = (
        f"REDIS_SENTINELS={target.hosts} REDIS_SENTINEL_MASTER={target.master}"
        if target is not None
        else f"REDIS_URL={settings.redis_target.url()} "
        f"REDIS_AUTO_START={str(settings.redis_auto_start).lower()}"
    )
    detail = f"{redis} REDIS_DATA_DIR={settings.data_dir.root}"
    if settings.token is None:
        dotenv = Path.cwd() / ".env"
        where = f"{dotenv} has none" if dotenv.is_file() else f"there is no {dotenv}"
        return Check(
            "WARN",
            "configuration",
            f"{detail}; TELEGRAM_BOT_TOKEN is not set ({where})",
            "put TELEGRAM_BOT_TOKEN in .env (the bot reads .env from its working directory; "
            "./deploy.sh doctor uses what ./deploy.sh started the bot with)",
        )
    return Check("OK", "configuration", detail)


async def _check_binary(settings: Settings) -> tuple[Check, RedisBinary | None]:
    level: Level = "FAIL" if settings.redis_auto_start else "WARN"
    try:
        binary = await discover(settings.redis_server_bin)
    except RedisBinaryNotFoundError as error:
        return Check(level, "redis binary", str(error), _INSTALL_HINT), None
    except RedisBinaryInvalidError as error:
        return Check(level, "redis binary", str(error), "fix or unset REDIS_SERVER_BIN"), None
    detail = f"{binary.path} ({binary.origin}), {binary.flavor} {binary.version}"
    return Check("OK", "redis binary", detail), binary


def _check_port(
    settings: Settings,
    external_facts: dict[str, Any],
    local: dict[str, Any],
    external: str | None,
) -> Check:
    endpoint = settings.redis_target
    if endpoint.is_unix:
        return Check("OK", "port", "REDIS_URL is a unix socket; no TCP port to check")
    where = endpoint.where
    if endpoint.host not in _LOOPBACK_NAMES:
        return Check("OK", "port", f"{where} is on another host; auto-start would use loopback")
    if is_port_free(endpoint.port):
        if external is not None:
            return Check("OK", "port", f"{where} is free; kept for REDIS_URL's external server")
        return Check("OK", "port", f"{where} is free; auto-start will use it")
    if external_facts.get("answering"):
        return Check("OK", "port", f"{where} is served by a Redis that accepts REDIS_URL")
    if endpoint.password is not None and external_facts.get("auth_failed"):
        return Check(
            "WARN",
            "port",
            f"{where} is served by a Redis that rejected the password in REDIS_URL",
            "fix the password in REDIS_URL",
        )
    ours = local.get("port") == endpoint.port
    if local.get("answering") and ours:
        return Check("OK", "port", f"{where} is served by our auto-started Redis")
    if local.get("hung") and ours:
        return Check(
            "WARN",
            "port",
            f"{where} is held by our Redis (pid {local.get('pid')}), which does not answer "
            "PING (hung)",
            _HUNG_FIX,
        )
    if external_facts.get("auth_failed"):
        return Check(
            "WARN",
            "port",
            f"{where} is owned by another Redis that refuses our credentials; it is left alone "
            "and auto-start will use a free port",
            "put its password in REDIS_URL to use it, or ignore",
        )
    return Check(
        "WARN",
        "port",
        f"{where} is used by another program; auto-start will use a free port",
        "free the port or choose another one in REDIS_URL",
    )


def _check_data_dir(path: Path) -> Check:
    name = "data dir"
    if not path.exists():
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            return Check(
                "FAIL",
                name,
                f"{path} cannot be created: {parent} is a file",
                "set REDIS_DATA_DIR to a folder this user can write",
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            return Check(
                "FAIL",
                name,
                f"{path} cannot be created: {parent} is not writable",
                "set REDIS_DATA_DIR to a folder this user can write",
            )
        return Check("OK", name, f"{path} does not exist yet; it will be created (0700)")
    problem = data_dir_problem(path)
    if problem is not None:
        text, _, fix = problem.partition("; ")
        return Check("FAIL", name, f"{path}: {text}; the bot will run from memory", fix or None)
    if not os.access(path, os.W_OK | os.X_OK):
        return Check(
            "FAIL",
            name,
            f"{path} is not writable; the bot will run from memory",
            f"chown or chmod u+rwx {path}",
        )
    mode = stat.S_IMODE(path.stat().st_mode)
    return Check("OK", name, f"{path} exists, writable, mode {mode:04o}")


def _check_reachability(
    settings: Settings,
    binary_check: Check,
    external_facts: dict[str, Any],
    local: dict[str, Any],
    external: str | None,
) -> Check:
    name = "redis"
    endpoint = settings.redis_target
    if external_facts.get("answering") and external_facts.get("passwordless"):
        return Check(
            "WARN",
            name,
            f"REDIS_URL answers PING (Redis {external_facts.get('version')}) without a "
            "password: the bot will use it, and so can any local user",
            passwordless_warning(endpoint).split("; ", 1)[1],
        )
    if external_facts.get("answering"):
        return Check(
            "OK",
            name,
            f"REDIS_URL answers PING (Redis {external_facts.get('version')}, "
            f"{external_facts.get('latency_ms')} ms): the bot will use it",
        )
    error = str(external_facts.get("error") or "not reachable")
    # Checked before the data dir: the bot stops here and runs from memory.
    if endpoint.password and external_facts.get("auth_failed"):
        return Check(
            "FAIL",
            name,
            f"{password_rejected_message(endpoint)} ({error}): the bot will run from memory "
            "and `vechnost redis start` exits 1",
            "fix the password in REDIS_URL",
        )
    if external is not None:
        recorded = endpoint.auto_start_can_serve
        return Check(
            "WARN",
            name,
            f"{external}, and it does not answer ({error}): the bot will run from memory "
            "until it does, and start no rival",
            f"start that server, or delete {settings.data_dir.external} to let the bot start "
            "its own"
            if recorded
            else "start that server, or fix REDIS_URL",
        )
    if local.get("answering"):
        return Check(
            "OK",
            name,
            f"our Redis in the data dir answers (pid {local.get('pid')}, port "
            f"{local.get('port')}): the bot will adopt it",
        )
    if local.get("hung") and settings.redis_auto_start:
        return Check(
            "WARN",
            name,
            f"our Redis in the data dir (pid {local.get('pid')}, port {local.get('port')}) "
            "does not answer PING (hung); the bot will stop it and start a new one",
            _HUNG_FIX,
        )
    if not settings.redis_auto_start:
        return Check(
            "WARN",
            name,
            f"no Redis answers and REDIS_AUTO_START is false: the bot will run from memory "
            f"({error})",
            "start Redis at REDIS_URL or set REDIS_AUTO_START=true",
        )
    if binary_check.level != "OK":
        return Check(
            "WARN", name, "no Redis answers and none can be started: memory mode", _INSTALL_HINT
        )
    return Check("OK", name, "no Redis runs now; the bot will start one in the data dir")
