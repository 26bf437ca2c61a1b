"""Undo and redo of one text node of a thin client that never resurrect or duplicate text.

The spec is ``docs/protocol.md``, T11; the JavaScript twin is ``web/src/undo.js`` (same
algorithm, same names in snake case). Every code point of the local text has a client-local
identity; our records carry the text and identities they insert and delete.

The manager keeps a log of the node's changes in *server order*: what the server applied
(ours and others'), then our unacknowledged changes. Our records carry their text
(``thin_undo_ops``), so they invert without the document. A remote op goes into the log just
before our unacknowledged records, which are rebased over it like the thin client rebases its
in-flight and pending ops: a record is our edit *as the server applies it*, so text another
client deleted concurrently is no longer "ours to bring back". Rebasing record by record can
order a tie otherwise than the thin client (a batch whole): the log then keeps its own layout of
the identities (``_log_ids``), and a local edit enters it by identity (``relayout``).

An undo step is a group of our records (typing within ``group_s`` is one step); undoing it folds
the log from its first record (``thin_undo_log``): invert each member and compose it in, rebase
over every other record. Crossing a *restore* (a remote whose ``edit_id`` starts ``restore-``; a
catch-up or a snapshot, which cannot say what they hold) drops the re-inserts folded so far. The
result is placed on the text by identity (``retarget``): never a character that is there, or dead.
An unacknowledged undo/redo of ours that re-inserted text it may no longer (a restore or a
concurrent delete came first on the server) has those identities die, and one compensating delete
takes them wherever they are (``settle``; ``thin_undo_ids``: the same characters under new
identities). ``adopt_restore`` makes a restore this client asked for (REST) one undo step. Revivals
(``thin_undo_revive``): what a batch of ours deleted gets the server's name at its ack (``acked``);
an undo/redo batch names what it brings back (``marks``: the edit's ``revive``) and the room leaves
out what is no longer ours to bring back (``ack.dropped``).

The state calls ``local``/``remote``/``drop_inflight``/``settle``/``marks``/``acked``
(``ThinDocState.observers``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cowrite import protocol as p
from cowrite.client.thin_undo_ids import carry_dead, inherit_dead
from cowrite.client.thin_undo_log import Group, Record, fold, index_of
from cowrite.client.thin_undo_ops import (
    Id,
    Rich,
    apply_ids,
    compose,
    from_plain,
    inserted_ids,
    invert,
    is_noop,
    relayout,
    retarget,
    to_plain,
    transform,
)
from cowrite.client.thin_undo_revive import (
    Deleted,
    batch_op,
    dead_runs,
    deletes,
    lost_revivals,
    record_deleted,
    reinserted,
    reinserts,
    revive_runs,
)
from cowrite.engine import InvalidOperation, ot

RESTORE_EDIT_PREFIX = "restore-"
KEEP_RESTORES = 8
LOG_SOFT_MAX = 5000


def is_restore_edit(edit_id: str | None) -> bool:
    """True for the broadcast of a REST restore (``server/restore.py`` names its batches so)."""
    return bool(edit_id) and str(edit_id).startswith(RESTORE_EDIT_PREFIX)


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
        self._ids: list[Id] | None = None
        """The identity of each code point of the local text (None: number it afresh)."""
        self._log_ids: list[Id] | None = None
        """The identities as the log lays the text out after its last record, when that differs
        from the text (a tie rebased otherwise); None: the same as ``_ids``."""
        self._next_id = 1
        self._dead: set[int] = set()
        """Identities no undo/redo may re-insert any more (a correction took them back)."""
        self._intent: Rich | None = None
        self._sweep = False
        self._barrier: tuple[int, int, int] | None = None
        """The last snapshot that came while a batch of ours was in flight: (gen, first, end)
        (the identities it gave what it inserts)."""
        self._deleted: Deleted = Deleted()
        """identity -> (edit_id, index): the server's name for a character a batch of ours
        deleted (``thin_undo_revive``): an undo/redo bringing it back says so (``revive``)."""
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
        self._ids = None  # the text may change without us: number it afresh
        self._log_ids = None
        self._dead = set()
        self._deleted = Deleted()

    # ------------------------------------------------------- observer of the ThinDocState

    def local(self, node: str, op: ot.Op, before: Any) -> None:
        """A local edit of ``node``: ``op`` (normalized) applies to ``before``."""
        if node != self.node or not isinstance(before, str):
            return
        ids = self._ids_for(len(before))
        # an undo/redo re-inserts its characters under their identities; anything else is new
        intent = iter(
            inserted_ids(self._intent)
            if self._intent is not None and to_plain(self._intent) == op
            else ()
        )
        rich = from_plain(
            op, before, lambda a, b: ids[a:b], lambda: next(intent, None) or self._new_id()
        )
        if is_noop(rich):
            return
        # the record goes into the log in the log's own layout (by identity)
        moved = relayout(rich, ids, self._log_ids) if self._log_ids is not None else None
        if moved is None:
            self._log_ids = None
        mine = rich if moved is None else moved
        self._ids = apply_ids(ids, rich, self._new_id, in_place=True)
        if moved is not None and self._log_ids is not None:
            apply_ids(self._log_ids, moved, self._new_id, in_place=True)
        kind = self._doing or "edit"
        gen = self.state._edits
        last = self.log[-1] if self.log else None
        rec = Record(mine, True, gen, kind, of=self._of, source=self._source)
        if kind == "edit":
            self.redo_stack.clear()
            top = self.undo_stack[-1] if self.undo_stack else None
            t = self.clock()
            if top is not None and top.open and t - top.at <= self.group_s:
                top.at = t
                if last is not None and last.own and last.gen == gen and top.records[-1] is last:
                    last.op = compose(last.op, mine)  # same batch, next to it: one record
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

    def _batch(self, batch: Any, need: Callable[[Any], bool], loose: bool = False) -> Rich | None:
        """Our records of ``batch`` (generation ``state._edits - 1``) composed as its op names
        its characters (``batch_op``), or None."""
        payload = batch.ops.get(("seq", self.node, None))
        if payload is None:
            return None
        base = self.state._server_value(self.node)
        return batch_op(self.log, self.state._edits - 1, payload, need, base, loose)

    def marks(self, batch: Any) -> list[p.Revive]:
        """``batch`` is sent: the runs of the code points it inserts that bring back what a
        batch of ours deleted (the edit's ``revive``)."""
        c = self._batch(batch, reinserts, loose=True)
        again = reinserted(self.log, self.state._edits - 1)
        return [] if c is None else revive_runs(c, self.node, batch.edit_id, self._deleted, again)

    def withdrawals(self, batch: Any) -> list[p.Dropped]:
        """What ``batch`` (sent again) inserts that a correction of ours already takes back
        (dead identities): withdrawn (the edit's ``withdraw``), so the room never shows it."""
        c = self._batch(batch, reinserts) if self._dead else None
        return [] if c is None else dead_runs(c, self.node, self._dead)

    def acked(self, batch: Any) -> None:
        """The in-flight ``batch`` is applied (before the thin client settles it): what it
        deleted gets its server names (our records of it delete what the server's op did)."""
        c = self._batch(batch, deletes)
        if c is not None:
            record_deleted(c, batch.edit_id, self._deleted)

    def drop_inflight(self) -> None:
        """The thin client drops its in-flight batch (refused, or applied before the snapshot we
        hold), called before anything changes: its records leave the log and the steps, and
        our later records are rebased over their inverse, as the thin client rebases ``P``."""
        batch = self.state.inflight
        if batch is None:
            return
        gen = int(self.state._edits) - 1
        slot = ("seq", self.node, None)
        mine = self.state.pending.get(slot)
        gone = [r for r in self.log if r.own and r.gen == gen]
        c: Rich | None = None
        for r in gone:
            c = r.op if c is None else compose(c, r.op)
        barrier, self._barrier = self._barrier, None
        # a snapshot that came while the batch was in flight may hold it
        if barrier is not None and barrier[0] == gen and slot in batch.ops and c is not None:
            text = self.state.value(self.node, "text")
            if self._ids is not None and inherit_dead(
                c, batch.ops[slot], mine, self._ids, text, self._dead, barrier[1:]
            ):
                self._sweep = True
        if slot in batch.ops and self._ids is not None:
            # the identities follow the thin client's own undo of the batch
            undo = ot.invert(batch.ops[slot], self.state._server_value(self.node))
            if mine is not None:
                undo = ot.transform(undo, mine, "right")
            # what it brings back is the server's now (the snapshot's, or never deleted): new
            # characters to us; a later re-insert of ours of the same text loses its right below
            self._ids = apply_ids(self._ids, undo, self._new_id, in_place=True)
        self._log_ids = None
        if c is None:
            return
        inv = invert(c)
        for r in self.log:
            if r.own and r.gen > gen:
                plain = to_plain(r.op)
                r.op = transform(r.op, to_plain(inv), "left")
                inv = transform(inv, plain, "right")
        ids = {id(r) for r in gone}
        self.log = [r for r in self.log if id(r) not in ids]
        for group in (*self.undo_stack, *self.redo_stack):
            group.records = [r for r in group.records if id(r) not in ids]
        self._fix = [r for r in self._fix if id(r) not in ids]
        for r in self.log:
            mine_later = r.own and r.gen > gen and r.kind in ("undo", "redo")
            if mine_later and inserted_ids(r.op) and all(x is not r for x in self._fix):
                self._fix.append(r)

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
        local = self._as_local(r) if self._ids is not None else None
        # what r inserts gets the same identities in the log (a restore's record) and the text;
        # what a restore deletes keeps its identities when r applies to our text as it is
        # (nothing of ours outstanding), else gets identities of its own (undoing an adopted
        # restore brings that back as new characters)
        first_id = self._next_id
        self._next_id += sum(len(c) for c in r if isinstance(c, str))

        def counter() -> Callable[[], Id]:
            k = iter(range(first_id, self._next_id))
            return lambda: next(k)

        op0: Any = r
        if restore:
            slot = ("seq", self.node, None)
            batch = self.state.inflight
            own = (batch is not None and slot in batch.ops) or slot in self.state.pending
            ids = self._ids if local is not None and not own else None

            def ids_of(a: int, b: int) -> list[Id]:
                return ids[a:b] if ids is not None else [self._new_id() for _ in range(a, b)]

            op0 = from_plain(r, before, ids_of, counter())
        rec = Record(op0, False, -1, "remote", restore, meta.get("version"))
        if meta.get("barrier") and self.state.inflight is not None:
            # a snapshot while our batch is in flight may hold it (drop_inflight, _inherit)
            self._barrier = (int(self.state._edits) - 1, first_id, self._next_id)
        # our unsent batch re-inserts what it deletes itself, and r deletes that too: the room
        # will leave the re-insert out, so it is dead now (settle takes it back)
        slot = ("seq", self.node, None)
        inflight = self.state.inflight
        if (
            slot in self.state.pending
            and self._ids is not None
            and (inflight is None or slot not in inflight.ops)
        ):
            c = batch_op(
                self.log, self.state._edits, self.state.pending[slot], reinserts, before, True
            )
            for id_ in lost_revivals(c, r) if c is not None else ():
                if id_ not in self._dead:
                    self._dead.add(id_)
                    self._sweep = True
        carry: dict[int, int] = {}
        for mine in self.log[i:]:
            plain = to_plain(mine.op)
            rebased = transform(mine.op, r, "left")
            if self._dead and mine.kind == "fix":
                carry_dead(mine.op, rebased, r, self._dead, carry)
            mine.op = rebased
            r = ot.transform(r, plain, "right")
        self.log.insert(i, rec)
        if local is not None and self._ids is not None:

            def ids_of_r() -> Callable[[], Id]:
                # the same identities for what r inserts in the text and in the log's layout
                fresh = counter()
                k = iter(range(10**18))
                return lambda: carry.get(next(k), fresh())

            log_ids = self._log_ids
            # the layouts part only where r lands otherwise in the log than in the text (a tie)
            if log_ids is None and i < len(self.log) - 1 and local != r:
                log_ids = list(self._ids)
            self._ids = apply_ids(self._ids, local, ids_of_r(), in_place=True)
            if log_ids is not None:
                apply_ids(log_ids, r, ids_of_r(), in_place=True)
            self._log_ids = log_ids if log_ids != self._ids else None
            if carry:
                self._sweep = True
        else:
            self._log_ids = None
        if restore and rec.version is not None:
            for lo, hi, group in self._claims:
                if lo <= rec.version <= hi:
                    group.records.append(rec)
        for mine in self.log[i + 1 :]:
            if mine.kind in ("undo", "redo") and inserted_ids(mine.op):
                if restore:
                    mine.tainted = True  # a restore wins over our undo/redo not applied yet
                if mine not in self._fix:
                    self._fix.append(mine)

    def settle(self) -> list[UndoChange]:
        """After a server message: an unacknowledged undo/redo of ours that re-inserted text
        it no longer may (a restore came first, or another client deleted that text
        concurrently with the edit we undid) has the extra characters deleted again, a
        compensating local edit. Their identities are dead: wherever a later step of ours moved
        or re-inserted them they go, and no undo/redo brings them back."""
        changes: list[UndoChange] = []
        more = False
        while self._fix:
            rec = self._fix.pop(0)
            at = index_of(self.log, rec)
            if at < 0 or rec.source is None:
                continue
            legit = set() if rec.tainted else set(inserted_ids(self._inverse(rec.source, at)))
            for i in inserted_ids(rec.op):
                if i not in legit and i not in self._dead:
                    self._dead.add(i)
                    more = True
        if not more and not self._sweep:
            return changes
        self._sweep = False
        before = self.state.value(self.node, "text")
        edit: list[int] = []
        run = 0
        for ident in self._ids_for(len(before)):
            if ident is not None and ident in self._dead:
                if run:
                    edit.append(run)
                    run = 0
                if edit and edit[-1] < 0:
                    edit[-1] -= 1
                else:
                    edit.append(-1)
            else:
                run += 1
        if not edit:
            return changes
        self._doing = "fix"
        try:
            self.state.local_edit(self.node, edit)
        except InvalidOperation:
            self.reset()  # see _step
            self.failures += 1
            return changes
        finally:
            self._doing = None
        self.compensations += 1
        changes.append(UndoChange(self.node, list(edit), before))
        return changes

    # --------------------------------------------------------------------- internals

    def _first_unacked(self) -> int:
        return int(self.state._edits) - (1 if self.state.inflight is not None else 0)

    def _step(self, stack: list[Group], kind: str) -> UndoChange | None:
        self.close()
        while stack:
            group = stack.pop()
            op = self._inverse(group)
            if op is None:
                continue
            # on the text as it is, by identity; never re-insert a character that is there, or
            # one a correction took back
            before = self.state.value(self.node, "text")
            ids = self._ids_for(len(before))
            want = set(inserted_ids(op))
            present: set[Id] = {i for i in ids if i in want} if want else set()

            def keep(i: Id, present: set[Id] = present) -> bool:
                if i is None:
                    return True
                if i in present or i in self._dead:
                    return False
                present.add(i)
                return True

            op = retarget(op, before, ids, keep)
            if is_noop(op):
                continue
            edit = to_plain(op)
            self._doing = kind
            self._of = group.records[0] if len(group.records) == 1 else None
            self._source = group
            self._intent = op
            try:
                self.apply(edit)
            except InvalidOperation:
                self.reset()  # our log no longer matches the text (a bug): forget it
                self.failures += 1
                return None
            finally:
                self._doing = None
                self._of = self._source = None
                self._intent = None
            return UndoChange(self.node, edit, before)
        return None

    def _inverse(self, group: Group, end: int | None = None) -> Rich | None:
        """The op undoing ``group`` now (or just before log record ``end``): ``fold``."""
        return fold(self.log, group, end)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _as_local(self, r: ot.Op) -> ot.Op:
        """Server op ``r`` as the thin client applies it to the local text: rebased over its
        in-flight and pending ops of the node as they stand (not our records one by one: at a
        tie the two can differ, and the identities must follow the text exactly)."""
        slot = ("seq", self.node, None)
        batch = self.state.inflight
        if batch is not None and slot in batch.ops:
            r = ot.transform(r, batch.ops[slot], "right")
        if slot in self.state.pending:
            r = ot.transform(r, self.state.pending[slot], "right")
        return r

    def _ids_for(self, n: int) -> list[Id]:
        """The identities of the local text (``n`` code points), afresh if we lost track."""
        if self._ids is None or len(self._ids) != n:
            self._log_ids = None
            self._ids = [self._new_id() for _ in range(n)]
        return self._ids

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
