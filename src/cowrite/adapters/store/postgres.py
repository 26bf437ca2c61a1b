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
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg  # type: ignore[import-untyped]

from cowrite.adapters.store._pg_append import Append, append_run
from cowrite.adapters.store._writer import WriterStats
from cowrite.adapters.store.base import (
    ChatMessage,
    Compacted,
    DocumentExists,
    DocumentInfo,
    EditKey,
    Forbidden,
    NotFound,
    StoredDocument,
    StoredEdit,
    StoreError,
    StoreUnavailable,
    validate_doc_id,
    validate_edit_keys,
    validate_int,
    validate_limit,
    validate_title,
)

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from cowrite.adapters.store.base import Store

T = TypeVar("T")

log = logging.getLogger(__name__)

# asyncpg ships no type information; a connection is `Any` here, used only through the helpers.
Conn = Any

_DOC_COLUMNS = "id, title, created_ms, updated_ms, size_bytes"
_CHAT_COLUMNS = "id, doc_id, author_id, author_name, text, created_ms, edited_ms, deleted"

# pg_advisory_xact_lock(int4, int4) namespaces: "cowr" for documents, the next one for migrations.
_DOC_LOCK_SPACE = 0x636F7772
_SCHEMA_LOCK_SPACE = _DOC_LOCK_SPACE + 1

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: documents, write-ahead log, snapshots, edit keys, chat (the SQLite schema, in PostgreSQL
    # types; ids compare byte-wise, COLLATE "C", so list order does not depend on the locale).
    (
        """
        CREATE TABLE documents (
            id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
            title        TEXT    NOT NULL,
            created_ms   BIGINT  NOT NULL,
            updated_ms   BIGINT  NOT NULL,
            size_bytes   BIGINT  NOT NULL DEFAULT 0,  -- snapshot + log bytes
            last_seq     BIGINT  NOT NULL DEFAULT 0,  -- highest log seq ever appended
            last_chat_id BIGINT  NOT NULL DEFAULT 0   -- highest chat message id ever assigned
        )
        """,
        """
        CREATE TABLE updates (
            doc_id     TEXT COLLATE "C" NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            seq        BIGINT NOT NULL,
            data       BYTEA  NOT NULL,
            created_ms BIGINT NOT NULL,
            PRIMARY KEY (doc_id, seq)
        )
        """,
        """
        CREATE TABLE snapshots (
            doc_id   TEXT COLLATE "C" NOT NULL PRIMARY KEY
                     REFERENCES documents (id) ON DELETE CASCADE,
            upto_seq BIGINT NOT NULL,
            data     BYTEA  NOT NULL
        )
        """,
        """
        CREATE TABLE edit_keys (
            doc_id     TEXT COLLATE "C" NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            client_id  TEXT   NOT NULL,
            edit_id    TEXT   NOT NULL,
            seq        BIGINT NOT NULL,
            created_ms BIGINT NOT NULL,
            PRIMARY KEY (doc_id, client_id, edit_id)
        )
        """,
        "CREATE INDEX edit_keys_by_age ON edit_keys (doc_id, created_ms)",
        """
        CREATE TABLE chat_messages (
            doc_id      TEXT COLLATE "C" NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            id          BIGINT  NOT NULL,
            author_id   TEXT    NOT NULL,
            author_name TEXT    NOT NULL,
            text        TEXT    NOT NULL,
            created_ms  BIGINT  NOT NULL,
            edited_ms   BIGINT,
            deleted     BOOLEAN NOT NULL DEFAULT FALSE,
            PRIMARY KEY (doc_id, id)
        )
        """,
    ),
    # 2: the digest of an edit's payload beside its key (see the SQLite schema).
    ("ALTER TABLE edit_keys ADD COLUMN digest TEXT NOT NULL DEFAULT ''",),
)

SCHEMA_VERSION = len(MIGRATIONS)

# The snapshot and the log after it, read by one statement, hence from one consistent snapshot.
_LOAD_SQL = """
SELECT 0 AS kind, last_seq AS seq, NULL::bytea AS data FROM documents WHERE id = $1
UNION ALL
SELECT 1, upto_seq, data FROM snapshots WHERE doc_id = $1
UNION ALL
SELECT 2, u.seq, u.data FROM updates AS u
 WHERE u.doc_id = $1
   AND u.seq > COALESCE((SELECT s.upto_seq FROM snapshots AS s WHERE s.doc_id = $1), 0)
"""


_SINCE_SQL = """
SELECT 0 AS kind, last_seq AS seq, NULL::bytea AS data FROM documents WHERE id = $1
UNION ALL
SELECT 1, upto_seq, NULL::bytea FROM snapshots WHERE doc_id = $1
UNION ALL
SELECT 2, u.seq, u.data FROM updates AS u WHERE u.doc_id = $1 AND u.seq > $2
"""


class PostgresStore:
    """A `Store` in a PostgreSQL database. ``commit_count`` counts write transactions.

    ``dsn`` is a ``postgresql://`` URL. ``max_batch`` bounds how many writes share a transaction;
    ``readers`` is the size of the read pool. ``connect_timeout_s`` bounds opening a connection,
    ``command_timeout_s`` each statement: a call never waits much longer than their sum before
    raising `StoreUnavailable`.
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
    ) -> None:
        if urlsplit(dsn).scheme not in ("postgresql", "postgres"):
            raise ValueError("PostgresStore needs a postgresql://user@host:port/database URL")
        if max_batch < 1 or readers < 1 or deadlock_retries < 0:
            raise ValueError("max_batch and readers must be positive, deadlock_retries >= 0")
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
                await _migrate(conn)
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

    async def create_document(self, doc_id: str, *, title: str, now_ms: int) -> DocumentInfo:
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        _check_text("title", validate_title(title))
        return await self._write(doc_id, lambda c: _create_document(c, doc_id, title, now_ms))

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
    ) -> int:
        validate_int(now_ms, "time")
        validate_doc_id(doc_id)
        keys = validate_edit_keys(edit_keys)
        for key in keys:
            _check_text("edit key", key.client_id)
            _check_text("edit key", key.edit_id)
            _check_text("edit key", key.digest)
        writer = await self._running_writer()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        writer.submit(Append(doc_id, bytes(update), keys, now_ms, future))
        return await future

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
        snapshot: bytes | None = None
        snapshot_seq = 0
        updates: list[tuple[int, bytes]] = []
        for kind, seq, data in rows:
            if kind == 0:
                last_seq = int(seq)
            elif kind == 1:
                snapshot_seq, snapshot = int(seq), bytes(data)
            else:
                updates.append((int(seq), bytes(data)))
        if last_seq is None:
            return None
        updates.sort(key=lambda u: u[0])
        return StoredDocument(doc_id, snapshot, snapshot_seq, updates, last_seq)

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

    async def save_snapshot(self, doc_id: str, snapshot: bytes, upto_seq: int) -> bool:
        validate_int(upto_seq, "seq")
        validate_doc_id(doc_id)
        data = bytes(snapshot)
        return await self._write(doc_id, lambda c: _save_snapshot(c, doc_id, data, upto_seq))

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


# --- the writer task ------------------------------------------------------------------------------


@dataclass(slots=True)
class _Call:
    """Any other write: ``fn`` must raise `StoreError`/`ValueError` only before its first write."""

    doc_id: str
    fn: Callable[[Conn], Awaitable[Any]]
    future: asyncio.Future[Any]


_Job = Append | _Call
_Outcome = tuple[_Job, Any, BaseException | None]


class _Reconnect(Exception):
    """The connection died before COMMIT was sent: nothing was stored, try a fresh connection."""


class _Retry(Exception):
    """PostgreSQL rolled the transaction back (deadlock, serialisation failure): run it again."""


class _JobFailed(Exception):
    """A statement failed for a reason of its own (not the connection): isolate the jobs."""


class _Writer:
    """One task, one connection: runs write jobs in submission order, in shared transactions."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[Conn]],
        *,
        stats: WriterStats,
        max_batch: int,
        deadlock_retries: int,
        rollback_timeout_s: float,
    ) -> None:
        self._connect = connect
        self._stats = stats
        self._max_batch = max_batch
        self._deadlock_retries = deadlock_retries
        self._rollback_timeout_s = rollback_timeout_s
        self._queue: asyncio.Queue[_Job | None] = asyncio.Queue()  # None: stop
        self._conn: Conn = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.crashed = False
        """The task died of an unexpected error: this writer takes no more jobs."""

    async def start(self) -> None:
        """Connect (raising `StoreUnavailable` if impossible) and start the task."""
        self._conn = await self._connect()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name="cowrite-postgres-writer"
        )

    def is_alive(self) -> bool:
        return self._task is not None and not self._task.done() and not self._stopping

    def submit(self, job: _Job) -> None:
        if self.crashed:
            raise StoreUnavailable("the postgres writer crashed")
        if self._stopping or self._task is None or self._task.done():
            raise StoreError("the store is closed")
        self._queue.put_nowait(job)

    async def stop(self) -> None:
        """Run every job already submitted, then close the connection and end the task."""
        if not self._stopping:
            self._stopping = True
            self._queue.put_nowait(None)
        task = self._task
        if task is None:
            return
        if not task.done():
            await asyncio.wait({task})  # a crash of the task was already reported to its callers
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not log it again

    # --- the task -------------------------------------------------------------------------------

    async def _run(self) -> None:
        pending: list[_Job] = []
        try:
            stop = False
            while not stop:
                first = await self._queue.get()
                if first is None:
                    break
                pending = [first]
                while len(pending) < self._max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except asyncio.QueueEmpty:
                        break
                    if item is None:
                        stop = True
                        break
                    pending.append(item)
                _resolve(await self._execute(pending))
                pending = []
        except BaseException as exc:  # a bug here, or the loop is going away: fail every waiter
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("postgres writer task crashed")
                self.crashed = True
            self._stopping = True
            crashed = StoreUnavailable(f"the postgres writer stopped: {exc!r}")
            while True:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if item is not None:
                    pending.append(item)
            _resolve([(job, None, crashed) for job in pending])
            raise
        finally:
            await self._disconnect()

    async def _execute(self, batch: list[_Job]) -> list[_Outcome]:
        """Run ``batch`` in one transaction if possible; return every job's outcome."""
        reconnected = False
        deadlocks = 0
        while True:
            try:
                conn = await self._connection()
                return await self._transaction(conn, batch)
            except _Reconnect as exc:
                if reconnected:
                    return _fail(batch, _unavailable(exc.__cause__ or exc))
                reconnected = True
            except _Retry as exc:
                deadlocks += 1
                if deadlocks > self._deadlock_retries:
                    return _fail(batch, _unavailable(exc.__cause__ or exc))
            except _JobFailed as exc:
                if len(batch) > 1:
                    return await self._one_by_one(batch)
                cause = exc.__cause__ or exc
                if isinstance(cause, asyncpg.PostgresError):
                    return _fail(batch, _translate(cause, "PostgreSQL write failed"))
                return _fail(batch, cause)
            except StoreUnavailable as exc:
                return _fail(batch, exc)

    async def _one_by_one(self, batch: list[_Job]) -> list[_Outcome]:
        """Each job in its own transaction: only the job whose statement fails, fails."""
        outcomes: list[_Outcome] = []
        for i, job in enumerate(batch):
            [outcome] = await self._execute([job])
            outcomes.append(outcome)
            if isinstance(outcome[2], StoreUnavailable):  # no point trying the others now
                outcomes.extend(_fail(batch[i + 1 :], outcome[2]))
                break
        return outcomes

    async def _connection(self) -> Conn:
        if self._conn is None or self._conn.is_closed():
            await self._disconnect()
            self._conn = await self._connect()
        return self._conn

    async def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.close(), self._rollback_timeout_s)
        except BaseException:
            conn.terminate()
            raise

    async def _transaction(self, conn: Conn, jobs: list[_Job]) -> list[_Outcome]:
        """One transaction for ``jobs``; raises `_Reconnect`, `_Retry`, `_JobFailed` or
        `StoreUnavailable` (rolled back, or unknown if the COMMIT itself was lost)."""
        committing = False
        outcomes: list[_Outcome] = []
        try:
            await conn.execute(_begin_and_lock(job.doc_id for job in jobs))
            run: list[Append] = []
            for job in jobs:
                if isinstance(job, Append):
                    run.append(job)
                    continue
                if run:
                    outcomes += await append_run(conn, run)
                    run = []
                try:
                    value = await job.fn(conn)
                except (StoreError, ValueError) as exc:  # raised before the job wrote anything
                    outcomes.append((job, None, exc))
                else:
                    outcomes.append((job, value, None))
            if run:
                outcomes += await append_run(conn, run)
            committing = True
            await conn.execute("COMMIT")
        except Exception as exc:
            await self._abandon(conn)
            if _transient(exc):
                if committing:  # the COMMIT may or may not have happened
                    raise _unavailable(exc) from exc
                if isinstance(exc, asyncpg.TransactionRollbackError):
                    raise _Retry from exc
                if conn.is_closed():
                    raise _Reconnect from exc
                raise _unavailable(exc) from exc
            raise _JobFailed from exc
        except BaseException:
            await self._abandon(conn)
            raise
        stats = self._stats
        stats.commits += 1
        stats.jobs += len(jobs)
        stats.largest_batch = max(stats.largest_batch, len(jobs))
        return outcomes

    async def _abandon(self, conn: Conn) -> None:
        """Roll back whatever is open on ``conn``; drop the connection if that fails."""
        if conn.is_closed():
            self._conn = None
            return
        if not conn.is_in_transaction():
            return
        try:
            await asyncio.wait_for(conn.execute("ROLLBACK"), self._rollback_timeout_s)
        except BaseException:
            conn.terminate()
            self._conn = None


def _begin_and_lock(doc_ids: Iterable[str]) -> str:
    """``BEGIN`` and the documents' advisory locks, in one global order, as one round trip."""
    keys = sorted({zlib.crc32(doc_id.encode()) - 2**31 for doc_id in doc_ids})
    locks = "".join(f"; SELECT pg_advisory_xact_lock({_DOC_LOCK_SPACE}, {k})" for k in keys)
    return "BEGIN" + locks


def _fail(jobs: list[_Job], error: BaseException) -> list[_Outcome]:
    return [(job, None, error) for job in jobs]


def _resolve(outcomes: list[_Outcome]) -> None:
    for job, value, error in outcomes:
        future = job.future
        if future.done():  # the caller was cancelled; the write stands
            continue
        if error is None:
            future.set_result(value)
        else:
            future.set_exception(error)


# --- errors ---------------------------------------------------------------------------------------

# SQLSTATE classes and codes that say "not now" rather than "not this": connection exceptions,
# insufficient resources, operator intervention (shutdown, restart, cancel), system errors, a
# read-only (standby) server, lock timeouts, and rolled-back transactions (deadlock, serialisation).
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57", "58"})
_TRANSIENT_STATES = frozenset({"25006", "55P03"})


def _transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unreachable or busy, not that the request is bad."""
    if isinstance(exc, asyncpg.DataError):  # a parameter asyncpg could not encode
        return False
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", None) or "")
        return state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES
    return isinstance(
        exc, OSError | TimeoutError | asyncpg.InterfaceError | asyncpg.InternalClientError
    )


def _unavailable(exc: BaseException) -> StoreUnavailable:
    error = StoreUnavailable(f"PostgreSQL unavailable: {exc!r}")
    error.__cause__ = exc
    return error


def _translate(exc: BaseException, what: str) -> StoreError:
    error: StoreError
    if _transient(exc):
        error = StoreUnavailable(f"{what}: {exc!r}")
    else:
        error = StoreError(f"{what}: {exc!r}")
    error.__cause__ = exc
    return error


def _check_text(what: str, value: str) -> None:
    if "\x00" in value:
        raise ValueError(f"invalid {what}: PostgreSQL text cannot hold a NUL character")


def _redact(dsn: str) -> str:
    """``dsn`` without its password, for messages."""
    parts = urlsplit(dsn)
    if parts.password is None:
        return dsn
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


# --- schema ---------------------------------------------------------------------------------------


async def _migrate(conn: Conn) -> int:
    """Bring the schema to `SCHEMA_VERSION` in one transaction; return the version found.

    Instances opening at once take turns (an advisory lock). Raises `StoreError` if the database
    was written by a newer cowrite.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", _SCHEMA_LOCK_SPACE)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        version = await conn.fetchval("SELECT version FROM schema_version")
        if version is None:
            await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            found = 0
        else:
            found = int(version)
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"database schema version {found} is newer than this cowrite supports "
                f"({SCHEMA_VERSION}); upgrade cowrite"
            )
        for statements in MIGRATIONS[found:]:
            for statement in statements:
                await conn.execute(statement)
        if found != SCHEMA_VERSION:
            await conn.execute("UPDATE schema_version SET version = $1", SCHEMA_VERSION)
    return found


# --- the statements (each a job on the writer connection, inside its batch's transaction) ---------


def _info(row: Any) -> DocumentInfo:
    id_, title, created_ms, updated_ms, size_bytes = row
    return DocumentInfo(str(id_), str(title), int(created_ms), int(updated_ms), int(size_bytes))


def _chat(row: Any) -> ChatMessage:
    id_, doc_id, author_id, author_name, text, created_ms, edited_ms, deleted = row
    return ChatMessage(
        id=int(id_),
        doc_id=str(doc_id),
        author_id=str(author_id),
        author_name=str(author_name),
        text=str(text),
        created_ms=int(created_ms),
        edited_ms=None if edited_ms is None else int(edited_ms),
        deleted=bool(deleted),
    )


async def _count(status: Awaitable[Any]) -> int:
    """The row count of a command status such as ``"DELETE 3"``."""
    return int(str(await status).rsplit(" ", 1)[-1])


async def _create_document(c: Conn, doc_id: str, title: str, now_ms: int) -> DocumentInfo:
    inserted = await _count(
        c.execute(
            "INSERT INTO documents (id, title, created_ms, updated_ms) VALUES ($1, $2, $3, $3) "
            "ON CONFLICT (id) DO NOTHING",
            doc_id,
            title,
            now_ms,
        )
    )
    if inserted == 0:
        raise DocumentExists(f"document {doc_id!r} already exists")
    return DocumentInfo(doc_id, title, now_ms, now_ms, 0)


async def _update_title(c: Conn, doc_id: str, title: str, now_ms: int) -> DocumentInfo:
    row = await c.fetchrow(
        "UPDATE documents SET title = $1, updated_ms = GREATEST(updated_ms, $2) WHERE id = $3 "
        f"RETURNING {_DOC_COLUMNS}",
        title,
        now_ms,
        doc_id,
    )
    if row is None:
        raise NotFound(f"document {doc_id!r} does not exist")
    return _info(row)


async def _delete_document(c: Conn, doc_id: str) -> bool:
    return await _count(c.execute("DELETE FROM documents WHERE id = $1", doc_id)) > 0


async def _save_snapshot(c: Conn, doc_id: str, data: bytes, upto_seq: int) -> bool:
    row = await c.fetchrow(
        "SELECT d.last_seq, s.upto_seq FROM documents AS d "
        "LEFT JOIN snapshots AS s ON s.doc_id = d.id WHERE d.id = $1 FOR UPDATE OF d",
        doc_id,
    )
    if row is None:
        raise NotFound(f"document {doc_id!r} does not exist")
    last_seq, current = int(row[0]), row[1]
    if upto_seq < 0 or upto_seq > last_seq:
        raise ValueError(
            f"snapshot upto_seq {upto_seq} outside the log of {doc_id!r} (0..{last_seq})"
        )
    if current is not None and upto_seq < int(current):
        return False
    await c.execute(
        "INSERT INTO snapshots (doc_id, upto_seq, data) VALUES ($1, $2, $3) "
        "ON CONFLICT (doc_id) DO UPDATE SET upto_seq = excluded.upto_seq, data = excluded.data",
        doc_id,
        upto_seq,
        data,
    )
    await c.execute(
        "WITH gone AS (DELETE FROM updates WHERE doc_id = $1 AND seq <= $2) "
        "UPDATE documents SET size_bytes = $3 + (SELECT COALESCE(SUM(octet_length(data)), 0) "
        "FROM updates WHERE doc_id = $1 AND seq > $2) WHERE id = $1",
        doc_id,
        upto_seq,
        len(data),
    )
    return True


async def _add_chat(
    c: Conn, doc_id: str, author_id: str, author_name: str, text: str, now_ms: int
) -> ChatMessage:
    row = await c.fetchrow(
        "WITH n AS (UPDATE documents SET last_chat_id = last_chat_id + 1 WHERE id = $1 "
        "RETURNING last_chat_id) "
        f"INSERT INTO chat_messages ({_CHAT_COLUMNS}) "
        "SELECT n.last_chat_id, $1, $2, $3, $4, $5, NULL, FALSE FROM n "
        f"RETURNING {_CHAT_COLUMNS}",
        doc_id,
        author_id,
        author_name,
        text,
        now_ms,
    )
    if row is None:
        raise NotFound(f"document {doc_id!r} does not exist")
    return _chat(row)


async def _change_chat(
    c: Conn,
    doc_id: str,
    message_id: int,
    author_id: str,
    text: str,
    now_ms: int,
    *,
    delete: bool,
) -> ChatMessage:
    row = await c.fetchrow(
        f"SELECT {_CHAT_COLUMNS} FROM chat_messages WHERE doc_id = $1 AND id = $2 FOR UPDATE",
        doc_id,
        message_id,
    )
    if row is None:
        raise NotFound(f"chat message {message_id} of {doc_id!r} does not exist")
    message = _chat(row)
    if message.author_id != author_id:
        raise Forbidden(f"chat message {message_id} belongs to another author")
    if message.deleted:
        if delete:
            return message
        raise NotFound(f"chat message {message_id} of {doc_id!r} was deleted")
    row = await c.fetchrow(
        "UPDATE chat_messages SET text = $1, edited_ms = $2, deleted = $3 "
        f"WHERE doc_id = $4 AND id = $5 RETURNING {_CHAT_COLUMNS}",
        text,
        now_ms,
        delete,
        doc_id,
        message_id,
    )
    return _chat(row)


if TYPE_CHECKING:
    _conforms: type[Store] = PostgresStore
