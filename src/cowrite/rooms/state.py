"""A room's state and the vocabulary of its inputs and outputs.

``RoomState`` holds what every part of `Room` shares (the document, its edit log and the origin
of each logged version, the edit keys it remembers, the members) and the few steps they all take
(record a version, remember an edit key, check a writer). ``Outcome`` is what every room input
returns; ``RoomError`` what it raises.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from cowrite import protocol as p
from cowrite.engine import (
    Anchor,
    Change,
    Document,
    EditLog,
    NodeKind,
    VersionVector,
)
from cowrite.rooms.checksum import ChecksumSchedule
from cowrite.rooms.edit_keys import key_client
from cowrite.rooms.history import VersionNote
from cowrite.rooms.peers import RemoteMember
from cowrite.rooms.retention import Cuts
from cowrite.rooms.wire import value_from_wire, value_to_wire

Audience = Literal["thin", "replica", "all"]
EditKey = tuple[str, str]


class FrameSink(Protocol):
    """Where a room's encoded frames go (a connection): queued, never blocking."""

    def send(self, data: bytes) -> None: ...


class RoomError(Exception):
    """An input the room refuses; the shell sends ``Error(code, message)`` to the sender."""

    def __init__(self, code: p.ErrorCode, message: str, *, resync: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.resync = resync


@dataclass
class Outcome:
    """Effects of one input, to be carried out in this order by the shell."""

    persist: bytes | None = None
    version: int = 0
    edit_keys: list[EditKey] = field(default_factory=list)
    edit_digest: str = ""
    """The payload digest stored with ``edit_keys`` (`edit_keys.edit_digest`)."""
    reply: list[p.Message] = field(default_factory=list)
    broadcast: list[tuple[p.Message, Audience]] = field(default_factory=list)
    frames: list[tuple[FrameSink, bytes]] = field(default_factory=list)
    """Frames already encoded for one recipient each (a Yjs room's dialect frames), sent in
    order after ``reply`` and before ``broadcast``."""
    fault: BaseException | None = None
    """An unexpected engine failure after part of the input was applied (the shell logs it)."""
    note: VersionNote | None = None
    """The version ``persist`` makes: stored with it (``rooms.history``)."""

    @property
    def sends(self) -> bool:
        """Something goes to connections (to be queued in the room's pipeline)."""
        return bool(self.reply or self.broadcast or self.frames)


@dataclass(frozen=True, slots=True)
class Origin:
    """What a logged version was: whose edit, its wire ops, the vector entries it changed."""

    client: str
    edit: str
    ops: list[p.EditOp]
    vv: dict[str, int]
    user: str = ""
    """The user id of its author, when this instance applied it (a member's or a server edit's)."""


NOT_LOGGED = Origin("", "", [], {})
"""A batch applied so long ago that how it changed the document is no longer known."""


@dataclass
class Member:
    session: str
    client_id: str
    user: p.User
    mode: str
    rights: frozenset[str]
    last_active_ms: int
    active: bool = True
    cursor: tuple[int, Anchor, Anchor] | None = None
    owner: str = ""
    """The authenticated user id: scopes this member's edit keys (default: the client id)."""
    key_client: str = field(init=False, default="")
    """The client part of this member's edit keys (`edit_keys.key_client`)."""

    _author: Author | None = field(init=False, default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.key_client = key_client(self.owner or self.client_id, self.client_id)

    def author(self) -> Author:
        """This member as the author of its edits (kept while its user and keys stay: one
        frozen object fewer per edit)."""
        a = self._author
        if (
            a is None
            or a.user is not self.user
            or a.client_id != self.client_id
            or a.key_client != self.key_client
        ):
            a = self._author = Author(self.client_id, self.user, self.key_client)
        return a

    @property
    def can_write(self) -> bool:
        return "write" in self.rights


@dataclass(frozen=True, slots=True)
class Author:
    """Who an edit is by: a member, or the server on a user's behalf (`Room.apply_server_edit`)."""

    client_id: str
    user: p.User
    key_client: str
    """The client part of the edit's keys (`edit_keys.key_client`)."""

    @classmethod
    def of(cls, member: Member) -> Author:
        return cls(member.client_id, member.user, member.key_client)


@dataclass
class RoomLimits:
    max_node_length: int = 2_000_000
    edit_log_capacity: int = 10_000
    idle_after_ms: int = 60_000
    remembered_edits: int = 10_000
    max_new_replicas_per_sync: int = 64
    max_replicas_per_document: int = 10_000
    max_map_keys: int = 100_000
    max_nodes_per_document: int = 100_000
    max_key_length: int = 1_000
    history_kept_ops: int = 4_000_000


class RoomState:
    """The state every part of `Room` shares (`edits.py`, `replicas.py`, `room.py`)."""

    def __init__(
        self, doc_id: str, doc: Document, version: int = 0, limits: RoomLimits | None = None
    ) -> None:
        self.doc_id = doc_id
        self.doc = doc
        self.limits = limits or RoomLimits()
        self.log = EditLog(self.limits.edit_log_capacity, version)
        # per logged version: (client_id, edit_id, wire ops) for catch-up
        self._origins: OrderedDict[int, Origin] = OrderedDict()
        self._recent: OrderedDict[EditKey, tuple[int, str]] = OrderedDict()
        """Recently applied edit keys -> (version, payload digest)."""
        self.forgotten_upto = 0
        """The highest version of an edit key dropped from memory: an edit made at an older
        version may have been applied and forgotten (the store knows)."""
        self.members: dict[str, Member] = {}
        self.remote: dict[str, RemoteMember] = {}
        """Members connected to other instances, by session."""
        self.epoch = ""
        """Names this room's numbering of versions (see the module docstring)."""
        self._idle_check_ms = 0
        """No member can turn idle before this (``tick`` does nothing until then)."""
        self.checks = ChecksumSchedule(doc_id, doc)
        """When thin clients get a ``checksum`` to verify their copy against."""
        self._snap: tuple[tuple[int, int], dict[str, Any], dict[str, str]] | None = None
        self._snap_unused_until: int | None = None
        """The loader's join snapshot is dropped at this time (wall ms, ``Room.tick``) unless a
        join used it first: a large idle document keeps no copy of its text."""
        self._keys: int | None = None
        """Keys the document's maps hold (None: to be counted), for ``max_map_keys``."""
        self._adds_keys = 0  # new keys of the batch validated last
        self.cuts = Cuts(self.limits.history_kept_ops // 4)
        """Versions the document was at, where old history may be compacted (``retention``)."""
        self.cuts.note(doc.version)  # as loaded: a causal cut
        self._me_wire = str(doc.replica)
        """This replica's id as a key of a wire version vector (``Origin.vv``)."""
        self.pins: dict[int, VersionVector] = {}
        """Named versions (log seq -> vector): compaction never passes them (``rooms.history``)."""

    @property
    def version(self) -> int:
        return self.log.version

    def _record(
        self,
        ops: list[p.EditOp],
        seq_changes: list[tuple[int, list[Any]]],
        client: str,
        edit: str,
        before: VersionVector,
        user: str = "",
    ) -> int:
        """Log a batch applied since the document was at ``before`` as the next version."""
        now = self.doc.version
        vv = {str(r): n for r, n in now.items() if before.get(r) != n}
        return self._log_version(seq_changes, Origin(client, edit, ops, vv, user), now)

    def _log_version(
        self, seq_changes: list[tuple[int, list[Any]]], origin: Origin, now: VersionVector
    ) -> int:
        """Log a batch as the next version: ``origin`` says what it was, ``now`` is the
        document's version vector after it."""
        version = self.log.record(seq_changes)
        self._snap = None  # of an older version: not to be kept alive
        self._snap_unused_until = None
        self.cuts.note(now)
        origins = self._origins
        origins[version] = origin
        while len(origins) > self.limits.edit_log_capacity:
            origins.popitem(last=False)
        return version

    def seen(self, client_key: str, edit_id: str) -> int | None:
        """The version an edit got if it was applied recently (exactly-once acks).
        ``client_key``: the member's ``key_client``."""
        known = self._recent.get((client_key, edit_id))
        return None if known is None else known[0]

    def remember(self, key: EditKey, version: int, digest: str = "") -> None:
        """Remember an applied edit key (and its payload digest) for exactly-once acks."""
        self._recent[key] = (version, digest)
        while len(self._recent) > self.limits.remembered_edits:
            _, (old, _) = self._recent.popitem(last=False)
            self.forgotten_upto = max(self.forgotten_upto, old)

    def _ack(self, edit_id: str, version: int, created: list[str] | None = None) -> p.Ack:
        origin = self._origins.get(version)
        return p.Ack(
            doc=self.doc_id,
            edit_id=edit_id,
            version=version,
            created=created or [],
            vv=origin.vv if origin is not None else {},
        )

    def _forget_roots(self, keep: set[int]) -> None:
        """Drop the named roots a refused input registered (so it leaves no trace)."""
        roots = self.doc.roots
        for node in [n for n in roots if n not in keep]:
            del roots[node]

    def _writer(self, session: str) -> Member:
        member = self.members.get(session)
        if member is None:
            raise RoomError(p.ErrorCode.NOT_JOINED, f"join {self.doc_id} first")
        if not member.can_write:
            raise RoomError(p.ErrorCode.FORBIDDEN, f"no write access to {self.doc_id}")
        return member

    def _key_total(self) -> int:
        if self._keys is None:
            self._keys = self.doc.map_key_count()
        return self._keys

    def _count_keys(self) -> None:
        """Add the keys of the batch just applied (all of them, even if it applied in part:
        an upper bound is safe)."""
        if self._keys is not None:
            self._keys += self._adds_keys
        self._adds_keys = 0


def _is_seq(change: Change) -> bool:
    return change.kind is NodeKind.TEXT or change.kind is NodeKind.LIST


def _list_values(values: list[Any]) -> list[Any]:
    return [value_from_wire(v) for v in values]


def _wire_list(doc: Document, values: list[Any]) -> list[Any]:
    return [value_to_wire(doc, v) for v in values]
