"""Binary encoding of deltas and full states (both are lists of operations).

Layout, version 2. Integers are LEB128 varints; columns (``uint`` RLE, bool RLE, delta RLE, str
column) are the ``codec`` ones, each starting with its item count::

    header   magic "CWR" · format version 2 · flags byte
             flags bits 0-1: body compression (0 none, 1 zlib, 2 LZMA2; 3 is invalid)
             flags bits 2-5: column groups present: insert (bit 2), delete (3), set (4), add (5);
                             a group is present exactly when at least one op is of its kind
             flags bits 6-7: zero
    [compressed bodies only: the body's uncompressed byte length, then the compressed stream:
     a zlib stream, or a raw LZMA2 stream (no container) whose dictionary size is that length
     clamped to 4 KiB .. 8 MiB. Bodies under 256 bytes are never compressed.]
    body
      replica table   count, replica ids           (ops and refs name replicas by table index)
      root table      count, (node kind, name)...  (named roots the refs name, by table index;
                                                     their ids are ``document.root_id``)
      op count N
      common columns, one entry per op (ops grouped by replica, seqs ascending):
        kind          uint RLE: 0 insert · 1 delete · 2 set · 3 add. Only when two or more
                      groups are present; otherwise every op is of the one present kind.
        replica       uint RLE, table index. Only when the replica table has two or more
                      entries; otherwise every op is of replica 0.
        seq gap       uint RLE: seq - (previous seq of this replica + its length), the first
                      from 0: a contiguous stream costs nearly nothing
        node          ref (base: the op's own id)
      insert group (one entry per insert):
        origin        ref (base: the cursor)
        right         ref (base: the origin, or the cursor when there is no origin)
        content kind  uint RLE: 0 text, 1 list
        text          str column over the text inserts
        lists         count, then per list insert a length-prefixed list blob (count, then
                      length-prefixed tagged values)
      delete group:
        span count    uint RLE, per delete (at least 1)
        target        ref per span (base: the cursor)
        length        uint RLE per span (at least 1)
      set group:
        key present   bool RLE; keys: str column over the sets with a key
        value         count, then length-prefixed tagged values (JSON, deleted, new node)
        timestamp     wall ms (delta RLE), counter (uint RLE)
      add group:
        amount        uint RLE of zigzagged amounts

A *ref* names an element id (or none) with two uint RLE columns: a tag per ref, and a value per
ref whose tag takes one. Tags: 0 none (no value); 1 the same id as the previous ref of this column
(no value); 2 the base's replica, value the zigzagged seq distance from the base's seq; 3 a named
root, value its root-table index; 4 + t the replica of table index t, value the absolute seq.

The *cursor* is the last element an op touched, in op order: after an insert, its last element;
after each delete span, the span's first element; set and add ops leave it alone. It starts as
none. Typing continues at the cursor (origin distance 0), typing after deletions continues just
left of the last deleted element (distance -1), backspace and forward-delete runs step by -1 and
+1, and an insert's right neighbour is very often the element after its origin (distance +1) or
the previous insert's right (tag 1): so the ref columns are long runs and compress to little.

Decoding checks every count against the bytes it has or an explicit bound and every id against
the tables, allocates at most a bounded multiple of the input, and raises only ``DecodeError``.
"""

from __future__ import annotations

import lzma
import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import msgspec

from cowrite.engine.clock import Timestamp
from cowrite.engine.codec import (
    Reader,
    Writer,
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
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, MAX_REPLICA_ID, NO_ID, ONE
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
FORMAT_VERSION = 2
C_NONE, C_ZLIB, C_LZMA = 0, 1, 2
COMPRESSION_MASK = 0b11
G_INSERT, G_DELETE, G_SET, G_ADD = 1 << 2, 1 << 3, 1 << 4, 1 << 5
GROUPS_MASK = G_INSERT | G_DELETE | G_SET | G_ADD
MIN_COMPRESS_BYTES = 256
MAX_BODY_BYTES = 512 * 1024 * 1024
MAX_NAME_BYTES = 1024
LZMA_DICT_MIN = 4096
LZMA_DICT_MAX = 8 * 1024 * 1024

K_INSERT, K_DELETE, K_SET, K_ADD = 0, 1, 2, 3
_KIND_OF = {InsertOp: K_INSERT, DeleteOp: K_DELETE, SetOp: K_SET, AddOp: K_ADD}
_GROUP_OF_KIND = (G_INSERT, G_DELETE, G_SET, G_ADD)
T_NONE, T_PREV, T_NEAR, T_DELTA, T_ROOT, T_TABLE = 0, 1, 2, 5, 6, 7
V_JSON, V_DELETED, V_NEW = 0, 1, 2

_json_encode = msgspec.json.Encoder().encode
_json_decode = msgspec.json.Decoder().decode


@lru_cache(maxsize=1024)
def _root_id(kind: NodeKind, name: str) -> int:
    return root_id(kind, name)


def _zz(n: int) -> int:
    return (n << 1) ^ (n >> 63) if -(1 << 63) <= n < (1 << 63) else _too_big(n)


def _too_big(n: int) -> int:
    raise EngineError(f"integer {n} does not fit in 64 bits")


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_ops(doc: Document, ops: Sequence[Op], *, compress_body: bool = True) -> bytes:
    """Encode ``ops`` of ``doc`` (a ``Document``) into the binary format above."""
    groups, body = _encode_body(doc, ops)
    flags = groups
    if compress_body and len(body) >= MIN_COMPRESS_BYTES:
        method, packed = _compress(body)
        if method != C_NONE:
            w = Writer()
            w.uint(len(body))
            w.raw(packed)
            if len(w) < len(body):
                flags |= method
                body = w.getvalue()
    return MAGIC + bytes([FORMAT_VERSION, flags]) + body


def _lzma_filters(size: int) -> list[dict[str, Any]]:
    return [
        {
            "id": lzma.FILTER_LZMA2,
            "dict_size": min(max(size, LZMA_DICT_MIN), LZMA_DICT_MAX),
        }
    ]


def _compress(body: bytes) -> tuple[int, bytes]:
    """Pick the compression for a body; ``(C_NONE, b"")`` when it would not decode in bounds."""
    if len(body) > _max_body(len(body) // 64):
        pass  # very repetitive: a compressed form could exceed the decoder's ratio bound
    filters = _lzma_filters(len(body))
    # lc/lp/pb travel in the LZMA2 stream; lc=1, pb=0 suit these mostly byte-sized columns
    filters[0].update(preset=6, lc=1, lp=0, pb=0)
    packed = lzma.compress(body, format=lzma.FORMAT_RAW, filters=filters)
    if len(body) > _max_body(len(packed)):
        packed = zlib.compress(body, 9)
        if len(body) > _max_body(len(packed)):
            return C_NONE, b""
        return C_ZLIB, packed
    return C_LZMA, packed


def _max_body(compressed_len: int) -> int:
    """The largest uncompressed body a compressed stream of ``compressed_len`` bytes may hold."""
    return min(MAX_BODY_BYTES, 64 * compressed_len + (1 << 20))


def _encode_body(doc: Document, ops: Sequence[Op]) -> tuple[int, bytes]:
    table: dict[int, int] = {}  # client -> replica table index
    replicas: list[int] = []
    roots: dict[int, int] = {}  # root id -> root table index

    def tag_of(pid: int) -> tuple[int, int]:
        """Tag and value of ``pid`` named absolutely (a root or a table replica)."""
        client = pid & CLIENT_MASK
        if client == 0:
            t = roots.get(pid)
            if t is None:
                if pid not in doc.roots:
                    raise EngineError(f"reference to an unknown root {pid:#x}")
                t = roots[pid] = len(roots)
            return T_ROOT, t
        t = table.get(client)
        if t is None:
            t = table[client] = len(replicas)
            replicas.append(doc.replica_of(client))
        return T_TABLE + t, pid >> CLIENT_BITS

    def ref(pid: int, base: int, prev: int, tags: list[int], vals: list[int]) -> None:
        if pid == NO_ID:
            tags.append(T_NONE)
        elif pid == prev:
            tags.append(T_PREV)
        elif base != NO_ID and (pid ^ base) & CLIENT_MASK == 0 and base & CLIENT_MASK:
            d = (pid >> CLIENT_BITS) - (base >> CLIENT_BITS)
            if -1 <= d <= 1:
                tags.append(T_NEAR + 1 + d)
            else:
                tags.append(T_DELTA)
                vals.append(_zz(d))
        else:
            tag, val = tag_of(pid)
            tags.append(tag)
            vals.append(val)

    kinds: list[int] = []
    clients: list[int] = []
    gaps: list[int] = []
    node_tags: list[int] = []
    node_vals: list[int] = []
    origin_tags: list[int] = []
    origin_vals: list[int] = []
    right_tags: list[int] = []
    right_vals: list[int] = []
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
    groups = 0
    cursor = prev_node = prev_origin = prev_right = prev_target = NO_ID
    for op in ops:
        op_id = op.id
        client = op_id & CLIENT_MASK
        seq = op_id >> CLIENT_BITS
        kind = _KIND_OF[type(op)]
        groups |= _GROUP_OF_KIND[kind]
        kinds.append(kind)
        t = table.get(client)
        if t is None:
            t = tag_of(op_id)[0] - T_TABLE
        clients.append(t)
        gap = seq - expect.get(client, 0)
        if gap < 0:
            raise EngineError("ops must be grouped per replica in ascending seq order")
        gaps.append(gap)
        ref(op.node, op_id, prev_node, node_tags, node_vals)
        prev_node = op.node
        if kind == K_INSERT:
            assert isinstance(op, InsertOp)
            length = len(op.content)
            expect[client] = seq + length
            origin = op.origin
            ref(origin, cursor, prev_origin, origin_tags, origin_vals)
            ref(op.right, cursor if origin == NO_ID else origin, prev_right, right_tags, right_vals)
            prev_origin = origin
            prev_right = op.right
            cursor = op_id + (length - 1) * ONE
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
                    ref(target, cursor, prev_target, del_tags, del_vals)
                    prev_target = cursor = target
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
    for pid in roots:  # dicts keep insertion order: the table indexes
        name, rkind = doc.roots[pid]
        w.uint(int(rkind))
        w.str_(name)
    w.uint(len(kinds))
    if groups & (groups - 1):  # two or more groups
        write_uint_rle(w, kinds)
    if len(replicas) > 1:
        write_uint_rle(w, clients)
    write_uint_rle(w, gaps)
    write_uint_rle(w, node_tags)
    write_uint_rle(w, node_vals)
    if groups & G_INSERT:
        write_uint_rle(w, origin_tags)
        write_uint_rle(w, origin_vals)
        write_uint_rle(w, right_tags)
        write_uint_rle(w, right_vals)
        write_uint_rle(w, content_kind)
        write_str_column(w, texts)
        w.uint(len(list_values))
        for blob in list_values:
            w.bytes_(blob)
    if groups & G_DELETE:
        write_uint_rle(w, del_counts)
        write_uint_rle(w, del_tags)
        write_uint_rle(w, del_vals)
        write_uint_rle(w, del_lens)
    if groups & G_SET:
        write_bool_rle(w, has_key)
        write_str_column(w, keys)
        w.uint(len(values))
        for blob in values:
            w.bytes_(blob)
        write_delta_rle(w, walls)
        write_uint_rle(w, counters)
    if groups & G_ADD:
        write_uint_rle(w, amounts)
    return groups, w.getvalue()


# ---------------------------------------------------------------------------------------------
# Decoding


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
    if flags & ~(COMPRESSION_MASK | GROUPS_MASK):
        raise DecodeError(f"unknown flags {flags:#x}")
    method = flags & COMPRESSION_MASK
    if method == C_NONE:
        body = data[5:]
    else:
        r = Reader(data[5:])
        size = r.uint()
        packed = data[5 + r.position :]
        if size > _max_body(len(packed)):
            raise DecodeError(f"declared body size {size} is too large for its compressed size")
        if size < MIN_COMPRESS_BYTES:
            raise DecodeError("a body this small is never compressed")
        if method == C_ZLIB:
            body = decompress(packed, size)
        elif method == C_LZMA:
            body = _lzma_decompress(packed, size)
        else:
            raise DecodeError("unknown compression method")
        if len(body) != size:
            raise DecodeError(f"body is {len(body)} bytes, the header says {size}")
    try:
        return _decode_body(doc, Reader(body), len(body), flags & GROUPS_MASK)
    except DecodeError:
        raise
    except EngineError as exc:  # e.g. too many replicas, bad JSON value
        raise DecodeError(str(exc)) from None


def _lzma_decompress(packed: bytes, size: int) -> bytes:
    d = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_lzma_filters(size))
    try:
        out = d.decompress(packed, size + 1)
    except lzma.LZMAError as exc:
        raise DecodeError(f"corrupt compressed data: {exc}") from None
    if len(out) > size:
        raise DecodeError(f"decompressed size exceeds the declared {size} bytes")
    if not d.eof:
        raise DecodeError("truncated compressed data")
    if d.unused_data:
        raise DecodeError(f"{len(d.unused_data)} trailing bytes after the compressed data")
    return out


def _decode_body(doc: Document, r: Reader, body_len: int, groups: int) -> list[Op]:
    max_items = 8 * body_len + 16
    clients: list[int] = []
    for _ in range(r.count()):
        replica = r.uint()
        if not 0 < replica <= MAX_REPLICA_ID:
            raise DecodeError("replica id 0 is reserved")
        clients.append(doc.client_index(replica))
    roots: list[int] = []
    for _ in range(r.count(per_item_min_bytes=2)):
        try:
            rkind = NodeKind(r.uint(max_value=255))
        except ValueError:
            raise DecodeError("unknown node kind") from None
        name = r.str_(MAX_NAME_BYTES)
        rid = _root_id(rkind, name)
        if doc.roots.setdefault(rid, (name, rkind)) != (name, rkind):
            raise DecodeError(f"root {name!r} collides with another root's id")
        roots.append(rid)
    n = r.count(max_count=max_items, per_item_min_bytes=0)
    if n and not groups:
        raise DecodeError("ops but no column groups")
    if groups & (groups - 1):
        kinds = _column(read_uint_rle(r, n), n, "kind")
    else:
        kinds = [_GROUP_OF_KIND.index(groups) if groups else 0] * n
    if len(clients) > 1:
        op_clients = _column(read_uint_rle(r, n), n, "replica")
    elif clients or not n:
        op_clients = [0] * n
    else:
        raise DecodeError("ops but no replicas")
    gaps = _column(read_uint_rle(r, n), n, "seq gap")
    node_tags = _column(read_uint_rle(r, n), n, "node")
    node_vals = _ref_values(r, node_tags, "node")
    n_ins = kinds.count(K_INSERT)
    n_del = kinds.count(K_DELETE)
    n_set = kinds.count(K_SET)
    n_add = kinds.count(K_ADD)
    if n_ins + n_del + n_set + n_add != n:
        raise DecodeError("unknown op kind")
    for count, group in ((n_ins, G_INSERT), (n_del, G_DELETE), (n_set, G_SET), (n_add, G_ADD)):
        if bool(count) != bool(groups & group):
            raise DecodeError("column groups do not match the op kinds")
    origin_tags: list[int] = []
    origin_vals: list[int] = []
    right_tags: list[int] = []
    right_vals: list[int] = []
    content_kind: list[int] = []
    texts: list[str] = []
    lists: list[list[Any]] = []
    if n_ins:
        origin_tags = _column(read_uint_rle(r, n_ins), n_ins, "origin")
        origin_vals = _ref_values(r, origin_tags, "origin")
        right_tags = _column(read_uint_rle(r, n_ins), n_ins, "right")
        right_vals = _ref_values(r, right_tags, "right")
        content_kind = _column(read_uint_rle(r, n_ins), n_ins, "content kind")
        n_text = content_kind.count(0)
        if content_kind.count(1) + n_text != n_ins:
            raise DecodeError("unknown content kind")
        texts = _column(read_str_column(r, n_text), n_text, "text")
        if r.count(max_count=n_ins) != n_ins - n_text:
            raise DecodeError("list content count mismatch")
        lists = [_decode_list(r.bytes_()) for _ in range(n_ins - n_text)]
    del_counts: list[int] = []
    del_tags: list[int] = []
    del_vals: list[int] = []
    del_lens: list[int] = []
    if n_del:
        del_counts = _column(read_uint_rle(r, n_del), n_del, "delete")
        n_spans = sum(del_counts)
        if n_spans > max_items:
            raise DecodeError("too many delete spans")
        del_tags = _column(read_uint_rle(r, n_spans), n_spans, "delete target")
        del_vals = _ref_values(r, del_tags, "delete target")
        del_lens = _column(read_uint_rle(r, n_spans), n_spans, "delete length")
    has_key: list[bool] = []
    keys: list[str] = []
    values: list[Any] = []
    walls: list[int] = []
    counters: list[int] = []
    if n_set:
        has_key = _column(read_bool_rle(r, n_set), n_set, "set")
        n_keys = sum(has_key)
        keys = _column(read_str_column(r, n_keys), n_keys, "key")
        if r.count(max_count=n_set) != n_set:
            raise DecodeError("value count mismatch")
        values = [_decode_value(r.bytes_()) for _ in range(n_set)]
        walls = _column(read_delta_rle(r, n_set), n_set, "timestamp")
        counters = _column(read_uint_rle(r, n_set), n_set, "timestamp")
    amounts: list[int] = []
    if n_add:
        amounts = _column(read_uint_rle(r, n_add), n_add, "amount")
    r.expect_end()

    n_clients = len(clients)
    n_roots = len(roots)

    def ref(tag: int, vals: list[int], k: int, base: int) -> int:
        """The id a ref of ``tag`` names, reading ``vals[k]``; ``base`` for a T_DELTA."""
        if tag < T_DELTA:
            if base == NO_ID or not base & CLIENT_MASK:
                raise DecodeError("relative reference without a base")
            seq = (base >> CLIENT_BITS) + tag - T_NEAR - 1
            if seq < 0:
                raise DecodeError("reference before the start of a replica's history")
            return (seq << CLIENT_BITS) | (base & CLIENT_MASK)
        if tag == T_DELTA:
            if base == NO_ID or not base & CLIENT_MASK:
                raise DecodeError("relative reference without a base")
            v = vals[k]
            seq = (base >> CLIENT_BITS) + ((v >> 1) ^ -(v & 1))
            if seq < 0:
                raise DecodeError("reference before the start of a replica's history")
            return (seq << CLIENT_BITS) | (base & CLIENT_MASK)
        if tag == T_ROOT:
            t = vals[k]
            if t >= n_roots:
                raise DecodeError("reference to an undeclared root")
            return roots[t]
        t = tag - T_TABLE
        if t >= n_clients or t < 0:
            raise DecodeError("reference to an unknown replica")
        return (vals[k] << CLIENT_BITS) | clients[t]

    ops: list[Op] = []
    append = ops.append
    expect: dict[int, int] = {}
    cursor = prev_node = prev_origin = prev_right = prev_target = NO_ID
    have_node = have_origin = have_right = have_target = False
    ii = ti = li = di = si = sj = ki = ai = 0
    nv = ov = rv = dv = 0  # next value of the node, origin, right and target value columns
    for i in range(n):
        t = op_clients[i]
        if t >= n_clients:
            raise DecodeError("op of an unknown replica")
        client = clients[t]
        seq = expect.get(client, 0) + gaps[i]
        op_id = (seq << CLIENT_BITS) | client
        tag = node_tags[i]
        if tag == T_PREV:
            if not have_node:
                raise DecodeError("no previous node")
            node = prev_node
        elif tag == T_NONE:
            raise DecodeError("op without a node")
        else:
            node = ref(tag, node_vals, nv, op_id)
            nv += tag >= T_DELTA
        prev_node = node
        have_node = True
        kind = kinds[i]
        if kind == K_INSERT:
            tag = origin_tags[ii]
            if tag == T_NONE:
                origin = NO_ID
            elif tag == T_PREV:
                if not have_origin:
                    raise DecodeError("no previous origin")
                origin = prev_origin
            else:
                origin = ref(tag, origin_vals, ov, cursor)
                ov += tag >= T_DELTA
            tag = right_tags[ii]
            if tag == T_NONE:
                right = NO_ID
            elif tag == T_PREV:
                if not have_right:
                    raise DecodeError("no previous right")
                right = prev_right
            else:
                right = ref(tag, right_vals, rv, cursor if origin == NO_ID else origin)
                rv += tag >= T_DELTA
            prev_origin = origin
            prev_right = right
            have_origin = have_right = True
            content: str | list[Any]
            if content_kind[ii] == 0:
                content = texts[ti]
                ti += 1
            else:
                content = lists[li]
                li += 1
            ii += 1
            length = len(content)
            if not length:
                raise DecodeError("empty insert")
            append(InsertOp(op_id, node, origin, right, content))
            expect[client] = seq + length
            cursor = op_id + (length - 1) * ONE
        else:
            expect[client] = seq + 1
            if kind == K_DELETE:
                spans = []
                for _ in range(del_counts[di]):
                    length = del_lens[si]
                    if length <= 0:
                        raise DecodeError("empty delete span")
                    tag = del_tags[si]
                    if tag == T_PREV:
                        if not have_target:
                            raise DecodeError("no previous delete target")
                        target = prev_target
                    elif tag == T_NONE:
                        raise DecodeError("delete span without a target")
                    else:
                        target = ref(tag, del_vals, dv, cursor)
                        dv += tag >= T_DELTA
                    prev_target = cursor = target
                    have_target = True
                    spans.append((target, length))
                    si += 1
                if not spans:
                    raise DecodeError("delete without spans")
                di += 1
                append(DeleteOp(op_id, node, tuple(spans)))
            elif kind == K_SET:
                key = None
                if has_key[sj]:
                    key = keys[ki]
                    ki += 1
                ts = Timestamp(walls[sj], counters[sj], doc.replica_of(client))
                if ts.wall_ms < 0:
                    raise DecodeError("negative timestamp")
                append(SetOp(op_id, node, key, values[sj], ts))
                sj += 1
            else:
                a = amounts[ai]
                ai += 1
                append(AddOp(op_id, node, (a >> 1) ^ -(a & 1)))
    return ops


def _ref_values(r: Reader, tags: list[int], what: str) -> list[int]:
    """Read the value column of a ref column: one value per tag that takes one."""
    n = sum(1 for t in tags if t >= T_DELTA)
    return _column(read_uint_rle(r, n), n, what)


def _column(values: list[Any], n: int, what: str) -> list[Any]:
    if len(values) != n:
        raise DecodeError(f"{what} column has {len(values)} entries, expected {n}")
    return values


# ---------------------------------------------------------------------------------------------
# Values


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
