"""Applying remote operations to a document: causal delivery, validation, change reports.

``apply_ops`` (what ``Document.apply_ops`` runs) applies ops whose dependencies are present and
queues the others per replica until they are; a batch is validated before any of it is applied.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from heapq import heappop, heappush
from time import time_ns
from typing import TYPE_CHECKING, Any, Final, cast

from cowrite.engine.doc_parts import MAX_PENDING_OPS, SYSTEM, Change, _insert_suffix
from cowrite.engine.errors import InvalidOperation
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, NO_ID, ONE
from cowrite.engine.ops import (
    DELETED,
    AddOp,
    DeleteOp,
    InsertOp,
    NewNode,
    NodeKind,
    Op,
    SetOp,
    check_json,
)
from cowrite.engine.sequence import Sequence

# compiled, a Final name is a C static; an imported class is a dict lookup per use. Ops are
# read as tuples: ``op[0]`` (id) and ``op[1]`` (node) of any op, the other fields after a
# ``cast`` to its class; compiled, those are inline tuple reads, while an attribute of the
# ``Op`` union is a generic getattr (~15 per applied op, a tenth of a scattered merge)
_INSERT_OP: Final = InsertOp
_DELETE_OP: Final = DeleteOp
_TEXT: Final = NodeKind.TEXT
_LIST: Final = NodeKind.LIST

if TYPE_CHECKING:
    from cowrite.engine.document import Document
    from cowrite.engine.replicas import ReplicaTable


def apply_ops(doc: Document, ops: Iterable[Op], *, changes: bool = True) -> list[Change]:
    """Apply remote operations in any order; returns what changed (if ``changes``).

    Ops already seen are skipped; ops whose dependencies are missing wait (``pending_ops``)
    and are applied by a later call once those arrive. Raises InvalidOperation (and applies
    none of ``ops``) if one contradicts the document: wrong node kind, content of the wrong
    type, or too many ops waiting.
    """
    new = ops if type(ops) is list else list(ops)  # (never mutated: slices and filters)
    if len(new) != 1 or type(new[0]) is not _INSERT_OP or type(new[0].content) is not str:
        _prevalidate(doc, new)  # (a lone text insert cannot be half-applied: checked below)
    out: list[Change] = []
    sink = out if changes else None
    nxt = doc._next
    if not doc._pending_count:
        # fast path: ops arriving in causal order apply directly, no queueing
        applied = 0
        nodes = doc._nodes
        for op in new:
            op_id: int = op[0]
            client = op_id & CLIENT_MASK
            seq = op_id >> CLIENT_BITS
            have = nxt[client]
            if type(op) is _INSERT_OP:
                ins = op  # (narrowed: an InsertOp)
                end = seq + len(ins.content)
                if end <= have:  # seen already
                    applied += 1
                    continue
                if seq < have:  # partly seen: the unseen suffix
                    ins = _insert_suffix(ins, have - seq)
                    seq = have
                o = ins.origin
                r = ins.right
                if (
                    seq != have
                    or client == SYSTEM
                    or ins.node not in nodes
                    or (o != NO_ID and (o >> CLIENT_BITS) >= nxt[o & CLIENT_MASK])
                    or (r != NO_ID and (r >> CLIENT_BITS) >= nxt[r & CLIENT_MASK])
                ) and not (seq == have and _ready(doc, ins)):
                    break
                op = ins
            else:
                end = seq + 1
                if end <= have:  # seen already
                    applied += 1
                    continue
                if seq != have or not _ready(doc, op):
                    break
            _apply_remote(doc, op, sink)
            nxt[client] = end
            applied += 1
            if applied == len(new) or new[applied][0] & CLIENT_MASK != client:
                record_version(doc, client, end)
        if applied == len(new):
            return out
        new = new[applied:]
    new = [op for op in new if _queue_key(op) not in doc._queued]
    if doc._pending_count + len(new) > MAX_PENDING_OPS:
        raise InvalidOperation("too many operations waiting for missing dependencies")
    queues = doc._queues
    for op in new:
        client = op.id & CLIENT_MASK
        q = queues.get(client)
        if q is None:
            q = queues[client] = []
        doc._tiebreak += 1
        heappush(q, (op.id >> CLIENT_BITS, doc._tiebreak, op))
        doc._queued.add(_queue_key(op))
    doc._pending_count += len(new)
    progress = True
    while progress:
        progress = False
        for client, q in queues.items():
            while q:
                seq, _, op = q[0]
                have = nxt[client]
                if type(op) is InsertOp:
                    end = seq + len(op.content)
                    if end <= have:
                        doc._queued.discard(_queue_key(heappop(q)[2]))
                        doc._pending_count -= 1
                        continue
                    if seq < have:  # partly seen: keep the unseen suffix
                        op = _insert_suffix(op, have - seq)
                        seq = have
                else:
                    end = seq + 1
                    if end <= have:
                        doc._queued.discard(_queue_key(heappop(q)[2]))
                        doc._pending_count -= 1
                        continue
                if seq > have or not _ready(doc, op):
                    break
                popped = heappop(q)[2]
                doc._queued.discard(_queue_key(popped))
                doc._pending_count -= 1
                _apply_remote(doc, op, sink)
                nxt[client] = end
                record_version(doc, client, end)
                progress = True
    return out


def _prevalidate(doc: Document, ops: list[Op]) -> None:
    """Check a batch before applying any of it: node kinds (nodes created inside the batch
    included), content types, JSON values. Raises InvalidOperation."""
    kinds = doc._kinds
    created: dict[int, NodeKind] = {}
    for op in ops:
        t = type(op)
        if t is _INSERT_OP and type(cast(InsertOp, op).content) is str:
            if op[0] & CLIENT_MASK == SYSTEM:
                raise InvalidOperation("replica 0 is reserved")
            kind = kinds.get(op[1])
            if kind is _TEXT:
                continue  # the common case, settled
        elif t is _DELETE_OP:
            if op[0] & CLIENT_MASK == SYSTEM:
                raise InvalidOperation("replica 0 is reserved")
            kind = kinds.get(op[1])
            if kind is _TEXT or kind is _LIST:
                continue  # all ``_check_op_kind`` would check (the other cases: below)
        elif t is SetOp:
            value = op.value  # type: ignore[union-attr]
            if type(value) is NewNode:
                created[op.id] = value.kind
            elif value is not DELETED:
                check_json(value)
        elif t is InsertOp:
            if type(op.content) is list:  # type: ignore[union-attr]
                for k, v in enumerate(op.content):  # type: ignore[union-attr]
                    if type(v) is NewNode:
                        created[op.id + k * ONE] = v.kind
                    else:
                        check_json(v)
        elif t is AddOp:
            amount = op.amount  # type: ignore[union-attr]
            if type(amount) is not int or not -(1 << 63) <= amount < (1 << 63):
                raise InvalidOperation("counter amounts are 64-bit ints")
        if op.id & CLIENT_MASK == SYSTEM:
            raise InvalidOperation("replica 0 is reserved")
        node = op.node
        kind = kinds.get(node) or created.get(node)
        if kind is None:
            root = doc.roots.get(node)
            if root is None:
                continue  # a node not known yet: the op waits, and is checked when applied
            kind = root[1]
        if t is DeleteOp and (kind is _TEXT or kind is _LIST):
            continue  # all ``_check_op_kind`` would check
        doc._check_op_kind(op, kind)


def _known(doc: Document, pid: int) -> bool:
    return pid == NO_ID or (pid >> CLIENT_BITS) < doc._next[pid & CLIENT_MASK]


def _ready(doc: Document, op: Op) -> bool:
    if op[0] & CLIENT_MASK == SYSTEM:
        raise InvalidOperation("replica 0 is reserved")
    node: int = op[1]
    if node not in doc._nodes and node not in doc.roots:
        return False
    t = type(op)
    if t is _INSERT_OP:
        ins = cast(InsertOp, op)
        return _known(doc, ins.origin) and _known(doc, ins.right)
    if t is _DELETE_OP:
        for target, n in cast(DeleteOp, op).spans:
            if not _known(doc, target + (n - 1) * ONE):
                return False
    return True


def _apply_remote(doc: Document, op: Op, out: list[Change] | None) -> None:
    t = type(op)
    if out is None and t is _INSERT_OP:
        ins = cast(InsertOp, op)
        text = ins.content
        if type(text) is str:
            # hot path (replica sync of typing): a text insert with no change report
            seq = doc._nodes.get(ins.node)
            if type(seq) is Sequence and seq.is_text:
                seq.integrate(ins.id, ins.origin, ins.right, text)
                return
    if out is None and t is _DELETE_OP:
        # hot path too: a delete with no change report (the node's kind is settled by its
        # state being a sequence)
        dop = cast(DeleteOp, op)
        seq = doc._nodes.get(dop.node)
        if type(seq) is Sequence:
            spans = dop.spans
            for target, count in spans:
                _check_owner(doc, seq, target, count)
            for target, count in spans:
                seq.delete_ids(target, count)
            log_delete(doc, dop.id, dop.node, spans)
            return
    kind = doc.kind_of(op.node)
    doc._check_op_kind(op, kind)
    if t is InsertOp:
        assert isinstance(op, InsertOp)
        seq = doc.sequence(op.node)
        content: str | list[Any] = op.content
        if not seq.is_text:
            assert isinstance(content, list)
            for v in content:
                if type(v) is not NewNode:
                    check_json(v)
            content = doc._materialize_list(op.id, content)
        seq.integrate(op.id, op.origin, op.right, content)
        if out is not None:
            pos, _ = seq.position_of(op.id)
            out.append(Change(op.node, kind, _retain(pos, [content])))
    elif t is DeleteOp:
        assert isinstance(op, DeleteOp)
        seq = doc.sequence(op.node)
        for target, count in op.spans:
            _check_owner(doc, seq, target, count)
        for target, count in op.spans:
            if out is None:
                seq.delete_ids(target, count)
                continue
            for pos, n in _visible_runs(doc, seq, target, count):
                seq.delete_ids(*n)
                out.append(Change(op.node, kind, _retain(pos, [-n[1]])))
        doc._log_delete(op.id, op.node, op.spans)
    elif t is SetOp:
        assert isinstance(op, SetOp)
        doc.clock.observe(op.ts)
        doc._apply_set(op)
        doc._log[op.id & CLIENT_MASK].append(op)
        if out is not None:
            out.append(Change(op.node, kind, [], op.key))
    else:
        assert isinstance(op, AddOp)
        doc._apply_add(op)
        doc._log[op.id & CLIENT_MASK].append(op)
        if out is not None:
            out.append(Change(op.node, kind, [op.amount]))


def log_delete(doc: Document, op_id: int, node: int, spans: Iterable[tuple[int, int]]) -> None:
    """Record delete op ``op_id``'s spans in its replica's delete log (``Document._log_delete``
    runs this: compiled, it is one call per delete on the merge path)."""
    seqs, nodes, targets, lengths = doc._del_cols[op_id & CLIENT_MASK]
    seq = op_id >> CLIENT_BITS
    for target, count in spans:
        seqs.append(seq)
        nodes.append(node)
        targets.append(target)
        lengths.append(count)


def wall_clock_ms() -> int:
    """The default ``Document.now_ms``: here, compiled, so that ``record_version`` calls it
    without an interpreted frame (once per local or merged transaction)."""
    return time_ns() // 1_000_000


def record_version(doc: ReplicaTable, client: int, end: int) -> None:
    """Extend the version log: ``client``'s ops up to seq ``end`` were applied now (one entry
    per transaction, or the last entry grown when it is ``client``'s and within the version
    window). ``ReplicaTable._record_version`` runs this; compiled, the merge path and local
    ops call it directly (once per applied run: a method call was 7 % of a replay)."""
    clock: Any = doc.now_ms  # Any: compiled, a typed call would refuse a float before _now
    raw: Any = clock()
    now: int = raw if type(raw) is int else doc._now()
    vc = doc.vlog_client
    last = len(vc) - 1
    if last >= 0 and vc[last] == client and now - doc.vlog_time[last] < doc.version_window_ms:
        doc.vlog_end[last] = end
    else:
        vc.append(client)
        doc.vlog_end.append(end)
        doc.vlog_time.append(now)


def _check_owner(doc: Document, seq: Sequence, target: int, count: int) -> None:
    if count <= 0:
        raise InvalidOperation("delete spans have positive lengths")
    while count > 0:
        try:
            item, off = doc.index.find(target)
        except KeyError:
            raise InvalidOperation(f"delete of unknown element {doc.format_id(target)}") from None
        if item.leaf.owner is not seq:
            raise InvalidOperation("delete of an element of another node")
        take = min(count, len(item.content) - off)
        target += take * ONE
        count -= take


def _visible_runs(
    doc: Document, seq: Sequence, target: int, count: int
) -> Iterator[tuple[int, tuple[int, int]]]:
    """Split a delete span into (position, (id, n)) pieces of still-visible elements."""
    while count > 0:
        item, off = doc.index.find(target)
        take = min(count, len(item.content) - off)
        if not item.deleted:
            pos, _ = seq.position_of(target)
            yield pos, (target, take)
        target += take * ONE
        count -= take


def _retain(pos: int, rest: list[Any]) -> list[Any]:
    return [pos, *rest] if pos else rest


def _queue_key(op: Op) -> tuple[int, type, int]:
    """Identifies a waiting op. An insert is a run: a later delta may carry the same run grown
    longer (same first id), which must wait too, not be dropped as a duplicate."""
    length = len(op.content) if isinstance(op, InsertOp) else 1
    return op.id, type(op), length
