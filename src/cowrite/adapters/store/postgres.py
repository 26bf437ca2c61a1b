"""`PostgresStore`: a `Store` in PostgreSQL, shared safely by several server instances.

Connections (asyncpg): one writer connection owned by a writer task, and a small pool for reads.

Writes go through the writer task (one per store instance), which takes every write queued so far
(up to ``max_batch``) and runs them in one transaction: group commit, so N concurrent
``append_update`` calls cost about one commit (one WAL flush) instead of N, with no delay added to
a lone write. Consecutive appends in a batch become one SQL statement whatever their number. Jobs
run in submission order, so a document's log order is the order of this instance's calls.

Several instances (processes, machines) may write to the same database at once:

* sequence numbers (and chat ids) are assigned by the database in the transaction that stores the
  update: ``UPDATE documents SET last_seq = last_seq + n ... RETURNING``, which takes the
  document's row lock, so two instances appending to one document are serialised by PostgreSQL
  and the seqs are 1..N with no gap and no duplicate;
* every write transaction first takes transaction-scoped advisory locks on the documents it
  touches, in one global order (``pg_advisory_xact_lock``), so transactions of different instances
  never deadlock on each other (and if PostgreSQL still reports a deadlock or a serialisation
  failure, the batch is rolled back and retried).

Durability: an ``append_update`` resolves only after ``COMMIT`` returned, which with PostgreSQL's
defaults (``synchronous_commit = on``, ``fsync = on``) means the commit record is flushed to disk.

Failures: when PostgreSQL cannot be reached (refused, dropped, shut down, restarting, timed out)
calls raise `StoreUnavailable` within ``connect_timeout_s``/``command_timeout_s``; nothing is
acknowledged then. The store reconnects by itself on the next call once PostgreSQL is back (the
writer opens a new connection, the read pool replaces dead ones). A write that failed before its
``COMMIT`` was sent is retried once on a fresh connection, so a PostgreSQL restart between two
writes costs no error at all.

The schema (tables ``documents``, ``updates``, ``snapshots``, ``edit_keys``, ``chat_messages`` and
``schema_version``) is created on `open` in the first schema of the connection's ``search_path``;
to keep cowrite in its own schema, create it and pass ``?search_path=NAME`` in the DSN (asyncpg
sends unknown DSN parameters as server settings). PostgreSQL ``text`` cannot hold NUL characters,
so titles, chat fields and edit keys containing ``"\\x00"`` raise `ValueError` here.

This module holds the store itself (lifecycle, validation, reads on the pool, writes handed to the
writer); the writer task is in ``_pg_writer.py``, the statements in ``_pg_queries.py`` and
``_pg_append.py``, version packing in ``_pg_pack.py``, the schema in ``_pg_schema.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from cowrite.adapters.store._pg_append import Append
from cowrite.adapters.store._pg_pack import Packer
from cowrite.adapters.store._pg_queries import (
    _CHAT_COLUMNS,
    _DOC_COLUMNS,
    _LOAD_SQL,
    _SINCE_SQL,
    _add_chat,
    _change_chat,
    _chat,
    _check_text,
    _count,
    _create_document,
    _delete_document,
    _info,
    _save_snapshot,
    _update_title,
)
from cowrite.adapters.store._pg_schema import MIGRATIONS, SCHEMA_VERSION, _migrate
from cowrite.adapters.store._pg_versions import (
    check_version_text,
    get_version,
    list_versions,
    name_version,
    thin_versions,
)
from cowrite.adapters.store._pg_writer import _Call, _Reconnect, _translate, _Writer
from cowrite.adapters.store._version_blocks import BLOCK_VERSIONS
from cowrite.adapters.store._writer import WriterStats
from cowrite.adapters.store.base import (
    ChatMessage,
    Compacted,
    DocumentInfo,
    EditKey,
    NotFound,
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

# asyncpg ships no type information; a connection is `Any` here, used only through the helpers.
Conn = Any

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "PostgresStore"]


class PostgresStore:
    """A `Store` in a PostgreSQL database. ``commit_count`` counts write transactions.

    ``dsn`` is a ``postgresql://`` URL. ``max_batch`` bounds how many writes share a transaction;
    ``readers`` is the size of the read pool. ``connect_timeout_s`` bounds opening a connection,
    ``command_timeout_s`` each statement: a call never waits much longer than their sum before
    raising `StoreUnavailable`. ``version_block``: versions packed into one block
    (``_version_blocks.py``).
    """

    def __init__(
        self,
        dsn: str,
        *,
        max_batch: int = 1_000,
        readers: int = 4,
        connect_timeout_s: float = 5.0,
        command_timeout_s: float = 10.0,
        health_timeout_s: float = 2.0,
        deadlock_retries: int = 3,
        version_block: int = BLOCK_VERSIONS,
    ) -> None:
        if urlsplit(dsn).scheme not in ("postgresql", "postgres"):
            raise ValueError("PostgresStore needs a postgresql://user@host:port/database URL")
        if max_batch < 1 or readers < 1 or deadlock_retries < 0 or version_block < 1:
            raise ValueError(
                "max_batch, readers and version_block must be positive, deadlock_retries >= 0"
            )
        self._block = version_block
        if min(connect_timeout_s, command_timeout_s, health_timeout_s) <= 0:
            raise ValueError("timeouts must be positive")
        self.dsn = dsn
        self._max_batch = max_batch
        self._readers = readers
        self._connect_timeout_s = connect_timeout_s
        self._command_timeout_s = command_timeout_s
        self._health_timeout_s = health_timeout_s
        self._deadlock_retries = deadlock_retries
        self.stats = WriterStats()
        self._writer: _Writer | None = None
        self._restarting = asyncio.Lock()
        self._pool: Any = None
        self.packer = Packer(self._read, self._write, version_block)
        """Packs due version tails after their appends commit (``_pg_pack.py``)."""

    def __repr__(self) -> str:
        return f"PostgresStore({_redact(self.dsn)!r})"

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
        where = _redact(self.dsn)
        try:
            async with asyncio.timeout(self._connect_timeout_s * 2):
                pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=0,  # no background reconnect loop (and log) while PG is down
                    max_size=self._readers,
                    timeout=self._connect_timeout_s,
                    command_timeout=self._command_timeout_s,
                )
        except Exception as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL at {where}: {exc}") from exc
        try:
            async with pool.acquire() as conn:
                await _migrate(conn, self._block)
            writer = _Writer(
                self._connect,
                stats=self.stats,
                max_batch=self._max_batch,
                deadlock_retries=self._deadlock_retries,
                rollback_timeout_s=self._command_timeout_s,
            )
            await writer.start()
        except BaseException as exc:
            pool.terminate()
            if isinstance(exc, StoreError) or not isinstance(exc, Exception):
                raise
            raise _translate(exc, f"cannot open the store at {where}") from exc
        self._pool = pool
        self._writer = writer

    async def close(self) -> None:
        writer, pool = self._writer, self._pool
        if writer is None:
            return
        try:
            await self.packer.drain()  # each a read and a short write
        finally:
            self._pool = None
        try:
            await writer.stop()
        finally:
            self._writer = None
            try:
                await asyncio.wait_for(pool.close(), self._command_timeout_s)
            except Exception:  # a stuck connection: drop them all
                pool.terminate()

    async def health(self) -> bool:
        writer, pool = self._writer, self._pool
        if writer is None or pool is None or not writer.is_alive():
            return False
        try:
            async with asyncio.timeout(self._health_timeout_s):
                async with pool.acquire() as conn:
                    return bool(await conn.fetchval("SELECT 1") == 1)
        except Exception:
            return False

    # --- documents ------------------------------------------------------------------------------

    async def create_document(
        self, doc_id: str, *, title: str, now_ms: int, kind: str = "crdt"
    ) -> DocumentInfo:
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        _check_text("title", validate_title(title))
        validate_kind(kind)
        return await self._write(doc_id, lambda c: _create_document(c, doc_id, title, now_ms, kind))

    async def get_document(self, doc_id: str) -> DocumentInfo | None:
        validate_doc_id(doc_id)
        row = await self._read(
            lambda c: c.fetchrow(f"SELECT {_DOC_COLUMNS} FROM documents WHERE id = $1", doc_id)
        )
        return None if row is None else _info(row)

    async def list_documents(
        self, *, limit: int = 100, after: str | None = None
    ) -> list[DocumentInfo]:
        validate_limit(limit)
        args: tuple[object, ...]
        if after is None:
            sql, args = f"SELECT {_DOC_COLUMNS} FROM documents ORDER BY id LIMIT $1", (limit,)
        else:
            # Ids hold no NUL, so "id > 'ab\0c'" is "id > 'ab'" (and text cannot carry a NUL).
            sql = f"SELECT {_DOC_COLUMNS} FROM documents WHERE id > $1 ORDER BY id LIMIT $2"
            args = (after.split("\x00", 1)[0], limit)
        rows = await self._read(lambda c: c.fetch(sql, *args))
        return [_info(row) for row in rows]

    async def update_title(self, doc_id: str, title: str, *, now_ms: int) -> DocumentInfo:
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        _check_text("title", validate_title(title))
        return await self._write(doc_id, lambda c: _update_title(c, doc_id, title, now_ms))

    async def delete_document(self, doc_id: str) -> bool:
        validate_doc_id(doc_id)
        return await self._write(doc_id, lambda c: _delete_document(c, doc_id))

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
            check_version_text(validate_version(version))
        for key in keys:
            _check_text("edit key", key.client_id)
            _check_text("edit key", key.edit_id)
            _check_text("edit key", key.digest)
        writer = await self._running_writer()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        job = Append(doc_id, bytes(update), keys, now_ms, future, version, self._block)
        writer.submit(job)
        seq = await future
        if job.due and writer.is_alive():  # (not while closing: ``close`` drained the packs)
            self.packer.due(doc_id)
        return seq

    async def find_edit(self, doc_id: str, client_id: str, edit_id: str) -> int | None:
        found = await self.lookup_edit(doc_id, client_id, edit_id)
        return None if found is None else found.seq

    async def lookup_edit(self, doc_id: str, client_id: str, edit_id: str) -> StoredEdit | None:
        validate_doc_id(doc_id)
        sql = (
            "SELECT seq, digest FROM edit_keys "
            "WHERE doc_id = $1 AND client_id = $2 AND edit_id = $3"
        )
        if "\x00" in client_id or "\x00" in edit_id:  # could never have been stored
            self._open_writer()
            return None
        row = await self._read(lambda c: c.fetchrow(sql, doc_id, client_id, edit_id))
        return None if row is None else StoredEdit(int(row[0]), str(row[1]))

    async def prune_edit_keys(self, doc_id: str, older_than_ms: int) -> int:
        validate_int(older_than_ms, "time")
        validate_doc_id(doc_id)
        sql = "DELETE FROM edit_keys WHERE doc_id = $1 AND created_ms < $2"
        return await self._write(doc_id, lambda c: _count(c.execute(sql, doc_id, older_than_ms)))

    async def load(self, doc_id: str) -> StoredDocument | None:
        validate_doc_id(doc_id)
        rows = await self._read(lambda c: c.fetch(_LOAD_SQL, doc_id))
        last_seq: int | None = None
        kind_name = "crdt"
        snapshot: bytes | None = None
        snapshot_seq = 0
        updates: list[tuple[int, bytes]] = []
        for kind, seq, data in rows:
            if kind == 0:
                last_seq = int(seq)
                kind_name = bytes(data).decode()
            elif kind == 1:
                snapshot_seq, snapshot = int(seq), bytes(data)
            else:
                updates.append((int(seq), bytes(data)))
        if last_seq is None:
            return None
        updates.sort(key=lambda u: u[0])
        return StoredDocument(doc_id, snapshot, snapshot_seq, updates, last_seq, kind_name)

    async def updates_since(self, doc_id: str, after_seq: int) -> list[tuple[int, bytes]]:
        validate_int(after_seq, "seq")
        validate_doc_id(doc_id)
        rows = await self._read(lambda c: c.fetch(_SINCE_SQL, doc_id, after_seq))
        updates: list[tuple[int, bytes]] = []
        found = False
        for kind, seq, data in rows:
            if kind == 0:
                found = True
            elif kind == 1:
                if after_seq < int(seq):
                    raise Compacted(f"{doc_id!r}: the log up to {seq} is in a snapshot")
            else:
                updates.append((int(seq), bytes(data)))
        if not found:
            raise NotFound(f"document {doc_id!r} does not exist")
        updates.sort(key=lambda u: u[0])
        return updates

    async def save_snapshot(
        self, doc_id: str, snapshot: bytes, upto_seq: int, *, drops: Sequence[int] = ()
    ) -> bool:
        validate_int(upto_seq, "seq")
        validate_doc_id(doc_id)
        data = bytes(snapshot)
        dropped = frozenset(drops)
        for seq in dropped:
            validate_int(seq, "seq")
        return await self._write(
            doc_id, lambda c: _save_snapshot(c, doc_id, data, upto_seq, dropped)
        )

    # --- version history (``_pg_versions.py``) --------------------------------------------------

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
            lambda c: list_versions(c, doc_id, after, before, limit, named_only)
        )

    async def get_version(self, doc_id: str, seq: int) -> VersionRecord | None:
        validate_doc_id(doc_id)
        validate_int(seq, "seq")
        return await self._read(lambda c: get_version(c, doc_id, seq))

    async def name_version(
        self, doc_id: str, seq: int, name: str | None, *, now_ms: int
    ) -> VersionRecord:
        validate_doc_id(doc_id)
        validate_int(seq, "seq")
        validate_int(now_ms, "time")
        if name is not None:
            _check_text("version name", validate_version_name(name))
        return await self._write(doc_id, lambda c: name_version(c, doc_id, seq, name, now_ms))

    async def thin_versions(
        self, doc_id: str, removed: Sequence[int], updated: Sequence[VersionRecord]
    ) -> int:
        validate_doc_id(doc_id)
        gone = list(removed)
        for seq in gone:
            validate_int(seq, "seq")
        kept = [check_version_text(validate_version(v)) for v in updated]
        return await self._write(doc_id, lambda c: thin_versions(c, doc_id, gone, kept))

    # --- chat -----------------------------------------------------------------------------------

    async def add_chat(
        self, doc_id: str, *, author_id: str, author_name: str, text: str, now_ms: int
    ) -> ChatMessage:
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        for what, value in (("author_id", author_id), ("author_name", author_name), ("text", text)):
            _check_text(what, value)
        return await self._write(
            doc_id, lambda c: _add_chat(c, doc_id, author_id, author_name, text, now_ms)
        )

    async def edit_chat(
        self, doc_id: str, message_id: int, *, author_id: str, text: str, now_ms: int
    ) -> ChatMessage:
        validate_int(message_id, "chat message id")
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        _check_text("author_id", author_id)
        _check_text("text", text)
        return await self._write(
            doc_id,
            lambda c: _change_chat(c, doc_id, message_id, author_id, text, now_ms, delete=False),
        )

    async def delete_chat(
        self, doc_id: str, message_id: int, *, author_id: str, now_ms: int
    ) -> ChatMessage:
        validate_int(message_id, "chat message id")
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        _check_text("author_id", author_id)
        return await self._write(
            doc_id,
            lambda c: _change_chat(c, doc_id, message_id, author_id, "", now_ms, delete=True),
        )

    async def chat_history(
        self, doc_id: str, *, before: int | None = None, limit: int = 50
    ) -> list[ChatMessage]:
        validate_int(before, "chat message id")
        validate_doc_id(doc_id)
        validate_limit(limit)
        if before is None:
            sql = f"SELECT {_CHAT_COLUMNS} FROM chat_messages WHERE doc_id = $1 "
            sql += "ORDER BY id DESC LIMIT $2"
            args: tuple[object, ...] = (doc_id, limit)
        else:
            sql = f"SELECT {_CHAT_COLUMNS} FROM chat_messages WHERE doc_id = $1 AND id < $2 "
            sql += "ORDER BY id DESC LIMIT $3"
            args = (doc_id, before, limit)
        rows = await self._read(lambda c: c.fetch(sql, *args))
        return [_chat(row) for row in rows]

    # --- plumbing -------------------------------------------------------------------------------

    def _open_writer(self) -> _Writer:
        if self._writer is None:
            raise StoreError("the store is not open")
        return self._writer

    async def _running_writer(self) -> _Writer:
        """The writer, replaced first if its task crashed (a bug: jobs fail one by one, not the
        task). Raises `StoreUnavailable` while a new one cannot connect."""
        writer = self._open_writer()
        if not writer.crashed:
            return writer
        async with self._restarting:
            if self._writer is writer:
                log.error("restarting the crashed postgres writer")
                fresh = _Writer(
                    self._connect,
                    stats=self.stats,
                    max_batch=self._max_batch,
                    deadlock_retries=self._deadlock_retries,
                    rollback_timeout_s=self._command_timeout_s,
                )
                await fresh.start()
                self._writer = fresh
            return self._open_writer()

    async def alive(self) -> bool:
        """False only when the writer task crashed and a new one fails for a reason other than
        PostgreSQL being unreachable (that is /readyz's business)."""
        if self._writer is None:
            return True
        try:
            await self._running_writer()
        except StoreUnavailable:
            return True
        except Exception:
            return False
        return True

    async def _write(self, doc_id: str, fn: Callable[[Conn], Awaitable[T]]) -> T:
        writer = await self._running_writer()
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        writer.submit(_Call(doc_id, fn, future))
        return await future

    async def _read(self, fn: Callable[[Conn], Awaitable[T]]) -> T:
        """Run ``fn`` on a pooled connection; once more on a new one if the first was dead."""
        for attempt in (1, 2):
            pool = self._pool
            if pool is None:
                raise StoreError("the store is not open")
            try:
                async with asyncio.timeout(self._connect_timeout_s + self._command_timeout_s):
                    async with pool.acquire() as conn:
                        try:
                            return await fn(conn)
                        except Exception:
                            if attempt == 1 and conn.is_closed():
                                raise _Reconnect from None
                            raise
            except _Reconnect:
                continue
            except StoreError:
                raise
            except Exception as exc:
                if self._pool is None:
                    raise StoreError("the store is closed") from exc
                raise _translate(exc, "PostgreSQL read failed") from exc
        raise AssertionError("unreachable")

    async def _connect(self) -> Conn:
        try:
            async with asyncio.timeout(self._connect_timeout_s * 2):
                return await asyncpg.connect(
                    self.dsn,
                    timeout=self._connect_timeout_s,
                    command_timeout=self._command_timeout_s,
                )
        except Exception as exc:
            raise StoreUnavailable(
                f"cannot connect to PostgreSQL at {_redact(self.dsn)}: {exc!r}"
            ) from exc


def _redact(dsn: str) -> str:
    """``dsn`` without its password, for messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


if TYPE_CHECKING:
    _conforms: type[Store] = PostgresStore
