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
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from cowrite import protocol as p
from cowrite.adapters.store import ChatMessage, EditKey, NotFound, Store, StoreError
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
class LoadedRoom:
    room: Room
    loaded_version: int
    peers: dict[str, Peer] = field(default_factory=dict)
    queue: asyncio.Queue[tuple[Outcome, Peer | None, float]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    unload: asyncio.TimerHandle | None = None
    persisted: int = 0
    since_snapshot: int = 0


class Hub:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        now_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.now_ms = now_ms
        self.replica = secrets.randbits(63) + 1
        self.rooms: dict[str, LoadedRoom] = {}
        self._loading: dict[str, asyncio.Future[LoadedRoom]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self.edits_applied = 0
        self.started = time.monotonic()

    # ------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._tick_loop())

    async def close(self) -> None:
        """Drain every room's pipeline, snapshot it, and stop."""
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for doc_id in list(self.rooms):
            await self._unload(doc_id, force=True)

    # ----------------------------------------------------------------- rooms

    async def open_room(self, doc_id: str, *, create: bool) -> LoadedRoom:
        lr = self.rooms.get(doc_id)
        if lr is not None:
            if lr.unload is not None:
                lr.unload.cancel()
                lr.unload = None
            return lr
        pending = self._loading.get(doc_id)
        if pending is not None:
            return await pending
        fut: asyncio.Future[LoadedRoom] = asyncio.get_running_loop().create_future()
        self._loading[doc_id] = fut
        try:
            lr = await self._load(doc_id, create)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: the caller raises it
            raise
        finally:
            del self._loading[doc_id]
        fut.set_result(lr)
        return lr

    async def _load(self, doc_id: str, create: bool) -> LoadedRoom:
        stored = await self.store.load(doc_id)
        if stored is None:
            if not create:
                raise RoomError(p.ErrorCode.UNKNOWN_DOCUMENT, f"no document {doc_id!r}")
            await self.store.create_document(doc_id, title=doc_id, now_ms=self.now_ms())
            stored = await self.store.load(doc_id)
            assert stored is not None
        doc = (
            Document.load(stored.snapshot, self.replica)
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
        log.info("document loaded", extra={"doc": doc_id, "version": room.version})
        return lr

    def _schedule_unload(self, doc_id: str, lr: LoadedRoom) -> None:
        if lr.peers or lr.unload is not None:
            return
        loop = asyncio.get_running_loop()
        lr.unload = loop.call_later(
            self.settings.unload_after_s, lambda: asyncio.ensure_future(self._unload(doc_id))
        )

    async def _unload(self, doc_id: str, *, force: bool = False) -> None:
        lr = self.rooms.get(doc_id)
        if lr is None or (lr.peers and not force):
            return
        await lr.queue.join()
        if lr.since_snapshot:
            await self._snapshot(doc_id, lr)
        if lr.peers and not force:
            return
        if lr.task is not None:
            lr.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lr.task
        self.rooms.pop(doc_id, None)
        self.metrics.documents.set(len(self.rooms))
        log.info("document unloaded", extra={"doc": doc_id})

    async def _snapshot(self, doc_id: str, lr: LoadedRoom) -> None:
        """Rewrite the snapshot, but only of durable state (nothing applied and unpersisted)."""
        room = lr.room
        if room.version != lr.persisted:
            return
        state = room.doc.encode_state()
        try:
            await self.store.save_snapshot(doc_id, state, lr.persisted)
            lr.since_snapshot = 0
        except StoreError:
            log.exception("snapshot failed", extra={"doc": doc_id})

    # -------------------------------------------------------------- pipeline

    def submit(self, lr: LoadedRoom, outcome: Outcome, sender: Peer | None, t0: float) -> None:
        lr.queue.put_nowait((outcome, sender, t0))

    async def _pipeline(self, doc_id: str, lr: LoadedRoom) -> None:
        queue = lr.queue
        while True:
            batch = [await queue.get()]
            while not queue.empty():
                batch.append(queue.get_nowait())
            try:
                await self._persist(doc_id, lr, [o for o, _, _ in batch if o.persist is not None])
                for outcome, sender, t0 in batch:
                    self._fanout(lr, outcome, sender, t0)
            except Exception:
                log.exception("room pipeline failed", extra={"doc": doc_id})
            finally:
                for _ in batch:
                    queue.task_done()
            if lr.since_snapshot >= self.settings.snapshot_every and queue.empty():
                await self._snapshot(doc_id, lr)

    async def _persist(self, doc_id: str, lr: LoadedRoom, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        delay = 0.05
        while True:
            try:
                now = self.now_ms()
                seqs = await asyncio.gather(
                    *[
                        self.store.append_update(
                            doc_id,
                            o.persist or b"",
                            edit_keys=[EditKey(c, e) for c, e in o.edit_keys],
                            now_ms=now,
                        )
                        for o in outcomes
                    ]
                )
                break
            except StoreError:
                # not durable, so not acknowledged: keep trying; clients see no ack meanwhile
                log.exception("store write failed; retrying", extra={"doc": doc_id})
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
        for o, seq in zip(outcomes, seqs, strict=True):
            if seq != o.version:
                log.error(
                    "log sequence mismatch", extra={"doc": doc_id, "seq": seq, "version": o.version}
                )
        lr.persisted = max(lr.persisted, seqs[-1])
        lr.since_snapshot += len(outcomes)

    def _fanout(self, lr: LoadedRoom, outcome: Outcome, sender: Peer | None, t0: float) -> None:
        encode = p.encoder.encode
        if sender is not None and outcome.reply:
            for msg in outcome.reply:
                sender.send(encode(msg))
            if outcome.persist is not None:
                self.metrics.edit_ack.observe(time.monotonic() - t0)
        if not outcome.broadcast:
            return
        doc_id = lr.room.doc_id
        for msg, audience in outcome.broadcast:
            data = encode(msg)
            for peer in list(lr.peers.values()):
                if peer is sender:
                    continue
                if audience == "all" or peer.docs.get(doc_id) == audience:
                    peer.send(data)
        if outcome.persist is not None:
            self.metrics.edit_broadcast.observe(time.monotonic() - t0)

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            now = self.now_ms()
            for lr in list(self.rooms.values()):
                outcome = lr.room.tick(now)
                if outcome.broadcast:
                    self.submit(lr, outcome, None, time.monotonic())

    # ------------------------------------------------------------ operations

    async def join(self, peer: Peer, msg: p.Join) -> None:
        rights = peer.identity.rights(msg.doc)
        if "read" not in rights:
            raise RoomError(p.ErrorCode.FORBIDDEN, f"no access to {msg.doc}")
        if msg.create and "write" not in rights:
            raise RoomError(p.ErrorCode.FORBIDDEN, f"no right to create {msg.doc}")
        lr = await self.open_room(msg.doc, create=msg.create)
        if (
            peer.session not in lr.peers
            and len(lr.peers) >= self.settings.max_connections_per_document
        ):
            self._schedule_unload(msg.doc, lr)
            raise RoomError(p.ErrorCode.ROOM_FULL, f"{msg.doc} has too many connections")
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
        if peer.session in lr.room.members:  # a rejoin keeps the user's presence fields
            member.user = lr.room.members[peer.session].user
        outcome = lr.room.join(member, msg, [_chat(m) for m in reversed(history)])
        lr.peers[peer.session] = peer
        peer.docs[msg.doc] = msg.mode
        self.submit(lr, outcome, peer, time.monotonic())

    def leave(self, peer: Peer, doc_id: str) -> None:
        peer.docs.pop(doc_id, None)
        lr = self.rooms.get(doc_id)
        if lr is None or lr.peers.pop(peer.session, None) is None:
            return
        self.submit(lr, lr.room.leave(peer.session), None, time.monotonic())
        self._schedule_unload(doc_id, lr)

    def joined(self, peer: Peer, doc_id: str) -> LoadedRoom:
        lr = self.rooms.get(doc_id)
        if lr is None or peer.session not in lr.peers:
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
        stored = await self.store.add_chat(
            msg.doc,
            author_id=peer.identity.user_id,
            author_name=member.user.name,
            text=msg.text,
            now_ms=self.now_ms(),
        )
        self._chat_out(lr, peer, stored)

    async def chat_edit(self, peer: Peer, msg: p.ChatEdit) -> None:
        lr = self._chatter(peer, msg.doc)
        stored = await self._chat_call(
            self.store.edit_chat(
                msg.doc,
                msg.id,
                author_id=peer.identity.user_id,
                text=msg.text,
                now_ms=self.now_ms(),
            )
        )
        self._chat_out(lr, peer, stored)

    async def chat_delete(self, peer: Peer, msg: p.ChatDelete) -> None:
        lr = self._chatter(peer, msg.doc)
        stored = await self._chat_call(
            self.store.delete_chat(
                msg.doc, msg.id, author_id=peer.identity.user_id, now_ms=self.now_ms()
            )
        )
        self._chat_out(lr, peer, stored)

    async def chat_history(self, peer: Peer, msg: p.ChatHistory) -> None:
        self.joined(peer, msg.doc)
        page = await self.store.chat_history(msg.doc, before=msg.before, limit=msg.limit + 1)
        more = len(page) > msg.limit
        out = p.ChatPage(doc=msg.doc, messages=[_chat(m) for m in page[: msg.limit]], has_more=more)
        peer.send(p.encoder.encode(out))

    async def _chat_call(self, call: object) -> ChatMessage:
        from cowrite.adapters.store import Forbidden

        try:
            return await call  # type: ignore[no-any-return, misc]
        except NotFound as exc:
            raise RoomError(p.ErrorCode.NOT_FOUND, str(exc)) from None
        except Forbidden as exc:
            raise RoomError(p.ErrorCode.FORBIDDEN, str(exc)) from None

    def _chatter(self, peer: Peer, doc_id: str) -> LoadedRoom:
        lr = self.joined(peer, doc_id)
        if "chat" not in lr.room.members[peer.session].rights:
            raise RoomError(p.ErrorCode.FORBIDDEN, f"no chat right on {doc_id}")
        return lr

    def _chat_out(self, lr: LoadedRoom, peer: Peer, stored: ChatMessage) -> None:
        msg = p.Chat(doc=lr.room.doc_id, message=_chat(stored))
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
