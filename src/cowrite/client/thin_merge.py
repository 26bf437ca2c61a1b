"""Rejoin and merge helpers of the thin client: catch-ups, snapshots, undoing a batch.

Why a module of its own: on a rejoin the server answers with the changes since our state, with
our own batch coming back, or with a snapshot to merge three ways (``docs/protocol.md``). These
paths, and the per-slot refresh of the local view they share, are the bulk of the thin core and
read best next to each other, apart from the steady-state edit loop in ``thin``.

Caller's contract: ``ThinMerge`` is a mixin for ``ThinDocState`` only (which owns the state and
the methods declared below). Each helper updates the server state, the queues and the local view
together, keeping ``check_invariants`` true, and returns the changes to the local view as wire
ops in local coordinates, for the ``on_*`` input that called it to return to the shell.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cowrite import protocol as p
from cowrite.client.thin_slots import _ABSENT, DELETED, Batch, Slot
from cowrite.client.thin_undo_revive import delete_inserted, dropped_inserts
from cowrite.client.values import SEQ_KINDS, Kind, diff_seq, empty_value, parse_kind
from cowrite.engine import InvalidOperation, ot


class ThinMerge:
    """Rejoin and merge steps of a ``ThinDocState`` (a mixin: see the module docstring)."""

    if TYPE_CHECKING:
        version: int | None
        vv: dict[str, int] | None
        server: dict[str, Any]
        local: dict[str, Any]
        client_id: str
        observers: list[Any]
        kinds: dict[str, Kind]
        inflight: Batch | None
        pending: dict[Slot, Any]
        _history: deque[tuple[int, list[tuple[str, ot.Op]]]]
        _history_from: int

        def kind(self, node: str) -> Kind | None: ...
        def request_rejoin(self, *, snapshot: bool = False) -> None: ...
        def _server_value(self, node: str) -> Any: ...
        def _settle_observers(self, changes: list[p.EditOp]) -> list[p.EditOp]: ...
        def _apply_server(self, op: p.EditOp) -> tuple[str, ot.Op] | None: ...
        def _rebase_remote(self, op: p.EditOp) -> p.EditOp | None: ...
        def _advance(
            self, version: int, seq_ops: list[tuple[str, ot.Op]], vv: dict[str, int]
        ) -> None: ...
        def _settle(
            self, batch: Batch, created_ids: list[str]
        ) -> tuple[list[tuple[str, ot.Op]], list[p.EditOp]]: ...
        def _apply_remote_ops(
            self, ops: list[p.EditOp], changes: list[p.EditOp], meta: dict[str, Any]
        ) -> list[tuple[str, ot.Op]] | None: ...
        def _settle_observers(self, changes: list[p.EditOp]) -> list[p.EditOp]: ...

    def _drops(
        self, batch: Batch, indices: Callable[[str, ot.Op], set[int] | None]
    ) -> list[p.EditOp]:
        """The seq ops deleting what the server left out of ``batch`` (T11 "Revivals"):
        ``indices(node, payload)`` names the code points of a node's payload it dropped."""
        drops: list[p.EditOp] = []
        for (kind, node, _), payload in batch.ops.items():
            if kind != "seq":
                continue
            found = indices(node, payload)
            edit = delete_inserted(payload, found) if found else None
            if edit:
                drops.append(p.SeqEdit(node=node, edit=edit))
        return drops

    def _settle_drops(
        self,
        msg: p.Ack | p.Remote,
        drops: list[p.EditOp],
        seq_ops: list[tuple[str, ot.Op]],
        changes: list[p.EditOp],
    ) -> list[p.EditOp]:
        """Our batch is settled as we held it; what the server dropped of it goes like a remote
        op right after it (rebased over our pending edits), at the same version."""
        edit_id = msg.edit_id
        meta = {"client_id": self.client_id, "edit_id": edit_id, "version": msg.version}
        more = self._apply_remote_ops(drops, changes, meta)
        if more is not None:
            self._advance(msg.version, [*seq_ops, *more], msg.vv)
        return self._settle_observers(changes)

    def _own_remote(self, msg: p.Remote) -> list[p.EditOp]:
        """Our in-flight batch came back in a catch-up: it is acknowledged. The server may have
        left out some of what it revived (T11 "Revivals"; a catch-up names no ``dropped``): the
        applied op is ours without those code points."""
        batch = self.inflight
        assert batch is not None
        for o in self.observers:
            if hasattr(o, "acked"):
                o.acked(batch)
        applied = {op.node: op.edit for op in msg.ops if isinstance(op, p.SeqEdit)}
        drops = self._drops(
            batch,
            lambda node, payload: (
                dropped_inserts(payload, applied[node]) if node in applied else None
            ),
        )
        ops = msg.ops
        if drops:
            gone = {d.node for d in drops}
            ops = [
                p.SeqEdit(node=op.node, edit=batch.ops[("seq", op.node, None)])
                if isinstance(op, p.SeqEdit) and op.node in gone
                else op
                for op in msg.ops
            ]
        seq_ops: list[tuple[str, ot.Op]] = []
        try:
            for op in ops:
                seq = self._apply_server(op)
                if seq is not None:
                    seq_ops.append(seq)
        except InvalidOperation:
            self.request_rejoin(snapshot=True)
            return []
        self.inflight = None
        changes = self._refresh_slots(batch)
        if drops:
            return self._settle_drops(msg, drops, seq_ops, changes)
        self._advance(msg.version, seq_ops, msg.vv)
        return changes

    def _load_changes(self, msg: p.Joined) -> list[p.EditOp]:
        """A rejoin answered with the exact changes since our state: apply them like a remote
        (rebased over our unacknowledged edits), then take the server's numbering."""
        changes: list[p.EditOp] = []
        batch = self.inflight
        if batch is not None and msg.acked == batch.edit_id:  # ``ops`` start after it
            changes.extend(self._settle(batch, [])[1])
        meta = {"barrier": True, "version": msg.version}  # a catch-up cannot say what it holds
        if self._apply_remote_ops(msg.ops or [], changes, meta) is None:
            return self._settle_observers(changes)
        self.version = msg.version
        self._history.clear()
        self._history_from = msg.version
        self.vv = dict(msg.state) if msg.state is not None else None
        return self._settle_observers(changes)

    def _refresh_slots(self, batch: Batch) -> list[p.EditOp]:
        """Local values of the non-sequence slots ``batch`` wrote, after it left flight."""
        changes: list[p.EditOp] = []
        for kind, node, key in batch.ops:
            change: p.EditOp | None = None
            if kind == "set":
                change = self._refresh_key(node, key)
            elif kind == "add":
                change = self._refresh_counter(node)
            if change is not None:
                changes.append(change)
        return changes

    def _drop_inflight(self) -> list[p.EditOp]:
        """Undo the in-flight batch locally (refused, or applied twice); pending stays."""
        batch = self.inflight
        if batch is None:
            return []
        for o in self.observers:
            o.drop_inflight()  # before anything changes (thin_undo)
        self.inflight = None
        changes: list[p.EditOp] = []
        for slot, payload in batch.ops.items():
            kind, node, _ = slot
            if kind == "seq":
                undo = ot.invert(payload, self._server_value(node))
                if slot in self.pending:
                    mine = self.pending[slot]
                    undo, mine = ot.transform(undo, mine, "right"), ot.transform(mine, undo, "left")
                    if mine:
                        self.pending[slot] = mine
                    else:
                        del self.pending[slot]
                if undo:
                    self.local[node] = ot.apply(self.local[node], undo)
                    changes.append(p.SeqEdit(node=node, edit=undo))
        changes.extend(self._refresh_slots(batch))
        return self._settle_observers(changes)

    def _effective(self, node: str, key: str | None) -> Any:
        """What the local view shows for a map key / register: our last write, else the server's."""
        slot: Slot = ("set", node, key)
        if slot in self.pending:
            value = self.pending[slot]
        elif self.inflight is not None and slot in self.inflight.ops:
            value = self.inflight.ops[slot]
        elif key is None:
            return self.server.get(node)
        else:
            entries = self.server.get(node)
            return entries.get(key, _ABSENT) if isinstance(entries, dict) else _ABSENT
        return _ABSENT if value is DELETED else value

    def _refresh_key(self, node: str, key: str | None) -> p.EditOp | None:
        value = self._effective(node, key)
        if key is None:
            if node in self.local and self.local[node] == value:
                return None
            self.local[node] = value
            return p.SetKey(node=node, value=value)
        current = self.local.get(node)
        entries = current if isinstance(current, dict) else {}
        old = entries.get(key, _ABSENT)
        if old is not _ABSENT and old == value:
            return None
        if old is _ABSENT and value is _ABSENT:
            self.local.setdefault(node, entries)
            return None
        entries = dict(entries)
        if value is _ABSENT:
            del entries[key]
            self.local[node] = entries
            return p.DeleteKey(node=node, key=key)
        entries[key] = value
        self.local[node] = entries
        return p.SetKey(node=node, key=key, value=value)

    def _counter(self, node: str) -> int:
        total = int(self._server_value(node) or 0)
        slot: Slot = ("add", node, None)
        if self.inflight is not None:
            total += int(self.inflight.ops.get(slot, 0))
        return total + int(self.pending.get(slot, 0))

    def _refresh_counter(self, node: str) -> p.EditOp | None:
        value = self._counter(node)
        old = self.local.get(node, 0)
        self.local[node] = value
        return p.CounterAdd(node=node, amount=value - old) if value != old else None

    def _computed(self, node: str, kind: Kind) -> Any:
        """The local value of a non-sequence node, from the server state and our writes."""
        if kind == "counter":
            return self._counter(node)
        if kind == "register":
            return self._effective(node, None)
        server = self.server.get(node)
        entries = dict(server) if isinstance(server, dict) else {}
        for ops in (self.inflight.ops if self.inflight else {}, self.pending):
            for (slot_kind, n, key), value in ops.items():
                if slot_kind == "set" and n == node and key is not None:
                    if value is DELETED:
                        entries.pop(key, None)
                    else:
                        entries[key] = value
        return entries

    def _load_snapshot(self, version: int, snapshot: dict[str, Any]) -> list[p.EditOp]:
        """Take the server's state at ``version``: a three-way merge with our unsent work."""
        theirs: dict[str, Any] = {}
        for node, entry in snapshot.items():
            if isinstance(entry, dict) and "kind" in entry and "value" in entry:
                kind, value = parse_kind(entry["kind"]), entry["value"]
            else:
                kind, value = None, entry
            if kind is None:
                kind = self.kind(node) or _kind_of_value(value)
            if kind is None:
                continue
            self.kinds[node] = kind
            theirs[node] = value
        nodes = set(theirs) | set(self.server) | set(self.local)
        batches = [self.inflight.ops] if self.inflight is not None else []
        batches.append(self.pending)
        for ops in batches:
            nodes.update(node for _, node, _ in ops)
        changes: list[p.EditOp] = []
        for node in sorted(nodes):
            kind = self.kind(node)
            if kind not in SEQ_KINDS:
                continue
            assert kind is not None
            base = self._server_value(node)
            new = theirs.get(node, empty_value(kind))
            if type(base) is not type(new):
                base = empty_value(kind)
            change = p.SeqEdit(node=node, edit=diff_seq(base, new))
            self.server[node] = base
            if change.edit:
                for o in self.observers:
                    o.remote(node, change.edit, base, {"barrier": True, "version": version})
            rebased = self._rebase_remote(change)  # like a remote: over inflight and pending
            if rebased is not None:
                changes.append(rebased)
        old_local = self.local
        self.server = {n: v for n, v in theirs.items()}
        for node in sorted(nodes):
            kind = self.kind(node)
            if kind is None:
                continue
            if kind in SEQ_KINDS:
                self.server.setdefault(node, empty_value(kind))
                continue
            value = self._computed(node, kind)
            old = old_local.get(node, empty_value(kind))
            self.local[node] = value
            changes.extend(_value_changes(node, kind, old, value))
        self.version = version
        self._history.clear()
        self._history_from = version
        return self._settle_observers(changes)


def _kind_of_value(value: Any) -> Kind | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return None


def _value_changes(node: str, kind: Kind, old: Any, new: Any) -> list[p.EditOp]:
    """Wire ops turning ``old`` into ``new`` for a map, register or counter."""
    if old == new:
        return []
    if kind == "counter":
        return [p.CounterAdd(node=node, amount=int(new or 0) - int(old or 0))]
    if kind == "register":
        return [p.SetKey(node=node, value=new)]
    old_map = old if isinstance(old, dict) else {}
    new_map = new if isinstance(new, dict) else {}
    out: list[p.EditOp] = []
    for key, value in new_map.items():
        if key not in old_map or old_map[key] != value:
            out.append(p.SetKey(node=node, key=key, value=value))
    out.extend(p.DeleteKey(node=node, key=key) for key in old_map if key not in new_map)
    return out
