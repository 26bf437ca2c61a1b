"""What only the SQLite store promises beyond the contract: WAL, group commit, schema, lifecycle."""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from cowrite.adapters.store import (
    DuplicateEdit,
    EditKey,
    SQLiteStore,
    StoredEdit,
    StoreError,
    StoreUnavailable,
    VersionRecord,
)
from cowrite.adapters.store._schema import MIGRATIONS

T0 = 1_700_000_000_000


async def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "db") as store:
        await store.create_document("d", title="", now_ms=T0)
        commits_before = store.commit_count

        seqs = await asyncio.gather(
            *(store.append_update("d", b"x" * 100, now_ms=T0) for _ in range(200))
        )

        commits = store.commit_count - commits_before
        assert seqs == list(range(1, 201))
        assert 1 <= commits < 200
        assert store.stats.largest_batch > 1


async def test_the_writes_of_one_loop_tick_reach_the_writer_together(tmp_path: Path) -> None:
    """Submitted during one tick (each task's first step), handed to the thread at its end in
    one piece: one commit holds them all, in submission order."""
    async with SQLiteStore(tmp_path / "db") as store:
        await store.create_document("d", title="", now_ms=T0)
        commits_before = store.commit_count
        seqs = await asyncio.gather(
            *(store.append_update("d", b"%d" % i, now_ms=T0) for i in range(20))
        )
        assert seqs == list(range(1, 21))
        assert store.commit_count - commits_before == 1 and store.stats.largest_batch == 20
        loaded = await store.load("d")
        assert loaded is not None and [u for _, u in loaded.updates] == [
            b"%d" % i for i in range(20)
        ]


async def test_a_crash_fails_the_writes_of_its_tick_and_the_next_ones_are_stored(
    tmp_path: Path,
) -> None:
    async with SQLiteStore(tmp_path / "db") as store:
        await store.create_document("d", title="", now_ms=T0)
        results = await asyncio.gather(
            store.append_update("d", b"a", now_ms=T0),
            store._write(_crash),
            store.append_update("d", b"b", now_ms=T0),
            return_exceptions=True,
        )
        assert all(isinstance(r, StoreUnavailable) for r in results)
        assert await store.append_update("d", b"c", now_ms=T0) == 1
        loaded = await store.load("d")
        assert loaded is not None and [u for _, u in loaded.updates] == [b"c"]


async def test_max_batch_bounds_the_writes_per_commit(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "db", max_batch=7) as store:
        await store.create_document("d", title="", now_ms=T0)
        await asyncio.gather(*(store.append_update("d", b"x", now_ms=T0) for _ in range(50)))
        assert store.stats.largest_batch <= 7
        assert store.commit_count >= 1 + 50 // 7


async def test_close_finishes_writes_already_submitted(tmp_path: Path) -> None:
    db = tmp_path / "db"
    store = SQLiteStore(db)
    await store.open()
    await store.create_document("d", title="", now_ms=T0)
    tasks = [
        asyncio.create_task(store.append_update("d", b"%d" % i, now_ms=T0)) for i in range(100)
    ]
    await asyncio.sleep(0)  # let every task submit its write

    await store.close()

    assert [t.result() for t in tasks] == list(range(1, 101))
    async with SQLiteStore(db) as reopened:
        loaded = await reopened.load("d")
        assert loaded is not None and len(loaded.updates) == 100


async def test_database_uses_wal_and_records_its_schema_version(tmp_path: Path) -> None:
    db = tmp_path / "db"
    async with SQLiteStore(db) as store:
        await store.create_document("d", title="", now_ms=T0)
        conn = sqlite3.connect(db)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
            assert conn.execute("SELECT version FROM schema_version").fetchall() == [(5,)]
        finally:
            conn.close()


async def test_reopening_keeps_the_schema_and_data(tmp_path: Path) -> None:
    db = tmp_path / "db"
    async with SQLiteStore(db) as store:
        await store.create_document("d", title="T", now_ms=T0)
    async with SQLiteStore(db) as store:
        info = await store.get_document("d")
        assert info is not None and info.title == "T"


async def test_a_version_1_database_is_migrated_and_its_edit_keys_still_count(
    tmp_path: Path,
) -> None:
    """Schema 2 adds the payload digest of edit keys; keys stored before have none ("")."""
    db = tmp_path / "db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO documents (id, title, created_ms, updated_ms, last_seq) "
        "VALUES ('d', '', 0, 0, 1)"
    )
    conn.execute("INSERT INTO updates VALUES ('d', 1, x'00', 0)")
    conn.execute("INSERT INTO edit_keys VALUES ('d', 'c', 'e', 1, 0)")
    conn.close()
    async with SQLiteStore(db) as store:
        assert await store.lookup_edit("d", "c", "e") == StoredEdit(1, "")
        with pytest.raises(DuplicateEdit):
            await store.append_update("d", b"again", edit_keys=[EditKey("c", "e")], now_ms=T0)
        seq = await store.append_update("d", b"x", edit_keys=[EditKey("c", "f", "h")], now_ms=T0)
        assert await store.lookup_edit("d", "c", "f") == StoredEdit(seq, "h")


async def test_a_version_3_database_gains_an_empty_version_history(tmp_path: Path) -> None:
    """Schema 4 adds ``versions``: edits stored before it are not versions; new ones are."""
    db = tmp_path / "db"
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version BIGINT NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (3)")
    for statements in MIGRATIONS[:3]:
        for statement in statements:
            conn.execute(statement)
    conn.execute(
        "INSERT INTO documents (id, title, created_ms, updated_ms, last_seq) "
        "VALUES ('d', '', 0, 0, 1)"
    )
    conn.execute("INSERT INTO updates VALUES ('d', 1, x'00', 0)")
    conn.close()
    async with SQLiteStore(db) as store:
        assert await store.list_versions("d") == []
        version = VersionRecord(0, T0, (("u", "U"),), "typed", 1, b"")
        assert await store.append_update("d", b"x", now_ms=T0, version=version) == 2
        assert [v.seq for v in await store.list_versions("d")] == [2]


async def test_a_database_from_a_newer_cowrite_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "db"
    async with SQLiteStore(db):
        pass
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE schema_version SET version = 99")
    conn.close()

    store = SQLiteStore(db)
    with pytest.raises(StoreError, match="schema version 99"):
        await store.open()
    assert await store.health() is False


async def test_opening_in_a_missing_directory_raises_store_unavailable(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "no" / "such" / "dir" / "db")
    with pytest.raises(StoreUnavailable):
        await store.open()


def test_in_memory_paths_are_rejected() -> None:
    for path in (":memory:", ""):
        with pytest.raises(ValueError, match="MemoryStore"):
            SQLiteStore(path)


async def test_a_store_can_be_reopened_after_close(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db")
    await store.open()
    await store.create_document("d", title="", now_ms=T0)
    await store.close()
    await store.open()
    try:
        assert await store.append_update("d", b"x", now_ms=T0) == 1
        with pytest.raises(StoreError, match="already open"):
            await store.open()
    finally:
        await store.close()


# --- a writer that must not die (issue 9, item 1) -------------------------------------------------


async def test_a_job_raising_anything_fails_only_that_job(tmp_path: Path) -> None:
    """SQLite raises ``OverflowError`` (not ``sqlite3.Error``) for an int beyond 64 bits: that job
    fails, the others in its batch are committed, and the writer carries on."""
    async with SQLiteStore(tmp_path / "db") as store:
        await store.create_document("d", title="", now_ms=T0)

        def overflowing(c: sqlite3.Connection) -> None:
            c.execute("UPDATE documents SET title = 'half-done' WHERE id = 'd'")
            c.execute("SELECT ?", (2**63,))

        results = await asyncio.gather(
            store.append_update("d", b"a", now_ms=T0),
            store._write(overflowing),
            store.append_update("d", b"b", now_ms=T0),
            return_exceptions=True,
        )
        assert results[0] == 1 and results[2] == 2
        assert isinstance(results[1], OverflowError)
        info = await store.get_document("d")
        assert info is not None and info.title == ""  # the failing job's write rolled back
        assert await store.append_update("d", b"c", now_ms=T0) == 3
        assert await store.health() and await store.alive()


async def test_a_failing_job_reruns_its_batch_in_savepoints_and_each_job_counts_once(
    tmp_path: Path,
) -> None:
    """The writer runs a batch without savepoints; a failure rolls it back and runs it again job
    by job: the jobs before the failing one are stored once, not twice."""
    async with SQLiteStore(tmp_path / "db") as store:
        await store.create_document("d", title="", now_ms=T0)

        def failing(c: sqlite3.Connection) -> None:
            c.execute("UPDATE documents SET title = 'half-done' WHERE id = 'd'")
            raise ValueError("refused (test)")

        for _ in range(3):
            results = await asyncio.gather(
                *[store.append_update("d", bytes([i]), now_ms=T0) for i in range(4)],
                store._write(failing),
                store.append_update("d", b"z", now_ms=T0),
                return_exceptions=True,
            )
            assert isinstance(results[4], ValueError)
        lone = await asyncio.gather(store._write(failing), return_exceptions=True)
        assert isinstance(lone[0], ValueError)
        loaded = await store.load("d")
        assert loaded is not None
        assert [seq for seq, _ in loaded.updates] == list(range(1, 16))
        assert [data for _, data in loaded.updates][:5] == [
            b"\x00",
            b"\x01",
            b"\x02",
            b"\x03",
            b"z",
        ]
        info = await store.get_document("d")
        assert info is not None and info.title == ""
        assert await store.append_update("d", b"c", now_ms=T0) == 16


class _Crash(BaseException):
    """Not an ``Exception``: stands for a bug that kills the writer thread itself."""


def _crash(c: sqlite3.Connection) -> None:
    raise _Crash("writer thread killed (test)")


async def test_a_crashed_writer_is_restarted_and_nothing_is_lost(tmp_path: Path) -> None:
    async with SQLiteStore(tmp_path / "db") as store:
        await store.create_document("d", title="", now_ms=T0)
        assert await store.append_update("d", b"a", now_ms=T0) == 1
        with pytest.raises(StoreUnavailable):
            await store._write(_crash)
        # the next write starts a new writer: stored, in order, and the store is healthy
        assert await store.append_update("d", b"b", now_ms=T0) == 2
        assert store.writer_restarts == 1
        assert await store.health() and await store.alive()
        loaded = await store.load("d")
        assert loaded is not None and [u for _, u in loaded.updates] == [b"a", b"b"]


async def test_a_writer_that_cannot_be_restarted_makes_the_store_not_alive(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    store = SQLiteStore(folder / "db")
    await store.open()
    try:
        await store.create_document("d", title="", now_ms=T0)
        with pytest.raises(StoreUnavailable):
            await store._write(_crash)
        for f in folder.iterdir():  # the database is gone: a new writer cannot open it
            f.unlink()
        folder.rmdir()
        with pytest.raises(StoreUnavailable):
            await store.append_update("d", b"x", now_ms=T0)
        assert await store.alive() is False
        assert await store.health() is False
        folder.mkdir()  # back: the next write restarts the writer on a new, empty database
        assert await store.alive() is True
    finally:
        await store.close()


@pytest.mark.parametrize("block", [64, 2048])
async def test_a_version_4_database_made_by_cowrite_has_its_versions_packed(
    tmp_path: Path, block: int
) -> None:
    """Migration 5 packs the ``versions`` rows of a database written by cowrite at schema 4
    (``fixtures/schema4_versions.db``): every version, name and field reads back the same, and
    the document goes on making versions."""
    sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
    import schema4_versions

    db = tmp_path / "db"
    shutil.copy(Path(__file__).parent / "fixtures" / "schema4_versions.db", db)
    expected = schema4_versions.expected()
    async with SQLiteStore(db, version_block=block) as store:
        assert await store.list_versions("doc", limit=10_000) == expected
        assert await store.get_version("doc", 333) == expected[332]
        named = await store.list_versions("doc", named_only=True)
        assert [v.seq for v in named] == sorted(schema4_versions.NAMED)
        version = VersionRecord(0, T0, (("u", "U"),), "typed", 1, b"")
        assert await store.append_update("doc", b"x", now_ms=T0, version=version) == 701
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT version FROM schema_version").fetchone() == (5,)
        assert conn.execute("SELECT count(*) FROM versions").fetchone() == (1,)  # the new one
        packed = conn.execute("SELECT sum(n) FROM version_blocks").fetchone()[0]
        assert packed == 700
    finally:
        conn.close()
