"""Revivals (``docs/protocol.md``, T11 "Revivals"): the names an undo/redo gives the characters
it brings back, shared with the server, and what the thin client does when the server left some
of them out. JavaScript twin: ``web/src/undo_revive.js``.

A character a batch of ours deleted is named ``(edit, of)``: that batch's ``edit_id`` and its
index among the code points its op of the node deleted *as the server applied it* (our records of
it are rebased over everything before it in server order: known at its ack). A batch that deletes
and re-inserts a character itself (an undo and a redo composed) names it by its own ``edit_id``
and the index in its op as sent. An edit says which code points it inserts bring such characters
back (``revive``); the server inserts them only when that is still the sender's to do, and
answers the rest in ``ack.dropped`` (``cowrite.rooms.revivals``). A resend also withdraws what a
correction of ours already takes back (``withdraw``: the batch itself cannot change).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from cowrite import protocol as p
from cowrite.client.thin_undo_ops import Del, Id, Ins, Rich, compose, inserted_ids, to_plain
from cowrite.engine import ot

DELETED_MAX = 100_000
"""Names of deleted characters a manager keeps (the oldest are forgotten)."""

Deleted = OrderedDict[int, tuple[str, int]]
"""identity -> (edit_id, index among the code points that batch deleted)."""


def batch_op(
    log: Sequence[Any],
    gen: int,
    payload: ot.Op,
    need: Callable[[Any], bool],
    base: Any = None,
    loose: bool = False,
) -> Rich | None:
    """Our records of batch generation ``gen`` composed, when one of them is ``need``ed and that
    names the code points of ``payload`` (the batch's op of the node); else None (no names). Our
    unacknowledged records end the log (remote ones go before). When the log's own layout
    differs from the text's (a tie), the composition is laid out otherwise than ``payload``:
    then, given ``base`` (the server text ``payload`` applies to), the same characters are found
    in ``payload`` by code point, in order (``_relabel``): the result is ``payload`` with their
    identities. Names count inserted and deleted code points in ``payload``'s order. (Among
    equal code points the first unused is taken: swapped equal characters may swap names.)
    ``loose`` (for naming re-inserts): the records may also delete characters ``payload`` does
    not (rebased over a snapshot's diff one by one, they can keep a delete the thin client's
    rebase of the batch whole lost): what ``payload`` inserts and deletes is still matched."""
    mine = []
    for rec in reversed(log):
        if not rec.own or rec.gen < gen:
            break
        if rec.gen == gen:
            mine.append(rec)
    if not any(need(rec) for rec in mine):
        return None
    c: Rich | None = None
    for rec in reversed(mine):
        c = rec.op if c is None else compose(c, rec.op)
    if c is None:
        return None
    want = ot.normalize(payload)
    if to_plain(c) == want:
        return c
    return None if base is None else _relabel(c, want, str(base), loose)


def _relabel(c: Rich, op: ot.Op, base: str, loose: bool = False) -> Rich | None:
    """Plain ``op`` (on ``base``) with the identities of the characters invertible ``c`` inserts
    and deletes, matched by code point in order; None unless each is matched exactly once
    (``loose``: ``c`` may delete more than ``op``)."""
    ins: dict[str, deque[Id]] = {}
    dels: dict[str, deque[Id]] = {}
    left = 0
    for comp in c:
        if isinstance(comp, (Ins, Del)):
            into = ins if isinstance(comp, Ins) else dels
            for ch, id_ in zip(comp.text, comp.ids, strict=True):
                into.setdefault(ch, deque()).append(id_)
                left += 1 if into is ins or not loose else 0
    out: Rich = []
    pos = 0
    for part in op:
        if isinstance(part, str):
            chars, into = part, ins
        elif isinstance(part, int) and part > 0:
            out.append(part)
            pos += part
            continue
        elif isinstance(part, int):
            chars, into = base[pos : pos - part], dels
            if len(chars) != -part:
                return None
            pos -= part
        else:
            return None
        ids: list[Id] = []
        for ch in chars:
            queue = into.get(ch)
            if not queue:
                return None
            ids.append(queue.popleft())
            left -= 1 if into is ins or not loose else 0
        out.append(Ins(chars, tuple(ids)) if into is ins else Del(chars, tuple(ids)))
    return out if left == 0 else None


def reinserts(rec: Any) -> bool:
    """Only an undo/redo re-inserts characters under identities they had."""
    return rec.kind in ("undo", "redo")


def deletes(rec: Any) -> bool:
    return any(isinstance(comp, Del) for comp in rec.op)


def revive_runs(
    c: Rich, node: str, edit_id: str, deleted: Deleted, again: set[int] | None = None
) -> list[p.Revive]:
    """The runs of the code points batch op ``c`` inserts that bring back a character a batch of
    ours deleted (this one first: what it deletes itself, indexed in ``c``). A character of
    ``again`` (what its undo/redo records re-insert) with neither name (someone else's batch
    deleted it, or a name we never learned) is named by this batch and an index past its own
    deletes: that names nothing it deleted, so the room judges it by the restore rule alone."""
    own: dict[int, tuple[str, int]] = {}
    of = 0
    for comp in c:
        if isinstance(comp, Del):
            for id_ in comp.ids:
                if id_ is not None:
                    own[id_] = (edit_id, of)
                of += 1
    runs: list[p.Revive] = []
    k = 0
    for comp in c:
        if not isinstance(comp, Ins):
            continue
        for id_ in comp.ids:
            ref = None if id_ is None else own.get(id_) or deleted.get(id_)
            if ref is None and id_ is not None and again and id_ in again:
                ref = (edit_id, of + k)
            if ref is not None:
                last = runs[-1] if runs else None
                if (
                    last is not None
                    and last.at + last.n == k
                    and last.edit == ref[0]
                    and last.of + last.n == ref[1]
                ):
                    last.n += 1
                else:
                    runs.append(p.Revive(node=node, at=k, n=1, edit=ref[0], of=ref[1]))
            k += 1
    return runs


def lost_revivals(c: Rich, r: ot.Op) -> list[int]:
    """The identities batch op ``c`` (invertible, on the text plain ``r`` applies to) deletes
    and re-inserts itself whose delete ``r`` makes too: rebasing the batch over ``r`` takes the
    delete away, so the room leaves the re-insert out (T11 "Revivals"); its client, which holds
    the batch unsent, takes it back at once instead of showing the character twice meanwhile."""
    back = set(inserted_ids(c))
    mine: dict[int, int] = {}  # base position -> identity
    pos = 0
    for comp in c:
        if isinstance(comp, int):
            pos += comp
        elif isinstance(comp, Del):
            for k, id_ in enumerate(comp.ids):
                if id_ is not None and id_ in back:
                    mine[pos + k] = id_
            pos += len(comp.text)
    out: list[int] = []
    if not mine:
        return out
    pos = 0
    for part in ot.normalize(r):
        if not isinstance(part, int):
            continue
        if part < 0:
            out.extend(mine[q] for q in range(pos, pos - part) if q in mine)
        pos += abs(part)
    return out


def reinserted(log: Sequence[Any], gen: int) -> set[int]:
    """The identities the undo/redo records of batch generation ``gen`` re-insert."""
    out: set[int] = set()
    for rec in reversed(log):
        if not rec.own or rec.gen < gen:
            break
        if rec.gen == gen and reinserts(rec):
            out.update(id_ for id_ in inserted_ids(rec.op) if id_ is not None)
    return out


def record_deleted(c: Rich, edit_id: str, deleted: Deleted) -> None:
    """Batch op ``c`` (as the server applied it) of ``edit_id``: name what it deleted (what it
    re-inserts itself is in the text again: counted, not named)."""
    back = {id_ for comp in c if isinstance(comp, Ins) for id_ in comp.ids}
    of = 0
    for comp in c:
        if isinstance(comp, Del):
            for id_ in comp.ids:
                if id_ is not None and id_ not in back:
                    deleted.pop(id_, None)
                    deleted[id_] = (edit_id, of)
                of += 1
    while len(deleted) > DELETED_MAX:
        deleted.popitem(last=False)


def run_indices(runs: Sequence[p.Dropped] | None, node: str) -> set[int]:
    """The indices (among the code points an op inserts) the runs of ``node`` name."""
    out: set[int] = set()
    for r in runs or ():
        if r.node == node and r.at >= 0 and 1 <= r.n <= 10_000_000:
            out.update(range(r.at, r.at + r.n))
    return out


def delete_inserted(op: ot.Op, indices: set[int]) -> ot.Op | None:
    """The op (on the text normalized plain ``op`` produced) deleting the code points ``op``
    inserts at ``indices``; None when there are none."""
    out: list[Any] = []
    run = 0
    k = 0
    hit = False
    for c in op:
        if isinstance(c, int):
            if c > 0:
                run += c
            continue
        for _ in c:
            if k in indices:
                if run:
                    out.append(run)
                    run = 0
                if out and out[-1] < 0:
                    out[-1] -= 1
                else:
                    out.append(-1)
                hit = True
            else:
                run += 1
            k += 1
    return ot.normalize(out) if hit else None


def dropped_inserts(held: ot.Op, applied: ot.Op) -> set[int] | None:
    """The indices of the code points ``held`` inserts that ``applied`` does not (``applied`` is
    ``held`` without some inserted code points: a catch-up of our own batch carries no
    ``dropped``). Empty when they are the same; None when ``applied`` is no such op."""
    a = ot.normalize(held)
    b = ot.normalize(applied)
    out: set[int] = set()
    if a == b:
        return out
    x: list[Any] = [c if isinstance(c, int) else ("ch", ch) for c in a for ch in _items(c)]
    y: list[Any] = [c if isinstance(c, int) else ("ch", ch) for c in b for ch in _items(c)]
    j = 0
    k = 0
    used = 0  # what is used up of y[j] (a retain or a delete)
    for item in x:
        if not isinstance(item, int):
            if j < len(y) and not isinstance(y[j], int) and y[j] == item:
                j += 1
            else:
                out.add(k)
            k += 1
            continue
        n = item
        while n:
            if j >= len(y):
                if n < 0:
                    return None
                break  # a trailing retain (left out of a normalized op)
            c = y[j]
            if not isinstance(c, int) or (c > 0) != (n > 0):
                return None
            avail = c - used
            take = avail if abs(avail) < abs(n) else n
            n -= take
            used += take
            if used == c:
                j += 1
                used = 0
    return out if j == len(y) else None


def _items(c: Any) -> Iterable[Any]:
    return (c,) if isinstance(c, int) else c


def dead_runs(c: Rich, node: str, dead: set[int]) -> list[p.Dropped]:
    """The runs of the code points batch op ``c`` inserts whose identities are ``dead`` (a
    correction of ours takes them back): a resend withdraws them (the edit's ``withdraw``)."""
    runs: list[p.Dropped] = []
    k = 0
    for comp in c:
        if not isinstance(comp, Ins):
            continue
        for id_ in comp.ids:
            if id_ is not None and id_ in dead:
                if runs and runs[-1].at + runs[-1].n == k:
                    runs[-1].n += 1
                else:
                    runs.append(p.Dropped(node=node, at=k, n=1))
            k += 1
    return runs
