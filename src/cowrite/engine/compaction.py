"""Tombstone compaction and compacted snapshots.

``compact(doc, upto)`` folds the history up to a version every replica has seen (or a retention
point) into a *base*: deleted elements whose insert and delete are both in the base lose their
content (a tombstone run keeps only its ids and length, merged with its neighbours), delete
records and overwritten map/register writes in the base are dropped, counter adds are summed.
Memory and encoded size then grow with live content, tombstone *runs* and the retained window.

Why the tombstone run itself stays: an insert names the element to its right as an origin, and
that may be a tombstone (FugueMax needs it to order concurrent inserts). A replica that saw the
delete but not the compaction can still send such an insert; keeping the run (ids and length)
means it still lands in the right place, and every replica orders it identically.

A compacted document's history starts at its base: asking for an older version, or for a delta
since an older version, raises ``ResyncNeeded``/``HistoryUnavailable``, never a wrong merge. A
replica that far behind replaces its state with a snapshot and replays its own unsent edits as
index edits.

Snapshot format (``encode_snapshot``): magic ``CWS``, version 1, then (zlib) the base version, the
node table, every sequence's items in document order, the base values of maps, registers and
counters, and last the retained ops in the ordinary delta format (``encoding``).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cowrite.engine.codec import (
    Reader,
    Writer,
    compress,
    decompress,
    read_bool_rle,
    read_str_column,
    read_uint_rle,
    write_bool_rle,
    write_str_column,
    write_uint_rle,
)
from cowrite.engine.document import Document, MapState, root_id
from cowrite.engine.errors import DecodeError, EngineError, InvalidOperation, ResyncNeeded
from cowrite.engine.history import deleted_intervals
from cowrite.engine.ids import (
    CLIENT_BITS,
    CLIENT_MASK,
    MAX_REPLICA_ID,
    NO_ID,
    VersionVector,
    vv_includes,
    vv_merge,
)
from cowrite.engine.ops import AddOp, DeleteOp, NewNode, NodeKind, NodeRef, SetOp, check_json
from cowrite.engine.register import LWWRegister
from cowrite.engine.runs import mergeable
from cowrite.engine.sequence import Gap, Item, Leaf, Sequence

MAGIC = b"CWS"
FORMAT_VERSION = 1
MAX_BODY_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class CompactionStats:
    tombstones_collected: int
    delete_records_dropped: int
    writes_dropped: int


def compact(doc: Document, upto: Mapping[int, int]) -> CompactionStats:
    """Fold history up to ``upto`` (a version the document includes) into the base."""
    if not vv_includes(doc.version, upto):
        raise InvalidOperation("can only compact up to a version the document has seen")
    base = vv_merge(doc.base, upto)
    limit = [base.get(doc.replica_of(c), 0) for c in range(len(doc._replicas))]
    # element intervals deleted by deletes in the base, per target client
    starts, ends = deleted_intervals(doc, limit)
    collected = 0
    for state in list(doc._nodes.values()):
        if isinstance(state, Sequence):
            collected += _collect(state, starts, ends)
    dropped = 0
    for client, (seqs, nodes, targets, lengths) in enumerate(doc._dels):
        cut = bisect_right(seqs, limit[client] - 1)
        if cut:
            dropped += cut
            for col in (seqs, nodes, targets, lengths):
                del col[:cut]
    writes = 0
    for client, log in enumerate(doc._log):
        kept: list[Any] = []
        for op in log:
            if (op.id >> CLIENT_BITS) < limit[client] and not _is_current(doc, op):
                writes += 1
                continue
            kept.append(op)
        log[:] = kept
    keep = [
        i
        for i, (c, e) in enumerate(zip(doc.vlog_client, doc.vlog_end, strict=True))
        if e > limit[c]
    ]
    for name in ("vlog_client", "vlog_end", "vlog_time"):
        col = getattr(doc, name)
        setattr(doc, name, type(col)("q", (col[i] for i in keep)))
    doc.base = base
    return CompactionStats(collected, dropped, writes)


def _is_current(doc: Document, op: Any) -> bool:
    """Is this write (or add) still part of the current state? Adds always are."""
    if type(op) is not SetOp:
        return True
    state = doc.state_of(op.node)
    reg = state.entries.get(op.key or "") if isinstance(state, MapState) else state
    return isinstance(reg, LWWRegister) and reg.timestamp == op.ts


def _collect(seq: Sequence, starts: dict[int, list[int]], ends: dict[int, list[int]]) -> int:
    collected = 0
    for item in list(seq.items()):
        if not item.deleted or type(item.content) is Gap:
            continue
        client = item.id & CLIENT_MASK
        s_list = starts.get(client)
        if not s_list:
            continue
        first = item.id >> CLIENT_BITS
        n = len(item.content)
        e_list = ends[client]
        k = max(bisect_right(s_list, first) - 1, 0)
        pieces: list[tuple[int, int]] = []
        while k < len(s_list) and s_list[k] < first + n:
            a, b = max(s_list[k], first), min(e_list[k], first + n)
            if a < b:
                pieces.append((a, b))
            k += 1
        for a, b in reversed(pieces):  # split right to left so `item` stays the head
            target = item
            if b < first + n:
                seq._split(target, b - first)
            if a > first:
                target = seq._split(target, a - first)
            target.content = Gap(b - a)
            collected += b - a
    _merge_gaps(seq)
    seq._cl = None
    return collected


def _merge_gaps(seq: Sequence) -> None:
    """Merge adjacent compacted runs of one run (leaf boundaries included)."""
    leaf: Leaf | None = seq.first
    while leaf is not None:
        items = leaf.items
        k = 0
        while k < len(items):
            it = items[k]
            if not (type(it.content) is Gap and seq._merge_next(it)):
                k += 1
        leaf = leaf.next


# ------------------------------------------------------------------ snapshots


def encode_snapshot(doc: Document) -> bytes:
    """The document as a snapshot: its state (items in order) plus the history it retains."""
    from cowrite.engine.encoding import encode_ops

    w = Writer()
    replicas = doc._replicas[1:]
    w.uint(len(replicas))
    for c, r in enumerate(replicas, start=1):
        w.uint(r)
        w.uint(doc.next_seq(c))
        w.uint(doc.base.get(r, 0))
    roots = sorted(doc.roots.items())
    w.uint(len(roots))
    for node, (name, kind) in roots:
        w.uint(node >> CLIENT_BITS)
        w.uint(int(kind))
        w.str_(name)
    nodes = sorted(doc._nodes.items())
    w.uint(len(nodes))
    for node, state in nodes:
        _write_id(w, node)
        w.uint(int(doc.kind_of(node)))
        if isinstance(state, Sequence):
            _write_items(w, state)
    w.bytes_(encode_ops(doc, _history_ops(doc)))
    return MAGIC + bytes([FORMAT_VERSION]) + compress(w.getvalue())


def _history_ops(doc: Document) -> list[Any]:
    """Retained delete records and writes, per replica in seq order (not inserts: in the items)."""
    out: list[Any] = []
    for client in range(1, len(doc._replicas)):
        ops: list[Any] = list(doc._log[client])
        seqs, nodes, targets, lengths = doc._dels[client]
        k = 0
        while k < len(seqs):
            s, node, spans = seqs[k], nodes[k], []
            while k < len(seqs) and seqs[k] == s:
                spans.append((targets[k], lengths[k]))
                k += 1
            ops.append(DeleteOp((s << CLIENT_BITS) | client, node, tuple(spans)))
        ops.sort(key=lambda o: o.id >> CLIENT_BITS)
        out.extend(ops)
    return out


def _write_id(w: Writer, pid: int) -> None:
    """An id as (1 + client, seq); a lone 0 means no id (the start or end of a sequence)."""
    if pid == NO_ID:
        w.uint(0)
        return
    w.uint(1 + (pid & CLIENT_MASK))
    w.uint(pid >> CLIENT_BITS)


def _write_items(w: Writer, seq: Sequence) -> None:
    items = list(seq.items())
    w.uint(len(items))
    ids = Writer()
    kinds: list[int] = []
    texts: list[str] = []
    deleted: list[bool] = []
    lists: list[Any] = []
    for it in items:
        _write_id(ids, it.id)
        _write_id(ids, it.origin)
        _write_id(ids, it.right)
        deleted.append(it.deleted)
        c = it.content
        if type(c) is Gap:
            kinds.append(2)
            ids.uint(len(c))
        elif isinstance(c, str):
            kinds.append(0)
            texts.append(c)
        else:
            kinds.append(1)
            lists.append(c)
    w.bytes_(ids.getvalue())
    write_uint_rle(w, kinds)
    write_bool_rle(w, deleted)
    write_str_column(w, texts)
    from cowrite.engine.encoding import _encode_list

    w.uint(len(lists))
    for values in lists:
        w.bytes_(_encode_list([_plain_ref(v) for v in values]))


def _plain_ref(v: Any) -> Any:
    return NewNode(v.kind) if type(v) is NodeRef else v


def load_snapshot(doc: Document, data: bytes) -> None:
    """Load a snapshot into an empty document (``Document.merge`` calls this for ``CWS`` data)."""
    if doc.version or doc._nodes:
        raise ResyncNeeded("a snapshot can only be loaded into an empty document")
    if len(data) < 4 or data[:3] != MAGIC:
        raise DecodeError("not a cowrite snapshot")
    if data[3] != FORMAT_VERSION:
        raise DecodeError(f"unsupported snapshot version {data[3]}")
    raw = decompress(data[4:], min(MAX_BODY_BYTES, 64 * len(data) + (1 << 20)))
    try:
        _load_body(doc, Reader(raw), len(raw))
    except DecodeError:
        raise
    except (EngineError, KeyError, IndexError, ValueError, StopIteration) as exc:
        raise DecodeError(f"corrupt snapshot: {exc}") from None


def _load_body(doc: Document, r: Reader, size: int) -> None:
    from cowrite.engine.encoding import decode_ops

    clients = [0]
    nexts: list[tuple[int, int]] = []
    base: VersionVector = {}
    for _ in range(r.count()):
        replica = r.uint()
        if not 0 < replica <= MAX_REPLICA_ID:
            raise DecodeError("bad replica id")
        n = r.uint(max_value=(1 << 43) - 1)
        b = r.uint(max_value=n)
        c = doc.client_index(replica)
        clients.append(c)
        nexts.append((c, n))
        if b:
            base[replica] = b
    for _ in range(r.count()):
        rseq = r.uint(max_value=(1 << 40) - 1)
        try:
            kind = NodeKind(r.uint(max_value=255))
        except ValueError:
            raise DecodeError("unknown node kind") from None
        name = r.str_(1024)
        if root_id(kind, name) != rseq << CLIENT_BITS:
            raise DecodeError("root with a wrong id")
        doc.roots[rseq << CLIENT_BITS] = (name, kind)

    def read_id(rd: Reader) -> int:
        tag = rd.uint()
        if tag == 0:
            return NO_ID
        if tag - 1 >= len(clients):
            raise DecodeError("id of an unknown replica")
        return (rd.uint(max_value=(1 << 43) - 1) << CLIENT_BITS) | clients[tag - 1]

    for _ in range(r.count()):
        node = read_id(r)
        try:
            kind = NodeKind(r.uint(max_value=255))
        except ValueError:
            raise DecodeError("unknown node kind") from None
        state = doc._create_node(node, kind)
        if isinstance(state, Sequence):
            _read_items(doc, state, r, read_id, size)
    history = decode_ops(doc, r.bytes_())
    r.expect_end()
    for c, n in nexts:
        doc._next[c] = n
    for op in history:
        if (op.id >> CLIENT_BITS) >= doc._next[op.id & CLIENT_MASK]:
            raise DecodeError("history beyond the snapshot's version")
        if type(op) is DeleteOp:
            doc._log_delete(op.id, op.node, op.spans)
        else:
            kind = doc.kind_of(op.node)
            doc._check_op_kind(op, kind)
            if isinstance(op, SetOp):
                doc._apply_set(op)
            elif isinstance(op, AddOp):
                doc._apply_add(op)
            else:
                raise DecodeError("inserts belong in the items, not the history")
            doc._log[op.id & CLIENT_MASK].append(op)
    for log in doc._log:
        log.sort(key=lambda o: o.id >> CLIENT_BITS)
    doc.base = base


def _read_items(doc: Document, seq: Sequence, r: Reader, read_id: Any, size: int) -> None:
    from cowrite.engine.encoding import _decode_list

    n = r.count(max_count=8 * size + 16, per_item_min_bytes=0)
    ids = Reader(r.bytes_())
    kinds = read_uint_rle(r, n)
    deleted = read_bool_rle(r, n)
    if len(kinds) != n or len(deleted) != n:
        raise DecodeError("item columns disagree")
    texts = iter(read_str_column(r, kinds.count(0)))
    n_lists = r.count()
    if n_lists != kinds.count(1):
        raise DecodeError("list content count mismatch")
    lists = iter([_decode_list(r.bytes_()) for _ in range(n_lists)])
    items: list[Item] = []
    for k in range(n):
        pid, origin, right = read_id(ids), read_id(ids), read_id(ids)
        content: Any
        if kinds[k] == 2:
            content = Gap(ids.uint(max_value=1 << 40))
            if not deleted[k]:
                raise DecodeError("compacted content must be deleted")
        elif kinds[k] == 0:
            content = next(texts)
        elif kinds[k] == 1:
            values = next(lists)
            for v in values:
                if not hasattr(v, "kind"):
                    check_json(v)
            content = doc._materialize_list(pid, values)
        else:
            raise DecodeError("unknown content kind")
        if not len(content) or pid == NO_ID:
            raise DecodeError("empty item")
        if type(content) is not Gap and isinstance(content, str) != seq.is_text:
            raise DecodeError("content of the wrong kind")
        items.append(Item(pid, content, origin, right, deleted[k]))
    ids.expect_end()
    items = _coalesce(items)
    seq.load_items(items)
    for it in items:
        try:
            doc.index.find(it.id)
        except KeyError:
            doc.index.add(it)
        else:
            raise DecodeError("duplicate element id")


def _coalesce(items: list[Item]) -> list[Item]:
    """Items (in document order) with every run that continues its predecessor merged into it."""
    out: list[Item] = []
    for it in items:
        if out and mergeable(out[-1], it):
            out[-1].content = out[-1].content + it.content  # type: ignore[operator]
        else:
            out.append(it)
    return out
