"""The Yjs kind (``"yjs"``): a Yjs document held with pycrdt, behind the document-kind seam.

A ``YjsRoom`` is what the registry, the pipeline and replication see of a loaded Yjs document
(``DocumentRoom``, ``rooms/kind.py``). Its state is the ``SharedDoc`` every connection's dialect
session (``cowrite.yjs.session``) applies client updates to; the room turns what a session asks
for into ``Outcome``\\ s: an update to persist, and the frames to send once it is durable, one per
attached connection (each dialect encodes its own frames: a Hocuspocus one names its address).

Awareness is presence: states of clients on other instances arrive through the bus
(``merge_awareness``), are relayed to the connections here, and are removed when their instance
goes away (``drop_instance``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from cowrite import protocol as p
from cowrite.rooms.history import VersionNote
from cowrite.rooms.peers import PeerEntry
from cowrite.rooms.state import FrameSink, Outcome, RoomError, RoomLimits
from cowrite.rooms.yjs_history import YjsHistory, unwrap
from cowrite.yjs import AwarenessTable, DocumentLimits, SharedDoc, YjsDocument, YjsProtocolError
from cowrite.yjs.awareness import decode_update

log = logging.getLogger("cowrite.hub")


@dataclass(eq=False, slots=True)
class Attachment:
    """One connection's stream of one Yjs document (a y-websocket socket, or one address of a
    Hocuspocus socket): where the room's frames for it go, and how its dialect encodes them."""

    key: str
    """Unique in the room (the connection's session, plus the Hocuspocus address)."""
    sink: FrameSink
    update_frame: Callable[[bytes], bytes]
    awareness_frame: Callable[[bytes], bytes]
    stateless_frame: Callable[[str], bytes] | None = None
    """Hocuspocus only: y-websocket has no stateless messages."""
    dialect_key: Hashable = None
    """Attachments with equal keys get byte-identical frames (same dialect and address): a
    frame is encoded once per key, not once per connection. None: never shared."""


class _Group(NamedTuple):
    """Attachments that get byte-identical frames (one ``dialect_key``)."""

    update_frame: Callable[[bytes], bytes]
    awareness_frame: Callable[[bytes], bytes]
    members: list[tuple[str, FrameSink]]
    """(attachment key, sink), in attachment order."""


class YjsRoom:
    """One loaded Yjs document and the connections attached to it (sans-I/O)."""

    def __init__(
        self, doc_id: str, doc: YjsDocument, version: int, now_ms: Callable[[], int] = lambda: 0
    ) -> None:
        self.doc_id = doc_id
        self._now_ms = now_ms
        self.epoch = ""
        self.shared = SharedDoc(doc, AwarenessTable())
        self._version = version
        self.attached: dict[str, Attachment] = {}
        self._groups: list[_Group] | None = None
        """``attached`` by ``dialect_key`` (built on first use after a change)."""
        self._remote_clients: dict[int, set[int]] = {}
        """Awareness client ids by the instance whose connections own them."""
        self.history_floor = 0
        """Versions before this seq are no longer replayable (``rooms/yjs_history.py``)..."""
        self.checkpoints: frozenset[int] = frozenset()
        """...except these (named ones), as of the last snapshot this instance read or wrote."""
        self.pins: set[int] = set()
        """Versions being named here: the next snapshot keeps them whatever the store says."""

    def history_read(self, history: YjsHistory) -> None:
        """Note what a stored snapshot's history keeps (for ``available`` in listings)."""
        self.history_floor = history.base_seq
        self.checkpoints = frozenset(history.checkpoints)

    def available(self, seq: int) -> bool:
        """Version ``seq``'s value can be recomputed (as far as this room knows)."""
        return seq == 0 or seq >= self.history_floor or seq in self.checkpoints

    # --- the seam ------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    @property
    def remote(self) -> Mapping[str, object]:
        return {}  # members elsewhere are awareness states, not sessions

    def load_update(self, seq: int, data: bytes) -> None:
        try:
            self.shared.doc.merge_update(data)
        except YjsProtocolError as exc:
            log.error(
                "unreadable stored Yjs update %d skipped: %s", seq, exc, extra={"doc": self.doc_id}
            )
        self._version = max(self._version, seq)

    def merge_update(self, data: bytes) -> Outcome:
        try:
            self.shared.doc.merge_update(data)
        except YjsProtocolError as exc:
            raise RoomError(p.ErrorCode.BAD_MESSAGE, f"not a Yjs update: {exc}") from None
        self._version += 1
        return Outcome(frames=self.update_frames(data, None))

    def merge_snapshot(self, snapshot: bytes) -> Outcome | None:
        doc = self.shared.doc
        before = doc.state_vector()
        try:
            state, history = unwrap(snapshot, 0)
            doc.merge_update(state)
        except (ValueError, YjsProtocolError):
            return None
        if history.base_seq > self.history_floor:
            self.history_read(history)
        return Outcome(frames=self.update_frames(doc.diff(before), None))

    def encode_snapshot(self, history_kept_ops: int) -> bytes:
        return self.shared.doc.encode_snapshot()

    def compaction_due(self, history_kept_ops: int) -> bool:
        return False  # a snapshot is the document's own encoding: the log folds into it

    def tick(self, now_ms: int) -> Outcome:
        removal = self.shared.awareness.expire(now_ms / 1000)
        return Outcome(frames=self.awareness_frames(removal)) if removal else Outcome()

    def tick_due_ms(self) -> int | None:
        """When ``tick`` next has something to do: an awareness state's expiry (wall ms)."""
        at = self.shared.awareness.expires_at()
        return None if at is None else math.ceil(at * 1000)

    def peer_entries(self, sessions: list[str] | None = None) -> list[PeerEntry]:
        return []  # awareness travels as awareness updates (``local_awareness``)

    def merge_presence(self, instance: int, entries: list[PeerEntry], left: list[str]) -> Outcome:
        return Outcome()

    def drop_instance(self, instance: int) -> Outcome:
        ids = self._remote_clients.pop(instance, set())
        removal = self.shared.awareness.remove_clients(ids, self._now_ms() / 1000)
        return Outcome(frames=self.awareness_frames(removal)) if removal else Outcome()

    # --- connections ---------------------------------------------------------------------------

    def attach(self, attachment: Attachment) -> None:
        self.attached[attachment.key] = attachment
        self._groups = None

    def detach(self, key: str) -> None:
        if self.attached.pop(key, None) is not None:
            self._groups = None

    def _grouped(self) -> list[_Group]:
        """The attachments by ``dialect_key`` (one group each for a None key), each group
        with its first attachment's encoders; kept until the next attach or detach."""
        groups: list[_Group] = []
        shared: dict[Hashable, _Group] = {}
        for key, a in self.attached.items():
            group = None if a.dialect_key is None else shared.get(a.dialect_key)
            if group is None:
                group = _Group(a.update_frame, a.awareness_frame, [])
                groups.append(group)
                if a.dialect_key is not None:
                    shared[a.dialect_key] = group
            group.members.append((key, a.sink))
        self._groups = groups
        return groups

    def persisted(
        self,
        update: bytes,
        author: tuple[str, str] | None = None,
        now_ms: int = 0,
        *,
        how: str = "typed",
        restored_from: int | None = None,
    ) -> Outcome:
        """The outcome of an update applied to ``shared.doc`` (by a session, a server edit or
        a restore): the caller submits it to the pipeline, which stores it, then sends it.

        ``author`` (user id, name) makes it a version in the history (``rooms/history.py``:
        every stored Yjs update is one; ``how`` it came about; its size is the update's bytes;
        it has no version vector: its value is replayed from the stored log,
        ``rooms/yjs_history.py``)."""
        self._version += 1
        note = None
        if author is not None:
            note = VersionNote(
                {},
                now_ms,
                author[0],
                author[1],
                how=how,
                size=len(update),
                restored_from=restored_from,
            )
        return Outcome(persist=update, version=self._version, note=note)

    def update_frames(self, update: bytes, origin: str | None) -> list[tuple[FrameSink, bytes]]:
        """``update`` for every attached connection but ``origin``'s, encoded once per
        ``dialect_key`` (this runs for every update: one loop, no call per receiver)."""
        out: list[tuple[FrameSink, bytes]] = []
        for encode, _, members in self._groups or self._grouped():
            frame = encode(update)
            out += [(sink, frame) for key, sink in members if key != origin]
        return out

    def awareness_frames(self, update: bytes) -> list[tuple[FrameSink, bytes]]:
        """An awareness update for every attached connection, its sender's too (as the
        y-websocket and Hocuspocus servers do: a client alone hears its own renewals, which
        keep its provider from taking the connection for dead)."""
        out: list[tuple[FrameSink, bytes]] = []
        for _, encode, members in self._groups or self._grouped():
            frame = encode(update)
            out += [(sink, frame) for _, sink in members]
        return out

    def stateless_frames(self, payload: str) -> list[tuple[FrameSink, bytes]]:
        return [
            (a.sink, a.stateless_frame(payload))
            for a in self.attached.values()
            if a.stateless_frame is not None
        ]

    # --- awareness across instances ------------------------------------------------------------

    def merge_awareness(self, instance: int, data: bytes, now_ms: int) -> Outcome:
        """Awareness of clients connected to ``instance``; raises RoomError for bad bytes."""
        table = self.shared.awareness
        try:
            entries = decode_update(data, table.limits)
            change = table.apply(entries, None, now_ms / 1000)
        except YjsProtocolError as exc:
            raise RoomError(p.ErrorCode.BAD_MESSAGE, f"awareness: {exc}") from None
        mine = self._remote_clients.setdefault(instance, set())
        for e in entries:
            if e.state is not None and e.client_id in change.added + change.updated:
                for other in self._remote_clients.values():
                    other.discard(e.client_id)
                mine.add(e.client_id)
            elif e.client_id in change.removed:
                mine.discard(e.client_id)
        if change.relay is None:
            return Outcome()
        return Outcome(frames=self.awareness_frames(change.relay))

    def local_awareness(self) -> bytes | None:
        """The states of clients connected here (for an instance that asks)."""
        table = self.shared.awareness
        ids = [c for c in table.states() if table.owner(c) is not None]
        return table.encode_clients(ids) if ids else None


class YjsKind:
    """Loads Yjs documents: the stored snapshot, then the log entries after it."""

    name = "yjs"

    def __init__(self, limits: DocumentLimits | None = None) -> None:
        self.limits = limits or DocumentLimits()

    def load(
        self,
        doc_id: str,
        snapshot: bytes | None,
        snapshot_seq: int,
        updates: Sequence[tuple[int, bytes]],
        limits: RoomLimits,
        *,
        replica: int,
        now_ms: Callable[[], int],
    ) -> YjsRoom:
        room = YjsRoom(doc_id, YjsDocument(self.limits), snapshot_seq, now_ms)
        if snapshot:
            try:
                state, history = unwrap(snapshot, snapshot_seq)
            except ValueError as exc:
                log.error("unreadable Yjs snapshot: %s", exc, extra={"doc": doc_id})
                state, history = b"", YjsHistory(snapshot_seq)
            room.history_read(history)
            room.load_update(snapshot_seq, state)
        else:
            room.history_floor = snapshot_seq
        for seq, update in updates:
            room.load_update(seq, update)
        return room


YJS = YjsKind()
