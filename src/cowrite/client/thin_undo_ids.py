"""Which characters a correction of the undo manager (``thin_undo``) still has to delete when
another op re-creates them under new identities.

A correction deletes *dead* identities (text an undo/redo of ours re-inserted without the
right to). Two server ops can bring the same characters back under identities of their own:
someone's delete and its undo sent as one batch (or a restore), and a snapshot that holds our
dropped in-flight batch. Both functions find those characters (the same code points, in order,
at the place) and hand them the dead identities, so the sweep deletes them. The JavaScript twin
is ``web/src/undo.js`` (``_carry``, ``_inherit``); the spec is ``docs/protocol.md``, T11.
"""

from __future__ import annotations

from collections.abc import MutableSequence

from cowrite.client.thin_undo_ops import Del, Id, Ins, Rich
from cowrite.engine import ot


def carry_dead(before: Rich, after: Rich, r: ot.Op, dead: set[int], carry: dict[int, int]) -> None:
    """Our record ``before`` (rebased to ``after`` over plain ``r``, same base) lost deletes of
    dead characters to ``r``, which deleted them too. If ``r`` inserts the same characters in
    order where it deleted them (someone's delete and its undo sent as one batch, a restore),
    those are the same characters, still to be deleted: ``carry`` maps the index of each such
    code point among ``r``'s inserts to its identity."""
    kept = {i for c in after if isinstance(c, Del) for i in c.ids}
    lost: dict[int, tuple[str, int]] = {}
    pos = 0
    for c in before:
        if isinstance(c, int):
            pos += c
        elif isinstance(c, Del):
            for k, (ch, i) in enumerate(zip(c.text, c.ids, strict=True)):
                if i is not None and i in dead and i not in kept:
                    lost[pos + k] = (ch, i)
            pos += len(c.text)
    if not lost:
        return
    pos = index = 0
    for j, comp in enumerate(r):
        if isinstance(comp, int):
            pos += abs(comp)
            continue
        assert isinstance(comp, str)
        nxt = r[j + 1] if j + 1 < len(r) else None
        if isinstance(nxt, int) and nxt < 0:
            k = 0
            for q in range(pos, pos - nxt):
                if k >= len(comp):
                    break
                hit = lost.get(q)
                if hit is None:
                    continue
                while k < len(comp) and comp[k] != hit[0]:
                    k += 1
                if k < len(comp):
                    carry[index + k] = hit[1]
                    k += 1
        index += len(comp)


def inherit_dead(
    batch: Rich,
    inflight: ot.Op,
    pending: ot.Op | None,
    ids: MutableSequence[Id],
    text: str,
    dead: set[int],
    barrier: tuple[int, int],
) -> bool:
    """Our in-flight batch (composed: ``batch``; plain, as the thin client holds it:
    ``inflight``, then ``pending``) is dropped as applied before the snapshot we hold, whose
    inserts got the identities ``barrier`` = (first, end). What the batch inserts is in
    ``text`` (identities ``ids``) twice: ours (the thin client now deletes it) and the
    snapshot's copy, next to ours. What a correction took back of ours (dead) goes from the
    copy too: among the characters the snapshot inserted right before and after each of our
    inserts (up to the text that was there before it; newer characters may sit between), those
    of the same code points, in order, take the dead identities (changed in ``ids``). True
    when one did."""
    lost = [
        (ch, i)
        for c in batch
        if isinstance(c, Ins)
        for ch, i in zip(c.text, c.ids, strict=True)
        if i is not None and i in dead
    ]
    if not lost:
        return False
    first, end = barrier

    # the snapshot's characters; what came later (newer identities) may sit between
    def near(b: int) -> bool:
        i = ids[b] if 0 <= b < len(ids) else None
        return i is not None and i >= first

    def copy(b: int) -> bool:
        i = ids[b]
        return i is not None and first <= i < end and i not in dead

    runs: set[int] = set()
    at = 0
    for c in ot.normalize(inflight):
        if isinstance(c, int):
            at += max(c, 0)
            continue
        n = len(c)
        # our insert spans at..at+n of the server value + inflight; where it is in the text
        a = ot.transform_position(at, pending) if pending else at
        e = ot.transform_position(at + n, pending, True) if pending else at + n
        b = a - 1
        while near(b):
            if copy(b):
                runs.add(b)
            b -= 1
        b = e
        while near(b):
            if copy(b):
                runs.add(b)
            b += 1
        at += n
    j = 0
    for b in sorted(runs):
        if j < len(lost) and text[b] == lost[j][0]:
            ids[b] = lost[j][1]
            j += 1
    return j > 0
