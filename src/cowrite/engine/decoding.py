"""Decoding of the delta format written by ``encoding`` (see its docstring for the layout).

Decoding checks every count against the bytes left or an explicit bound (derived from the body
size) and every reference against the tables, so it allocates at most a bounded multiple of the
input; it raises only ``DecodeError``, and registers the replicas and named roots it found in
the document only once the whole body has decoded.
"""

from __future__ import annotations

import lzma
from typing import Any, Final

from cowrite.engine.clock import Timestamp
from cowrite.engine.codec import (
    Reader,
    decompress,
    read_bool_rle,
    read_delta_rle,
    read_str_column,
    read_uint_rle,
)
from cowrite.engine.document import Document
from cowrite.engine.encoding import (
    _GROUP_OF_KIND,
    C_LZMA,
    C_NONE,
    C_ZLIB,
    COMPRESSION_MASK,
    FORMAT_VERSION,
    GROUPS_MASK,
    K_ADD,
    K_DELETE,
    K_INSERT,
    K_SET,
    MAGIC,
    MAX_NAME_BYTES,
    STATE_IN_DELTA_VERSION,
    T_DELTA,
    T_NEAR,
    T_NONE,
    T_PREV,
    T_ROOT,
    T_TABLE,
    _decode_list,
    _decode_value,
    _lzma_filters,
    _max_body,
    _root_id,
)
from cowrite.engine.errors import DecodeError, EngineError, TooManyReplicas
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, MAX_CLIENTS, MAX_REPLICA_ID, NO_ID, ONE
from cowrite.engine.ops import AddOp, DeleteOp, InsertOp, NodeKind, Op, SetOp

# The columns of a group a body lacks: shared empty lists, never written (a decode of a small
# delta would otherwise allocate a dozen lists it never reads)
_NO_INTS: Final[list[int]] = []
_NO_STRS: Final[list[str]] = []
_NO_BOOLS: Final[list[bool]] = []
_INSERT_OP: Final = InsertOp  # compiled, a C static (an imported class is a lookup per use)
_DELETE_OP: Final = DeleteOp
_NODE_KINDS: Final[dict[int, NodeKind]] = {int(k): k for k in NodeKind}
_new_op: Final[Any] = tuple.__new__
"""Builds an op tuple without the interpreted ``NamedTuple.__new__`` (one call per decoded op)."""


def decode_ops(
    doc: Document, data: bytes | bytearray | memoryview, *, max_new_replicas: int | None = None
) -> list[Op]:
    """Decode bytes from ``encode_ops`` into ops packed for ``doc``'s client table.

    Registers the replicas and named roots ``doc`` has not seen, but only once the whole input
    has decoded. Raises ``DecodeError`` for anything malformed (and then leaves ``doc`` as it
    was); never allocates more than a bounded multiple of the input. ``max_new_replicas``: raise
    ``TooManyReplicas`` (registering none) if the input names more unseen replicas than that
    (each costs the document memory for as long as it lives).
    """
    data = bytes(data)
    if len(data) < 5 or data[:3] != MAGIC:
        raise DecodeError("not a cowrite document or delta (bad magic)")
    if data[3] == STATE_IN_DELTA_VERSION:
        from cowrite.engine.state_load import state_ops

        return state_ops(doc, data, max_new_replicas=max_new_replicas)
    if data[3] != FORMAT_VERSION:
        raise DecodeError(f"unsupported format version {data[3]}")
    flags = data[4]
    if flags & ~(COMPRESSION_MASK | GROUPS_MASK):
        raise DecodeError(f"unknown flags {flags:#x}")
    method = flags & COMPRESSION_MASK
    if method == C_NONE:  # read in place: the common small delta, no copy of its body
        return _decode_reader(doc, Reader(data, 5), len(data) - 5, flags, max_new_replicas)
    r = Reader(data, 5)
    size = r.uint()
    packed = data[r.position :]
    if size > _max_body(len(packed)):
        raise DecodeError(f"declared body size {size} is too large for its compressed size")
    if method == C_ZLIB:
        body = decompress(packed, size)
    elif method == C_LZMA:
        body = _lzma_decompress(packed, size)
    else:
        raise DecodeError("unknown compression method")
    if len(body) != size:
        raise DecodeError(f"body is {len(body)} bytes, the header says {size}")
    return _decode_reader(doc, Reader(body), len(body), flags, max_new_replicas)


def _decode_reader(
    doc: Document, r: Reader, body_len: int, flags: int, max_new: int | None
) -> list[Op]:
    try:
        return _decode_body(doc, r, body_len, flags & GROUPS_MASK, max_new)
    except DecodeError:
        raise
    except EngineError as exc:  # e.g. too many replicas, bad JSON value
        raise DecodeError(str(exc)) from None


def _lzma_decompress(packed: bytes, size: int) -> bytes:
    # The dictionary follows from the declared size alone; lc/lp/pb come from the stream.
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


def _decode_body(
    doc: Document, r: Reader, body_len: int, groups: int, max_new: int | None = None
) -> list[Op]:
    max_items = 8 * body_len + 16
    # Nothing is registered in ``doc`` before the whole body has decoded: replicas it has not
    # seen get the client indexes ``client_index`` will give them, in table order.
    replicas: list[int] = []  # table index -> replica id
    clients: list[int] = []  # table index -> client index
    new_clients: dict[int, int] = {}
    known = doc._clients
    for _ in range(r.count()):
        replica = r.uint()
        if not 0 < replica <= MAX_REPLICA_ID:
            raise DecodeError("replica id 0 is reserved")
        c = known.get(replica)
        if c is None:
            c = new_clients.get(replica)
            if c is None:
                if max_new is not None and len(new_clients) >= max_new:
                    raise TooManyReplicas(f"more than {max_new} new replica ids")
                c = new_clients[replica] = len(doc._replicas) + len(new_clients)
                if c >= MAX_CLIENTS:
                    raise DecodeError("too many replicas in one document")
        replicas.append(replica)
        clients.append(c)
    roots: list[int] = []  # table index -> root id
    new_roots: dict[int, tuple[str, NodeKind]] = {}
    for _ in range(r.count(per_item_min_bytes=2)):
        rkind = _NODE_KINDS.get(r.uint(max_value=255))
        if rkind is None:
            raise DecodeError("unknown node kind")
        name = r.str_(MAX_NAME_BYTES)
        rid = _root_id(rkind, name)
        entry = doc.roots.get(rid) or new_roots.setdefault(rid, (name, rkind))
        if entry != (name, rkind):
            raise DecodeError(f"root {name!r} collides with another root's id")
        roots.append(rid)
    n = r.count(max_count=max_items, per_item_min_bytes=0)
    if bool(n) != bool(groups):
        raise DecodeError("column groups do not match the op count")
    if groups & (groups - 1):
        kinds = read_uint_rle(r, n, counted=False)
        n_ins = kinds.count(K_INSERT)
        n_del = kinds.count(K_DELETE)
        n_set = kinds.count(K_SET)
        n_add = kinds.count(K_ADD)
        if n_ins + n_del + n_set + n_add != n:
            raise DecodeError("unknown op kind")
        for count, group in zip((n_ins, n_del, n_set, n_add), _GROUP_OF_KIND, strict=True):
            if bool(count) != bool(groups & group):
                raise DecodeError("column groups do not match the op kinds")
    else:
        kind = _GROUP_OF_KIND.index(groups) if groups else K_INSERT
        kinds = [kind] * n
        n_ins, n_del, n_set, n_add = (n if k == kind else 0 for k in range(4))
    if len(clients) > 1:
        op_clients = read_uint_rle(r, n, counted=False)
    elif clients or not n:
        op_clients = [0] * n
    else:
        raise DecodeError("ops but no replicas")
    gaps = read_uint_rle(r, n, counted=False)
    node_tags = read_uint_rle(r, n, counted=False)
    node_vals = _ref_values(r, node_tags)
    origin_tags: list[int] = _NO_INTS
    origin_vals: list[int] = _NO_INTS
    right_tags: list[int] = _NO_INTS
    right_vals: list[int] = _NO_INTS
    content_kind: list[int] = _NO_INTS
    texts: list[str] = _NO_STRS
    lists: list[list[Any]] = []
    if n_ins:
        origin_tags = read_uint_rle(r, n_ins, counted=False)
        origin_vals = _ref_values(r, origin_tags)
        right_tags = read_uint_rle(r, n_ins, counted=False)
        right_vals = _ref_values(r, right_tags)
        content_kind = read_uint_rle(r, n_ins, counted=False)
        n_text = content_kind.count(0)
        if content_kind.count(1) + n_text != n_ins:
            raise DecodeError("unknown content kind")
        texts = read_str_column(r, n_text, counted=False)
        lists = [_decode_list(r.bytes_()) for _ in range(n_ins - n_text)]
    del_counts: list[int] = _NO_INTS
    del_tags: list[int] = _NO_INTS
    del_vals: list[int] = _NO_INTS
    del_lens: list[int] = _NO_INTS
    if n_del:
        del_counts = read_uint_rle(r, n_del, counted=False)
        n_spans = sum(del_counts)
        if n_spans > max_items:
            raise DecodeError("too many delete spans")
        del_tags = read_uint_rle(r, n_spans, counted=False)
        del_vals = _ref_values(r, del_tags)
        del_lens = read_uint_rle(r, n_spans, counted=False)
    has_key: list[bool] = _NO_BOOLS
    keys: list[str] = _NO_STRS
    values: list[Any] = []
    walls: list[int] = _NO_INTS
    counters: list[int] = _NO_INTS
    if n_set:
        has_key = read_bool_rle(r, n_set, counted=False)
        keys = read_str_column(r, sum(has_key), counted=False)
        values = [_decode_value(r.bytes_()) for _ in range(n_set)]
        walls = read_delta_rle(r, n_set, counted=False)
        counters = read_uint_rle(r, n_set, counted=False)
    amounts: list[int] = _NO_INTS
    if n_add:
        amounts = read_uint_rle(r, n_add, counted=False)
    r.expect_end()

    n_clients = len(clients)

    ops: list[Op] = []
    expect: dict[int, int] = {}
    cursor = prev_node = prev_origin = prev_right = prev_target = NO_ID
    have_node = have_origin = have_right = have_target = False
    ii = ti = li = di = si = sj = ki = ai = 0
    nv = ov = rv = dv = 0  # next entry of the node, origin, right and target value columns
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
            node = _resolve(tag, node_vals, nv, op_id, roots, clients)
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
                origin = _resolve(tag, origin_vals, ov, cursor, roots, clients)
                ov += tag >= T_DELTA
            tag = right_tags[ii]
            if tag == T_NONE:
                right = NO_ID
            elif tag == T_PREV:
                if not have_right:
                    raise DecodeError("no previous right")
                right = prev_right
            else:
                rbase = cursor if origin == NO_ID else origin
                right = _resolve(tag, right_vals, rv, rbase, roots, clients)
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
            ops.append(_new_op(_INSERT_OP, (op_id, node, origin, right, content)))
            expect[client] = seq + length
            cursor = op_id + (length - 1) * ONE
        elif kind == K_DELETE:
            expect[client] = seq + 1
            spans = []
            for _ in range(del_counts[di]):
                length = del_lens[si]
                if not length:
                    raise DecodeError("empty delete span")
                tag = del_tags[si]
                if tag == T_PREV:
                    if not have_target:
                        raise DecodeError("no previous delete target")
                    target = prev_target
                elif tag == T_NONE:
                    raise DecodeError("delete span without a target")
                else:
                    target = _resolve(tag, del_vals, dv, cursor, roots, clients)
                    dv += tag >= T_DELTA
                prev_target = cursor = target
                have_target = True
                spans.append((target, length))
                si += 1
            if not spans:
                raise DecodeError("delete without spans")
            di += 1
            ops.append(_new_op(_DELETE_OP, (op_id, node, tuple(spans))))
        elif kind == K_SET:
            expect[client] = seq + 1
            key = None
            if has_key[sj]:
                key = keys[ki]
                ki += 1
            ts = Timestamp(walls[sj], counters[sj], replicas[t])
            if ts.wall_ms < 0:
                raise DecodeError("negative timestamp")
            ops.append(SetOp(op_id, node, key, values[sj], ts))
            sj += 1
        else:
            expect[client] = seq + 1
            a = amounts[ai]
            ai += 1
            ops.append(AddOp(op_id, node, (a >> 1) ^ -(a & 1)))
    for replica, c in new_clients.items():  # in the order their indexes were given
        if doc.client_index(replica) != c:
            raise DecodeError("the client table changed while decoding")
    for rid, entry in new_roots.items():
        doc.roots.setdefault(rid, entry)
    return ops


def _resolve(
    tag: int, vals: list[int], k: int, base: int, roots: list[int], clients: list[int]
) -> int:
    """The id named by ``tag`` (neither T_NONE nor T_PREV); ``vals[k]`` is its value."""
    if tag <= T_DELTA:
        if base == NO_ID or not base & CLIENT_MASK:
            raise DecodeError("relative reference without a base")
        if tag == T_DELTA:
            v = vals[k]
            d = (v >> 1) ^ -(v & 1)
        else:
            d = tag - T_NEAR - 1
        if (base >> CLIENT_BITS) + d < 0:
            raise DecodeError("reference before the start of a replica's history")
        return base + d * ONE
    if tag == T_ROOT:
        t = vals[k]
        if t >= len(roots):
            raise DecodeError("reference to an undeclared root")
        return roots[t]
    t = tag - T_TABLE
    if t >= len(clients):
        raise DecodeError("reference to an unknown replica")
    return (vals[k] << CLIENT_BITS) | clients[t]


def _ref_values(r: Reader, tags: list[int]) -> list[int]:
    """Read the value column of a ref column: one value per tag that takes one."""
    n = 0
    for t in tags:
        if t >= T_DELTA:
            n += 1
    return read_uint_rle(r, n, counted=False)


__all__ = ["decode_ops"]
