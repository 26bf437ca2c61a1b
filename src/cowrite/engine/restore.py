"""Restore a past version as ordinary edits: what takes a document back to its value at a version.

Nothing is rewritten: a restore is new edits on top of the current state, so it merges with
concurrent edits like any other and every replica sees it as an ordinary change. Sequences get
index edits (elements present now and then stay, so cursors and concurrent edits keep their
place), map keys and registers writes or deletes, counters an add of the difference.

A nested node that must come back is created anew (``NewNode`` as the written value or list
element) and filled in the *next* batch: its id is only known once the batch that creates it has
been applied. So ``restore_batches`` is a generator: apply each batch it yields to the document
before asking for the next one (``apply_restore_edits`` does that for a document on its own; the
server applies them through its room, as a server edit, so thin clients see them live).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from cowrite.engine.document import Document, MapState
from cowrite.engine.history import _check_version, _View
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK
from cowrite.engine.ops import DELETED, NewNode, NodeKind, NodeRef
from cowrite.engine.rebase import apply_index_edit
from cowrite.engine.sequence import Gap


class SequenceEdit(NamedTuple):
    """An index edit (``ot`` format) of a text or list node; list inserts may hold ``NewNode``."""

    node: int
    edit: list[Any]


class KeyWrite(NamedTuple):
    """Write a map key (or, key None, a register): a JSON value or ``NewNode(kind)``."""

    node: int
    key: str | None
    value: Any


class KeyDelete(NamedTuple):
    """Delete a map key."""

    node: int
    key: str


class CounterAdd(NamedTuple):
    """Add ``amount`` to a counter node."""

    node: int
    amount: int


RestoreEdit = SequenceEdit | KeyWrite | KeyDelete | CounterAdd

_Locator = Callable[[], int]


def restore_batches(doc: Document, version: Mapping[int, int]) -> Iterator[list[RestoreEdit]]:
    """Batches of edits that give ``doc`` the value it had at ``version``.

    Apply each yielded batch to ``doc`` (in order, nothing else in between) before taking the
    next; the generator ends when nothing is left to do (at once if the value is unchanged).
    Raises ``HistoryUnavailable`` if ``doc`` cannot show ``version`` (compacted, or not seen).
    """
    _check_version(doc, version)
    plan = _Plan(doc, version)
    plan.sync_roots()
    while plan.edits:
        edits, fills = plan.edits, plan.fills
        plan.edits, plan.fills = [], []
        yield edits
        for locate, old in fills:
            plan.fill(locate(), old)


def apply_restore_edits(doc: Document, edits: list[RestoreEdit]) -> None:
    """Apply one batch from ``restore_batches`` to ``doc`` as local edits."""
    for e in edits:
        if type(e) is SequenceEdit:
            apply_index_edit(doc, e.node, e.edit)
        elif type(e) is KeyWrite:
            doc.set(e.node, e.key, e.value)
        elif type(e) is KeyDelete:
            doc.set(e.node, e.key, DELETED)
        else:
            assert type(e) is CounterAdd
            doc.add(e.node, e.amount)


def restore(doc: Document, version: Mapping[int, int]) -> int:
    """Give ``doc`` (on its own, no server) the value it had at ``version``; returns the number
    of edits made."""
    n = 0
    for batch in restore_batches(doc, version):
        apply_restore_edits(doc, batch)
        n += len(batch)
    return n


class _Plan:
    """Edits (one batch at a time) turning the current document into its value at a version."""

    def __init__(self, doc: Document, version: Mapping[int, int]) -> None:
        self.doc = doc
        self.then = _View(doc, version)
        self.edits: list[RestoreEdit] = []
        self.fills: list[tuple[_Locator, int]] = []

    def sync_roots(self) -> None:
        now = _View(self.doc, self.doc.version)
        for node in sorted(self.doc.roots):
            self._sync(now, node)

    def _new(self, ref: NodeRef, locate: _Locator) -> NewNode:
        self.fills.append((locate, ref.id))
        return NewNode(ref.kind)

    def _sync(self, now: _View, node: int) -> None:
        """Edits making ``node`` (present now and then) hold its old value."""
        doc = self.doc
        kind = doc.kind_of(node)
        if kind is NodeKind.TEXT or kind is NodeKind.LIST:
            self._sync_sequence(now, node)
        elif kind is NodeKind.MAP:
            state = doc.state_of(node)
            assert isinstance(state, MapState)
            current = {k: r.value for k, r in state.entries.items() if r.value is not DELETED}
            old = {
                k: v
                for k, (_, v) in self.then.lww(node).items()
                if k is not None and v is not DELETED
            }
            for key in sorted(set(current) | set(old)):
                if key not in old:
                    self.edits.append(KeyDelete(node, key))
                    continue
                value, cur = old[key], current.get(key, DELETED)
                if type(value) is NodeRef:
                    if type(cur) is NodeRef and cur.id == value.id:
                        self._sync(now, value.id)
                    else:
                        new = self._new(value, _map_locator(doc, node, key))
                        self.edits.append(KeyWrite(node, key, new))
                elif cur is DELETED or type(cur) is NodeRef or not _same(cur, value):
                    self.edits.append(KeyWrite(node, key, value))
        elif kind is NodeKind.REGISTER:
            entry = self.then.lww(node).get(None)
            value = None if entry is None else entry[1]
            if not _same(doc.node_json(node), value):
                self.edits.append(KeyWrite(node, None, value))
        else:
            amount = self.then.counter(node) - doc.node_json(node)
            if amount:
                self.edits.append(CounterAdd(node, amount))

    def _sync_sequence(self, now: _View, node: int) -> None:
        seq = self.doc.sequence(node)
        then = self.then
        edit: list[Any] = []
        j = 0  # index in the restored sequence
        for item in seq.items():
            if type(item.content) is Gap:  # deleted before the compaction base: in neither
                continue
            client = item.id & CLIENT_MASK
            first = item.id >> CLIENT_BITS
            n = len(item.content)
            in_now = now.visible_mask(client, first, n)
            in_then = then.visible_mask(client, first, n)
            for k in range(n):
                if in_now[k] and in_then[k]:
                    _push(edit, 1)
                    element = item.content[k]
                    if type(element) is NodeRef:
                        self._sync(now, element.id)
                    j += 1
                elif in_now[k]:
                    _push(edit, -1)
                elif in_then[k]:
                    element = item.content[k]
                    if seq.is_text:
                        _push(edit, element)
                    elif type(element) is NodeRef:
                        _push(edit, [self._new(element, _list_locator(self.doc, node, j))])
                    else:
                        _push(edit, [element])
                    j += 1
        while edit and isinstance(edit[-1], int) and edit[-1] > 0:
            edit.pop()
        if edit:
            self.edits.append(SequenceEdit(node, edit))

    def fill(self, new: int, old: int) -> None:
        """Edits giving the fresh node ``new`` the value node ``old`` had then."""
        doc, then = self.doc, self.then
        kind = doc.kind_of(new)
        if kind is NodeKind.TEXT:
            text = then.node_json(old)
            if text:
                self.edits.append(SequenceEdit(new, [text]))
        elif kind is NodeKind.LIST:
            values: list[Any] = []
            for j, (_, element) in enumerate(then.sequence_elements(doc.sequence(old))):
                if type(element) is NodeRef:
                    values.append(self._new(element, _list_locator(doc, new, j)))
                else:
                    values.append(element)
            if values:
                self.edits.append(SequenceEdit(new, [values]))
        elif kind is NodeKind.MAP:
            for key, (_, value) in sorted(then.lww(old).items(), key=lambda kv: str(kv[0])):
                if key is None or value is DELETED:
                    continue
                if type(value) is NodeRef:
                    value = self._new(value, _map_locator(doc, new, key))
                self.edits.append(KeyWrite(new, key, value))
        elif kind is NodeKind.REGISTER:
            value = then.node_json(old)
            if value is not None:
                self.edits.append(KeyWrite(new, None, value))
        else:
            amount = then.counter(old)
            if amount:
                self.edits.append(CounterAdd(new, amount))


def _map_locator(doc: Document, node: int, key: str) -> _Locator:
    def locate() -> int:
        state = doc.state_of(node)
        assert isinstance(state, MapState)
        ref = state.entries[key].value
        assert type(ref) is NodeRef
        return ref.id

    return locate


def _list_locator(doc: Document, node: int, index: int) -> _Locator:
    return lambda: doc.sequence(node).id_at(index)


def _push(edit: list[Any], component: Any) -> None:
    """Append an index-edit component, merging it with the last one when they combine."""
    if edit:
        last = edit[-1]
        if isinstance(component, int) and isinstance(last, int) and (component > 0) == (last > 0):
            edit[-1] = last + component
            return
        if isinstance(component, str) and isinstance(last, str):
            edit[-1] = last + component
            return
        if isinstance(component, list) and isinstance(last, list):
            last.extend(component)
            return
    edit.append(component)


def _same(a: Any, b: Any) -> bool:
    """JSON equality (``1 != True``, key order ignored)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
