"""PostgreSQL: the writer task that runs every write of a `PostgresStore` with group commit.

Why apart: the task, its retry rules (reconnect once, rerun deadlocked batches, isolate a failing
job) and the SQLSTATE classification are one concept, independent of what the statements do.
Caller's contract: `_Writer.start` once (raises `StoreUnavailable` if it cannot connect), then
`submit` `Append`/`_Call` jobs whose futures the task resolves in submission order; `_Call.fn`
must raise `StoreError`/`ValueError` only before its first write. After `crashed` turns true the
writer takes no more jobs: the store replaces it (``postgres.py``, ``_running_writer``). `stop`
runs every job already submitted. `_translate`/`_unavailable` turn asyncpg errors into
`StoreUnavailable` (transient) or `StoreError`.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]

from cowrite.adapters.store._pg_append import Append, append_run
from cowrite.adapters.store._pg_schema import _DOC_LOCK_SPACE
from cowrite.adapters.store._writer import WriterStats
from cowrite.adapters.store.base import StoreError, StoreUnavailable

# The logger of postgres.py, where this code lived: operators' log filters keep working.
log = logging.getLogger("cowrite.adapters.store.postgres")

# asyncpg ships no type information; a connection is `Any` here, used only through the helpers.
Conn = Any


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
