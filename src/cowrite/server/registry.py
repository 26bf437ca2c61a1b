"""The registry: which rooms are loaded, loading and unloading them, and their snapshots.

``open_room`` loads a document's room once (concurrent callers share the load) and starts its
pipeline (``pipeline.py``); a room nobody is in unloads after ``unload_after_s``, once its pipeline
is drained. Snapshots are taken here, of durable state only, when the room is quiet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from cowrite import protocol as p
from cowrite.adapters.store import DocumentExists, Store, StoreError
from cowrite.engine import collector_paused, thaw_frozen
from cowrite.rooms.kind import DocumentRoom, kind_named
from cowrite.rooms.room import Room, RoomError, RoomLimits
from cowrite.rooms.yjs_room import YjsRoom
from cowrite.server import history, yjs_history
from cowrite.server.cluster import Cluster, SeqSet
from cowrite.server.config import Settings
from cowrite.server.hooks import Hooks, LoadDocument, Unload
from cowrite.server.job_queue import JobQueue
from cowrite.server.membership import Membership
from cowrite.server.metrics import Metrics
from cowrite.server.pipeline import Job
from cowrite.server.tracing import Tracing

if TYPE_CHECKING:
    from cowrite.server.exactly_once import ExactlyOnce
    from cowrite.server.hub import Hub

log = logging.getLogger("cowrite.hub")

LARGE_LOAD_BYTES = 1 << 20
"""A stored document at least this large (snapshot and log) loads with the garbage collector
paused and its objects frozen afterwards (``collector_paused``): a collection walking the
million objects of a large load holds the interpreter lock for tens of ms at a time."""
SNAPSHOT_QUIET_S = 2.0
"""A room with a snapshot due takes it once no update came for this long..."""
SNAPSHOT_FORCE_FACTOR = 20
"""...or once ``snapshot_every`` times this many updates wait in the log."""


@dataclass
class LoadedRoom:
    room: DocumentRoom
    """The loaded document, seen through the document-kind seam (``rooms/kind.py``)."""
    loaded_version: int
    membership: Membership = field(default_factory=Membership)
    """Who is in the room, who gets its broadcasts, whose join is on its way."""
    queue: JobQueue[Job] = field(default_factory=JobQueue)
    """The pipeline's jobs (``pipeline.py``): ``join`` waits until those queued are carried out."""
    task: asyncio.Task[None] | None = None
    unload: asyncio.TimerHandle | None = None
    seqs: SeqSet = field(default_factory=SeqSet)
    """The Store log entries merged into the room."""
    since_snapshot: int = 0
    log_bytes: int = 0
    """Bytes of the Store log entries since the snapshot (replayed at the next load)."""
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
    retained_upto: int = 0
    """Version history retention went over the versions up to this seq (``server/history.py``)."""
    frozen: bool = False
    """Loaded under ``collector_paused`` (engine/threads.py): frozen until it is dropped."""

    @property
    def crdt(self) -> Room:
        """The room as the CRDT kind (``Room``), for its own dialect (join, edit, sync, REST
        reads); raises RoomError ``bad_message`` for a document of another kind."""
        room = self.room
        if not isinstance(room, Room):
            raise RoomError(
                p.ErrorCode.BAD_MESSAGE, f"{room.doc_id} is not a document of this protocol"
            )
        return room


class Registry:
    """The hub's loaded rooms (a part of ``Hub``: it declares what it uses of the others)."""

    store: Store
    settings: Settings
    metrics: Metrics
    now_ms: Callable[[], int]
    replica: int
    cluster: Cluster | None
    exactly_once: ExactlyOnce
    tracing: Tracing
    rooms: dict[str, LoadedRoom]
    _loading: dict[str, asyncio.Future[LoadedRoom]]
    _unloads: set[asyncio.Task[None]]
    hooks: Hooks

    if TYPE_CHECKING:

        async def _pipeline(self, doc_id: str, lr: LoadedRoom) -> None: ...

        def _catch_up(self, doc_id: str, lr: LoadedRoom, delay: float = 0.0) -> None: ...

    async def open_room(self, doc_id: str, *, create: bool, kind: str = "crdt") -> LoadedRoom:
        """The loaded room of ``doc_id`` (loading it if needed); raises RoomError
        ``unknown_document`` when it does not exist and ``create`` is false. A document created
        here is of ``kind``; an existing one keeps its own (callers check ``lr.room``).

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
                task = asyncio.create_task(self._load(doc_id, create, kind))
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
                    return await self.open_room(doc_id, create=create, kind=kind)

    def _loaded(self, doc_id: str, task: asyncio.Task[LoadedRoom]) -> None:
        if self._loading.get(doc_id) is task:
            del self._loading[doc_id]
        if not task.cancelled():
            task.exception()  # retrieved here (every waiter raises it), so asyncio stays quiet

    async def _load(self, doc_id: str, create: bool, kind: str) -> LoadedRoom:
        with self.tracing.span("cowrite.load", doc=doc_id):
            return await self._load_room(doc_id, create, kind)

    async def _load_room(self, doc_id: str, create: bool, kind: str) -> LoadedRoom:
        stored = await self.store.load(doc_id)
        created = False
        if stored is None:
            if not create:
                raise RoomError(p.ErrorCode.UNKNOWN_DOCUMENT, f"no document {doc_id!r}")
            with contextlib.suppress(DocumentExists):  # created meanwhile (REST): load that
                await self.store.create_document(
                    doc_id, title=doc_id, now_ms=self.now_ms(), kind=kind
                )
                created = True
                self.hooks.created(doc_id, kind, None)
            stored = await self.store.load(doc_id)
            assert stored is not None
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
        try:
            loader = kind_named(stored.kind)
        except KeyError:
            raise RoomError(
                p.ErrorCode.INTERNAL, f"{doc_id!r} is of kind {stored.kind!r}, unknown here"
            ) from None
        # decoding a large document takes a while (a second for megabytes of history): in a
        # worker thread, so that every other document's edits go on meanwhile (the decoder
        # drops the interpreter lock every few ms, engine/threads.py); the room is the event
        # loop's alone once it is returned
        log_bytes = sum(len(update) for _, update in stored.updates)
        large = len(stored.snapshot or b"") + log_bytes >= LARGE_LOAD_BYTES
        load = functools.partial(
            loader.load,
            doc_id,
            stored.snapshot,
            stored.snapshot_seq,
            stored.updates,
            limits,
            replica=self.replica,
            now_ms=self.now_ms,
        )
        with collector_paused() if large else contextlib.nullcontext():
            room = await asyncio.to_thread(load)
        if self.cluster is not None:  # versions are this instance's from now on
            room.epoch = secrets.token_hex(6)
        if isinstance(room, Room):  # named versions: compaction never passes them
            await history.refresh_pins(self.store, doc_id, room)
        lr = LoadedRoom(
            room,
            room.version,
            seqs=SeqSet(stored.last_seq),
            since_snapshot=len(stored.updates),
            log_bytes=log_bytes,
            frozen=large,
        )
        lr.task = asyncio.create_task(self._pipeline(doc_id, lr))
        self._background(self.exactly_once.prune(doc_id))
        if self.hooks.wants("on_load_document"):
            await self._load_hooks(lr, stored.kind, created)
        self.rooms[doc_id] = lr
        self.metrics.documents.set(len(self.rooms))
        self._schedule_unload(doc_id, lr)  # released if whoever loads it never joins
        if self.cluster is not None:
            # subscribe, then read what others stored meanwhile: nothing falls in between
            await self.cluster.attach(doc_id)
            self._catch_up(doc_id, lr)
        log.info("document loaded", extra={"doc": doc_id, "version": room.version})
        return lr

    async def _load_hooks(self, lr: LoadedRoom, kind: str, created: bool) -> None:
        """``on_load_document``, before anyone sees the room: a CRDT document's seed edits
        become its first update (if every hook returned normally)."""
        from cowrite.server.documents import ServerDocument, apply_edits, seed_yjs

        room = lr.room
        doc = ServerDocument(room.doc_id, room) if isinstance(room, Room) else None
        updates: list[bytes] | None = None if doc is not None else []
        event = LoadDocument(room.doc_id, kind, created, doc, updates)
        ok = await self.hooks.load_document(event)
        if ok and updates:
            seed_yjs(cast("Hub", self), lr, updates)
        if ok and doc is not None and doc.ops:
            try:
                seed = p.User(id="server", name="server")
                apply_edits(cast("Hub", self), lr, doc, seed)
            except RoomError as exc:
                log.error(
                    "on_load_document's edits refused: %s", exc.message, extra={"doc": room.doc_id}
                )

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._unloads.add(task)  # awaited by ``close``
        task.add_done_callback(self._unloads.discard)

    def _schedule_unload(self, doc_id: str, lr: LoadedRoom) -> None:
        """Unload the room after ``unload_after_s`` unless someone joins it meanwhile."""
        if lr.membership or lr.unload is not None or self.rooms.get(doc_id) is not lr:
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
            if lr.membership and not force:
                return
            await lr.queue.join()
            # the log tail since the last snapshot stays: replayed at the next load, it keeps
            # the edit history thin clients rebase over (a snapshot would make them resync)
            if self._log_long(lr) or self._compaction_due(lr):
                await self._snapshot(doc_id, lr)
            if self.rooms.get(doc_id) is not lr:
                return  # unloaded meanwhile
            if lr.membership and not force:
                return
            if lr.inflight == 0:
                break  # nothing was submitted during the awaits: drop it now, before any other
        # no await between the checks above and this: nobody can join a room on its way out
        del self.rooms[doc_id]
        self.metrics.documents.set(len(self.rooms))
        if lr.frozen:
            thaw_frozen()  # its cycles are the collector's again (freed at a full collection)
        if lr.saving_pending:
            self.metrics.saving_pending.dec()
        for task in (lr.task, lr.catching_up):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self.cluster is not None and doc_id not in self.rooms:
            await self.cluster.detach(doc_id)
        self.hooks.flush_changes(doc_id)
        self.hooks.notify("on_unload", Unload(doc_id), doc_id)
        log.info("document unloaded", extra={"doc": doc_id})

    async def _snapshot(self, doc_id: str, lr: LoadedRoom) -> None:
        """Rewrite the snapshot, but only of durable state: nothing applied and unpersisted,
        and every log entry up to the snapshot's seq merged (later ones may be in it too: a
        replay merges them again, which changes nothing)."""
        if lr.unpersisted:
            return
        if isinstance(lr.room, Room):
            await history.refresh_pins(self.store, doc_id, lr.room)
            if lr.unpersisted:
                return
        state = lr.room.encode_snapshot(self.settings.history_kept_ops)
        upto = lr.seqs.upto
        counted, counted_bytes = lr.since_snapshot, lr.log_bytes
        try:
            kept = None
            drops: list[int] = []
            if isinstance(lr.room, YjsRoom):  # the snapshot keeps the Yjs version history
                state, kept, drops = await yjs_history.snapshot(
                    self.store, self.settings, doc_id, lr.room, state, upto, self.now_ms()
                )
            saved = await self.store.save_snapshot(doc_id, state, upto, drops=drops)
            if kept is not None and saved and isinstance(lr.room, YjsRoom):
                lr.room.history_read(kept)  # (not stored: the history stays as it was)
            # what came in while saving counts towards the next one
            lr.since_snapshot = max(len(lr.seqs.ahead), lr.since_snapshot - counted)
            lr.log_bytes = max(0, lr.log_bytes - counted_bytes)
            self._background(self.exactly_once.prune(doc_id))
            self._background(self._retain(doc_id, lr))
        except (StoreError, ValueError):
            log.exception("snapshot failed", extra={"doc": doc_id})

    async def _retain(self, doc_id: str, lr: LoadedRoom) -> None:
        lr.retained_upto = await history.retain(
            self.store, self.settings, doc_id, lr.retained_upto, self.now_ms()
        )

    def _compaction_due(self, lr: LoadedRoom) -> bool:
        """Old deleted history is worth compacting away (and the log with it) by a snapshot."""
        kept = self.settings.history_kept_ops
        return lr.since_snapshot > 0 and lr.room.compaction_due(kept)

    def _log_long(self, lr: LoadedRoom, factor: int = 1) -> bool:
        """Whether the log since the snapshot holds ``factor`` times ``snapshot_every`` updates
        or ``snapshot_every_bytes`` bytes."""
        settings = self.settings
        return (
            lr.since_snapshot >= factor * settings.snapshot_every
            or lr.log_bytes >= factor * settings.snapshot_every_bytes
        )

    def _snapshot_due(self, lr: LoadedRoom) -> bool:
        """Encoding a snapshot holds the event loop (tens of ms for a large document), so a busy
        room waits for a quiet moment, unless its log tail grows very long."""
        if not self._log_long(lr) and not self._compaction_due(lr):
            return False
        quiet = time.monotonic() - lr.last_write >= SNAPSHOT_QUIET_S
        return quiet or self._log_long(lr, SNAPSHOT_FORCE_FACTOR)
