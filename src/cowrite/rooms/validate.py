"""Checks a replica delta must pass before any of it is applied: the rules thin edits follow.

A thin client's edit arrives as JSON (msgspec refuses lone surrogates, ``Room._plan`` checks
lengths and values); a replica's delta arrives as engine bytes, which can carry anything a Python
``str`` can. Without these checks one ``sync`` could grow a node past ``max_node_length``, or
store a string no JSON encoder can send, which then breaks every later join and REST read of the
document, and every load after a restart (the update is in the log).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cowrite.engine.document import Document
from cowrite.engine.errors import InvalidOperation
from cowrite.engine.ops import InsertOp, NewNode, NodeRef, SetOp, check_json
from cowrite.engine.ops import Op as EngineOp


class TooLong(InvalidOperation):
    """A text or list node would grow past ``max_node_length``."""


def check_string(s: str, what: str) -> None:
    """Refuse lone surrogates: the engine stores them, but JSON cannot carry them to others."""
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidOperation(f"{what} is not valid Unicode (lone surrogate)") from None


def check_value(value: Any) -> None:
    """A written JSON value: plain JSON as the engine stores it (``check_json``: nesting,
    numbers), and every string and object key valid Unicode. New and existing node references
    are the engine's own values and pass."""
    if type(value) is NewNode or type(value) is NodeRef:
        return
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
    doc: Document, ops: list[EngineOp], max_node_length: int, new_roots: Iterable[int] = ()
) -> None:
    """Raise InvalidOperation (``TooLong`` for length) unless every op of a decoded delta is one
    a thin edit could have made: Unicode text, keys and values, JSON values, and no text or list
    node longer than ``max_node_length`` visible elements even if every insert lands (deletes in
    the same delta are not counted: the check stays one pass over the ops). ``new_roots``: the
    roots this delta registered, empty so far (and not to be given state by a refused delta)."""
    growth: dict[int, int] = {}
    for op in ops:
        if type(op) is InsertOp:
            content = op.content
            if isinstance(content, str):
                check_string(content, "inserted text")
            else:
                check_values(content)
            growth[op.node] = growth.get(op.node, 0) + len(content)
        elif type(op) is SetOp:
            if op.key is not None:
                check_string(op.key, "map key")
            check_value(op.value)
    fresh = set(new_roots)
    for node, extra in growth.items():
        known = node not in fresh and _has_sequence(doc, node)
        length = len(doc.sequence(node)) if known else 0
        if length + extra > max_node_length:
            raise TooLong(
                f"{doc.format_id(node)} would hold {length + extra} elements "
                f"(limit {max_node_length})"
            )


def _has_sequence(doc: Document, node: int) -> bool:
    """The node exists here already (one created by this same delta starts empty)."""
    if not doc.has_node(node):
        return False
    try:
        doc.sequence(node)
    except InvalidOperation:
        return False  # not a sequence: applying the insert refuses it
    return True
