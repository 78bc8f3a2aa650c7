"""A local store whose directory cannot be opened: RAM only, loud, retried, counted.

The directory is made impossible for real (its parent is a regular file, so creating
it fails with ENOTDIR even as root); later the file is removed, so the directory can be
made and the store must find its way onto disk without losing a write.
"""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from tests.support.waiting import wait_until
from vechnost_bot.metrics import LOCAL_STORE_ERRORS
from vechnost_bot.storage import HybridStorage, Session


def _draw(card: str) -> object:
    def mutate(session: Session) -> Session:
        session.drawn.setdefault("deck", []).append(card)
        return session

    return mutate


def _blocked(tmp_path: Path) -> Path:
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data dir's parent should be\n")
    return blocker / "store"


async def test_an_unopenable_directory_serves_from_ram_and_says_why(tmp_path: Path) -> None:
    """The store's directory cannot be created: start() does not raise, every write is
    served from RAM, status() names the path and errno as the degraded reason, the error
    metric and an error event count it, and stop() says the writes are at risk."""
    directory = _blocked(tmp_path)
    errors_before = LOCAL_STORE_ERRORS._value.get()
    storage = HybridStorage(client_factory=None, local_dir=directory)
    with capture_logs() as logs:
        await storage.start(None)
    try:
        for n in range(3):
            await storage.update_session(7, _draw(f"c{n}"))  # type: ignore[arg-type]
        session = await storage.get_session(7)
        assert session is not None
        assert session.drawn["deck"] == ["c0", "c1", "c2"]
        status = storage.status()
        reason = status["degraded_reason"]
        assert isinstance(reason, str)
        assert str(directory) in reason
        assert "Not a directory" in reason
        local = status["local_store"]
        assert isinstance(local, dict)
        assert local["write_error"]
        assert local["writes_at_risk"] == 1  # one record (chat 7), never on disk
        assert local["write_errors"] >= 1
        assert LOCAL_STORE_ERRORS._value.get() > errors_before
        failed = [e for e in logs if e["event"] == "storage_local_open_failed"]
        assert len(failed) == 1
        assert failed[0]["log_level"] == "error"
        assert failed[0]["path"] == str(directory)
        assert failed[0]["errno"] == 20  # ENOTDIR
    finally:
        await storage.stop()
    assert storage.writes_at_risk == 1


async def test_a_directory_that_becomes_usable_is_opened_and_gets_every_write(
    tmp_path: Path,
) -> None:
    """The directory cannot be made at start, then can (the blocking file is gone): the
    store opens it on a later retry, the writes made meanwhile reach the file, the
    trouble leaves status(), and the next process finds the game on disk."""
    directory = _blocked(tmp_path)
    storage = HybridStorage(client_factory=None, local_dir=directory)
    await storage.start(None)
    try:
        await storage.update_session(8, _draw("before"))  # type: ignore[arg-type]
        assert storage.degraded_reason is not None
        (tmp_path / "data").unlink()
        await wait_until(lambda: storage.degraded_reason is None)
        await storage.update_session(8, _draw("after"))  # type: ignore[arg-type]
        assert storage.local.path is not None
        assert storage.local.path.parent == directory
        assert storage.status()["journal_size"] == 1  # still waiting for Redis
    finally:
        await storage.stop()
    assert storage.writes_at_risk == 0
    heir = HybridStorage(client_factory=None, local_dir=directory)
    await heir.start(None)
    try:
        assert heir.status()["journal_size"] == 1
        session = await heir.get_session(8)
        assert session is not None
        assert session.drawn["deck"] == ["before", "after"]
    finally:
        await heir.stop()
