"""Revivals: what an undo/redo brings back, inserted at most once (``docs/protocol.md``, T11
"Revivals").

A thin client's undo manager names each character a batch of its own deleted: that batch's
``edit_id`` and the index among the code points its op of the node deleted *as the room applied
it* (the client knows that form at its ack). An undo/redo batch says which of the code points it
inserts bring such characters back (``edit.revive``). The room leaves out (``ack.dropped``) a
revival that is no longer the sender's to make:

* a restore came after the version the edit was made at: its sender had not seen it (the
  restore decided the text, and may have brought that text back itself). A client drops the
  re-inserts of a fold that crosses a restore it has seen (unless that restore was undone, an
  adopted one); this is the race it cannot see, judged where the order is known, so an undo
  sent before its client saw the restore duplicates nothing;
* the sender withdraws it (``edit.withdraw``: at a resend, its correction of it is queued);
* that character was revived already (a second undo, a repeated redo): at most once;
* the batch revives what it deletes itself (an undo and a redo composed, indexed in the op as
  sent) and the rebase took that delete away: someone else deleted the character first (their
  undo is the one to bring it back), or a restore came in between.
  A client names a re-insert it has no name for by its own batch and an index past its own
  deletes: nothing can take that delete away, so only the restore rule judges it.

What cannot be judged is inserted as before (a plain insert): a batch the room does not remember
(refused, or older than the remembered edit keys), or one whose versions since are no longer in
the log.

The revived names are durable with the document: the stored update of the batch that revived
them carries them (``encode``, ``edit_keys.wrap_update``'s ``extra``), and a room replaying its
log (a load after an unload or a restart) or merging another instance's update learns them again
(``learn``). Bound: a name is only ever consulted while the room remembers the edit that deleted
it (``recent``: the ``remembered_edits`` newest edit keys, rebuilt from the log since the last
snapshot at a load); a revival naming an edit it no longer remembers is a plain insert whatever
the set says. So only names of remembered edits are learned, and at most ``REMEMBERED`` are kept
(the oldest go first). A name whose deleting edit was folded into a snapshot before a load is
judged a plain insert after it (the edit key is no longer in ``recent``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec

from cowrite import protocol as p
from cowrite.engine import EditLog, ot
from cowrite.rooms.state import Origin

RESTORE_CLIENT = "server"
"""The client id REST restores apply their batches as (``server/restore.py``)."""
RESTORE_PREFIX = "restore-"
"""The prefix of a REST restore's edit ids (thin clients recognise restores by it too)."""
REMEMBERED = 200_000
"""Revived names kept (the oldest are forgotten first)."""

Name = tuple[str, str, str, int]
"""(sender's key client, deleting edit id, node, index among its deleted code points)."""
Plan = list[tuple[int, p.EditOp, Any]]
Run = tuple[str, str, int, int]
"""Consecutive revived names of one sender: (deleting edit id, node, first index, count)."""
_runs_decoder = msgspec.json.Decoder(list[tuple[str, str, int, int]])


class Revivals:
    """One room's judge of revivals; ``judge`` is called with a batch's plan before it applies."""

    def __init__(self, remembered: int = REMEMBERED) -> None:
        self._done: OrderedDict[Name, None] = OrderedDict()
        self._remembered = remembered

    def judge(
        self,
        key_client: str,
        msg: p.Edit,
        plan: Plan,
        *,
        log: EditLog,
        recent: Mapping[tuple[str, str], tuple[int, str]],
        origins: Mapping[int, Origin],
    ) -> tuple[Plan, list[p.Dropped], list[Run]]:
        """``plan`` (``ThinEdits._plan``'s: node, wire op, rebased edit) without the inserted
        code points ``msg.revive`` names that may not be inserted, those as ``dropped`` runs,
        and the names it revives (to store with the batch: ``encode``). The revivals it keeps
        are remembered (call it only for a batch that applies)."""
        runs: dict[str, list[p.Revive]] = {}
        for run in msg.revive or ():
            runs.setdefault(run.node, []).append(run)
        withdrawn: dict[str, list[p.Dropped]] = {}
        for w in msg.withdraw or ():
            withdrawn.setdefault(w.node, []).append(w)
        if not runs and not withdrawn:
            return plan, [], []
        # a restore the sender had not seen when it made the edit takes every revival: the
        # client's fold drops re-inserts across a restore; this is the race it cannot see
        restored = _restored(origins, msg.version, log.version)
        out: Plan = []
        dropped: list[p.Dropped] = []
        revived: list[Run] = []
        for node, op, edit in plan:
            mine = runs.get(op.node, []) if isinstance(op, p.SeqEdit) else []
            back = withdrawn.get(op.node, []) if isinstance(op, p.SeqEdit) else []
            if not (mine or back) or not all(isinstance(c, (int, str)) for c in edit):
                out.append((node, op, edit))
                continue
            assert isinstance(op, p.SeqEdit)
            count = sum(len(c) for c in edit if isinstance(c, str))
            lost: set[int] | None = None
            leave: set[int] = set()
            for w in back:  # the sender takes them back
                if w.at >= 0 and w.n >= 1 and w.at + w.n <= count:
                    leave.update(range(w.at, w.at + w.n))
            for run in mine:
                if run.at + run.n > count:
                    continue  # names code points the op does not insert: nothing to judge
                if run.edit == msg.edit_id:
                    if lost is None:
                        others = [e for _, n, e in log.since(msg.version) if n == node]
                        lost = lost_deletes(ot.normalize(op.edit), others)
                    leave.update(run.at + j for j in range(run.n) if restored or run.of + j in lost)
                    continue
                if (key_client, run.edit) not in recent:
                    continue  # refused, or too old to tell: inserted (as before)
                for j in range(run.n):
                    name = (key_client, run.edit, run.node, run.of + j)
                    if run.at + j in leave:
                        continue  # withdrawn: not revived
                    if restored or name in self._done:
                        leave.add(run.at + j)
                    else:
                        self._remember(name)
                        _add(revived, run.edit, run.node, run.of + j)
            if leave:
                edit = without_inserted(edit, leave)
                dropped.extend(_runs(op.node, sorted(leave)))
            out.append((node, op, edit))
        return out, dropped, revived

    def learn(
        self, key_client: str, runs: Iterable[Run], recent: Mapping[tuple[str, str], Any]
    ) -> None:
        """Names a stored batch of ``key_client`` revived (a replayed or merged update): those of
        edits the room remembers (``recent``), the only ones it ever consults."""
        for edit, node, of, n in runs:
            if (key_client, edit) in recent:
                for j in range(min(n, self._remembered)):
                    self._remember((key_client, edit, node, of + j))

    def _remember(self, name: Name) -> None:
        self._done[name] = None
        if len(self._done) > self._remembered:
            self._done.popitem(last=False)


def encode(runs: list[Run]) -> bytes:
    """The names a batch revived, as stored with it (``wrap_update``'s ``extra``)."""
    return msgspec.json.encode(runs) if runs else b""


def decode(data: bytes) -> list[Run]:
    """``encode``'s runs; none for bytes that are not (a damaged update changes no judgement)."""
    if not data:
        return []
    try:
        runs = _runs_decoder.decode(data)
    except msgspec.DecodeError:
        return []
    return [r for r in runs if r[2] >= 0 and r[3] >= 1]


def _add(runs: list[Run], edit: str, node: str, of: int) -> None:
    if runs:
        e, nd, start, n = runs[-1]
        if e == edit and nd == node and start + n == of:
            runs[-1] = (e, nd, start, n + 1)
            return
    runs.append((edit, node, of, 1))


def _restored(origins: Mapping[int, Origin], after: int, now: int) -> bool:
    """Whether a REST restore was applied after version ``after`` (up to ``now``: the versions
    an edit made at ``after`` is rebased over, all logged)."""
    for version in range(after + 1, now + 1):
        origin = origins.get(version)
        if (
            origin is not None
            and origin.client == RESTORE_CLIENT
            and origin.edit.startswith(RESTORE_PREFIX)
        ):
            return True
    return False


def lost_deletes(op: list[Any], others: Iterable[list[Any]]) -> set[int]:
    """The indices (among the code points normalized ``op`` deletes) of the deletes that
    rebasing ``op`` over ``others`` (applied one after another from its base) takes away:
    someone deleted that character first."""
    at: list[tuple[int, int]] = []  # (index, base position) of each delete still standing
    pos = 0
    for c in op:
        if isinstance(c, int):
            if c > 0:
                pos += c
            else:
                for _ in range(-c):
                    at.append((len(at), pos))
                    pos += 1
    lost: set[int] = set()
    for other in others:
        nxt: list[tuple[int, int]] = []
        i = 0
        base = 0
        shift = 0
        for c in other:
            if not isinstance(c, int):
                shift += len(c)
                continue
            n = abs(c)
            while i < len(at) and at[i][1] < base + n:
                index, q = at[i]
                i += 1
                if c < 0:
                    lost.add(index)
                else:
                    nxt.append((index, q + shift))
            base += n
            if c < 0:
                shift -= n
        nxt.extend((index, q + shift) for index, q in at[i:])
        at = nxt
    return lost


def without_inserted(edit: list[Any], indices: set[int]) -> list[Any]:
    """Text op ``edit`` without the code points it inserts at ``indices`` (counted in the order
    it inserts them)."""
    out: list[Any] = []
    k = 0
    for c in edit:
        if isinstance(c, str):
            kept = "".join(ch for j, ch in enumerate(c, k) if j not in indices)
            k += len(c)
            if kept:
                out.append(kept)
        else:
            out.append(c)
    return ot.normalize(out)


def _runs(node: str, indices: list[int]) -> list[p.Dropped]:
    out: list[p.Dropped] = []
    for k in indices:
        if out and out[-1].at + out[-1].n == k:
            out[-1].n += 1
        else:
            out.append(p.Dropped(node=node, at=k, n=1))
    return out
