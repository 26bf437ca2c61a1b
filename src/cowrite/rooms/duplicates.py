"""Undoing the second copy of an edit that two instances both applied.

A client whose connection splits (its first instance still storing its batch while the resend
reaches a second one) can get the batch applied by both. The store refuses the second append of
the same edit key (`DuplicateEdit`), but by then that instance's room has applied the batch as
new CRDT operations, and later updates may build on them: they cannot be taken back out of the
document. So the second copy is stored all the same (without its key) and followed by an edit
that undoes its visible effect: its inserted elements are deleted and its counter adds negated.
Map and register writes need nothing (the copy writes the value the first copy wrote), nor do
deletions (deleting an element twice changes nothing). Every replica then converges on the
document with the batch applied once.
"""

from __future__ import annotations

from typing import Any

from cowrite import protocol as p
from cowrite.engine import AddOp, Document, InsertOp, decode_ops, element_id
from cowrite.rooms.edit_keys import unwrap_update
from cowrite.rooms.wire import node_to_wire


def undo_ops(doc: Document, update: bytes) -> list[p.EditOp]:
    """Wire ops (against ``doc`` now) that undo the effect of ``update`` (a stored update that
    ``doc`` has applied): delete what it inserted and is still visible, negate what it added."""
    _, _, _, delta = unwrap_update(update)
    deleted: dict[int, list[int]] = {}
    added: dict[int, int] = {}
    for op in decode_ops(doc, delta):
        if type(op) is InsertOp:
            seq = doc.sequence(op.node)
            for k in range(len(op.content)):
                pos, visible = seq.position_of(element_id(op, k))
                if visible:
                    deleted.setdefault(op.node, []).append(pos)
        elif type(op) is AddOp:
            added[op.node] = added.get(op.node, 0) - op.amount
    out: list[p.EditOp] = []
    for node, positions in deleted.items():
        out.append(p.SeqEdit(node=node_to_wire(doc, node), edit=_delete_positions(positions)))
    for node, amount in added.items():
        if amount:
            out.append(p.CounterAdd(node=node_to_wire(doc, node), amount=amount))
    return out


def _delete_positions(positions: list[int]) -> list[Any]:
    """An index edit deleting the elements at ``positions`` (distinct, any order)."""
    edit: list[Any] = []
    at = 0
    for pos in sorted(positions):
        if pos > at:
            edit.append(pos - at)
            at = pos
        if edit and isinstance(edit[-1], int) and edit[-1] < 0 and at == pos:
            edit[-1] -= 1
        else:
            edit.append(-1)
        at = pos + 1
    return edit
