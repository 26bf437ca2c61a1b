"""REST restore's computation: the edits that give a document the value it had at a version.

The engine computes them (``cowrite.engine.restore_batches``); this module turns each batch into
wire ops and applies it through the room as a server edit (``Room.apply_server_edit``).
``rest.py``'s ``restore`` route then awaits the pipeline's futures until they are durable.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

from cowrite import protocol as p
from cowrite.engine import (
    CounterAdd,
    Document,
    KeyDelete,
    KeyWrite,
    NewNode,
    RestoreEdit,
    SequenceEdit,
    restore_batches,
)
from cowrite.rooms.room import Outcome, Room, RoomError
from cowrite.rooms.wire import node_to_wire

log = logging.getLogger("cowrite.rest")

SERVER_CLIENT_ID = "server"


def restore_edits(
    room: Room,
    target: Mapping[int, int],
    now_ms: int,
    author: p.User | None = None,
    restored_from: int | None = None,
) -> list[Outcome]:
    """Apply, through ``room``, the edits that give its document the value it had at ``target``.

    The engine computes them (``restore_batches``: sequences get index edits, map keys and
    registers sets/deletes, counters an add of the difference); a nested node that must come back
    is created anew and filled in a following batch, so a restore is one batch per level of such
    nesting; each is one room version. Runs synchronously: nothing else touches the room in
    between. ``author``: who asked (recorded with each batch; default: the server);
    ``restored_from``: the version restored (each batch is noted as a version "restored" from
    it, ``rooms.history``).
    """
    outcomes: list[Outcome] = []
    tag = uuid.uuid4().hex[:12]
    for batch in restore_batches(room.doc, target):
        ops = [_wire_edit(room.doc, e) for e in batch]
        try:
            outcome = room.apply_server_edit(
                ops,
                now_ms,
                client_id=SERVER_CLIENT_ID,
                edit_id=f"restore-{tag}-{len(outcomes)}",
                author=author,
                restored_from=restored_from,
            )
        except RoomError:
            if not outcomes:
                raise
            # earlier batches are applied and must be persisted: stop here, keep them
            log.exception("restore stopped part way", extra={"doc": room.doc_id})
            break
        outcomes.append(outcome)
    return outcomes


def _wire_edit(doc: Document, edit: RestoreEdit) -> p.EditOp:
    """An engine restore edit as the wire op a thin client would send."""
    node = node_to_wire(doc, edit.node)
    if type(edit) is SequenceEdit:
        return p.SeqEdit(
            node=node,
            edit=[[_wire_value(v) for v in c] if isinstance(c, list) else c for c in edit.edit],
        )
    if type(edit) is KeyWrite:
        return p.SetKey(node=node, key=edit.key, value=_wire_value(edit.value))
    if type(edit) is KeyDelete:
        return p.DeleteKey(node=node, key=edit.key)
    assert type(edit) is CounterAdd
    return p.CounterAdd(node=node, amount=edit.amount)


def _wire_value(value: Any) -> Any:
    if type(value) is NewNode:
        return {"$new": value.kind.name.lower()}
    return value
