"""The OT edge: index edits made against an older version, rebased onto the current document.

Thin clients (browsers) edit by index: "insert 'x' at 5 of node N as of version V". The server
keeps an ``EditLog``: every change applied to a document's sequences, as an index edit, numbered
by a per-document *edit version* (the thin clients' version). An edit made at V is transformed
through the logged edits of its node after V (client edit on the ``left`` side, so at equal
positions the later-arriving client's insert goes first, the convention ShareDB and the JS client
use) and then applied to the CRDT as ordinary local edits (``apply_index_edit``). Replicas'
CRDT deltas enter the same log through the ``Change`` events ``Document.merge`` returns, so both
kinds of client see one history.

Cursors: an index is only meaningful at one version, so presence stores positions as ``Anchor``s
(the id of the element the cursor sticks to), which stay on the right character whatever others
do and resolve back to an index in O(log n).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from cowrite.engine import ot
from cowrite.engine.document import Document
from cowrite.engine.errors import InvalidOperation, ResyncNeeded
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, NO_ID, pack


class EditLog:
    """The sequence edits of the last ``capacity`` versions of one document, for rebasing.

    A version is one applied batch: a list of (node, index edit) in application order (possibly
    empty, for batches that touched no sequence).

    Besides the batches, each node keeps its own list of logged edits, pre-digested into *sites*:
    a normalized op is a list of sites ``(pos, insert, deleted)`` separated by retains (typing is
    one site; a burst of keystrokes at several places, several). A rebase finds the node's first
    edit after its base by bisection and steps the client's edit over the logged ones by shifting
    positions: a few integer comparisons per (site, site) pair, the common single-site case in a
    tight loop. Ops of any other shape (not normalized) go through ``ot.transform``. Both give
    exactly the same op (``tests/engine/test_rebase_fast.py`` checks the sites against
    ``ot.transform``). A late single-site edit costs ~0.2 µs per logged edit it is rebased over
    (a generic transform: ~4 µs), so falling behind no longer makes each edit much slower.
    """

    def __init__(self, capacity: int = 10_000, version: int = 0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.version = version
        self._entries: deque[Sequence[tuple[int, list[Any]]]] = deque()
        self._nodes: dict[int, _NodeLog] = {}

    @property
    def oldest(self) -> int:
        """The oldest version an edit can be based on (older ones need a resync)."""
        return self.version - len(self._entries)

    def record(self, changes: Sequence[tuple[int, list[Any]]]) -> int:
        """Log an applied batch of (node, edit); returns the new version.

        The edits are kept as given (not copied): callers must not change them afterwards.
        """
        version = self.version + 1
        nodes = self._nodes
        for node, edit in changes:
            log = nodes.get(node)
            if log is None:
                log = nodes[node] = _NodeLog()
            log.entries.append(_entry(version, edit))
        self._entries.append(changes)
        self.version = version
        if len(self._entries) > self.capacity:
            for node, _ in self._entries.popleft():
                log = nodes[node]
                log.head += 1
                if log.head == len(log.entries):
                    del nodes[node]
                elif log.head >= 64 and 2 * log.head >= len(log.entries):
                    del log.entries[: log.head]
                    log.head = 0
        return version

    def since(self, version: int) -> Iterator[tuple[int, int, list[Any]]]:
        """(version it belongs to, node, edit) of every edit after ``version``, in order."""
        self._check(version)
        start = version - self.oldest
        oldest = self.oldest
        for k in range(start, len(self._entries)):
            for node, edit in self._entries[k]:
                yield oldest + k + 1, node, edit

    def _check(self, version: int) -> None:
        if version > self.version or version < 0:
            raise InvalidOperation(f"version {version} is in the future (current {self.version})")
        if version < self.oldest:
            raise ResyncNeeded(f"version {version} is older than the retained {self.oldest}")

    def _after(self, node: int, base: int) -> tuple[list[_Entry], int]:
        """The entries of ``node`` and the index of its first one after version ``base``."""
        self._check(base)
        log = self._nodes.get(node)
        if log is None:
            return [], 0
        entries = log.entries
        return entries, bisect_right(entries, base, log.head, key=_version)

    def rebase(self, node: int, edit: list[Any], base: int) -> list[Any]:
        """``edit`` (made on ``node`` at version ``base``) transformed to apply now.

        Equal to ``ot.transform(edit, other, "left")`` over every logged ``other`` of ``node``
        after ``base`` in turn (``edit`` itself, untouched, when there is none).
        """
        entries, i = self._after(node, base)
        n = len(entries)
        if i == n:
            return edit
        # The client's edit is one site (p, ins, d) while ``sites`` and ``op`` are None, a list
        # of sites while ``op`` is None, else a generic op.
        p, ins, d = 0, None, 0
        sites: list[_Site] | None = None
        op: list[Any] | None = None
        kind: type | None = None
        digest = _sites(edit)
        if digest is None:
            op = edit
        else:
            sites, kind = digest
            if len(sites) <= 1:
                p, ins, d = sites[0] if sites else _EMPTY_SITE
                sites = None
        while i < n:
            _, q, j, e, other_kind, other, multi = entries[i]
            i += 1
            if (
                op is None
                and q != _GENERIC
                and (kind is None or other_kind is None or kind is other_kind)
            ):
                if sites is None and q >= 0:
                    # one site over one site: exactly what ``ot.transform(.., "left")`` does
                    if p <= q:
                        if p + d <= q:
                            continue  # before the other's site (an insert at q goes first)
                        over = min(e, p + d - q)
                        if not j or d - (q - p) == over:
                            d -= over
                            continue
                        # the other's insert lands inside our delete, which splits around it
                    elif p >= q + e:
                        p += j - e
                        continue
                    else:  # we start inside the other's delete: move to its end
                        d -= min(d, q + e - p)
                        p = q + j
                        continue
                todo = multi if q == _MULTI else ((q, j, e),)
                k = 0
                if sites is None:  # one site over several: the same, site by site while it can
                    for q, j, e in todo:
                        if p <= q:
                            if p + d > q:
                                over = min(e, p + d - q)
                                if j and d - (q - p) != over:
                                    break
                                d -= over
                        elif p >= q + e:
                            p += j - e
                        else:
                            d -= min(d, q + e - p)
                            p = q + j
                        k += 1
                    else:
                        continue
                    sites = [(p, ins, d)]
                for q, j, e in todo[k:]:
                    sites = _over(sites, q, j, e)
                sites = _merged(sites)
                if len(sites) <= 1:
                    p, ins, d = sites[0] if sites else _EMPTY_SITE
                    sites = None
                continue
            if op is None:
                op = _op_of([(p, ins, d)] if sites is None else sites)
            op = ot.transform(op, other, "left")
            digest = _sites(op)
            if digest is not None:
                op = None
                sites, kind = digest
                if len(sites) <= 1:
                    p, ins, d = sites[0] if sites else _EMPTY_SITE
                    sites = None
        if op is not None:
            return op
        return _op_of([(p, ins, d)] if sites is None else sites)

    def rebase_position(self, node: int, pos: int, base: int) -> int:
        """Where index ``pos`` of ``node`` at version ``base`` is now.

        Equal to ``ot.transform_position(pos, other)`` over every logged ``other`` of ``node``
        after ``base`` in turn.
        """
        entries, i = self._after(node, base)
        n = len(entries)
        if i == n:
            return pos
        if isinstance(pos, bool) or not isinstance(pos, int) or pos < 0:
            raise InvalidOperation(f"position must be an int >= 0, got {pos!r}")
        while i < n:
            _, q, j, e, _, other, multi = entries[i]
            i += 1
            if q >= 0:
                if q < pos:
                    pos += j - min(e, pos - q)
            elif q == _MULTI:
                shift = 0
                for q, j, e in multi:
                    if q < pos:
                        shift += j - min(e, pos - q)
                pos += shift
            else:
                pos = ot.transform_position(pos, other)
        return pos


_Site: TypeAlias = "tuple[int, Any, int]"
"""(position, insert or None, deleted): retain to ``position``, insert, delete ``deleted``."""

_EMPTY_SITE: _Site = (0, None, 0)

_MULTI = -1
_GENERIC = -2

_Entry: TypeAlias = (
    "tuple[int, int, int, int, type | None, list[Any], tuple[tuple[int, int, int], ...]]"
)
"""(version, pos, inserted, deleted, insert type, edit, sites): ``pos >= 0`` for an edit of one
site; ``_MULTI`` for several (``sites``: (pos, inserted, deleted) of each, right to left);
``_GENERIC`` for an edit of another shape (rebased over with ``ot.transform``)."""

_NO_SITES: tuple[tuple[int, int, int], ...] = ()


def _version(entry: _Entry) -> int:
    return entry[0]


def _entry(version: int, edit: list[Any]) -> _Entry:
    one = ot.text_site(edit)  # a keystroke: its one site without the general scan
    if one is not None:
        q, ins, e = one
        return (version, q, len(ins), e, str if ins else None, edit, _NO_SITES)
    digest = _sites(edit)
    if digest is None:
        return (version, _GENERIC, 0, 0, None, edit, _NO_SITES)
    sites, kind = digest
    if len(sites) <= 1:
        q, ins, e = sites[0] if sites else _EMPTY_SITE
        return (version, q, 0 if ins is None else len(ins), e, kind, edit, _NO_SITES)
    multi = tuple((q, 0 if ins is None else len(ins), e) for q, ins, e in reversed(sites))
    return (version, _MULTI, 0, 0, kind, edit, multi)


class _NodeLog:
    """One node's logged edits, oldest first, from ``head`` on (the ones before are evicted)."""

    __slots__ = ("entries", "head")

    def __init__(self) -> None:
        self.entries: list[_Entry] = []
        self.head = 0


def _sites(op: list[Any]) -> tuple[list[_Site], type | None] | None:
    """The sites of a normalized op (and what it inserts: str, list or None); None for any
    other op, valid or not: those are left to ``ot.transform``.

    Normalized: one retain between sites, a site's insert before its delete (``[-1, "x"]`` ties
    differently from ``["x", -1]``), nothing empty or zero; a trailing retain is allowed.
    """
    sites: list[_Site] = []
    kind: type | None = None
    at = 0
    i, n = 0, len(op)
    while i < n:
        c = op[i]
        t = type(c)
        if t is int and c > 0:
            if i and type(op[i - 1]) is int and op[i - 1] > 0:
                return None
            at += c
            i += 1
            continue
        if sites and sites[-1][0] + sites[-1][2] == at:
            return None  # two sites with no retain between them
        ins = None
        if (t is str or t is list) and c:
            if kind is None:
                kind = t
            elif kind is not t:
                return None
            ins = c
            i += 1
            if i < n:
                c = op[i]
                t = type(c)
        deleted = 0
        if (ins is None or i < n) and t is int and c < 0:
            deleted = -c
            i += 1
        if ins is None and not deleted:
            return None  # zero, bool, empty insert, not a component
        sites.append((at, ins, deleted))
        at += deleted
    return sites, kind


def _over(sites: list[_Site], q: int, j: int, e: int) -> list[_Site]:
    """``sites`` (in order) transformed, on the ``left``, over one site (q, j, e) of an op whose
    other sites are all before ``q``.

    Not normalized: sites may end up side by side, and must stay apart until every site of the
    other op is done (``_merged``): a merged insert would tie differently with the other's
    inserts further left. Sites left empty are dropped.
    """
    n = len(sites)
    k = 0
    while k < n:  # the sites before the other's are unchanged
        p, _, d = sites[k]
        if p > q or p + d > q:
            break
        k += 1
    if k == n:
        return sites
    out = sites[:k]
    shift = j - e
    end = q + e
    while k < n:
        p, ins, d = sites[k]
        k += 1
        if p <= q:
            over = min(e, p + d - q)
            rest = d - (q - p) - over
            if j and rest:  # the other's insert lands inside our delete: split around it
                if ins is not None or q > p:
                    out.append((p, ins, q - p))
                out.append((q + j, None, rest))
                continue
            d -= over
        elif p >= end:  # past the other's site: this and the rest shift
            out.append((p + shift, ins, d))
            out.extend([(p + shift, ins, d) for p, ins, d in sites[k:]])
            return out
        else:
            d -= min(d, end - p)
            p = q + j
        if ins is not None or d:
            out.append((p, ins, d))
    return out


def _merged(sites: list[_Site]) -> list[_Site]:
    """The sites of the normalized op: side by side ones merged, inserts first (as
    ``ot.transform``'s normalizing builder does)."""
    out: list[_Site] = []
    for p, ins, d in sites:
        if out:
            lp, lins, ld = out[-1]
            if lp + ld == p:
                if lins is None:
                    lins = ins
                elif ins is not None:
                    lins = lins + ins
                out[-1] = (lp, lins, ld + d)
                continue
        out.append((p, ins, d))
    return out


def _op_of(sites: list[_Site]) -> list[Any]:
    """The normalized op of a list of sites (inserted lists copied: results never alias)."""
    out: list[Any] = []
    at = 0
    for p, ins, d in sites:
        if ins is None and not d:
            continue
        if p > at:
            out.append(p - at)
        if ins is not None:
            out.append(list(ins) if type(ins) is list else ins)
        if d:
            out.append(-d)
        at = p + d
    return out


def apply_index_edit(doc: Document, node: int, edit: list[Any]) -> None:
    """Apply an index edit (``ot`` format) to a text or list node as local CRDT edits.

    Raises InvalidOperation (before changing anything) if the edit does not fit the node.
    """
    ot.check(edit)
    seq = doc.sequence(node)
    length = len(seq)
    if ot.base_length(edit) > length:
        raise InvalidOperation(f"edit spans {ot.base_length(edit)} elements, node has {length}")
    for component in edit:
        if isinstance(component, str) != seq.is_text and not isinstance(component, int):
            raise InvalidOperation("insert of the wrong kind for this node")
    pos = 0
    for component in edit:
        if isinstance(component, int):
            if component > 0:
                pos += component
            else:
                doc.delete(node, pos, -component)
        else:
            doc.insert(node, pos, component)
            pos += len(component)


@dataclass(frozen=True, slots=True)
class Anchor:
    """A position that sticks to an element: ``replica:seq`` of it, or the start/end.

    ``assoc="after"``: the position just after the element (a caret after the character typed);
    ``"before"``: just before it. ``replica == 0`` means the start (``seq == 0``) or the end
    (``seq == 1``) of the sequence.
    """

    replica: int
    seq: int
    assoc: Literal["before", "after"]


START = Anchor(0, 0, "after")
END = Anchor(0, 1, "before")


def anchor_at(
    doc: Document, node: int, pos: int, assoc: Literal["before", "after"] = "after"
) -> Anchor:
    """An anchor for index ``pos`` of a text/list node.

    ``after``: stick to the element before ``pos`` (a caret after the last character typed);
    ``before``: stick to the element at ``pos``.
    """
    seq = doc.sequence(node)
    if not 0 <= pos <= len(seq):
        raise InvalidOperation(f"position {pos} out of range for length {len(seq)}")
    if assoc == "after":
        if pos == 0:
            return START
        pid = seq.id_at(pos - 1)
    else:
        if pos == len(seq):
            return END
        pid = seq.id_at(pos)
    return Anchor(doc.replica_of(pid & CLIENT_MASK), pid >> CLIENT_BITS, assoc)


def resolve_anchor(doc: Document, node: int, anchor: Anchor) -> int:
    """The current index of ``anchor`` (an element deleted since: where it would have been)."""
    seq = doc.sequence(node)
    if anchor.replica == 0:
        return 0 if anchor.seq == 0 else len(seq)
    client = doc.known_client(anchor.replica)
    pid = NO_ID if client is None else pack(client, anchor.seq)
    try:
        pos, visible = seq.position_of(pid)
    except KeyError:
        raise InvalidOperation("anchor names an element this node does not have") from None
    if anchor.assoc == "after" and visible:
        return pos + 1
    return pos
