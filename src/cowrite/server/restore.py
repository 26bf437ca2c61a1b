"""REST restore's computation: the edits that give a document the value it had at a version.

``rest.py``'s ``restore`` route runs ``restore_edits`` through the room (each batch is a server
edit, ``Room.apply_server_edit``) and awaits the pipeline's futures until they are durable.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from cowrite import protocol as p
from cowrite.engine import history
from cowrite.engine.document import Document, MapState
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK
from cowrite.engine.ops import DELETED, NodeKind, NodeRef
from cowrite.engine.sequence import Gap
from cowrite.rooms.room import Outcome, Room, RoomError
from cowrite.rooms.wire import node_to_wire

log = logging.getLogger("cowrite.rest")

SERVER_CLIENT_ID = "server"


def restore_edits(room: Room, target: Mapping[int, int], now_ms: int) -> list[Outcome]:
    """Apply, through ``room``, the edits that give its document the value it had at ``target``.

    Sequences get index edits (kept elements stay, so cursors and concurrent edits keep their
    place), map keys and registers sets/deletes, counters an add of the difference. A nested node
    that must come back is created anew and filled in a following batch (its id is only known once
    created), so a restore is one batch per level of such nesting; each is one room version.
    Runs synchronously: nothing else touches the room in between.
    """
    planner = _RestorePlan(room.doc, target)
    planner.sync_roots()
    outcomes: list[Outcome] = []
    tag = uuid.uuid4().hex[:12]
    while planner.ops:
        ops, fills = planner.ops, planner.fills
        planner.ops, planner.fills = [], []
        try:
            outcome = room.apply_server_edit(
                ops, now_ms, client_id=SERVER_CLIENT_ID, edit_id=f"restore-{tag}-{len(outcomes)}"
            )
        except RoomError:
            if not outcomes:
                raise
            # earlier batches are applied and must be persisted: stop here, keep them
            log.exception("restore stopped part way", extra={"doc": room.doc_id})
            break
        outcomes.append(outcome)
        for locate, old in fills:
            planner.fill(locate(), old)
    return outcomes


Locator = Callable[[], int]


class _RestorePlan:
    """Wire ops (one batch at a time) turning the current document into its value at a version."""

    def __init__(self, doc: Document, target: Mapping[int, int]) -> None:
        self.doc = doc
        self.then = history._View(doc, target)
        self.ops: list[p.EditOp] = []
        self.fills: list[tuple[Locator, int]] = []

    def sync_roots(self) -> None:
        now = history._View(self.doc, self.doc.version)
        for node in sorted(self.doc.roots):
            self._sync(now, node)

    def _new(self, ref: NodeRef, locate: Locator) -> dict[str, str]:
        self.fills.append((locate, ref.id))
        return {"$new": ref.kind.name.lower()}

    def _sync(self, now: history._View, node: int) -> None:
        """Edits making ``node`` (present now and then) hold its old value."""
        doc = self.doc
        kind = doc.kind_of(node)
        wire = node_to_wire(doc, node)
        if kind is NodeKind.TEXT or kind is NodeKind.LIST:
            self._sync_sequence(now, node, wire)
        elif kind is NodeKind.MAP:
            state = doc.state_of(node)
            assert isinstance(state, MapState)
            current = {k: r.value for k, r in state.entries.items() if r.value is not DELETED}
            old = {
                k: v
                for k, (_, v) in self.then.lww(node).items()
                if k is not None and v is not DELETED
            }
            for key in sorted(set(current) | set(old)):
                if key not in old:
                    self.ops.append(p.DeleteKey(node=wire, key=key))
                    continue
                value, cur = old[key], current.get(key, DELETED)
                if type(value) is NodeRef:
                    if type(cur) is NodeRef and cur.id == value.id:
                        self._sync(now, value.id)
                    else:
                        new = self._new(value, _map_locator(doc, node, key))
                        self.ops.append(p.SetKey(node=wire, key=key, value=new))
                elif cur is DELETED or type(cur) is NodeRef or not _same(cur, value):
                    self.ops.append(p.SetKey(node=wire, key=key, value=value))
        elif kind is NodeKind.REGISTER:
            entry = self.then.lww(node).get(None)
            value = None if entry is None else entry[1]
            if not _same(doc.node_json(node), value):
                self.ops.append(p.SetKey(node=wire, key=None, value=value))
        else:
            amount = self.then.counter(node) - doc.node_json(node)
            if amount:
                self.ops.append(p.CounterAdd(node=wire, amount=amount))

    def _sync_sequence(self, now: history._View, node: int, wire: str) -> None:
        seq = self.doc.sequence(node)
        then = self.then
        edit: list[Any] = []
        j = 0  # index in the restored sequence
        for item in seq.items():
            if type(item.content) is Gap:  # deleted before the compaction base: in neither
                continue
            client = item.id & CLIENT_MASK
            first = item.id >> CLIENT_BITS
            n = len(item.content)
            in_now = now.visible_mask(client, first, n)
            in_then = then.visible_mask(client, first, n)
            for k in range(n):
                if in_now[k] and in_then[k]:
                    _push(edit, 1)
                    element = item.content[k]
                    if type(element) is NodeRef:
                        self._sync(now, element.id)
                    j += 1
                elif in_now[k]:
                    _push(edit, -1)
                elif in_then[k]:
                    element = item.content[k]
                    if seq.is_text:
                        _push(edit, element)
                    elif type(element) is NodeRef:
                        _push(edit, [self._new(element, _list_locator(self.doc, node, j))])
                    else:
                        _push(edit, [element])
                    j += 1
        while edit and isinstance(edit[-1], int) and edit[-1] > 0:
            edit.pop()
        if edit:
            self.ops.append(p.SeqEdit(node=wire, edit=edit))

    def fill(self, new: int, old: int) -> None:
        """Edits giving the fresh node ``new`` the value node ``old`` had then."""
        doc, then = self.doc, self.then
        kind = doc.kind_of(new)
        wire = node_to_wire(doc, new)
        if kind is NodeKind.TEXT:
            text = then.node_json(old)
            if text:
                self.ops.append(p.SeqEdit(node=wire, edit=[text]))
        elif kind is NodeKind.LIST:
            values: list[Any] = []
            for j, (_, element) in enumerate(then.sequence_elements(doc.sequence(old))):
                if type(element) is NodeRef:
                    values.append(self._new(element, _list_locator(doc, new, j)))
                else:
                    values.append(element)
            if values:
                self.ops.append(p.SeqEdit(node=wire, edit=[values]))
        elif kind is NodeKind.MAP:
            for key, (_, value) in sorted(then.lww(old).items(), key=lambda kv: str(kv[0])):
                if key is None or value is DELETED:
                    continue
                if type(value) is NodeRef:
                    value = self._new(value, _map_locator(doc, new, key))
                self.ops.append(p.SetKey(node=wire, key=key, value=value))
        elif kind is NodeKind.REGISTER:
            value = then.node_json(old)
            if value is not None:
                self.ops.append(p.SetKey(node=wire, key=None, value=value))
        else:
            amount = then.counter(old)
            if amount:
                self.ops.append(p.CounterAdd(node=wire, amount=amount))


def _map_locator(doc: Document, node: int, key: str) -> Locator:
    def locate() -> int:
        state = doc.state_of(node)
        assert isinstance(state, MapState)
        ref = state.entries[key].value
        assert type(ref) is NodeRef
        return ref.id

    return locate


def _list_locator(doc: Document, node: int, index: int) -> Locator:
    return lambda: doc.sequence(node).id_at(index)


def _push(edit: list[Any], component: Any) -> None:
    """Append an index-edit component, merging it with the last one when they combine."""
    if edit:
        last = edit[-1]
        if isinstance(component, int) and isinstance(last, int) and (component > 0) == (last > 0):
            edit[-1] = last + component
            return
        if isinstance(component, str) and isinstance(last, str):
            edit[-1] = last + component
            return
        if isinstance(component, list) and isinstance(last, list):
            last.extend(component)
            return
    edit.append(component)


def _same(a: Any, b: Any) -> bool:
    """JSON equality (``1 != True``, key order ignored)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
