"""Node values as a thin client holds them, and index-op helpers the thin core needs.

A thin client keeps plain JSON values per node id (``docs/protocol.md``): a text node is a ``str``,
a list node a ``list``, a map node a ``dict``, a register any JSON value, a counter an ``int``.
Nested nodes inside values appear as ``{"$node": id}``; writing ``{"$new": kind}`` creates one.
Named roots are ``"<kind>:<name>"`` (``"text:body"``), nested nodes ``"#<replica>.<seq>"``.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

from cowrite.engine import ot

Kind: TypeAlias = Literal["text", "list", "map", "register", "counter"]
KINDS: tuple[Kind, ...] = ("text", "list", "map", "register", "counter")
SEQ_KINDS: frozenset[str] = frozenset(("text", "list"))


def root_node(kind: Kind, name: str) -> str:
    """The wire id of the named root ``name`` of ``kind``: ``root_node("text", "body")``."""
    if not isinstance(name, str) or not name:
        raise ValueError("root names are non-empty strings")
    return f"{kind}:{name}"


def kind_of_node_id(node: str) -> Kind | None:
    """The kind a root id names (``"text:body"`` -> ``"text"``); None for nested ``#r.s`` ids."""
    if node.startswith("#"):
        return None
    prefix, sep, name = node.partition(":")
    if not sep or not name:
        return None
    for kind in KINDS:
        if kind == prefix:
            return kind
    return None


def empty_value(kind: Kind) -> Any:
    """The value of a node nobody wrote yet."""
    if kind == "text":
        return ""
    if kind == "list":
        return []
    if kind == "map":
        return {}
    if kind == "counter":
        return 0
    return None


def parse_kind(name: object) -> Kind | None:
    for kind in KINDS:
        if kind == name:
            return kind
    return None


def diff_seq(a: str | list[Any], b: str | list[Any]) -> ot.Op:
    """An op turning ``a`` into ``b``: keep the common prefix and suffix, replace the middle.

    Not a minimal diff (one replaced region), which is what a three-way merge of a client's
    pending edits over "whatever happened on the server meanwhile" needs: edits outside the
    changed region rebase exactly, edits inside it land at its edges.
    """
    n = min(len(a), len(b))
    start = 0
    while start < n and a[start] == b[start]:
        start += 1
    end = 0
    while end < n - start and a[len(a) - 1 - end] == b[len(b) - 1 - end]:
        end += 1
    inserted = b[start : len(b) - end]
    deleted = len(a) - start - end
    return ot.normalize([start, inserted, -deleted])


def diff_text(a: str, b: str) -> ot.Op:
    """``diff_seq`` for text: ``ot.apply(a, diff_text(a, b)) == b``."""
    return diff_seq(a, b)


def position_before(pos: int, op: ot.Op) -> int:
    """Where index ``pos`` of ``apply(s, op)`` was in ``s`` (the inverse of ``transform_position``).

    A position inside text the op inserted maps to where that insert was made.
    """
    pre = post = 0
    for c in op:
        if isinstance(c, int):
            if c > 0:
                if pos < post + c:
                    return pre + (pos - post)
                pre += c
                post += c
            else:
                pre -= c
        else:
            n = len(c)
            if pos < post + n:
                return pre
            post += n
    return pre + (pos - post)
