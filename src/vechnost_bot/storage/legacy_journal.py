"""The JSON-lines journal of earlier versions, taken into the local store once.

Earlier versions kept the writes made while Redis was away in ``journal.jsonl``.
An upgraded bot imports it at start: every readable line becomes a pending write of
the local store (reconciled into Redis, merged, like any other), and the file is
renamed ``journal.jsonl.imported-<time>`` (kept, never deleted). However a line is
broken (invalid UTF-8, not an object, an unknown op, ``Infinity`` or ``1e400`` as a
delta, nesting deep enough to exhaust the parser, a negative version) it is skipped
and logged as ``storage_journal_corrupt_line`` with its line number; a file that
cannot be read at all (a directory in its place, no permission) is moved aside as
``*.damaged-<time>``. Nothing here stops the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path
from typing import Any, Final

import structlog
from pydantic import ValidationError

from vechnost_bot.storage.local import LocalStore
from vechnost_bot.storage.records import RECORD_KINDS, merge, stamp, tombstone

__all__ = ["import_legacy_journal", "read_legacy_journal"]

log = structlog.get_logger(__name__)

_MAX_DELTA: Final = 2**53


class _BadLineError(ValueError):
    """A line that is not a journal entry."""


def _constant(name: str) -> Any:
    raise _BadLineError(f"{name} is not a number")


def _entry(line: bytes) -> dict[str, Any] | None:
    text = line.decode("utf-8")  # UnicodeDecodeError is a ValueError
    if not text.strip():
        return None
    data = json.loads(text, parse_constant=_constant)
    if not isinstance(data, dict):
        raise _BadLineError(f"a JSON {type(data).__name__}, not an object")
    if data.get("format") == "vechnost-journal":
        return None
    op = data.get("op")
    if op not in {"put", "delete", "incr"}:
        raise _BadLineError(f"unknown op {op!r}"[:80])
    return data


def _delta(data: dict[str, Any]) -> int:
    delta = data.get("delta")
    if isinstance(delta, bool) or not isinstance(delta, int) or abs(delta) > _MAX_DELTA:
        raise _BadLineError("delta is not a whole number")
    return delta


def read_legacy_journal(path: Path) -> list[dict[str, Any]] | None:
    """(Thread) The usable entries of ``path``; None when there is no such file.

    A file that cannot be read is moved aside (and None returned).
    """
    if not path.exists() and not path.is_symlink():
        return None
    try:
        content = path.read_bytes()
    except OSError as error:
        aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
        log.error(  # noqa: TRY400 - the reason is in the event; a traceback adds nothing
            "storage_journal_unreadable",
            path=str(path),
            error=f"{type(error).__name__}: {error.strerror or error}",
            moved_to=str(aside),
        )
        try:
            path.replace(aside)
        except OSError as move_error:
            log.error("storage_journal_not_moved", path=str(path), error=str(move_error))  # noqa: TRY400
        return None
    entries = []
    for number, line in enumerate(content.split(b"\n"), start=1):
        try:
            data = _entry(line)
        except (ValueError, RecursionError) as error:
            log.warning("storage_journal_corrupt_line", line=number, error=type(error).__name__)
            continue
        if data is not None:
            data["_line"] = number
            entries.append(data)
    return entries


async def import_legacy_journal(path: Path, local: LocalStore) -> int:
    """Take ``path``'s entries into ``local`` as pending writes; returns how many.

    The file is renamed only once every entry is committed to the local store's file.
    """
    if local.directory is None:
        return 0
    entries = await asyncio.to_thread(read_legacy_journal, path)
    if entries is None:
        return 0
    imported = 0
    for data in entries:
        try:
            if data["op"] == "incr":
                token = data.get("token")
                local.add_increment(
                    str(data["name"]), _delta(data), token=None if token is None else str(token)
                )
                imported += 1
                continue
            model = RECORD_KINDS[str(data["kind"])]
            if data["op"] == "put":
                record = stamp(model.model_validate(data["record"]), local.clock)
            else:
                record = tombstone(model, str(data["key"]), local.clock)
            entry = await local.entry(model, record.key)
            if entry is not None:
                record = merge(entry.load(model, record.key), record)
            local.put(
                record, pending=True, redis_version=0 if entry is None else entry.redis_version
            )
            imported += 1
        except (KeyError, TypeError, ValueError, ValidationError, RecursionError) as error:
            log.warning(
                "storage_journal_corrupt_line", line=data["_line"], error=type(error).__name__
            )
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(local.wait_saved(), 10.0)
    if local.at_risk:
        log.error("storage_journal_kept", path=str(path), reason="the local store cannot write")
        return imported
    done = path.with_name(f"{path.name}.imported-{int(time.time())}")
    try:
        await asyncio.to_thread(path.replace, done)
    except OSError as error:
        log.error("storage_journal_not_moved", path=str(path), error=str(error))  # noqa: TRY400
    log.info("storage_journal_imported", entries=imported, path=str(path), kept_as=str(done))
    return imported
