"""`SQLiteStore`: the default embedded `Store`, one SQLite file in WAL mode.

Writes go through one writer thread with its own connection (`BatchWriter`): concurrent
``append_update`` calls share a transaction and its fsync (group commit). Reads run on a small pool
of reader threads, each with its own read-only connection; WAL lets them read the last committed
state while the writer writes. No blocking call ever runs on the event loop.

Durability: an ``append_update`` resolves only after the transaction holding the update and its
edit keys has committed and the WAL, commit record included, has been fsynced, so an acknowledged
edit survives a process crash, a kernel panic and a power cut (given a disk that honours fsync).
With ``synchronous="FULL"`` (the default) SQLite fsyncs the WAL inside ``COMMIT``; with
``sync_pipeline=True`` (or ``COWRITE_SQLITE_SYNC_PIPELINE=1``) that fsync is pipelined
(``_wal_sync.py``): the writer commits with SQLite's ``synchronous=NORMAL`` and a thread of its
own ``fdatasync``s the WAL while the writer runs the next batch (or the writer syncs itself, when
it has no next batch); the batch's writes resolve after that sync. Readers may then see rows
committed but not yet synced: a process crash cannot lose them (they are in the OS page cache), a
power cut before the sync can, and then none of their writers was told they were stored.
With ``synchronous="NORMAL"`` the WAL is written (``write(2)``) but not fsynced before a write
resolves: the bytes are in the OS page cache, which survives the process being killed (SIGKILL
included) but not the machine going down; choose it only if losing the last second of edits on
power loss is acceptable.

This module holds the store, its lifecycle and its threads; the statements they run are in
``_sqlite_queries.py``, the schema in ``_schema.py``, the writer thread in ``_writer.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TYPE_CHECKING, Literal, TypeVar

from cowrite.adapters.store._checkpoint import SAFETY_PAGES, Checkpointer
from cowrite.adapters.store._schema import migrate
from cowrite.adapters.store._sqlite_queries import (
    _CHAT_COLUMNS,
    _DOC_COLUMNS,
    _add_chat,
    _append_update,
    _change_chat,
    _chat,
    _create_document,
    _get_document,
    _load,
    _save_snapshot,
    _stored_edit,
    _update_title,
    _updates_since,
)
from cowrite.adapters.store._version_blocks import BLOCK_VERSIONS
from cowrite.adapters.store._versions import (
    _get_version,
    _list_versions,
    _name_version,
    _thin_versions,
    apply_pack,
    plan_pack,
)
from cowrite.adapters.store._wal_sync import pipeline_enabled
from cowrite.adapters.store._writer import BatchWriter, WriterStats, translate
from cowrite.adapters.store.base import (
    ChatMessage,
    DocumentInfo,
    EditKey,
    StoredDocument,
    StoredEdit,
    StoreError,
    StoreUnavailable,
    VersionRecord,
    validate_doc_id,
    validate_edit_keys,
    validate_int,
    validate_kind,
    validate_limit,
    validate_title,
    validate_version,
    validate_version_name,
)

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from cowrite.adapters.store.base import Store

T = TypeVar("T")

log = logging.getLogger(__name__)

Synchronous = Literal["FULL", "NORMAL"]


class SQLiteStore:
    """A `Store` in one SQLite file. ``commit_count`` counts write transactions (for metrics).

    ``path`` is created if missing (its directory must exist). ``max_batch`` bounds how many writes
    share one transaction; ``readers`` is the number of reader threads; ``version_block`` is
    how many versions are packed into one block (``_version_blocks.py``). ``sync_pipeline``:
    with ``synchronous="FULL"``, fsync the WAL on a thread of its own (None: only if
    ``COWRITE_SQLITE_SYNC_PIPELINE=1``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "FULL",
        busy_timeout_ms: int = 5_000,
        max_batch: int = 1_000,
        readers: int = 2,
        health_timeout_s: float = 2.0,
        version_block: int = BLOCK_VERSIONS,
        checkpoint_interval_s: float | None = 1.0,
        sync_pipeline: bool | None = None,
    ) -> None:
        self.path = os.fspath(path)
        if self.path in ("", ":memory:") or self.path.startswith("file::memory:"):
            raise ValueError(
                "SQLiteStore needs a file path; use MemoryStore for an in-memory store"
            )
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}")
        if max_batch < 1 or readers < 1 or busy_timeout_ms < 0 or version_block < 1:
            raise ValueError(
                "max_batch, readers and version_block must be positive, busy_timeout_ms >= 0"
            )
        self._block = version_block
        self._checkpoint_interval_s = checkpoint_interval_s
        self._checkpointer: Checkpointer | None = None
        self._synchronous = synchronous
        self.sync_pipeline = synchronous == "FULL" and pipeline_enabled(sync_pipeline)
        self._busy_timeout_ms = busy_timeout_ms
        self._max_batch = max_batch
        self._reader_count = readers
        self._health_timeout_s = health_timeout_s
        self.stats = WriterStats()
        self._writer: BatchWriter | None = None
        self._readers: _ReaderPool | None = None
        self._restarting: asyncio.Lock | None = None
        self.writer_restarts = 0
        self._packing: dict[str, asyncio.Task[None]] = {}
        """Documents whose version tail is being packed (``_pack``)..."""
        self._pack_again: set[str] = set()
        self._pack_turn = asyncio.Lock()
        """One pack planned at a time: documents typed at the same pace come due together
        (100 of them within a second in the many-documents benchmark), and their encodings,
        run side by side on the reader threads, starved the event loop of the interpreter lock
        for that second; taken in turn, each holds it for a few paced milliseconds."""
        """...and those of them that an append found due again meanwhile."""

    @property
    def commit_count(self) -> int:
        """Write transactions committed since this object was created."""
        return self.stats.commits

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # --- lifecycle ------------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer is not None:
            raise StoreError("the store is already open")
        self._writer = await self._start_writer()
        self._restarting = asyncio.Lock()
        self._readers = _ReaderPool(self._connect_reader, self._reader_count)
        if self._checkpoint_interval_s is not None:
            self._checkpointer = Checkpointer(
                self._connect, self.path, interval_s=self._checkpoint_interval_s
            )
            self._checkpointer.start()

    async def _start_writer(self) -> BatchWriter:
        conn, wal = await asyncio.to_thread(self._open_writer_connection)
        writer = BatchWriter(
            conn,
            stats=self.stats,
            max_batch=self._max_batch,
            name="cowrite-sqlite-writer",
            wal=wal,
        )
        writer.start()
        return writer

    async def _running_writer(self) -> BatchWriter:
        """The writer, restarted first if its thread crashed (one restart for all callers).

        Raises `StoreUnavailable` if it crashed and cannot be started again (then `alive` is
        False), `StoreError` if the store is not open.
        """
        writer, lock = self._writer, self._restarting
        if writer is None or lock is None:
            raise StoreError("the store is not open")
        if not writer.crashed:
            return writer
        async with lock:
            if self._writer is writer:  # nobody restarted it meanwhile
                log.error("restarting the crashed sqlite writer")
                self._writer = await self._start_writer()  # raises StoreUnavailable
                self.writer_restarts += 1
            if self._writer is None:
                raise StoreError("the store is closed")
            return self._writer

    async def alive(self) -> bool:
        """False only when the writer died and cannot be restarted: the process is broken (this
        is what /healthz reports; a database that is merely busy is /readyz's business)."""
        if self._writer is None:
            return True  # not opened yet, or closed on purpose
        try:
            await self._running_writer()
        except StoreUnavailable:
            return False
        except StoreError:
            return True
        return True

    async def close(self) -> None:
        writer, readers = self._writer, self._readers
        if writer is None or readers is None:
            return
        for task in list(self._packing.values()):  # each a read and a short write
            with contextlib.suppress(Exception):
                await task
        self._readers = None
        await writer.stop()
        self._writer = None
        await asyncio.to_thread(readers.close)
        checkpointer, self._checkpointer = self._checkpointer, None
        if checkpointer is not None:
            await asyncio.to_thread(checkpointer.stop)

    async def health(self) -> bool:
        try:
            writer = await self._running_writer()
        except StoreError:
            return False
        if not writer.is_alive():
            return False
        try:
            row = await asyncio.wait_for(
                self._read(lambda c: c.execute("SELECT 1").fetchone()), self._health_timeout_s
            )
        except (StoreError, TimeoutError):
            return False
        return bool(row == (1,))

    # --- documents ------------------------------------------------------------------------------

    async def create_document(
        self, doc_id: str, *, title: str, now_ms: int, kind: str = "crdt"
    ) -> DocumentInfo:
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        validate_title(title)
        validate_kind(kind)
        return await self._write(lambda c: _create_document(c, doc_id, title, now_ms, kind))

    async def get_document(self, doc_id: str) -> DocumentInfo | None:
        validate_doc_id(doc_id)
        return await self._read(lambda c: _get_document(c, doc_id))

    async def list_documents(
        self, *, limit: int = 100, after: str | None = None
    ) -> list[DocumentInfo]:
        validate_limit(limit)
        args: tuple[object, ...]
        if after is None:
            sql, args = f"SELECT {_DOC_COLUMNS} FROM documents ORDER BY id LIMIT ?", (limit,)
        else:
            sql = f"SELECT {_DOC_COLUMNS} FROM documents WHERE id > ? ORDER BY id LIMIT ?"
            args = (after, limit)
        rows = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [DocumentInfo(*row) for row in rows]

    async def update_title(self, doc_id: str, title: str, *, now_ms: int) -> DocumentInfo:
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        validate_title(title)
        return await self._write(lambda c: _update_title(c, doc_id, title, now_ms))

    async def delete_document(self, doc_id: str) -> bool:
        validate_doc_id(doc_id)
        return await self._write(
            lambda c: c.execute("DELETE FROM documents WHERE id = ?", (doc_id,)).rowcount > 0
        )

    # --- write-ahead log ------------------------------------------------------------------------

    async def append_update(
        self,
        doc_id: str,
        update: bytes,
        *,
        edit_keys: Sequence[EditKey] = (),
        now_ms: int,
        version: VersionRecord | None = None,
    ) -> int:
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        keys = validate_edit_keys(edit_keys)
        if version is not None:
            validate_version(version)
        data = bytes(update)
        due: list[str] = []
        seq = await self._write(
            lambda c: _append_update(c, doc_id, data, keys, now_ms, version, self._block, due)
        )
        if due:
            if doc_id in self._packing:
                self._pack_again.add(doc_id)  # more came due while the pack was planned
            else:
                task = asyncio.create_task(self._pack(doc_id))
                self._packing[doc_id] = task
                task.add_done_callback(lambda _: self._packing.pop(doc_id, None))
        return seq

    async def _pack(self, doc_id: str) -> None:
        """Pack the document's version tail off the writer: the blocks encoded on a reader
        thread (its long passes ``pace`` the interpreter lock), then swapped in by one short
        writer job, unless the tail or the last block changed meanwhile (then the next append
        finds the tail due again). Best effort: an unpacked tail reads the same, only larger."""
        try:
            while True:
                async with self._pack_turn:
                    self._pack_again.discard(doc_id)
                    plan = await self._read(lambda c: plan_pack(c, doc_id, self._block))
                    if plan is not None:
                        await self._write(partial(apply_pack, doc_id=doc_id, plan=plan))
                if doc_id not in self._pack_again:
                    return
        except Exception:  # the tail stays as it is (readable); the next due append retries
            log.warning("packing the version tail failed", exc_info=True, extra={"doc": doc_id})

    async def find_edit(self, doc_id: str, client_id: str, edit_id: str) -> int | None:
        found = await self.lookup_edit(doc_id, client_id, edit_id)
        return None if found is None else found.seq

    async def lookup_edit(self, doc_id: str, client_id: str, edit_id: str) -> StoredEdit | None:
        validate_doc_id(doc_id)
        row = await self._read(lambda c: _stored_edit(c, doc_id, client_id, edit_id))
        return None if row is None else StoredEdit(int(row[0]), str(row[1]))

    async def prune_edit_keys(self, doc_id: str, older_than_ms: int) -> int:
        validate_int(older_than_ms, "time")
        validate_doc_id(doc_id)
        sql = "DELETE FROM edit_keys WHERE doc_id = ? AND created_ms < ?"
        return await self._write(lambda c: c.execute(sql, (doc_id, older_than_ms)).rowcount)

    async def load(self, doc_id: str) -> StoredDocument | None:
        validate_doc_id(doc_id)
        return await self._read(lambda c: _load(c, doc_id))

    async def updates_since(self, doc_id: str, after_seq: int) -> list[tuple[int, bytes]]:
        validate_int(after_seq, "seq")
        validate_doc_id(doc_id)
        return await self._read(lambda c: _updates_since(c, doc_id, after_seq))

    async def save_snapshot(
        self, doc_id: str, snapshot: bytes, upto_seq: int, *, drops: Sequence[int] = ()
    ) -> bool:
        validate_int(upto_seq, "seq")
        validate_doc_id(doc_id)
        data = bytes(snapshot)
        dropped = frozenset(drops)
        for seq in dropped:
            validate_int(seq, "seq")
        return await self._write(lambda c: _save_snapshot(c, doc_id, data, upto_seq, dropped))

    # --- version history ------------------------------------------------------------------------

    async def list_versions(
        self,
        doc_id: str,
        *,
        after: int = 0,
        before: int | None = None,
        limit: int = 100,
        named_only: bool = False,
    ) -> list[VersionRecord]:
        validate_doc_id(doc_id)
        validate_int(after, "seq")
        validate_int(before, "seq")
        validate_limit(limit)
        return await self._read(
            lambda c: _list_versions(c, doc_id, after, before, limit, named_only)
        )

    async def get_version(self, doc_id: str, seq: int) -> VersionRecord | None:
        validate_doc_id(doc_id)
        validate_int(seq, "seq")
        return await self._read(lambda c: _get_version(c, doc_id, seq))

    async def name_version(
        self, doc_id: str, seq: int, name: str | None, *, now_ms: int
    ) -> VersionRecord:
        validate_doc_id(doc_id)
        validate_int(seq, "seq")
        validate_int(now_ms, "time")
        if name is not None:
            validate_version_name(name)
        return await self._write(lambda c: _name_version(c, doc_id, seq, name, now_ms))

    async def thin_versions(
        self, doc_id: str, removed: Sequence[int], updated: Sequence[VersionRecord]
    ) -> int:
        validate_doc_id(doc_id)
        gone, kept = list(removed), [validate_version(v) for v in updated]
        for seq in gone:
            validate_int(seq, "seq")
        return await self._write(lambda c: _thin_versions(c, doc_id, gone, kept))

    # --- chat -----------------------------------------------------------------------------------

    async def add_chat(
        self, doc_id: str, *, author_id: str, author_name: str, text: str, now_ms: int
    ) -> ChatMessage:
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        return await self._write(
            lambda c: _add_chat(c, doc_id, author_id, author_name, text, now_ms)
        )

    async def edit_chat(
        self, doc_id: str, message_id: int, *, author_id: str, text: str, now_ms: int
    ) -> ChatMessage:
        validate_int(message_id, "chat message id")
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        return await self._write(
            lambda c: _change_chat(c, doc_id, message_id, author_id, text, now_ms, delete=False)
        )

    async def delete_chat(
        self, doc_id: str, message_id: int, *, author_id: str, now_ms: int
    ) -> ChatMessage:
        validate_int(message_id, "chat message id")
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        return await self._write(
            lambda c: _change_chat(c, doc_id, message_id, author_id, "", now_ms, delete=True)
        )

    async def chat_history(
        self, doc_id: str, *, before: int | None = None, limit: int = 50
    ) -> list[ChatMessage]:
        validate_int(before, "chat message id")
        validate_doc_id(doc_id)
        validate_limit(limit)
        if before is None:
            sql = f"SELECT {_CHAT_COLUMNS} FROM chat_messages WHERE doc_id = ? "
            sql += "ORDER BY id DESC LIMIT ?"
            args: tuple[object, ...] = (doc_id, limit)
        else:
            sql = f"SELECT {_CHAT_COLUMNS} FROM chat_messages WHERE doc_id = ? AND id < ? "
            sql += "ORDER BY id DESC LIMIT ?"
            args = (doc_id, before, limit)
        rows = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [_chat(row) for row in rows]

    # --- plumbing -------------------------------------------------------------------------------

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        writer = self._writer
        if writer is None or writer.crashed:  # (the usual write skips a coroutine)
            writer = await self._running_writer()
        return await writer.submit(fn)

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._readers is None:
            raise StoreError("the store is not open")
        return await self._readers.run(fn)

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout_ms / 1000,
                isolation_level=None,  # autocommit: transactions are explicit
                check_same_thread=False,  # created on one thread, used on another
            )
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open sqlite database {self.path!r}: {exc}") from exc
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        return conn

    def _open_writer_connection(self) -> tuple[sqlite3.Connection, tuple[str, str] | None]:
        """The writer's connection, and (WAL path, database path) if it syncs in a pipeline."""
        conn = self._connect()
        wal: tuple[str, str] | None = None
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailable(f"cannot put {self.path!r} in WAL mode (got {mode!r})")
            if self.sync_pipeline:  # COMMIT writes the WAL; the sync thread fsyncs it
                conn.execute("PRAGMA synchronous = NORMAL")
                # the file SQLite opened (symlinks resolved); its WAL is beside it
                main = [r[2] for r in conn.execute("PRAGMA database_list") if r[1] == "main"]
                wal = (f"{main[0]}-wal", main[0])
            else:
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
            if self._checkpoint_interval_s is not None:  # the checkpointer's, off the commits
                conn.execute(f"PRAGMA wal_autocheckpoint = {SAFETY_PAGES}")
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, self._block)
        except sqlite3.Error as exc:
            conn.close()
            raise translate(exc) from exc
        except BaseException:
            conn.close()
            raise
        return conn, wal

    def _connect_reader(self) -> sqlite3.Connection:
        conn = self._connect()
        conn.execute("PRAGMA query_only = ON")
        return conn


class _ReaderPool:
    """Reader threads, each with its own connection, opened on first use."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], size: int) -> None:
        self._connect = connect
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="cowrite-sqlite-read")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, self._call, fn)
        except RuntimeError as exc:  # the executor was shut down under us
            raise StoreError("the store is closed") from exc
        return await future

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = self._connect()
                self._local.conn = conn
                with self._lock:
                    self._connections.append(conn)
            return fn(conn)
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    def close(self) -> None:
        """Wait for the reads in flight, then close every connection (blocking)."""
        self._executor.shutdown(wait=True)
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


if TYPE_CHECKING:
    _conforms: type[Store] = SQLiteStore
