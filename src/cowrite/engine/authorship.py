"""Who changed what between two versions: a diff of each text or list node with the ops behind it.

``authored_changes(doc, old, new)`` walks every text and list node reachable at ``new`` (roots
and nested nodes) and lists its change from ``old`` as spans: kept elements (``retain``),
inserted ones (``insert``: the id of the op that inserted the span's first element; the span's
elements have consecutive ids of that replica) and deleted ones (``delete``: the id of the delete
op that removed them, in ``new`` and not in ``old``). Callers turn op ids into authors (the
server: the version whose vector first includes the op). Visibility is the one ``history``
computes (``_View``, deleters from the ``DeleteIndex``); versions before the compaction base
raise ``HistoryUnavailable``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cowrite.engine.document import Document
from cowrite.engine.history import _check_version, _View
from cowrite.engine.history_index import MANY
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK
from cowrite.engine.ops import NodeKind, NodeRef
from cowrite.engine.sequence import Gap


@dataclass(slots=True)
class ChangeSpan:
    kind: str
    """``retain``, ``insert`` or ``delete``."""
    count: int
    content: list[Any] = field(default_factory=list)
    """The elements inserted or deleted (characters of a text; values of a list, nested nodes as
    ``NodeRef``); empty for ``retain``."""
    replica: int = 0
    seq: int = 0
    """The op: for an insert, of the span's first element (element k is ``seq + k``)."""


@dataclass(slots=True)
class NodeChanges:
    node: int
    kind: NodeKind
    spans: list[ChangeSpan]


def authored_changes(
    doc: Document, old: Mapping[int, int], new: Mapping[int, int]
) -> list[NodeChanges]:
    """The changes from ``old`` to ``new`` of every text/list node reachable at ``new`` that
    changed, with the ops that made them (see the module docstring)."""
    _check_version(doc, old)
    _check_version(doc, new)
    a, b = _View(doc, old), _View(doc, new)
    out: list[NodeChanges] = []
    seen: set[int] = set()
    todo = sorted(doc.roots)
    while todo:
        node = todo.pop(0)
        if node in seen:
            continue
        seen.add(node)
        kind = doc.kind_of(node)
        if kind is NodeKind.TEXT or kind is NodeKind.LIST:
            spans = sequence_spans(doc, a, b, node)
            if any(s.kind != "retain" for s in spans):
                out.append(NodeChanges(node, kind, spans))
            if kind is NodeKind.LIST:
                todo += [e.id for _, e in b.sequence_elements(doc.sequence(node)) if _ref(e)]
        elif kind is NodeKind.MAP:
            todo += [v.id for _, v in b.lww(node).values() if _ref(v)]
    return out


def _ref(value: Any) -> bool:
    return type(value) is NodeRef


def spans_delta(spans: list[ChangeSpan], text: bool, view: _View) -> list[Any]:
    """The index edit (``ot`` format) the spans make; list values as ``view`` has them."""
    delta: list[Any] = []
    for s in spans:
        if s.kind == "retain":
            part: Any = s.count
        elif s.kind == "delete":
            part = -s.count
        else:
            part = "".join(s.content) if text else [view.value_json(v) for v in s.content]
        last: Any = delta[-1] if delta else None
        if _joins(last, part):
            delta[-1] = last + part
        else:
            delta.append(part)
    return delta


def _joins(last: Any, part: Any) -> bool:
    """Two index-edit components that make one (same-sign counts, two strings, two lists)."""
    if isinstance(part, int) and isinstance(last, int):
        return (part > 0) == (last > 0)
    return type(part) is type(last) and isinstance(part, str | list)


def sequence_spans(doc: Document, a: _View, b: _View, node: int) -> list[ChangeSpan]:
    """The change of one text or list node from view ``a`` to view ``b``, as spans."""
    spans: list[ChangeSpan] = []
    for item in doc.sequence(node).items():
        if type(item.content) is Gap:
            continue
        client = item.id & CLIENT_MASK
        first = item.id >> CLIENT_BITS
        n = len(item.content)
        runs = a.same_runs(b, client, first, n)
        if runs is not None:  # unchanged: kept (or absent) in both
            kept = sum(e - s for s, e in runs)
            if kept:
                last = spans[-1] if spans else None
                if last is not None and last.kind == "retain":
                    last.count += kept
                else:
                    spans.append(ChangeSpan("retain", kept))
            continue
        in_a = a.visible_mask(client, first, n)
        in_b = b.visible_mask(client, first, n)
        replica = doc.replica_of(client)
        for k in range(n):
            va, vb = in_a[k], in_b[k]
            if va and vb:
                last = spans[-1] if spans else None
                if last is not None and last.kind == "retain":
                    last.count += 1
                else:
                    spans.append(ChangeSpan("retain", 1))
            elif vb:
                _add(spans, "insert", item.content[k], replica, first + k, consecutive=True)
            elif va:
                r, d = _deleter(doc, a, b, client, first + k)
                _add(spans, "delete", item.content[k], r, d, consecutive=False)
    while spans and spans[-1].kind == "retain":
        spans.pop()
    return spans


def _deleter(doc: Document, a: _View, b: _View, client: int, seq: int) -> tuple[int, int]:
    """(replica, seq) of a delete that removed the element in ``b`` and not in ``a``."""
    index = a.index
    dc = index.dcl[client][seq]
    listed = index.multi[client, seq] if dc == MANY else [(dc, index.dseq[client][seq])]
    for c, s in sorted(listed, key=lambda d: d[1]):
        if c >= 0 and b._seen(c, s) and not a._seen(c, s):
            return doc.replica_of(c), s
    return 0, 0


def _add(
    spans: list[ChangeSpan], kind: str, element: Any, replica: int, seq: int, *, consecutive: bool
) -> None:
    last = spans[-1] if spans else None
    if (
        last is not None
        and last.kind == kind
        and last.replica == replica
        and (last.seq + last.count == seq if consecutive else last.seq == seq)
    ):
        last.count += 1
        last.content.append(element)
        return
    spans.append(ChangeSpan(kind, 1, [element], replica, seq))
