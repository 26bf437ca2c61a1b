"""Undo and redo of one text node of a thin client that never resurrect or duplicate text.

The spec is ``docs/protocol.md``, "Undo in thin clients"; the JavaScript twin is
``web/src/undo.js`` (same algorithm, same names in snake case).

The manager keeps a log of the node's changes in *server order*: what the server applied
(ours and others'), then our unacknowledged changes. Our records carry their text
(``thin_undo_ops``), so they invert without the document. A remote op goes into the log just
before our unacknowledged records, which are rebased over it like the thin client rebases its
in-flight and pending ops: a record is our edit *as the server applies it*, so text another
client deleted concurrently is no longer "ours to bring back".

An undo step is a group of our records (typing within ``group_s`` is one step); undoing it folds
the log from its first record: invert each member and compose it in, rebase over every other
record. Crossing a *restore* (a remote whose ``edit_id`` starts ``restore-``; a catch-up or a
snapshot, which cannot say what they hold) drops the re-inserts folded so far. An
unacknowledged undo/redo of ours that re-inserted text it may no longer (a restore or a
concurrent delete came first on the server) gets a compensating delete (``settle``).
``adopt_restore`` makes a restore this client asked for (REST) one undo step.

The state calls ``local``/``remote``/``reset``/``settle`` (``ThinDocState.observers``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cowrite.client.thin_undo_ops import (
    Rich,
    compose,
    extra_inserts,
    from_plain,
    invert,
    is_noop,
    to_plain,
    transform,
    without_inserts,
)
from cowrite.engine import InvalidOperation, ot

RESTORE_EDIT_PREFIX = "restore-"
KEEP_RESTORES = 8
LOG_SOFT_MAX = 5000


def is_restore_edit(edit_id: str | None) -> bool:
    """True for the broadcast of a REST restore (``server/restore.py`` names its batches so)."""
    return bool(edit_id) and str(edit_id).startswith(RESTORE_EDIT_PREFIX)


@dataclass(eq=False)
class Record:
    """One change of the node in the log (``op``: invertible for ours and restores)."""

    op: Any
    own: bool
    gen: int
    kind: str  # edit | undo | redo | fix | remote
    restore: bool = False
    version: int | None = None
    of: Record | None = None
    source: Group | None = None
    tainted: bool = False


@dataclass(eq=False)
class Group:
    """One undo (or redo) step: records of the log."""

    records: list[Record] = field(default_factory=list)
    at: float = 0.0
    open: bool = False
    stripped: bool = False


@dataclass(frozen=True, slots=True)
class UndoChange:
    """What an undo/redo/settle did: ``edit`` (plain op) applied to the text ``before``."""

    node: str
    edit: ot.Op
    before: str


class UndoManager:
    """Undo/redo of the client's own edits of text node ``node`` of ``state`` (a
    ``ThinDocState``). ``apply(op)`` makes a local edit (default ``state.local_edit``; a session
    passes one that also sends it)."""

    def __init__(
        self,
        state: Any,
        node: str,
        *,
        apply: Callable[[ot.Op], None] | None = None,
        group_s: float = 0.5,
        limit: int = 200,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = state
        self.node = node
        self.apply = apply or (lambda op: state.local_edit(node, op))
        self.group_s = group_s
        self.limit = limit
        self.clock = clock
        self.log: list[Record] = []
        self.undo_stack: list[Group] = []
        self.redo_stack: list[Group] = []
        self.compensations = 0
        """Compensating deletes made (our undo/redo raced a restore or a concurrent delete)."""
        self.failures = 0
        """Times the log no longer fit the text and was dropped (a bug if ever > 0)."""
        self._doing: str | None = None
        self._of: Record | None = None
        self._source: Group | None = None
        self._claims: list[tuple[int, int, Group]] = []
        self._fix: list[Record] = []
        state.observers.append(self)

    def detach(self) -> None:
        if self in self.state.observers:
            self.state.observers.remove(self)
        self.reset()

    @property
    def can_undo(self) -> bool:
        return bool(self.undo_stack)

    @property
    def can_redo(self) -> bool:
        return bool(self.redo_stack)

    def undo(self) -> UndoChange | None:
        """Undo our last step; the change made, or None when there is nothing (left) to undo."""
        return self._step(self.undo_stack, "undo")

    def redo(self) -> UndoChange | None:
        return self._step(self.redo_stack, "redo")

    def close(self) -> None:
        """Start a new undo step at the next edit."""
        if self.undo_stack:
            self.undo_stack[-1].open = False

    def adopt_restore(self, version: int, edits: int = 1) -> None:
        """The restore this client asked for (REST answer ``version``, ``edits``) is one undo
        step: the remote batches at versions ``version-edits+1..version``, come or to come."""
        if edits < 1:
            return
        lo, hi = version - edits + 1, version
        group = Group(at=self.clock())
        group.records = [
            r for r in self.log if r.restore and r.version is not None and lo <= r.version <= hi
        ]
        self._claims = [*self._claims[-(KEEP_RESTORES - 1) :], (lo, hi, group)]
        self.close()
        self._push(self.undo_stack, group)
        self.redo_stack.clear()

    def reset(self) -> None:
        self.log = []
        self.undo_stack = []
        self.redo_stack = []
        self._claims = []
        self._fix = []

    # ------------------------------------------------------- observer of the ThinDocState

    def local(self, node: str, op: ot.Op, before: Any) -> None:
        """A local edit of ``node``: ``op`` (normalized) applies to ``before``."""
        if node != self.node or not isinstance(before, str):
            return
        rich = from_plain(op, before)
        if is_noop(rich):
            return
        kind = self._doing or "edit"
        gen = self.state._edits
        last = self.log[-1] if self.log else None
        rec = Record(rich, True, gen, kind, of=self._of, source=self._source)
        if kind == "edit":
            self.redo_stack.clear()
            top = self.undo_stack[-1] if self.undo_stack else None
            t = self.clock()
            if top is not None and top.open and t - top.at <= self.group_s:
                top.at = t
                if last is not None and last.own and last.gen == gen and top.records[-1] is last:
                    last.op = compose(last.op, rich)  # same batch, next to it: one record
                    return
                top.records.append(rec)
            else:
                self._push(self.undo_stack, Group([rec], t, True))
        elif kind == "undo":
            self._push(self.redo_stack, Group([rec]))
        elif kind == "redo":
            self._push(self.undo_stack, Group([rec]))
        self.log.append(rec)
        self._trim()

    def remote(self, node: str, op: ot.Op, before: Any, meta: dict[str, Any]) -> None:
        """A server op of ``node`` (server coordinates, applying to ``before``), seen before
        the thin client rebases it. ``meta``: edit_id and version, or barrier (a catch-up)."""
        if node != self.node or not isinstance(before, str):
            return
        restore = bool(meta.get("barrier")) or is_restore_edit(meta.get("edit_id"))
        first = self._first_unacked()
        i = len(self.log)
        while i > 0 and self.log[i - 1].own and self.log[i - 1].gen >= first:
            i -= 1
        r = ot.normalize(op)
        op0 = from_plain(r, before) if restore else r
        rec = Record(op0, False, -1, "remote", restore, meta.get("version"))
        for mine in self.log[i:]:
            plain = to_plain(mine.op)
            mine.op = transform(mine.op, r, "left")
            r = ot.transform(r, plain, "right")
        self.log.insert(i, rec)
        if restore and rec.version is not None:
            for lo, hi, group in self._claims:
                if lo <= rec.version <= hi:
                    group.records.append(rec)
        for mine in self.log[i + 1 :]:
            if mine.kind in ("undo", "redo") and _inserts(mine.op):
                if restore:
                    mine.tainted = True  # a restore wins over our undo/redo not applied yet
                if mine not in self._fix:
                    self._fix.append(mine)

    def settle(self) -> list[UndoChange]:
        """After a server message: delete again what an unacknowledged undo/redo of ours
        re-inserted without the right to (see the module docstring)."""
        changes: list[UndoChange] = []
        while self._fix:
            rec = self._fix.pop(0)
            at = _index(self.log, rec)
            if at < 0 or rec.source is None:
                continue
            fix = extra_inserts(rec.op, None if rec.tainted else self._inverse(rec.source, at))
            if is_noop(fix):
                continue
            # later steps may move or re-insert the same text (characters are not told apart):
            # they lose their re-inserts too (a lost undo, never a duplicate)
            for group in (*self.undo_stack, *self.redo_stack):
                if any(_index(self.log, r) > at for r in group.records):
                    group.stripped = True
            for later in self.log[at + 1 :]:
                if later.kind in ("undo", "redo") and _inserts(later.op):
                    later.tainted = True
                    if later not in self._fix:
                        self._fix.append(later)
            for later in self.log[at + 1 :]:
                fix = transform(fix, to_plain(later.op), "right")
            if is_noop(fix):
                continue
            edit = to_plain(fix)
            before = self.state.value(self.node, "text")
            self._doing = "fix"
            try:
                self.state.local_edit(self.node, edit)
            except InvalidOperation:
                self.reset()  # see _step
                self.failures += 1
                break
            finally:
                self._doing = None
            self.compensations += 1
            changes.append(UndoChange(self.node, edit, before))
        return changes

    # --------------------------------------------------------------------- internals

    def _first_unacked(self) -> int:
        return int(self.state._edits) - (1 if self.state.inflight is not None else 0)

    def _step(self, stack: list[Group], kind: str) -> UndoChange | None:
        self.close()
        while stack:
            group = stack.pop()
            op = self._inverse(group)
            if op is None or is_noop(op):
                continue
            edit = to_plain(op)
            before = self.state.value(self.node, "text")
            self._doing = kind
            self._of = group.records[0] if len(group.records) == 1 else None
            self._source = group
            try:
                self.apply(edit)
            except InvalidOperation:
                self.reset()  # our log no longer matches the text (a bug): forget it
                self.failures += 1
                return None
            finally:
                self._doing = None
                self._of = self._source = None
            return UndoChange(self.node, edit, before)
        return None

    def _inverse(self, group: Group, end: int | None = None) -> Rich | None:
        """The op undoing ``group`` now (or just before log record ``end``)."""
        if not group.records:
            return None
        end = len(self.log) if end is None else end
        members = {id(r) for r in group.records}
        found = [i for i in (_index(self.log, r) for r in group.records) if 0 <= i < end]
        if not found:
            return None
        # an undo and its redo side by side (still exact inverses) are skipped: rebasing over
        # a deletion and its re-insertion would lose where our text was (a tie)
        kept: list[Record] = []
        for rec in self.log[min(found) : end]:
            prev = kept[-1] if kept else None
            if (
                prev is not None
                and rec.of is prev
                and id(prev) not in members
                and id(rec) not in members
                and invert(prev.op) == rec.op
            ):
                kept.pop()
            else:
                kept.append(rec)
        u: Rich | None = None
        for rec in kept:
            if id(rec) in members:
                inv = invert(rec.op)
                u = inv if u is None else compose(inv, u)
            elif u is not None:
                if rec.restore:
                    u = without_inserts(u)
                u = transform(u, to_plain(rec.op), "left")
        return without_inserts(u) if u is not None and group.stripped else u

    def _push(self, stack: list[Group], group: Group) -> None:
        stack.append(group)
        if len(stack) > self.limit:
            del stack[0]

    def _trim(self) -> None:
        """Forget log records no step needs (see web/src/undo.js ``_trim``)."""
        if len(self.log) < 64:
            return
        first = self._first_unacked()
        index = {id(r): i for i, r in enumerate(self.log)}
        cut = next((i for i, r in enumerate(self.log) if r.own and r.gen >= first), len(self.log))
        groups = [*self.undo_stack, *self.redo_stack]
        groups.extend(r.source for r in self.log[cut:] if r.source is not None)
        for group in groups:
            for r in group.records:
                cut = min(cut, index.get(id(r), cut))
        if len(self.log) < LOG_SOFT_MAX:
            seen = 0
            for i in range(len(self.log) - 1, -1, -1):
                if seen >= KEEP_RESTORES:
                    break
                if self.log[i].restore:
                    seen += 1
                    cut = min(cut, i)
        if cut > 0:
            del self.log[:cut]


def _inserts(op: Rich) -> bool:
    return any(isinstance(c, str) for c in op)


def _index(log: list[Record], rec: Record) -> int:
    for i, r in enumerate(log):
        if r is rec:
            return i
    return -1
