"""The thin client of one document, sans I/O: steps T1-T10 of ``docs/protocol.md``.

The client keeps three things per document:

* the *server state* at ``version``: node id -> value, as the server had it after that version;
* ``inflight``: the one batch sent and not yet acknowledged, expressed against the server state;
* ``pending``: local edits not sent yet, composed per node (one index op per text/list node, the
  last write per map key or register, the sum of the adds per counter), against server+inflight.

The local view (what the user sees) is always ``server · inflight · pending``
(``check_invariants``). A ``remote`` R (another client's batch, to apply at ``version``) is
rebased over the client's own work like the server rebases client edits, client op on the
``left`` at ties: ``R' = transform(R, I, "right")``, ``I' = transform(I, R, "left")``, then the
same over the pending op P. The user sees R'' (what ``on_remote`` returns); the server state takes
R as sent. An ``ack`` moves the in-flight batch into the server state.

Reconnects: the client rejoins with its ``version``; the server replays what it missed as
``remote``s (its own in-flight batch among them: a ``remote`` carrying its ``client_id`` and the
in-flight ``edit_id`` counts as the ack), then the client resends the in-flight batch with the same
``edit_id`` (the server acknowledges an already-applied batch without applying it again). When
the server's history does not reach back that far it sends a snapshot instead, and the client does
a three-way merge: ``diff_seq(base, snapshot)`` is rebased like a remote over inflight and
pending. An ack that names a version the client has already seen means the batch was applied
before the snapshot: the client undoes its second local application of it (``_drop_inflight``).

Map, register and counter ops are not transformed: the server orders writes (last writer wins
per key) and adds commute. The client applies its own optimistically and shows the server's
value for a key only when it has no write of that key outstanding.

Nothing here does I/O or reads a clock; ``connection`` is the asyncio shell around it. The
rejoin and merge steps are in ``thin_merge``, cursor conversion in ``thin_cursors`` (mixins of
``ThinDocState``), the queue vocabulary (``Slot``, ``Batch``, ``DELETED``) in ``thin_slots``.
"""

from __future__ import annotations

import secrets
from collections import deque
from typing import Any

from cowrite import protocol as p
from cowrite.client import checksum
from cowrite.client.thin_cursors import ThinCursors
from cowrite.client.thin_merge import ThinMerge
from cowrite.client.thin_slots import (
    DELETED,
    RETRY_CODES,
    Batch,
    ErrorAction,
    ErrorOutcome,
    Slot,
    SlotKind,
    _wire_op,
)
from cowrite.client.thin_undo_revive import run_indices
from cowrite.client.values import (
    SEQ_KINDS,
    Kind,
    empty_value,
    kind_of_node_id,
    parse_kind,
)
from cowrite.engine import InvalidOperation, check_json, ot

__all__ = [
    "DELETED",
    "RETRY_CODES",
    "Batch",
    "ErrorAction",
    "ErrorOutcome",
    "Slot",
    "SlotKind",
    "ThinDocState",
]


class ThinDocState(ThinCursors, ThinMerge):
    """One document of a thin client. See the module docstring for the algorithm.

    Inputs: ``local_*`` (user edits), ``on_joined``/``on_remote``/``on_ack``/``on_error``
    (server messages), ``on_disconnect``. Outputs: ``take_batch`` (the edit to send, if any),
    ``join_message`` (when ``rejoin_needed``), and the changes each ``on_*`` returns: wire ops
    in local coordinates describing how the local view changed.
    """

    def __init__(
        self,
        doc: str,
        client_id: str,
        *,
        edit_id_prefix: str | None = None,
        history_versions: int = 1000,
        max_batch_ops: int = 1000,
        revive: bool = True,
    ) -> None:
        self.doc = doc
        self.client_id = client_id
        self.revive = revive
        """Send revival names (T11 "Revivals"); False for a server older than them (it refuses
        the unknown field). A session sets it from the server's ``features`` message."""
        self.version: int | None = None
        self.epoch = ""
        """What numbers ``version`` (the server's ``joined.epoch``)."""
        self.vv: dict[str, int] | None = None
        """The version vector of the server state (None: not known): on a rejoin the server
        can then send the exact changes since it, whatever instance or epoch it is."""
        """The last server version this client has applied (None before the first join)."""
        self.server: dict[str, Any] = {}
        self.local: dict[str, Any] = {}
        self.kinds: dict[str, Kind] = {}
        self.roots: dict[str, str] = {}
        self.rights: list[str] = []
        self.inflight: Batch | None = None
        self.pending: dict[Slot, Any] = {}
        self.joined = False
        self.rejoin_needed = False
        """True when the shell must send ``join_message()`` (a gap, a resync, a refused version)."""
        self.max_batch_ops = max_batch_ops
        self.checks = 0
        """``checksum`` messages verified (at our version); ``divergences``: how many failed."""
        self.divergences = 0
        self._want_snapshot = False
        self._join_sent = False  # a join is out and unanswered (its answer covers any rejoin: T6)
        self._prefix = edit_id_prefix or secrets.token_hex(6)
        self._edits = 0
        self._history: deque[tuple[int, list[tuple[str, ot.Op]]]] = deque(
            maxlen=max(1, history_versions)
        )
        self._history_from = 0
        self.observers: list[Any] = []
        """Undo managers (``thin_undo.UndoManager``) following text nodes: told of every change
        of the local text (``local``, ``remote``, ``drop_inflight``) and asked to ``settle``
        after each server message (their corrections are returned with its changes)."""

    # ------------------------------------------------------------- reading

    @property
    def synced(self) -> bool:
        """No local edit is waiting for an acknowledgement (everything is durable)."""
        return self.inflight is None and not self.pending

    def kind(self, node: str) -> Kind | None:
        return self.kinds.get(node) or kind_of_node_id(node)

    def value(self, node: str, kind: Kind | None = None) -> Any:
        """The local value of ``node`` (a copy for lists and maps)."""
        known = self.kind(node) or kind
        if node not in self.local:
            return empty_value(known) if known is not None else None
        value = self.local[node]
        if isinstance(value, list | dict):
            return value.copy()
        return value

    # --------------------------------------------------------- local edits

    def _claim(self, node: str, want: Kind | frozenset[str]) -> Kind:
        kind = self.kind(node)
        if kind is None:
            if isinstance(want, frozenset):
                raise InvalidOperation(f"unknown node {node!r}")
            kind = want
        if (kind not in want) if isinstance(want, frozenset) else (kind != want):
            raise InvalidOperation(f"{node} is a {kind}")
        self.kinds.setdefault(node, kind)
        return kind

    def local_edit(self, node: str, op: ot.Op) -> None:
        """Apply an index op to a text or list node now and queue it for the server."""
        kind = self._claim(node, SEQ_KINDS)
        op = ot.normalize(op)
        if not op:
            return
        for c in op:
            if isinstance(c, list):
                for v in c:
                    check_json(v)
                    if isinstance(v, dict) and ("$new" in v or "$node" in v):
                        raise InvalidOperation("thin clients create nested nodes in map keys only")
        before = self.local.get(node, empty_value(kind))
        after = ot.apply(before, op)  # raises, changing nothing, if the op does not fit
        for o in self.observers:
            o.local(node, op, before)
        self.local[node] = after
        slot: Slot = ("seq", node, None)
        composed = ot.compose(self.pending[slot], op) if slot in self.pending else op
        if composed:
            self.pending[slot] = composed
        else:
            self.pending.pop(slot, None)

    def local_set(self, node: str, key: str | None, value: Any) -> None:
        """Write a map key (``key``) or a register (``key`` None)."""
        self._claim(node, "register" if key is None else "map")
        check_json(value)
        if isinstance(value, dict) and "$node" in value:
            raise InvalidOperation("existing nodes cannot be written elsewhere; use {'$new': kind}")
        if isinstance(value, dict) and "$new" in value:
            if key is None:
                raise InvalidOperation("registers hold JSON values, not nested nodes")
            if len(value) != 1 or parse_kind(value["$new"]) is None:
                raise InvalidOperation(f"unknown node kind in {value!r}")
        self.pending[("set", node, key)] = value
        self._refresh_key(node, key)

    def local_delete(self, node: str, key: str) -> None:
        """Delete a map key."""
        self._claim(node, "map")
        self.pending[("set", node, key)] = DELETED
        self._refresh_key(node, key)

    def local_add(self, node: str, amount: int) -> None:
        """Add to a counter."""
        self._claim(node, "counter")
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise InvalidOperation("counter amounts are ints")
        if not amount:
            return
        slot: Slot = ("add", node, None)
        total = self.pending.get(slot, 0) + amount
        if total:
            self.pending[slot] = total
        else:
            self.pending.pop(slot, None)
        self.local[node] = self.local.get(node, 0) + amount

    # ------------------------------------------------------------- sending

    def join_message(self, *, create: bool = False) -> p.Join:
        """The ``join`` to send now (first join, after a reconnect, or when ``rejoin_needed``)."""
        version = None if self._want_snapshot else self.version
        self.joined = False
        self._join_sent = True
        self.rejoin_needed = False
        if self.inflight is not None:
            self.inflight.sent = False
        epoch = self.epoch if version is not None else ""
        state = dict(self.vv) if version is not None and self.vv is not None else None
        inflight = self.inflight.edit_id if state is not None and self.inflight else None
        return p.Join(
            doc=self.doc,
            mode="thin",
            version=version,
            epoch=epoch,
            inflight=inflight,
            state=state,
            create=create,
        )

    def take_batch(self) -> p.Edit | None:
        """The edit to send now, or None: nothing queued, not joined, or a batch in flight.

        The in-flight batch is returned again (same ``edit_id``) after a rejoin or a retry.
        """
        if not self.joined or self.version is None:
            return None
        batch = self.inflight
        if batch is None:
            if not self.pending:
                return None
            slots = list(self.pending)[: self.max_batch_ops]
            ops = {slot: self.pending.pop(slot) for slot in slots}
            self._edits += 1
            batch = self.inflight = Batch(f"{self._prefix}-{self._edits}", ops)
        elif batch.sent:
            return None
        batch.sent = True
        # what an undo/redo brings back, named for the server (T11 "Revivals"); again at a
        # resend: the batch's own deletes are indexed in the op as sent (rebased since)
        named = self.observers if self.revive else []
        revive = [run for o in named if hasattr(o, "marks") for run in o.marks(batch)]
        withdraw = [w for o in named if hasattr(o, "withdrawals") for w in o.withdrawals(batch)]
        return p.Edit(
            doc=self.doc,
            edit_id=batch.edit_id,
            version=self.version,
            ops=[_wire_op(slot, payload) for slot, payload in batch.ops.items()],
            revive=revive or None,
            withdraw=withdraw or None,
        )

    # ------------------------------------------------------------ receiving

    def on_joined(self, msg: p.Joined) -> list[p.EditOp]:
        """The server accepted our join: load its snapshot, or expect catch-up ``remote``s."""
        self.joined = True
        self.rejoin_needed = False
        self._want_snapshot = False
        self._join_sent = False
        self.epoch = msg.epoch
        self.rights = list(msg.rights)
        if msg.roots:
            self.roots = dict(msg.roots)
        if self.inflight is not None:
            self.inflight.sent = False
        if msg.ops is not None and self.version is not None:
            return self._load_changes(msg)
        if msg.state is not None:
            self.vv = dict(msg.state)
        if msg.snapshot is None:
            if self.version is None:
                self.version = msg.version
                self._history_from = msg.version
            elif msg.version != self.version:
                self.request_rejoin(snapshot=True)
            return []
        batch = self.inflight  # named by ``acked``: the snapshot holds it, settle it first (T8)
        settled = self._settle(batch, [])[1] if batch and msg.acked == batch.edit_id else []
        return settled + self._load_snapshot(msg.version, msg.snapshot)

    def on_remote(self, msg: p.Remote) -> list[p.EditOp]:
        """Another client's batch (or catch-up): returns it rebased to the local view."""
        if self.version is None or msg.version <= self.version or not self.joined:
            return []  # a duplicate, or sent before our join was read (its answer covers it: T6)
        if msg.version != self.version + 1:
            self.request_rejoin()  # we missed versions: catch up
            return []
        batch = self.inflight
        if batch is not None and msg.client_id == self.client_id and msg.edit_id == batch.edit_id:
            return self._own_remote(msg)
        changes: list[p.EditOp] = []
        meta = {"client_id": msg.client_id, "edit_id": msg.edit_id, "version": msg.version}
        seq_ops = self._apply_remote_ops(msg.ops, changes, meta)
        if seq_ops is not None:
            self._advance(msg.version, seq_ops, msg.vv)
        return self._settle_observers(changes)

    def _apply_remote_ops(
        self, ops: list[p.EditOp], changes: list[p.EditOp], meta: dict[str, Any]
    ) -> list[tuple[str, ot.Op]] | None:
        """Apply server ops to the server state and, rebased, to the local view (appended to
        ``changes``); their sequence ops, or None if our copy diverged (a rejoin is asked).
        ``meta``: what the observers learn of the message (edit_id, version; or barrier)."""
        seq_ops: list[tuple[str, ot.Op]] = []
        try:
            for op in ops:
                before = (
                    self._server_value(op.node)
                    if self.observers and isinstance(op, p.SeqEdit)
                    else None
                )
                seq = self._apply_server(op)
                if seq is not None:
                    seq_ops.append(seq)
                    if before is not None:
                        for o in self.observers:
                            o.remote(seq[0], seq[1], before, meta)
                change = self._rebase_remote(op)
                if change is not None:
                    changes.append(change)
        except InvalidOperation:
            self.request_rejoin(snapshot=True)  # our copy diverged: merge with a snapshot
            return None
        return seq_ops

    def _settle_observers(self, changes: list[p.EditOp]) -> list[p.EditOp]:
        """``changes`` and what the observers changed settling a server message."""
        for o in self.observers:
            changes.extend(p.SeqEdit(node=c.node, edit=c.edit) for c in o.settle())
        return changes

    def on_ack(self, msg: p.Ack) -> list[p.EditOp]:
        """Our in-flight batch is applied and durable at ``msg.version``."""
        batch = self.inflight
        if batch is None or msg.edit_id != batch.edit_id or self.version is None or not self.joined:
            return []  # a duplicate ack, or sent before our join was read (its answer covers it)
        if msg.version > self.version + 1:
            self.request_rejoin()  # versions in between are missing: catch up first
            return []
        if msg.version <= self.version:
            # applied before the snapshot we hold: our resend applied it locally a second time
            return self._drop_inflight()
        for o in self.observers:
            if hasattr(o, "acked"):
                o.acked(batch)
        drops = self._drops(batch, lambda node, payload: run_indices(msg.dropped, node))
        seq_ops, changes = self._settle(batch, msg.created)
        if drops:
            return self._settle_drops(msg, drops, seq_ops, changes)
        self._advance(msg.version, seq_ops, msg.vv)
        return changes

    def _settle(
        self, batch: Batch, created_ids: list[str]
    ) -> tuple[list[tuple[str, ot.Op]], list[p.EditOp]]:
        """The in-flight ``batch`` is applied: move it into the server state."""
        created = iter(created_ids)
        seq_ops: list[tuple[str, ot.Op]] = []
        for (kind, node, key), payload in batch.ops.items():
            if kind == "seq":
                self.server[node] = ot.apply(self._server_value(node), payload)
                seq_ops.append((node, payload))
            elif kind == "add":
                self.server[node] = self._server_value(node) + payload
            else:
                value = payload
                if isinstance(value, dict) and "$new" in value:
                    new_id = next(created, None)
                    if new_id is not None:
                        value = {"$node": new_id}
                        self._new_node(new_id, value_kind=parse_kind(payload["$new"]))
                self._server_set(node, key, value)
        self.inflight = None
        return seq_ops, self._refresh_slots(batch)

    def on_error(self, msg: p.Error) -> ErrorOutcome:
        """An ``error`` for this document: what to do about it (see ``ErrorOutcome``)."""
        batch = self.inflight
        code = msg.code
        if batch is not None and msg.edit_id == batch.edit_id:
            if code in RETRY_CODES:
                batch.sent = False
                return ErrorOutcome("retry")
            if code in (p.ErrorCode.STALE_VERSION, p.ErrorCode.NOT_JOINED):
                self.request_rejoin()
                return ErrorOutcome("rejoin")
            if code is p.ErrorCode.FUTURE_VERSION:
                self.request_rejoin(snapshot=True)
                return ErrorOutcome("rejoin")
            changes = self._drop_inflight()
            if code is p.ErrorCode.INTERNAL:
                # the server failed half-way: we cannot know what it applied
                self.request_rejoin(snapshot=True)
            return ErrorOutcome("rejected", changes)
        if msg.edit_id is None and code in (p.ErrorCode.STALE_VERSION, p.ErrorCode.FUTURE_VERSION):
            self._join_sent = False  # it refused our join
            self.request_rejoin(snapshot=True)  # our join version is unusable: take a snapshot
            return ErrorOutcome("rejoin")
        if msg.edit_id is None and code is p.ErrorCode.NOT_JOINED:
            self.request_rejoin()
            return ErrorOutcome("rejoin")
        return ErrorOutcome("ignore")

    def on_checksum(self, msg: p.Checksum) -> list[str]:
        """Verify our copy (``client.checksum``); the nodes that failed (a snapshot rejoin is
        then requested)."""
        diverged = checksum.verify(self, msg)
        self.divergences += len(diverged)
        return diverged

    def on_resync(self) -> None:
        """The server asked for a rejoin (``resync``)."""
        self.request_rejoin()

    def on_disconnect(self) -> None:
        """The connection is gone: whatever was in flight must be resent after the rejoin."""
        self.joined = False
        self._join_sent = False
        if self.inflight is not None:
            self.inflight.sent = False

    def request_rejoin(self, *, snapshot: bool = False) -> None:
        if self._join_sent:
            return  # the server sent what asks for it before reading our join: T6
        self.rejoin_needed = True
        self.joined = False
        if snapshot:
            self._want_snapshot = True
        if self.inflight is not None:
            self.inflight.sent = False

    # ------------------------------------------------------------- checks

    def check_invariants(self) -> None:
        """The local view is server · inflight · pending; AssertionError when it is not."""
        batches = [self.inflight.ops] if self.inflight is not None else []
        batches.append(self.pending)
        nodes = set(self.local) | set(self.server)
        for ops in batches:
            nodes.update(node for _, node, _ in ops)
        for node in nodes:
            kind = self.kind(node)
            if kind is None:
                continue
            expected: Any
            if kind in SEQ_KINDS:
                expected = self._server_value(node)
                for ops in batches:
                    op = ops.get(("seq", node, None))
                    if op is not None:
                        expected = ot.apply(expected, op)
            else:
                expected = self._computed(node, kind)
            if self.local.get(node, empty_value(kind)) != expected:
                raise AssertionError(
                    f"{node}: local {self.local.get(node)!r} != server·inflight·pending "
                    f"{expected!r}"
                )

    # ------------------------------------------------------------ internals

    def _history_start(self) -> int:
        """The oldest version whose successors are all in the history."""
        if self._history.maxlen is not None and len(self._history) == self._history.maxlen:
            return self._history[0][0] - 1
        return self._history_from

    def _advance(self, version: int, seq_ops: list[tuple[str, ot.Op]], vv: dict[str, int]) -> None:
        self.version = version
        self._history.append((version, seq_ops))
        if self.vv is not None:
            self.vv.update(vv)

    def _server_value(self, node: str) -> Any:
        if node in self.server:
            return self.server[node]
        kind = self.kind(node)
        return empty_value(kind) if kind is not None else None

    def _infer_kind(self, op: p.EditOp) -> Kind | None:
        kind = self.kind(op.node)
        if kind is not None:
            return kind
        if isinstance(op, p.SeqEdit):
            for c in op.edit:
                if isinstance(c, str):
                    kind = "text"
                elif isinstance(c, list):
                    kind = "list"
        elif isinstance(op, p.SetKey):
            kind = "register" if op.key is None else "map"
        elif isinstance(op, p.DeleteKey):
            kind = "map"
        else:
            kind = "counter"
        if kind is not None:
            self.kinds[op.node] = kind
        return kind

    def _new_node(self, node: str, *, value_kind: Kind | None) -> None:
        if value_kind is None:
            return
        self.kinds.setdefault(node, value_kind)
        self.server.setdefault(node, empty_value(value_kind))
        self.local.setdefault(node, empty_value(value_kind))

    def _server_set(self, node: str, key: str | None, value: Any) -> None:
        if key is None:
            self.server[node] = value
            return
        current = self.server.get(node)
        entries = dict(current) if isinstance(current, dict) else {}
        if value is DELETED:
            entries.pop(key, None)
        else:
            entries[key] = value
        self.server[node] = entries

    def _apply_server(self, op: p.EditOp) -> tuple[str, ot.Op] | None:
        """Apply a server-ordered op to the server state; returns (node, op) for sequences."""
        kind = self._infer_kind(op)
        node = op.node
        if isinstance(op, p.SeqEdit):
            if kind is None:
                raise InvalidOperation(f"an edit of {node}, whose kind this client does not know")
            edit = ot.normalize(op.edit)
            self.server[node] = ot.apply(self._server_value(node), edit)
            return node, edit
        if isinstance(op, p.SetKey):
            self._server_set(node, op.key, op.value)
        elif isinstance(op, p.DeleteKey):
            self._server_set(node, op.key, DELETED)
        else:
            self.server[node] = self._server_value(node) + op.amount
        return None

    def _rebase_remote(self, op: p.EditOp) -> p.EditOp | None:
        """The local change a remote op makes (server state already updated)."""
        node = op.node
        if isinstance(op, p.SeqEdit):
            r = ot.normalize(op.edit)
            slot: Slot = ("seq", node, None)
            batch = self.inflight
            if batch is not None and slot in batch.ops:
                i = batch.ops[slot]
                r, batch.ops[slot] = ot.transform(r, i, "right"), ot.transform(i, r, "left")
            if slot in self.pending:
                mine = self.pending[slot]
                r, mine = ot.transform(r, mine, "right"), ot.transform(mine, r, "left")
                if mine:
                    self.pending[slot] = mine
                else:
                    del self.pending[slot]
            if not r:
                return None
            kind = self.kind(node)
            assert kind is not None
            self.local[node] = ot.apply(self.local.get(node, empty_value(kind)), r)
            return p.SeqEdit(node=node, edit=r)
        if isinstance(op, p.SetKey | p.DeleteKey):
            return self._refresh_key(node, op.key)
        return self._refresh_counter(node)
