"""Who deleted each element: the index history views read instead of the delete records.

A history view (``history._View``) must know, for every element, whether a delete in its
version removed it. Scanning the delete records per request costs a pass over all of them (77k
on the automerge-paper trace: hundreds of ms); this index keeps, per element (client index,
seq), the seq and client of the delete that removed it, in two ``array``s per client, so a view
decides a whole run of elements from slices compared in C (``runs``).

The index of a document is built once and then only extended by the delete records that came
since (records are appended per client in seq order); it is rebuilt when the compaction base
moves (compaction drops records and turns deleted content into gaps) or the record columns are
replaced (a merged state). An element deleted by
several replicas (concurrent deletes) is ``MANY``: its deleters are listed in ``multi``.

The first build is the one long pass: on a loaded document it decodes the delete records the
load left encoded and indexes them, in one pass where it can (``history_bulk``: ~35-45 ms of CPU
compiled, ~80 ms pure, for the automerge-paper trace; ``decode_chunks``), so it can be made off
the thread that owns the document: ``IndexBuild`` (``history_build``) reads only what was there
when it was made, and its ``install`` on the owner's thread adds what came since.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from weakref import WeakKeyDictionary

from cowrite.engine.doc_parts import DeleteColumns, _del_arrays
from cowrite.engine.document import Document
from cowrite.engine.history_bulk import MANY, NOBODY, delete_columns, fill
from cowrite.engine.ids import VersionVector
from cowrite.engine.oplog import decode_delete_chunks, install_deletes

ALIVE = 1 << 62
"""The delete seq of an element nobody deleted (greater than every limit)."""


class DeleteIndex:
    def __init__(self, base: VersionVector, cols: object) -> None:
        self.base = dict(base)
        self.cols = cols
        """The document's delete columns when built (a state merge replaces them: rebuild)."""
        self.done: list[int] = []
        """Delete records indexed so far, per deleter client."""
        self.dseq: list[array[int]] = []
        self.dcl: list[array[int]] = []
        self.multi: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def update(self, doc: Document) -> None:
        self.extend(doc.seen_counts(), doc._dels)

    def extend(self, nexts: Sequence[int], dels: Sequence[DeleteColumns]) -> None:
        """Room for ``nexts`` elements per client, and the records of ``dels`` not indexed yet
        (``dels`` per client: the document's columns or a prefix of them, ahead of later ones)."""
        self.grow(nexts)
        while len(self.done) < len(dels):
            self.done.append(0)
        fill(self.dseq, self.dcl, self.multi, dels, self.done)

    def grow(self, nexts: Sequence[int]) -> None:
        """Room for ``nexts`` elements per client."""
        while len(self.dseq) < len(nexts):
            self.dseq.append(array("q"))
            self.dcl.append(array("q"))
        for c, n in enumerate(nexts):
            grow = n - len(self.dseq[c])
            if grow > 0:
                self.dseq[c].extend(array("q", [ALIVE]) * grow)
                self.dcl[c].extend(array("q", [NOBODY]) * grow)


_INDEXES: WeakKeyDictionary[Document, DeleteIndex] = WeakKeyDictionary()


def _current(doc: Document) -> DeleteIndex | None:
    index = _INDEXES.get(doc)
    if index is None or index.base != doc.base or index.cols is not doc._del_cols:
        return None
    return index


def decode_chunks(
    doc: Document, chunks: list[tuple[bytes, dict[int, int]]], into: DeleteIndex | None = None
) -> list[DeleteColumns]:
    """``oplog.decode_delete_chunks``, in bulk where it can (``history_bulk``): the records of
    encoded ``chunks`` as columns per client; reads ``doc``, never changes it. With ``into`` (a
    new index with room for every element), indexes them there in the same pass, and marks
    them ``done`` only if every chunk could (else ``into`` is left to discard)."""
    out: list[DeleteColumns] = []
    fused = into is not None
    for chunk in chunks:
        cols = None
        if fused:
            assert into is not None
            cols = delete_columns(doc, chunk[0], (into.dseq, into.dcl, into.multi))
            fused = cols is not None
        if cols is None:
            cols = delete_columns(doc, chunk[0])
        if cols is None:
            cols = decode_delete_chunks(doc, [chunk])
        while len(out) < len(cols):
            out.append(_del_arrays())
        for mine, more in zip(out, cols, strict=False):
            for col, extra in zip(mine, more, strict=True):
                col.extend(extra)
    if fused and into is not None:
        into.done = [len(cols[0]) for cols in out]
    return out


def delete_index(doc: Document) -> DeleteIndex:
    """The document's index, brought up to date."""
    if doc._lazy_dels:  # decode the lazily loaded records first (in bulk)
        chunks = list(doc._lazy_dels)
        install_deletes(doc, chunks, decode_chunks(doc, chunks))
    index = _current(doc)
    if index is None:
        index = _INDEXES[doc] = DeleteIndex(doc.base, doc._del_cols)
    index.update(doc)
    return index


class IndexBuild:
    """The first build of a document's index, made in another thread than the one that owns
    the document: ``run`` (any thread, once) decodes and indexes the records there were when
    the build was made; ``install`` (the owner's thread, after ``run``) makes it the document's
    index and adds what came since. If the records were replaced meanwhile (a compaction, a
    merged state, a synchronous build), ``install`` builds on the owner's thread as
    ``delete_index`` does."""

    def __init__(self, doc: Document) -> None:
        self.doc = doc
        self.chunks = list(doc._lazy_dels)
        self.cols = doc._del_cols
        self.counts = doc.seen_counts()
        self.lengths = [len(seqs) for seqs, _, _, _ in doc._del_cols]
        self.base = dict(doc.base)
        self.older: list[DeleteColumns] = []
        self.index: DeleteIndex | None = None

    def run(self) -> None:
        """Decode and index (reads the document, never changes it)."""
        index = DeleteIndex(self.base, None)
        index.grow(self.counts)
        older = decode_chunks(self.doc, self.chunks, index) if self.chunks else []
        if self.chunks and not index.done:  # not all indexed while decoded: index them below
            index = DeleteIndex(self.base, None)
        # the newer records there were at the start, after the decoded ones
        prefix = [
            (seqs[:n], nodes[:n], targets[:n], lengths[:n])
            for (seqs, nodes, targets, lengths), n in zip(self.cols, self.lengths, strict=False)
        ]
        width = max(len(older), len(prefix))
        dels: list[DeleteColumns] = []
        for c in range(width):
            a = older[c] if c < len(older) else None
            b = prefix[c] if c < len(prefix) else None
            if a is None:
                assert b is not None
                dels.append(b)
            elif b is None:
                dels.append(a)
            else:
                dels.append((a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3]))
        index.extend(self.counts, dels)
        self.older = older
        self.index = index

    def install(self) -> DeleteIndex:
        """The document's index, up to date (on the thread that owns the document)."""
        doc = self.doc
        index = self.index
        current = _current(doc) if not doc._lazy_dels else None
        if (
            current is not None  # built meanwhile
            or index is None  # (not run)
            or doc.base != self.base  # compacted meanwhile
            or doc._del_cols is not self.cols  # replaced by a merged state
        ):
            return delete_index(doc)
        if self.chunks:
            if not install_deletes(doc, self.chunks, self.older):
                return delete_index(doc)
            # the newer records follow the decoded ones in the installed columns
        elif doc._lazy_dels:
            return delete_index(doc)
        index.cols = doc._del_cols
        _INDEXES[doc] = index
        index.update(doc)
        return index


def history_build(doc: Document) -> IndexBuild | None:
    """A build to run off the owner's thread before reading history (``IndexBuild``), or None
    when the document's index exists (reads only bring it up to date: no long pass)."""
    if not doc._lazy_dels and _current(doc) is not None:
        return None
    return IndexBuild(doc)


__all__ = [
    "ALIVE",
    "MANY",
    "NOBODY",
    "DeleteIndex",
    "IndexBuild",
    "decode_chunks",
    "delete_index",
    "history_build",
]
