"""The document-kind seam: what the server's machinery needs of a loaded document.

The registry (load, unload, snapshots), the pipeline (persist, then fan out) and replication
(other instances' updates, catch-up from the store, a snapshot's merge) call a loaded document only
through ``DocumentRoom``, and load one only through a ``DocumentKind``. A kind's updates and
snapshots are opaque bytes to them: the store keeps them, the bus carries them, the kind reads
them. Today's CRDT document (``Room``, kind ``"crdt"``) is the first implementation; the Yjs kind
is the second. Each kind also brings its wire dialects (join, edit, sync...), which the hub calls on
the kind's own class: those are not part of this seam.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from cowrite.engine import Document
from cowrite.rooms.peers import PeerEntry
from cowrite.rooms.room import Room
from cowrite.rooms.state import Outcome, RoomLimits
from cowrite.rooms.yjs_room import YJS


class DocumentRoom(Protocol):
    """A loaded document as the registry, pipeline and replication see it (sans-I/O).

    Every method runs synchronously; an ``Outcome`` goes into the room's pipeline (its
    ``persist`` bytes are stored before its replies and broadcasts are sent).
    """

    doc_id: str
    epoch: str
    """Names this instance's numbering of versions (set by the registry in a cluster)."""

    @property
    def version(self) -> int:
        """How many updates were applied (on one instance: the store's last log seq)."""

    @property
    def remote(self) -> Mapping[str, object]:
        """Members on other instances, by session."""

    def load_update(self, seq: int, data: bytes) -> None:
        """Replay stored log entry ``seq`` (at load); raises ValueError when out of order."""

    def merge_update(self, data: bytes) -> Outcome:
        """Merge an update another instance made durable (idempotent: one already merged
        yields an empty Outcome); nothing to persist. Raises ``RoomError`` (changing nothing)
        for bytes that are not an update."""

    def merge_snapshot(self, snapshot: bytes) -> Outcome | None:
        """Merge what a stored snapshot (log entries folded away) adds to this room; None when
        it cannot (the room is too far behind it: the registry drops it and its connections
        rejoin a fresh load)."""

    def encode_snapshot(self, history_kept_ops: int) -> bytes:
        """The document's state for the store (compacting old history first, if the kind
        has any): what ``DocumentKind.load`` reads back."""

    def compaction_due(self, history_kept_ops: int) -> bool:
        """Old history is worth compacting away by a snapshot."""

    def tick(self, now_ms: int) -> Outcome:
        """Time passes (idle members, expiries)."""

    def peer_entries(self, sessions: list[str] | None = None) -> list[PeerEntry]:
        """Presence of members here, for other instances."""

    def merge_presence(self, instance: int, entries: list[PeerEntry], left: list[str]) -> Outcome:
        """Presence of members on another instance."""

    def drop_instance(self, instance: int) -> Outcome:
        """Another instance went away: its members leave."""


class DocumentKind(Protocol):
    """Makes loaded documents of one kind, registered by ``name``."""

    @property
    def name(self) -> str: ...

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
    ) -> DocumentRoom:
        """The room of a stored document: its snapshot (None: a new, empty one), then its log
        entries after ``snapshot_seq`` replayed in order."""


PREPARED_JOINS_KEPT_MS = 10_000
"""How long a loaded CRDT room keeps the join snapshot its loader built (``Room.prepare_joins``)
if no thin client joins: the join that asked for the load comes within milliseconds; a thin
join after that builds it on the event loop, as after any edit."""


class CrdtKind:
    """The CRDT kind (``"crdt"``): cowrite's own document tree, held by a ``Room``."""

    name = "crdt"

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
    ) -> Room:
        doc = (
            Document.load(snapshot, replica, now_ms=now_ms)
            if snapshot
            else Document(replica, now_ms=now_ms)
        )
        room = Room(doc_id, doc, snapshot_seq, limits)
        for seq, update in updates:
            room.load_update(seq, update)  # paced op by op (replicas._apply_remote_ops)
        # in the loader's thread (20-30 ms on the loop for 2 M characters), kept for the first
        # joins only: a copy of the text that a document nobody joins thin need not hold
        room.prepare_joins(now_ms() + PREPARED_JOINS_KEPT_MS)
        return room


CRDT = CrdtKind()
"""The default kind of a document."""

KINDS: dict[str, DocumentKind] = {CRDT.name: CRDT, YJS.name: YJS}
"""The document kinds, by name (``register_kind`` adds one)."""


def register_kind(kind: DocumentKind) -> None:
    """Make ``kind`` loadable by its name; a name is registered once."""
    if KINDS.get(kind.name, kind) is not kind:
        raise ValueError(f"a document kind named {kind.name!r} is registered already")
    KINDS[kind.name] = kind


def kind_named(name: str) -> DocumentKind:
    """The kind registered as ``name``; raises KeyError for an unknown one."""
    return KINDS[name]
