"""The hub: the operations on rooms (join, leave, edit, sync, presence, chat), over its parts.

A connection (``connection.py``) or REST (``rest.py``) calls an operation here; it checks rights
and limits, runs the room input (sans-I/O, ``rooms/room.py``), and submits the ``Outcome`` to the
room's pipeline (``pipeline.py``), which persists it and then sends the acks and broadcasts. Rooms
are loaded and unloaded by the registry (``registry.py``); in a cluster, other instances' updates
come in through ``replication.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

import msgspec

from cowrite import protocol as p
from cowrite.adapters.bus import Bus
from cowrite.adapters.store import ChatMessage, Forbidden, NotFound, Store, StoreError
from cowrite.rooms.room import Member, Outcome, Room, RoomError
from cowrite.server.chat import chat_message
from cowrite.server.cluster import ChatNote, Cluster
from cowrite.server.config import Settings
from cowrite.server.exactly_once import ExactlyOnce
from cowrite.server.history import reconnect_ready
from cowrite.server.hooks import ChatPosted, Hooks
from cowrite.server.metrics import Metrics
from cowrite.server.permissions import Permissions
from cowrite.server.pipeline import Job, Peer, Pipeline
from cowrite.server.registry import (
    SNAPSHOT_FORCE_FACTOR,
    SNAPSHOT_QUIET_S,
    LoadedRoom,
    Registry,
)
from cowrite.server.replication import GAP_GRACE_S, Replication
from cowrite.server.ticks import TickSchedule
from cowrite.server.tracing import Tracing
from cowrite.server.yjs_rooms import YjsRooms

__all__ = [
    "GAP_GRACE_S",
    "SNAPSHOT_FORCE_FACTOR",
    "SNAPSHOT_QUIET_S",
    "Hub",
    "Job",
    "LoadedRoom",
    "Peer",
]

log = logging.getLogger("cowrite.hub")

TICK_S = 1.0
"""Seconds between two ticks: the resolution of the rooms' timers."""
TICK_MS = int(TICK_S * 1000)
RECONCILE_EVERY_TICKS = 10
"""Seconds between two reads of the store log by a clustered room (a lost last message)."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class Hub(Registry, Pipeline, Replication, YjsRooms):
    """The rooms of one server process and every operation on them.

    Its parts, one concept each: ``Registry`` (loaded rooms, ``registry.py``), ``Pipeline``
    (the ordered durable queue per room, ``pipeline.py``), ``Replication`` (other instances,
    ``replication.py``); this module holds the operations a connection calls.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        metrics: Metrics,
        now_ms: Callable[[], int] = wall_ms,
        bus: Bus | None = None,
        *,
        cluster: bool = False,
        hooks: Hooks | None = None,
    ) -> None:
        self.store = store
        self.hooks = hooks if hooks is not None else Hooks([], metrics.registry)
        """The application's lifecycle hooks (``hooks.py``)."""
        self.permissions = Permissions(bus)
        """Rights ceilings set by administrators, on every instance (``permissions.py``)."""
        self.bus = bus
        self.settings = settings
        self.metrics = metrics
        self.now_ms = now_ms
        self.clock: Callable[[], float] = time.monotonic
        """Monotonic seconds for the connections' rate limits (tests set their own)."""
        self.replica = secrets.randbits(63) + 1
        self.rooms: dict[str, LoadedRoom] = {}
        self._loading: dict[str, asyncio.Future[LoadedRoom]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._ticks = TickSchedule()
        """The rooms with a timer due, by due time: what the tick visits."""
        self._unloads: set[asyncio.Task[None]] = set()
        self._held: set[asyncio.Task[None]] = set()
        """Edits waiting for the store to tell whether they were applied before."""
        self.exactly_once = ExactlyOnce(self)
        self.tracing = Tracing()
        """Spans (``tracing.py``): off unless the app turns them on."""
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

    async def _tick_loop(self) -> None:
        ticks = 0
        dropped = 0
        while True:
            await asyncio.sleep(TICK_S)
            ticks += 1
            self._tick_rooms(self.now_ms())
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

    def _tick_rooms(self, now: int) -> None:
        """Run the timers of the rooms that have one due (``ticks.py``), and put each back at
        its next due time."""
        for doc_id in self._ticks.pop_due(now):
            lr = self.rooms.get(doc_id)
            if lr is None:
                continue  # unloaded since
            try:
                # (``Pipeline.submit``: what a tick sends does not make the room due again)
                outcome = lr.room.tick(now)
                if outcome.sends:
                    super().submit(lr, outcome, None, time.monotonic())
                if self._snapshot_due(lr) and lr.inflight == 0:  # went quiet since
                    super().submit(lr, Outcome(), None, time.monotonic())  # the pipeline takes it
                due = self._tick_due(lr, now)
            except Exception:
                log.exception("room tick failed", extra={"doc": doc_id})
                due = now + TICK_MS
            if due is not None:
                self._ticks.at(doc_id, due)

    def _tick_due(self, lr: LoadedRoom, now: int) -> int | None:
        """When ``lr`` next needs a tick (wall ms; None: not before its next input): its room's
        timers, and the snapshot that waits for the room to be quiet."""
        room_due: Callable[[], int | None] | None = getattr(lr.room, "tick_due_ms", None)
        due = now + TICK_MS if room_due is None else room_due()  # a kind that cannot tell: each
        if self._log_long(lr) or self._compaction_due(lr):
            quiet_in = lr.last_write + SNAPSHOT_QUIET_S - time.monotonic()
            quiet = now + max(0, int(quiet_in * 1000))
            due = quiet if due is None else min(due, quiet)
        return due

    async def _load(self, doc_id: str, create: bool, kind: str) -> LoadedRoom:
        lr = await super()._load(doc_id, create, kind)
        self._ticks.wake(doc_id)  # the next tick looks at a fresh room (a long log's snapshot)
        return lr

    def submit(self, lr: LoadedRoom, outcome: Outcome, *args: Any, **kwargs: Any) -> None:
        """``Pipeline.submit``, and the room visited at the next tick (an input may have set a
        timer: an active member's idle time, a checksum that waits for quiet, an awareness
        state's expiry)."""
        self._ticks.wake(lr.room.doc_id)
        super().submit(lr, outcome, *args, **kwargs)

    # ------------------------------------------------------------ operations

    async def join(self, peer: Peer, msg: p.Join) -> None:
        """Join (or rejoin) ``msg.doc``: the ``joined`` reply, then the room's broadcasts.

        Raises RoomError: ``forbidden``, ``unknown_document``, ``room_full``, ``bad_message``.
        """
        with self.tracing.span("cowrite.join", doc=msg.doc, session=peer.session):
            await self._join(peer, msg)

    async def _join(self, peer: Peer, msg: p.Join) -> None:
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
        members = lr.membership
        if not members.has(peer) and len(members) >= self.settings.max_connections_per_document:
            self._schedule_unload(msg.doc, lr)
            raise RoomError(p.ErrorCode.ROOM_FULL, f"{msg.doc} has too many connections")
        if members.is_joining(peer.session):
            raise RoomError(p.ErrorCode.RATE_LIMITED, f"a join of {msg.doc} is on its way")
        # hold the place (and keep the room loaded) while the chat loads; no broadcasts until
        # the ``joined`` goes out (``_fanout``)
        hold = members.hold(peer)
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
            if isinstance(lr.crdt, Room):  # its changes since the client's state: index ready
                await reconnect_ready(lr.crdt, msg)
            previous = lr.crdt.members.get(peer.session)
            if previous is not None:  # a rejoin keeps the user's presence fields
                member.user = previous.user
            outcome = lr.crdt.join(member, msg, [chat_message(m) for m in reversed(history)])
        except BaseException:
            if lr.membership.release(hold):
                self._schedule_unload(msg.doc, lr)
            raise
        peer.entered(msg.doc, msg.mode)
        lr.check_store.add(peer.session)
        if lr.saving_pending:
            peer.send(p.encoder.encode(p.Saving(doc=msg.doc, pending=True)))
        lr.membership.admit(peer, msg.mode)
        self.submit(lr, outcome, peer, t0, joined=True)

    def leave(self, peer: Peer, doc_id: str) -> None:
        peer.left(doc_id)
        lr = self.rooms.get(doc_id)
        if lr is None or not lr.membership.has(peer):
            return
        if not isinstance(lr.room, Room):
            self.yjs_leave(peer, doc_id)
            return
        lr.membership.remove(peer)
        lr.check_store.discard(peer.session)
        self.submit(lr, lr.crdt.leave(peer.session), None, time.monotonic())
        self._schedule_unload(doc_id, lr)

    def joined(self, peer: Peer, doc_id: str) -> LoadedRoom:
        lr = self.rooms.get(doc_id)
        if lr is None or not lr.membership.has(peer):
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

    def edit_ready(self, peer: Peer, msg: p.Edit) -> LoadedRoom | None:
        """The room ``edit_now`` may take ``msg`` into (None: ``edit`` must): its sender is in
        the room, and the room alone can tell whether the edit is new (no store lookup, nearly
        every edit). No side effect."""
        lr = self.rooms.get(msg.doc)
        if lr is None or not lr.membership.has(peer) or peer.session in lr.check_store:
            return None
        return None if self.exactly_once.must_ask_store(lr, peer, msg, False) else lr

    def edit_now(self, peer: Peer, msg: p.Edit, lr: LoadedRoom) -> None:
        """``edit`` without a coroutine, for an edit ``edit_ready`` accepted into ``lr`` (the
        connection handles it where the socket read it)."""
        self._apply_edit(peer, msg, time.monotonic(), lr)

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

    def _apply_edit(self, peer: Peer, msg: p.Edit, t0: float, lr: LoadedRoom | None = None) -> None:
        if lr is None:
            lr = self.joined(peer, msg.doc)
        outcome = lr.crdt.edit(peer.session, msg, self.now_ms())
        trace = None
        if outcome.persist is not None:
            self.edits_applied += 1
            self.metrics.edits_thin.inc()
            if self.tracing.enabled:  # (off: not even the call)
                trace = self.tracing.start("cowrite.edit", doc=msg.doc, session=peer.session)
        self.submit(lr, outcome, peer, t0, trace=trace)

    async def sync(self, peer: Peer, msg: p.Sync) -> None:
        t0 = time.monotonic()
        lr = self.joined(peer, msg.doc)
        outcome = lr.crdt.sync(peer.session, msg, self.now_ms())
        trace = None
        if outcome.persist is not None:
            self.edits_applied += 1
            self.metrics.edits_replica.inc()
            if self.tracing.enabled:  # (off: not even the call)
                trace = self.tracing.start("cowrite.edit", doc=msg.doc, session=peer.session)
        self.submit(lr, outcome, peer, t0, trace=trace)

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
        self.submit(lr, lr.crdt.presence(peer.session, msg, self.now_ms()), peer, time.monotonic())

    async def chat_send(self, peer: Peer, msg: p.ChatSend) -> None:
        lr = self._chatter(peer, msg.doc)
        member = lr.crdt.members[peer.session]
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
        out = p.ChatPage(
            doc=msg.doc, messages=[chat_message(m) for m in page[: msg.limit]], has_more=more
        )
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
        lr.crdt.chatter(peer.session)
        return lr

    def _chat_out(self, peer: Peer, doc_id: str, stored: ChatMessage) -> None:
        lr = self.joined(peer, doc_id)  # still there after the store's await
        msg = p.Chat(doc=doc_id, message=chat_message(stored))
        self.hooks.notify("on_chat", ChatPosted(doc_id, msg.message), doc_id)
        if self.cluster is not None:
            self.cluster.publish(doc_id, ChatNote(self.replica, p.encoder.encode(msg)))
        outcome = lr.crdt.chat(peer.session, msg)  # a room input like any other
        outcome.broadcast.extend(lr.crdt.touch(peer.session, self.now_ms()).broadcast)
        self.submit(lr, outcome, peer, time.monotonic())
