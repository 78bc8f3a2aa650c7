"""``vechnost status [--json]``: what a running deployment is doing.

Reads ``/status`` from the health server of a running ``vechnost run``
(``HEALTH_HOST:HEALTH_PORT``) and prints it as a table or as JSON.
Exit codes: 0 healthy (Redis mode), 1 degraded (memory mode, still starting, or
an error inside the bot), 3 not running (nothing answers).
"""

from __future__ import annotations

import argparse
import json
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Final

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from vechnost_bot.config import Settings
from vechnost_bot.errors import NotRunningError
from vechnost_bot.ops.health import mask_secrets
from vechnost_bot.ops.snapshot import (
    EXIT_DEGRADED,
    EXIT_HEALTHY,
    EXIT_NOT_RUNNING,
    exit_code_for,
    section,
)

__all__ = [
    "EXIT_DEGRADED",
    "EXIT_HEALTHY",
    "EXIT_NOT_RUNNING",
    "command",
    "exit_code_for",
    "fetch_status",
    "status_url",
]

_TIMEOUT: Final = 3.0
# A server bound to every interface is reached on loopback.
_ANY_ADDRESS: Final = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def status_url(settings: Settings) -> str:
    """The URL of the running bot's ``/status`` endpoint."""
    host = _ANY_ADDRESS.get(settings.health_host, settings.health_host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.health_port}/status"


def fetch_status(url: str, *, timeout: float = _TIMEOUT) -> dict[str, object]:
    """GET the snapshot; raises :class:`NotRunningError` when nothing usable answers."""
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
    except urllib.error.HTTPError as error:
        body = error.read()
        if error.code != 500:
            raise NotRunningError(f"{url} answered HTTP {error.code}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise NotRunningError(f"nothing answers on {url} ({reason})") from None
    try:
        data = json.loads(body)
    except ValueError:
        raise NotRunningError(f"{url} answered, but not with Vechnost's status JSON") from None
    if not isinstance(data, dict):
        raise NotRunningError(f"{url} answered, but not with Vechnost's status JSON")
    return {str(key): mask_secrets(value) for key, value in data.items()}


_section = section


def _duration(value: object) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "-"
    seconds = int(value)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {seconds}s"
    if minutes:
        return f"{minutes}m {seconds}s"
    return f"{seconds}s"


def _text(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def _telegram_rows(snapshot: Mapping[str, object]) -> list[tuple[str, str]]:
    """The snapshot's ``telegram`` section as it is (its fields may grow): the last
    error talking to Telegram is what an operator needs when the bot is silent. A
    ``…_at`` time (Unix seconds) is shown as how long ago."""
    telegram = _section(snapshot, "telegram")
    rows = []
    for key, value in telegram.items():
        label = f"telegram {key.replace('_', ' ')}"
        if key.endswith("_at") and isinstance(value, int | float) and not isinstance(value, bool):
            shown = f"{_duration(max(0.0, time.time() - value))} ago"
        else:
            shown = _text(value)
        rows.append((label, shown))
    return rows


def _rows(snapshot: Mapping[str, object]) -> list[tuple[str, str]]:
    bot = _section(snapshot, "bot")
    storage = _section(snapshot, "storage")
    redis = _section(snapshot, "redis")
    return [
        ("status", _text(snapshot.get("status"))),
        ("version", _text(snapshot.get("version"))),
        ("pid", _text(snapshot.get("pid"))),
        ("uptime", _duration(snapshot.get("uptime_seconds"))),
        ("bot username", _text(bot.get("username"))),
        ("bot polling", _text(bot.get("polling"))),
        ("updates handled", _text(bot.get("updates_handled"))),
        *_telegram_rows(snapshot),
        ("storage mode", _text(storage.get("mode"))),
        ("failovers", _text(storage.get("failovers"))),
        ("failbacks", _text(storage.get("failbacks"))),
        ("journal size", _text(storage.get("journal_size"))),
        ("records reconciled", _text(storage.get("records_reconciled"))),
        ("storage last error", _text(storage.get("last_error"))),
        ("redis state", _text(redis.get("state"))),
        ("redis source", _text(redis.get("source"))),
        ("redis pid", _text(redis.get("pid"))),
        ("redis port", _text(redis.get("port"))),
        ("redis version", _text(redis.get("version"))),
        ("redis uptime", _duration(redis.get("uptime_seconds"))),
        ("redis restarts", _text(redis.get("restarts"))),
        ("redis data dir", _text(redis.get("data_dir"))),
        ("redis url", _text(redis.get("url"))),
        ("redis last error", _text(redis.get("last_error"))),
        ("redis warning", _text(redis.get("warning"))),
        ("redis data lost", _text(redis.get("data_lost"))),
    ]


def _style(snapshot: Mapping[str, object]) -> str:
    return "green" if exit_code_for(snapshot) == EXIT_HEALTHY else "yellow"


def render(snapshot: Mapping[str, object], console: Console) -> None:
    """Print the snapshot as a two-column table."""
    table = Table(title="Vechnost", show_header=False, title_style=f"bold {_style(snapshot)}")
    table.add_column("fact", style="bold")
    table.add_column("value")
    for name, value in _rows(snapshot):
        table.add_row(name, Text(value))
    console.print(table)
    if exit_code_for(snapshot) != EXIT_HEALTHY:
        mode = _section(snapshot, "storage").get("mode")
        if mode == "memory":
            console.print(
                "[yellow]degraded: storage is in memory mode; writes are journaled and "
                "replayed when Redis is back. See `vechnost logs` for why.[/yellow]"
            )
        else:
            status = escape(_text(snapshot.get("status")))
            console.print(f"[yellow]not healthy: status is {status}[/yellow]")


def command(settings: Settings, args: argparse.Namespace) -> int:
    """Run ``vechnost status``; returns 0 healthy, 1 degraded, 3 not running."""
    url = status_url(settings)
    console = Console(highlight=False, soft_wrap=True)
    try:
        snapshot = fetch_status(url)
    except NotRunningError as error:
        if getattr(args, "json", False):
            print(json.dumps({"status": "not_running", "url": url, "error": str(error)}))
        else:
            Console(stderr=True, highlight=False, soft_wrap=True).print(
                f"[red]vechnost is not running[/red]: {escape(str(error))}.\n"
                "Start it with `./deploy.sh auto` (or `vechnost run`); check HEALTH_HOST/"
                "HEALTH_PORT if it runs elsewhere.",
                markup=True,
            )
        return EXIT_NOT_RUNNING
    if getattr(args, "json", False):
        print(json.dumps(snapshot, indent=2, sort_keys=True))
    else:
        render(snapshot, console)
    return exit_code_for(snapshot)
