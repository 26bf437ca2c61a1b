"""The delete index's first build in bulk: encoded delete records straight to columns, and the
index filled from columns, in two flat loops (``scripts/build-native`` compiles this module).

A state load leaves the delete records encoded (``Document._lazy_dels``: op chunks holding only
delete ops). The general decoder (``decoding.decode_ops`` then ``oplog.decode_delete_chunks``)
makes an op tuple per record and then takes it apart again; on the automerge-paper trace (77k
deletes) that was most of the ~0.2 s the first history read cost. ``delete_columns`` reads the
same bytes into the per-client columns directly (``DeleteColumns``) and resolves the refs inline
(a backspace run is a run of "the previous target -1" tags).

Its contract is the general decoder's result or nothing: it takes only the common shape (format
2, delete ops only, replicas and roots the document knows, targets on replicas); for anything
else, malformed bytes included, it returns None and the caller decodes with the general decoder,
which gives the same columns or raises its ``DecodeError``. It reads the document (replica and
root tables), never changes it, so it may run in a worker thread.

``fill`` adds delete records to the index arrays (``history_index.DeleteIndex``): one element
deleted once (most records) is two array stores; anything else goes through ``add_span``.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from typing import Final, TypeAlias

from cowrite.engine.codec import Reader, decompress, read_uint_rle
from cowrite.engine.doc_parts import DeleteColumns, _del_arrays
from cowrite.engine.document import Document
from cowrite.engine.encoding import (
    C_LZMA,
    C_NONE,
    C_ZLIB,
    COMPRESSION_MASK,
    FORMAT_VERSION,
    G_DELETE,
    GROUPS_MASK,
    MAGIC,
    MAX_NAME_BYTES,
    T_DELTA,
    T_NEAR,
    T_NONE,
    T_PREV,
    T_TABLE,
    _max_body,
    _root_id,
)
from cowrite.engine.errors import EngineError
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, MAX_REPLICA_ID, NO_ID, ONE
from cowrite.engine.ops import NodeKind
from cowrite.engine.threads import PACE_EVERY, pace

NOBODY: Final = -1
"""The deleter client of an element nobody deleted (``history_index``)."""
MANY: Final = -2
"""The deleter client of an element several clients deleted (listed in ``multi``)."""

_KINDS: Final[dict[int, NodeKind]] = {int(k): k for k in NodeKind}
_BACK: Final = T_NEAR  # the cursor's element -1
_SAME: Final = T_NEAR + 1
_NEXT: Final = T_NEAR + 2


Into: TypeAlias = (
    "tuple[list[array[int]], list[array[int]], dict[tuple[int, int], list[tuple[int, int]]]]"
)
"""An index's ``dseq``, ``dcl`` and ``multi`` (``history_index.DeleteIndex``), with room for
every element."""


def delete_columns(
    doc: Document, data: bytes, into: Into | None = None
) -> list[DeleteColumns] | None:
    """The delete records of one encoded chunk as columns per client (what
    ``decode_delete_chunks(doc, [(data, ...)])`` gives), or None when the chunk is not of the
    common shape or does not decode (then the general decoder says why). With ``into``, also
    indexes the records there as ``fill`` does, in the same pass (after None, some may be:
    discard that index)."""
    try:
        body = _body(data)
        return None if body is None else _columns(doc, body, into)
    except (EngineError, IndexError, OverflowError, ValueError):  # DecodeError is an EngineError
        return None


def _body(data: bytes) -> bytes | None:
    """The uncompressed body of a delete-only chunk (None for any other kind of chunk)."""
    if len(data) < 5 or data[:3] != MAGIC or data[3] != FORMAT_VERSION:
        return None
    flags = data[4]
    if flags & ~(COMPRESSION_MASK | GROUPS_MASK) or flags & GROUPS_MASK != G_DELETE:
        return None
    method = flags & COMPRESSION_MASK
    if method == C_NONE:
        return data[5:]
    r = Reader(data)
    r.raw(5)
    size = r.uint()
    packed = data[r.position :]
    if size > _max_body(len(packed)):
        return None
    if method == C_ZLIB:
        body = decompress(packed, size)
    elif method == C_LZMA:
        from cowrite.engine.decoding import _lzma_decompress

        body = _lzma_decompress(packed, size)
    else:
        return None
    return body if len(body) == size else None


def _ref_count(tags: list[int]) -> int:
    n = 0
    for t in tags:
        if t >= T_DELTA:
            n += 1
    return n


def _columns(doc: Document, body: bytes, into: Into | None) -> list[DeleteColumns] | None:
    r = Reader(body)
    max_items = 8 * len(body) + 16
    clients: list[int] = []
    known = doc._clients
    for _ in range(r.count()):
        replica = r.uint()
        c = known.get(replica)
        if c is None or not 0 < replica <= MAX_REPLICA_ID or not c:
            return None
        clients.append(c)
    roots: list[int] = []
    for _ in range(r.count(per_item_min_bytes=2)):
        kind = _KINDS.get(r.uint(max_value=255))
        if kind is None:
            return None
        name = r.str_(MAX_NAME_BYTES)
        rid = _root_id(kind, name)
        if doc.roots.get(rid) != (name, kind):
            return None
        roots.append(rid)
    n = r.count(max_count=max_items, per_item_min_bytes=0)
    n_clients = len(clients)
    if not n or not n_clients:
        return None
    op_clients = read_uint_rle(r, n, counted=False) if n_clients > 1 else [0] * n
    gaps = read_uint_rle(r, n, counted=False)
    node_tags = read_uint_rle(r, n, counted=False)
    node_vals = read_uint_rle(r, _ref_count(node_tags), counted=False)
    counts = read_uint_rle(r, n, counted=False)
    n_spans = sum(counts)
    if n_spans > max_items or min(counts) < 1:
        return None
    tags = read_uint_rle(r, n_spans, counted=False)
    vals = read_uint_rle(r, _ref_count(tags), counted=False)
    lens = read_uint_rle(r, n_spans, counted=False)
    if not r.at_end() or min(lens) < 1:
        return None
    # one node and single elements (a text's deletes): those columns are made at once
    one_node = node_tags[0] != T_PREV and node_tags.count(T_PREV) == n - 1
    ones = max(lens) == 1

    # the columns, made at their final size and written through memoryviews: an array's own
    # item assignment (and ``array("q", a_list)``) parses each int the slow way
    totals: dict[int, int] = {}
    if n_clients == 1:
        totals[clients[0]] = n_spans
    else:
        for i in range(n):
            t = op_clients[i]
            if t >= n_clients:
                return None
            c = clients[t]
            totals[c] = totals.get(c, 0) + counts[i]
    out: list[DeleteColumns] = []
    views: dict[int, tuple[memoryview, memoryview, memoryview, memoryview]] = {}
    for c, total in totals.items():
        while len(out) <= c:
            out.append(_del_arrays())
        cols = out[c] = _zeros(total), _zeros(total), _zeros(total), _zeros(total)
        views[c] = (
            memoryview(cols[0]),
            memoryview(cols[1]),
            memoryview(cols[2]),
            memoryview(cols[3]),
        )
    index_views: dict[int, tuple[memoryview, memoryview]] = {}
    seq_view = cl_view = memoryview(b"")
    view_client = -1
    at: dict[int, int] = {}
    expect: dict[int, int] = {}
    seqs = nodes = targets = lengths = memoryview(b"")
    client = -1
    e = k = nv = dv = si = 0
    node = cursor = NO_ID
    for i in range(n):
        c = clients[op_clients[i]]
        if c != client:
            if client >= 0:
                expect[client] = e
                at[client] = k
            client = c
            seqs, nodes, targets, lengths = views[c]
            e = expect.get(c, 0)
            k = at.get(c, 0)
        seq = e + gaps[i]
        e = seq + 1
        tag = node_tags[i]
        if tag != T_PREV:
            if tag == T_NONE:
                return None
            if tag >= T_DELTA:
                v = node_vals[nv]
                nv += 1
                if tag == T_DELTA:
                    node = (seq + ((v >> 1) ^ -(v & 1))) << CLIENT_BITS | c
                elif tag == T_DELTA + 1:  # a named root
                    if v >= len(roots):
                        return None
                    node = roots[v]
                elif tag - T_TABLE < n_clients:
                    node = (v << CLIENT_BITS) | clients[tag - T_TABLE]
                else:
                    return None
            else:
                node = (seq + tag - _SAME) << CLIENT_BITS | c
            if node < 0:
                return None  # before the start of a replica's history
        elif node == NO_ID:
            return None  # no previous node
        for _ in range(counts[i]):
            tag = tags[si]
            if tag >= T_TABLE:
                if tag - T_TABLE >= n_clients:
                    return None
                cursor = (vals[dv] << CLIENT_BITS) | clients[tag - T_TABLE]
                dv += 1
            elif cursor == NO_ID:
                return None  # no previous target, no base
            elif tag == _BACK:
                cursor -= ONE
            elif tag == _NEXT:
                cursor += ONE
            elif tag == T_DELTA:
                v = vals[dv]
                dv += 1
                cursor += ((v >> 1) ^ -(v & 1)) * ONE
            elif tag not in (_SAME, T_PREV):
                return None  # none, or a root: the general decoder decides
            if cursor < 0:
                return None  # before the start of a replica's history
            seqs[k] = seq
            if into is not None:  # index it now (see ``fill``)
                tc = cursor & CLIENT_MASK
                s = cursor >> CLIENT_BITS
                if tc != view_client:
                    pair = index_views.get(tc)
                    if pair is None:
                        pair = index_views[tc] = memoryview(into[0][tc]), memoryview(into[1][tc])
                    seq_view, cl_view = pair
                    view_client = tc
                length = lens[si]
                if length == 1 and s < len(cl_view) and cl_view[s] == NOBODY:
                    cl_view[s] = c
                    seq_view[s] = seq
                else:
                    add_span(seq_view, cl_view, into[2], tc, c, seq, s, length)
            if not one_node:
                nodes[k] = node
            targets[k] = cursor
            if not ones:
                lengths[k] = lens[si]
            k += 1
            si += 1
        if i & (PACE_EVERY - 1) == PACE_EVERY - 1:
            pace()
    for view in views.values():
        for col in view:
            col.release()
    for pair in index_views.values():
        pair[0].release()
        pair[1].release()
    for c, total in totals.items():
        seq_col, node_col, target_col, length_col = out[c]
        if one_node:
            node_col = array("q", [node]) * total
        if ones:
            length_col = array("q", [1]) * total
        out[c] = seq_col, node_col, target_col, length_col
    return out


def _zeros(n: int) -> array[int]:
    return array("q", bytes(8 * n))


def fill(
    dseq: list[array[int]],
    dcl: list[array[int]],
    multi: dict[tuple[int, int], list[tuple[int, int]]],
    dels: Sequence[DeleteColumns],
    done: list[int],
) -> None:
    """Index the delete records of ``dels`` (per deleter client) from ``done`` on, and move
    ``done`` past them: per element, the seq and client of its deleter (``MANY`` and ``multi``
    for several). The arrays are written through memoryviews (see ``_columns``)."""
    views: dict[int, tuple[memoryview, memoryview]] = {}
    for dc, (seqs, _nodes, targets, lengths) in enumerate(dels):
        end = len(seqs)
        for k in range(done[dc], end):
            target = targets[k]
            tc = target & CLIENT_MASK
            s = target >> CLIENT_BITS
            pair = views.get(tc)
            if pair is None:
                pair = views[tc] = memoryview(dseq[tc]), memoryview(dcl[tc])
            cl = pair[1]
            if lengths[k] == 1 and s < len(cl) and cl[s] == NOBODY:  # (most deletes)
                cl[s] = dc
                pair[0][s] = seqs[k]
            else:
                add_span(pair[0], cl, multi, tc, dc, seqs[k], s, lengths[k])
            if k & (PACE_EVERY - 1) == PACE_EVERY - 1:
                pace()
        done[dc] = end
    for seq_view, cl_view in views.values():
        seq_view.release()
        cl_view.release()


def add_span(
    seq: memoryview,
    cl: memoryview,
    multi: dict[tuple[int, int], list[tuple[int, int]]],
    tc: int,
    dc: int,
    ds: int,
    s: int,
    length: int,
) -> None:
    """Index one delete record of ``dc`` (seq ``ds``) removing ``length`` elements of client
    ``tc`` from seq ``s`` (views of the index arrays of ``tc``: ``seq``, ``cl``)."""
    e = s + length
    part = cl[s:e]
    if len(part) == length and min(part) == max(part) == NOBODY:  # nobody yet: at once
        seq[s:e] = array("q", [ds]) * length
        cl[s:e] = array("q", [dc]) * length
        return
    for j in range(s, min(e, len(cl))):
        other = cl[j]
        if other == NOBODY:
            cl[j] = dc
            seq[j] = ds
        elif other == dc:
            seq[j] = min(seq[j], ds)
        else:
            listed = multi.setdefault((tc, j), [] if other == MANY else [(other, seq[j])])
            listed.append((dc, ds))
            cl[j] = MANY
            seq[j] = min(seq[j], ds)
