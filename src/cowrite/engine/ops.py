"""The operations a document is made of, and the values they carry.

A document's whole history is a set of these operations, each with a unique id (see ``ids``).
Deltas and full states are both just lists of operations, grouped by replica in seq order; the
encoder (``encoding``) writes them compactly. Ids inside ops are *packed* for one document's client
table; the encoder translates them to replica ids.
"""

from __future__ import annotations

import math
from enum import IntEnum
from typing import Any, NamedTuple

from cowrite.engine.clock import Timestamp
from cowrite.engine.errors import InvalidOperation

MAX_JSON_DEPTH = 64
MAX_INT = (1 << 63) - 1


class NodeKind(IntEnum):
    MAP = 1
    TEXT = 2
    LIST = 3
    REGISTER = 4
    COUNTER = 5


class NewNode(NamedTuple):
    """A value meaning "a new nested node of this kind"; its id becomes the id of the op/element."""

    kind: NodeKind


class NodeRef(NamedTuple):
    """A stored value pointing to a nested node."""

    kind: NodeKind
    id: int


class _Deleted:
    """The value a map key holds after a delete (a write of "absent", ordered like any write)."""

    _instance: _Deleted | None = None

    def __new__(cls) -> _Deleted:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DELETED"


DELETED = _Deleted()


class InsertOp(NamedTuple):
    """Insert a run into a text or list node; element k has id ``id + k*ONE``."""

    id: int
    node: int
    origin: int
    right: int
    content: str | list[Any]


class DeleteOp(NamedTuple):
    """Delete elements of a text or list node: spans of (first id, count) of consecutive ids."""

    id: int
    node: int
    spans: tuple[tuple[int, int], ...]


class SetOp(NamedTuple):
    """Last-writer-wins write: of ``key`` in a map node, or (key None) of a register node."""

    id: int
    node: int
    key: str | None
    value: Any
    ts: Timestamp


class AddOp(NamedTuple):
    """Add ``amount`` (possibly negative) to a counter node."""

    id: int
    node: int
    amount: int


Op = InsertOp | DeleteOp | SetOp | AddOp


def op_length(op: Op) -> int:
    """How many seqs the op takes (elements for an insert, one otherwise)."""
    if type(op) is InsertOp:
        return len(op.content)
    return 1


def copy_json(value: Any, depth: int = 0) -> Any:
    """A checked private copy of a JSON value (tuples become lists, as every replica decodes them).

    Raises InvalidOperation like ``check_json``. Documents store copies so that a caller mutating
    its own list or dict later cannot change the document behind the replicas' backs.
    """
    if isinstance(value, list | tuple):
        if depth >= MAX_JSON_DEPTH:
            raise InvalidOperation(f"value nested deeper than {MAX_JSON_DEPTH} levels")
        return [copy_json(v, depth + 1) for v in value]
    if isinstance(value, dict):
        if depth >= MAX_JSON_DEPTH:
            raise InvalidOperation(f"value nested deeper than {MAX_JSON_DEPTH} levels")
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidOperation("object keys must be strings")
            out[k] = copy_json(v, depth + 1)
        return out
    check_json(value, depth)
    return value


def check_json(value: Any, depth: int = 0) -> None:
    """Raise InvalidOperation unless ``value`` is plain JSON (finite floats, 64-bit ints)."""
    if depth > MAX_JSON_DEPTH:
        raise InvalidOperation(f"value nested deeper than {MAX_JSON_DEPTH} levels")
    if value is None or isinstance(value, bool | str):
        return
    if isinstance(value, int):
        if not -MAX_INT - 1 <= value <= MAX_INT:
            raise InvalidOperation("integers must fit in 64 bits")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidOperation("NaN and infinity are not JSON")
        return
    if isinstance(value, list | tuple):
        if depth >= MAX_JSON_DEPTH:  # the rule ``copy_json`` applies: containers, not leaves
            raise InvalidOperation(f"value nested deeper than {MAX_JSON_DEPTH} levels")
        for v in value:
            check_json(v, depth + 1)
        return
    if isinstance(value, dict):
        if depth >= MAX_JSON_DEPTH:
            raise InvalidOperation(f"value nested deeper than {MAX_JSON_DEPTH} levels")
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidOperation("object keys must be strings")
            check_json(v, depth + 1)
        return
    raise InvalidOperation(f"{type(value).__name__} is not a JSON value")
