"""The ``vechnost`` command: run · status · logs · redis · doctor.

This is the edge: settings are read and logging is configured here, then the
command's own module does the work. Every command module exposes
``command(settings, args) -> int`` and is imported only when chosen, so that
``vechnost --help`` starts nothing.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from vechnost_bot import __version__
from vechnost_bot.config import load_settings
from vechnost_bot.errors import VechnostError
from vechnost_bot.log import add_secret, configure_logging, redact

__all__ = ["build_parser", "main"]

# command name -> module whose ``command(settings, args)`` runs it
_COMMANDS = {
    "run": "vechnost_bot.app",
    "status": "vechnost_bot.ops.status",
    "logs": "vechnost_bot.ops.logs",
    "redis": "vechnost_bot.redis.commands",
    "doctor": "vechnost_bot.doctor",
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with one sub-command per operator task."""
    parser = argparse.ArgumentParser(
        prog="vechnost",
        description="Vechnost conversation card game bot, with self-managing Redis storage.",
    )
    parser.add_argument("--version", action="version", version=f"vechnost {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser(
        "run", help="run the bot (Redis lifecycle, storage, Telegram by polling or webhook)"
    )

    status = sub.add_parser("status", help="show what a running deployment is doing")
    status.add_argument("--json", action="store_true", help="machine-readable output")

    logs = sub.add_parser("logs", help="show the bot's log file (LOG_FILE)")
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines (default 50)")

    redis = sub.add_parser("redis", help="manage the local Redis server")
    redis.add_argument("action", choices=["start", "stop", "status", "ping"])
    redis.add_argument("--json", action="store_true", help="machine-readable output (status)")

    sub.add_parser("doctor", help="check configuration, binary, port, data dir and Redis")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vechnost`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except VechnostError as error:
        print(f"vechnost: {error}", file=sys.stderr)
        return error.exit_code
    add_secret(settings.token)
    configure_logging(
        settings.log_level, settings.log_format, settings.log_file, console=settings.log_console
    )
    module = importlib.import_module(_COMMANDS[args.command])
    try:
        code: int = module.command(settings, args)
    except VechnostError as error:
        print(f"vechnost: {redact(str(error))}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return 130
    return code
