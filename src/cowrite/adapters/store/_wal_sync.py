"""Pipelined group commit: the SQLite WAL's fsync on a thread of its own.

The writer (`BatchWriter`) commits with ``PRAGMA synchronous=NORMAL``: ``COMMIT`` writes the
batch's WAL frames with ``write(2)`` and returns without an fsync (in WAL mode NORMAL still
syncs the WAL before a checkpoint copies it, the database file after, and the WAL header when
the WAL is reused). What a commit then lacks to be durable is an fsync of the WAL's bytes; this
thread provides it. The writer hands every committed batch's outcomes over (`deliver`), runs
the next batch's statements while the disk syncs, and the outcomes reach their event loops
only after an ``fdatasync`` of the WAL that *began after their commit* returned. One
``fdatasync`` covers every batch committed before it began, so the syncs are grouped too: all
batches waiting when a sync starts are resolved by it.

Order: outcomes are delivered in the order they were handed over (the writer's submission
order), including failures that need no sync, which wait behind the batches before them.

When the writer has no next batch to run and nothing handed over is still waiting, it syncs and
delivers the batch itself (``settle_here``): with nothing to overlap (one document: its room hands
the store its next batch only once the previous is durable) the hop to this thread and back
would cost a wake-up and a re-take of the interpreter lock, and save nothing.

Between a commit and its sync a reader may already see the rows (they are in the WAL and the
page cache): a process crash, SIGKILL included, cannot lose them (the kernel has the bytes),
only the machine going down before the sync can, and then no waiter was told they were stored.

The WAL file is the one next to the database SQLite reports (``PRAGMA database_list``). It is
not deleted while the writer's connection is open (SQLite deletes it when its last connection
closes, after checkpointing it into a synced database file); it is reused in place after a
checkpoint (same inode). Still, each sync compares the path's inode with the open descriptor's
and reopens on a change, and if the WAL is missing syncs the database file instead.

If ``fdatasync`` fails, the disk's state is unknown (the kernel may have dropped the dirty
pages): the batches waiting for it and every later one fail with `StoreUnavailable`, and
``failed`` is set; the writer then stops (``crashed``) and the store starts a new one.

Contract: ``start()`` once; ``deliver`` from the writer thread only; ``close()`` from the writer
thread, once, after its last ``deliver``: it syncs and delivers what is left, then joins.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cowrite.adapters.store.base import StoreUnavailable

log = logging.getLogger("cowrite.store.sqlite")

PIPELINE_ENV = "COWRITE_SQLITE_SYNC_PIPELINE"
"""``1`` turns the pipeline on; off by default (``synchronous=FULL`` fsyncs inside ``COMMIT``):
it showed no gain while a room hands the store its next batch only after the previous one is
durable (docs/benchmarks.md "Pipelined group commit")."""

_ON = ("1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off", "")


def pipeline_enabled(setting: bool | None) -> bool:
    """The store's ``sync_pipeline`` argument, or (None) the environment's, off by default.

    Raises ValueError for a value of the environment variable that is neither on nor off, so a
    typo stops the store from starting instead of choosing a durability mode silently.
    """
    if setting is not None:
        return setting
    value = os.environ.get(PIPELINE_ENV, "0").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(f"{PIPELINE_ENV} must be 1 or 0 (true/false, yes/no, on/off), not {value!r}")


@dataclass(slots=True)
class SyncStats:
    """Counters for metrics and tests; written by the sync thread only."""

    syncs: int = 0  # fdatasync calls that returned
    batches: int = 0  # committed batches they covered
    largest_group: int = 0  # most batches covered by one sync
    inline: int = 0  # batches the writer synced itself (nothing to overlap with)


class WalSyncer:
    """A thread that fdatasyncs ``wal_path`` and then hands the covered batches to ``resolve``.

    ``resolve(items)`` receives what the writer handed over, in order, on this thread;
    ``fail(items, error)`` what it handed over when the sync failed; ``on_failure()`` is called
    once, when ``failed`` is first set (the writer stops then).
    ``db_path`` is synced instead if the WAL is missing (see the module docstring).
    """

    def __init__(
        self,
        wal_path: str,
        db_path: str,
        resolve: Callable[[list[Any]], None],
        fail: Callable[[list[Any], BaseException], None],
        on_failure: Callable[[], None],
        *,
        stats: SyncStats,
        name: str,
    ) -> None:
        self._wal = wal_path
        self._db = db_path
        self._resolve = resolve
        self._fail = fail
        self._on_failure = on_failure
        self._stats = stats
        self._queue: queue.SimpleQueue[tuple[list[Any], bool] | None] = queue.SimpleQueue()
        self._fd: int | None = None
        self._lock = threading.Lock()
        self._outstanding = 0  # batches handed over and not yet delivered
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino) of the open descriptor
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.failed: BaseException | None = None
        """Set once an fdatasync failed: nothing handed over since is reported stored."""

    def start(self) -> None:
        self._thread.start()

    def deliver(self, items: list[Any], *, committed: bool) -> None:
        """Queue one batch's outcomes; ``committed``: it wrote something that needs the sync."""
        with self._lock:
            self._outstanding += 1
        self._queue.put((items, committed))

    def settle_here(self, items: list[Any], *, committed: bool) -> bool:
        """Sync and deliver one batch on the caller's thread (the writer's, with no next batch
        to run meanwhile), if nothing handed over is still waiting: one thread hop fewer. False:
        hand it over (``deliver``) to keep the order."""
        with self._lock:
            if self._outstanding:
                return False
        # the sync thread is idle and only the caller hands it work: nobody else uses the fd
        self._settle([(items, committed)])
        self._stats.inline += 1
        return True

    def close(self) -> None:
        """Sync and deliver what was handed over, then end the thread (blocking)."""
        self._queue.put(None)
        self._thread.join()

    # --- the sync thread ------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            stop = False
            while not stop:
                first = self._queue.get()
                if first is None:
                    break
                group = [first]
                while True:  # every batch committed before this sync begins
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    group.append(item)
                try:
                    self._settle(group)
                except BaseException as exc:  # a bug in delivering: later batches must not wait
                    log.exception("the sqlite WAL sync thread failed")
                    self.failed = self.failed or StoreUnavailable(f"sqlite: sync thread: {exc!r}")
                with self._lock:
                    self._outstanding -= len(group)
        finally:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None

    def _settle(self, group: list[tuple[list[Any], bool]]) -> None:
        committed = sum(1 for _, wrote in group if wrote)
        if committed and self.failed is None:
            try:
                self._sync()
            except BaseException as exc:  # EIO, ENOSPC, a bug: the disk's state is unknown
                log.exception("fdatasync of the sqlite WAL failed")
                error = StoreUnavailable(f"sqlite: fdatasync of the WAL failed: {exc!r}")
                error.__cause__ = exc
                self.failed = error
                self._on_failure()
            else:
                stats = self._stats
                stats.syncs += 1
                stats.batches += committed
                stats.largest_group = max(stats.largest_group, committed)
        failed = self.failed
        for items, wrote in group:
            if failed is not None and wrote:
                self._fail(items, failed)
            else:
                self._resolve(items)

    def _sync(self) -> None:
        try:
            st = os.stat(self._wal)
        except FileNotFoundError:  # checkpointed into the database file and deleted
            log.warning("the sqlite WAL %s is missing; syncing the database file", self._wal)
            fd = os.open(self._db, os.O_RDONLY)
            try:
                os.fdatasync(fd)
            finally:
                os.close(fd)
            return
        ident = (st.st_dev, st.st_ino)
        if self._fd is None or ident != self._ident:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            self._fd = os.open(self._wal, os.O_RDONLY)
            # the inode opened, not the one stat() saw: they differ if it changed in between
            opened = os.fstat(self._fd)
            self._ident = (opened.st_dev, opened.st_ino)
        os.fdatasync(self._fd)
