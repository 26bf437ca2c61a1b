"""The SQLite store's WAL checkpoints run on a thread of their own, not inside a commit."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from cowrite.adapters.store import SQLiteStore
from cowrite.adapters.store._checkpoint import SAFETY_PAGES, Checkpointer

T0 = 1_700_000_000_000


def _rows_in_the_database_file(path: Path) -> int:
    """Rows of ``updates`` in the main database file alone (``immutable``: the WAL is not
    read), i.e. what a checkpoint has copied there."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM updates").fetchone()[0])
    except sqlite3.DatabaseError:  # the schema not copied yet, or a page being copied: again
        return 0
    finally:
        conn.close()


async def _until(condition: object, what: str) -> None:
    for _ in range(1_000):  # a liveness bound (10 s), not a timing assertion
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_the_checkpointer_copies_committed_writes_into_the_database_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "db"
    async with SQLiteStore(path, checkpoint_interval_s=0.02) as store:
        await store.create_document("d", title="", now_ms=T0)
        for i in range(50):
            await store.append_update("d", b"u%d" % i, now_ms=T0)
        checkpointer = store._checkpointer
        assert checkpointer is not None
        await _until(lambda: _rows_in_the_database_file(path) == 50, "all rows in the file")
        assert checkpointer.checkpoints >= 1
        loaded = await store.load("d")
        assert loaded is not None and len(loaded.updates) == 50
    assert not checkpointer._thread.is_alive()  # close() stopped it


async def test_the_writer_keeps_only_a_large_automatic_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with_thread = SQLiteStore(path)
    conn, _ = with_thread._open_writer_connection()
    try:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == SAFETY_PAGES
    finally:
        conn.close()
    without = SQLiteStore(path, checkpoint_interval_s=None)  # SQLite's own, as before
    conn, _ = without._open_writer_connection()
    try:
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        conn.close()
    async with without:
        assert without._checkpointer is None


def test_a_failing_checkpoint_is_retried_and_never_raised(tmp_path: Path) -> None:
    """A connection that cannot open (garbage path) is logged and retried; stop() still ends
    the thread."""
    attempts: list[int] = []

    def connect() -> sqlite3.Connection:
        attempts.append(1)
        raise RuntimeError("unable to open database file")  # as StoreUnavailable would

    checkpointer = Checkpointer(connect, str(tmp_path / "missing" / "db"), interval_s=0.01)
    checkpointer.start()
    try:
        for _ in range(1_000):  # a liveness bound (10 s), not a timing assertion
            if len(attempts) >= 2:
                break
            time.sleep(0.01)
        assert len(attempts) >= 2 and checkpointer.checkpoints == 0
    finally:
        checkpointer.stop()
    assert not checkpointer._thread.is_alive()
