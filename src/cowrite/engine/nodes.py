"""Node and operation ids as callers outside the engine see them, and map reads.

Inside a document ids are packed ints (``ids``); outside, a node or element is named by the
``(replica, seq)`` of the operation that created it. These functions are the only translation
between the two that other layers use: they never do id arithmetic themselves.
"""

from __future__ import annotations

from typing import Any

from cowrite.engine.document import Document, MapState
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, ONE, pack
from cowrite.engine.ops import DELETED, InsertOp, Op, op_length


def address_of(doc: Document, pid: int) -> tuple[int, int]:
    """``(replica id, seq)`` of a node id (a nested node's) or an operation id of ``doc``."""
    return doc.replica_of(pid & CLIENT_MASK), pid >> CLIENT_BITS


def id_at(doc: Document, replica: int, seq: int) -> int | None:
    """The id ``doc`` uses for ``(replica, seq)``, or None if it knows no such replica."""
    client = doc.known_client(replica)
    if client is None or seq < 0:
        return None
    return pack(client, seq)


def op_span(doc: Document, op: Op) -> tuple[int, int, int]:
    """``(replica id, first seq, end seq)`` of the operation ids ``op`` takes."""
    return (
        doc.replica_of(op.id & CLIENT_MASK),
        op.id >> CLIENT_BITS,
        ((op.id >> CLIENT_BITS) + op_length(op)),
    )


def element_id(op: InsertOp, k: int) -> int:
    """The id of the ``k``-th element an insert made."""
    return op.id + k * ONE


def map_entries(doc: Document, node: int) -> dict[str, Any]:
    """The keys a map node holds now and their values (``NodeRef`` for nested nodes); deleted
    keys are left out. Raises ``InvalidOperation`` if ``node`` is no node of ``doc``."""
    state = doc.state_of(node)
    if not isinstance(state, MapState):
        return {}
    return {k: r.value for k, r in state.entries.items() if r.value is not DELETED}


def map_value(doc: Document, node: int, key: str) -> Any:
    """The value of ``key`` in a map node, ``DELETED`` when it holds none."""
    state = doc.state_of(node)
    if not isinstance(state, MapState):
        return DELETED
    reg = state.entries.get(key)
    return DELETED if reg is None else reg.value


def map_has_written(doc: Document, node: int, key: str) -> bool:
    """Whether ``key`` of a map node was ever written (a delete is a write)."""
    state = doc.state_of(node)
    return isinstance(state, MapState) and key in state.entries
