"""Replica deltas and other instances' updates: CRDT ops merged op by op (up to the first one
the document refuses), recorded as one version, and broadcast as a delta to replicas and as wire
ops to thin clients.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from cowrite import protocol as p
from cowrite.engine import (
    DELETED,
    Change,
    InvalidOperation,
    NodeKind,
    TooManyReplicas,
    VersionVector,
    decode_ops,
    map_value,
    pace,
)
from cowrite.engine import Op as EngineOp
from cowrite.rooms import edit_keys, history, validate
from cowrite.rooms.edit_keys import client_of
from cowrite.rooms.state import (
    Audience,
    Member,
    Outcome,
    RoomError,
    RoomState,
    _is_seq,
    _wire_list,
)
from cowrite.rooms.wire import node_to_wire, value_to_wire


class Replicas(RoomState):
    """`Room`'s replica syncs and merged updates."""

    if TYPE_CHECKING:  # presence (``room.py``)

        def _touch(self, member: Member, now_ms: int) -> bool: ...

        def _presence_of(self, member: Member) -> tuple[p.Message, Audience]: ...

        def _learn_revivals(self, key_client: str, extra: bytes) -> None: ...  # (edits.py)

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
        named = (msg.edit_id or "") if error is None else ""  # applied in part: not that edit
        version, ops_out, seq_nodes = self._record_merged(changes, member.client_id, named, before)
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
        broadcast = self._merged_broadcast(
            version, ops_out, seq_nodes, exact, member.client_id, named, relayed
        )
        if woke:
            broadcast.append(self._presence_of(member))
        return Outcome(
            persist=edit_keys.wrap_update(member.key_client, named, data),
            version=version,
            edit_keys=keys,
            reply=reply,
            broadcast=broadcast,
            note=history.note(before, doc.version, now_ms, member.user.id, member.user.name),
        )

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
            client, edit_id, digest, extra, delta = edit_keys.unwrap_update_extra(data)
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
        version, ops_out, seq_nodes = self._record_merged(
            changes, client_of(client), edit_id, before
        )
        if edit_id and (client, edit_id) not in self._recent:
            self.remember((client, edit_id), version, digest)
        if edit_id:  # what it revived is judged here as where it was applied
            self._learn_revivals(client, extra)
        # ops this update released from the causal queue came in earlier updates, which members
        # who joined since never got: relay everything that was applied
        relayed = delta if error is None and not before_pending else doc.delta_since(before)
        broadcast = self._merged_broadcast(
            version,
            ops_out,
            seq_nodes,
            exact,
            client_of(client),
            edit_id,
            base64.b64encode(relayed).decode(),
        )
        return Outcome(version=version, broadcast=broadcast)

    def _record_merged(
        self,
        changes: list[Change],
        client: str,
        edit_id: str,
        before: VersionVector,
    ) -> tuple[int, list[p.EditOp], list[int]]:
        """Log CRDT changes just merged (a replica's delta, a stored or another instance's
        update) as the next version: its number, its wire ops, the sequences it changed."""
        ops_out = self._wire_ops(changes)
        seq_changes = [(c.node, c.delta) for c in changes if c.delta and _is_seq(c)]
        version = self._record(ops_out, seq_changes, client, edit_id, before)
        return version, ops_out, [n for n, _ in seq_changes]

    def _merged_broadcast(
        self,
        version: int,
        ops_out: list[p.EditOp],
        seq_nodes: list[int],
        exact: bool,
        client: str,
        edit_id: str,
        relayed: str,
    ) -> list[tuple[p.Message, Audience]]:
        """What every member gets of a merged version: ``relayed`` (base64 delta) for replicas;
        for thin clients its wire ops (and a checksum when one is due), or, when the changes do
        not describe everything the engine did (``exact`` false), a resync."""
        broadcast: list[tuple[p.Message, Audience]] = [
            (p.RemoteSync(doc=self.doc_id, delta=relayed, version=version), "replica")
        ]
        if exact:
            remote = p.Remote(
                doc=self.doc_id,
                version=version,
                ops=ops_out,
                client_id=client,
                edit_id=edit_id,
                vv=self._origins[version].vv,
            )
            broadcast.append((remote, "thin"))
            check = self.checks.after(version, seq_nodes)
            if check is not None:
                broadcast.append((check, "thin"))
        else:  # the engine changed more than it reported: thin clients must reload
            broadcast.append(
                (p.Resync(doc=self.doc_id, reason="the document changed unexpectedly"), "thin")
            )
        return broadcast

    def _apply_remote_ops(self, ops: list[EngineOp]) -> tuple[list[Change], str | None, bool]:
        """Apply decoded ops one at a time, up to the first one the document refuses.

        Returns the changes, the refusal (None if every op applied) and whether the changes
        describe everything that happened (False if a refused call changed the document anyway,
        e.g. by releasing queued ops before failing).
        """
        doc = self.doc
        changes: list[Change] = []
        for op in ops:
            pace()  # a long update (a log replayed in a load's worker thread) lets others run
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
                value = map_value(doc, c.node, c.key)
                if value is DELETED:
                    ops.append(p.DeleteKey(node=node, key=c.key))
                else:
                    ops.append(p.SetKey(node=node, key=c.key, value=value_to_wire(doc, value)))
        return ops
