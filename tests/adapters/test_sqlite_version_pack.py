"""The SQLite store packs a document's version tail off the writer: the append that makes the
tail due commits without packing it (the encoding held that transaction, and every edit queued
behind it, for tens of ms), a reader encodes the blocks, and one short writer job swaps them in
unless the tail or the last block changed since; every version reads back the same."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import cowrite.adapters.store.sqlite as sqlite_module
from cowrite.adapters.store import SQLiteStore, VersionRecord
from cowrite.adapters.store._schema import migrate
from cowrite.adapters.store._sqlite_queries import _append_update, _create_document
from cowrite.adapters.store._versions import _name_version, _thin_versions, apply_pack, plan_pack

T0 = 1_700_000_000_000
BLOCK = 4  # the tail is due at 4 versions; blocks of 4


def _version(i: int) -> VersionRecord:
    return VersionRecord(0, T0 + 1000 * i, (("u1", "Ann"),), "typed", 1, bytes([5, i]))


def _db() -> sqlite3.Connection:
    c = sqlite3.connect(":memory:", isolation_level=None)
    migrate(c, BLOCK)
    _create_document(c, "d", "", T0, "crdt")
    return c


def _append(c: sqlite3.Connection, i: int, due: list[str] | None) -> int:
    c.execute("BEGIN")
    seq = _append_update(c, "d", b"u", (), T0, _version(i), BLOCK, due)
    c.execute("COMMIT")
    return seq


def _tail(c: sqlite3.Connection) -> int:
    return int(c.execute("SELECT count(*) FROM versions").fetchone()[0])


def test_an_append_that_makes_the_tail_due_leaves_it_to_the_caller() -> None:
    c = _db()
    due: list[str] = []
    for i in range(1, BLOCK + 1):
        _append(c, i, due)
    assert due == ["d"] and _tail(c) == BLOCK  # not packed in the append's transaction
    plan = plan_pack(c, "d", BLOCK)
    assert plan is not None and _tail(c) == BLOCK  # planning writes nothing
    c.execute("BEGIN")
    assert apply_pack(c, "d", plan)
    c.execute("COMMIT")
    assert _tail(c) == 0
    assert c.execute("SELECT first_seq, last_seq, n FROM version_blocks").fetchall() == [(1, 4, 4)]
    assert plan_pack(c, "d", BLOCK) is None  # nothing due any more


def test_a_plan_is_not_applied_once_the_tail_or_the_last_block_changed() -> None:
    c = _db()
    for i in range(1, BLOCK + 1):
        _append(c, i, [])
    stale = plan_pack(c, "d", BLOCK)
    assert stale is not None
    c.execute("BEGIN")
    _thin_versions(c, "d", [2], [])  # retention removed a tail row since
    c.execute("COMMIT")
    c.execute("BEGIN")
    assert not apply_pack(c, "d", stale)
    c.execute("COMMIT")
    assert _tail(c) == BLOCK - 1
    assert c.execute("SELECT count(*) FROM version_blocks").fetchone() == (0,)
    # a stale plan that tops up a last block which changed since is refused too
    c = _db()
    for i in range(1, BLOCK + 1):
        _append(c, i, [])
    plan = plan_pack(c, "d", BLOCK)
    assert plan is not None
    c.execute("BEGIN")
    assert apply_pack(c, "d", plan)
    _thin_versions(c, "d", [3], [])  # the block [1, 4] now holds 3 versions
    c.execute("COMMIT")
    for i in range(5, 5 + BLOCK):
        _append(c, i, [])
    stale = plan_pack(c, "d", BLOCK)
    assert stale is not None and stale.topped_up
    c.execute("BEGIN")
    _thin_versions(c, "d", [2], [])  # rewrites that block
    assert not apply_pack(c, "d", stale)
    c.execute("COMMIT")
    assert _tail(c) == BLOCK


def test_a_name_given_between_the_plan_and_the_swap_is_kept() -> None:
    c = _db()
    for i in range(1, BLOCK + 1):
        _append(c, i, [])
    plan = plan_pack(c, "d", BLOCK)
    assert plan is not None
    c.execute("BEGIN")
    _name_version(c, "d", 2, "draft", T0)
    assert apply_pack(c, "d", plan)
    c.execute("COMMIT")
    assert c.execute("SELECT seq, name FROM version_names").fetchall() == [(2, "draft")]


def test_garbage_a_document_without_versions_or_an_unknown_one_plans_nothing() -> None:
    c = _db()
    assert plan_pack(c, "d", BLOCK) is None
    assert plan_pack(c, "no such document", BLOCK) is None
    _append(c, 1, [])
    assert plan_pack(c, "d", BLOCK) is None  # a tail shorter than due


@settings(max_examples=15, deadline=None)
@given(st.integers(1, 40), st.sampled_from([1, 3, 4, 7]))
def test_the_store_reads_every_version_back_whenever_packing_ran(n: int, block: int) -> None:
    """Through the store (packs in the background): whatever was packed when, every version
    reads back as appended, before and after the packs finished and after a restart."""
    import tempfile

    async def main(path: Path) -> None:
        async with SQLiteStore(path, version_block=block) as store:
            await store.create_document("d", title="", now_ms=T0)
            stored = []
            for i in range(1, n + 1):
                v = _version(i % 200)
                seq = await store.append_update("d", b"u", now_ms=T0, version=v)
                stored.append(replace(v, seq=seq))
                if i % 5 == 0:
                    assert await store.list_versions("d", limit=1000) == stored
            await asyncio.gather(*store._packing.values())
            assert await store.list_versions("d", limit=1000) == stored
        async with SQLiteStore(path, version_block=block) as store:
            assert await store.list_versions("d", limit=1000) == stored
        conn = sqlite3.connect(path)
        try:  # at most one tail's worth of rows is left unpacked
            assert conn.execute("SELECT count(*) FROM versions").fetchone()[0] < max(2, block)
        finally:
            conn.close()

    with tempfile.TemporaryDirectory() as d:
        asyncio.run(main(Path(d) / "db"))


async def test_garbage_a_damaged_last_block_fails_the_pack_not_the_appends(tmp_path: Path) -> None:
    """A block the codec cannot read (damaged on disk): the appends are stored and acknowledged
    all the same, the tail stays unpacked and readable."""
    path = tmp_path / "db"
    async with SQLiteStore(path, version_block=BLOCK) as store:
        await store.create_document("d", title="", now_ms=T0)
        for i in range(1, 4):
            await store.append_update("d", b"u", now_ms=T0, version=_version(i))
        await asyncio.gather(*store._packing.values())
    conn = sqlite3.connect(path)
    conn.execute(  # a block of 3: short of full, so the next pack tops it up (zlib: garbage)
        "INSERT INTO version_blocks (doc_id, last_seq, first_seq, n, data) "
        "VALUES ('d', 3, 1, 3, x'01ff')"
    )
    conn.execute("DELETE FROM versions")
    conn.commit()
    conn.close()
    async with SQLiteStore(path, version_block=BLOCK) as store:
        seqs = [
            await store.append_update("d", b"u", now_ms=T0, version=_version(i))
            for i in range(4, 4 + BLOCK)
        ]
        await asyncio.gather(*store._packing.values())
        assert seqs == list(range(4, 4 + BLOCK))
        assert [v.seq for v in await store.list_versions("d", after=3)] == seqs


async def test_documents_due_together_are_packed_one_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many documents whose tails come due in the same moment: their packs are planned in
    turn (never two encodings side by side on the readers), and every one is packed."""
    lock = threading.Lock()
    running = [0]
    most = [0]
    real = sqlite_module.plan_pack

    def counted(c: sqlite3.Connection, doc_id: str, block: int) -> object:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            return real(c, doc_id, block)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(sqlite_module, "plan_pack", counted)
    docs = [f"d{i}" for i in range(12)]
    async with SQLiteStore(tmp_path / "db", version_block=BLOCK, readers=3) as store:
        for d in docs:
            await store.create_document(d, title="", now_ms=T0)
        for i in range(1, BLOCK + 1):
            await asyncio.gather(
                *(store.append_update(d, b"u", now_ms=T0, version=_version(i)) for d in docs)
            )
        while store._packing:
            await asyncio.gather(*list(store._packing.values()))
        for d in docs:
            versions = await store.list_versions(d)
            assert [v.seq for v in versions] == list(range(1, BLOCK + 1))
    assert most[0] == 1
    conn = sqlite3.connect(tmp_path / "db")
    try:
        assert conn.execute("SELECT count(*) FROM versions").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM version_blocks").fetchone()[0] == len(docs)
    finally:
        conn.close()
