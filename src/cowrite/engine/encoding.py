"""Binary encoding of deltas and full states (both are lists of operations).

Layout (all integers LEB128 varints; columns from ``codec``), version 1::

    magic "CWR" · format version 1 · flags (bit 0: body is zlib-compressed)
    body:
      replica table      count, replica ids            (ops name replicas by table index)
      root table         count, (seq, kind, name)...   (named roots the ops refer to)
      op count N
      columns over all N ops (in order, grouped by replica, seqs ascending):
        kind             uint RLE   0 insert · 1 delete · 2 set · 3 add
        replica          uint RLE   table index
        seq gap          uint RLE   seq - (previous seq of this replica + its length): 0 for a
                                    contiguous stream, so it costs nearly nothing
        node             ref column (see below)
      insert columns: origin ref, right ref (relative to the op's own id), content kind
                      (0 text, 1 list), text content (str column), list content (JSON values)
      delete columns: span count, target refs, span lengths
      set columns:    key present (bool RLE), keys (str column), value (tagged JSON),
                      timestamp wall delta RLE, timestamp counter uint RLE
      add columns:    amounts (zigzag uint RLE)

A *ref* names an element id relative to the op using it: tag 0 none, 1 same replica (then the
seq distance back from the op, zigzagged), 2 a root node (then its root seq), 3 + table index
(then the absolute seq). Typing produces runs whose origins are the previous character, so refs
compress to a few bits. Decoding checks every count against the bytes it has and every id
against the tables, and raises only ``DecodeError``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from cowrite.engine.clock import Timestamp
from cowrite.engine.codec import (
    Reader,
    Writer,
    compress,
    decompress,
    read_bool_rle,
    read_delta_rle,
    read_str_column,
    read_uint_rle,
    write_bool_rle,
    write_delta_rle,
    write_str_column,
    write_uint_rle,
)
from cowrite.engine.document import Document, root_id
from cowrite.engine.errors import DecodeError, EngineError
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, MAX_REPLICA_ID, NO_ID
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

MAGIC = b"CWR"
FORMAT_VERSION = 1
FLAG_COMPRESSED = 1
MAX_BODY_BYTES = 512 * 1024 * 1024
MAX_NAME_BYTES = 1024

K_INSERT, K_DELETE, K_SET, K_ADD = 0, 1, 2, 3
_KIND_OF = {InsertOp: K_INSERT, DeleteOp: K_DELETE, SetOp: K_SET, AddOp: K_ADD}
R_NONE, R_SAME, R_ROOT, R_TABLE = 0, 1, 2, 3
V_JSON, V_DELETED, V_NEW = 0, 1, 2

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


def encode_ops(doc: Document, ops: Sequence[Op], *, compress_body: bool = True) -> bytes:
    """Encode ``ops`` of ``doc`` (a ``Document``) into the binary format above."""
    table: dict[int, int] = {}  # client -> table index
    replicas: list[int] = []
    roots: dict[int, tuple[str, NodeKind]] = {}

    def tindex(client: int) -> int:
        t = table.get(client)
        if t is None:
            t = table[client] = len(replicas)
            replicas.append(doc.replica_of(client))
        return t

    kinds: list[int] = []
    clients: list[int] = []
    gaps: list[int] = []
    node_tags: list[int] = []
    node_vals: list[int] = []
    ins_tags: list[int] = []
    ins_vals: list[int] = []
    content_kind: list[int] = []
    texts: list[str] = []
    list_values: list[bytes] = []
    del_counts: list[int] = []
    del_tags: list[int] = []
    del_vals: list[int] = []
    del_lens: list[int] = []
    has_key: list[bool] = []
    keys: list[str] = []
    values: list[bytes] = []
    walls: list[int] = []
    counters: list[int] = []
    amounts: list[int] = []
    expect: dict[int, int] = {}

    def ref(pid: int, me: int, tags: list[int], vals: list[int]) -> None:
        if pid == NO_ID:
            tags.append(R_NONE)
            vals.append(0)
            return
        client = pid & CLIENT_MASK
        seq = pid >> CLIENT_BITS
        if client == me & CLIENT_MASK:
            tags.append(R_SAME)
            vals.append(_zz((me >> CLIENT_BITS) - seq))
        elif client == 0:
            tags.append(R_ROOT)
            vals.append(seq)
            roots[seq] = doc.roots[pid]
        else:
            tags.append(R_TABLE + tindex(client))
            vals.append(seq)

    for op in ops:
        client = op.id & CLIENT_MASK
        seq = op.id >> CLIENT_BITS
        kind = _KIND_OF[type(op)]
        kinds.append(kind)
        clients.append(tindex(client))
        gap = seq - expect.get(client, 0)
        if gap < 0:
            raise EngineError("ops must be grouped per replica in ascending seq order")
        gaps.append(gap)
        ref(op.node, op.id, node_tags, node_vals)
        if kind == K_INSERT:
            assert isinstance(op, InsertOp)
            expect[client] = seq + len(op.content)
            ref(op.origin, op.id, ins_tags, ins_vals)
            ref(op.right, op.id, ins_tags, ins_vals)
            if isinstance(op.content, str):
                content_kind.append(0)
                texts.append(op.content)
            else:
                content_kind.append(1)
                list_values.append(_encode_list(op.content))
        else:
            expect[client] = seq + 1
            if kind == K_DELETE:
                assert isinstance(op, DeleteOp)
                del_counts.append(len(op.spans))
                for target, count in op.spans:
                    ref(target, op.id, del_tags, del_vals)
                    del_lens.append(count)
            elif kind == K_SET:
                assert isinstance(op, SetOp)
                has_key.append(op.key is not None)
                if op.key is not None:
                    keys.append(op.key)
                values.append(_encode_value(op.value))
                walls.append(op.ts.wall_ms)
                counters.append(op.ts.counter)
            else:
                assert isinstance(op, AddOp)
                amounts.append(_zz(op.amount))

    w = Writer()
    w.uint(len(replicas))
    for r in replicas:
        w.uint(r)
    w.uint(len(roots))
    for rseq, (name, rkind) in sorted(roots.items()):
        w.uint(rseq)
        w.uint(int(rkind))
        w.str_(name)
    w.uint(len(kinds))
    write_uint_rle(w, kinds)
    write_uint_rle(w, clients)
    write_uint_rle(w, gaps)
    write_uint_rle(w, node_tags)
    write_uint_rle(w, node_vals)
    write_uint_rle(w, ins_tags)
    write_uint_rle(w, ins_vals)
    write_uint_rle(w, content_kind)
    write_str_column(w, texts)
    w.uint(len(list_values))
    for blob in list_values:
        w.bytes_(blob)
    write_uint_rle(w, del_counts)
    write_uint_rle(w, del_tags)
    write_uint_rle(w, del_vals)
    write_uint_rle(w, del_lens)
    write_bool_rle(w, has_key)
    write_str_column(w, keys)
    w.uint(len(values))
    for blob in values:
        w.bytes_(blob)
    write_delta_rle(w, walls)
    write_uint_rle(w, counters)
    write_uint_rle(w, amounts)
    body = w.getvalue()
    flags = 0
    if compress_body:
        packed = compress(body)
        if len(packed) < len(body):
            body = packed
            flags |= FLAG_COMPRESSED
    return MAGIC + bytes([FORMAT_VERSION, flags]) + body


def decode_ops(doc: Document, data: bytes | bytearray | memoryview) -> list[Op]:
    """Decode bytes from ``encode_ops`` into ops packed for ``doc``'s client table.

    Registers unseen replicas and named roots in ``doc``. Raises ``DecodeError`` for anything
    malformed; never allocates more than a bounded multiple of the input.
    """
    data = bytes(data)
    if len(data) < 5 or data[:3] != MAGIC:
        raise DecodeError("not a cowrite document or delta (bad magic)")
    if data[3] != FORMAT_VERSION:
        raise DecodeError(f"unsupported format version {data[3]}")
    flags = data[4]
    if flags & ~FLAG_COMPRESSED:
        raise DecodeError(f"unknown flags {flags:#x}")
    body = data[5:]
    if flags & FLAG_COMPRESSED:
        body = decompress(body, min(MAX_BODY_BYTES, 64 * len(body) + (1 << 20)))
    try:
        return _decode_body(doc, Reader(body), len(body))
    except DecodeError:
        raise
    except EngineError as exc:  # e.g. too many replicas, bad JSON value
        raise DecodeError(str(exc)) from None


def _decode_body(doc: Document, r: Reader, body_len: int) -> list[Op]:
    max_items = 8 * body_len + 16
    clients: list[int] = []
    for _ in range(r.count()):
        replica = r.uint()
        if not 0 < replica <= MAX_REPLICA_ID:
            raise DecodeError("replica id 0 is reserved")
        clients.append(doc.client_index(replica))
    root_seqs: set[int] = set()
    for _ in range(r.count()):
        rseq = r.uint(max_value=(1 << 40) - 1)
        try:
            rkind = NodeKind(r.uint(max_value=255))
        except ValueError:
            raise DecodeError("unknown node kind") from None
        name = r.str_(MAX_NAME_BYTES)
        if root_id(rkind, name) != rseq << CLIENT_BITS:
            raise DecodeError(f"root {name!r} has the wrong id")
        doc.roots.setdefault(rseq << CLIENT_BITS, (name, rkind))
        root_seqs.add(rseq)
    n = r.count(max_count=max_items, per_item_min_bytes=0)
    kinds = _column(read_uint_rle(r, n), n, "kind")
    op_clients = _column(read_uint_rle(r, n), n, "replica")
    gaps = _column(read_uint_rle(r, n), n, "seq")
    node_tags = _column(read_uint_rle(r, n), n, "node")
    node_vals = _column(read_uint_rle(r, n), n, "node")
    n_ins = kinds.count(K_INSERT)
    n_del = kinds.count(K_DELETE)
    n_set = kinds.count(K_SET)
    n_add = kinds.count(K_ADD)
    if n_ins + n_del + n_set + n_add != n:
        raise DecodeError("unknown op kind")
    ins_tags = _column(read_uint_rle(r, 2 * n_ins), 2 * n_ins, "origin")
    ins_vals = _column(read_uint_rle(r, 2 * n_ins), 2 * n_ins, "origin")
    content_kind = _column(read_uint_rle(r, n_ins), n_ins, "content kind")
    n_text = content_kind.count(0)
    if content_kind.count(1) + n_text != n_ins:
        raise DecodeError("unknown content kind")
    texts = _column(read_str_column(r, n_text), n_text, "text")
    n_list = r.count(max_count=n_ins)
    if n_list != n_ins - n_text:
        raise DecodeError("list content count mismatch")
    lists = [_decode_list(r.bytes_()) for _ in range(n_list)]
    del_counts = _column(read_uint_rle(r, n_del), n_del, "delete")
    n_spans = sum(del_counts)
    if n_spans > max_items:
        raise DecodeError("too many delete spans")
    del_tags = _column(read_uint_rle(r, n_spans), n_spans, "delete")
    del_vals = _column(read_uint_rle(r, n_spans), n_spans, "delete")
    del_lens = _column(read_uint_rle(r, n_spans), n_spans, "delete")
    has_key = _column(read_bool_rle(r, n_set), n_set, "set")
    n_keys = sum(has_key)
    keys = _column(read_str_column(r, n_keys), n_keys, "key")
    if r.count(max_count=n_set) != n_set:
        raise DecodeError("value count mismatch")
    values = [_decode_value(r.bytes_()) for _ in range(n_set)]
    walls = _column(read_delta_rle(r, n_set), n_set, "timestamp")
    counters = _column(read_uint_rle(r, n_set), n_set, "timestamp")
    amounts = _column(read_uint_rle(r, n_add), n_add, "amount")
    r.expect_end()

    def ref(tag: int, val: int, me: int) -> int:
        if tag == R_NONE:
            return NO_ID
        if tag == R_SAME:
            seq = (me >> CLIENT_BITS) - ((val >> 1) ^ -(val & 1))
            if seq < 0:
                raise DecodeError("reference before the start of a replica's history")
            return (seq << CLIENT_BITS) | (me & CLIENT_MASK)
        if tag == R_ROOT:
            if val not in root_seqs:
                raise DecodeError("reference to an undeclared root")
            return val << CLIENT_BITS
        t = tag - R_TABLE
        if t >= len(clients):
            raise DecodeError("reference to an unknown replica")
        return (val << CLIENT_BITS) | clients[t]

    ops: list[Op] = []
    expect: dict[int, int] = {}
    it_ins = iter(range(n_ins))
    ti = li = di = si = ki = ai = sj = 0
    for i in range(n):
        t = op_clients[i]
        if t >= len(clients):
            raise DecodeError("op of an unknown replica")
        client = clients[t]
        seq = expect.get(client, 0) + gaps[i]
        op_id = (seq << CLIENT_BITS) | client
        node = ref(node_tags[i], node_vals[i], op_id)
        if node == NO_ID:
            raise DecodeError("op without a node")
        kind = kinds[i]
        if kind == K_INSERT:
            j = next(it_ins)
            origin = ref(ins_tags[2 * j], ins_vals[2 * j], op_id)
            right = ref(ins_tags[2 * j + 1], ins_vals[2 * j + 1], op_id)
            content: str | list[Any]
            if content_kind[j] == 0:
                content = texts[ti]
                ti += 1
            else:
                content = lists[li]
                li += 1
            if not content:
                raise DecodeError("empty insert")
            ops.append(InsertOp(op_id, node, origin, right, content))
            expect[client] = seq + len(content)
        else:
            expect[client] = seq + 1
            if kind == K_DELETE:
                spans = []
                for _ in range(del_counts[di]):
                    length = del_lens[si]
                    if length <= 0:
                        raise DecodeError("empty delete span")
                    spans.append((ref(del_tags[si], del_vals[si], op_id), length))
                    si += 1
                if not spans:
                    raise DecodeError("delete without spans")
                di += 1
                ops.append(DeleteOp(op_id, node, tuple(spans)))
            elif kind == K_SET:
                key = None
                if has_key[sj]:
                    key = keys[ki]
                    ki += 1
                ts = Timestamp(walls[sj], counters[sj], doc.replica_of(client))
                if ts.wall_ms < 0:
                    raise DecodeError("negative timestamp")
                ops.append(SetOp(op_id, node, key, values[sj], ts))
                sj += 1
            else:
                a = amounts[ai]
                ai += 1
                ops.append(AddOp(op_id, node, (a >> 1) ^ -(a & 1)))
    return ops


def _column(values: list[Any], n: int, what: str) -> list[Any]:
    if len(values) != n:
        raise DecodeError(f"{what} column has {len(values)} entries, expected {n}")
    return values


def _zz(n: int) -> int:
    return (n << 1) ^ (n >> 63) if -(1 << 63) <= n < (1 << 63) else _too_big(n)


def _too_big(n: int) -> int:
    raise EngineError(f"integer {n} does not fit in 64 bits")


def _encode_value(value: Any) -> bytes:
    if value is DELETED:
        return bytes([V_DELETED])
    if type(value) is NewNode:
        return bytes([V_NEW, int(value.kind)])
    return bytes([V_JSON]) + _json_encode(value)


def _decode_value(blob: bytes) -> Any:
    if not blob:
        raise DecodeError("empty value")
    tag = blob[0]
    if tag == V_DELETED and len(blob) == 1:
        return DELETED
    if tag == V_NEW and len(blob) == 2:
        try:
            return NewNode(NodeKind(blob[1]))
        except ValueError:
            raise DecodeError("unknown node kind") from None
    if tag == V_JSON:
        try:
            value = _json_decode(blob[1:])
            check_json(value)
        except (msgspec.DecodeError, RecursionError, EngineError) as exc:
            raise DecodeError(f"bad JSON value: {exc}") from None
        return value
    raise DecodeError(f"unknown value tag {tag}")


def _encode_list(values: Sequence[Any]) -> bytes:
    w = Writer()
    w.uint(len(values))
    for v in values:
        w.bytes_(_encode_value(v))
    return w.getvalue()


def _decode_list(blob: bytes) -> list[Any]:
    r = Reader(blob)
    out = [_decode_value(r.bytes_()) for _ in range(r.count())]
    r.expect_end()
    if any(v is DELETED for v in out):
        raise DecodeError("a list cannot hold a deleted marker")
    return out


__all__ = ["FORMAT_VERSION", "Timestamp", "decode_ops", "encode_ops"]
