"""The history a document keeps, read back as ops: what ``ops_since`` and deltas are made of.

Inserts come from the items themselves (a run is one insert op), delete records from the
columnar delete log (decoded first if a state load left them encoded), writes and counter adds
from the per-replica op log.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from cowrite.engine.doc_parts import DeleteColumns, _del_arrays
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, ONE
from cowrite.engine.ops import DeleteOp, InsertOp, NewNode, NodeRef, Op
from cowrite.engine.runs import Gap, Item
from cowrite.engine.threads import PACE_EVERY, let_others_run, pace

_new_op: Any = tuple.__new__
"""Builds an op tuple without the interpreted ``NamedTuple.__new__`` (one call per op read)."""

if TYPE_CHECKING:
    from cowrite.engine.document import Document


def decode_lazy_deletes(doc: Document) -> None:
    """Decode the delete records a state load left encoded, ahead of the newer ones."""
    chunks = list(doc._lazy_dels)
    install_deletes(doc, chunks, decode_delete_chunks(doc, chunks))


def decode_delete_chunks(
    doc: Document, chunks: list[tuple[bytes, dict[int, int]]]
) -> list[DeleteColumns]:
    """The delete records of encoded ``chunks`` as columns per client, without changing
    ``doc``: it may run in a worker thread while the owner of ``doc`` goes on (it only reads
    the replica and root tables, which the state load that left the chunks filled)."""
    from cowrite.engine.encoding import decode_ops

    cols: list[DeleteColumns] = []
    for data, _ in chunks:
        ops = decode_ops(doc, data)
        let_others_run()
        last = -1
        seqs = nodes = targets = lengths = array("q")
        for k, op in enumerate(ops):
            if type(op) is not DeleteOp:
                continue
            op_id = op.id
            client = op_id & CLIENT_MASK
            if client != last:  # (records come in runs of one client)
                while len(cols) <= client:
                    cols.append(_del_arrays())
                seqs, nodes, targets, lengths = cols[client]
                last = client
            seq = op_id >> CLIENT_BITS
            spans = op.spans
            if len(spans) == 1:
                target, count = spans[0]
                seqs.append(seq)
                nodes.append(op.node)
                targets.append(target)
                lengths.append(count)
            else:
                for target, count in spans:
                    seqs.append(seq)
                    nodes.append(op.node)
                    targets.append(target)
                    lengths.append(count)
            if k & (PACE_EVERY - 1) == PACE_EVERY - 1:
                pace()
    return cols


def install_deletes(
    doc: Document, chunks: list[tuple[bytes, dict[int, int]]], older: list[DeleteColumns]
) -> bool:
    """Put ``older`` (``decode_delete_chunks(doc, chunks)``) ahead of the newer records, unless
    the document's encoded records are no longer ``chunks`` (decoded meanwhile, or replaced by
    a merge): then False and nothing changes. On the thread that owns ``doc``."""
    # compared by their parts: compiled (mypyc), a (bytes, dict) tuple read from a list is
    # unboxed and boxed again, a new tuple object, while its bytes and dict stay the same objects
    if len(doc._lazy_dels) != len(chunks) or any(
        a[0] is not b[0] or a[1] is not b[1]
        for a, b in zip(doc._lazy_dels, chunks, strict=True)
    ):
        return False
    newer = doc._del_cols
    width = max(len(newer), len(older))
    older += [_del_arrays() for _ in range(width - len(older))]
    newer += [_del_arrays() for _ in range(width - len(newer))]
    for cols, more in zip(older, newer, strict=True):
        for col, extra in zip(cols, more, strict=True):
            col.extend(extra)
    doc._del_cols = older
    doc._lazy_dels = []
    return True


def client_ops_since(doc: Document, client: int, start: int) -> list[Op]:
    """One replica's operations from seq ``start`` on, in seq order."""
    ops = _inserts_since(doc, client, start)
    if doc._lazy_dels and any(start < bound.get(client, 0) for _, bound in doc._lazy_dels):
        decode_lazy_deletes(doc)
    seqs, nodes, targets, lengths = doc._del_cols[client]
    k = bisect_left(seqs, start)
    while k < len(seqs):
        s = seqs[k]
        spans = []
        node = nodes[k]
        while k < len(seqs) and seqs[k] == s:
            spans.append((targets[k], lengths[k]))
            k += 1
        delete: DeleteOp = _new_op(DeleteOp, ((s << CLIENT_BITS) | client, node, tuple(spans)))
        ops.append((s, delete))
    log = doc._log[client]
    if log and (log[-1].id >> CLIENT_BITS) >= start:
        k = bisect_left(log, start, key=lambda o: o.id >> CLIENT_BITS)
        ops.extend((o.id >> CLIENT_BITS, o) for o in log[k:])
    if len(ops) > 1:
        ops.sort(key=lambda t: t[0])
    return [op for _, op in ops]


def _inserts_since(doc: Document, client: int, start: int) -> list[tuple[int, Op]]:
    """``(first seq, insert op)`` of ``client``'s runs holding seqs from ``start`` on."""
    out: list[tuple[int, Op]] = []
    for first, item in doc.index.runs(client, start):
        if first + len(item.content) <= start:
            continue
        if first < start:  # a run grown since ``start``: send only what is new
            out.append((start, _insert_op_of(item, start - first)))
        else:
            out.append((first, _insert_op_of(item, 0)))
    return out


def _insert_op_of(item: Item, k: int) -> InsertOp:
    """The insert op of ``item``'s run without its first ``k`` elements (placed right after
    the k-th, like ``doc_parts._insert_suffix``)."""
    content = item.content
    assert not isinstance(content, Gap), "compacted runs are in the base, never in a delta"
    if type(content) is list:
        content = [NewNode(v.kind) if type(v) is NodeRef else v for v in content]
    owner = item.leaf.owner
    assert owner is not None
    if not k:
        op: InsertOp = _new_op(InsertOp, (item.id, owner.node_id, item.origin, item.right, content))
        return op
    first = item.id + k * ONE
    op = _new_op(InsertOp, (first, owner.node_id, first - ONE, item.right, content[k:]))
    return op
