"""Checkpoints of the SQLite write-ahead log, off the commit path.

SQLite's automatic checkpoint runs inside the commit that pushes the WAL past
``wal_autocheckpoint`` pages: that commit copies the WAL into the database file and fsyncs
it, so every edit of its group commit waits tens of milliseconds for work that is not theirs
(the durable server's latency tail showed these as bursts of slow commits). Here a thread of
its own, with its own connection, runs a PASSIVE checkpoint once per ``interval_s`` in which
another connection committed (``PRAGMA data_version``): PASSIVE never blocks the writer or the
readers (it copies what no reader still needs and stops), and the writer's next transaction
restarts the WAL once a checkpoint has copied all of it. The writer keeps a much larger
automatic checkpoint as a safety net (``SAFETY_PAGES``), so the WAL stays bounded if this
thread falls behind or fails.

With the pipelined WAL sync (``_wal_sync.py``) a checkpoint may copy frames whose sync has not
run yet: SQLite syncs the WAL before a checkpoint copies it (this connection keeps the default
``synchronous``) and the database file after, so that only makes them durable sooner; the WAL it
lets the writer reuse is the same file (the sync thread's descriptor stays valid).

Contract: ``start()`` once, ``stop()`` once (blocking: joins the thread); errors are logged and
retried at the next interval, never raised to the store.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

log = logging.getLogger("cowrite.store.sqlite")

SAFETY_PAGES = 16_384
"""The writer connection's own ``wal_autocheckpoint`` (pages of 4 kB: 64 MB), reached only if
the checkpointer thread cannot keep up."""


class Checkpointer:
    """A thread that checkpoints the WAL of ``path`` once per ``interval_s`` with a commit."""

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        path: str,
        *,
        interval_s: float = 1.0,
    ) -> None:
        self._connect = connect
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="cowrite-sqlite-checkpoint", daemon=True
        )
        self.checkpoints = 0
        """Checkpoints run (complete or not): for tests and metrics."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        conn: sqlite3.Connection | None = None
        seen: int | None = None  # data_version at the last checkpoint
        try:
            while not self._stop.wait(self._interval):
                try:
                    if conn is None:
                        conn = self._connect()
                    # changes whenever another connection committed (exact, unlike the WAL
                    # file's modification time, whose clock is coarser than a commit)
                    version = int(conn.execute("PRAGMA data_version").fetchone()[0])
                    if version == seen:
                        continue
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    seen = version
                    self.checkpoints += 1
                except Exception as exc:  # busy, locked, disk, cannot open: retried next time
                    log.warning("WAL checkpoint failed: %s", exc)
                    if conn is not None:
                        conn.close()
                        conn = None
                    seen = None
        finally:
            if conn is not None:
                conn.close()
