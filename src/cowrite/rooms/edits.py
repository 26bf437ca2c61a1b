"""Thin clients' edits: an index-based batch planned against the current version (rebased from
the version it was made at), validated, and applied all or nothing; and server-side edits
(REST restore) applied the same way by an ``Author`` who is no member.
"""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cowrite import protocol as p
from cowrite.engine import (
    DELETED,
    MAX_INT,
    InvalidOperation,
    NewNode,
    NodeKind,
    NodeRef,
    ResyncNeeded,
    VersionVector,
    apply_index_edit,
    check_json,
    encode_ops,
    map_value,
    ot,
)
from cowrite.rooms import edit_keys, history, revivals, validate
from cowrite.rooms.edit_keys import edit_digest, key_client
from cowrite.rooms.history import VersionNote
from cowrite.rooms.revivals import Revivals
from cowrite.rooms.state import (
    Audience,
    Author,
    EditKey,
    Member,
    Origin,
    Outcome,
    RoomError,
    RoomState,
    _list_values,
)
from cowrite.rooms.wire import (
    UnknownNode,
    node_from_wire,
    node_to_wire,
    root_of_wire,
    value_from_wire,
)


class ThinEdits(RoomState):
    """`Room`'s thin-client edits."""

    _revivals: Revivals | None = None
    """What undo/redo batches brought back (``revivals.py``), made at the first ``revive``."""

    if TYPE_CHECKING:  # presence (``room.py``)

        def _touch(self, member: Member, now_ms: int) -> bool: ...

        def _presence_of(self, member: Member) -> tuple[p.Message, Audience]: ...

    def _learn_revivals(self, key_client: str, extra: bytes) -> None:
        """A stored batch's revived names (``revivals.encode``), replayed or merged: judged
        again as they were (``revivals.py``: durable with the document)."""
        runs = revivals.decode(extra)
        if runs:
            if self._revivals is None:
                self._revivals = Revivals()
            self._revivals.learn(key_client, runs, self._recent)

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
        return self._edit(member.author(), msg, now_ms, member)

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
        seq0 = doc.local_seq
        before = None if seq0 else doc.version  # (no local op yet: delta_since picks the form)
        typed = self._typed(msg)
        if typed is not None:  # one change to a text (a keystroke): no plan, no wire op rebuilt
            node, typed_op, edit, pos, ins, deleted = typed
            fault: BaseException | None = None
            try:
                if ins:
                    doc.insert(node, pos, ins)
                if deleted:
                    doc.delete(node, pos + len(ins), deleted)
            except Exception as exc:  # validated: an engine bug. Keep what was applied.
                if doc.local_seq == seq0:
                    raise
                fault = exc
            if fault is None:
                done_ops: list[p.EditOp] = [p.SeqEdit(node=typed_op.node, edit=edit)]
                changes = [(node, edit)]
                size = len(ins) + deleted
            else:
                done_ops, changes, size = [], [], 0
            return self._finish(
                author,
                msg,
                now_ms,
                member,
                key,
                digest,
                seq0,
                before,
                done_ops,
                changes,
                [],
                fault,
                1,
                size,
            )
        roots = set(doc.roots)
        try:
            plan = self._plan(msg)
        except BaseException:
            self._forget_roots(roots)
            raise
        dropped: list[p.Dropped] = []
        revived: list[revivals.Run] = []
        if msg.revive or msg.withdraw:  # an undo/redo: what it may not bring back is left out
            if self._revivals is None:
                self._revivals = Revivals()
            plan, dropped, revived = self._revivals.judge(
                author.key_client,
                msg,
                plan,
                log=self.log,
                recent=self._recent,
                origins=self._origins,
            )
        wire_ops: list[p.EditOp] = []
        seq_changes: list[tuple[int, list[Any]]] = []
        created: list[str] = []
        fault = None
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
            if doc.local_seq == seq0:
                self._forget_roots(roots)
                raise
            fault = exc
            # the roots of the ops after the failing one stay unused: forget them
            self._forget_roots(roots | {node for node, _, _ in plan[: len(wire_ops) + 1]})
        return self._finish(
            author,
            msg,
            now_ms,
            member,
            key,
            digest,
            seq0,
            before,
            wire_ops,
            seq_changes,
            created,
            fault,
            len(plan),
            history.ops_size(wire_ops),
            dropped,
            revivals.encode(revived),
        )

    def _finish(
        self,
        author: Author,
        msg: p.Edit,
        now_ms: int,
        member: Member | None,
        key: EditKey,
        digest: str,
        seq0: int,
        before: VersionVector | None,
        wire_ops: list[p.EditOp],
        seq_changes: list[tuple[int, list[Any]]],
        created: list[str],
        fault: BaseException | None,
        planned: int,
        size: int,
        dropped: list[p.Dropped] | None = None,
        revived: bytes = b"",
    ) -> Outcome:
        """Record, acknowledge and broadcast a batch just applied by this replica's local ops
        from its ``seq0``-th on (``before``: the version vector then, given when ``seq0`` is 0)."""
        doc = self.doc
        self._count_keys()
        # a thin edit is local ops only: the delta and the vector entries are this replica's
        delta = (
            encode_ops(doc, doc.local_ops_since(seq0))
            if before is None
            else doc.delta_since(before)
        )
        now = doc.version
        seq1 = doc.local_seq
        vv = {self._me_wire: seq1} if seq1 != seq0 else {}
        # an edit applied in part is not that edit: it is named by no edit id (not remembered)
        named = msg.edit_id if fault is None else ""
        client_id = author.client_id
        user = author.user
        version = self._log_version(
            seq_changes, Origin(client_id, named, wire_ops, vv, user.id), now
        )
        woke = member is not None and self._touch(member, now_ms)
        doc_id = self.doc_id
        relay = p.RemoteSync(doc=doc_id, delta=base64.b64encode(delta).decode(), version=version)
        reply: list[p.Message]
        broadcast: list[tuple[p.Message, Audience]]
        if fault is None:
            self.remember(key, version, digest)
            reply = [
                p.Ack(
                    doc=doc_id,
                    edit_id=msg.edit_id,
                    version=version,
                    created=created,
                    vv=vv,
                    dropped=dropped or [],
                )
            ]
            remote = p.Remote(
                doc=doc_id,
                version=version,
                ops=wire_ops,
                client_id=client_id,
                edit_id=msg.edit_id,
                vv=vv,
            )
            broadcast = [(remote, "thin"), (relay, "replica")]
            if seq_changes:
                check = self.checks.after(version, [n for n, _ in seq_changes])
                if check is not None:
                    reply.append(check)
                    broadcast.append((check, "thin"))
        else:  # what the engine did is not known op by op: thin clients reload the document
            resync = p.Resync(doc=doc_id, reason="the document changed unexpectedly")
            reply = [
                p.Error(
                    code=p.ErrorCode.INTERNAL,
                    message=f"the edit was applied in part ({len(wire_ops)} of {planned} ops)",
                    doc=doc_id,
                    edit_id=msg.edit_id,
                ),
                resync,
            ]
            broadcast = [(resync, "thin"), (relay, "replica")]
        if woke and member is not None:
            broadcast.append(self._presence_of(member))
        return Outcome(
            persist=edit_keys.wrap_update(
                author.key_client, named, delta, digest, revived if named else b""
            ),
            version=version,
            edit_keys=[key] if fault is None else [],
            edit_digest=digest,
            reply=reply,
            broadcast=broadcast,
            fault=fault,
            note=VersionNote(now, now_ms, user.id, user.name, size=size),
        )

    def _typed(self, msg: p.Edit) -> tuple[int, p.SeqEdit, list[Any], int, str, int] | None:
        """``(node, op, edit, pos, inserted, deleted)`` of a batch that makes one change to a
        named text (what typing sends), rebased and validated like ``_plan`` would; None for
        any other batch (``_plan`` takes it). Raises RoomError as ``_plan`` does."""
        ops = msg.ops
        if len(ops) != 1 or msg.revive or msg.withdraw:  # (an undo/redo is judged: the plan's)
            return None
        op = ops[0]
        if type(op) is not p.SeqEdit:
            return None
        site = ot.text_site(op.edit)
        root = root_of_wire(op.node)
        if site is None or root is None:
            return None
        doc = self.doc
        node = root[0]
        if root[1] is not NodeKind.TEXT or node not in doc.roots:
            return None
        edit = ot.text_op(*site)
        if msg.version != self.version:
            try:
                edit = self.log.rebase(node, edit, msg.version)
            except ResyncNeeded as exc:
                raise RoomError(p.ErrorCode.STALE_VERSION, str(exc), resync=True) from None
            except InvalidOperation as exc:
                raise RoomError(p.ErrorCode.INVALID_EDIT, str(exc)) from None
            site = ot.text_site(edit)
            if site is None:  # rebased into no change, or into several: the plan's case
                return None
        pos, ins, deleted = site
        length = len(doc.sequence(node))
        if pos + deleted > length:
            raise RoomError(
                p.ErrorCode.INVALID_EDIT, f"edit spans past the end of {op.node} ({length})"
            )
        if length + len(ins) - deleted > self.limits.max_node_length:
            raise RoomError(p.ErrorCode.DOCUMENT_TOO_LARGE, f"{op.node} would be too long")
        self._adds_keys = 0
        return node, op, edit, pos, ins, deleted

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
        value = map_value(self.doc, node, key) if key is not None else None
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
                    # normalized (inserts before deletes at one place) as every client holds
                    # its ops: a tie between a replace and an insert then breaks the same way
                    # here as in the clients' transforms (``docs/protocol.md``, T5)
                    edit = self.log.rebase(node, ot.normalize(op.edit), msg.version)
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

    def apply_server_edit(
        self,
        ops: list[p.EditOp],
        now_ms: int,
        *,
        client_id: str,
        edit_id: str,
        author: p.User | None = None,
        restored_from: int | None = None,
        base_version: int | None = None,
    ) -> Outcome:
        """Apply wire ``ops`` against the current version (or ``base_version``: rebased from
        there, like a member's edit) on behalf of the server (REST restore, server edits).

        Its version is noted as made by ``author`` "server"-side, or, with ``restored_from``
        (the version restored), as "restored" (``rooms.history``).

        Validated and applied exactly like a member's ``edit`` (all or nothing, RoomError when the
        batch does not fit), but by nobody in the room: ``author`` (default: the user
        ``client_id`` named "server") is recorded in the edit log and the edit is broadcast to
        every member as ``remote``/``remote_sync`` from ``client_id``. The caller submits the
        Outcome to the room's pipeline and learns there when it is durable (its ``ack`` is for
        nobody). ``(client_id, edit_id)`` must be new: a repeated key is not applied again.
        """
        user = author if author is not None else p.User(id=client_id, name="server")
        version = self.version if base_version is None else base_version
        msg = p.Edit(doc=self.doc_id, edit_id=edit_id, version=version, ops=ops)
        out = self._edit(
            Author(client_id, user, key_client(client_id, client_id)), msg, now_ms, None
        )
        if out.note is not None:
            how = "restored" if restored_from is not None else "server"
            out.note = replace(out.note, how=how, restored_from=restored_from)
        return out
