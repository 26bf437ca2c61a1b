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

Decoding (``state_load``) raises only ``DecodeError`` for malformed bytes (``InvalidOperation``
for ops that contradict the receiving document) and changes nothing then.
"""

from __future__ import annotations

import sys
import zlib
from array import array
from typing import Any, Final

from cowrite.engine.codec import Writer
from cowrite.engine.document import Document
from cowrite.engine.encoding import (
    C_NONE,
    C_ZLIB,
    MIN_COMPRESS_BYTES,
    _encode_list,
    _max_body,
    encode_ops,
)
from cowrite.engine.errors import EngineError
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, NO_ID, ONE
from cowrite.engine.ops import DeleteOp, NewNode, NodeRef, Op
from cowrite.engine.sequence import Gap, Sequence

MAGIC = b"CWS"
STATE_VERSION = 2
DELTA_MAGIC = b"CWR"
DELTA_VERSION = 3
F_DELETED: Final = 1
F_LIST: Final = 2
F_ID: Final = 16
"""Item flags: deleted, list content, explicit id (else the id right after the origin)."""
O_NONE: Final = 0
O_PREV: Final = 4
O_EXPLICIT: Final = 8
"""Origin (bits 2-3): none, the previous item's last element, explicit."""
R_NONE: Final = 0
R_PREV: Final = 32
R_NEXT: Final = 64
R_EXPLICIT: Final = 96
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
    """The item columns of ``seq``, gathered in one pass (typed locals: the compiled build's
    hot loop of the delta since empty)."""
    items = list(seq.items())
    n = len(items)
    content_flag = 0 if seq.is_text else F_LIST
    flags: list[int] = []
    lens: list[int] = []
    contents: list[Any] = []
    xids: list[int] = []
    xorigins: list[int] = []
    xrights: list[int] = []
    last = NO_ID  # the previous item's last element
    prev_right = NO_ID
    for k in range(n):
        item = items[k]
        pid: int = item.id
        origin: int = item.origin
        right: int = item.right
        content = item.content
        if type(content) is Gap:
            raise EngineError("a compacted run in an uncompacted document")
        size = len(content)
        f = content_flag | F_DELETED if item.deleted else content_flag
        if origin == last:
            f |= O_PREV
        elif origin != NO_ID:
            f |= O_EXPLICIT
            xorigins.append(origin)
        if origin == NO_ID or pid != origin + ONE:
            f |= F_ID
            xids.append(pid)
        if right == prev_right:
            f |= R_PREV
        elif right != NO_ID:
            if k + 1 < n and right == items[k + 1].id:
                f |= R_NEXT
            else:
                f |= R_EXPLICIT
                xrights.append(right)
        flags.append(f)
        lens.append(size)
        contents.append(content)
        last = pid + (size - 1) * ONE
        prev_right = right
    w.uint(n)
    _put_column(w, flags)
    _put_column(w, lens)
    for chosen in (xids, xorigins, xrights):
        w.uint(len(chosen))
        if len(tix) == 1:  # one replica: every index is 0
            _put_column(w, [0] * len(chosen))
        else:
            _put_column(w, [tix[x & CLIENT_MASK] for x in chosen])
        _put_column(w, [x >> CLIENT_BITS for x in chosen])
    if seq.is_text:
        w.bytes_("".join(contents).encode("utf-8", "surrogatepass"))
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


__all__ = ["DELTA_VERSION", "STATE_VERSION", "encode_state"]
