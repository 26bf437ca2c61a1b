"""The hub's operations on Yjs documents (a part of ``Hub``): open, leave, chat, awareness.

A Yjs connection (``yjs_connection.py``) runs its dialect session and hands what it asks for to
the room's pipeline as ``Outcome``\\ s (``YjsRoom.persisted``, frames for one or all connections):
the same registry, pipeline, store, bus and replication as a native document. What is Yjs-only is
here: checking the kind, members keyed by connection and address, awareness over the bus, and
chat carried in Hocuspocus stateless messages (``cowrite.chat.*``, docs/yjs.md).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from cowrite import protocol as p
from cowrite.adapters.store import NotFound, Store, StoreError
from cowrite.rooms.state import Outcome, RoomError
from cowrite.rooms.yjs_room import YjsRoom
from cowrite.server.chat import chat_message
from cowrite.server.cluster import AwarenessNote, ChatNote, Cluster, QueryNote
from cowrite.server.config import Settings
from cowrite.server.hooks import ChatPosted, Hooks, Stateless
from cowrite.server.metrics import Metrics

if TYPE_CHECKING:
    from cowrite.server.pipeline import Peer
    from cowrite.server.registry import LoadedRoom

log = logging.getLogger("cowrite.hub")

CHAT_HISTORY = 50
"""Chat messages a connection gets when it attaches."""
MAX_CHAT_CHARS = 10_000


class YjsRooms:
    """The hub's Yjs side (a part of ``Hub``: it declares what it uses of the others)."""

    store: Store
    settings: Settings
    metrics: Metrics
    now_ms: Callable[[], int]
    replica: int
    cluster: Cluster | None
    rooms: dict[str, LoadedRoom]
    hooks: Hooks

    if TYPE_CHECKING:

        async def open_room(
            self, doc_id: str, *, create: bool, kind: str = "crdt"
        ) -> LoadedRoom: ...

        def submit(
            self, lr: LoadedRoom, outcome: Outcome, sender: Peer | None, t0: float
        ) -> None: ...

        def _schedule_unload(self, doc_id: str, lr: LoadedRoom) -> None: ...

    async def yjs_open(self, member: Peer, document: str, *, write: bool) -> YjsRoom:
        """Load (or, with ``write``, create) the Yjs document and make ``member`` one of its
        connections. Raises RoomError ``unknown_document``, ``forbidden`` (a document of
        another kind), ``room_full``, ``too_many_documents``."""
        lr = await self.open_room(document, create=write, kind="yjs")
        room = lr.room
        if not isinstance(room, YjsRoom):
            self._schedule_unload(document, lr)
            raise RoomError(p.ErrorCode.FORBIDDEN, "not a Yjs document")
        if len(lr.membership) >= self.settings.max_connections_per_document:
            self._schedule_unload(document, lr)
            raise RoomError(p.ErrorCode.ROOM_FULL, f"{document} has too many connections")
        lr.membership.add(member)
        return room

    def yjs_room(self, member: Peer, document: str) -> tuple[LoadedRoom, YjsRoom] | None:
        """The room ``member`` is a connection of (None once it left or the room unloaded)."""
        lr = self.rooms.get(document)
        if lr is None or not lr.membership.has(member):
            return None
        room = lr.room
        return (lr, room) if isinstance(room, YjsRoom) else None

    def yjs_leave(self, member: Peer, document: str) -> None:
        lr = self.rooms.get(document)
        if lr is None or not lr.membership.remove(member):
            return
        if isinstance(lr.room, YjsRoom):
            lr.room.detach(member.session)
        self._schedule_unload(document, lr)

    def yjs_awareness_out(self, document: str, update: bytes) -> None:
        """Awareness of clients here, for the other instances."""
        if self.cluster is not None:
            self.cluster.publish(document, AwarenessNote(self.replica, update))

    # --- chat over stateless messages ----------------------------------------------------------

    async def yjs_stateless(self, member: Peer, document: str, payload: str) -> None:
        """A Hocuspocus stateless message: ``cowrite.chat.send`` is stored and relayed to every
        connection of the document; anything else goes to the ``on_stateless`` hooks, or (none)
        gets a ``cowrite.error``."""
        try:
            msg = json.loads(payload)
        except ValueError:
            msg = None
        chat = isinstance(msg, dict) and str(msg.get("type", "")).startswith("cowrite.chat.")
        if not chat and self.hooks.wants("on_stateless"):
            event = Stateless(
                document,
                member.session,
                member.identity.user_id,
                payload,
                lambda out: self._yjs_reply(member, document, out),
            )
            self.hooks.notify("on_stateless", event, document)
            return
        if not isinstance(msg, dict) or msg.get("type") != "cowrite.chat.send":
            self._yjs_error(member, document, "bad_message", "unknown stateless message")
            return
        text, name = msg.get("text"), msg.get("name", "")
        if not isinstance(text, str) or not 0 < len(text) <= MAX_CHAT_CHARS:
            self._yjs_error(member, document, "bad_message", f"text: 1-{MAX_CHAT_CHARS} characters")
            return
        identity = member.identity
        if "chat" not in identity.rights(document):
            self._yjs_error(member, document, "forbidden", f"no chat right on {document}")
            return
        if identity.authenticated or not isinstance(name, str):
            name = identity.name
        try:
            stored = await self.store.add_chat(
                document,
                author_id=identity.user_id,
                author_name=(name.strip()[:100] or "Anonymous"),
                text=text,
                now_ms=self.now_ms(),
            )
        except NotFound:
            self._yjs_error(member, document, "unknown_document", f"{document} no longer exists")
            return
        except StoreError:
            self._yjs_error(member, document, "unavailable", "storage is unavailable: try again")
            return
        found = self.yjs_room(member, document)
        if found is None:
            return
        out = p.Chat(doc=document, message=chat_message(stored))
        self.hooks.notify("on_chat", ChatPosted(document, out.message), document)
        if self.cluster is not None:
            self.cluster.publish(document, ChatNote(self.replica, p.encoder.encode(out)))
        self._yjs_chat_out(found[0], found[1], out.message)

    def _yjs_chat_out(self, lr: LoadedRoom, room: YjsRoom, message: p.ChatMessage) -> None:
        payload = _payload({"type": "cowrite.chat", "message": message})
        self.submit(lr, Outcome(frames=room.stateless_frames(payload)), None, time.monotonic())

    async def yjs_chat_history(self, member: Peer, document: str) -> None:
        """The last messages, for a connection that just attached (Hocuspocus)."""
        page = await self.store.chat_history(document, limit=CHAT_HISTORY + 1)
        found = self.yjs_room(member, document)
        if found is None:
            return
        lr, room = found
        attachment = room.attached.get(member.session)
        if attachment is None or attachment.stateless_frame is None:
            return
        messages = [chat_message(m) for m in reversed(page[:CHAT_HISTORY])]
        payload = _payload(
            {
                "type": "cowrite.chat.history",
                "messages": messages,
                "has_more": len(page) > CHAT_HISTORY,
            }
        )
        frame = attachment.stateless_frame(payload)
        self.submit(lr, Outcome(frames=[(member, frame)]), None, time.monotonic())

    def _yjs_error(self, member: Peer, document: str, code: str, message: str) -> None:
        self._yjs_reply(
            member, document, _payload({"type": "cowrite.error", "code": code, "message": message})
        )

    def _yjs_reply(self, member: Peer, document: str, payload: str) -> None:
        """A stateless message for ``member`` alone (dropped once it left)."""
        found = self.yjs_room(member, document)
        if found is None:
            return
        attachment = found[1].attached.get(member.session)
        if attachment is not None and attachment.stateless_frame is not None:
            member.send(attachment.stateless_frame(payload))

    # --- listener (cluster.py) -----------------------------------------------------------------

    def on_awareness(self, doc_id: str, note: AwarenessNote) -> None:
        lr = self.rooms.get(doc_id)
        if lr is None or not isinstance(lr.room, YjsRoom):
            return
        try:
            outcome = lr.room.merge_awareness(note.instance, note.data, self.now_ms())
        except RoomError as exc:
            log.warning("awareness from %x refused: %s", note.instance, exc.message)
            return
        if outcome.frames:
            self.submit(lr, outcome, None, time.monotonic())

    def _yjs_on_query(self, doc_id: str, lr: LoadedRoom, note: QueryNote) -> bool:
        """Answer another instance's query with the awareness of clients here; False for a
        room of another kind."""
        if not isinstance(lr.room, YjsRoom):
            return False
        update = lr.room.local_awareness()
        if update is not None and self.cluster is not None:
            self.cluster.publish(doc_id, AwarenessNote(self.replica, update))
        return True

    def _yjs_on_chat(self, lr: LoadedRoom, note: ChatNote) -> bool:
        """Relay another instance's chat message; False for a room of another kind."""
        room = lr.room
        if not isinstance(room, YjsRoom):
            return False
        try:
            msg = msgspec.json.decode(note.message, type=p.Chat)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return True
        self._yjs_chat_out(lr, room, msg.message)
        return True


def _payload(value: dict[str, Any]) -> str:
    return msgspec.json.encode(value).decode()
