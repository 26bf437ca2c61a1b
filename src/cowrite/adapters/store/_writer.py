"""The SQLite store's single writer: one thread, one connection, group commit.

Coroutines submit write jobs (plain functions of a connection) from the event loop; the thread takes
every job queued so far (up to ``max_batch``), runs them in one transaction, commits once, and only
then resolves the jobs' futures. One failing job must not undo the others: when a job raises, the
transaction is rolled back and the batch runs again with each job inside its own savepoint (jobs are
functions of the connection alone, so running one twice is safe). Jobs rarely fail, so the usual
batch pays no savepoint statements (two per job, each a round trip through the GIL). While one batch
waits for its fsync the next one queues up, so N concurrent writers cost about one fsync per batch
instead of N, with no artificial delay added to a lone write.

With a `WalSyncer` (pipelined group commit, ``_wal_sync.py``) the commit does not fsync: the
writer hands the batch's outcomes to the sync thread and runs the next batch's statements while
the WAL is fsynced; the outcomes still reach their loops in submission order, each after an
``fdatasync`` that began after its commit. Without one (``COWRITE_SQLITE_SYNC_PIPELINE=0``, or
``synchronous="NORMAL"``) they are delivered as soon as ``COMMIT`` returns.

A job that raises anything (a bad argument, a bug, ``OverflowError`` from SQLite's binding of a huge
int) fails that job only. If the thread dies anyway, ``crashed`` is set, every waiter gets
`StoreUnavailable`, and ``SQLiteStore`` starts a new writer on the next write; so it does when the
WAL's fdatasync failed (the batches it covered fail, and the writer stops before the next one).

Jobs run in the order they were submitted: the log order of a document is the order of the
``append_update`` calls.

The jobs a loop submits during one tick reach the thread together, at the end of that tick (one
``call_soon``): one queue operation, and at most one wake-up of the thread, per tick instead of
one per job (waking the thread costs the loop a system call, and the thread then competes with the
loop for the GIL while the loop still has that tick's work to do).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from cowrite.adapters.store._wal_sync import SyncStats, WalSyncer
from cowrite.adapters.store.base import StoreError, StoreUnavailable

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(slots=True)
class WriterStats:
    """Counters for metrics and tests; written by the writer thread only."""

    commits: int = 0  # transactions committed
    jobs: int = 0  # jobs that ran in a committed transaction (succeeded or not)
    largest_batch: int = 0
    sync: SyncStats = field(default_factory=SyncStats)  # the WAL syncs of the pipeline


@dataclass(slots=True)
class _Job(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]


# (future, value, error): what the event loop sets once the batch is over.
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


def translate(exc: sqlite3.Error) -> StoreError:
    """Map a sqlite3 error to the store's errors: operational failures may be retried."""
    if isinstance(exc, sqlite3.OperationalError):
        error: StoreError = StoreUnavailable(f"sqlite: {exc}")
    else:
        error = StoreError(f"sqlite: {exc}")
    error.__cause__ = exc
    return error


class BatchWriter:
    """Runs write jobs on a dedicated thread that owns ``conn``, committing them in batches."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        stats: WriterStats,
        max_batch: int,
        name: str,
        wal: tuple[str, str] | None = None,
    ) -> None:
        """``wal``: (the WAL's path, the database's) to fsync on a thread of its own after each
        commit (the connection then commits with ``synchronous=NORMAL``); None: deliver the
        outcomes when ``COMMIT`` returns."""
        self._conn = conn
        self._syncer: WalSyncer | None = None
        if wal is not None:
            self._syncer = WalSyncer(
                *wal, _deliver, _fail_all, self._wake, stats=stats.sync, name=f"{name}-sync"
            )
        self._stats = stats
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[list[_Job[Any]] | None] = queue.SimpleQueue()  # None: stop
        self._tick: list[_Job[Any]] = []  # submitted during this loop tick, handed over at its end
        self._tick_loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._stopping = False
        self.crashed = False
        """The thread died of an unexpected error: this writer takes no more jobs."""

    def start(self) -> None:
        if self._syncer is not None:
            self._syncer.start()
        self._thread.start()

    def is_alive(self) -> bool:
        syncer = self._syncer
        return (
            self._thread.is_alive()
            and not self._stopping
            and (syncer is None or syncer.failed is None)
        )

    def submit(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Queue ``fn``; the future resolves after the transaction that ran it has committed
        (and, with a syncer, after the WAL's fdatasync that followed).

        Must be called from a running event loop. The result is ``fn``'s return value, or the
        exception it raised (its changes then rolled back), or `StoreUnavailable`/`StoreError` if
        the commit failed (the whole batch rolled back).
        """
        if self.crashed:
            raise StoreUnavailable("the sqlite writer thread crashed")
        if self._stopping:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        tick = self._tick
        if tick and self._tick_loop is not loop:  # another loop's tick: theirs go first
            self._hand_over()
            tick = self._tick
        tick.append(_Job(fn, loop, future))
        if len(tick) == 1:
            self._tick_loop = loop
            loop.call_soon(self._hand_over)
        return future

    def _hand_over(self) -> None:
        """The jobs of this tick to the thread, in one piece (the end of the tick, or sooner)."""
        tick = self._tick
        if tick:
            self._tick = []
            self._tick_loop = None
            self._queue.put(tick)
            if self.crashed:  # the thread may have drained its queue for the last time
                self._fail_queued()

    def _wake(self) -> None:
        """The sync failed: an empty batch wakes the thread, which then stops (``crashed``)."""
        self._queue.put([])

    def _fail_queued(self) -> None:
        """Fail what the crashed thread left in the queue (it can no longer run it)."""
        crashed = StoreUnavailable("the sqlite writer thread crashed")
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            for job in item or ():
                failed: list[_Outcome] = [(job.future, None, crashed)]
                job.loop.call_soon_threadsafe(_resolve, failed)

    async def stop(self) -> None:
        """Run every job already submitted, then close the connection and end the thread."""
        if not self._stopping:
            self._stopping = True
            self._hand_over()
            self._queue.put(None)
        await asyncio.to_thread(self._thread.join)

    # --- the writer thread ----------------------------------------------------------------------

    def _run(self) -> None:
        syncer = self._syncer
        pending: list[_Job[Any]] = []
        ready: list[_Job[Any]] = []  # handed over, not yet in a batch (beyond ``max_batch``)
        try:
            stop = False
            while not stop or ready:
                if not ready:
                    first = self._queue.get()
                    if first is None:
                        break
                    ready = first
                while len(ready) < self._max_batch and not stop:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                    else:
                        ready += item
                pending, ready = ready[: self._max_batch], ready[self._max_batch :]
                if syncer is not None and syncer.failed is not None:
                    raise syncer.failed  # the disk's state is unknown: stop, be restarted
                outcomes = self._commit(pending)
                if syncer is None:
                    _deliver(outcomes)
                else:  # resolved after the next fdatasync; meanwhile, the next batch
                    wrote = any(e is None for _, _, e in outcomes)
                    idle = not ready and self._queue.empty()  # nothing to run meanwhile
                    if not (idle and syncer.settle_here(outcomes, committed=wrote)):
                        syncer.deliver(outcomes, committed=wrote)
                pending = []
        except BaseException as exc:  # a bug: fail every waiter; the store starts a new writer
            log.exception("sqlite writer thread crashed")
            self.crashed = True
            self._stopping = True
            crashed = StoreUnavailable(f"the sqlite writer thread crashed: {exc!r}")
            pending += ready
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    pending += item
            failed: list[tuple[_Job[Any], Any, BaseException | None]]
            failed = [(job, None, crashed) for job in pending]
            if syncer is None:
                _deliver(failed)  # logged above; not re-raised
            else:  # behind the batches still waiting for their sync
                syncer.deliver(failed, committed=False)
        finally:
            if syncer is not None:
                syncer.close()  # the last sync before the connection closes
            self._conn.close()

    def _commit(self, batch: list[_Job[Any]]) -> list[tuple[_Job[Any], Any, BaseException | None]]:
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = self._run_together(batch)
            if outcomes is None:  # a job failed: the transaction was rolled back
                conn.execute("BEGIN IMMEDIATE")
                outcomes = self._run_isolated(batch)
            if conn.in_transaction:  # not after a lone job's failure (rolled back)
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("sqlite rollback failed after: %s", exc)
            error = translate(exc)
            return [(job, None, error) for job in batch]
        stats = self._stats
        stats.commits += 1
        stats.jobs += len(batch)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        return outcomes

    def _run_together(
        self, batch: list[_Job[Any]]
    ) -> list[tuple[_Job[Any], Any, BaseException | None]] | None:
        """Every job in the open transaction; None (rolled back) as soon as one raises, except
        for a batch of one, whose failure is its outcome."""
        conn = self._conn
        outcomes: list[tuple[_Job[Any], Any, BaseException | None]] = []
        for job in batch:
            try:
                value = job.fn(conn)
            except Exception as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                return None if len(batch) > 1 else [(job, None, _failure(exc))]
            outcomes.append((job, value, None))
        return outcomes

    def _run_isolated(
        self, batch: list[_Job[Any]]
    ) -> list[tuple[_Job[Any], Any, BaseException | None]]:
        """Every job in its own savepoint of the open transaction: a failing one is undone
        alone."""
        conn = self._conn
        outcomes: list[tuple[_Job[Any], Any, BaseException | None]] = []
        for job in batch:
            conn.execute("SAVEPOINT job")
            try:
                value = job.fn(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                outcomes.append((job, None, _failure(exc)))
            else:
                conn.execute("RELEASE job")
                outcomes.append((job, value, None))
        return outcomes


def _failure(exc: Exception) -> BaseException:
    """What a failed job's waiter gets."""
    if isinstance(exc, StoreError | ValueError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return translate(exc)
    log.error("sqlite write job failed", exc_info=exc)  # a bug or an unbindable value
    return exc


def _deliver(outcomes: list[tuple[_Job[Any], Any, BaseException | None]]) -> None:
    """Hand the outcomes to their event loops: one wake-up per loop per batch."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for job, value, error in outcomes:
        by_loop.setdefault(job.loop, []).append((job.future, value, error))
    for loop, items in by_loop.items():
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, items)


def _fail_all(
    outcomes: list[tuple[_Job[Any], Any, BaseException | None]], error: BaseException
) -> None:
    """Deliver ``error`` to every job of a batch whose sync failed."""
    _deliver([(job, None, error) for job, _, _ in outcomes])


def _resolve(items: list[_Outcome]) -> None:
    for future, value, error in items:
        if future.done():  # the caller was cancelled; the write stands
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)
