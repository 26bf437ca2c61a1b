"""Binary encoding of deltas and full states (both are lists of operations).

Layout, format version 2. Integers are LEB128 varints. Columns are the ``codec`` ones (uint RLE,
bool RLE, delta RLE, str column) written *uncounted* (``counted=False``): the reader knows every
column's item count from what precedes it, as given below::

    header       magic "CWR" · format version 2 · flags byte:
                   bits 0-1  body compression: 0 none, 1 zlib, 2 LZMA2 (3 is invalid)
                   bits 2-5  column groups present: insert (bit 2), delete (3), set (4), add (5);
                             a group is present exactly when at least one op is of its kind
                   bits 6-7  zero
    compressed   (only when bits 0-1 are not 0) the body's byte length L, at most 64 times the
                 compressed size + 1 MiB, then a zlib stream, or a raw LZMA2 stream (no container;
                 the decoder's dictionary size is L clamped to 4 KiB .. 8 MiB), that inflates to
                 exactly L bytes and is followed by nothing
    body
      replica table  count, then replica ids: ops and refs name replicas by table index
      root table     count, then per named root: node kind, name (length-prefixed UTF-8, at most
                     1024 bytes). Refs name roots by table index; a root's id is
                     ``document.root_id(kind, name)``
      N              the op count
      per op (N entries; ops grouped by replica, seqs ascending):
        kind         uint RLE: 0 insert, 1 delete, 2 set, 3 add. Absent when only one group is
                     present: every op is of that kind
        replica      uint RLE, replica table index. Absent when the table has exactly one entry
        seq gap      uint RLE: the op's seq minus the seq after its replica's previous op in the
                     list (after an insert of n elements, its seq + n), the first from 0
        node         ref (base: the op's own id)
      insert group, per insert:
        origin       ref (base: the cursor)
        right        ref (base: the origin; the cursor when the origin is none)
        content kind uint RLE: 0 text, 1 list
        text         str column over the text inserts: code-point lengths, then one
                     length-prefixed UTF-8 blob (lone surrogates allowed)
        lists        per list insert, a length-prefixed blob: value count, then length-prefixed
                     values
      delete group:
        span count   uint RLE, per delete
        target       ref per span (base: the cursor)
        span length  uint RLE, per span
      set group, per set:
        key present  bool RLE
        keys         str column over the sets that have a key
        values       length-prefixed values
        wall ms      delta RLE
        counter      uint RLE
      add group, per add:
        amount       uint RLE of the zigzagged amounts

A *value* is a tag byte then: 0 JSON text (UTF-8); 1 nothing (the "deleted" marker); 2 a node kind
byte (a new nested node); 3 JSON text in ASCII, for values holding lone surrogates (UTF-8 cannot
carry them, ``\\uXXXX`` escapes can). Inserts are never empty, deletes have at least one span,
spans at least one element, and list contents never hold the deleted marker.

A *ref* names an id, or none, relative to a *base* id: one entry in the ref's tag column (uint RLE)
and, for tags 5 and up, one in its value column (uint RLE), which follows the tag column and holds
exactly one entry per such tag. Tags::

    0      none                       (no value)
    1      the previous id of this column, i.e. of the previous op's node, the previous insert's
           origin or right, the previous delete span's target (no value)
    2 3 4  the base's replica, the base's seq -1, +0, +1   (no value)
    5      the base's replica, value the zigzagged seq distance from the base's seq
    6      a named root, value its root table index
    7 + t  the replica of table index t, value the absolute seq

Tags 2-5 need a base on a replica (not none, not a root) and a resulting seq >= 0. The *cursor* is
the last element an op touched, in op order: after an insert, its last element; after each
delete span, that span's first element; set and add ops leave it as it is; it starts as none.
Editing gives long runs of cheap refs: typing continues at the cursor (origin +0), typing after
a deletion continues just left of the deleted element (origin -1), an insert's right neighbour
is the element after its origin (+1) or the previous insert's right (tag 1), backspace and
forward-delete runs step the target by -1 and +1.

Decoding checks every count against the bytes left or an explicit bound (derived from the body
size) and every reference against the tables, so it allocates at most a bounded multiple of the
input; it raises only ``DecodeError``, and registers the replicas and named roots it found in
the document only once the whole body has decoded.
"""

from __future__ import annotations

import json
import lzma
import zlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any, Final

import msgspec

from cowrite.engine.clock import Timestamp
from cowrite.engine.codec import (
    Reader,
    Writer,
    write_bool_rle,
    write_delta_rle,
    write_str_column,
    write_uint_rle,
)
from cowrite.engine.document import Document, root_id
from cowrite.engine.errors import DecodeError, EngineError
from cowrite.engine.ids import (
    CLIENT_BITS,
    CLIENT_MASK,
    NO_ID,
    ONE,
)
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
STATE_IN_DELTA_VERSION = 3
"""Version 3 is a whole state (``state``) in delta form: what ``delta_since({})`` sends."""
C_NONE, C_ZLIB, C_LZMA = 0, 1, 2
COMPRESSION_MASK = 0b11
G_INSERT, G_DELETE, G_SET, G_ADD = 1 << 2, 1 << 3, 1 << 4, 1 << 5
GROUPS_MASK = G_INSERT | G_DELETE | G_SET | G_ADD
MIN_COMPRESS_BYTES = 256
MAX_BODY_BYTES = 512 * 1024 * 1024
MAX_NAME_BYTES = 1024
LZMA_DICT_MIN = 4096
LZMA_DICT_MAX = 8 * 1024 * 1024

K_INSERT: Final = 0
K_DELETE: Final = 1
K_SET: Final = 2
K_ADD: Final = 3
_KIND_OF = {InsertOp: K_INSERT, DeleteOp: K_DELETE, SetOp: K_SET, AddOp: K_ADD}
_GROUP_OF_KIND = (G_INSERT, G_DELETE, G_SET, G_ADD)
T_NONE: Final = 0
T_PREV: Final = 1
T_NEAR: Final = 2
T_DELTA: Final = 5
T_ROOT: Final = 6
T_TABLE: Final = 7
V_JSON, V_DELETED, V_NEW, V_JSON_ASCII = 0, 1, 2, 3

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


def _max_body(compressed_len: int) -> int:
    """The largest body a compressed stream of ``compressed_len`` bytes may declare."""
    return min(MAX_BODY_BYTES, 64 * compressed_len + (1 << 20))


def _lzma_filters(size: int) -> list[dict[str, Any]]:
    return [{"id": lzma.FILTER_LZMA2, "dict_size": min(max(size, LZMA_DICT_MIN), LZMA_DICT_MAX)}]


def _compress(body: bytes) -> tuple[int, bytes]:
    """LZMA2, else zlib, else nothing (``C_NONE``): the first the decoder's bounds accept."""
    filters = _lzma_filters(len(body))
    # lc/lp/pb travel in the LZMA2 stream; lc=1, pb=0 suit these mostly byte-sized columns
    filters[0].update(preset=6, lc=1, lp=0, pb=0)
    packed = lzma.compress(body, format=lzma.FORMAT_RAW, filters=filters)
    if len(body) <= _max_body(len(packed)):
        return C_LZMA, packed
    packed = zlib.compress(body, 9)
    if len(body) <= _max_body(len(packed)):
        return C_ZLIB, packed
    return C_NONE, b""


class _Names:
    """The replica and root tables of one body being encoded, and how refs name ids.

    A class, not closures: compiled, its methods are direct calls on a native object."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.table: dict[int, int] = {}  # client -> replica table index
        self.replicas: list[int] = []
        self.roots: dict[int, int] = {}  # root id -> root table index

    def tindex(self, client: int) -> int:
        t = self.table.get(client)
        if t is None:
            t = self.table[client] = len(self.replicas)
            self.replicas.append(self.doc.replica_of(client))
        return t

    def absolute(self, pid: int, tags: list[int], vals: list[int]) -> None:
        """Name ``pid`` (not NO_ID) by the root or replica table."""
        client = pid & CLIENT_MASK
        if client == 0:
            roots = self.roots
            t = roots.get(pid)
            if t is None:
                if pid not in self.doc.roots:
                    raise EngineError(f"reference to an unknown root {pid:#x}")
                t = roots[pid] = len(roots)
            tags.append(T_ROOT)
            vals.append(t)
            return
        tags.append(T_TABLE + self.tindex(client))
        vals.append(pid >> CLIENT_BITS)

    def ref(self, pid: int, base: int, prev: int, tags: list[int], vals: list[int]) -> None:
        if pid == NO_ID:
            tags.append(T_NONE)
        elif pid == prev:
            tags.append(T_PREV)
        elif base != NO_ID and (pid ^ base) & CLIENT_MASK == 0 and base & CLIENT_MASK:
            d = (pid - base) >> CLIENT_BITS
            if -1 <= d <= 1:
                tags.append(T_NEAR + 1 + d)
            else:
                tags.append(T_DELTA)
                vals.append(_zz(d))
        else:
            self.absolute(pid, tags, vals)


_NO_INTS: Final[list[int]] = []  # never appended to: see ``_encode_body``
_NO_STRS: Final[list[str]] = []
_NO_BOOLS: Final[list[bool]] = []
_NO_BLOBS: Final[list[bytes]] = []


def _encode_body(doc: Document, ops: Sequence[Op]) -> tuple[int, bytes]:
    """The body (uncompressed) and the flags of the column groups it holds."""
    if len(ops) == 1:
        op = ops[0]
        if type(op) is InsertOp and isinstance(op.content, str):
            one = _encode_typed(doc, op)
            if one is not None:
                return G_INSERT, one
    return _encode_many(doc, ops)


def _put_one(w: Writer, values: list[int]) -> None:
    """``write_uint_rle(w, values, counted=False)`` of a column of at most one value: nothing,
    or a literal run of one (header 1) and the value."""
    if values:
        w.uint(1)
        w.uint(values[0])


def _encode_typed(doc: Document, op: InsertOp) -> bytes | None:
    """``_encode_many(doc, [op])`` of one text insert (a keystroke's delta, the server's most
    frequent encoding) without its columns and run-length passes: the same bytes (the tests
    compare them). None: leave it to ``_encode_many`` (it raises on what it refuses)."""
    op_id: int = op[0]
    client = op_id & CLIENT_MASK
    node: int = op[1]
    if not client or node == NO_ID:
        return None
    names = _Names(doc)
    names.tindex(client)
    node_tags: list[int] = []
    node_vals: list[int] = []
    names.ref(node, op_id, NO_ID, node_tags, node_vals)
    origin, right = op.origin, op.right
    origin_tags: list[int] = []
    origin_vals: list[int] = []
    names.ref(origin, NO_ID, NO_ID, origin_tags, origin_vals)
    right_tags: list[int] = []
    right_vals: list[int] = []
    names.ref(right, NO_ID if origin == NO_ID else origin, NO_ID, right_tags, right_vals)
    replicas = names.replicas
    w = Writer()
    w.uint(len(replicas))
    for r in replicas:
        w.uint(r)
    w.uint(len(names.roots))
    for pid in names.roots:
        name, rkind = doc.roots[pid]
        w.uint(int(rkind))
        w.str_(name)
    w.uint(1)  # one op; one group: no kind column
    if len(replicas) > 1:
        w.uint(1)
        w.uint(0)  # its replica: table index 0
    w.uint(1)
    w.uint(op_id >> CLIENT_BITS)  # its seq gap: from 0
    _put_one(w, node_tags)
    _put_one(w, node_vals)
    _put_one(w, origin_tags)
    _put_one(w, origin_vals)
    _put_one(w, right_tags)
    _put_one(w, right_vals)
    w.uint(1)
    w.uint(0)  # content kind: text
    text = op.content
    assert isinstance(text, str)
    w.uint(1)
    w.uint(len(text))  # the str column: its one code-point length, then the UTF-8 blob
    w.str_(text)
    return w.getvalue()


def _encode_many(doc: Document, ops: Sequence[Op]) -> tuple[int, bytes]:
    """``_encode_body`` of any ops."""
    names = _Names(doc)
    replicas = names.replicas
    roots = names.roots

    kinds: list[int] = []
    clients: list[int] = []
    gaps: list[int] = []
    node_tags: list[int] = []
    node_vals: list[int] = []
    # a group's columns are made when its first op comes (a one-keystroke delta would
    # otherwise allocate a dozen lists it never fills); until then, shared empty ones
    origin_tags = origin_vals = right_tags = right_vals = content_kind = _NO_INTS
    texts = keys = _NO_STRS
    list_values = values = _NO_BLOBS
    del_counts = del_tags = del_vals = del_lens = walls = counters = amounts = _NO_INTS
    has_key = _NO_BOOLS
    expect: dict[int, int] = {}
    groups = 0
    cursor = prev_node = prev_origin = prev_right = prev_target = NO_ID
    last_client = last_t = -1
    for op in ops:
        op_id: int = op[0]  # (compiled: an inline tuple read; ``op.id`` of the union is not)
        client = op_id & CLIENT_MASK
        seq = op_id >> CLIENT_BITS
        kind = _KIND_OF[type(op)]
        groups |= _GROUP_OF_KIND[kind]
        kinds.append(kind)
        if client != last_client:
            if not client:
                raise EngineError("ops of replica 0 cannot be encoded")
            last_client = client
            last_t = names.tindex(client)
        clients.append(last_t)
        gap = seq - expect.get(client, 0)
        if gap < 0:
            raise EngineError("ops must be grouped per replica in ascending seq order")
        gaps.append(gap)
        node: int = op[1]
        if node == prev_node:
            node_tags.append(T_PREV)
        else:
            names.ref(node, op_id, prev_node, node_tags, node_vals)
            prev_node = node
        if kind == K_INSERT:
            assert isinstance(op, InsertOp)
            if content_kind is _NO_INTS:
                origin_tags, origin_vals, right_tags, right_vals = [], [], [], []
                content_kind, texts, list_values = [], [], []
            length = len(op.content)
            expect[client] = seq + length
            origin = op.origin
            right = op.right
            names.ref(origin, cursor, prev_origin, origin_tags, origin_vals)
            rbase = cursor if origin == NO_ID else origin
            names.ref(right, rbase, prev_right, right_tags, right_vals)
            prev_origin = origin
            prev_right = right
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
                if del_counts is _NO_INTS:
                    del_counts, del_tags, del_vals, del_lens = [], [], [], []
                del_counts.append(len(op.spans))
                for target, count in op.spans:
                    names.ref(target, cursor, prev_target, del_tags, del_vals)
                    prev_target = cursor = target
                    del_lens.append(count)
            elif kind == K_SET:
                assert isinstance(op, SetOp)
                if walls is _NO_INTS:
                    has_key, keys, values, walls, counters = [], [], [], [], []
                has_key.append(op.key is not None)
                if op.key is not None:
                    keys.append(op.key)
                values.append(_encode_value(op.value))
                walls.append(op.ts.wall_ms)
                counters.append(op.ts.counter)
            else:
                assert isinstance(op, AddOp)
                if amounts is _NO_INTS:
                    amounts = []
                amounts.append(_zz(op.amount))

    w = Writer()
    w.uint(len(replicas))
    for r in replicas:
        w.uint(r)
    w.uint(len(roots))
    for pid in roots:  # in table order (dicts keep insertion order)
        name, rkind = doc.roots[pid]
        w.uint(int(rkind))
        w.str_(name)
    w.uint(len(kinds))
    if groups & (groups - 1):  # two or more groups
        write_uint_rle(w, kinds, counted=False)
    if len(replicas) > 1:
        write_uint_rle(w, clients, counted=False)
    write_uint_rle(w, gaps, counted=False)
    write_uint_rle(w, node_tags, counted=False)
    write_uint_rle(w, node_vals, counted=False)
    if groups & G_INSERT:
        write_uint_rle(w, origin_tags, counted=False)
        write_uint_rle(w, origin_vals, counted=False)
        write_uint_rle(w, right_tags, counted=False)
        write_uint_rle(w, right_vals, counted=False)
        write_uint_rle(w, content_kind, counted=False)
        write_str_column(w, texts, counted=False)
        for blob in list_values:
            w.bytes_(blob)
    if groups & G_DELETE:
        write_uint_rle(w, del_counts, counted=False)
        write_uint_rle(w, del_tags, counted=False)
        write_uint_rle(w, del_vals, counted=False)
        write_uint_rle(w, del_lens, counted=False)
    if groups & G_SET:
        write_bool_rle(w, has_key, counted=False)
        write_str_column(w, keys, counted=False)
        for blob in values:
            w.bytes_(blob)
        write_delta_rle(w, walls, counted=False)
        write_uint_rle(w, counters, counted=False)
    if groups & G_ADD:
        write_uint_rle(w, amounts, counted=False)
    return groups, w.getvalue()


# ---------------------------------------------------------------------------------------------
# Decoding


def decode_ops(
    doc: Document, data: bytes | bytearray | memoryview, *, max_new_replicas: int | None = None
) -> list[Op]:
    """Decode bytes from ``encode_ops`` (or a state in delta form) into ops packed for ``doc``.

    See ``decoding.decode_ops``: raises ``DecodeError`` for anything malformed and then leaves
    ``doc`` as it was; ``TooManyReplicas`` beyond ``max_new_replicas`` unseen replicas.
    """
    from cowrite.engine.decoding import decode_ops as decode

    return decode(doc, data, max_new_replicas=max_new_replicas)


# ---------------------------------------------------------------------------------------------
# Values


def _encode_value(value: Any) -> bytes:
    if value is DELETED:
        return bytes([V_DELETED])
    if type(value) is NewNode:
        return bytes([V_NEW, int(value.kind)])
    try:
        return bytes([V_JSON]) + _json_encode(value)
    except UnicodeEncodeError:  # a lone surrogate: UTF-8 JSON cannot hold it, escaped JSON can
        text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        return bytes([V_JSON_ASCII]) + text.encode("ascii")


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
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError, EngineError) as exc:
            raise DecodeError(f"bad JSON value: {exc}") from None
        return value
    if tag == V_JSON_ASCII:
        try:
            value = json.loads(blob[1:].decode("ascii"))
            check_json(value)
        except (ValueError, RecursionError, EngineError) as exc:
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
