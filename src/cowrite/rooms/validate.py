"""Checks a replica delta must pass before any of it is applied: the rules thin edits follow.

A thin client's edit arrives as JSON (msgspec refuses lone surrogates, ``Room._plan`` checks
lengths and values); a replica's delta arrives as engine bytes, which can carry anything a Python
``str`` can. Without these checks one ``sync`` could grow a node past ``max_node_length``, or
store a string no JSON encoder can send, which then breaks every later join and REST read of the
document, and every load after a restart (the update is in the log).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from cowrite.engine import (
    DELETED,
    Document,
    InsertOp,
    InvalidOperation,
    NewNode,
    NodeRef,
    SetOp,
    check_json,
    map_has_written,
)
from cowrite.engine import Op as EngineOp


class Caps(Protocol):
    """The limits a batch is checked against (``RoomLimits``)."""

    max_node_length: int
    max_map_keys: int
    max_nodes_per_document: int
    max_key_length: int


class TooLarge(InvalidOperation):
    """The document would outgrow a cap: a node's length, a map's keys, its nested nodes."""


class Growth:
    """What one batch adds to a document, refused (``TooLarge``) as soon as it passes a cap
    (map keys are counted over all the document's maps: many maps must not multiply the cap).

    Map entries stay after a delete (a delete is a write of "absent"), and nested nodes are
    never dropped, so both only grow: without a cap one client's stream of new keys or
    ``{"$new"}`` values, each within the rate limit, holds memory for as long as the document
    lives, and is paid again at every load.
    """

    def __init__(
        self,
        doc: Document,
        caps: Caps,
        keys_held: Callable[[], int],
        new_roots: Iterable[int] = (),
    ) -> None:
        self.doc = doc
        self.caps = caps
        self.keys_held = keys_held
        """The keys the document's maps hold (asked only when a batch writes a new key)."""
        self.fresh = set(new_roots)
        self.keys: dict[int, set[str]] = {}
        self.new_keys = 0
        self.nodes = 0
        self.length: dict[int, int] = {}

    def key(self, node: int, key: str) -> None:
        """A write of ``key`` in map ``node``."""
        if len(key) > self.caps.max_key_length:
            raise InvalidOperation(f"map keys are at most {self.caps.max_key_length} characters")
        if self._written(node, key):
            return
        new = self.keys.setdefault(node, set())
        if key in new:
            return
        new.add(key)
        self.new_keys += 1
        if self.keys_held() + self.new_keys > self.caps.max_map_keys:
            raise TooLarge(f"a document's maps hold at most {self.caps.max_map_keys} keys")

    def values(self, values: Iterable[Any]) -> None:
        """Written values: each ``NewNode`` is a nested node more."""
        for v in values:
            if type(v) is NewNode:
                self.nodes += 1
        if self.nodes and self.doc.node_count + self.nodes > self.caps.max_nodes_per_document:
            raise TooLarge(f"a document holds at most {self.caps.max_nodes_per_document} nodes")

    def insert(self, node: int, count: int, visible: int | None = None) -> None:
        """``count`` elements more in sequence ``node`` (of ``visible`` now, if known)."""
        total = self.length.get(node, 0) + count
        self.length[node] = total
        if visible is None:
            known = node not in self.fresh and _has_sequence(self.doc, node)
            visible = len(self.doc.sequence(node)) if known else 0
        if visible + total > self.caps.max_node_length:
            raise TooLarge(
                f"{self.doc.format_id(node)} would hold {visible + total} elements "
                f"(limit {self.caps.max_node_length})"
            )

    def _written(self, node: int, key: str) -> bool:
        if node in self.fresh or not self.doc.has_node(node):
            return False
        return map_has_written(self.doc, node, key)


def check_string(s: str, what: str) -> None:
    """Refuse lone surrogates: the engine stores them, but JSON cannot carry them to others."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidOperation(f"{what} is not valid Unicode (lone surrogate)") from None


def check_value(value: Any) -> None:
    """A written JSON value: plain JSON as the engine stores it (``check_json``: nesting,
    numbers), and every string and object key valid Unicode. New and existing node references
    and ``DELETED`` (a deleted key) are the engine's own values and pass."""
    if type(value) is NewNode or type(value) is NodeRef or value is DELETED:
        return  # a new or existing node, a deleted key: the engine's own values
    check_json(value)
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            check_string(v, "a string value")
        elif isinstance(v, list | tuple):
            stack.extend(v)
        elif isinstance(v, dict):
            for k, item in v.items():
                check_string(k, "an object key")
                stack.append(item)


def check_values(values: Iterable[Any]) -> None:
    for v in values:
        check_value(v)


def check_delta(
    doc: Document,
    ops: list[EngineOp],
    caps: Caps,
    keys_held: Callable[[], int],
    new_roots: Iterable[int] = (),
) -> Growth:
    """Raise InvalidOperation (``TooLarge`` past a cap) unless every op of a decoded delta is
    one a thin edit could have made: Unicode text, keys and values, JSON values, and the caps
    of ``Growth`` (sequence lengths count every insert and no delete of the same delta: the
    check stays one pass over the ops). ``new_roots``: the roots this delta registered, empty
    so far (and not to be given state by a refused delta). Returns what the delta adds."""
    growth = Growth(doc, caps, keys_held, new_roots)
    for op in ops:
        if type(op) is InsertOp:
            content = op.content
            if isinstance(content, str):
                check_string(content, "inserted text")
            else:
                check_values(content)
                growth.values(content)
            growth.insert(op.node, len(content))
        elif type(op) is SetOp:
            if op.key is not None:
                check_string(op.key, "map key")
                growth.key(op.node, op.key)
            check_value(op.value)
            growth.values((op.value,))
    return growth


def _has_sequence(doc: Document, node: int) -> bool:
    """The node exists here already (one created by this same delta starts empty)."""
    if not doc.has_node(node):
        return False
    try:
        doc.sequence(node)
    except InvalidOperation:
        return False  # not a sequence: applying the insert refuses it
    return True
