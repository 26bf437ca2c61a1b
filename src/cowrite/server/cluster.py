"""The instances of one deployment, linked by the bus.

Each instance holds a replica of the documents its clients use. What instances tell each other,
on one bus channel per document (``doc:<id>``) and one for liveness (``instances``):

* ``UpdateNote``: an update this instance made durable, with the sequence number the Store gave
  it. Receivers merge it (CRDT merge: order and duplicates do not matter) and note the seq; a seq
  they never got (a dropped message, a Redis outage) shows as a gap in the seqs they hold, and
  they read the missing updates from the Store. The Store, not the bus, is the source of truth.
* ``PresenceNote``/``QueryNote``: members joining, leaving, moving their cursor (as element
  anchors, which mean the same on every replica); a query asks every instance for its members.
* ``ChatNote``: a stored chat message (or its edit/deletion), relayed to the members here.
* ``AwarenessNote``: a Yjs awareness update of clients connected to the sending instance (a Yjs
  document's presence); a query is answered with one holding the states of the clients here.
* ``AliveNote``/``ByeNote``: heartbeats; the members of an instance not heard from within
  ``instance_timeout_s`` (or that said bye) are dropped from every presence list.

Messages are msgpack (``msgspec``) arrays whose first element names the note ("update",
"presence", …: readable in ``redis-cli monitor``); an undecodable one is logged and ignored. (An
instance of a version that used one-letter tags ignores these and catches up from the Store, as
after any lost message, until it is upgraded too.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine
from typing import Any, Protocol

import msgspec

from cowrite.adapters.bus import Bus, BusClosed, Subscription
from cowrite.rooms.peers import PeerEntry

log = logging.getLogger("cowrite.cluster")

INSTANCES = "instances"


class UpdateNote(msgspec.Struct, tag="update", array_like=True):
    instance: int
    seq: int
    data: bytes


class PresenceNote(msgspec.Struct, tag="presence", array_like=True):
    instance: int
    entries: list[PeerEntry]
    left: list[str]


class QueryNote(msgspec.Struct, tag="query", array_like=True):
    instance: int


class ChatNote(msgspec.Struct, tag="chat", array_like=True):
    instance: int
    message: bytes
    """The ``chat`` server message, encoded as clients get it."""


class AwarenessNote(msgspec.Struct, tag="awareness", array_like=True):
    instance: int
    data: bytes
    """A Yjs awareness update of clients connected to ``instance`` (y-protocols encoding)."""


class AliveNote(msgspec.Struct, tag="alive", array_like=True):
    instance: int


class ByeNote(msgspec.Struct, tag="bye", array_like=True):
    instance: int


Note = UpdateNote | PresenceNote | QueryNote | ChatNote | AwarenessNote | AliveNote | ByeNote
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Note)


def decode_note(data: bytes) -> Note:
    """A bus message; raises msgspec.DecodeError/ValidationError for anything else."""
    note: Note = _decoder.decode(data)
    return note


def encode_note(note: Note) -> bytes:
    return _encoder.encode(note)


def doc_channel(doc_id: str) -> str:
    return f"doc:{doc_id}"


class Listener(Protocol):
    """What the cluster calls back (the hub)."""

    def on_update(self, doc_id: str, note: UpdateNote) -> None: ...

    def on_presence(self, doc_id: str, note: PresenceNote) -> None: ...

    def on_query(self, doc_id: str, note: QueryNote) -> None: ...

    def on_chat(self, doc_id: str, note: ChatNote) -> None: ...

    def on_awareness(self, doc_id: str, note: AwarenessNote) -> None: ...

    def on_instance_gone(self, instance: int) -> None: ...

    def on_bus_back(self) -> None: ...


class SeqSet:
    """The store sequence numbers a replica holds: all up to ``upto``, plus ``ahead``."""

    __slots__ = ("ahead", "upto")

    def __init__(self, upto: int = 0) -> None:
        self.upto = upto
        self.ahead: set[int] = set()

    def __contains__(self, seq: int) -> bool:
        return seq <= self.upto or seq in self.ahead

    def add(self, seq: int) -> bool:
        """Note ``seq``; False if it was already there."""
        if seq in self:
            return False
        self.ahead.add(seq)
        self._advance()
        return True

    def fill_to(self, seq: int) -> None:
        """Note every seq up to ``seq`` (a snapshot that covers them was merged)."""
        if seq > self.upto:
            self.upto = seq
            self.ahead = {s for s in self.ahead if s > seq}
            self._advance()

    def _advance(self) -> None:
        while self.upto + 1 in self.ahead:
            self.upto += 1
            self.ahead.discard(self.upto)

    @property
    def has_gap(self) -> bool:
        """Some seq below one held is missing."""
        return bool(self.ahead)


class Cluster:
    """This instance's end of the bus: subscriptions, heartbeats, liveness of the others."""

    def __init__(
        self,
        bus: Bus,
        instance: int,
        listener: Listener,
        *,
        heartbeat_s: float,
        timeout_s: float,
    ) -> None:
        self.bus = bus
        self.instance = instance
        self.listener = listener
        self.heartbeat_s = heartbeat_s
        self.timeout_s = timeout_s
        self.heard: dict[int, float] = {}
        """Other instances -> when (monotonic) they were last heard from."""
        self._subs: dict[str, Subscription] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self.dropped_seen = 0

    async def start(self) -> None:
        self._subs[INSTANCES] = await self.bus.subscribe(INSTANCES, self._on_message)
        self._heartbeat = asyncio.create_task(self._beat())
        callbacks = getattr(self.bus, "on_reconnect", None)
        if isinstance(callbacks, list):
            callbacks.append(self._reconnected)

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self._send(INSTANCES, ByeNote(self.instance))
        for sub in list(self._subs.values()):
            await sub.close()
        self._subs.clear()
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # ---------------------------------------------------------------- rooms

    async def attach(self, doc_id: str) -> None:
        """Receive ``doc_id``'s notes, and ask the others who is on it."""
        channel = doc_channel(doc_id)
        if channel not in self._subs:
            try:
                self._subs[channel] = await self.bus.subscribe(channel, self._on_message)
            except BusClosed:
                log.warning("bus unavailable: %s will catch up from the store", doc_id)
                return
        await self._send(channel, QueryNote(self.instance))

    async def detach(self, doc_id: str) -> None:
        sub = self._subs.pop(doc_channel(doc_id), None)
        if sub is not None:
            await sub.close()

    def publish(self, doc_id: str, note: Note) -> None:
        """Send ``note`` on the document's channel (in the background, best effort)."""
        self.spawn(self._send(doc_channel(doc_id), note))

    async def send(self, doc_id: str, note: Note) -> None:
        await self._send(doc_channel(doc_id), note)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, channel: str, note: Note) -> None:
        # lost: the others catch up from the store; presence is re-sent when the bus is back
        with contextlib.suppress(BusClosed):
            await self.bus.publish(channel, encode_note(note))

    # ------------------------------------------------------------- receiving

    async def _on_message(self, channel: str, data: bytes) -> None:
        try:
            note = decode_note(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            log.warning("undecodable bus message on %s", channel)
            return
        if note.instance == self.instance:
            return
        self.heard[note.instance] = time.monotonic()
        listener = self.listener
        try:
            if channel == INSTANCES:
                if isinstance(note, ByeNote):
                    self.heard.pop(note.instance, None)
                    listener.on_instance_gone(note.instance)
                return
            doc_id = channel.removeprefix("doc:")
            if isinstance(note, UpdateNote):
                listener.on_update(doc_id, note)
            elif isinstance(note, PresenceNote):
                listener.on_presence(doc_id, note)
            elif isinstance(note, QueryNote):
                listener.on_query(doc_id, note)
            elif isinstance(note, ChatNote):
                listener.on_chat(doc_id, note)
            elif isinstance(note, AwarenessNote):
                listener.on_awareness(doc_id, note)
        except Exception:
            log.exception("bus message handling failed", extra={"doc": channel})

    def expire(self) -> None:
        """Declare gone the instances not heard from within the timeout."""
        now = time.monotonic()
        for instance, heard in list(self.heard.items()):
            if now - heard > self.timeout_s:
                del self.heard[instance]
                log.warning("instance %x not heard from: dropping its members", instance)
                self.listener.on_instance_gone(instance)

    def dropped(self) -> int:
        """Messages the bus dropped for us so far (a slow subscriber): a reason to catch up."""
        return sum(sub.dropped for sub in self._subs.values())

    async def _beat(self) -> None:
        while True:
            await self._send(INSTANCES, AliveNote(self.instance))
            await asyncio.sleep(self.heartbeat_s)

    async def _reconnected(self) -> None:
        self.listener.on_bus_back()
