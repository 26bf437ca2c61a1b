"""Loading full states (format in ``state``): bulk into an empty document, else as ops.

``merge_state`` is what ``Document.merge`` calls for a state (``CWS`` 2, or ``CWR`` 3 in delta
form); ``state_ops`` is what ``decoding.decode_ops`` returns for ``CWR`` 3. Malformed bytes raise
``DecodeError`` and leave the document as it was.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from dataclasses import dataclass
from typing import Any

from cowrite.engine.codec import Reader
from cowrite.engine.document import Change, Document, root_id
from cowrite.engine.encoding import C_LZMA, C_NONE, C_ZLIB, _decode_list, _max_body, decode_ops
from cowrite.engine.errors import DecodeError, EngineError, TooManyReplicas
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, MAX_CLIENTS, MAX_REPLICA_ID, NO_ID, ONE
from cowrite.engine.load_passes import below, drop, packed, sorted_by_id, starts, without
from cowrite.engine.ops import AddOp, DeleteOp, InsertOp, NewNode, NodeKind, Op, SetOp
from cowrite.engine.runs import Item
from cowrite.engine.sequence import Sequence
from cowrite.engine.state import (
    _TYPECODES,
    DELTA_MAGIC,
    F_DELETED,
    F_ID,
    F_LIST,
    MAGIC,
    O_EXPLICIT,
    O_NONE,
    O_PREV,
    R_EXPLICIT,
    R_NEXT,
    R_NONE,
)
from cowrite.engine.threads import PACE_EVERY, let_others_run, pace, start_slice

_BIG_ENDIAN = sys.byteorder == "big"


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
    wanted, else turned into ops and merged (``Document.apply_ops``). A long load lets other
    threads run every few milliseconds (``engine/threads.py``)."""
    start_slice()
    state = _parse(data)
    if not changes and _is_empty(doc):
        _bulk_load(doc, state)
        pace()  # the last stretch of a long load ends with a drop too (observed)
        return []
    return doc.apply_ops(state_ops(doc, data), changes=changes)


def state_ops(doc: Document, data: bytes, *, max_new_replicas: int | None = None) -> list[Op]:
    """The ops of a state (either header), packed for ``doc``; ``DecodeError`` if malformed,
    ``TooManyReplicas`` (registering none) if it names more than ``max_new_replicas`` replicas
    ``doc`` has not seen."""
    try:
        state = _parse(data)
        if max_new_replicas is not None:
            new = {r for r, _ in state.replicas if doc.known_client(r) is None}
            if len(new) > max_new_replicas:
                raise TooManyReplicas(f"more than {max_new_replicas} new replica ids")
        return _to_ops(doc, state)
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
        pace()
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


_INFLATE_STEP = 1 << 19
"""Bytes a state's body is decompressed by at once (about a millisecond)."""


def _inflate(method: int, packed: bytes, size: int) -> tuple[bytes, int]:
    """Decompress the core; returns it and how many bytes of ``packed`` its stream took."""
    if method == C_ZLIB:
        d = zlib.decompressobj()
        parts: list[bytes] = []
        got = 0
        pending = packed
        try:
            while True:  # a step at a time: it is CPU time, and pacing sees it
                part = d.decompress(pending, min(_INFLATE_STEP, size + 1 - got))
                parts.append(part)
                got += len(part)
                pace()
                pending = d.unconsumed_tail
                if d.eof or got > size or not (part or pending):
                    break
        except zlib.error as exc:
            raise DecodeError(f"corrupt compressed data: {exc}") from None
        pace()
        body = b"".join(parts)  # a few ms for megabytes (fresh pages): a step of its own
        pace()
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
            pace()
        raw = r.bytes_()
        try:
            text = raw.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"invalid UTF-8 in text: {exc.reason}") from None
        pace()
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
    flags: list[int] = fl.tolist()
    pace()
    sizes: list[int] = ln.tolist()
    pace()
    if not all(below(col, nt) for col in (ic, oc, rc)) or not below(flags, 128) or 0 in sizes:
        raise DecodeError("bad item columns")
    is_text = spec.kind is NodeKind.TEXT
    if is_text and not without(flags, F_LIST):
        raise DecodeError("list content in a text")
    if not is_text and len(spec.lists) != n:
        raise DecodeError("text content in a list")
    text = spec.text
    lists = spec.lists
    explicit_ids = packed(ic, is_, cmap)
    explicit_origins = packed(oc, os_, cmap)
    explicit_rights = packed(rc, rs, cmap)
    refs += explicit_origins
    refs += explicit_rights
    n_ids, n_origins, n_rights = len(explicit_ids), len(explicit_origins), len(explicit_rights)
    xi = xo = xr = 0  # next unread explicit id, origin, right
    pos = 0
    prev_last = right = NO_ID
    fix: Item | None = None  # an item whose right is the next item's id
    items: list[Item] = []
    append = items.append
    for k in range(n):
        if k & (PACE_EVERY - 1) == PACE_EVERY - 1:
            pace()
        f = flags[k]
        size = sizes[k]
        code = f & 12
        if code == O_PREV:
            origin = prev_last
        elif code == O_NONE:
            origin = NO_ID
        elif code == O_EXPLICIT and xo < n_origins:
            origin = explicit_origins[xo]
            xo += 1
        else:
            raise DecodeError("bad origin code" if code != O_EXPLICIT else "item columns disagree")
        if f & F_ID:
            if xi == n_ids:
                raise DecodeError("item columns disagree")
            pid = explicit_ids[xi]
            xi += 1
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
            if xr == n_rights:
                raise DecodeError("item columns disagree")
            right = explicit_rights[xr]
            xr += 1
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
    if xi != n_ids or xo != n_origins or xr != n_rights:
        raise DecodeError("item columns disagree")
    if fix is not None:
        raise DecodeError("the last item's right cannot be the next item")
    if is_text and pos != len(text):
        raise DecodeError("text items and text disagree")
    drop(explicit_ids)
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
        let_others_run()
        seq.load_items(items)
        checks.append((seq, refs))
        for k, it in enumerate(items):
            if k & (PACE_EVERY - 1) == PACE_EVERY - 1:
                pace()
            per_client[it.id & CLIENT_MASK].append(it)
        drop(items)  # the list only: freeing it at once is a long hold
        let_others_run()
    index = doc.index
    nexts = [0] * len(doc._replicas)
    for (_, n), c in zip(state.replicas, cmap, strict=True):
        nexts[c] = n
    for c, unsorted in enumerate(per_client):
        if not unsorted:
            continue
        items = sorted_by_id(unsorted)
        if items is not unsorted:
            drop(unsorted)
        per_client[c] = items
        del unsorted
        pace()
        firsts = starts(items)
        if firsts[-1] + len(items[-1].content) > nexts[c]:
            raise DecodeError("an item beyond the version vector")
        index.load(c, firsts, items)
        let_others_run()
    for seq, refs in checks:
        _check_refs(doc, seq, refs)
        drop(refs)
    for items in per_client:  # the lists only (the tree and the index hold the items)
        drop(items)
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
    for k, pid in enumerate(refs):
        if k & (PACE_EVERY - 1) == PACE_EVERY - 1:
            pace()
        try:
            item, _ = find(pid)
        except KeyError:
            raise DecodeError("an origin that is not an element") from None
        if item.leaf.owner is not seq:
            raise DecodeError("an origin that is not an element of its node")


__all__ = ["merge_state", "state_ops"]
