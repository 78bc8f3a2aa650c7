"""The journal of memory-mode writes: latest entry per record, deltas, and its file."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from vechnost_bot.storage.journal import Journal, JournalDelete, JournalPut
from vechnost_bot.storage.models import Session, UserStats


def test_keeps_latest_entry_per_record_and_sums_deltas() -> None:
    """Only the newest write per record is kept; increments add up; zero deltas vanish."""
    journal = Journal()
    journal.put(Session(chat_id=1, version=1))
    journal.put(Session(chat_id=1, version=2, language="en"))
    journal.delete(UserStats, "5", 3, 10.0)
    journal.increment("cards", 2)
    journal.increment("cards", 3)
    journal.increment("gone", 1)
    journal.increment("gone", -1)
    assert len(journal) == 3
    entry = journal.entry("session", "1")
    assert isinstance(entry, JournalPut)
    assert entry.record.version == 2
    assert journal.increments_by_counter() == {"cards": 5}


def test_done_only_drops_the_entry_it_was_given() -> None:
    """A record rewritten during reconciliation stays pending."""
    journal = Journal()
    journal.put(Session(chat_id=1, version=1))
    (snapshot,) = journal.record_entries()
    journal.put(Session(chat_id=1, version=2))
    assert journal.done(snapshot) is False
    (latest,) = journal.record_entries()
    assert journal.done(latest) is True
    assert len(journal) == 0


def test_rebase_flag_sticks_to_the_record() -> None:
    """Once a record's memory lineage started from an unknown version, later writes say so."""
    journal = Journal()
    journal.put(Session(chat_id=1, version=1), rebase=True)
    journal.put(Session(chat_id=1, version=2))
    journal.delete(Session, "1", 2, 5.0)
    entry = journal.entry("session", "1")
    assert isinstance(entry, JournalDelete)
    assert entry.rebase


def test_sealed_increments_keep_their_token() -> None:
    """Sealing gives open deltas a token; a token applied is dropped, new increments stay."""
    journal = Journal()
    journal.increment("cards", 4)
    journal.uncertain_increment("cards", 1, "tok-1")
    sealed = journal.seal_increments()
    assert sorted((name, delta) for _, name, delta in sealed) == [("cards", 1), ("cards", 4)]
    journal.increment("cards", 7)
    for token, _, _ in sealed:
        journal.done_increment(token)
    assert journal.increments_by_counter() == {"cards": 7}


def test_file_round_trip_is_private_and_atomic(tmp_path: Path) -> None:
    """flush() writes a 0600 file through a temporary one; load() restores every entry."""
    path = tmp_path / "data" / "journal.jsonl"
    journal = Journal(path)
    journal.put(Session(chat_id=1, version=3, updated_at=2.5, drawn={"d": ["x"]}), rebase=True)
    journal.delete(UserStats, "9", 4, 7.25)
    journal.increment("cards", 2)
    journal.uncertain_increment("cards", 1, "tok-9")
    journal.flush()
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["journal.jsonl"]

    loaded = Journal(path)
    assert loaded.load() == 4
    put = loaded.entry("session", "1")
    assert isinstance(put, JournalPut)
    assert put.rebase
    assert put.record == Session(chat_id=1, version=3, updated_at=2.5, drawn={"d": ["x"]})
    delete = loaded.entry("user", "9")
    assert isinstance(delete, JournalDelete)
    assert (delete.model, delete.version, delete.updated_at) == (UserStats, 4, 7.25)
    tokens = {token for token, _, _ in loaded.seal_increments()}
    assert "tok-9" in tokens
    assert loaded.increments_by_counter() == {"cards": 3}
    assert path.exists()  # kept until reconciled
    loaded.remove_file()
    assert not path.exists()


def test_empty_flush_removes_file_and_no_path_is_noop(tmp_path: Path) -> None:
    """Nothing pending means no file; a journal without a path never touches disk."""
    path = tmp_path / "journal.jsonl"
    path.write_text("stale\n")
    Journal(path).flush()
    assert not path.exists()
    no_file = Journal(None)
    no_file.increment("x", 1)
    no_file.flush()
    assert no_file.load() == 0


def test_corrupt_lines_are_skipped(tmp_path: Path) -> None:
    """Unreadable lines are logged and skipped; the rest loads."""
    path = tmp_path / "journal.jsonl"
    good = Journal(path)
    good.increment("cards", 1)
    good.flush()
    with path.open("a") as handle:
        handle.write("{not json\n")
        handle.write('{"op": "put", "kind": "unknown-kind", "record": {}}\n')
        handle.write('{"op": "put", "kind": "session", "record": {"chat_id": "x"}}\n')
        handle.write('{"op": "teleport"}\n')
    with capture_logs() as logs:
        loaded = Journal(path)
        assert loaded.load() == 1
    corrupt = [e for e in logs if e["event"] == "storage_journal_corrupt_line"]
    assert len(corrupt) == 4
    assert loaded.increments_by_counter() == {"cards": 1}
