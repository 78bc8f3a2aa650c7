"""Structured logging, configured once at the edge.

All output, ours and the libraries' (python-telegram-bot, httpx, aiohttp), goes
through structlog's ``ProcessorFormatter`` so that one redaction processor sees
every line. In a terminal the console format looks like the seed's
``2025-09-23 15:18:20 [info     ] initializing_redis_auto_start``; elsewhere, or
with ``LOG_FORMAT=json``, one JSON object per line.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import re
import stat
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

if TYPE_CHECKING:
    from vechnost_bot.config import LogFormat, LogLevel


__all__ = [
    "MAX_VALUE_CHARS",
    "add_secret",
    "bound",
    "configure_logging",
    "redact",
    "redact_secrets",
]

_MASK = "***"
MAX_VALUE_CHARS = 4000
"""A logged value (a string, an error, a traceback) is cut to this many characters."""
_MAX_TRACEBACK_CHARS = 20_000
# Every pattern below has bounded repeats (or starts only where a digit run starts), so
# redaction is linear in the text: a 1 MB message cannot stall the event loop.
# A Telegram bot token: "<bot id>:<35 url-safe chars>".
_TOKEN_RE = re.compile(r"(?<![0-9])\d{5,16}:[A-Za-z0-9_-]{30,128}")
# user:password@ inside any URL (redis://:pw@host, https://u:p@host). The scheme is
# matched backwards from "://" only: the lookbehind and the bounded parts keep each try
# short.
_URL_CREDENTIALS_RE = re.compile(
    r"(?P<scheme>(?<![a-z0-9+.-])[a-z][a-z0-9+.-]{0,30}://)(?P<user>[^:/@\s]{0,256}):"
    r"[^@/\s]{1,256}@"
)
# requirepass / --requirepass lines (config files, command lines).
_REQUIREPASS_RE = re.compile(r"(?i)(requirepass\s+)\S+")

_secrets: set[str] = set()
_secrets_lock = threading.Lock()


def add_secret(value: str | None) -> None:
    """Remember a secret so that it is masked wherever it appears in a log line."""
    if value and len(value) >= 4:
        with _secrets_lock:
            _secrets.add(value)


def redact(text: str) -> str:
    """Mask known secrets, bot tokens, URL passwords and ``requirepass`` values."""
    with _secrets_lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, _MASK)
    text = _TOKEN_RE.sub(_MASK, text)
    text = _URL_CREDENTIALS_RE.sub(lambda m: f"{m['scheme']}{m['user']}:{_MASK}@", text)
    return _REQUIREPASS_RE.sub(rf"\g<1>{_MASK}", text)


def bound(text: str, limit: int = MAX_VALUE_CHARS) -> str:
    """``text`` cut to ``limit`` characters (saying how much was left out), with lone
    surrogates escaped so that the line can always be written as UTF-8."""
    if len(text) > limit:
        text = f"{text[:limit]}…[{len(text) - limit} more characters]"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _redact_value(value: Any, limit: int, depth: int = 0) -> Any:
    if isinstance(value, str):
        return bound(redact(value), limit)
    if depth > 3:
        return bound(redact(repr(value)), limit)
    if isinstance(value, dict):
        items = list(value.items())[:50]
        return {key: _redact_value(item, limit, depth + 1) for key, item in items}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(item, limit, depth + 1) for item in value[:50])
    if isinstance(value, BaseException):
        return bound(redact(str(value)), limit)
    return value


def redact_secrets(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """structlog processor: mask secrets in every value of the event, and bound its size."""
    for key, value in list(event_dict.items()):
        if key in {"password", "token", "requirepass"} and value:
            event_dict[key] = _MASK
        else:
            limit = _MAX_TRACEBACK_CHARS if key == "exception" else MAX_VALUE_CHARS
            event_dict[key] = _redact_value(value, limit)
    return event_dict


def _render_exception_then_redact(
    logger: WrappedLogger, name: str, event_dict: EventDict
) -> EventDict:
    event_dict = structlog.processors.format_exc_info(logger, name, event_dict)
    return redact_secrets(logger, name, event_dict)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class _PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """RotatingFileHandler whose files are 0600 and never opened through a symlink.

    At DEBUG the log holds message texts and player names: only this user reads it.
    """

    def _open(self) -> TextIO:  # type: ignore[override]  # typeshed: TextIOWrapper
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW
        descriptor = os.open(self.baseFilename, flags, 0o600)
        if os.name == "posix":
            info = os.fstat(descriptor)
            if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
                os.fchmod(descriptor, 0o600)  # a file of ours from before: narrow it
        return os.fdopen(descriptor, "a", encoding=self.encoding, errors=self.errors)


def _file_handler(log_file: Path) -> logging.Handler | str:
    """The handler for ``log_file``, or why it cannot be written (one line)."""
    try:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        return _PrivateRotatingFileHandler(
            log_file, maxBytes=10 * 1024 * 1024, backupCount=5, encoding="utf-8"
        )
    except OSError as error:
        return error.strerror or str(error)


def _want_json(log_format: LogFormat) -> bool:
    if log_format == "json":
        return True
    if log_format == "console":
        return False
    return not sys.stderr.isatty()


def configure_logging(
    level: LogLevel = "INFO",
    log_format: LogFormat = "auto",
    log_file: Path | None = None,
    *,
    console: bool = True,
) -> None:
    """Configure structlog and stdlib logging once, for the whole process.

    With ``console=False`` and a ``log_file``, the console gets errors only, so a bot
    running in the background does not write every line twice.
    """
    timestamper = structlog.processors.TimeStamper(fmt="%Y-%m-%d %H:%M:%S", utc=False)
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    def formatter(json_output: bool, colors: bool) -> logging.Formatter:
        renderer: Processor
        if json_output:
            renderer = structlog.processors.JSONRenderer()
        else:
            renderer = structlog.dev.ConsoleRenderer(colors=colors, pad_event_to=0)
        return structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                _drop_logger_name_for_console(json_output),
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _render_exception_then_redact,
                renderer,
            ],
        )

    handlers: list[logging.Handler] = []
    json_output = _want_json(log_format)
    console_handler = logging.StreamHandler(sys.stderr)
    console_handler.setFormatter(
        formatter(json_output, colors=not json_output and sys.stderr.isatty())
    )
    handlers.append(console_handler)
    unwritable: str | None = None
    if log_file is not None:
        rotating = _file_handler(log_file)
        if isinstance(rotating, str):
            # A read-only volume or a folder of another user: the console gets everything.
            unwritable = rotating
        else:
            rotating.setFormatter(formatter(json_output=log_format == "json", colors=False))
            handlers.append(rotating)
            if not console:
                console_handler.setLevel(logging.ERROR)

    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request URL at INFO, and the Bot API URL holds the token.
    for noisy in ("httpx", "httpcore", "aiohttp.access", "apscheduler"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    if unwritable is not None:
        structlog.get_logger(__name__).warning(
            "log_file_unwritable",
            path=str(log_file),
            error=unwritable,
            fix="set LOG_FILE to a file this user can write, or unset it; "
            "logging to the console only",
        )


def _drop_logger_name_for_console(json_output: bool) -> Processor:
    def processor(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
        if not json_output:
            event_dict.pop("logger", None)
        return event_dict

    return processor
