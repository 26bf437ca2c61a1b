"""The edit API of a session's nodes, mirroring the engine's handles (``engine.handles``).

``doc.text("body").insert(0, "Hello ")`` applies at once to the local copy and queues the edit for
the server; ``await doc.synced()`` waits until the server has it durably. Positions count Unicode
code points. A handle holds no state: it always reads the current local value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

from cowrite.client.values import Kind
from cowrite.engine import InvalidOperation, ot


class Backend(Protocol):
    """What a handle needs from a document state (``ThinDocState`` or ``ReplicaDocState``)."""

    def value(self, node: str, kind: Kind | None = None) -> Any: ...
    def local_edit(self, node: str, op: ot.Op) -> None: ...
    def local_set(self, node: str, key: str | None, value: Any) -> None: ...
    def local_delete(self, node: str, key: str) -> None: ...
    def local_add(self, node: str, amount: int) -> None: ...


class Handle:
    """A (document, node id) pair. ``changed`` is called after each local edit."""

    kind: Kind
    __slots__ = ("_backend", "_changed", "node")

    def __init__(self, backend: Backend, node: str, changed: Callable[[], None]) -> None:
        self._backend = backend
        self._changed = changed
        self.node = node
        """The wire id: ``"text:body"`` for a named root, ``"#<replica>.<seq>"`` when nested."""

    def to_json(self) -> Any:
        return self._backend.value(self.node, self.kind)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Handle)
            and type(other) is type(self)
            and other._backend is self._backend
            and other.node == self.node
        )

    def __hash__(self) -> int:
        return hash((id(self._backend), self.node))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.node!r})"


class TextHandle(Handle):
    kind: Kind = "text"
    __slots__ = ()

    def insert(self, pos: int, text: str) -> None:
        self.splice(pos, 0, text)

    def delete(self, pos: int, count: int) -> None:
        self.splice(pos, count, "")

    def splice(self, pos: int, delete: int, text: str) -> None:
        """Delete ``delete`` code points at ``pos``, then insert ``text`` there."""
        if not isinstance(text, str):
            raise InvalidOperation("text nodes take str content")
        self._backend.local_edit(self.node, ot.from_splice(pos, delete, text))
        self._changed()

    def apply(self, op: ot.Op) -> None:
        """Apply an index op (``engine.ot`` format) to the text."""
        self._backend.local_edit(self.node, op)
        self._changed()

    def __str__(self) -> str:
        value = self._backend.value(self.node, "text")
        return value if isinstance(value, str) else ""

    def __len__(self) -> int:
        return len(str(self))


class ListHandle(Handle):
    kind: Kind = "list"
    __slots__ = ()

    def insert(self, pos: int, values: list[Any]) -> None:
        """Insert JSON ``values`` at ``pos``."""
        if not isinstance(values, list):
            raise InvalidOperation("insert takes a list of values")
        self._backend.local_edit(self.node, ot.from_splice(pos, 0, list(values)))
        self._changed()

    def append(self, value: Any) -> None:
        self.insert(len(self), [value])

    def delete(self, pos: int, count: int = 1) -> None:
        self._backend.local_edit(self.node, ot.from_splice(pos, count, []))
        self._changed()

    def to_list(self) -> list[Any]:
        value = self._backend.value(self.node, "list")
        return value if isinstance(value, list) else []

    def __getitem__(self, index: int) -> Any:
        return self.to_list()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.to_list())

    def __len__(self) -> int:
        return len(self.to_list())


class MapHandle(Handle):
    kind: Kind = "map"
    __slots__ = ()

    def set(self, key: str, value: Any) -> None:
        """Write ``key`` (last writer wins). ``{"$new": kind}`` creates a nested node there."""
        if not isinstance(key, str):
            raise InvalidOperation("map keys are strings")
        self._backend.local_set(self.node, key, value)
        self._changed()

    def delete(self, key: str) -> None:
        self._backend.local_delete(self.node, key)
        self._changed()

    def to_dict(self) -> dict[str, Any]:
        value = self._backend.value(self.node, "map")
        return value if isinstance(value, dict) else {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.to_dict().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.to_dict()

    def keys(self) -> list[str]:
        return list(self.to_dict())


class RegisterHandle(Handle):
    kind: Kind = "register"
    __slots__ = ()

    def set(self, value: Any) -> None:
        self._backend.local_set(self.node, None, value)
        self._changed()

    @property
    def value(self) -> Any:
        return self._backend.value(self.node, "register")


class CounterHandle(Handle):
    kind: Kind = "counter"
    __slots__ = ()

    def add(self, amount: int = 1) -> None:
        self._backend.local_add(self.node, amount)
        self._changed()

    @property
    def value(self) -> int:
        value = self._backend.value(self.node, "counter")
        return value if isinstance(value, int) else 0


HANDLES: dict[Kind, type[Handle]] = {
    "text": TextHandle,
    "list": ListHandle,
    "map": MapHandle,
    "register": RegisterHandle,
    "counter": CounterHandle,
}
