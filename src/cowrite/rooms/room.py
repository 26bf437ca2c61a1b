"""A document room: sans-I/O session logic for one document.

Inputs are method calls (join, leave, edit, sync, presence, tick); outputs are ``Outcome``s the
asyncio shell carries out in order: persist the update (durably) first, then send the reply and
the broadcasts. The room never touches a socket, a database or the clock (``now_ms`` is passed
in), so thousands of schedules can be tested without an event loop.

Versions: every applied batch (a thin client's ``edit``, a replica's ``sync``, an update another
instance made) is one version. On a single instance a version equals the update's sequence
number in the store's log, so versions survive restarts; in a cluster each instance numbers the
updates in the order it applied them, and ``epoch`` names that numbering (a client coming from
another instance gets a snapshot). Every version is broadcast to thin clients as one ``remote``
(possibly with no ops), so the versions a thin client sees are contiguous.

Atomicity: an input the room refuses raises ``RoomError`` and leaves the room as it was (no node,
root or member is left behind). A replica delta is applied op by op and stops at the first op the
document refuses: what was applied before it is kept, recorded as a version and broadcast (the
sender gets an ``error``), and the same rule replays the stored delta at load, so the log, the
document and every client agree.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from cowrite import protocol as p
from cowrite.engine import history, ot
from cowrite.engine.document import Change, Document
from cowrite.engine.encoding import TooManyReplicas, decode_ops
from cowrite.engine.errors import EngineError, InvalidOperation, ResyncNeeded
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, VersionVector
from cowrite.engine.ops import (
    DELETED,
    MAX_INT,
    InsertOp,
    NewNode,
    NodeKind,
    NodeRef,
    check_json,
)
from cowrite.engine.ops import Op as EngineOp
from cowrite.engine.rebase import Anchor, EditLog, anchor_at, apply_index_edit, resolve_anchor
from cowrite.rooms import edit_keys, validate
from cowrite.rooms.checksum import ChecksumSchedule
from cowrite.rooms.edit_keys import client_of, edit_digest, key_client
from cowrite.rooms.peers import PeerCursor, PeerEntry, RemoteMember, WireAnchor
from cowrite.rooms.retention import Cuts
from cowrite.rooms.wire import (
    UnknownNode,
    node_from_wire,
    node_to_wire,
    snapshot,
    value_from_wire,
    value_to_wire,
)

Audience = Literal["thin", "replica", "all"]
EditKey = tuple[str, str]


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
    fault: BaseException | None = None
    """An unexpected engine failure after part of the input was applied (the shell logs it)."""


@dataclass(frozen=True, slots=True)
class Origin:
    """What a logged version was: whose edit, its wire ops, the vector entries it changed."""

    client: str
    edit: str
    ops: list[p.EditOp]
    vv: dict[str, int]
    ranges: dict[int, tuple[int, int]]
    """Per replica, the op seqs this version added (for a rejoin whose batch it was)."""
    user: str = ""
    """The user id of its author, when this instance applied it (a member's or a server edit's)."""


NOT_LOGGED = Origin("", "", [], {}, {})
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

    def __post_init__(self) -> None:
        self.key_client = key_client(self.owner or self.client_id, self.client_id)

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


class Room:
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
        self._keys: int | None = None
        """Keys the document's maps hold (None: to be counted), for ``max_map_keys``."""
        self._adds_keys = 0  # new keys of the batch validated last
        self.cuts = Cuts(self.limits.history_kept_ops // 4)
        """Versions the document was at, where old history may be compacted (``retention``)."""
        self.cuts.note(doc.version)  # as loaded: a causal cut

    @property
    def version(self) -> int:
        return self.log.version

    # --------------------------------------------------------------- loading

    def load_update(self, seq: int, data: bytes) -> None:
        """Replay a stored update (at startup), so its version can be caught up from.

        Applied with the rule ``sync`` used when the update was accepted (op by op, up to the
        first op the document refuses), so the replayed document is the one clients saw.
        """
        if seq != self.version + 1:
            raise ValueError(f"stored update {seq} after version {self.version}")
        client, edit_id, digest, delta = edit_keys.unwrap_update(data)
        before = self.doc.version
        self._keys = None
        changes, _, _ = self._apply_remote_ops(decode_ops(self.doc, delta))
        seq_changes = [(c.node, c.delta) for c in changes if c.delta and _is_seq(c)]
        self._record(self._wire_ops(changes), seq_changes, client_of(client), edit_id, before)
        if edit_id:  # a resend after a restart is acknowledged, not applied again
            self.remember((client, edit_id), seq, digest)

    def _record(
        self,
        ops: list[p.EditOp],
        seq_changes: list[tuple[int, list[Any]]],
        client: str,
        edit: str,
        before: VersionVector,
        ranges: dict[int, tuple[int, int]] | None = None,
        user: str = "",
    ) -> int:
        """Log a batch applied since the document was at ``before`` as the next version.
        ``ranges``: the op seqs the batch itself carried, per replica (default: what the version
        vector gained, which for a merged update may include ops it released from the causal
        queue)."""
        version = self.log.record(seq_changes)
        self._snap = None  # of an older version: not to be kept alive
        now = self.doc.version
        self.cuts.note(now)
        changed = [r for r, n in now.items() if before.get(r) != n]
        vv = {str(r): now[r] for r in changed}
        if ranges is None:
            ranges = {r: (before.get(r, 0), now[r]) for r in changed}
        self._origins[version] = Origin(client, edit, ops, vv, ranges, user)
        while len(self._origins) > self.limits.edit_log_capacity:
            self._origins.popitem(last=False)
        return version

    # ------------------------------------------------------------ membership

    def join(self, member: Member, msg: p.Join, chat: list[p.ChatMessage]) -> Outcome:
        """Add (or replace) ``member``; the reply is ``joined`` (+ catch-up ``remote``s).

        Raises RoomError (and adds nobody) for a malformed ``state``.
        """
        theirs = _vv_from_wire(msg.state or {})  # checked before anything changes
        self.members[member.session] = member
        if member.active:
            self._idle_check_ms = min(
                self._idle_check_ms, member.last_active_ms + self.limits.idle_after_ms
            )
        out = Outcome()
        rights = sorted(member.rights)
        presence = self.entries()
        if member.mode == "replica":
            try:
                delta = self.doc.delta_since(theirs)
            except ResyncNeeded:
                delta = self.doc.encode_state()
            joined = p.Joined(
                doc=self.doc_id,
                mode="replica",
                version=self.version,
                rights=rights,
                delta=base64.b64encode(delta).decode(),
                state={str(r): n for r, n in self.doc.version.items()},
                presence=presence,
                chat=chat,
                epoch=self.epoch,
            )
            out.reply.append(joined)
        elif (
            msg.version is not None
            and msg.epoch == self.epoch
            and self.log.oldest <= msg.version <= self.version
        ):
            out.reply.append(
                p.Joined(
                    doc=self.doc_id,
                    mode="thin",
                    version=msg.version,
                    rights=rights,
                    presence=presence,
                    chat=chat,
                    epoch=self.epoch,
                )
            )
            for version in range(msg.version + 1, self.version + 1):
                o = self._origins[version]
                out.reply.append(
                    p.Remote(
                        doc=self.doc_id,
                        version=version,
                        ops=o.ops,
                        client_id=o.client,
                        edit_id=o.edit,
                        vv=o.vv,
                    )
                )
        else:
            state = {str(r): n for r, n in self.doc.version.items()}
            changes = None
            acked = None
            if msg.version is not None and msg.state is not None:
                applied = None
                if msg.inflight is not None:
                    known = self._recent.get((member.key_client, msg.inflight))
                    done = known[0] if known is not None else None
                    applied = self._origins.get(done) if done is not None else None
                    if done is not None and applied is None:
                        applied = NOT_LOGGED
                if applied is None:
                    changes = self._changes_since(theirs)
                else:  # applied: a snapshot holds it (a diff from "their state + that batch" is
                    acked = msg.inflight  # wrong when we rebased it over deletes next to it)
            nodes: dict[str, Any] | None = None
            if changes is not None:  # exact: the client rebases its own edits over these
                roots = {name: node_to_wire(self.doc, n) for n, (name, _) in self.doc.roots.items()}
            else:
                nodes, roots = self._snapshot()
            out.reply.append(
                p.Joined(
                    doc=self.doc_id,
                    mode="thin",
                    version=self.version,
                    rights=rights,
                    ops=changes,
                    acked=acked,
                    snapshot=nodes,
                    roots=roots,
                    state=state,
                    presence=presence,
                    chat=chat,
                    epoch=self.epoch,
                )
            )
        out.broadcast.append((p.Presence(doc=self.doc_id, entries=[self._entry(member)]), "all"))
        return out

    def _snapshot(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The thin-client snapshot of the current version, computed once per version: joins
        at one version share it (a large document's snapshot costs the loop ~0.3 s a time).
        Every change to the document is a new version; nobody mutates a sent snapshot."""
        key = (self.version, len(self.doc.roots))
        if self._snap is None or self._snap[0] != key:
            self._snap = (key, *snapshot(self.doc))
        return self._snap[1], self._snap[2]

    def _changes_since(
        self, base: VersionVector, extra: dict[int, tuple[int, int]] | None = None
    ) -> list[p.EditOp] | None:
        """Wire ops turning the document at version vector ``base`` into the current one, or
        None when that cannot be said exactly (history compacted away or not seen here, nested
        nodes: then the client gets a snapshot and merges three-way)."""
        doc = self.doc
        if doc.has_nested_nodes():
            return None
        try:
            diffs = history.diff(doc, base, doc.version, extra)
        except EngineError:
            return None
        ops: list[p.EditOp] = []
        for d in diffs:
            node = node_to_wire(doc, d.node)
            if d.kind is NodeKind.TEXT or d.kind is NodeKind.LIST:
                ops.append(p.SeqEdit(node=node, edit=d.delta))
            elif d.kind is NodeKind.MAP:
                key = str(d.path[-1])
                if d.after is None:
                    ops.append(p.DeleteKey(node=node, key=key))
                else:
                    ops.append(p.SetKey(node=node, key=key, value=d.after))
            elif d.kind is NodeKind.REGISTER:
                ops.append(p.SetKey(node=node, key=None, value=d.after))
            else:
                ops.append(p.CounterAdd(node=node, amount=(d.after or 0) - (d.before or 0)))
        return ops

    def leave(self, session: str) -> Outcome:
        if self.members.pop(session, None) is None:
            return Outcome()
        return Outcome(broadcast=[(p.Presence(doc=self.doc_id, left=[session]), "all")])

    # ----------------------------------------------------------------- edits

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

    def _resent(self, key: EditKey, digest: str, edit_id: str) -> int | None:
        """The version of an edit already applied under ``key``, or None if it is new.

        Raises RoomError ``edit_id_reused`` when the key was used for other content: its
        content would otherwise be acknowledged and silently dropped.
        """
        known = self._recent.get(key)
        if known is None:
            return None
        version, stored = known
        if stored and digest and stored != digest:
            raise RoomError(
                p.ErrorCode.EDIT_ID_REUSED,
                f"edit id {edit_id!r} was already used for another edit: use a new one",
            )
        return version

    def edit(self, session: str, msg: p.Edit, now_ms: int) -> Outcome:
        """A thin client's batch: rebased from ``msg.version``, applied all or nothing.

        Raises RoomError (and changes nothing) when the batch does not fit the document. A
        repeated ``(client_id, edit_id)`` is acknowledged with its first version, not applied.
        """
        member = self._writer(session)
        return self._edit(Author.of(member), msg, now_ms, member)

    def _edit(self, author: Author, msg: p.Edit, now_ms: int, member: Member | None) -> Outcome:
        """Apply ``msg`` by ``author`` (``member``: the member who sent it, if one did)."""
        key = (author.key_client, msg.edit_id)
        digest = edit_digest(msg.ops)
        done = self._resent(key, digest, msg.edit_id)
        if done is not None:
            return Outcome(reply=[self._ack(msg.edit_id, done)])
        if msg.version > self.version:
            raise RoomError(p.ErrorCode.FUTURE_VERSION, f"version {msg.version} > {self.version}")
        doc = self.doc
        roots = set(doc.roots)
        try:
            plan = self._plan(msg)
        except BaseException:
            self._forget_roots(roots)
            raise
        before = doc.version
        wire_ops: list[p.EditOp] = []
        seq_changes: list[tuple[int, list[Any]]] = []
        created: list[str] = []
        fault: BaseException | None = None
        try:
            for node, op, arg in plan:
                if isinstance(op, p.SeqEdit):
                    apply_index_edit(doc, node, arg)
                    seq_changes.append((node, arg))
                    wire_ops.append(
                        p.SeqEdit(node=op.node, edit=self._wire_edit(node, arg, created))
                    )
                elif isinstance(op, p.SetKey):
                    doc.set(node, op.key, arg)
                    value: Any = op.value
                    if type(arg) is NewNode:
                        new_id = node_to_wire(doc, self._created_id(node, op.key))
                        created.append(new_id)
                        value = {"$node": new_id}
                    wire_ops.append(p.SetKey(node=op.node, key=op.key, value=value))
                elif isinstance(op, p.DeleteKey):
                    doc.set(node, op.key, DELETED)
                    wire_ops.append(op)
                else:
                    doc.add(node, op.amount)
                    wire_ops.append(op)
        except Exception as exc:  # validated above: an engine bug. Keep what was applied.
            if doc.version == before:
                self._forget_roots(roots)
                raise
            fault = exc
            # the roots of the ops after the failing one stay unused: forget them
            self._forget_roots(roots | {node for node, _, _ in plan[: len(wire_ops) + 1]})
        self._count_keys()
        delta = doc.delta_since(before)
        # an edit applied in part is not that edit: it is named by no edit id (not remembered)
        named = msg.edit_id if fault is None else ""
        version = self._record(
            wire_ops, seq_changes, author.client_id, named, before, user=author.user.id
        )
        woke = member is not None and self._touch(member, now_ms)
        relay = p.RemoteSync(
            doc=self.doc_id, delta=base64.b64encode(delta).decode(), version=version
        )
        reply: list[p.Message]
        broadcast: list[tuple[p.Message, Audience]]
        if fault is None:
            self.remember(key, version, digest)
            reply = [self._ack(msg.edit_id, version, created)]
            remote = p.Remote(
                doc=self.doc_id,
                version=version,
                ops=wire_ops,
                client_id=author.client_id,
                edit_id=msg.edit_id,
                vv=self._origins[version].vv,
            )
            broadcast = [(remote, "thin"), (relay, "replica")]
            check = self.checks.after(version, [n for n, _ in seq_changes])
            if check is not None:
                reply.append(check)
                broadcast.append((check, "thin"))
        else:  # what the engine did is not known op by op: thin clients reload the document
            resync = p.Resync(doc=self.doc_id, reason="the document changed unexpectedly")
            reply = [
                p.Error(
                    code=p.ErrorCode.INTERNAL,
                    message=f"the edit was applied in part ({len(wire_ops)} of {len(plan)} ops)",
                    doc=self.doc_id,
                    edit_id=msg.edit_id,
                ),
                resync,
            ]
            broadcast = [(resync, "thin"), (relay, "replica")]
        if woke and member is not None:
            broadcast.append(self._presence_of(member))
        return Outcome(
            persist=edit_keys.wrap_update(author.key_client, named, delta, digest),
            version=version,
            edit_keys=[key] if fault is None else [],
            edit_digest=digest,
            reply=reply,
            broadcast=broadcast,
            fault=fault,
        )

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

    def _wire_edit(self, node: int, edit: list[Any], created: list[str]) -> list[Any]:
        """An applied index edit as sent to others: new nested list items as ``{"$node"}``."""
        if not any(isinstance(c, list) for c in edit):
            return edit
        seq = self.doc.sequence(node)
        out: list[Any] = []
        pos = 0
        for c in edit:
            if isinstance(c, int):
                pos += max(c, 0)
                out.append(c)
                continue
            values: list[Any] = []
            for k, v in enumerate(c):
                if type(v) is NewNode:
                    new_id = node_to_wire(self.doc, seq.id_at(pos + k))
                    created.append(new_id)
                    values.append({"$node": new_id})
                else:
                    values.append(v)
            out.append(values)
            pos += len(c)
        return out

    def _created_id(self, node: int, key: str | None) -> int:
        state = self.doc.state_of(node)
        value = state.entries[key].value if key is not None else None  # type: ignore[union-attr]
        if type(value) is not NodeRef:
            raise InvalidOperation("the new node was not created")
        return value.id

    def _plan(self, msg: p.Edit) -> list[tuple[int, p.EditOp, Any]]:
        """Resolve, rebase and validate the whole batch before applying any of it."""
        doc = self.doc
        plan: list[tuple[int, p.EditOp, Any]] = []
        seq_nodes: set[int] = set()
        growth = validate.Growth(doc, self.limits, self._key_total)
        try:
            for op in msg.ops:
                node = node_from_wire(doc, op.node)
                kind = doc.kind_of(node)
                if isinstance(op, p.SeqEdit):
                    if kind is not NodeKind.TEXT and kind is not NodeKind.LIST:
                        raise InvalidOperation(
                            f"{op.node} is a {kind.name.lower()}, not a sequence"
                        )
                    if node in seq_nodes:
                        raise InvalidOperation(
                            "one sequence edit per node per batch (compose them)"
                        )
                    seq_nodes.add(node)
                    ot.check(op.edit)
                    want = str if kind is NodeKind.TEXT else list
                    for c in op.edit:
                        if not isinstance(c, int) and not isinstance(c, want):
                            raise InvalidOperation(
                                f"{op.node} is a {kind.name.lower()}: insert "
                                f"{'strings' if want is str else 'lists of values'}"
                            )
                    edit = self.log.rebase(node, op.edit, msg.version)
                    edit = [_list_values(c) if isinstance(c, list) else c for c in edit]
                    for c in edit:
                        if isinstance(c, list):  # JSON the engine will take (nesting...)
                            validate.check_values(c)
                            growth.values(c)
                    length = len(doc.sequence(node))
                    if ot.base_length(edit) > length:
                        raise InvalidOperation(f"edit spans past the end of {op.node} ({length})")
                    if ot.target_length(edit, length) > self.limits.max_node_length:
                        raise RoomError(
                            p.ErrorCode.DOCUMENT_TOO_LARGE, f"{op.node} would be too long"
                        )
                    plan.append((node, op, edit))
                elif isinstance(op, p.SetKey):
                    want_kind = NodeKind.MAP if op.key is not None else NodeKind.REGISTER
                    if kind is not want_kind:
                        raise InvalidOperation(f"cannot set {op.key!r} on a {kind.name.lower()}")
                    value = value_from_wire(op.value)
                    if type(value) is not NewNode:
                        check_json(value)
                    elif kind is NodeKind.REGISTER:
                        raise InvalidOperation("registers hold JSON values")
                    if op.key is not None:
                        growth.key(node, op.key)
                    growth.values((value,))
                    plan.append((node, op, value))
                elif isinstance(op, p.DeleteKey):
                    if kind is not NodeKind.MAP:
                        raise InvalidOperation(f"cannot delete a key of a {kind.name.lower()}")
                    plan.append((node, op, None))
                else:
                    if kind is not NodeKind.COUNTER:
                        raise InvalidOperation(f"cannot add to a {kind.name.lower()}")
                    if not -MAX_INT - 1 <= op.amount <= MAX_INT:
                        raise InvalidOperation("counter amounts must fit in 64 bits")
                    plan.append((node, op, op.amount))
        except UnknownNode as exc:
            raise RoomError(p.ErrorCode.UNKNOWN_NODE, str(exc)) from None
        except ResyncNeeded as exc:
            raise RoomError(p.ErrorCode.STALE_VERSION, str(exc), resync=True) from None
        except validate.TooLarge as exc:
            raise RoomError(p.ErrorCode.DOCUMENT_TOO_LARGE, str(exc)) from None
        except InvalidOperation as exc:
            raise RoomError(p.ErrorCode.INVALID_EDIT, str(exc)) from None
        self._adds_keys = growth.new_keys
        return plan

    def sync(self, session: str, msg: p.Sync, now_ms: int) -> Outcome:
        """A replica's CRDT delta: merged (idempotent), persisted as received, fanned out.

        Raises RoomError (and changes nothing) for a delta that is not base64, not a delta, that
        a thin edit could not have made or that breaks a limit (``_decode_delta``), or whose
        first op the document refuses. A delta refused part-way is applied up to the
        refused op: that part is a version like any other and the sender gets an ``error``.
        """
        member = self._writer(session)
        try:
            data = base64.b64decode(msg.delta, validate=True)
        except (binascii.Error, ValueError):
            raise RoomError(p.ErrorCode.BAD_MESSAGE, "delta is not base64") from None
        if msg.edit_id is not None:
            done = self.seen(member.key_client, msg.edit_id)
            if done is not None:
                roots = set(self.doc.roots)
                known = edit_keys.delta_is_known(self.doc, data)
                self._forget_roots(roots)
                if not known:
                    raise RoomError(
                        p.ErrorCode.EDIT_ID_REUSED,
                        f"edit id {msg.edit_id!r} was already used for other operations",
                    )
                return Outcome(reply=[self._ack(msg.edit_id, done)])
        doc = self.doc
        if data[:3] == b"CWS":
            raise RoomError(p.ErrorCode.BAD_MESSAGE, "send a delta, not a snapshot")
        roots = set(doc.roots)
        try:
            ops = self._decode_delta(data)
        except BaseException:
            self._forget_roots(roots)
            raise
        before_pending = doc.pending_ops
        before = doc.version
        changes, error, exact = self._apply_remote_ops(ops)
        changed = doc.version != before or doc.pending_ops != before_pending
        if not changed:
            self._forget_roots(roots)
            if error is not None:
                raise RoomError(p.ErrorCode.INVALID_EDIT, error)
            self._touch(member, now_ms)
            ack = (
                [p.Ack(doc=self.doc_id, edit_id=msg.edit_id, version=self.version)]
                if msg.edit_id
                else []
            )
            return Outcome(reply=list(ack))
        self._count_keys()
        woke = self._touch(member, now_ms)
        ops_out = self._wire_ops(changes)
        seq_changes = [(c.node, c.delta) for c in changes if c.delta and _is_seq(c)]
        named = (msg.edit_id or "") if error is None else ""  # applied in part: not that edit
        version = self._record(ops_out, seq_changes, member.client_id, named, before)
        keys = [(member.key_client, named)] if named else []
        for key in keys:
            self.remember(key, version)
        reply: list[p.Message] = []
        if error is not None:
            reply.append(
                p.Error(
                    code=p.ErrorCode.INVALID_EDIT,
                    message=f"delta applied up to a refused op: {error}",
                    doc=self.doc_id,
                    edit_id=msg.edit_id,
                )
            )
        elif msg.edit_id:
            reply.append(self._ack(msg.edit_id, version))
        relayed = (
            msg.delta
            if error is None and not before_pending
            else base64.b64encode(doc.delta_since(before)).decode()
        )
        broadcast: list[tuple[p.Message, Audience]] = [
            (p.RemoteSync(doc=self.doc_id, delta=relayed, version=version), "replica")
        ]
        if exact:
            broadcast.append(
                (
                    p.Remote(
                        doc=self.doc_id,
                        version=version,
                        ops=ops_out,
                        client_id=member.client_id,
                        edit_id=named,
                        vv=self._origins[version].vv,
                    ),
                    "thin",
                )
            )
            check = self.checks.after(version, [n for n, _ in seq_changes])
            if check is not None:
                broadcast.append((check, "thin"))
        else:  # the engine changed more than it reported: thin clients must reload
            broadcast.append(
                (p.Resync(doc=self.doc_id, reason="the document changed unexpectedly"), "thin")
            )
        if woke:
            broadcast.append(self._presence_of(member))
        return Outcome(
            persist=edit_keys.wrap_update(member.key_client, named, data),
            version=version,
            edit_keys=keys,
            reply=reply,
            broadcast=broadcast,
        )

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

    def _decode_delta(self, data: bytes) -> list[EngineOp]:
        """A replica's delta, decoded and checked like a thin edit (``rooms.validate``) before
        any of it is applied; new replica ids are capped per frame and per document."""
        doc = self.doc
        limits = self.limits
        room_for = max(0, limits.max_replicas_per_document - doc.replica_count)
        roots = set(doc.roots)
        try:
            ops = decode_ops(
                doc, data, max_new_replicas=min(limits.max_new_replicas_per_sync, room_for)
            )
            new_roots = doc.roots.keys() - roots
            for node in new_roots:
                validate.check_string(doc.roots[node][0], "root name")
            growth = validate.check_delta(doc, ops, limits, self._key_total, new_roots)
            self._adds_keys = growth.new_keys
        except TooManyReplicas as exc:
            raise RoomError(
                p.ErrorCode.TOO_MANY_REPLICAS,
                f"{exc} (at most {limits.max_new_replicas_per_sync} per sync, "
                f"{limits.max_replicas_per_document} per document)",
            ) from None
        except validate.TooLarge as exc:
            raise RoomError(p.ErrorCode.DOCUMENT_TOO_LARGE, str(exc)) from None
        except Exception as exc:  # DecodeError, or worse from hostile bytes: refuse them all
            raise RoomError(p.ErrorCode.BAD_MESSAGE, f"bad delta: {exc}") from None
        return ops

    def merge_update(self, data: bytes) -> Outcome:
        """An update another instance made durable (a stored update: ``wrap_update`` bytes).

        Merged like a replica's delta (op by op, up to the first op the document refuses: the
        rule every instance applies, so they agree) and broadcast to every member; nothing to
        persist. Its edit is remembered, so a client that moved here is acknowledged, not applied
        twice. An update already merged changes nothing and yields an empty Outcome. Raises
        RoomError ``bad_message`` (changing nothing) for bytes that are not an update: stored by
        another instance, so validated there, it was damaged on the way.
        """
        doc = self.doc
        roots = set(doc.roots)
        try:
            client, edit_id, digest, delta = edit_keys.unwrap_update(data)
            ops = decode_ops(doc, delta)
        except Exception as exc:
            self._forget_roots(roots)
            raise RoomError(p.ErrorCode.BAD_MESSAGE, f"not an update: {exc}") from None
        before_pending = doc.pending_ops
        before = doc.version
        self._keys = None  # validated elsewhere, not counted here: count again when needed
        changes, error, exact = self._apply_remote_ops(ops)
        if doc.version == before and doc.pending_ops == before_pending:
            return Outcome()
        ops_out = self._wire_ops(changes)
        seq_changes = [(c.node, c.delta) for c in changes if c.delta and _is_seq(c)]
        version = self._record(
            ops_out, seq_changes, client_of(client), edit_id, before, _op_ranges(doc, ops)
        )
        if edit_id and (client, edit_id) not in self._recent:
            self.remember((client, edit_id), version, digest)
        # ops this update released from the causal queue came in earlier updates, which members
        # who joined since never got: relay everything that was applied
        relayed = delta if error is None and not before_pending else doc.delta_since(before)
        broadcast: list[tuple[p.Message, Audience]] = [
            (
                p.RemoteSync(
                    doc=self.doc_id, delta=base64.b64encode(relayed).decode(), version=version
                ),
                "replica",
            )
        ]
        if exact:
            remote = p.Remote(
                doc=self.doc_id,
                version=version,
                ops=ops_out,
                client_id=client_of(client),
                edit_id=edit_id,
                vv=self._origins[version].vv,
            )
            broadcast.append((remote, "thin"))
            check = self.checks.after(version, [n for n, _ in seq_changes])
            if check is not None:
                broadcast.append((check, "thin"))
        else:
            broadcast.append(
                (p.Resync(doc=self.doc_id, reason="the document changed unexpectedly"), "thin")
            )
        return Outcome(version=version, broadcast=broadcast)

    def _apply_remote_ops(self, ops: list[EngineOp]) -> tuple[list[Change], str | None, bool]:
        """Apply decoded ops one at a time, up to the first one the document refuses.

        Returns the changes, the refusal (None if every op applied) and whether the changes
        describe everything that happened (False if a refused call changed the document anyway,
        e.g. by releasing queued ops before failing).
        """
        doc = self.doc
        changes: list[Change] = []
        for op in ops:
            probe = doc.version if doc.pending_ops else None
            try:
                changes.extend(doc.apply_ops([op]))
            except Exception as exc:  # InvalidOperation; anything else is hostile input too
                exact = isinstance(exc, InvalidOperation) and (
                    probe is None or doc.version == probe
                )
                return changes, f"{type(exc).__name__}: {exc}", exact
        return changes, None, True

    def _wire_ops(self, changes: list[Change]) -> list[p.EditOp]:
        """Engine change events as wire ops a thin client can apply in order."""
        doc = self.doc
        ops: list[p.EditOp] = []
        for c in changes:
            node = node_to_wire(doc, c.node)
            if _is_seq(c):
                if c.delta:
                    edit = [_wire_list(doc, x) if isinstance(x, list) else x for x in c.delta]
                    ops.append(p.SeqEdit(node=node, edit=edit))
            elif c.kind is NodeKind.COUNTER:
                ops.append(p.CounterAdd(node=node, amount=c.delta[0] if c.delta else 0))
            elif c.kind is NodeKind.REGISTER:
                ops.append(p.SetKey(node=node, key=None, value=doc.node_json(c.node)))
            else:
                assert c.key is not None
                state = doc.state_of(c.node)
                reg = state.entries.get(c.key)  # type: ignore[union-attr]
                value = DELETED if reg is None else reg.value
                if value is DELETED:
                    ops.append(p.DeleteKey(node=node, key=c.key))
                else:
                    ops.append(p.SetKey(node=node, key=c.key, value=value_to_wire(doc, value)))
        return ops

    # -------------------------------------------------------------- presence

    def presence(self, session: str, msg: p.SetPresence, now_ms: int) -> Outcome:
        """Update the member's user fields, cursor or activity; broadcast its entry."""
        member = self.members.get(session)
        if member is None:
            raise RoomError(p.ErrorCode.NOT_JOINED, f"join {self.doc_id} first")
        cursor = self._anchor_cursor(msg.cursor) if msg.cursor is not None else None
        if msg.user is not None:
            member.user = p.User(
                id=member.user.id,
                name=msg.user.name or member.user.name,
                color=msg.user.color or member.user.color,
                fields=msg.user.fields,
            )
        if cursor is not None:
            member.cursor = cursor
        if msg.active is False:
            member.active = False
        else:
            self._touch(member, now_ms)
        return Outcome(broadcast=[self._presence_of(member)])

    def _anchor_cursor(self, cursor: p.Cursor) -> tuple[int, Anchor, Anchor]:
        doc = self.doc
        try:
            node = node_from_wire(doc, cursor.node, create_roots=False)
            kind = doc.kind_of(node)
            if kind is not NodeKind.TEXT and kind is not NodeKind.LIST:
                raise InvalidOperation("cursors live in text and list nodes")
            base = self.version if cursor.version is None else cursor.version
            if base > self.version:
                raise RoomError(p.ErrorCode.FUTURE_VERSION, f"cursor version {base}")
            anchor = self.log.rebase_position(node, cursor.anchor, base)
            head = self.log.rebase_position(node, cursor.head, base)
            length = len(doc.sequence(node))
            anchor, head = min(anchor, length), min(head, length)
            return node, anchor_at(doc, node, anchor), anchor_at(doc, node, head)
        except UnknownNode as exc:
            raise RoomError(p.ErrorCode.UNKNOWN_NODE, str(exc)) from None
        except ResyncNeeded as exc:
            raise RoomError(p.ErrorCode.STALE_VERSION, str(exc)) from None
        except InvalidOperation as exc:
            raise RoomError(p.ErrorCode.INVALID_EDIT, str(exc)) from None

    def _entry(self, member: Member) -> p.PresenceEntry:
        cursor = None
        if member.cursor is not None:
            node, anchor, head = member.cursor
            try:
                cursor = p.Cursor(
                    node=node_to_wire(self.doc, node),
                    anchor=resolve_anchor(self.doc, node, anchor),
                    head=resolve_anchor(self.doc, node, head),
                    version=self.version,
                )
            except InvalidOperation:  # its element is gone (compacted): forget the cursor
                member.cursor = None
        return p.PresenceEntry(
            session=member.session, user=member.user, active=member.active, cursor=cursor
        )

    def entries(self) -> list[p.PresenceEntry]:
        """Everyone on the document: members here, then those on other instances."""
        local = [self._entry(m) for m in self.members.values()]
        return local + [self._remote_entry(r.entry) for r in self.remote.values()]

    # ------------------------------------------------------- other instances

    def peer_entries(self, sessions: list[str] | None = None) -> list[PeerEntry]:
        """Entries of members here (all, or those of ``sessions``) for other instances."""
        chosen = (
            list(self.members.values())
            if sessions is None
            else [m for s in sessions if (m := self.members.get(s)) is not None]
        )
        out = []
        for m in chosen:
            cursor = None
            if m.cursor is not None:
                node, anchor, head = m.cursor
                cursor = PeerCursor(
                    node_to_wire(self.doc, node), WireAnchor.of(anchor), WireAnchor.of(head)
                )
            out.append(PeerEntry(session=m.session, user=m.user, active=m.active, cursor=cursor))
        return out

    def merge_presence(self, instance: int, entries: list[PeerEntry], left: list[str]) -> Outcome:
        """Presence news from another instance: broadcast to the members here."""
        shown = []
        for entry in entries:
            if entry.session in self.members:
                continue  # a session id is this instance's: ignore a forgery
            self.remote[entry.session] = RemoteMember(instance, entry)
            shown.append(self._remote_entry(entry))
        gone = [s for s in left if s in self.remote and self.remote[s].instance == instance]
        for session in gone:
            del self.remote[session]
        if not shown and not gone:
            return Outcome()
        return Outcome(broadcast=[(p.Presence(doc=self.doc_id, entries=shown, left=gone), "all")])

    def drop_instance(self, instance: int) -> Outcome:
        """Forget the members of an instance that went away (dead, or shut down)."""
        gone = [s for s, r in self.remote.items() if r.instance == instance]
        for session in gone:
            del self.remote[session]
        if not gone:
            return Outcome()
        return Outcome(broadcast=[(p.Presence(doc=self.doc_id, left=gone), "all")])

    def _remote_entry(self, entry: PeerEntry) -> p.PresenceEntry:
        cursor = None
        if entry.cursor is not None:
            doc = self.doc
            try:
                node = node_from_wire(doc, entry.cursor.node, create_roots=False)
                cursor = p.Cursor(
                    node=entry.cursor.node,
                    anchor=resolve_anchor(doc, node, entry.cursor.anchor.anchor()),
                    head=resolve_anchor(doc, node, entry.cursor.head.anchor()),
                    version=self.version,
                )
            except (UnknownNode, InvalidOperation):
                cursor = None  # its element has not arrived here yet
        return p.PresenceEntry(
            session=entry.session, user=entry.user, active=entry.active, cursor=cursor
        )

    def _presence_of(self, member: Member) -> tuple[p.Message, Audience]:
        return p.Presence(doc=self.doc_id, entries=[self._entry(member)]), "all"

    def _touch(self, member: Member, now_ms: int) -> bool:
        """Record activity; True when it wakes an idle member (whose entry must be broadcast)."""
        member.last_active_ms = now_ms
        self._idle_check_ms = min(self._idle_check_ms, now_ms + self.limits.idle_after_ms)
        woke = not member.active
        member.active = True
        return woke

    def tick(self, now_ms: int) -> Outcome:
        """Mark members idle after ``idle_after_ms`` without activity; send the checksums that
        wait for the room to be quiet."""
        out = self._idle(now_ms)
        check = self.checks.when_quiet(self.version, now_ms)
        if check is not None:
            out.broadcast.append((check, "thin"))
        return out

    def _idle(self, now_ms: int) -> Outcome:
        """Members without activity for ``idle_after_ms`` turn inactive (broadcast)."""
        if now_ms < self._idle_check_ms:
            return Outcome()  # (a scan of every member each second costs when thousands idle)
        idle = []
        after = self.limits.idle_after_ms
        next_check = 1 << 62
        for m in self.members.values():
            if m.active:
                if now_ms - m.last_active_ms >= after:
                    m.active = False
                    idle.append(self._entry(m))
                else:
                    next_check = min(next_check, m.last_active_ms + after)
        self._idle_check_ms = next_check
        if not idle:
            return Outcome()
        return Outcome(broadcast=[(p.Presence(doc=self.doc_id, entries=idle), "all")])

    def touch(self, session: str, now_ms: int) -> Outcome:
        """Activity that is not an edit (typing a chat message...): wake an idle member."""
        member = self.members.get(session)
        if member is None or not self._touch(member, now_ms):
            return Outcome()
        return Outcome(broadcast=[self._presence_of(member)])

    # ---------------------------------------------------------------- helpers

    def _writer(self, session: str) -> Member:
        member = self.members.get(session)
        if member is None:
            raise RoomError(p.ErrorCode.NOT_JOINED, f"join {self.doc_id} first")
        if not member.can_write:
            raise RoomError(p.ErrorCode.FORBIDDEN, f"no write access to {self.doc_id}")
        return member

    def apply_server_edit(
        self,
        ops: list[p.EditOp],
        now_ms: int,
        *,
        client_id: str,
        edit_id: str,
        author: p.User | None = None,
    ) -> Outcome:
        """Apply wire ``ops`` against the current version on behalf of the server (REST restore).

        Validated and applied exactly like a member's ``edit`` (all or nothing, RoomError when the
        batch does not fit), but by nobody in the room: ``author`` (default: the user
        ``client_id`` named "server") is recorded in the edit log and the edit is broadcast to
        every member as ``remote``/``remote_sync`` from ``client_id``. The caller submits the
        Outcome to the room's pipeline and learns there when it is durable (its ``ack`` is for
        nobody). ``(client_id, edit_id)`` must be new: a repeated key is not applied again.
        """
        user = author if author is not None else p.User(id=client_id, name="server")
        msg = p.Edit(doc=self.doc_id, edit_id=edit_id, version=self.version, ops=ops)
        return self._edit(
            Author(client_id, user, key_client(client_id, client_id)), msg, now_ms, None
        )


def _op_ranges(doc: Document, ops: list[EngineOp]) -> dict[int, tuple[int, int]]:
    """Per replica, the span of op seqs ``ops`` carry."""
    spans: dict[int, tuple[int, int]] = {}
    for op in ops:
        replica = doc.replica_of(op.id & CLIENT_MASK)
        first = op.id >> CLIENT_BITS
        end = first + (len(op.content) if isinstance(op, InsertOp) else 1)
        lo, hi = spans.get(replica, (first, end))
        spans[replica] = (min(lo, first), max(hi, end))
    return spans


def _is_seq(change: Change) -> bool:
    return change.kind is NodeKind.TEXT or change.kind is NodeKind.LIST


def _list_values(values: list[Any]) -> list[Any]:
    return [value_from_wire(v) for v in values]


def _wire_list(doc: Document, values: list[Any]) -> list[Any]:
    return [value_to_wire(doc, v) for v in values]


def wrap_update(client_id: str, edit_id: str, delta: bytes) -> bytes:
    """A stored update naming its edit (see `edit_keys.wrap_update`)."""
    return edit_keys.wrap_update(client_id, edit_id, delta)


def unwrap_update(data: bytes) -> tuple[str, str, bytes]:
    """``(client_id, edit_id, delta)`` of a stored update (a bare delta: no edit)."""
    client, edit_id, _, delta = edit_keys.unwrap_update(data)
    return client_of(client), edit_id, delta


def _vv_from_wire(state: dict[str, int]) -> VersionVector:
    out: VersionVector = {}
    for k, v in state.items():
        try:
            replica = int(k)
        except ValueError:
            raise RoomError(
                p.ErrorCode.BAD_MESSAGE, f"state key {k!r} is not a replica id"
            ) from None
        if replica <= 0 or v < 0:
            raise RoomError(p.ErrorCode.BAD_MESSAGE, "bad version vector")
        out[replica] = v
    return out
