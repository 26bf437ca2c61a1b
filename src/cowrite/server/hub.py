"""The hub: loaded rooms, their durable ordered pipelines, and fan-out to connections.

Every input to a room runs synchronously (the room is sans-I/O), and its ``Outcome`` goes into the
room's queue. One task per room drains that queue in order: it writes all queued updates to the
store at once (the store group-commits them), and only when they are durable sends the acks and
broadcasts, in version order. So nothing is acknowledged before it is durable, a room never waits
for a client, and a burst of edits costs one commit, not one each.

In a cluster (``cluster=True``: several instances on one Store and a shared Bus) the hub also
publishes every durable update with its Store sequence number, merges the other instances'
updates into its rooms as they arrive, reads from the Store whatever it missed, and keeps the
presence of members on other instances (``cluster.py``). While the Store is unavailable the
pipeline retries, acknowledges nothing, and tells the room's clients ``saving: pending``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from cowrite import protocol as p
from cowrite.adapters.bus import Bus
from cowrite.adapters.store import (
    ChatMessage,
    Compacted,
    DocumentExists,
    DuplicateEdit,
    EditKey,
    Forbidden,
    NotFound,
    Store,
    StoreError,
)
from cowrite.engine import Document
from cowrite.rooms.retention import compact_old_history, compaction_due
from cowrite.rooms.room import Member, Outcome, Room, RoomError, RoomLimits
from cowrite.server.auth import Identity
from cowrite.server.cluster import (
    ChatNote,
    Cluster,
    PresenceNote,
    QueryNote,
    SeqSet,
    UpdateNote,
)
from cowrite.server.config import Settings
from cowrite.server.exactly_once import ExactlyOnce
from cowrite.server.metrics import Metrics

log = logging.getLogger("cowrite.hub")

SNAPSHOT_QUIET_S = 2.0
"""A room with a snapshot due takes it once no update came for this long..."""
SNAPSHOT_FORCE_FACTOR = 20
"""...or once ``snapshot_every`` times this many updates wait in the log."""
RECONCILE_EVERY_TICKS = 10
"""Seconds between two reads of the store log by a clustered room (a lost last message)."""
GAP_GRACE_S = 0.3
"""How long a gap in the seqs may wait for a message still on its way before the store is read."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Peer(Protocol):
    """What the hub needs of a connection."""

    session: str
    client_id: str
    identity: Identity
    docs: dict[str, str]  # doc id -> mode

    def send(self, data: bytes) -> None:
        """Queue an encoded message; never blocks (a full outbox closes the connection)."""

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued so far."""


@dataclass
class Job:
    """One room input's outcome waiting in the room's pipeline."""

    outcome: Outcome
    sender: Peer | None
    t0: float
    joined: bool = False
    """The outcome is the sender's ``joined``: from then on the sender gets the broadcasts."""
    remote: bool = False
    """The outcome comes from another instance (not to be published again)."""


@dataclass
class LoadedRoom:
    room: Room
    loaded_version: int
    peers: dict[str, Peer] = field(default_factory=dict)
    """Connections in the room (or joining it): they may send it messages."""
    audience: dict[str, Peer] = field(default_factory=dict)
    """Connections that get its broadcasts: a joining one only once its ``joined`` is sent, so
    it never gets (before ``joined``) a broadcast its snapshot already includes."""
    queue: asyncio.Queue[Job] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    unload: asyncio.TimerHandle | None = None
    seqs: SeqSet = field(default_factory=SeqSet)
    """The Store log entries merged into the room."""
    since_snapshot: int = 0
    inflight: int = 0
    """Jobs submitted and not yet carried out."""
    unpersisted: int = 0
    """Updates applied to the room and not yet durable (no snapshot may include them)."""
    last_write: float = 0.0
    """When (monotonic) the last update was submitted: snapshots wait for a quiet room."""
    saving_pending: bool = False
    """The store is refusing writes: the room's clients were told so."""
    catching_up: asyncio.Task[None] | None = None
    catch_again: bool = False
    check_store: set[str] = field(default_factory=set)
    """Sessions whose next edit may have been applied by another instance (or an earlier run)."""
    joining: set[str] = field(default_factory=set)
    """Sessions whose ``joined`` waits in the pipeline: one each (a join can be megabytes)."""


class Hub:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        now_ms: Callable[[], int] = wall_ms,
        bus: Bus | None = None,
        *,
        cluster: bool = False,
    ) -> None:
        self.store = store
        self.bus = bus
        self.settings = settings
        self.metrics = metrics
        self.now_ms = now_ms
        self.replica = secrets.randbits(63) + 1
        self.rooms: dict[str, LoadedRoom] = {}
        self._loading: dict[str, asyncio.Future[LoadedRoom]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._unloads: set[asyncio.Task[None]] = set()
        self._held: set[asyncio.Task[None]] = set()
        """Edits waiting for the store to tell whether they were applied before."""
        self.exactly_once = ExactlyOnce(self)
        self.edits_applied = 0
        self.started = time.monotonic()
        self.cluster: Cluster | None = None
        if cluster and bus is not None:
            self.cluster = Cluster(
                bus,
                self.replica,
                self,
                heartbeat_s=settings.instance_heartbeat_s,
                timeout_s=settings.instance_timeout_s,
            )

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if self.cluster is not None:
            await self.cluster.start()
        self._ticker = asyncio.create_task(self._tick_loop())

    async def close(self) -> None:
        """Drain every room's pipeline (everything acknowledged is in the store) and stop."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for doc_id in list(self.rooms):
            await self._unload(doc_id, force=True)
        for task in list(self._unloads):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for task in list(self._held):
            task.cancel()
        if self.cluster is not None:
            await self.cluster.close()

    # ----------------------------------------------------------------- rooms

    async def open_room(self, doc_id: str, *, create: bool) -> LoadedRoom:
        """The loaded room of ``doc_id`` (loading it if needed); raises RoomError
        ``unknown_document`` when it does not exist and ``create`` is false.

        A room nobody joins is unloaded after ``unload_after_s``; callers that only look at it
        call ``_schedule_unload`` when done.
        """
        lr = self.rooms.get(doc_id)
        if lr is not None:
            if lr.unload is not None:
                lr.unload.cancel()
                lr.unload = None
            return lr
        while True:
            task = self._loading.get(doc_id)
            most = self.settings.max_loaded_documents
            if task is None and len(self.rooms) + len(self._loading) >= most:
                raise RoomError(
                    p.ErrorCode.TOO_MANY_DOCUMENTS,
                    f"{most} documents are loaded: try again when some unload",
                )
            if task is None:
                # its own task: a caller that goes away (its connection closed) does not cancel
                # the load others may be waiting for
                task = asyncio.create_task(self._load(doc_id, create))
                self._loading[doc_id] = task
                task.add_done_callback(lambda t: self._loaded(doc_id, t))
            try:
                return await asyncio.shield(task)
            except RoomError as exc:
                # a concurrent load without ``create`` found nothing: this one may create it
                if not create or exc.code is not p.ErrorCode.UNKNOWN_DOCUMENT:
                    raise
                if self._loading.get(doc_id) is task:
                    del self._loading[doc_id]
                if doc_id in self.rooms:
                    return await self.open_room(doc_id, create=create)

    def _loaded(self, doc_id: str, task: asyncio.Task[LoadedRoom]) -> None:
        if self._loading.get(doc_id) is task:
            del self._loading[doc_id]
        if not task.cancelled():
            task.exception()  # retrieved here (every waiter raises it), so asyncio stays quiet

    async def _load(self, doc_id: str, create: bool) -> LoadedRoom:
        stored = await self.store.load(doc_id)
        if stored is None:
            if not create:
                raise RoomError(p.ErrorCode.UNKNOWN_DOCUMENT, f"no document {doc_id!r}")
            with contextlib.suppress(DocumentExists):  # created meanwhile (REST): load that
                await self.store.create_document(doc_id, title=doc_id, now_ms=self.now_ms())
            stored = await self.store.load(doc_id)
            assert stored is not None
        doc = (
            Document.load(stored.snapshot, self.replica, now_ms=self.now_ms)
            if stored.snapshot
            else Document(self.replica, now_ms=self.now_ms)
        )
        limits = RoomLimits(
            max_node_length=self.settings.max_node_length,
            max_new_replicas_per_sync=self.settings.max_new_replicas_per_sync,
            max_replicas_per_document=self.settings.max_replicas_per_document,
            max_map_keys=self.settings.max_map_keys,
            max_nodes_per_document=self.settings.max_nodes_per_document,
            max_key_length=self.settings.max_key_length,
            history_kept_ops=self.settings.history_kept_ops,
            edit_log_capacity=self.settings.edit_log_capacity,
            idle_after_ms=int(self.settings.idle_after_s * 1000),
        )
        room = Room(doc_id, doc, stored.snapshot_seq, limits)
        for seq, update in stored.updates:
            room.load_update(seq, update)
        if self.cluster is not None:  # versions are this instance's from now on
            room.epoch = secrets.token_hex(6)
        lr = LoadedRoom(
            room, room.version, seqs=SeqSet(stored.last_seq), since_snapshot=len(stored.updates)
        )
        lr.task = asyncio.create_task(self._pipeline(doc_id, lr))
        self._background(self.exactly_once.prune(doc_id))
        self.rooms[doc_id] = lr
        self.metrics.documents.set(len(self.rooms))
        self._schedule_unload(doc_id, lr)  # released if whoever loads it never joins
        if self.cluster is not None:
            # subscribe, then read what others stored meanwhile: nothing falls in between
            await self.cluster.attach(doc_id)
            self._catch_up(doc_id, lr)
        log.info("document loaded", extra={"doc": doc_id, "version": room.version})
        return lr

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._unloads.add(task)  # awaited by ``close``
        task.add_done_callback(self._unloads.discard)

    def _schedule_unload(self, doc_id: str, lr: LoadedRoom) -> None:
        """Unload the room after ``unload_after_s`` unless someone joins it meanwhile."""
        if lr.peers or lr.unload is not None or self.rooms.get(doc_id) is not lr:
            return
        loop = asyncio.get_running_loop()
        lr.unload = loop.call_later(self.settings.unload_after_s, self._unload_later, doc_id)

    def _unload_later(self, doc_id: str) -> None:
        task = asyncio.create_task(self._unload(doc_id))
        self._unloads.add(task)
        task.add_done_callback(self._unloads.discard)

    async def _unload(self, doc_id: str, *, force: bool = False) -> None:
        """Drain the room's pipeline and drop it (unless someone is in it)."""
        lr = self.rooms.get(doc_id)
        if lr is None:
            return
        if lr.unload is not None:
            lr.unload.cancel()
            lr.unload = None
        while True:
            if lr.peers and not force:
                return
            await lr.queue.join()
            # the log tail since the last snapshot stays: replayed at the next load, it keeps
            # the edit history thin clients rebase over (a snapshot would make them resync)
            if lr.since_snapshot >= self.settings.snapshot_every or self._compaction_due(lr):
                await self._snapshot(doc_id, lr)
            if self.rooms.get(doc_id) is not lr:
                return  # unloaded meanwhile
            if lr.peers and not force:
                return
            if lr.inflight == 0:
                break  # nothing was submitted during the awaits: drop it now, before any other
        # no await between the checks above and this: nobody can join a room on its way out
        del self.rooms[doc_id]
        self.metrics.documents.set(len(self.rooms))
        for task in (lr.task, lr.catching_up):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.cluster is not None and doc_id not in self.rooms:
            await self.cluster.detach(doc_id)
        log.info("document unloaded", extra={"doc": doc_id})

    async def _snapshot(self, doc_id: str, lr: LoadedRoom) -> None:
        """Rewrite the snapshot, but only of durable state: nothing applied and unpersisted,
        and every log entry up to the snapshot's seq merged (later ones may be in it too: a
        replay merges them again, which changes nothing)."""
        if lr.unpersisted:
            return
        # deleted text older than the kept history goes (and with it, from the disk)
        compact_old_history(lr.room.doc, lr.room.cuts, self.settings.history_kept_ops)
        state = lr.room.doc.encode_state()
        upto = lr.seqs.upto
        counted = lr.since_snapshot
        try:
            await self.store.save_snapshot(doc_id, state, upto)
            # what came in while saving counts towards the next one
            lr.since_snapshot = max(len(lr.seqs.ahead), lr.since_snapshot - counted)
            self._background(self.exactly_once.prune(doc_id))
        except (StoreError, ValueError):
            log.exception("snapshot failed", extra={"doc": doc_id})

    # -------------------------------------------------------------- pipeline

    def submit(
        self,
        lr: LoadedRoom,
        outcome: Outcome,
        sender: Peer | None,
        t0: float,
        *,
        joined: bool = False,
        remote: bool = False,
    ) -> None:
        """Queue an outcome: persisted (if it has an update), then its replies and broadcasts
        sent, after every outcome submitted before it."""
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
        lr.queue.put_nowait(Job(outcome, sender, t0, joined, remote))

    async def _pipeline(self, doc_id: str, lr: LoadedRoom) -> None:
        queue = lr.queue
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            writes = [j.outcome for j in batch if j.outcome.persist is not None]
            try:
                failed, seqs = await self._persist(doc_id, lr, writes)
                self._publish(doc_id, writes, seqs)
                for job in batch:
                    try:
                        error = failed.get(id(job.outcome)) if failed else None
                        if error is not None:
                            self._refuse(job, error)
                        else:
                            self._fanout(lr, job)
                            if self.cluster is not None and not job.remote:
                                self._publish_presence(doc_id, lr, job.outcome)
                    except Exception:
                        log.exception("fan-out failed", extra={"doc": doc_id})
            except Exception:
                log.exception("room pipeline failed", extra={"doc": doc_id})
            finally:
                lr.unpersisted -= len(writes)
                for job in batch:
                    if job.joined and job.sender is not None:
                        lr.joining.discard(job.sender.session)
                    lr.inflight -= 1
                    queue.task_done()
            if self._snapshot_due(lr) and queue.empty():
                await self._snapshot(doc_id, lr)

    def _compaction_due(self, lr: LoadedRoom) -> bool:
        """Old deleted history is worth compacting away (and the log with it) by a snapshot."""
        kept = self.settings.history_kept_ops
        return lr.since_snapshot > 0 and compaction_due(lr.room.doc, lr.room.cuts, kept)

    def _snapshot_due(self, lr: LoadedRoom) -> bool:
        """Encoding a snapshot holds the event loop (tens of ms for a large document), so a busy
        room waits for a quiet moment, unless its log tail grows very long."""
        every = self.settings.snapshot_every
        if lr.since_snapshot < every and not self._compaction_due(lr):
            return False
        quiet = time.monotonic() - lr.last_write >= SNAPSHOT_QUIET_S
        return quiet or lr.since_snapshot >= SNAPSHOT_FORCE_FACTOR * every

    def _publish(self, doc_id: str, outcomes: list[Outcome], seqs: dict[int, int]) -> None:
        """Tell other instances about durable updates (best effort: they catch up from the
        Store if a message is lost), in log order."""
        if self.cluster is None:
            return
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
        failed: dict[int, p.Error] = {}
        seqs: dict[int, int] = {}
        unkeyed: set[int] = set()
        """Outcomes another instance stored first (by edit key): stored again without it."""
        todo = outcomes
        delay = 0.05
        while todo:
            now = self.now_ms()
            results = await asyncio.gather(
                *[
                    self.store.append_update(
                        doc_id,
                        o.persist or b"",
                        edit_keys=[]
                        if id(o) in unkeyed
                        else [EditKey(c, e, o.edit_digest) for c, e in o.edit_keys],
                        now_ms=now,
                    )
                    for o in todo
                ],
                return_exceptions=True,
            )
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
                    if self.cluster is None and (retry or result != o.version):
                        log.error(
                            "log sequence mismatch",
                            extra={"doc": doc_id, "seq": result, "version": o.version},
                        )
                    seqs[id(o)] = result
                    lr.seqs.add(result)
                    lr.since_snapshot += 1
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
            log.error(
                "store unavailable: edits are held, not acknowledged", extra={"doc": lr.room.doc_id}
            )
        else:
            log.info("store available again: held edits stored", extra={"doc": lr.room.doc_id})
        data = p.encoder.encode(p.Saving(doc=lr.room.doc_id, pending=pending))
        for peer in list(lr.peers.values()):
            peer.send(data)

    def _refuse(self, job: Job, error: p.Error) -> None:
        """An outcome that could not be made durable: its sender gets the error, nobody else
        anything (its edit is neither acknowledged nor broadcast)."""
        if job.sender is not None:
            edit_id = next((m.edit_id for m in job.outcome.reply if isinstance(m, p.Ack)), None)
            error = p.Error(code=error.code, message=error.message, doc=error.doc, edit_id=edit_id)
            job.sender.send(p.encoder.encode(error))

    def _fanout(self, lr: LoadedRoom, job: Job) -> None:
        encode = p.encoder.encode
        outcome, sender = job.outcome, job.sender
        if sender is not None and outcome.reply:
            for msg in outcome.reply:
                sender.send(encode(msg))
            if outcome.persist is not None:
                self.metrics.edit_ack.observe(time.monotonic() - job.t0)
        if job.joined and sender is not None and lr.peers.get(sender.session) is sender:
            lr.audience[sender.session] = sender
        if not outcome.broadcast:
            return
        doc_id = lr.room.doc_id
        for msg, audience in outcome.broadcast:
            data = encode(msg)
            for peer in list(lr.audience.values()):
                if peer is sender:
                    continue
                if audience == "all" or peer.docs.get(doc_id) == audience:
                    peer.send(data)
        if outcome.persist is not None:
            self.metrics.edit_broadcast.observe(time.monotonic() - job.t0)

    async def _tick_loop(self) -> None:
        ticks = 0
        dropped = 0
        while True:
            await asyncio.sleep(1.0)
            ticks += 1
            now = self.now_ms()
            for doc_id, lr in list(self.rooms.items()):
                try:
                    outcome = lr.room.tick(now)
                    if outcome.broadcast:
                        self.submit(lr, outcome, None, time.monotonic())
                    if self._snapshot_due(lr) and lr.inflight == 0:  # went quiet since
                        self.submit(lr, Outcome(), None, time.monotonic())  # the pipeline takes it
                except Exception:
                    log.exception("room tick failed", extra={"doc": doc_id})
            cluster = self.cluster
            if cluster is None:
                continue
            cluster.expire()
            # the store is the truth: reconcile now and then (a lost last message shows no gap),
            # and at once when the bus dropped messages for us
            lost = cluster.dropped()
            if lost != dropped or ticks % RECONCILE_EVERY_TICKS == 0:
                dropped = lost
                for doc_id, lr in list(self.rooms.items()):
                    self._catch_up(doc_id, lr)

    # ------------------------------------------------------- other instances

    def _merge(
        self, doc_id: str, lr: LoadedRoom, seq: int, data: bytes, *, stored: bool = False
    ) -> None:
        """Merge log entry ``seq`` (another instance's update) unless the room has it.
        ``stored``: read from the store (else from the bus)."""
        if seq in lr.seqs:
            return
        try:
            outcome = lr.room.merge_update(data)
        except RoomError as exc:
            if not stored:  # damaged on the way: the store has the real one
                log.warning("unreadable update %d: %s", seq, exc.message, extra={"doc": doc_id})
                self._catch_up(doc_id, lr, delay=GAP_GRACE_S)
                return
            log.error(
                "unreadable stored update %d skipped: %s", seq, exc.message, extra={"doc": doc_id}
            )
            outcome = Outcome()
        lr.seqs.add(seq)
        lr.since_snapshot += 1
        if outcome.broadcast:
            self.submit(lr, outcome, None, time.monotonic(), remote=True)

    def _catch_up(self, doc_id: str, lr: LoadedRoom, delay: float = 0.0) -> None:
        """Read the log entries the room lacks from the store (in the background)."""
        if lr.catching_up is not None:
            lr.catch_again = True
            return
        lr.catching_up = asyncio.create_task(self._catching_up(doc_id, lr, delay))

    async def _catching_up(self, doc_id: str, lr: LoadedRoom, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            backoff = 0.1
            while self.rooms.get(doc_id) is lr:
                lr.catch_again = False
                try:
                    updates = await self.store.updates_since(doc_id, lr.seqs.upto)
                except Compacted:
                    await self._merge_snapshot(doc_id, lr)
                    continue
                except NotFound:
                    return
                except StoreError:
                    await asyncio.sleep(backoff)  # it retries until the store is back
                    backoff = min(backoff * 2, 2.0)
                    continue
                for seq, data in updates:
                    if self.rooms.get(doc_id) is not lr:
                        return
                    self._merge(doc_id, lr, seq, data, stored=True)
                if not lr.catch_again:
                    return
        except Exception:
            log.exception("catch-up failed", extra={"doc": doc_id})
        finally:
            if lr.catching_up is asyncio.current_task():
                lr.catching_up = None

    async def _merge_snapshot(self, doc_id: str, lr: LoadedRoom) -> None:
        """Entries the room lacks were folded into a snapshot: merge what it adds.

        A snapshot of a compacted document cannot always be expressed as a delta for this
        room; then the room is dropped and its connections told to reconnect (they rejoin a
        fresh load, with a snapshot and a three-way merge of their pending edits).
        """
        stored = await self.store.load(doc_id)
        if stored is None or self.rooms.get(doc_id) is not lr:
            return
        if stored.snapshot is not None:
            snap = Document.load(stored.snapshot, None, now_ms=self.now_ms)
            try:
                delta = snap.delta_since(lr.room.doc.version)
            except Exception:
                log.warning("room too far behind a snapshot: reloading", extra={"doc": doc_id})
                for peer in list(lr.peers.values()):
                    peer.close(1012, "document reloaded: reconnect")
                return
            lr.seqs.fill_to(stored.snapshot_seq)
            outcome = lr.room.merge_update(delta)
            if outcome.broadcast:
                self.submit(lr, outcome, None, time.monotonic(), remote=True)
        for seq, data in stored.updates:
            self._merge(doc_id, lr, seq, data, stored=True)

    # Listener (cluster.py): called for every note another instance sends

    def on_update(self, doc_id: str, note: UpdateNote) -> None:
        lr = self.rooms.get(doc_id)
        if lr is None:
            return
        self._merge(doc_id, lr, note.seq, note.data)
        if lr.seqs.has_gap:  # maybe still on its way from another instance: look a bit later
            self._catch_up(doc_id, lr, delay=GAP_GRACE_S)

    def on_presence(self, doc_id: str, note: PresenceNote) -> None:
        lr = self.rooms.get(doc_id)
        if lr is not None:
            outcome = lr.room.merge_presence(note.instance, note.entries, note.left)
            if outcome.broadcast:
                self.submit(lr, outcome, None, time.monotonic(), remote=True)

    def on_query(self, doc_id: str, note: QueryNote) -> None:
        lr = self.rooms.get(doc_id)
        if lr is not None and self.cluster is not None:
            entries = lr.room.peer_entries()
            if entries:
                self.cluster.publish(doc_id, PresenceNote(self.replica, entries, []))

    def on_chat(self, doc_id: str, note: ChatNote) -> None:
        lr = self.rooms.get(doc_id)
        if lr is not None:
            for peer in list(lr.audience.values()):
                peer.send(note.message)

    def on_instance_gone(self, instance: int) -> None:
        for doc_id, lr in list(self.rooms.items()):
            outcome = lr.room.drop_instance(instance)
            if outcome.broadcast:
                self.submit(lr, outcome, None, time.monotonic(), remote=True)
            self._catch_up(doc_id, lr)  # it may have stored updates it never published

    def on_bus_back(self) -> None:
        """The bus reconnected: catch up, and tell the others who is here again."""
        log.info("bus back: catching up from the store")
        for doc_id, lr in list(self.rooms.items()):
            self._catch_up(doc_id, lr)
            if self.cluster is not None:
                self.cluster.spawn(self._reannounce(doc_id, lr))

    async def _reannounce(self, doc_id: str, lr: LoadedRoom) -> None:
        assert self.cluster is not None
        entries = lr.room.peer_entries()
        if entries:
            await self.cluster.send(doc_id, PresenceNote(self.replica, entries, []))
        await self.cluster.send(doc_id, QueryNote(self.replica))

    # ------------------------------------------------------------ operations

    async def join(self, peer: Peer, msg: p.Join) -> None:
        """Join (or rejoin) ``msg.doc``: the ``joined`` reply, then the room's broadcasts.

        Raises RoomError: ``forbidden``, ``unknown_document``, ``room_full``, ``bad_message``.
        """
        t0 = time.monotonic()
        rights = peer.identity.rights(msg.doc)
        if "read" not in rights:
            raise RoomError(p.ErrorCode.FORBIDDEN, f"no access to {msg.doc}")
        if msg.create and "write" not in rights:
            raise RoomError(p.ErrorCode.FORBIDDEN, f"no right to create {msg.doc}")
        most = self.settings.max_documents_per_connection
        if msg.doc not in peer.docs and len(peer.docs) >= most:
            raise RoomError(p.ErrorCode.TOO_MANY_DOCUMENTS, f"at most {most} documents joined")
        lr = await self.open_room(msg.doc, create=msg.create)
        if self.cluster is not None and msg.version is not None and msg.epoch != lr.room.epoch:
            # a client from another instance: what it saw there is in the store, maybe not yet
            # here (that instance may have died before publishing it)
            await self._caught_up(msg.doc, lr)
            lr = await self.open_room(msg.doc, create=msg.create)
        rejoin = lr.peers.get(peer.session) is peer
        if not rejoin and len(lr.peers) >= self.settings.max_connections_per_document:
            self._schedule_unload(msg.doc, lr)
            raise RoomError(p.ErrorCode.ROOM_FULL, f"{msg.doc} has too many connections")
        if peer.session in lr.joining:
            raise RoomError(p.ErrorCode.RATE_LIMITED, f"a join of {msg.doc} is on its way")
        # hold the place (and keep the room loaded) while the chat loads; no broadcasts until
        # the ``joined`` goes out (``_fanout``)
        lr.peers[peer.session] = peer
        listening = lr.audience.pop(peer.session, None)
        try:
            history = await self.store.chat_history(msg.doc, limit=50)
            member = Member(
                session=peer.session,
                client_id=peer.client_id,
                user=p.User(
                    id=peer.identity.user_id, name=peer.identity.name, color=peer.identity.color
                ),
                mode=msg.mode,
                rights=rights,
                last_active_ms=self.now_ms(),
                owner=peer.identity.key_owner,
            )
            if msg.inflight is not None:  # stored, and forgotten here? the store tells
                await self.exactly_once.recognise_inflight(peer, msg)
                lr = self.joined(peer, msg.doc)
            previous = lr.room.members.get(peer.session)
            if previous is not None:  # a rejoin keeps the user's presence fields
                member.user = previous.user
            outcome = lr.room.join(member, msg, [_chat(m) for m in reversed(history)])
        except BaseException:
            if rejoin:
                if listening is not None and lr.peers.get(peer.session) is peer:
                    lr.audience[peer.session] = listening
            elif lr.peers.get(peer.session) is peer:
                del lr.peers[peer.session]
                self._schedule_unload(msg.doc, lr)
            raise
        peer.docs[msg.doc] = msg.mode
        lr.check_store.add(peer.session)
        if lr.saving_pending:
            peer.send(p.encoder.encode(p.Saving(doc=msg.doc, pending=True)))
        lr.joining.add(peer.session)
        self.submit(lr, outcome, peer, t0, joined=True)

    def leave(self, peer: Peer, doc_id: str) -> None:
        peer.docs.pop(doc_id, None)
        lr = self.rooms.get(doc_id)
        if lr is None or lr.peers.get(peer.session) is not peer:
            return
        del lr.peers[peer.session]
        lr.audience.pop(peer.session, None)
        lr.check_store.discard(peer.session)
        self.submit(lr, lr.room.leave(peer.session), None, time.monotonic())
        self._schedule_unload(doc_id, lr)

    def joined(self, peer: Peer, doc_id: str) -> LoadedRoom:
        lr = self.rooms.get(doc_id)
        if lr is None or lr.peers.get(peer.session) is not peer:
            raise RoomError(p.ErrorCode.NOT_JOINED, f"join {doc_id} first")
        return lr

    async def edit(self, peer: Peer, msg: p.Edit) -> None:
        t0 = time.monotonic()
        lr = self.joined(peer, msg.doc)
        first = peer.session in lr.check_store
        lr.check_store.discard(peer.session)
        if self.exactly_once.must_ask_store(lr, peer, msg, first):
            try:
                await self._recognise(peer, msg)
            except StoreError:
                # the store is down: hold this edit, like every other one now, until it is back
                self._saving(lr, pending=True)
                task = asyncio.create_task(self._edit_later(peer, msg, t0))
                self._held.add(task)
                task.add_done_callback(self._held.discard)
                return
        self._apply_edit(peer, msg, t0)

    async def _recognise(self, peer: Peer, msg: p.Edit) -> None:
        """Maybe applied by an earlier run of the server, or (sent before a reconnect) by
        another instance: the store knows. Raises StoreError while it cannot tell."""
        await self.exactly_once.recognise(peer, msg.doc, msg.edit_id)

    async def _edit_later(self, peer: Peer, msg: p.Edit, t0: float) -> None:
        delay = 0.1
        try:
            while True:
                await asyncio.sleep(delay)
                try:
                    await self._recognise(peer, msg)
                    break
                except StoreError:
                    delay = min(delay * 2, 2.0)
            self._apply_edit(peer, msg, t0)
        except RoomError as exc:  # left meanwhile, or the edit no longer fits
            error = p.Error(code=exc.code, message=exc.message, doc=msg.doc, edit_id=msg.edit_id)
            peer.send(p.encoder.encode(error))

    def _apply_edit(self, peer: Peer, msg: p.Edit, t0: float) -> None:
        lr = self.joined(peer, msg.doc)
        outcome = lr.room.edit(peer.session, msg, self.now_ms())
        if outcome.persist is not None:
            self.edits_applied += 1
            self.metrics.edits.labels("thin").inc()
        self.submit(lr, outcome, peer, t0)

    async def _caught_up(self, doc_id: str, lr: LoadedRoom) -> None:
        """Return once the room has merged everything the store held when called (or was
        unloaded meanwhile)."""
        while True:
            task = lr.catching_up
            if task is None:
                self._catch_up(doc_id, lr)
                task = lr.catching_up
                if task is None:
                    return
                await asyncio.wait({task})
                return
            await asyncio.wait({task})  # an earlier catch-up may have missed what we need

    async def sync(self, peer: Peer, msg: p.Sync) -> None:
        t0 = time.monotonic()
        lr = self.joined(peer, msg.doc)
        outcome = lr.room.sync(peer.session, msg, self.now_ms())
        if outcome.persist is not None:
            self.edits_applied += 1
            self.metrics.edits.labels("replica").inc()
        self.submit(lr, outcome, peer, t0)

    def presence(self, peer: Peer, msg: p.SetPresence) -> None:
        lr = self.joined(peer, msg.doc)
        if msg.user is not None and msg.user.fields:  # sent to every member, again at each join
            size = len(p.encoder.encode(msg.user.fields))
            if size > self.settings.max_presence_bytes:
                limit = self.settings.max_presence_bytes
                raise RoomError(p.ErrorCode.TOO_LARGE, f"presence fields of {size} bytes > {limit}")
        if msg.user is not None and msg.user.name and peer.identity.authenticated:
            # the token names the user: nobody may appear (in presence or chat) as someone else
            msg = msgspec.structs.replace(msg, user=msgspec.structs.replace(msg.user, name=""))
        self.submit(lr, lr.room.presence(peer.session, msg, self.now_ms()), peer, time.monotonic())

    async def chat_send(self, peer: Peer, msg: p.ChatSend) -> None:
        lr = self._chatter(peer, msg.doc)
        member = lr.room.members[peer.session]
        stored = await self._chat_call(
            self.store.add_chat(
                msg.doc,
                author_id=peer.identity.user_id,
                author_name=member.user.name,
                text=msg.text,
                now_ms=self.now_ms(),
            ),
            missing=p.ErrorCode.UNKNOWN_DOCUMENT,
        )
        self._chat_out(peer, msg.doc, stored)

    async def chat_edit(self, peer: Peer, msg: p.ChatEdit) -> None:
        self._chatter(peer, msg.doc)
        stored = await self._chat_call(
            self.store.edit_chat(
                msg.doc,
                msg.id,
                author_id=peer.identity.user_id,
                text=msg.text,
                now_ms=self.now_ms(),
            )
        )
        self._chat_out(peer, msg.doc, stored)

    async def chat_delete(self, peer: Peer, msg: p.ChatDelete) -> None:
        self._chatter(peer, msg.doc)
        stored = await self._chat_call(
            self.store.delete_chat(
                msg.doc, msg.id, author_id=peer.identity.user_id, now_ms=self.now_ms()
            )
        )
        self._chat_out(peer, msg.doc, stored)

    async def chat_history(self, peer: Peer, msg: p.ChatHistory) -> None:
        self.joined(peer, msg.doc)
        page = await self.store.chat_history(msg.doc, before=msg.before, limit=msg.limit + 1)
        more = len(page) > msg.limit
        out = p.ChatPage(doc=msg.doc, messages=[_chat(m) for m in page[: msg.limit]], has_more=more)
        # through the pipeline: after the ``joined`` and anything else already queued for it
        lr = self.joined(peer, msg.doc)
        self.submit(lr, Outcome(reply=[out]), peer, time.monotonic())

    async def _chat_call(
        self,
        call: Coroutine[Any, Any, ChatMessage],
        missing: p.ErrorCode = p.ErrorCode.NOT_FOUND,
    ) -> ChatMessage:
        try:
            return await call
        except NotFound as exc:
            raise RoomError(missing, str(exc)) from None
        except Forbidden as exc:
            raise RoomError(p.ErrorCode.FORBIDDEN, str(exc)) from None
        except ValueError as exc:  # an argument the store cannot keep (the protocol bounds them)
            raise RoomError(p.ErrorCode.BAD_MESSAGE, str(exc)) from None

    def _chatter(self, peer: Peer, doc_id: str) -> LoadedRoom:
        lr = self.joined(peer, doc_id)
        member = lr.room.members.get(peer.session)
        if member is None:
            raise RoomError(p.ErrorCode.NOT_JOINED, f"join {doc_id} first")
        if "chat" not in member.rights:
            raise RoomError(p.ErrorCode.FORBIDDEN, f"no chat right on {doc_id}")
        return lr

    def _chat_out(self, peer: Peer, doc_id: str, stored: ChatMessage) -> None:
        lr = self.joined(peer, doc_id)  # still there after the store's await
        msg = p.Chat(doc=doc_id, message=_chat(stored))
        if self.cluster is not None:
            self.cluster.publish(doc_id, ChatNote(self.replica, p.encoder.encode(msg)))
        outcome = Outcome(reply=[msg], broadcast=[(msg, "all")])
        outcome.broadcast.extend(lr.room.touch(peer.session, self.now_ms()).broadcast)
        self.submit(lr, outcome, peer, time.monotonic())


def _chat(m: ChatMessage) -> p.ChatMessage:
    return p.ChatMessage(
        id=m.id,
        author_id=m.author_id,
        author_name=m.author_name,
        text=m.text,
        created_ms=m.created_ms,
        edited_ms=m.edited_ms,
        deleted=m.deleted,
    )
