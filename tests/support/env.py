"""The environment for a real bot process started by a test."""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

__all__ = ["bot_env", "log_events"]

_SETTING_PREFIXES = (
    "TELEGRAM_", "REDIS_", "HEALTH_", "LOG_", "RATE_LIMIT_", "VECHNOST_", "BOT_MODE", "WEBHOOK_",
)  # fmt: skip


def bot_env(api_url: str, **settings: str) -> dict[str, str]:
    """This machine's environment without any Vechnost setting, pointed at the fake
    Bot API at ``api_url`` (``http://127.0.0.1:PORT/bot``), plus ``settings``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(_SETTING_PREFIXES)}
    env.update(
        TELEGRAM_API_BASE_URL=api_url,
        TELEGRAM_FILE_BASE_URL=api_url.replace("/bot", "/file/bot"),
    )
    env.update(settings)
    return env


def log_events(text: str) -> list[dict[str, Any]]:
    """The JSON log lines of a bot process's output; other lines are skipped."""
    events = []
    for line in text.splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events
