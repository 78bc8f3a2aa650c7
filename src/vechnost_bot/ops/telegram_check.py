"""The Telegram side of ``vechnost doctor``: is the token accepted, is a webhook in the way.

Asks the Bot API at ``TELEGRAM_API_BASE_URL`` (``getMe``, then ``getWebhookInfo``), as
the bot would at start. Read-only: nothing is set or deleted. The token never appears
in what is returned (every detail goes through :func:`vechnost_bot.log.redact`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import aiohttp

from vechnost_bot.config import Settings
from vechnost_bot.log import add_secret, redact

__all__ = ["TelegramCheck", "check_telegram"]

_TIMEOUT: Final = 8.0
_BOTFATHER_FIX: Final = (
    "copy the token again from @BotFather (/mybots → your bot → API Token) into "
    "TELEGRAM_BOT_TOKEN in .env"
)


@dataclass(frozen=True, slots=True)
class TelegramCheck:
    """One finding, in the shape of a doctor line."""

    level: Literal["OK", "WARN", "FAIL"]
    name: str
    detail: str
    fix: str | None = None


class _ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


async def _call(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        try:
            body = await response.json(content_type=None)
        except ValueError:
            raise _ApiError(response.status, f"HTTP {response.status}, not Bot API JSON") from None
        if not isinstance(body, dict) or not body.get("ok"):
            description = body.get("description") if isinstance(body, dict) else None
            raise _ApiError(response.status, str(description or f"HTTP {response.status}"))
        return body.get("result")


def _where(settings: Settings) -> str:
    parts = urlsplit(settings.telegram_api_base_url)
    return parts.netloc or settings.telegram_api_base_url


async def check_telegram(settings: Settings) -> list[TelegramCheck]:
    """getMe (token accepted? which bot?) and getWebhookInfo (a webhook set elsewhere?)."""
    name = "telegram"
    token = settings.token
    if token is None:
        return [
            TelegramCheck(
                "WARN",
                name,
                "not checked: TELEGRAM_BOT_TOKEN is not set",
                "cp .env.example .env and put the token from @BotFather in it",
            )
        ]
    add_secret(token)
    base = f"{settings.telegram_api_base_url.rstrip('/')}{token}"
    where = _where(settings)
    timeout = aiohttp.ClientTimeout(total=_TIMEOUT)
    started = time.monotonic()
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            me = await _call(http, f"{base}/getMe")
            latency = round((time.monotonic() - started) * 1000)
            try:
                webhook = await _call(http, f"{base}/getWebhookInfo")
            except _ApiError:
                webhook = None
    except _ApiError as error:
        if error.status in (401, 404):
            return [
                TelegramCheck(
                    "FAIL",
                    name,
                    f"{where} rejected TELEGRAM_BOT_TOKEN ({error.status} "
                    f"{redact(error.description)}): the bot will not start",
                    _BOTFATHER_FIX,
                )
            ]
        return [
            TelegramCheck(
                "FAIL",
                name,
                f"{where} answered getMe with an error ({error.status} "
                f"{redact(error.description)})",
                "check TELEGRAM_API_BASE_URL, or try again later",
            )
        ]
    except (aiohttp.ClientError, TimeoutError, OSError) as error:
        reason = redact(str(error) or type(error).__name__)
        return [
            TelegramCheck(
                "FAIL",
                name,
                f"{where} is not reachable ({reason}); the bot would retry until it is",
                "check this machine's network, proxy and firewall, or TELEGRAM_API_BASE_URL",
            )
        ]
    username = me.get("username") if isinstance(me, dict) else None
    checks = [
        TelegramCheck("OK", name, f"token accepted: @{username or '?'} via {where} ({latency} ms)")
    ]
    checks.append(_webhook_check(webhook, settings))
    return checks


def _webhook_check(webhook: Any, settings: Settings) -> TelegramCheck:
    name = "telegram webhook"
    if not isinstance(webhook, dict):
        return TelegramCheck("OK", name, "no webhook information (a self-hosted Bot API?)")
    url = str(webhook.get("url") or "")
    pending = webhook.get("pending_update_count") or 0
    if settings.bot_mode == "webhook":
        # Webhook mode: the bot sets WEBHOOK_URL itself; another URL is another deployment.
        if url == settings.webhook_url:
            return TelegramCheck("OK", name, f"set to WEBHOOK_URL ({pending} updates waiting)")
        return TelegramCheck(
            "WARN",
            name,
            "not set to WEBHOOK_URL yet" if not url else "set to another URL than WEBHOOK_URL",
            "vechnost run sets it at start; if another deployment uses this token, stop it",
        )
    if not url:
        return TelegramCheck("OK", name, f"none set: polling works ({pending} updates waiting)")
    host = urlsplit(url).netloc or url
    error = webhook.get("last_error_message")
    detail = f"a webhook is set (https://{host}/…, {pending} updates waiting"
    detail += f", its last error: {redact(str(error))})" if error else ")"
    return TelegramCheck(
        "WARN",
        name,
        f"{detail}; polling deletes it at start, so a deployment that uses it stops "
        "getting updates",
        "run only one deployment per token: stop the other one, or ignore if it is gone",
    )
