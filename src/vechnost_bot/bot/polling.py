"""Polling that no update can stop.

python-telegram-bot parses a getUpdates batch in one go: one update it cannot
parse (a type it does not know, a field an older Bot API server leaves out) fails
the whole batch, the offset never moves, and the same batch is fetched and logged
forever. :class:`TolerantBot` parses each update on its own; one that fails is
logged once, with its id and never its content, and replaced by an empty update
with the same id, so the offset moves past it and no handler sees it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, Final, cast

import structlog
from telegram import Update
from telegram._utils.defaultvalue import DEFAULT_NONE
from telegram._utils.types import JSONDict, ODVInput
from telegram.ext import BaseRateLimiter, ExtBot
from telegram.request import BaseRequest

from vechnost_bot.metrics import UPDATES_SKIPPED

__all__ = ["ALLOWED_UPDATES", "TolerantBot", "parse_updates"]

log = structlog.get_logger(__name__)

ALLOWED_UPDATES: Final = (Update.MESSAGE, Update.CALLBACK_QUERY)
"""The update types the bot has handlers for; Telegram is asked for these only."""


def parse_updates(raw: object, bot: ExtBot[Any] | None) -> tuple[Update, ...]:
    """Every update of a getUpdates result; one that cannot be parsed becomes an empty
    update with its id (or is left out when it has no id)."""
    if not isinstance(raw, list):
        log.warning("updates_skipped", reason="getUpdates result is not a list")
        UPDATES_SKIPPED.inc()
        return ()
    updates: list[Update] = []
    for item in raw:
        update_id = item.get("update_id") if isinstance(item, dict) else None
        try:
            update = Update.de_json(cast("JSONDict", item), bot)
        except Exception as error:  # noqa: BLE001 - any bad update is skipped, whatever broke
            UPDATES_SKIPPED.inc()
            log.warning(
                "update_skipped",
                update_id=update_id,
                kinds=sorted(key for key in item if key != "update_id")[:5]
                if isinstance(item, dict)
                else None,
                error=type(error).__name__,
            )
            if isinstance(update_id, int):
                updates.append(Update(update_id))
            continue
        updates.append(update)
    return tuple(updates)


class TolerantBot(ExtBot[Any]):
    """An ExtBot whose getUpdates survives updates it cannot parse."""

    def __init__(
        self,
        token: str,
        *,
        base_url: str,
        base_file_url: str,
        request: BaseRequest,
        get_updates_request: BaseRequest,
        rate_limiter: BaseRateLimiter[Any] | None = None,
    ) -> None:
        super().__init__(
            token,
            base_url=base_url,
            base_file_url=base_file_url,
            request=request,
            get_updates_request=get_updates_request,
            rate_limiter=rate_limiter,
        )
        self._poll_read_timeout = get_updates_request.read_timeout or 0.0

    async def get_updates(
        self,
        offset: int | None = None,
        limit: int | None = None,
        timeout: float | dt.timedelta | None = None,  # noqa: ASYNC109 - the Bot API name
        allowed_updates: Sequence[str] | None = None,
        *,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
        api_kwargs: JSONDict | None = None,
    ) -> tuple[Update, ...]:
        """getUpdates, parsed update by update (see the module's docstring)."""
        data: JSONDict = {
            "timeout": timeout,
            "offset": offset,
            "limit": limit,
            "allowed_updates": allowed_updates,
        }
        seconds = timeout.total_seconds() if isinstance(timeout, dt.timedelta) else timeout or 0
        base = read_timeout if isinstance(read_timeout, int | float) else self._poll_read_timeout
        raw = await self._post(
            "getUpdates",
            data,
            read_timeout=base + seconds,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
            api_kwargs=api_kwargs,
        )
        updates = parse_updates(raw, self)
        for update in updates:
            self.insert_callback_data(update)
        return updates
