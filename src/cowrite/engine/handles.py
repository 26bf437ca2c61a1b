"""Handles: the local edit API of a document's nodes (``doc.text("body").insert(0, "hi")``).

A handle is a (document, node id) pair; it holds no state of its own, so handles are cheap and
always current. Positions count Unicode code points (Python ``str`` indexes).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cowrite.engine.errors import InvalidOperation
from cowrite.engine.ops import DELETED, NewNode, NodeKind, NodeRef

if TYPE_CHECKING:
    from cowrite.engine.document import Document


class Handle:
    kind: NodeKind

    __slots__ = ("doc", "id")

    def __init__(self, doc: Document, node: int) -> None:
        self.doc = doc
        self.id = node

    def to_json(self) -> Any:
        return self.doc.node_json(self.id)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Handle)
            and type(other) is type(self)
            and other.doc is self.doc
            and other.id == self.id
        )

    def __hash__(self) -> int:
        return hash((id(self.doc), self.id))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.doc.format_id(self.id)})"


class Text(Handle):
    """A text node: a string edited by code-point index."""

    kind = NodeKind.TEXT
    __slots__ = ()

    def insert(self, pos: int, text: str) -> None:
        self.doc.insert(self.id, pos, text)

    def delete(self, pos: int, count: int) -> None:
        self.doc.delete(self.id, pos, count)

    def splice(self, pos: int, delete: int, text: str) -> None:
        if delete:
            self.doc.delete(self.id, pos, delete)
        if text:
            self.doc.insert(self.id, pos, text)

    def __len__(self) -> int:
        return len(self.doc.sequence(self.id))

    def __str__(self) -> str:
        value = self.doc.sequence(self.id).value()
        assert isinstance(value, str)
        return value


class List(Handle):
    """A list node: JSON values or nested nodes, edited by index."""

    kind = NodeKind.LIST
    __slots__ = ()

    def insert(self, pos: int, values: list[Any]) -> None:
        self.doc.insert(self.id, pos, list(values))

    def append(self, value: Any) -> None:
        self.insert(len(self), [value])

    def insert_new(self, pos: int, kind: NodeKind) -> Handle:
        """Insert a new nested node at ``pos`` and return its handle."""
        self.doc.insert(self.id, pos, [NewNode(kind)])
        ref = self.doc.sequence(self.id).value()[pos]
        assert type(ref) is NodeRef
        return wrap(self.doc, ref)

    def delete(self, pos: int, count: int = 1) -> None:
        self.doc.delete(self.id, pos, count)

    def move(self, src: int, dst: int) -> None:
        """Move the element at ``src`` so that it ends up at index ``dst``.

        A move is a delete plus an insert of the same JSON value (so concurrent moves of one element
        may leave two copies); nested nodes cannot be moved.
        """
        values = self.doc.sequence(self.id).value()
        n = len(values)
        if not (0 <= src < n and 0 <= dst < n):
            raise InvalidOperation(f"move {src} -> {dst} out of range for length {n}")
        value = values[src]
        if type(value) is NodeRef:
            raise InvalidOperation("nested nodes cannot be moved")
        if src == dst:
            return
        self.doc.delete(self.id, src, 1)
        self.doc.insert(self.id, dst, [value])

    def __getitem__(self, index: int) -> Any:
        value = self.doc.sequence(self.id).value()[index]
        return wrap(self.doc, value) if type(value) is NodeRef else value

    def __len__(self) -> int:
        return len(self.doc.sequence(self.id))


class Map(Handle):
    """A map node: string keys to JSON values or nested nodes, last writer wins per key."""

    kind = NodeKind.MAP
    __slots__ = ()

    def set(self, key: str, value: Any) -> None:
        self.doc.set(self.id, key, value)

    def set_new(self, key: str, kind: NodeKind) -> Handle:
        """Put a new nested node of ``kind`` at ``key`` and return its handle."""
        self.doc.set(self.id, key, NewNode(kind))
        return self[key]  # type: ignore[no-any-return]

    def delete(self, key: str) -> None:
        self.doc.set(self.id, key, DELETED)

    def get(self, key: str, default: Any = None) -> Any:
        state = self.doc.state_of(self.id)
        reg = state.entries.get(key)  # type: ignore[union-attr]
        if reg is None or reg.value is DELETED:
            return default
        value = reg.value
        return wrap(self.doc, value) if type(value) is NodeRef else value

    def __getitem__(self, key: str) -> Any:
        missing = object()
        value = self.get(key, missing)
        if value is missing:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key, DELETED) is not DELETED

    def keys(self) -> list[str]:
        state = self.doc.state_of(self.id)
        return [k for k, r in state.entries.items() if r.value is not DELETED]  # type: ignore[union-attr]


class Register(Handle):
    """A last-writer-wins register holding one JSON value."""

    kind = NodeKind.REGISTER
    __slots__ = ()

    def set(self, value: Any) -> None:
        self.doc.set(self.id, None, value)

    @property
    def value(self) -> Any:
        return self.doc.node_json(self.id)


class Counter(Handle):
    """A PN-counter: concurrent adds all count."""

    kind = NodeKind.COUNTER
    __slots__ = ()

    def add(self, amount: int = 1) -> None:
        self.doc.add(self.id, amount)

    @property
    def value(self) -> int:
        value = self.doc.node_json(self.id)
        assert isinstance(value, int)
        return value


HANDLES: dict[NodeKind, type[Handle]] = {
    NodeKind.TEXT: Text,
    NodeKind.LIST: List,
    NodeKind.MAP: Map,
    NodeKind.REGISTER: Register,
    NodeKind.COUNTER: Counter,
}


def wrap(doc: Document, ref: NodeRef) -> Handle:
    return HANDLES[ref.kind](doc, ref.id)
