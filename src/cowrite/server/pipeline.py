"""The pipeline: one ordered, durable queue per room.

Every input to a room runs synchronously (the room is sans-I/O), and its ``Outcome`` goes into the
room's queue (``submit``). One task per room drains that queue in order: it writes all queued
updates to the store at once (the store group-commits them), and only when they are durable sends
the acks and broadcasts, in version order. So nothing is acknowledged before it is durable, a room
never waits for a client, and a burst of edits costs one commit, not one each. While the Store is
unavailable the pipeline retries, acknowledges nothing, and tells the room's clients
``saving: pending``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cowrite import protocol as p
from cowrite.adapters.store import DuplicateEdit, EditKey, NotFound, Store, StoreError
from cowrite.rooms.room import Outcome
from cowrite.server.auth import Identity
from cowrite.server.cluster import Cluster, PresenceNote, UpdateNote
from cowrite.server.hooks import Author, Hooks, Stored, change_of
from cowrite.server.metrics import Metrics
from cowrite.server.tracing import Tracing

if TYPE_CHECKING:
    from cowrite.server.config import Settings
    from cowrite.server.exactly_once import ExactlyOnce
    from cowrite.server.registry import LoadedRoom

log = logging.getLogger("cowrite.hub")


class Peer(Protocol):
    """What the hub needs of a connection."""

    session: str
    client_id: str
    identity: Identity

    @property
    def docs(self) -> Mapping[str, str]:
        """The documents it is in (doc id -> mode): its own record, kept by ``entered``/``left``."""

    def send(self, data: bytes) -> None:
        """Queue an encoded message; never blocks (a full outbox closes the connection)."""

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued so far."""

    def entered(self, doc_id: str, mode: str) -> None:
        """The hub let it into ``doc_id`` with ``mode`` (its ``joined`` is on its way)."""

    def left(self, doc_id: str) -> None:
        """It is no longer in ``doc_id`` (it left, or the hub dropped it)."""

    def saving(self, doc_id: str, pending: bool) -> None:
        """Tell the client whether its edits of ``doc_id`` wait for the store (where its
        dialect can say so)."""


@dataclass(frozen=True, slots=True)
class Durable:
    """What a job's ``done`` future holds once its outcome is durable and sent."""

    version: int
    """The room version of the outcome's update (0 for an outcome that persists nothing)."""
    seq: int | None
    """Its Store log sequence number (None when it persisted nothing)."""


class NotDurable(Exception):
    """A job's outcome could not be stored (document deleted, store refusal): nothing of it was
    acknowledged or broadcast. ``error`` is what a connection would have been sent."""

    def __init__(self, error: p.Error) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(slots=True)
class Job:
    """One room input's outcome waiting in the room's pipeline."""

    outcome: Outcome
    sender: Peer | None
    t0: float
    joined: bool = False
    """The outcome is the sender's ``joined``: from then on the sender gets the broadcasts."""
    remote: bool = False
    """The outcome comes from another instance (not to be published again)."""
    done: asyncio.Future[Durable] | None = None
    """Completed once the outcome is durable and its broadcasts are sent, or failed with
    ``NotDurable``: how a caller without a connection (REST restore) learns it is stored."""
    trace: Any = None
    """The input's span (``tracing.py``), ended once the outcome is sent; None: not traced."""
    author: Author | None = None
    """Who made the outcome's update, for ``on_change`` (default: the sender's identity)."""


class Pipeline:
    """The hub's per-room pipelines (a part of ``Hub``: it declares what it uses of the others)."""

    store: Store
    settings: Settings
    metrics: Metrics
    now_ms: Callable[[], int]
    replica: int
    cluster: Cluster | None
    exactly_once: ExactlyOnce
    hooks: Hooks
    tracing: Tracing

    if TYPE_CHECKING:

        def _snapshot_due(self, lr: LoadedRoom) -> bool: ...

        async def _snapshot(self, doc_id: str, lr: LoadedRoom) -> None: ...

    def submit(
        self,
        lr: LoadedRoom,
        outcome: Outcome,
        sender: Peer | None,
        t0: float,
        *,
        joined: bool = False,
        remote: bool = False,
        done: asyncio.Future[Durable] | None = None,
        trace: Any = None,
        author: Author | None = None,
    ) -> None:
        """Queue an outcome: persisted (if it has an update), then its replies and broadcasts
        sent, after every outcome submitted before it; then ``done`` completed (`Job.done`)."""
        if outcome.fault is not None:
            log.error(
                "an edit failed part-way; the applied part is kept",
                exc_info=outcome.fault,
                extra={"doc": lr.room.doc_id, "version": outcome.version},
            )
        lr.inflight += 1
        if outcome.persist is not None:
            lr.unpersisted += 1
            lr.last_write = t0
        lr.queue.put_nowait(Job(outcome, sender, t0, joined, remote, done, trace, author))

    def submit_durable(
        self, lr: LoadedRoom, outcome: Outcome, t0: float, *, author: Author | None = None
    ) -> asyncio.Future[Durable]:
        """Queue a server-side outcome (a REST restore's edit: no sender, its replies go
        nowhere) and return the future of its durability: ``Durable`` once stored and broadcast,
        ``NotDurable`` when it cannot be stored. While the store is down it stays pending (the
        pipeline retries): the caller bounds its wait, and ``asyncio.shield``s it to keep the
        edit going when it stops waiting."""
        done: asyncio.Future[Durable] = asyncio.get_running_loop().create_future()
        self.submit(lr, outcome, None, t0, done=done, author=author)
        return done

    async def _pipeline(self, doc_id: str, lr: LoadedRoom) -> None:
        queue = lr.queue
        while True:
            batch = await queue.take()
            await self._carry_out(doc_id, lr, batch)
            # nothing of the batch stays referenced while the room waits for the next one (its
            # outcomes hold joined snapshots and presence lists: an idle room would keep them)
            del batch
            if queue.empty() and self._snapshot_due(lr):
                await self._snapshot(doc_id, lr)

    async def _carry_out(self, doc_id: str, lr: LoadedRoom, batch: list[Job]) -> None:
        """Persist ``batch`` (one append), then publish, acknowledge and broadcast each job."""
        writes = [j.outcome for j in batch if j.outcome.persist is not None]
        try:
            traced = [j.trace for j in batch if j.trace is not None]
            stores = [self.tracing.start("cowrite.store", t, doc=doc_id) for t in traced]
            if writes:
                failed, seqs = await self._persist(doc_id, lr, writes)
            else:
                failed, seqs = {}, {}
            for span in stores:
                span.end()
            if seqs:
                if self.cluster is not None:
                    self._publish(doc_id, writes, seqs)
                if self.hooks.wants("on_store"):
                    stored = tuple(sorted(seqs.values()))
                    self.hooks.notify("on_store", Stored(doc_id, stored, lr.room.version), doc_id)
            changes = self.hooks.wants_changes
            cluster = self.cluster
            for job in batch:
                try:
                    outcome = job.outcome
                    error = failed.get(id(outcome)) if failed else None
                    if error is not None:
                        self._refuse(job, error)
                        continue
                    done = job.done
                    if done is not None and not done.done():
                        # its waiter resumes after this batch's fan-out (call_soon)
                        done.set_result(Durable(outcome.version, seqs.get(id(outcome))))
                    if job.trace is None:
                        self._fanout(lr, job)
                    else:
                        with self.tracing.span("cowrite.broadcast", job.trace):
                            self._fanout(lr, job)
                        job.trace.set_attribute("cowrite.version", outcome.version)
                    if job.remote:
                        continue
                    if changes and outcome.persist is not None:
                        self._changed(doc_id, job, seqs.get(id(outcome)))
                    if cluster is not None:
                        self._publish_presence(doc_id, lr, outcome)
                except Exception:
                    log.exception("fan-out failed", extra={"doc": doc_id})
        except Exception:
            log.exception("room pipeline failed", extra={"doc": doc_id})
        finally:
            lr.unpersisted -= len(writes)
            for job in batch:
                done = job.done
                if done is not None and not done.done():  # failed above (logged)
                    error = p.Error(
                        code=p.ErrorCode.INTERNAL, message="the edit could not be stored"
                    )
                    _fail(done, NotDurable(error))
                if job.joined and job.sender is not None:
                    lr.membership.join_done(job.sender.session)
                if job.trace is not None:
                    job.trace.end()
            lr.inflight -= len(batch)
            lr.queue.done(len(batch))

    def _changed(self, doc_id: str, job: Job, seq: int | None) -> None:
        """``on_change`` (and its debounced variant) for a durable update made here (the caller
        checked ``hooks.wants_changes``)."""
        author = job.author
        if author is None and job.sender is not None:
            who = job.sender.identity
            author = Author(who.user_id, who.name, job.sender.client_id)
        self.hooks.change(change_of(doc_id, job.outcome, seq, author, self.now_ms()))

    def _publish(self, doc_id: str, outcomes: list[Outcome], seqs: dict[int, int]) -> None:
        """Tell other instances about durable updates (best effort: they catch up from the
        Store if a message is lost), in log order."""
        assert self.cluster is not None
        for o in outcomes:
            seq = seqs.get(id(o))
            if seq is not None:
                self.cluster.publish(doc_id, UpdateNote(self.replica, seq, o.persist or b""))

    def _publish_presence(self, doc_id: str, lr: LoadedRoom, outcome: Outcome) -> None:
        """Tell other instances about presence changes of members here."""
        assert self.cluster is not None
        for msg, _ in outcome.broadcast:
            if isinstance(msg, p.Presence):
                sessions = [e.session for e in msg.entries]
                entries = lr.room.peer_entries(sessions)
                left = [s for s in msg.left if s not in lr.room.remote]
                if entries or left:
                    self.cluster.publish(doc_id, PresenceNote(self.replica, entries, left))

    async def _persist(
        self, doc_id: str, lr: LoadedRoom, outcomes: list[Outcome]
    ) -> tuple[dict[int, p.Error], dict[int, int]]:
        """Append the outcomes' updates to the log, in order, each exactly once.

        Retries while the store is unavailable (nothing is acknowledged meanwhile; the room's
        clients are told ``saving: pending``). Returns, by ``id(outcome)``, the error of those
        that cannot be stored at all (document deleted) and the seq of those stored.
        """
        if len(outcomes) == 1 and not lr.saving_pending:  # the usual batch, stored at once
            o = outcomes[0]
            try:
                seq = await self._append(doc_id, o, self.now_ms(), keyed=True)
            except Exception as exc:  # the general case says what it means
                return await self._persist_all(doc_id, lr, outcomes, [exc])
            self._stored(doc_id, lr, o, seq, retried=False)
            return {}, {id(o): seq}
        return await self._persist_all(doc_id, lr, outcomes)

    def _stored(self, doc_id: str, lr: LoadedRoom, o: Outcome, seq: int, *, retried: bool) -> None:
        """Account for ``o`` stored at ``seq`` (a single instance's log seq is the version the
        room gave it unless an earlier attempt of the batch failed)."""
        if self.cluster is None and (retried or seq != o.version):
            log.error(
                "log sequence mismatch", extra={"doc": doc_id, "seq": seq, "version": o.version}
            )
        lr.seqs.add(seq)
        lr.since_snapshot += 1
        lr.log_bytes += len(o.persist or b"")

    def _append(self, doc_id: str, o: Outcome, now: int, *, keyed: bool) -> Awaitable[int]:
        """The store's append of ``o``'s update (with its edit keys unless not ``keyed``)."""
        return self.store.append_update(
            doc_id,
            o.persist or b"",
            edit_keys=[EditKey(c, e, o.edit_digest) for c, e in o.edit_keys] if keyed else [],
            now_ms=now,
            version=None
            if o.note is None
            else o.note.record(self.settings.history_time_resolution_ms),
        )

    async def _persist_all(
        self,
        doc_id: str,
        lr: LoadedRoom,
        outcomes: list[Outcome],
        first: list[int | BaseException] | None = None,
    ) -> tuple[dict[int, p.Error], dict[int, int]]:
        """``_persist`` of any batch (``first``: the results of a first attempt made already)."""
        failed: dict[int, p.Error] = {}
        seqs: dict[int, int] = {}
        unkeyed: set[int] = set()
        """Outcomes another instance stored first (by edit key): stored again without it."""
        todo = outcomes
        delay = 0.05
        while todo:
            results: list[int | BaseException]
            if first is not None:
                results, first = first, None
            else:
                now = self.now_ms()
                appends = [self._append(doc_id, o, now, keyed=id(o) not in unkeyed) for o in todo]
                if len(appends) == 1:  # no task for gather to wrap it in
                    try:
                        results = [await appends[0]]
                    except Exception as exc:
                        results = [exc]
                else:
                    results = await asyncio.gather(*appends, return_exceptions=True)
            retry: list[Outcome] = []
            again: set[int] = set()
            for o, result in zip(todo, results, strict=True):
                if isinstance(result, DuplicateEdit):
                    # the same edit, stored first by another instance (a client whose
                    # connection split while its batch was being stored here): the room has
                    # applied this copy, so it is stored all the same, then undone
                    log.warning("edit stored twice: undoing this copy", extra={"doc": doc_id})
                    unkeyed.add(id(o))
                    again.add(id(o))
                    self.exactly_once.undo_duplicate(doc_id, lr, o)
                elif isinstance(result, int):
                    seqs[id(o)] = result
                    self._stored(doc_id, lr, o, result, retried=bool(retry))
                elif isinstance(result, NotFound):
                    failed[id(o)] = p.Error(
                        code=p.ErrorCode.UNKNOWN_DOCUMENT,
                        message=f"{doc_id} no longer exists",
                        doc=doc_id,
                    )
                elif isinstance(result, StoreError):
                    retry.append(o)  # not durable, so not acknowledged: keep trying
                elif isinstance(result, Exception):
                    log.error("store write refused", exc_info=result, extra={"doc": doc_id})
                    failed[id(o)] = p.Error(
                        code=p.ErrorCode.INTERNAL,
                        message="the edit could not be stored",
                        doc=doc_id,
                    )
                else:
                    raise result  # CancelledError and the like
            if retry:
                log.warning(
                    "store write failed; retrying",
                    exc_info=next(r for r in results if isinstance(r, StoreError)),
                    extra={"doc": doc_id, "updates": len(retry)},
                )
                self._saving(lr, pending=True)
                self.metrics.store_retries.inc()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            again.update(id(o) for o in retry)
            todo = [o for o in todo if id(o) in again]  # in their order
        if lr.saving_pending and outcomes:  # something was stored: the store is back
            self._saving(lr, pending=False)
        return failed, seqs

    def _saving(self, lr: LoadedRoom, *, pending: bool) -> None:
        """Tell the room's clients whether their edits are waiting for the store."""
        if lr.saving_pending == pending:
            return
        lr.saving_pending = pending
        if pending:
            self.metrics.saving_pending.inc()
        else:
            self.metrics.saving_pending.dec()
        if pending:
            log.error(
                "store unavailable: edits are held, not acknowledged", extra={"doc": lr.room.doc_id}
            )
        else:
            log.info("store available again: held edits stored", extra={"doc": lr.room.doc_id})
        for peer in lr.membership.connections():
            peer.saving(lr.room.doc_id, pending)

    def _refuse(self, job: Job, error: p.Error) -> None:
        """An outcome that could not be made durable: its sender gets the error, nobody else
        anything (its edit is neither acknowledged nor broadcast)."""
        if job.sender is not None:
            edit_id = next((m.edit_id for m in job.outcome.reply if isinstance(m, p.Ack)), None)
            error = p.Error(code=error.code, message=error.message, doc=error.doc, edit_id=edit_id)
            job.sender.send(p.encoder.encode(error))
        if job.done is not None and not job.done.done():
            _fail(job.done, NotDurable(error))

    def _fanout(self, lr: LoadedRoom, job: Job) -> None:
        encode = p.encoder.encode
        outcome, sender = job.outcome, job.sender
        if sender is not None and outcome.reply:
            for msg in outcome.reply:
                sender.send(encode(msg))
            if outcome.persist is not None:
                self.metrics.edit_ack.observe(time.monotonic() - job.t0)
        for sink, frame in outcome.frames:
            sink.send(frame)
        if job.joined and sender is not None:
            lr.membership.listen(sender)
        for msg, audience in outcome.broadcast:
            peers = lr.membership.listeners(audience)
            if not peers or (len(peers) == 1 and peers[0] is sender):
                continue  # nobody to send it to: not encoded (a relay with no replica here)
            data = encode(msg)
            for peer in peers:
                if peer is not sender:
                    peer.send(data)
        if outcome.persist is not None and (outcome.broadcast or outcome.frames):
            self.metrics.edit_broadcast.observe(time.monotonic() - job.t0)


def _fail(done: asyncio.Future[Durable], exc: NotDurable) -> None:
    done.set_exception(exc)
    done.exception()  # retrieved: a caller that stopped waiting (timed out) leaves it unawaited
