"""The journal of writes made in Memory Mode, waiting to be reconciled into Redis.

Per record only the latest write matters ("newer wins"), so the journal keeps one
entry per record: the full record for a put, the version and time for a delete.
Counter increments are kept as summed deltas, to be *added* with INCRBY. On a
graceful shutdown the journal is written to a JSON-lines file (0600, atomically
through a temporary file and ``os.replace``) and read back at the next start.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import structlog
from pydantic import ValidationError

from vechnost_bot.storage.models import RECORD_KINDS, Record

__all__ = ["Journal", "JournalDelete", "JournalEntry", "JournalPut"]

log = structlog.get_logger(__name__)

_FORMAT: Final = "vechnost-journal"
_FORMAT_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class JournalPut:
    """A record written in memory mode. ``rebase``: written without knowing Redis's version."""

    record: Record
    rebase: bool = False


@dataclass(frozen=True, slots=True)
class JournalDelete:
    """A record deleted in memory mode, at ``version`` and ``updated_at``."""

    model: type[Record]
    key: str
    version: int
    updated_at: float
    rebase: bool = False


JournalEntry = JournalPut | JournalDelete
_RecordKey = tuple[str, str]


class Journal:
    """Pending memory-mode writes: latest entry per record, summed counter deltas."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._records: dict[_RecordKey, JournalEntry] = {}
        self._counters: dict[str, int] = {}
        # token -> (counter, delta): increments that must be applied at most once,
        # either sealed for reconciliation or sent to Redis without an answer.
        self._batches: dict[str, tuple[str, int]] = {}
        # Grows with every change, so that a periodic flush knows when to write.
        self.changes = 0

    def __len__(self) -> int:
        return len(self._records) + len(self._counters) + len(self._batches)

    # -- writing -----------------------------------------------------------------------
    def put(self, record: Record, *, rebase: bool = False) -> None:
        """Journal a put; the journal takes ownership of ``record``."""
        rkey = (record.KIND, record.key)
        previous = self._records.get(rkey)
        if previous is not None and previous.rebase:
            rebase = True  # the whole memory-mode lineage started from an unknown version
        self._records[rkey] = JournalPut(record, rebase)
        self.changes += 1

    def delete(
        self,
        model: type[Record],
        key: str,
        version: int,
        updated_at: float,
        *,
        rebase: bool = False,
    ) -> None:
        """Journal a delete of the record that had ``version``."""
        rkey = (model.KIND, key)
        previous = self._records.get(rkey)
        if previous is not None and previous.rebase:
            rebase = True
        self._records[rkey] = JournalDelete(model, key, version, updated_at, rebase)
        self.changes += 1

    def increment(self, name: str, delta: int) -> None:
        """Journal a counter increment (summed with the ones before)."""
        self.changes += 1
        total = self._counters.get(name, 0) + delta
        if total:
            self._counters[name] = total
        else:
            self._counters.pop(name, None)

    def uncertain_increment(self, name: str, delta: int, token: str) -> None:
        """Journal an increment that Redis may or may not have applied (reply lost)."""
        self._batches[token] = (name, delta)
        self.changes += 1

    # -- reading and draining ----------------------------------------------------------
    def entry(self, kind: str, key: str) -> JournalEntry | None:
        """The pending entry for record ``kind:key``, if any."""
        return self._records.get((kind, key))

    def record_entries(self) -> list[JournalEntry]:
        """A snapshot of the pending record entries."""
        return list(self._records.values())

    def seal_increments(self) -> list[tuple[str, str, int]]:
        """Give every open delta a token; return all ``(token, counter, delta)`` to apply."""
        for name, delta in self._counters.items():
            self._batches[uuid.uuid4().hex] = (name, delta)
        self._counters.clear()
        return [(token, name, delta) for token, (name, delta) in self._batches.items()]

    def increments_by_counter(self) -> dict[str, int]:
        """The pending increments summed per counter (open and sealed)."""
        totals = dict(self._counters)
        for name, delta in self._batches.values():
            totals[name] = totals.get(name, 0) + delta
        return totals

    def done_increment(self, token: str) -> None:
        """A sealed increment is in Redis."""
        if self._batches.pop(token, None) is not None:
            self.changes += 1

    def done(self, entry: JournalEntry) -> bool:
        """Drop ``entry`` if it is still the latest for its record; False if replaced."""
        rkey = (
            (entry.record.KIND, entry.record.key)
            if isinstance(entry, JournalPut)
            else (entry.model.KIND, entry.key)
        )
        if self._records.get(rkey) is entry:
            del self._records[rkey]
            self.changes += 1
            return True
        return False

    def __iter__(self) -> Iterator[JournalEntry]:
        return iter(list(self._records.values()))

    def clear(self) -> None:
        """Forget every pending entry."""
        self._records.clear()
        self._counters.clear()
        self._batches.clear()
        self.changes += 1

    # -- the file ----------------------------------------------------------------------
    def flush(self) -> None:
        """Write the pending entries to the file (or remove the file when none are pending)."""
        self.write(self.render())

    def render(self) -> str | None:
        """The file's text for the pending entries, or None when nothing is pending.

        Cheap and synchronous: call it in the event loop, then :meth:`write` in a thread.
        """
        if self.path is None or not self:
            return None
        lines = [json.dumps({"format": _FORMAT, "version": _FORMAT_VERSION})]
        for entry in self._records.values():
            lines.append(json.dumps(_encode(entry)))
        for name, delta in self._counters.items():
            lines.append(json.dumps({"op": "incr", "name": name, "delta": delta}))
        for token, (name, delta) in self._batches.items():
            lines.append(json.dumps({"op": "incr", "name": name, "delta": delta, "token": token}))
        return "\n".join(lines) + "\n"

    def write(self, text: str | None) -> None:
        """Replace the file with ``text`` atomically (0600, fsynced); None removes it."""
        if self.path is None:
            return
        if text is None:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            temp.chmod(0o600)
            temp.replace(self.path)  # atomic, like os.replace
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        log.debug("storage_journal_written", lines=text.count("\n") - 1, path=str(self.path))

    def load(self) -> int:
        """Read the file's entries into the journal (the file stays until it is reconciled).

        Unreadable lines are logged as ``storage_journal_corrupt_line`` and skipped.
        """
        if self.path is None or not self.path.exists():
            return 0
        models = RECORD_KINDS
        loaded = 0
        with open(self.path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                    if data.get("format") == _FORMAT:
                        continue
                    loaded += self._apply(data, models)
                except (ValueError, KeyError, TypeError, ValidationError) as error:
                    log.warning(
                        "storage_journal_corrupt_line", line=number, error=type(error).__name__
                    )
        log.info("storage_journal_loaded", entries=loaded, path=str(self.path))
        return loaded

    def remove_file(self) -> None:
        """Delete the file once its entries are safely in Redis."""
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def _apply(self, data: dict[str, Any], models: dict[str, type[Record]]) -> int:
        op = data["op"]
        if op == "incr":
            if "token" in data:
                self._batches[str(data["token"])] = (str(data["name"]), int(data["delta"]))
            else:
                self.increment(str(data["name"]), int(data["delta"]))
            return 1
        model = models[str(data["kind"])]
        if op == "put":
            record = model.model_validate(data["record"])
            current = self._records.get((record.KIND, record.key))
            if current is None or _newer(record.version, record.updated_at, current):
                self._records[(record.KIND, record.key)] = JournalPut(
                    record, bool(data.get("rebase", False))
                )
            return 1
        if op == "delete":
            key, version, updated_at = str(data["key"]), int(data["version"]), float(data["at"])
            current = self._records.get((model.KIND, key))
            if current is None or _newer(version, updated_at, current):
                self._records[(model.KIND, key)] = JournalDelete(
                    model, key, version, updated_at, bool(data.get("rebase", False))
                )
            return 1
        raise ValueError(f"unknown journal op {op!r}")


def _newer(version: int, updated_at: float, current: JournalEntry) -> bool:
    if isinstance(current, JournalPut):
        return (version, updated_at) > (current.record.version, current.record.updated_at)
    return (version, updated_at) > (current.version, current.updated_at)


def _encode(entry: JournalEntry) -> dict[str, Any]:
    if isinstance(entry, JournalPut):
        return {
            "op": "put",
            "kind": entry.record.KIND,
            "record": entry.record.model_dump(mode="json"),
            "rebase": entry.rebase,
        }
    return {
        "op": "delete",
        "kind": entry.model.KIND,
        "key": entry.key,
        "version": entry.version,
        "at": entry.updated_at,
        "rebase": entry.rebase,
    }
