"""The hub: loaded rooms, their durable ordered pipelines, and fan-out to connections.

Every input to a room runs synchronously (the room is sans-I/O), and its ``Outcome`` goes into the
room's queue. One task per room drains that queue in order: it writes all queued updates to the
store at once (the store group-commits them), and only when they are durable sends the acks and
broadcasts, in version order. So nothing is acknowledged before it is durable, a room never waits
for a client, and a burst of edits costs one commit, not one each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

from cowrite import protocol as p
from cowrite.adapters.bus import Bus, BusClosed
from cowrite.adapters.store import (
    ChatMessage,
    DocumentExists,
    EditKey,
    Forbidden,
    NotFound,
    Store,
    StoreError,
)
from cowrite.engine.document import Document
from cowrite.rooms.room import Member, Outcome, Room, RoomError, RoomLimits
from cowrite.server.auth import Identity
from cowrite.server.config import Settings
from cowrite.server.metrics import Metrics

log = logging.getLogger("cowrite.hub")


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


@dataclass
class Job:
    """One room input's outcome waiting in the room's pipeline."""

    outcome: Outcome
    sender: Peer | None
    t0: float
    joined: bool = False
    """The outcome is the sender's ``joined``: from then on the sender gets the broadcasts."""


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
    persisted: int = 0
    since_snapshot: int = 0
    inflight: int = 0
    """Jobs submitted and not yet carried out."""


class Hub:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        now_ms: Callable[[], int] = wall_ms,
        bus: Bus | None = None,
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
        self.edits_applied = 0
        self.started = time.monotonic()

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
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
            edit_log_capacity=self.settings.edit_log_capacity,
            idle_after_ms=int(self.settings.idle_after_s * 1000),
        )
        room = Room(doc_id, doc, stored.snapshot_seq, limits)
        for seq, update in stored.updates:
            room.load_update(seq, update)
        lr = LoadedRoom(
            room, room.version, persisted=room.version, since_snapshot=len(stored.updates)
        )
        lr.task = asyncio.create_task(self._pipeline(doc_id, lr))
        self.rooms[doc_id] = lr
        self.metrics.documents.set(len(self.rooms))
        self._schedule_unload(doc_id, lr)  # released if whoever loads it never joins
        log.info("document loaded", extra={"doc": doc_id, "version": room.version})
        return lr

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
            if lr.since_snapshot >= self.settings.snapshot_every:
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
        if lr.task is not None:
            lr.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lr.task
        log.info("document unloaded", extra={"doc": doc_id})

    async def _snapshot(self, doc_id: str, lr: LoadedRoom) -> None:
        """Rewrite the snapshot, but only of durable state (nothing applied and unpersisted)."""
        room = lr.room
        if room.version != lr.persisted:
            return
        state = room.doc.encode_state()
        upto = lr.persisted
        try:
            await self.store.save_snapshot(doc_id, state, upto)
            lr.since_snapshot = max(0, lr.persisted - upto)
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
        lr.queue.put_nowait(Job(outcome, sender, t0, joined))

    async def _pipeline(self, doc_id: str, lr: LoadedRoom) -> None:
        queue = lr.queue
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            try:
                writes = [j.outcome for j in batch if j.outcome.persist is not None]
                failed = await self._persist(doc_id, lr, writes)
                await self._publish(doc_id, [o for o in writes if id(o) not in failed])
                for job in batch:
                    try:
                        error = failed.get(id(job.outcome)) if failed else None
                        if error is not None:
                            self._refuse(job, error)
                        else:
                            self._fanout(lr, job)
                    except Exception:
                        log.exception("fan-out failed", extra={"doc": doc_id})
            except Exception:
                log.exception("room pipeline failed", extra={"doc": doc_id})
            finally:
                for _ in batch:
                    lr.inflight -= 1
                    queue.task_done()
            if lr.since_snapshot >= self.settings.snapshot_every and queue.empty():
                await self._snapshot(doc_id, lr)

    async def _publish(self, doc_id: str, outcomes: list[Outcome]) -> None:
        """Tell other instances about durable updates (best effort: they catch up from the
        Store if a message is lost). Message: instance id, version (8 bytes each), update."""
        if self.bus is None or not outcomes:
            return
        for o in outcomes:
            message = struct.pack(">QQ", self.replica, o.version) + (o.persist or b"")
            try:
                await self.bus.publish(f"doc:{doc_id}", message)
            except BusClosed:
                log.warning("bus unavailable: other instances will catch up from the store")
                return

    async def _persist(
        self, doc_id: str, lr: LoadedRoom, outcomes: list[Outcome]
    ) -> dict[int, p.Error]:
        """Append the outcomes' updates to the log, in order, each exactly once.

        Retries while the store is unavailable (nothing is acknowledged meanwhile). Returns, by
        ``id(outcome)``, the error of those that cannot be stored at all (document deleted).
        """
        failed: dict[int, p.Error] = {}
        todo = outcomes
        delay = 0.05
        while todo:
            now = self.now_ms()
            results = await asyncio.gather(
                *[
                    self.store.append_update(
                        doc_id,
                        o.persist or b"",
                        edit_keys=[EditKey(c, e) for c, e in o.edit_keys],
                        now_ms=now,
                    )
                    for o in todo
                ],
                return_exceptions=True,
            )
            retry: list[Outcome] = []
            for o, result in zip(todo, results, strict=True):
                if isinstance(result, int):
                    if retry or result != o.version:
                        log.error(
                            "log sequence mismatch",
                            extra={"doc": doc_id, "seq": result, "version": o.version},
                        )
                    lr.persisted = max(lr.persisted, result)
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
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            todo = retry
        return failed

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
        while True:
            await asyncio.sleep(1.0)
            now = self.now_ms()
            for doc_id, lr in list(self.rooms.items()):
                try:
                    outcome = lr.room.tick(now)
                    if outcome.broadcast:
                        self.submit(lr, outcome, None, time.monotonic())
                except Exception:
                    log.exception("room tick failed", extra={"doc": doc_id})

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
        lr = await self.open_room(msg.doc, create=msg.create)
        rejoin = lr.peers.get(peer.session) is peer
        if not rejoin and len(lr.peers) >= self.settings.max_connections_per_document:
            self._schedule_unload(msg.doc, lr)
            raise RoomError(p.ErrorCode.ROOM_FULL, f"{msg.doc} has too many connections")
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
            )
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
        self.submit(lr, outcome, peer, t0, joined=True)

    def leave(self, peer: Peer, doc_id: str) -> None:
        peer.docs.pop(doc_id, None)
        lr = self.rooms.get(doc_id)
        if lr is None or lr.peers.get(peer.session) is not peer:
            return
        del lr.peers[peer.session]
        lr.audience.pop(peer.session, None)
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
        room = lr.room
        if room.seen(peer.client_id, msg.edit_id) is None and msg.version < lr.loaded_version:
            # made before this room was loaded: maybe applied by an earlier run of the server
            seq = await self.store.find_edit(msg.doc, peer.client_id, msg.edit_id)
            if seq is not None:
                room.remember((peer.client_id, msg.edit_id), seq)
            lr = self.joined(peer, msg.doc)  # still there after the await
        outcome = room.edit(peer.session, msg, self.now_ms())
        if outcome.persist is not None:
            self.edits_applied += 1
            self.metrics.edits.labels("thin").inc()
        self.submit(lr, outcome, peer, t0)

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
