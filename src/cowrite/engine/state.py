"""Full document states: what ``Document.encode_state`` writes for an uncompacted document.

A state lists every text/list node's items (runs) in document order, so loading it into an empty
document builds each B-tree bottom-up with no integration at all, and the delete records stay
encoded until something needs history (``Document._dels``). Merged into a document that already
holds edits (or when the caller wants the changes reported), a state is turned back into ops and
merged like any delta, so a state merges into any replica, in any order, idempotently.

Format: magic ``CWS``, version 2 (version 1 is the compacted snapshot of ``compaction``); or, as
the delta since the empty version, magic ``CWR`` version 3 (``encoding`` versions 2 and below are
op lists); then::

    method     byte: core compression, 0 none, 1 zlib, 2 LZMA2 (as in ``encoding``)
    core       (compressed) uint body length L, bounded as in ``encoding``, then the stream;
               (none) uint L then L bytes
    deletes    chunk count; per chunk: CRC-32 of the delta, the delta (length-prefixed, the
               ``encoding`` format, delete ops only, per replica in seq order), then its bound:
               count, per entry a replica table index and a seq all its records are below.
               Chunks are in history order: a replica's records in chunk k precede chunk k+1's.

The core body::

    replicas   count; per replica: replica id, ops seen (the version vector), nonzero
    roots      count; per named root: node kind, name
    nodes      count; per text/list node: the node (0 then a root index, or 1 + replica index
               then a seq), its kind, the item count n, then eight columns of n fixed-width
               little-endian unsigned ints (a width byte 1, 2, 4 or 8, then the values):
               replica index, seq, length, origin (0 none, else 1 + replica index), origin seq,
               right, right seq, flags (bit 0 deleted, bit 1 list content); then the text items'
               text as one length-prefixed UTF-8 blob, then per list item its values
               (length-prefixed, the ``encoding`` list format)
    writes     length-prefixed delta (``encoding``) holding the set and add ops, or empty

Decoding raises only ``DecodeError`` for malformed bytes (``InvalidOperation`` for ops that
contradict the receiving document) and changes nothing then.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from dataclasses import dataclass
from operator import gt
from typing import Any

from cowrite.engine.codec import Reader, Writer
from cowrite.engine.document import Change, Document, root_id
from cowrite.engine.encoding import (
    C_LZMA,
    C_NONE,
    C_ZLIB,
    MIN_COMPRESS_BYTES,
    _decode_list,
    _encode_list,
    _max_body,
    decode_ops,
    encode_ops,
)
from cowrite.engine.errors import DecodeError, EngineError
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, MAX_CLIENTS, MAX_REPLICA_ID, NO_ID, ONE
from cowrite.engine.ops import AddOp, DeleteOp, InsertOp, NewNode, NodeKind, NodeRef, Op, SetOp
from cowrite.engine.runs import Item
from cowrite.engine.sequence import Gap, Sequence

MAGIC = b"CWS"
STATE_VERSION = 2
DELTA_MAGIC = b"CWR"
DELTA_VERSION = 3
F_DELETED, F_LIST, F_ID = 1, 2, 16
"""Item flags: deleted, list content, explicit id (else the id right after the origin)."""
O_NONE, O_PREV, O_EXPLICIT = 0, 4, 8
"""Origin (bits 2-3): none, the previous item's last element, explicit."""
R_NONE, R_PREV, R_NEXT, R_EXPLICIT = 0, 32, 64, 96
"""Right origin (bits 5-6): none, the previous item's right, the next item's id, explicit."""
_TYPECODES = {1: "B", 2: "H", 4: "I", 8: "Q"}
for _width, _code in _TYPECODES.items():
    assert array(_code).itemsize == _width, "unexpected C integer sizes"
_BIG_ENDIAN = sys.byteorder == "big"
ZLIB_LEVEL = 1


# ---------------------------------------------------------------------------------------------
# Encoding


def encode_state(doc: Document, *, as_delta: bool = False) -> bytes:
    """The uncompacted ``doc`` as a state (format above); ``as_delta``: in delta form, the same
    bytes behind the header ``CWR`` 3 (``encoding``), for the delta since the empty version."""
    if doc.base:
        raise EngineError("a compacted document encodes as a snapshot")
    nxt = doc._next
    clients = [c for c in range(1, len(nxt)) if nxt[c]]
    tix = {c: t for t, c in enumerate(clients)}
    w = Writer()
    w.uint(len(clients))
    for c in clients:
        w.uint(doc.replica_of(c))
        w.uint(nxt[c])
    roots = sorted(doc.roots.items())
    rix = {pid: k for k, (pid, _) in enumerate(roots)}
    w.uint(len(roots))
    for _, (name, kind) in roots:
        w.uint(int(kind))
        w.str_(name)
    seqs = [
        (n, s)
        for n, s in sorted(doc._nodes.items())
        if isinstance(s, Sequence) and s.first.items  # nodes without items carry nothing
    ]
    w.uint(len(seqs))
    for node, seq in seqs:
        if node & CLIENT_MASK == 0:
            if node not in rix:
                raise EngineError(f"items of an unknown root {node:#x}")
            w.uint(0)
            w.uint(rix[node])
        else:
            w.uint(1 + tix[node & CLIENT_MASK])
            w.uint(node >> CLIENT_BITS)
        w.uint(int(doc.kind_of(node)))
        _write_items(w, seq, tix)
    writes = [op for c in clients for op in doc._log[c]]
    w.bytes_(encode_ops(doc, writes) if writes else b"")
    body = w.getvalue()
    out = bytearray(DELTA_MAGIC if as_delta else MAGIC)
    out.append(DELTA_VERSION if as_delta else STATE_VERSION)
    method = C_NONE
    packed = body
    if len(body) >= MIN_COMPRESS_BYTES:
        # zlib at its fastest, not LZMA: 10-20x faster both ways, ~30 % larger here
        squeezed = zlib.compress(body, ZLIB_LEVEL)
        if len(squeezed) < len(body) and len(body) <= _max_body(len(squeezed)):
            method, packed = C_ZLIB, squeezed
    out.append(method)
    head = Writer()
    head.uint(len(body))
    out += head.getvalue()
    out += packed
    _write_deletes(doc, out, tix)
    return bytes(out)


def _write_items(w: Writer, seq: Sequence, tix: dict[int, int]) -> None:
    """The item columns of ``seq``, built column by column (comprehensions, no per-item loop)."""
    items = list(seq.items())
    ids = [it.id for it in items]
    contents = [it.content for it in items]
    lens = [len(c) for c in contents]
    origins = [it.origin for it in items]
    rights = [it.right for it in items]
    lasts = [NO_ID, *[i + (n - 1) * ONE for i, n in zip(ids, lens, strict=True)]]
    ocodes = [
        O_PREV if o == p else O_NONE if o == NO_ID else O_EXPLICIT
        for o, p in zip(origins, lasts, strict=False)
    ]
    idcodes = [
        0 if o != NO_ID and i == o + ONE else F_ID for i, o in zip(ids, origins, strict=True)
    ]
    rcodes = [
        R_PREV if r == p else R_NONE if r == NO_ID else R_NEXT if r == x else R_EXPLICIT
        for r, p, x in zip(rights, [NO_ID, *rights], [*ids[1:], None], strict=False)
    ]
    kinds = set(map(type, contents))
    if Gap in kinds:
        raise EngineError("a compacted run in an uncompacted document")
    content_flag = 0 if seq.is_text else F_LIST
    flags = [
        a | b | c | content_flag | d
        for a, b, c, d in zip(ocodes, idcodes, rcodes, [it.deleted for it in items], strict=True)
    ]
    w.uint(len(items))
    _put_column(w, flags)
    _put_column(w, lens)
    for chosen in (
        [i for i, c in zip(ids, idcodes, strict=True) if c],
        [o for o, c in zip(origins, ocodes, strict=True) if c == O_EXPLICIT],
        [r for r, c in zip(rights, rcodes, strict=True) if c == R_EXPLICIT],
    ):
        w.uint(len(chosen))
        _put_column(w, [tix[x & CLIENT_MASK] for x in chosen])
        _put_column(w, [x >> CLIENT_BITS for x in chosen])
    if seq.is_text:
        w.bytes_("".join(contents).encode("utf-8", "surrogatepass"))  # type: ignore[arg-type]
    else:
        w.bytes_(b"")  # no text
        for values in contents:
            w.bytes_(_encode_list([_plain(v) for v in values]))


def _plain(v: Any) -> Any:
    return NewNode(v.kind) if type(v) is NodeRef else v


def _put_column(w: Writer, values: list[int]) -> None:
    top = max(values, default=0)
    width = 1 if top < 1 << 8 else 2 if top < 1 << 16 else 4 if top < 1 << 32 else 8
    col = array(_TYPECODES[width], values)
    if _BIG_ENDIAN:
        col.byteswap()
    w.uint(width)
    w.raw(col.tobytes())


def _write_deletes(doc: Document, out: bytearray, tix: dict[int, int]) -> None:
    chunks = list(doc._lazy_dels)
    ops: list[Op] = []
    bound: dict[int, int] = {}
    for c, (seqs, nodes, targets, lengths) in enumerate(doc._del_cols):
        k = 0
        while k < len(seqs):
            s, node, spans = seqs[k], nodes[k], []
            while k < len(seqs) and seqs[k] == s:
                spans.append((targets[k], lengths[k]))
                k += 1
            ops.append(DeleteOp((s << CLIENT_BITS) | c, node, tuple(spans)))
        if seqs:
            bound[c] = seqs[-1] + 1
    if ops:
        chunks.append((encode_ops(doc, ops), bound))
    w = Writer()
    w.uint(len(chunks))
    for data, chunk_bound in chunks:
        w.uint(zlib.crc32(data))
        w.bytes_(data)
        w.uint(len(chunk_bound))
        for c, end in sorted(chunk_bound.items()):
            w.uint(tix[c])
            w.uint(end)
    out += w.getvalue()


# ---------------------------------------------------------------------------------------------
# Decoding


@dataclass
class _Nodes:
    """One text/list node of a state, decoded but not applied: ids are still table-relative."""

    ref: tuple[int, int]  # (0, root index) or (1 + replica index, seq)
    kind: NodeKind
    cols: list[array[int]]
    text: str
    lists: list[list[Any]]


@dataclass
class _State:
    replicas: list[tuple[int, int]]
    roots: list[tuple[NodeKind, str]]
    nodes: list[_Nodes]
    writes: bytes
    chunks: list[tuple[bytes, list[tuple[int, int]]]]


def merge_state(doc: Document, data: bytes, *, changes: bool) -> list[Change]:
    """Merge a state into ``doc``: built directly into an empty document when no changes are
    wanted, else turned into ops and merged (``Document.apply_ops``)."""
    state = _parse(data)
    if not changes and _is_empty(doc):
        _bulk_load(doc, state)
        return []
    return doc.apply_ops(state_ops(doc, data), changes=changes)


def state_ops(doc: Document, data: bytes) -> list[Op]:
    """The ops of a state (either header), packed for ``doc``; ``DecodeError`` if malformed."""
    try:
        return _to_ops(doc, _parse(data))
    except DecodeError:
        raise
    except (EngineError, ValueError, KeyError, IndexError) as exc:
        raise DecodeError(f"corrupt state: {exc}") from None


def _is_empty(doc: Document) -> bool:
    return not doc._nodes and not doc.pending_ops and not any(doc._next)


def _parse(data: bytes) -> _State:
    head = data[:4]
    if len(data) < 5 or (head != MAGIC + b"\x02" and head != DELTA_MAGIC + b"\x03"):
        raise DecodeError("not a cowrite state")
    method = data[4]
    r = Reader(data)
    r.raw(5)
    size = r.uint()
    rest = memoryview(data)[r.position :]
    if method == C_NONE:
        if size > len(rest):
            raise DecodeError("state body is truncated")
        body = bytes(rest[:size])
        tail = rest[size:]
    elif method in (C_ZLIB, C_LZMA):
        # the compressed stream runs to the deletes section: find its end by decompressing
        if size > _max_body(len(rest)):
            raise DecodeError("declared body size is too large for its compressed size")
        body, used = _inflate(method, bytes(rest), size)
        tail = rest[used:]
    else:
        raise DecodeError("unknown compression method")
    try:
        state = _parse_body(Reader(body), len(body))
        t = Reader(tail)
        for _ in range(t.count(per_item_min_bytes=3)):
            crc = t.uint(max_value=0xFFFFFFFF)
            chunk = t.bytes_()
            if zlib.crc32(chunk) != crc:
                raise DecodeError("a delete chunk is damaged (checksum)")
            bound = []
            for _ in range(t.count(per_item_min_bytes=2)):
                ti = t.uint()
                if ti >= len(state.replicas):
                    raise DecodeError("delete chunk bound of an unknown replica")
                bound.append((ti, t.uint(max_value=state.replicas[ti][1])))
            state.chunks.append((chunk, bound))
        t.expect_end()
    except DecodeError:
        raise
    except (EngineError, ValueError) as exc:
        raise DecodeError(f"corrupt state: {exc}") from None
    return state


def _inflate(method: int, packed: bytes, size: int) -> tuple[bytes, int]:
    """Decompress the core; returns it and how many bytes of ``packed`` its stream took."""
    if method == C_ZLIB:
        d = zlib.decompressobj()
        try:
            body = d.decompress(packed, size + 1)
        except zlib.error as exc:
            raise DecodeError(f"corrupt compressed data: {exc}") from None
        if len(body) != size or not d.eof:
            raise DecodeError("compressed body does not match its declared size")
        return body, len(packed) - len(d.unused_data)
    import lzma

    dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_lzma_filters(size))
    try:
        body = dec.decompress(packed, size + 1)
    except lzma.LZMAError as exc:
        raise DecodeError(f"corrupt compressed data: {exc}") from None
    if len(body) != size or not dec.eof:
        raise DecodeError("compressed body does not match its declared size")
    return body, len(packed) - len(dec.unused_data)


def _lzma_filters(size: int) -> list[dict[str, Any]]:
    from cowrite.engine.encoding import _lzma_filters as filters

    return filters(size)


def _parse_body(r: Reader, size: int) -> _State:
    replicas: list[tuple[int, int]] = []
    for _ in range(r.count(per_item_min_bytes=2)):
        replica = r.uint()
        if not 0 < replica <= MAX_REPLICA_ID:
            raise DecodeError("bad replica id")
        n = r.uint(max_value=(1 << 43) - 1)
        if not n:
            raise DecodeError("a replica without ops")
        replicas.append((replica, n))
    roots: list[tuple[NodeKind, str]] = []
    for _ in range(r.count(per_item_min_bytes=2)):
        roots.append((_kind(r), r.str_(1024)))
    nodes: list[_Nodes] = []
    for _ in range(r.count(per_item_min_bytes=3)):
        tag = r.uint()
        if tag == 0:
            ref = (0, r.uint())
            if ref[1] >= len(roots):
                raise DecodeError("reference to an undeclared root")
        elif tag <= len(replicas):
            ref = (tag, r.uint(max_value=(1 << 43) - 1))
        else:
            raise DecodeError("node of an unknown replica")
        kind = _kind(r)
        if kind is not NodeKind.TEXT and kind is not NodeKind.LIST:
            raise DecodeError("items of a node that is not a text or list")
        n = r.count(per_item_min_bytes=2)
        cols = [_get_column(r, n), _get_column(r, n)]
        for _ in range(3):
            m = r.count(max_count=n, per_item_min_bytes=2)
            cols += [_get_column(r, m), _get_column(r, m)]
        raw = r.bytes_()
        try:
            text = raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"invalid UTF-8 in text: {exc.reason}") from None
        n_lists = sum(1 for f in cols[0] if f & F_LIST) if kind is NodeKind.LIST else 0
        lists = [_decode_list(r.bytes_()) for _ in range(n_lists)]
        nodes.append(_Nodes(ref, kind, cols, text, lists))
    writes = r.bytes_()
    r.expect_end()
    return _State(replicas, roots, nodes, writes, [])


def _kind(r: Reader) -> NodeKind:
    try:
        return NodeKind(r.uint(max_value=255))
    except ValueError:
        raise DecodeError("unknown node kind") from None


def _get_column(r: Reader, n: int) -> array[int]:
    width = r.uint()
    code = _TYPECODES.get(width)
    if code is None:
        raise DecodeError(f"bad column width {width}")
    col = array(code)
    col.frombytes(r.raw(n * width))
    if _BIG_ENDIAN:
        col.byteswap()
    return col


def _node_id(state: _State, ref: tuple[int, int], rids: list[int], cmap: list[int]) -> int:
    tag, value = ref
    if tag == 0:
        return rids[value]
    return (value << CLIENT_BITS) | cmap[tag - 1]


def _root_ids(doc: Document, state: _State) -> list[int]:
    rids = []
    for kind, name in state.roots:
        rid = root_id(kind, name)
        known = doc.roots.get(rid)
        if known is not None and known != (name, kind):
            raise DecodeError(f"root {name!r} collides with another root's id")
        rids.append(rid)
    return rids


def _items_of(
    doc: Document,
    spec: _Nodes,
    cmap: list[int],
    materialize: bool,
    refs: list[int],
) -> list[Item]:
    """The node's items, ids packed with ``cmap``; list values become nodes if ``materialize``.
    Appends to ``refs`` the origins not implied by a neighbour (the caller checks them)."""
    fl, ln, ic, is_, oc, os_, rc, rs = spec.cols
    n = len(fl)
    nt = len(cmap)
    if any(col and max(col) >= nt for col in (ic, oc, rc)) or (n and (0 in ln or max(fl) > 127)):
        raise DecodeError("bad item columns")
    is_text = spec.kind is NodeKind.TEXT
    if is_text and any(f & F_LIST for f in fl):
        raise DecodeError("list content in a text")
    if not is_text and len(spec.lists) != n:
        raise DecodeError("text content in a list")
    text = spec.text
    lists = spec.lists
    explicit_ids = [(v << CLIENT_BITS) | cmap[c] for c, v in zip(ic, is_, strict=True)]
    explicit_origins = [(v << CLIENT_BITS) | cmap[c] for c, v in zip(oc, os_, strict=True)]
    explicit_rights = [(v << CLIENT_BITS) | cmap[c] for c, v in zip(rc, rs, strict=True)]
    refs += explicit_origins
    refs += explicit_rights
    streams = iter(explicit_ids), iter(explicit_origins), iter(explicit_rights)
    next_id, next_origin, next_right = (it.__next__ for it in streams)
    pos = 0
    prev_last = right = NO_ID
    fix: Item | None = None  # an item whose right is the next item's id
    items: list[Item] = []
    append = items.append
    try:
        for k, (f, size) in enumerate(zip(fl.tolist(), ln.tolist(), strict=True)):
            code = f & 12
            if code == O_PREV:
                origin = prev_last
            elif code == O_NONE:
                origin = NO_ID
            elif code == O_EXPLICIT:
                origin = next_origin()
            else:
                raise DecodeError("bad origin code")
            if f & F_ID:
                pid = next_id()
            elif origin == NO_ID:
                raise DecodeError("an implicit id without an origin")
            else:
                pid = origin + ONE
            if fix is not None:
                fix.right = right = pid
                fix = None
            code = f & 96
            if code == R_NONE:
                right = NO_ID
            elif code == R_EXPLICIT:
                right = next_right()
            elif code == R_NEXT:
                right = NO_ID  # set by the next item
            # R_PREV: the previous item's right, still in ``right``
            content: Any
            if is_text:
                content = text[pos : pos + size]
                pos += size
            else:
                content = lists[k]
                if len(content) != size:
                    raise DecodeError("list item of the wrong length")
                if materialize:
                    content = doc._materialize_list(pid, content)
            item = Item(pid, content, origin, right, f & F_DELETED == F_DELETED)
            if code == R_NEXT:
                fix = item
            append(item)
            prev_last = pid + (size - 1) * ONE
    except StopIteration:
        raise DecodeError("item columns disagree") from None
    if any(next(it, None) is not None for it in streams):
        raise DecodeError("item columns disagree")
    if fix is not None:
        raise DecodeError("the last item's right cannot be the next item")
    if is_text and pos != len(text):
        raise DecodeError("text items and text disagree")
    return items


def _to_ops(doc: Document, state: _State) -> list[Op]:
    """Every op the state holds, packed for ``doc`` (which registers its replicas and roots)."""
    rids = _root_ids(doc, state)
    writes = decode_ops(doc, state.writes) if state.writes else []
    deletes = [op for chunk, _ in state.chunks for op in decode_ops(doc, chunk)]
    if any(type(op) is not DeleteOp for op in deletes) or any(
        type(op) is not SetOp and type(op) is not AddOp for op in writes
    ):
        raise DecodeError("ops in the wrong section of a state")
    cmap: list[int] = []  # the client indexes registering the replicas will give
    fresh = len(doc._replicas)
    for replica, _ in state.replicas:
        c = doc.known_client(replica)
        if c is None:
            c = fresh
            fresh += 1
            if c >= MAX_CLIENTS:
                raise DecodeError("too many replicas in one document")
        cmap.append(c)
    ops: list[Op] = [*writes, *deletes]
    for spec in state.nodes:
        node = _node_id(state, spec.ref, rids, cmap)
        for it in _items_of(doc, spec, cmap, False, []):
            ops.append(InsertOp(it.id, node, it.origin, it.right, it.content))  # type: ignore[arg-type]
    for (replica, _), c in zip(state.replicas, cmap, strict=True):
        if doc.client_index(replica) != c:
            raise DecodeError("a replica listed twice")
    for rid, (kind, name) in zip(rids, state.roots, strict=True):
        doc.roots.setdefault(rid, (name, kind))
    ops.sort(key=lambda op: ((op.id & CLIENT_MASK), op.id >> CLIENT_BITS))
    return ops


def _bulk_load(doc: Document, state: _State) -> None:
    """Build the state into a scratch document, then move its parts into the empty ``doc``."""
    tmp = Document(
        doc.replica,
        now_ms=doc.now_ms,
        version_window_ms=doc.version_window_ms,
        replicas=doc._replicas[1:],
    )
    tmp.roots.update(doc.roots)
    try:
        _build(tmp, state)
    except DecodeError:
        raise
    except (EngineError, ValueError, KeyError, IndexError) as exc:
        raise DecodeError(f"corrupt state: {exc}") from None
    for name in (
        "_replicas",
        "_clients",
        "_next",
        "index",
        "_nodes",
        "_kinds",
        "roots",
        "_log",
        "_del_cols",
        "_lazy_dels",
        "vlog_client",
        "vlog_end",
        "vlog_time",
    ):
        setattr(doc, name, getattr(tmp, name))
    for node in doc._nodes.values():
        if isinstance(node, Sequence):
            node.replica_of = doc.replica_of
    for log in doc._log:
        for op in log:
            if type(op) is SetOp:
                doc.clock.observe(op.ts)


def _build(doc: Document, state: _State) -> None:
    rids = _root_ids(doc, state)
    for rid, (kind, name) in zip(rids, state.roots, strict=True):
        doc.roots[rid] = (name, kind)
    cmap = [doc.client_index(replica) for replica, _ in state.replicas]
    if len(set(cmap)) != len(cmap):
        raise DecodeError("a replica listed twice")
    writes = decode_ops(doc, state.writes) if state.writes else []
    for op in writes:
        if type(op) is SetOp and type(op.value) is NewNode:
            doc._create_node(op.id, op.value.kind)
    per_client: list[list[Item]] = [[] for _ in doc._replicas]
    checks: list[tuple[Sequence, list[int]]] = []
    for spec in state.nodes:
        node = _node_id(state, spec.ref, rids, cmap)
        if node & CLIENT_MASK == 0 and node not in doc.roots:
            raise DecodeError("items of an unknown root")
        seq = doc._create_node(node, spec.kind)
        assert isinstance(seq, Sequence)
        if seq.root.vis or seq.first.items:
            raise DecodeError("a node listed twice")
        refs: list[int] = []
        items = _items_of(doc, spec, cmap, True, refs)
        seq.load_items(items)
        checks.append((seq, refs))
        for it in items:
            per_client[it.id & CLIENT_MASK].append(it)
    index = doc.index
    nexts = [0] * len(doc._replicas)
    for (_, n), c in zip(state.replicas, cmap, strict=True):
        nexts[c] = n
    for c, items in enumerate(per_client):
        if not items:
            continue
        items.sort(key=lambda it: it.id)
        starts = [it.id >> CLIENT_BITS for it in items]
        ends = [s + len(it.content) for s, it in zip(starts, items, strict=True)]
        if any(map(gt, ends, starts[1:])):
            raise DecodeError("items overlap")
        if ends[-1] > nexts[c]:
            raise DecodeError("an item beyond the version vector")
        index.load(c, starts, items)
    for seq, refs in checks:
        _check_refs(doc, seq, refs)
    for (_, n), c in zip(state.replicas, cmap, strict=True):
        doc._next[c] = n
        doc._record_version(c, n)
    for op in writes:
        c = op.id & CLIENT_MASK
        if (op.id >> CLIENT_BITS) >= doc._next[c]:
            raise DecodeError("a write beyond the version vector")
        if type(op) is not SetOp and type(op) is not AddOp:
            raise DecodeError("ops in the wrong section of a state")
        doc._check_op_kind(op, doc.kind_of(op.node))
        if type(op) is SetOp:
            doc._apply_set(op)
        else:
            assert isinstance(op, AddOp)
            doc._apply_add(op)
        doc._log[c].append(op)
    for chunk, bound in state.chunks:
        doc._lazy_dels.append((chunk, {cmap[t]: end for t, end in bound}))


def _check_refs(doc: Document, seq: Sequence, refs: list[int]) -> None:
    """Every id in ``refs`` names an element of ``seq``."""
    find = doc.index.find
    for pid in refs:
        try:
            item, _ = find(pid)
        except KeyError:
            raise DecodeError("an origin that is not an element") from None
        if item.leaf.owner is not seq:
            raise DecodeError("an origin that is not an element of its node")


__all__ = ["DELTA_VERSION", "STATE_VERSION", "encode_state", "merge_state", "state_ops"]
