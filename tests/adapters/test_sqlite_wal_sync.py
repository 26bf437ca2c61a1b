"""Pipelined group commit (``_wal_sync.py``): a write resolves only after an fdatasync of the WAL
that began after its commit, in submission order, whatever the interleaving of submits, failing
jobs, syncs and failing syncs; the fallback switch; the WAL's identity; readers and checkpoints.

``os.fdatasync`` is wrapped to record (and hold, or fail) each call: a failing fsync is a fault
that cannot be produced for real here."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite.adapters.store import SQLiteStore, StoreUnavailable
from cowrite.adapters.store._wal_sync import SyncStats, WalSyncer, pipeline_enabled
from cowrite.adapters.store._writer import BatchWriter, WriterStats

T0 = 1_700_000_000_000
REAL_FDATASYNC = os.fdatasync


class Disk:
    """``os.fdatasync`` recorded into ``events`` (shared with the test's other records), held at
    a gate while ``held``, failing once when ``fail_next`` is set."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[str, Any]] = []
        self.gate = threading.Semaphore(0)
        self.held = False
        self.fail_next = False
        self.inodes: list[int] = []

    def log(self, kind: str, what: Any = None) -> int:
        with self.lock:
            self.events.append((kind, what))
            return len(self.events) - 1

    def fdatasync(self, fd: int) -> None:
        n = self.log("sync start")
        self.inodes.append(os.fstat(fd).st_ino)
        if self.held:
            self.gate.acquire()
        if self.fail_next:
            self.fail_next = False
            self.log("sync failed", n)
            raise OSError(5, "Input/output error (injected)")
        REAL_FDATASYNC(fd)
        self.log("sync end", n)

    def open_gate(self) -> None:
        self.held = False
        for _ in range(1_000):  # more than any test holds
            self.gate.release()


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Disk]:
    d = Disk()
    monkeypatch.setattr(os, "fdatasync", d.fdatasync)
    yield d
    d.open_gate()


def _record_commits(monkeypatch: pytest.MonkeyPatch, disk: Disk) -> None:
    """Log each committed batch's successful values after its ``COMMIT`` returned."""
    original: Callable[..., Any] = BatchWriter._commit

    def commit(self: BatchWriter, batch: list[Any]) -> Any:
        outcomes = original(self, batch)
        disk.log("commit", [v for _, v, e in outcomes if e is None])
        return outcomes

    monkeypatch.setattr(BatchWriter, "_commit", commit)


def _check_durable_order(events: list[tuple[str, Any]]) -> None:
    """Every value resolved as stored committed, then a sync began, ended, then it resolved."""
    committed: dict[Any, int] = {}
    for i, (kind, what) in enumerate(events):
        if kind == "commit":
            for value in what:
                committed[value] = i
        elif kind == "resolved":
            c = committed[what]
            assert any(
                kind2 == "sync end" and start > c and i2 < i
                for i2, (kind2, start) in enumerate(events)
            ), f"{what} resolved without a sync begun after its commit"


async def _until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(2_000):  # a liveness bound (20 s), not a timing assertion
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


async def test_a_write_resolves_after_an_fdatasync_of_the_wal_begun_after_its_commit(
    tmp_path: Path, disk: Disk, monkeypatch: pytest.MonkeyPatch
) -> None:
    _record_commits(monkeypatch, disk)
    async with SQLiteStore(tmp_path / "db", sync_pipeline=True) as store:
        assert store.sync_pipeline
        await store._write(lambda c: c.execute("CREATE TABLE t (v INTEGER)"))
        resolved: list[int] = []

        def job(v: int) -> Callable[[sqlite3.Connection], int]:
            return lambda c: (c.execute("INSERT INTO t VALUES (?)", (v,)), v)[1]

        futures = []
        for tick in range(20):
            for k in range(5):
                v = 5 * tick + k
                future = asyncio.ensure_future(store._write(job(v)))
                future.add_done_callback(
                    lambda f: (resolved.append(f.result()), disk.log("resolved", f.result()))
                )
                futures.append(future)
            await asyncio.sleep(0)
        await asyncio.gather(*futures)
        await asyncio.sleep(0)  # the done callbacks
        wal = os.stat(f"{tmp_path / 'db'}-wal").st_ino
        stats = store.stats.sync
    assert resolved == list(range(100))  # submission order
    _check_durable_order(disk.events)
    assert set(disk.inodes) == {wal}  # the WAL was synced, nothing else
    assert 1 <= stats.syncs <= stats.batches


async def test_a_reader_sees_a_committed_row_before_its_sync_and_the_write_waits_for_it(
    tmp_path: Path, disk: Disk
) -> None:
    async with SQLiteStore(tmp_path / "db", sync_pipeline=True) as store:
        await store.create_document("d", title="", now_ms=T0)
        synced = len(disk.events)
        disk.held = True
        try:
            append = asyncio.ensure_future(store.append_update("d", b"u", now_ms=T0))
            await _until(lambda: len(disk.events) > synced, "a sync began")
            loaded = await store.load("d")  # committed, in the page cache, not yet synced
            assert loaded is not None and loaded.updates == [(1, b"u")]
            assert not append.done()
        finally:
            disk.open_gate()
        assert await append == 1


async def test_the_writer_syncs_itself_when_idle_and_hands_over_when_a_batch_waits(
    tmp_path: Path, disk: Disk
) -> None:
    async with SQLiteStore(tmp_path / "db", max_batch=1, sync_pipeline=True) as store:
        await store.create_document("d", title="", now_ms=T0)
        for i in range(5):  # one at a time: nothing to overlap, no thread hop
            await store.append_update("d", b"%d" % i, now_ms=T0)
        stats = store.stats.sync
        assert stats.syncs == stats.batches == 6
        assert stats.inline >= 1  # (a batch may find the next one already handed over)
        disk.held = True  # no sync ends until the gate opens
        try:  # three batches of one: the first two have a batch behind them, the third a sync
            appends = [
                asyncio.ensure_future(store.append_update("d", b"b", now_ms=T0)) for _ in range(3)
            ]
            # all three commit while no sync can end: the writer did not wait for one
            await _until(lambda: store.stats.commits == 9, "all three committed")
            assert not any(a.done() for a in appends)
        finally:
            disk.open_gate()
        assert [await a for a in appends] == [6, 7, 8]
        assert stats.batches == 9 and stats.largest_group >= 2  # one sync covered two or more


async def test_close_waits_for_the_sync_of_every_write_submitted(
    tmp_path: Path, disk: Disk
) -> None:
    store = SQLiteStore(tmp_path / "db", sync_pipeline=True)
    await store.open()
    await store.create_document("d", title="", now_ms=T0)
    writer = store._writer
    assert writer is not None and writer._syncer is not None
    synced = len(disk.events)
    disk.held = True
    try:
        appends = [
            asyncio.ensure_future(store.append_update("d", b"%d" % i, now_ms=T0)) for i in range(20)
        ]
        await asyncio.sleep(0)
        closing = asyncio.ensure_future(store.close())
        await _until(lambda: len(disk.events) > synced, "a sync began")
        assert not closing.done() and not any(a.done() for a in appends)
    finally:
        disk.open_gate()
    await closing
    assert [await a for a in appends] == list(range(1, 21))
    assert not writer._syncer._thread.is_alive()
    async with SQLiteStore(tmp_path / "db") as again:
        loaded = await again.load("d")
        assert loaded is not None and len(loaded.updates) == 20


@pytest.mark.parametrize(
    ("synchronous", "switch", "env", "pragma", "pipelined"),
    [
        ("FULL", None, None, 2, False),  # off by default: SQLite fsyncs inside COMMIT
        ("FULL", None, "1", 1, True),  # NORMAL for SQLite: the sync thread fsyncs
        ("FULL", None, " On ", 1, True),
        ("FULL", False, None, 2, False),
        ("FULL", None, "0", 2, False),
        ("FULL", None, "off", 2, False),
        ("FULL", True, "0", 1, True),  # the argument wins
        ("NORMAL", None, None, 1, False),  # no fsync before a write resolves, as before
        ("NORMAL", True, None, 1, False),
    ],
)
async def test_the_pipeline_switch(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    synchronous: Any,
    switch: bool | None,
    env: str | None,
    pragma: int,
    pipelined: bool,
) -> None:
    if env is None:
        monkeypatch.delenv("COWRITE_SQLITE_SYNC_PIPELINE", raising=False)
    else:
        monkeypatch.setenv("COWRITE_SQLITE_SYNC_PIPELINE", env)
    async with SQLiteStore(tmp_path / "db", synchronous=synchronous, sync_pipeline=switch) as s:
        assert s.sync_pipeline is pipelined
        got = await s._write(lambda c: c.execute("PRAGMA synchronous").fetchone()[0])
        assert got == pragma
        await s.create_document("d", title="", now_ms=T0)
        assert await s.append_update("d", b"u", now_ms=T0) == 1
        assert (s.stats.sync.syncs > 0) is pipelined


def test_pipeline_enabled_reads_its_argument_then_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("COWRITE_SQLITE_SYNC_PIPELINE", raising=False)
    assert pipeline_enabled(None) is False
    monkeypatch.setenv("COWRITE_SQLITE_SYNC_PIPELINE", " Yes ")
    assert pipeline_enabled(None) is True
    assert pipeline_enabled(False) is False
    monkeypatch.setenv("COWRITE_SQLITE_SYNC_PIPELINE", " No ")
    assert pipeline_enabled(None) is False
    assert pipeline_enabled(True) is True
    for garbage in ("2", "\u00e9\u00e9", "yes please", "0 0", "banana"):
        monkeypatch.setenv("COWRITE_SQLITE_SYNC_PIPELINE", garbage)
        with pytest.raises(ValueError, match="COWRITE_SQLITE_SYNC_PIPELINE must be 1 or 0"):
            pipeline_enabled(None)
        assert pipeline_enabled(True) is True  # an explicit argument does not read it


def test_the_syncer_follows_a_replaced_wal_and_syncs_the_database_without_one(
    tmp_path: Path, disk: Disk
) -> None:
    wal, db = tmp_path / "db-wal", tmp_path / "db"
    db.write_bytes(b"db")
    wal.write_bytes(b"one")
    got: list[Any] = []
    stats = SyncStats()
    syncer = WalSyncer(
        str(wal),
        str(db),
        got.extend,
        lambda items, e: got.append(e),
        lambda: got.append("failed"),
        stats=stats,
        name="t",
    )
    syncer.start()
    syncer.deliver(["a"], committed=True)
    _wait(lambda: got == ["a"])
    first = os.stat(wal).st_ino
    wal.unlink()
    wal.write_bytes(b"two")  # a new inode at the same path
    second = os.stat(wal).st_ino
    syncer.deliver(["b"], committed=True)
    _wait(lambda: got == ["a", "b"])
    wal.unlink()
    syncer.deliver(["c"], committed=True)
    syncer.deliver(["d"], committed=False)  # a failed batch: no sync of its own
    syncer.close()
    assert got == ["a", "b", "c", "d"]
    assert disk.inodes == [first, second, os.stat(db).st_ino]
    assert syncer.failed is None and stats.syncs == 3


def _wait(condition: Callable[[], bool]) -> None:
    event = threading.Event()
    for _ in range(2_000):  # a liveness bound, not a timing assertion
        if condition():
            return
        event.wait(0.01)
    raise AssertionError("never happened")


async def test_checkpoints_reuse_the_wal_in_place_and_every_write_is_kept(
    tmp_path: Path, disk: Disk
) -> None:
    path = tmp_path / "db"
    async with SQLiteStore(path, checkpoint_interval_s=0.01, sync_pipeline=True) as store:
        await store.create_document("d", title="", now_ms=T0)
        checkpointer = store._checkpointer
        assert checkpointer is not None
        n = 0
        for _ in range(30):  # checkpoints between the bursts: the WAL restarts from its start
            seen = checkpointer.checkpoints
            await asyncio.gather(
                *(store.append_update("d", b"x" * 900, now_ms=T0) for _ in range(10))
            )
            n += 10
            await _until(lambda s=seen: checkpointer.checkpoints > s, "a checkpoint")
        wal = os.stat(f"{path}-wal")
        loaded = await store.load("d")
        assert loaded is not None and len(loaded.updates) == n
    assert set(disk.inodes) == {wal.st_ino}
    assert wal.st_size < 30 * 10 * 900  # reused, not grown by every write


# --- interleavings --------------------------------------------------------------------------

_step = st.one_of(
    st.tuples(st.just("submit"), st.lists(st.booleans(), min_size=1, max_size=6)),
    st.tuples(st.just("release"), st.integers(1, 3)),
    st.tuples(st.just("fail"), st.just(0)),
    st.tuples(st.just("tick"), st.just(0)),
)


@settings(max_examples=30, deadline=None)
@given(steps=st.lists(_step, max_size=25))
def test_any_interleaving_resolves_in_order_and_only_after_a_later_sync(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, Any]]
) -> None:
    """Submits (True: a job that raises), syncs let through one by one, a failing fsync: the
    futures resolve in submission order; a stored write's commit was followed by a sync that
    ended before it resolved; a failing job's row is not there and every stored one is; after a
    failed sync nothing committed later is reported stored and the writer is ``crashed``."""
    path = str(tmp_path_factory.mktemp("i") / "db")
    disk = Disk()
    original_commit: Callable[..., Any] = BatchWriter._commit

    def commit(self: BatchWriter, batch: list[Any]) -> Any:
        outcomes = original_commit(self, batch)
        disk.log("commit", [v for _, v, e in outcomes if e is None])
        return outcomes

    async def main() -> None:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("CREATE TABLE t (v INTEGER)")
        writer = BatchWriter(
            conn, stats=WriterStats(), max_batch=4, name="t", wal=(f"{path}-wal", path)
        )
        writer.start()
        disk.held = True
        futures: dict[int, asyncio.Future[int]] = {}
        raising: set[int] = set()
        refused: set[int] = set()
        order: list[int] = []

        def job(v: int, fails: bool) -> Callable[[sqlite3.Connection], int]:
            def run(c: sqlite3.Connection) -> int:
                c.execute("INSERT INTO t VALUES (?)", (v,))
                if fails:
                    raise ValueError(v)
                return v

            return run

        def done(v: int, f: asyncio.Future[int]) -> None:
            order.append(v)
            if not f.exception():
                disk.log("resolved", v)

        v = 0
        for kind, arg in steps:
            if kind == "submit":
                for fails in arg:
                    v += 1
                    try:
                        future = writer.submit(job(v, fails))
                    except StoreUnavailable:  # the writer stopped after a failed sync
                        refused.add(v)
                        continue
                    future.add_done_callback(lambda f, v=v: done(v, f))
                    futures[v] = future
                    if fails:
                        raising.add(v)
                await asyncio.sleep(0)
            elif kind == "release":
                for _ in range(arg):
                    disk.gate.release()
                await asyncio.sleep(0)
            elif kind == "fail":
                disk.fail_next = True
            else:
                await asyncio.sleep(0.001)
        disk.open_gate()
        results = await asyncio.wait_for(
            asyncio.gather(*futures.values(), return_exceptions=True), 30
        )
        await asyncio.sleep(0)
        await writer.stop()

        assert order == sorted(futures)  # submission order, failures included
        outcome = dict(zip(futures, results, strict=True))
        failed_sync = [i for i, (k, _) in enumerate(disk.events) if k == "sync failed"]
        for value, result in outcome.items():
            if value in raising:
                assert isinstance(result, ValueError | StoreUnavailable)
            elif not failed_sync:
                assert result == value
            else:
                assert result == value or isinstance(result, StoreUnavailable)
        if failed_sync:
            assert writer.crashed
            first = failed_sync[0]
            late = [
                x
                for i, (k, what) in enumerate(disk.events)
                if k == "commit" and i > disk.events[first][1]
                for x in what
            ]
            assert not any(outcome.get(x) == x for x in late)  # none reported stored
        _check_durable_order(disk.events)
        check = sqlite3.connect(path)
        rows = {r[0] for r in check.execute("SELECT v FROM t")}
        check.close()
        assert not rows & raising  # a failing job's insert rolled back
        assert {x for x, r in outcome.items() if r == x} <= rows  # stored is stored

    original_fdatasync = os.fdatasync
    os.fdatasync = disk.fdatasync
    BatchWriter._commit = commit  # type: ignore[method-assign]
    try:
        asyncio.run(main())
    finally:
        os.fdatasync = original_fdatasync
        BatchWriter._commit = original_commit  # type: ignore[method-assign]
        disk.open_gate()
