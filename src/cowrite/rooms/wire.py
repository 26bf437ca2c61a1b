"""Between the engine and the wire: node ids, snapshot values, edit ops.

The one place node ids are formatted and parsed for the wire (the room, REST and the SDK's
replica all use it). Named roots are ``"<kind>:<name>"`` (``"text:body"``); nested nodes
``"#<replica>.<seq>"``. A nested node inside a value is ``{"$node": id}``; ``{"$new": kind}`` as
a written value creates one.
"""

from __future__ import annotations

import functools
from typing import Any

from cowrite.engine import (
    Document,
    InvalidOperation,
    NewNode,
    NodeKind,
    NodeRef,
    address_of,
    id_at,
    map_entries,
    root_id,
)

KIND_NAMES = {k.name.lower(): k for k in NodeKind}


class UnknownNode(InvalidOperation):
    """A wire node id that names no node of the document."""


def node_to_wire(doc: Document, node: int) -> str:
    root = doc.roots.get(node)
    if root is not None:
        name, kind = root
        return f"{kind.name.lower()}:{name}"
    replica, seq = address_of(doc, node)
    return f"#{replica}.{seq}"


def node_from_wire(doc: Document, ref: str, *, create_roots: bool = True) -> int:
    """The engine id of a wire node id; roots are created on first use (like ``doc.text``)."""
    if ref.startswith("#"):
        try:
            replica_s, seq_s = ref[1:].split(".", 1)
            replica, seq = int(replica_s), int(seq_s)
        except ValueError:
            raise UnknownNode(f"malformed node id {ref!r}") from None
        node = id_at(doc, replica, seq)
        if node is None or not doc.has_node(node):
            raise UnknownNode(f"unknown node {ref!r}")
        return node
    root = root_of_wire(ref)
    if root is None:
        raise UnknownNode(f"malformed node id {ref!r}: use '<kind>:<name>' or '#<replica>.<seq>'")
    node, kind, name = root
    if node not in doc.roots:
        if not create_roots:
            raise UnknownNode(f"unknown node {ref!r}")
        doc.root(kind, name)
    return node


def root_of_wire(ref: str) -> tuple[int, NodeKind, str] | None:
    """``(id, kind, name)`` of the named root a wire id ``"<kind>:<name>"`` names (in any
    document: root ids are derived from kind and name); None for any other string. Cached:
    every edit names its node, and deriving the id hashes the name."""
    if len(ref) > _LONGEST_ROOT:
        return None  # malformed (a name is at most 100 characters): never kept in the cache
    return _root_of_wire(ref)


_LONGEST_ROOT = max(map(len, KIND_NAMES)) + 1 + 100


@functools.lru_cache(maxsize=4096)
def _root_of_wire(ref: str) -> tuple[int, NodeKind, str] | None:
    kind_s, sep, name = ref.partition(":")
    kind = KIND_NAMES.get(kind_s)
    if not sep or kind is None or not name or len(name) > 100 or ref.startswith("#"):
        return None
    return root_id(kind, name), kind, name


def value_to_wire(doc: Document, value: Any) -> Any:
    if type(value) is NodeRef:
        return {"$node": node_to_wire(doc, value.id)}
    return value


def value_from_wire(value: Any) -> Any:
    """A written value: ``{"$new": kind}`` becomes a node creation, anything else stays JSON."""
    if isinstance(value, dict) and len(value) == 1 and "$new" in value:
        kind = KIND_NAMES.get(value["$new"]) if isinstance(value["$new"], str) else None
        if kind is None:
            raise InvalidOperation(f"unknown node kind {value['$new']!r}")
        return NewNode(kind)
    if isinstance(value, dict) and "$node" in value:
        raise InvalidOperation("existing nodes cannot be written elsewhere; use {'$new': kind}")
    return value


def snapshot(doc: Document, *, paced: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    """(node id -> {"kind", "value"}) of every node reachable from the roots, and root names;
    ``paced``: sequences are read letting other threads run (a loader's worker thread)."""
    nodes: dict[str, Any] = {}
    roots: dict[str, str] = {}
    stack = []
    for node, (name, _) in sorted(doc.roots.items()):
        wire = node_to_wire(doc, node)
        roots[name] = wire
        stack.append(node)
    while stack:
        node = stack.pop()
        wire = node_to_wire(doc, node)
        if wire in nodes:
            continue
        kind = doc.kind_of(node)
        value: Any
        if kind is NodeKind.TEXT:
            value = str(doc.sequence(node).value(paced))
        elif kind is NodeKind.LIST:
            value = []
            for v in doc.sequence(node).value(paced):
                if type(v) is NodeRef:
                    stack.append(v.id)
                value.append(value_to_wire(doc, v))
        elif kind is NodeKind.MAP:
            value = {}
            for key, v in map_entries(doc, node).items():
                if type(v) is NodeRef:
                    stack.append(v.id)
                value[key] = value_to_wire(doc, v)
        else:
            value = doc.node_json(node)
        nodes[wire] = {"kind": kind.name.lower(), "value": value}
    return nodes, roots
