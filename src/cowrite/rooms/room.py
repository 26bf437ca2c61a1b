"""A document room: sans-I/O session logic for one document.

Inputs are method calls (join, leave, edit, sync, presence, tick); outputs are ``Outcome``s the
asyncio shell carries out in order: persist the update (durably) first, then send the reply and
the broadcasts. The room never touches a socket, a database or the clock (``now_ms`` is passed
in), so thousands of schedules can be tested without an event loop.

Versions: every applied batch (a thin client's ``edit``, a replica's ``sync``) is one version,
equal to the update's sequence number in the store's log, so versions survive restarts.
"""

from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from cowrite import protocol as p
from cowrite.engine import ot
from cowrite.engine.document import Change, Document
from cowrite.engine.errors import DecodeError, InvalidOperation, ResyncNeeded
from cowrite.engine.ids import VersionVector
from cowrite.engine.ops import DELETED, NewNode, NodeKind, NodeRef, check_json
from cowrite.engine.rebase import Anchor, EditLog, anchor_at, apply_index_edit, resolve_anchor
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
    reply: list[p.Message] = field(default_factory=list)
    broadcast: list[tuple[p.Message, Audience]] = field(default_factory=list)


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

    @property
    def can_write(self) -> bool:
        return "write" in self.rights


@dataclass
class RoomLimits:
    max_node_length: int = 2_000_000
    edit_log_capacity: int = 10_000
    idle_after_ms: int = 60_000
    remembered_edits: int = 10_000


class Room:
    def __init__(
        self, doc_id: str, doc: Document, version: int = 0, limits: RoomLimits | None = None
    ) -> None:
        self.doc_id = doc_id
        self.doc = doc
        self.limits = limits or RoomLimits()
        self.log = EditLog(self.limits.edit_log_capacity, version)
        # per logged version: (client_id, edit_id, wire ops) for catch-up
        self._origins: OrderedDict[int, tuple[str, str, list[p.EditOp]]] = OrderedDict()
        self._recent: OrderedDict[EditKey, int] = OrderedDict()
        self.members: dict[str, Member] = {}

    @property
    def version(self) -> int:
        return self.log.version

    # --------------------------------------------------------------- loading

    def load_update(self, seq: int, data: bytes) -> None:
        """Replay a stored update (at startup), so its version can be caught up from."""
        if seq != self.version + 1:
            raise ValueError(f"stored update {seq} after version {self.version}")
        changes = self.doc.merge(data)
        self._record(
            self._wire_ops(changes), [(c.node, c.delta) for c in changes if c.delta], "", ""
        )

    def _record(
        self, ops: list[p.EditOp], seq_changes: list[tuple[int, list[Any]]], client: str, edit: str
    ) -> int:
        version = self.log.record(seq_changes)
        self._origins[version] = (client, edit, ops)
        while len(self._origins) > self.limits.edit_log_capacity:
            self._origins.popitem(last=False)
        return version

    # ------------------------------------------------------------ membership

    def join(self, member: Member, msg: p.Join, chat: list[p.ChatMessage]) -> Outcome:
        self.members[member.session] = member
        out = Outcome()
        rights = sorted(member.rights)
        presence = [self._entry(m) for m in self.members.values()]
        if member.mode == "replica":
            theirs = _vv_from_wire(msg.state or {})
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
            )
            out.reply.append(joined)
        elif msg.version is not None and self.log.oldest <= msg.version <= self.version:
            out.reply.append(
                p.Joined(
                    doc=self.doc_id,
                    mode="thin",
                    version=msg.version,
                    rights=rights,
                    presence=presence,
                    chat=chat,
                )
            )
            for version in range(msg.version + 1, self.version + 1):
                client, edit, ops = self._origins[version]
                out.reply.append(
                    p.Remote(
                        doc=self.doc_id, version=version, ops=ops, client_id=client, edit_id=edit
                    )
                )
        else:
            nodes, roots = snapshot(self.doc)
            out.reply.append(
                p.Joined(
                    doc=self.doc_id,
                    mode="thin",
                    version=self.version,
                    rights=rights,
                    snapshot=nodes,
                    roots=roots,
                    presence=presence,
                    chat=chat,
                )
            )
        out.broadcast.append((p.Presence(doc=self.doc_id, entries=[self._entry(member)]), "all"))
        return out

    def leave(self, session: str) -> Outcome:
        if self.members.pop(session, None) is None:
            return Outcome()
        return Outcome(broadcast=[(p.Presence(doc=self.doc_id, left=[session]), "all")])

    # ----------------------------------------------------------------- edits

    def seen(self, client_id: str, edit_id: str) -> int | None:
        """The version an edit got if it was applied recently (exactly-once acks)."""
        return self._recent.get((client_id, edit_id))

    def remember(self, key: EditKey, version: int) -> None:
        self._recent[key] = version
        while len(self._recent) > self.limits.remembered_edits:
            self._recent.popitem(last=False)

    def edit(self, session: str, msg: p.Edit, now_ms: int) -> Outcome:
        member = self._writer(session)
        key = (member.client_id, msg.edit_id)
        done = self._recent.get(key)
        if done is not None:
            return Outcome(reply=[p.Ack(doc=self.doc_id, edit_id=msg.edit_id, version=done)])
        if msg.version > self.version:
            raise RoomError(p.ErrorCode.FUTURE_VERSION, f"version {msg.version} > {self.version}")
        plan = self._plan(msg)
        doc = self.doc
        before = doc.version
        wire_ops: list[p.EditOp] = []
        seq_changes: list[tuple[int, list[Any]]] = []
        created: list[str] = []
        for node, op, arg in plan:
            if isinstance(op, p.SeqEdit):
                apply_index_edit(doc, node, arg)
                seq_changes.append((node, arg))
                wire_ops.append(p.SeqEdit(node=op.node, edit=arg))
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
        delta = doc.delta_since(before)
        version = self._record(wire_ops, seq_changes, member.client_id, msg.edit_id)
        self.remember(key, version)
        self._touch(member, now_ms)
        return Outcome(
            persist=delta,
            version=version,
            edit_keys=[key],
            reply=[p.Ack(doc=self.doc_id, edit_id=msg.edit_id, version=version, created=created)],
            broadcast=[
                (
                    p.Remote(
                        doc=self.doc_id,
                        version=version,
                        ops=wire_ops,
                        client_id=member.client_id,
                        edit_id=msg.edit_id,
                    ),
                    "thin",
                ),
                (
                    p.RemoteSync(
                        doc=self.doc_id, delta=base64.b64encode(delta).decode(), version=version
                    ),
                    "replica",
                ),
            ],
        )

    def _created_id(self, node: int, key: str | None) -> int:
        state = self.doc.state_of(node)
        value = state.entries[key].value if key is not None else None  # type: ignore[union-attr]
        assert type(value) is NodeRef
        return value.id

    def _plan(self, msg: p.Edit) -> list[tuple[int, p.EditOp, Any]]:
        """Resolve, rebase and validate the whole batch before applying any of it."""
        doc = self.doc
        plan: list[tuple[int, p.EditOp, Any]] = []
        seq_nodes: set[int] = set()
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
                    edit = self.log.rebase(node, op.edit, msg.version)
                    edit = [_list_values(c) if isinstance(c, list) else c for c in edit]
                    length = len(doc.sequence(node))
                    if ot.base_length(edit) > length:
                        raise InvalidOperation(f"edit spans past the end of {op.node} ({length})")
                    if ot.target_length(edit, length) > self.limits.max_node_length:
                        raise RoomError(
                            p.ErrorCode.DOCUMENT_TOO_LARGE, f"{op.node} would be too long"
                        )
                    plan.append((node, op, edit))
                elif isinstance(op, p.SetKey):
                    want = NodeKind.MAP if op.key is not None else NodeKind.REGISTER
                    if kind is not want:
                        raise InvalidOperation(f"cannot set {op.key!r} on a {kind.name.lower()}")
                    value = value_from_wire(op.value)
                    if type(value) is not NewNode:
                        check_json(value)
                    elif kind is NodeKind.REGISTER:
                        raise InvalidOperation("registers hold JSON values")
                    plan.append((node, op, value))
                elif isinstance(op, p.DeleteKey):
                    if kind is not NodeKind.MAP:
                        raise InvalidOperation(f"cannot delete a key of a {kind.name.lower()}")
                    plan.append((node, op, None))
                else:
                    if kind is not NodeKind.COUNTER:
                        raise InvalidOperation(f"cannot add to a {kind.name.lower()}")
                    plan.append((node, op, op.amount))
        except UnknownNode as exc:
            raise RoomError(p.ErrorCode.UNKNOWN_NODE, str(exc)) from None
        except ResyncNeeded as exc:
            raise RoomError(p.ErrorCode.STALE_VERSION, str(exc), resync=True) from None
        except InvalidOperation as exc:
            raise RoomError(p.ErrorCode.INVALID_EDIT, str(exc)) from None
        return plan

    def sync(self, session: str, msg: p.Sync, now_ms: int) -> Outcome:
        """A replica's CRDT delta: merged (idempotent), persisted as received, fanned out."""
        member = self._writer(session)
        if msg.edit_id is not None:
            done = self._recent.get((member.client_id, msg.edit_id))
            if done is not None:
                return Outcome(reply=[p.Ack(doc=self.doc_id, edit_id=msg.edit_id, version=done)])
        try:
            data = base64.b64decode(msg.delta, validate=True)
        except (binascii.Error, ValueError):
            raise RoomError(p.ErrorCode.BAD_MESSAGE, "delta is not base64") from None
        before_pending = self.doc.pending_ops
        before = self.doc.version
        try:
            changes = self.doc.merge(data)
        except DecodeError as exc:
            raise RoomError(p.ErrorCode.BAD_MESSAGE, f"bad delta: {exc}") from None
        except InvalidOperation as exc:
            raise RoomError(p.ErrorCode.INVALID_EDIT, str(exc)) from None
        self._touch(member, now_ms)
        if self.doc.version == before and self.doc.pending_ops == before_pending:
            ack = (
                [p.Ack(doc=self.doc_id, edit_id=msg.edit_id, version=self.version)]
                if msg.edit_id
                else []
            )
            return Outcome(reply=list(ack))
        ops = self._wire_ops(changes)
        seq_changes = [(c.node, c.delta) for c in changes if c.delta and _is_seq(c)]
        version = self._record(ops, seq_changes, member.client_id, msg.edit_id or "")
        keys = [(member.client_id, msg.edit_id)] if msg.edit_id else []
        for key in keys:
            self.remember(key, version)
        reply: list[p.Message] = []
        if msg.edit_id:
            reply.append(p.Ack(doc=self.doc_id, edit_id=msg.edit_id, version=version))
        broadcast: list[tuple[p.Message, Audience]] = [
            (p.RemoteSync(doc=self.doc_id, delta=msg.delta, version=version), "replica")
        ]
        if ops:
            broadcast.append(
                (
                    p.Remote(
                        doc=self.doc_id,
                        version=version,
                        ops=ops,
                        client_id=member.client_id,
                        edit_id=msg.edit_id or "",
                    ),
                    "thin",
                )
            )
        return Outcome(
            persist=data, version=version, edit_keys=keys, reply=reply, broadcast=broadcast
        )

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
        member = self.members[session]
        if msg.user is not None:
            member.user = p.User(
                id=member.user.id,
                name=msg.user.name or member.user.name,
                color=msg.user.color or member.user.color,
                fields=msg.user.fields,
            )
        if msg.cursor is not None:
            member.cursor = self._anchor_cursor(msg.cursor)
        if msg.active is False:
            member.active = False
        else:
            self._touch(member, now_ms, broadcast=False)
        return Outcome(
            broadcast=[(p.Presence(doc=self.doc_id, entries=[self._entry(member)]), "all")]
        )

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
            cursor = p.Cursor(
                node=node_to_wire(self.doc, node),
                anchor=resolve_anchor(self.doc, node, anchor),
                head=resolve_anchor(self.doc, node, head),
                version=self.version,
            )
        return p.PresenceEntry(
            session=member.session, user=member.user, active=member.active, cursor=cursor
        )

    def entries(self) -> list[p.PresenceEntry]:
        return [self._entry(m) for m in self.members.values()]

    def _touch(self, member: Member, now_ms: int, *, broadcast: bool = True) -> None:
        member.last_active_ms = now_ms
        member.active = True

    def tick(self, now_ms: int) -> Outcome:
        """Mark members idle after ``idle_after_ms`` without activity."""
        idle = []
        for m in self.members.values():
            if m.active and now_ms - m.last_active_ms >= self.limits.idle_after_ms:
                m.active = False
                idle.append(self._entry(m))
        if not idle:
            return Outcome()
        return Outcome(broadcast=[(p.Presence(doc=self.doc_id, entries=idle), "all")])

    def touch(self, session: str, now_ms: int) -> Outcome:
        """Activity that is not an edit (typing a chat message...): wake an idle member."""
        member = self.members.get(session)
        if member is None or member.active:
            if member is not None:
                member.last_active_ms = now_ms
            return Outcome()
        self._touch(member, now_ms)
        return Outcome(
            broadcast=[(p.Presence(doc=self.doc_id, entries=[self._entry(member)]), "all")]
        )

    # ---------------------------------------------------------------- helpers

    def _writer(self, session: str) -> Member:
        member = self.members.get(session)
        if member is None:
            raise RoomError(p.ErrorCode.NOT_JOINED, f"join {self.doc_id} first")
        if not member.can_write:
            raise RoomError(p.ErrorCode.FORBIDDEN, f"no write access to {self.doc_id}")
        return member


def _is_seq(change: Change) -> bool:
    return change.kind is NodeKind.TEXT or change.kind is NodeKind.LIST


def _list_values(values: list[Any]) -> list[Any]:
    return [value_from_wire(v) for v in values]


def _wire_list(doc: Document, values: list[Any]) -> list[Any]:
    return [value_to_wire(doc, v) for v in values]


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
