"""History: versions of a document, its value at a past version, and diffs between versions.

A *version* is a version vector that is a causal cut: every prefix of the order in which this
replica applied transactions is one, so ``versions`` lists those prefixes (merged per
``Document.version_window_ms`` so that a burst of typing is one version). Any version vector the
document includes can be asked for, not only listed ones.

Everything is recomputed from the operations the document keeps: an element is visible at V if
its insert is in V and no delete in V removed it; a map key or register holds its greatest-HLC
write in V; a counter sums its adds in V. Versions older than the compaction base
(``Document.base``) are gone and raise ``HistoryUnavailable``.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from cowrite.engine.document import Document
from cowrite.engine.errors import EngineError
from cowrite.engine.history_index import MANY, NOBODY, delete_index
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, VersionVector, vv_includes
from cowrite.engine.ops import DELETED, AddOp, NodeKind, NodeRef, SetOp
from cowrite.engine.sequence import Gap, Sequence


class HistoryUnavailable(EngineError):
    """The version asked for predates the compaction base or is not included in the document."""


@dataclass(frozen=True, slots=True)
class Version:
    index: int
    version: VersionVector
    time_ms: int
    replica: int


@dataclass(frozen=True, slots=True)
class NodeDiff:
    """How one node changed between two versions.

    For text and list nodes ``delta`` is an index edit (``ot`` format) turning the old value into
    the new one; for other nodes ``before``/``after`` are the values (None when absent).
    """

    node: int
    kind: NodeKind
    path: tuple[str | int, ...]
    delta: list[Any]
    before: Any = None
    after: Any = None
    spans: list[Any] | None = None
    """With ``diff(..., authored=True)``, for text and list nodes: the same change as
    ``authorship.ChangeSpan``s, naming the op behind each insertion and deletion."""


def versions(doc: Document) -> list[Version]:
    """The listed versions, oldest first (each the document after one group of transactions)."""
    out: list[Version] = []
    vv: dict[int, int] = dict(doc.base)
    for i, (client, end, t) in enumerate(
        zip(doc.vlog_client, doc.vlog_end, doc.vlog_time, strict=True)
    ):
        replica = doc.replica_of(client)
        vv[replica] = max(vv.get(replica, 0), end)
        out.append(Version(i, dict(vv), t, replica))
    return out


def _check_version(doc: Document, version: Mapping[int, int]) -> None:
    if not vv_includes(doc.version, version):
        raise HistoryUnavailable("the document has not seen that version")
    if not vv_includes(version, doc.base):
        raise HistoryUnavailable("that version predates the compaction base")


Ranges = Mapping[int, tuple[int, int]]
"""Per client index, one more ``[start, end)`` range of its op seqs counted as seen."""


def deleted_intervals(
    doc: Document, limit: list[int], extra: Ranges | None = None
) -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """Elements deleted by deletes within ``limit`` (ops seen per client index) or ``extra``,
    per target client as merged, sorted ``[start, end)`` seq intervals: (starts, ends). Shared by
    history views and compaction."""
    spans: dict[int, list[tuple[int, int]]] = {}
    for client, (seqs, _nodes, targets, lengths) in enumerate(doc._dels):
        chosen = list(range(bisect_right(seqs, limit[client] - 1)))
        if extra and client in extra:
            lo, hi = extra[client]
            chosen += range(bisect_left(seqs, max(lo, limit[client])), bisect_left(seqs, hi))
        for k in chosen:
            t = targets[k]
            s = t >> CLIENT_BITS
            spans.setdefault(t & CLIENT_MASK, []).append((s, s + lengths[k]))
    starts: dict[int, list[int]] = {}
    ends: dict[int, list[int]] = {}
    for c, lst in spans.items():
        lst.sort()
        s_out: list[int] = []
        e_out: list[int] = []
        for s, e in lst:
            if e_out and s <= e_out[-1]:
                e_out[-1] = max(e_out[-1], e)
            else:
                s_out.append(s)
                e_out.append(e)
        starts[c] = s_out
        ends[c] = e_out
    return starts, ends


_UNIFORM: dict[int, array[int]] = {}
"""Per value, an array of it, for ``_uniform``."""


def _uniform(value: int, n: int) -> array[int]:
    """``n`` times ``value`` (a slice of a cached array, when it is long enough)."""
    whole = _UNIFORM.get(value)
    if whole is None or len(whole) < n:
        whole = array("q", [value]) * max(n, 1024)
        if len(_UNIFORM) < 64:
            _UNIFORM[value] = whole
    return whole[:n]


class _View:
    """Visibility of elements and values of nodes at one version (deletes from the document's
    ``DeleteIndex``: whole runs are decided at once, ``runs``)."""

    def __init__(
        self, doc: Document, version: Mapping[int, int], extra: Ranges | None = None
    ) -> None:
        self.doc = doc
        self.limit = [version.get(doc.replica_of(c), 0) for c in range(len(doc._replicas))]
        self.limit[0] = 1 << 62  # named roots always exist
        self.extra = dict(extra or {})
        self.index = delete_index(doc)
        self.dcl = self.index.dcl  # (read per run: no attribute lookups on the index)
        self.dseq = self.index.dseq

    def _seen(self, client: int, seq: int) -> bool:
        if seq < self.limit[client]:
            return True
        r = self.extra.get(client)
        return r is not None and r[0] <= seq < r[1]

    def has(self, pid: int) -> bool:
        return self._seen(pid & CLIENT_MASK, pid >> CLIENT_BITS)

    def _deleted(self, client: int, seq: int) -> bool:
        index = self.index
        dc = index.dcl[client][seq]
        if dc == NOBODY:
            return False
        if dc == MANY:
            return any(self._seen(c, s) for c, s in index.multi[client, seq])
        return self._seen(dc, index.dseq[client][seq])

    def visible_mask(self, client: int, first: int, n: int) -> list[bool]:
        """For elements ``first .. first+n-1`` of ``client``: visible at this version?"""
        return [
            self._seen(client, s) and not self._deleted(client, s) for s in range(first, first + n)
        ]

    def runs(self, client: int, first: int, n: int) -> list[tuple[int, int]]:
        """The visible elements of ``first .. first+n-1`` as ``[start, end)`` seq runs."""
        if client not in self.extra:
            hi = min(first + n, self.limit[client])
            if hi <= first:
                return []
            cl = self.dcl[client][first:hi]
            if cl == _uniform(NOBODY, len(cl)):  # (compared as bytes: no int per element)
                return [(first, hi)]
            one = cl[0]
            if one >= 0 and cl == _uniform(one, len(cl)):  # one deleting client
                lo_c = hi_c = one
            else:
                lo_c, hi_c = min(cl), max(cl)
            if hi_c >= 0 and lo_c in (hi_c, NOBODY) and hi_c not in self.extra:
                deletes = self.dseq[client][first:hi]  # one deleting client: at once
                bound = self.limit[hi_c]
                if min(deletes) >= bound:
                    return [(first, hi)]
                if max(deletes) < bound:
                    return []
        out: list[tuple[int, int]] = []
        for k, visible in enumerate(self.visible_mask(client, first, n)):
            if visible:
                if out and out[-1][1] == first + k:
                    out[-1] = (out[-1][0], first + k + 1)
                else:
                    out.append((first + k, first + k + 1))
        return out

    def same_runs(
        self, other: _View, client: int, first: int, n: int
    ) -> list[tuple[int, int]] | None:
        """The visible runs of ``first .. first+n-1`` when they are the same in ``other``
        (an unchanged stretch: the common case of a diff), else None (look element by
        element). Decided from one pair of slices."""
        if client in self.extra or client in other.extra:
            return None
        la, lb = self.limit[client], other.limit[client]
        hi = first + n
        if first >= la and first >= lb:
            return []  # inserted after both
        if hi > la or hi > lb:
            return None  # (some) inserted in between
        cl = self.dcl[client][first:hi]
        if cl == _uniform(NOBODY, len(cl)):  # (compared as bytes: no int per element)
            return [(first, hi)]
        one = cl[0]
        if one >= 0 and cl == _uniform(one, len(cl)):  # one deleting client
            lo_c = hi_c = one
        else:
            lo_c, hi_c = min(cl), max(cl)
        if hi_c < 0 or lo_c not in (hi_c, NOBODY) or hi_c in self.extra or hi_c in other.extra:
            return None
        deletes = self.dseq[client][first:hi]
        ba, bb = sorted((self.limit[hi_c], other.limit[hi_c]))
        if min(deletes) >= bb:
            return [(first, hi)]
        if max(deletes) < ba or not any(ba <= d < bb for d in deletes):
            return self.runs(client, first, n)  # no delete between the two: same runs
        return None

    def sequence_elements(self, seq: Sequence) -> list[tuple[int, Any]]:
        """(id, element) of the elements visible at this version, in order."""
        out: list[tuple[int, Any]] = []
        for item in seq.items():
            if type(item.content) is Gap:
                continue
            client = item.id & CLIENT_MASK
            first = item.id >> CLIENT_BITS
            for s, e in self.runs(client, first, len(item.content)):
                for k in range(s - first, e - first):
                    out.append((item.id + (k << CLIENT_BITS), item.content[k]))
        return out

    def text(self, seq: Sequence) -> str:
        """The text of a text node at this version."""
        parts: list[str] = []
        for item in seq.items():
            if type(item.content) is Gap:
                continue
            first = item.id >> CLIENT_BITS
            content = item.content
            for s, e in self.runs(item.id & CLIENT_MASK, first, len(content)):
                parts.append(cast(str, content[s - first : e - first]))
        return "".join(parts)

    def lww(self, node: int) -> dict[str | None, tuple[Any, Any]]:
        """key -> (timestamp, value) of the winning writes at this version."""
        best: dict[str | None, tuple[Any, Any]] = {}
        for log in self.doc._log:
            for op in log:
                if type(op) is SetOp and op.node == node and self.has(op.id):
                    cur = best.get(op.key)
                    if cur is None or op.ts > cur[0]:
                        value = (
                            NodeRef(op.value.kind, op.id) if hasattr(op.value, "kind") else op.value
                        )
                        best[op.key] = (op.ts, value)
        return best

    def counter(self, node: int) -> int:
        return sum(
            op.amount
            for log in self.doc._log
            for op in log
            if type(op) is AddOp and op.node == node and self.has(op.id)
        )

    def node_json(self, node: int) -> Any:
        doc = self.doc
        kind = doc.kind_of(node)
        if kind is NodeKind.TEXT:
            return self.text(doc.sequence(node))
        if kind is NodeKind.LIST:
            return [self.value_json(e) for _, e in self.sequence_elements(doc.sequence(node))]
        if kind is NodeKind.MAP:
            return {
                k: self.value_json(v)
                for k, (_, v) in sorted(self.lww(node).items(), key=lambda kv: str(kv[0]))
                if v is not DELETED and k is not None
            }
        if kind is NodeKind.REGISTER:
            entry = self.lww(node).get(None)
            return None if entry is None else entry[1]
        return self.counter(node)

    def value_json(self, value: Any) -> Any:
        if type(value) is NodeRef:
            return self.node_json(value.id)
        return value


def value_at(doc: Document, version: Mapping[int, int]) -> dict[str, Any]:
    """The document's JSON value as it was at ``version``."""
    _check_version(doc, version)
    view = _View(doc, version)
    return {name: view.node_json(node) for node, (name, _) in sorted(doc.roots.items())}


def diff(
    doc: Document,
    old: Mapping[int, int],
    new: Mapping[int, int],
    old_extra: Mapping[int, tuple[int, int]] | None = None,
    *,
    authored: bool = False,
) -> list[NodeDiff]:
    """What changed from version ``old`` to version ``new``, node by node (reachable nodes).

    ``old_extra``: replica id -> a ``[start, end)`` range of its op seqs that ``old`` has too
    (ops seen out of order: a client's own edit applied on top of the version it saw).
    ``authored`` (without ``old_extra``): text and list changes also come as ``spans`` naming
    the ops behind them, in the same pass.
    """
    _check_version(doc, old)
    _check_version(doc, new)
    extra: dict[int, tuple[int, int]] = {}
    for replica, span in (old_extra or {}).items():
        client = doc.known_client(replica)
        if client is None or span[1] > new.get(replica, 0):
            raise HistoryUnavailable("those operations are not in the newer version")
        extra[client] = span
    a = _View(doc, old, extra)
    b = _View(doc, new)
    out: list[NodeDiff] = []
    for node, (name, _) in sorted(doc.roots.items()):
        _diff_node(doc, a, b, node, (name,), out, authored and not extra)
    return out


def _diff_node(
    doc: Document,
    a: _View,
    b: _View,
    node: int,
    path: tuple[str | int, ...],
    out: list[NodeDiff],
    authored: bool = False,
) -> None:
    kind = doc.kind_of(node)
    if kind is NodeKind.TEXT or kind is NodeKind.LIST:
        seq = doc.sequence(node)
        spans: list[Any] | None = None
        if authored:
            from cowrite.engine.authorship import sequence_spans, spans_delta

            spans = sequence_spans(doc, a, b, node)
            delta = spans_delta(spans, seq.is_text, b)
        else:
            delta = _sequence_delta(a, b, seq)
        if delta:
            out.append(NodeDiff(node, kind, path, delta, spans=spans))
        if kind is NodeKind.LIST:
            for i, (_, e) in enumerate(b.sequence_elements(seq)):
                if type(e) is NodeRef:
                    _diff_node(doc, a, b, e.id, (*path, i), out, authored)
        return
    if kind is NodeKind.MAP:
        old = a.lww(node)
        new = b.lww(node)
        for key in sorted(set(old) | set(new), key=str):
            before = old.get(key, (None, None))[1]
            after = new.get(key, (None, None))[1]
            if type(after) is NodeRef and type(before) is NodeRef and after.id == before.id:
                _diff_node(doc, a, b, after.id, (*path, str(key)), out, authored)
            elif before != after:
                out.append(
                    NodeDiff(
                        node,
                        kind,
                        (*path, str(key)),
                        [],
                        _plain(a, before),
                        _plain(b, after),
                    )
                )
        return
    before = a.node_json(node)
    after = b.node_json(node)
    if before != after:
        out.append(NodeDiff(node, kind, path, [], before, after))


def _plain(view: _View, value: Any) -> Any:
    if value is DELETED or value is None:
        return None
    return view.value_json(value)


def _sequence_delta(a: _View, b: _View, seq: Sequence) -> list[Any]:
    """The index edit from the sequence at view ``a`` to it at view ``b``.

    When ``a`` counts extra op ranges (a client's batch seen on top of its state), the
    elements those ranges inserted may stand, in the client's copy, on the other side of
    elements that ``b`` no longer has: the server rebased the batch over deletes the client had
    not seen, and an index edit does not say on which side of a deleted element an insert goes.
    Between two elements both views keep (not of the batch), such a stretch is replaced whole:
    the client's copy holds the same elements there in an order we cannot know.
    """
    ops: list[Any] = []

    def push(component: Any) -> None:
        if ops:
            last = ops[-1]
            if (
                isinstance(component, int)
                and isinstance(last, int)
                and (component > 0) == (last > 0)
            ):
                ops[-1] = last + component
                return
            if not isinstance(component, int) and not isinstance(last, int):
                ops[-1] = last + component
                return
        ops.append(component)

    text = seq.is_text
    extra = a.extra
    # the elements between two kept ones: (in a, in b, of the extra ranges, element)
    stretch: list[tuple[bool, bool, bool, Any]] = []

    def flush() -> None:
        batch = any(va and f for va, _, f, _ in stretch)
        gone = any(va and not vb and not f for va, vb, f, _ in stretch)
        if batch and gone:  # where the batch stands among the deleted ones is unknown
            inserted = [e for _, vb, _, e in stretch if vb]
            if inserted:
                push("".join(inserted) if text else [b.value_json(e) for e in inserted])
            push(-sum(1 for va, _, _, _ in stretch if va))  # (the batch's are there: > 0)
        else:
            for va, vb, _, element in stretch:
                if va and vb:
                    push(1)
                elif va:
                    push(-1)
                else:
                    push(element if text else [b.value_json(element)])
        stretch.clear()

    for item in seq.items():
        if type(item.content) is Gap:  # deleted before the compaction base
            continue
        client = item.id & CLIENT_MASK
        first = item.id >> CLIENT_BITS
        n = len(item.content)
        same = a.same_runs(b, client, first, n)
        if same is not None:  # unchanged: kept (or absent) in both
            for s, e in same:
                push(e - s)
            continue
        in_a = a.visible_mask(client, first, n)
        in_b = b.visible_mask(client, first, n)
        span = extra.get(client)
        for k in range(n):
            va, vb = in_a[k], in_b[k]
            if not extra:
                if va and vb:
                    push(1)
                elif va:
                    push(-1)
                elif vb:
                    element = item.content[k]
                    push(element if text else [b.value_json(element)])
                continue
            if not (va or vb):
                continue
            s = first + k
            f = span is not None and span[0] <= s < span[1] and s >= a.limit[client]
            if va and vb and not f:  # kept, not the batch's: the client has it here too
                flush()
                push(1)
            else:
                stretch.append((va, vb, f, item.content[k]))
    flush()
    while ops and isinstance(ops[-1], int) and ops[-1] > 0:
        ops.pop()
    return ops
