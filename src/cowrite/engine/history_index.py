"""Who deleted each element: the index history views read instead of the delete records.

A history view (``history._View``) must know, for every element, whether a delete in its
version removed it. Scanning the delete records per request costs a pass over all of them (77k
on the automerge-paper trace: hundreds of ms); this index keeps, per element (client index,
seq), the seq and client of the delete that removed it, in two ``array``s per client, so a view
decides a whole run of elements with C-speed ``min``/``max`` over slices (``runs``).

The index of a document is built once and then only extended by the delete records that came
since (records are appended per client in seq order); it is rebuilt when the compaction base
moves (compaction drops records and turns deleted content into gaps) or the record columns are
replaced (a merged state). An element deleted by
several replicas (concurrent deletes) is ``MANY``: its deleters are listed in ``multi``.
"""

from __future__ import annotations

from array import array
from weakref import WeakKeyDictionary

from cowrite.engine.document import Document
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, VersionVector

ALIVE = 1 << 62
"""The delete seq of an element nobody deleted (greater than every limit)."""
NOBODY = -1
MANY = -2


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
        nexts = doc.seen_counts()
        while len(self.dseq) < len(nexts):
            self.dseq.append(array("q"))
            self.dcl.append(array("q"))
        for c, n in enumerate(nexts):
            grow = n - len(self.dseq[c])
            if grow > 0:
                self.dseq[c].extend(array("q", [ALIVE]) * grow)
                self.dcl[c].extend(array("q", [NOBODY]) * grow)
        dels = doc._dels
        while len(self.done) < len(dels):
            self.done.append(0)
        for dc, (seqs, _nodes, targets, lengths) in enumerate(dels):
            for k in range(self.done[dc], len(seqs)):
                self._add(dc, seqs[k], targets[k], lengths[k])
            self.done[dc] = len(seqs)

    def _add(self, dc: int, ds: int, target: int, length: int) -> None:
        tc = target & CLIENT_MASK
        s = target >> CLIENT_BITS
        cl = self.dcl[tc]
        if length == 1 and s < len(cl) and cl[s] == NOBODY:  # (most deletes: one element)
            cl[s] = dc
            self.dseq[tc][s] = ds
            return
        e = s + length
        part = cl[s:e]
        if len(part) == length and min(part) == max(part) == NOBODY:  # nobody yet: at once
            self.dseq[tc][s:e] = array("q", [ds]) * length
            cl[s:e] = array("q", [dc]) * length
            return
        seq = self.dseq[tc]
        for j in range(s, min(e, len(cl))):
            other = cl[j]
            if other == NOBODY:
                cl[j], seq[j] = dc, ds
            elif other == dc:
                seq[j] = min(seq[j], ds)
            else:
                listed = self.multi.setdefault((tc, j), [] if other == MANY else [(other, seq[j])])
                listed.append((dc, ds))
                cl[j], seq[j] = MANY, min(seq[j], ds)


_INDEXES: WeakKeyDictionary[Document, DeleteIndex] = WeakKeyDictionary()


def delete_index(doc: Document) -> DeleteIndex:
    """The document's index, brought up to date."""
    doc._dels  # noqa: B018 (decodes lazily loaded records first)
    index = _INDEXES.get(doc)
    if index is None or index.base != doc.base or index.cols is not doc._del_cols:
        index = _INDEXES[doc] = DeleteIndex(doc.base, doc._del_cols)
    index.update(doc)
    return index
