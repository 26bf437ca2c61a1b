"""The undo manager's log (``thin_undo``): its records and steps, and the fold that undoes a step.

A record is one change of the node in server order (ours invertible, carrying text and
identities; restores' too); a step (``Group``) is some of our records. ``fold`` is T11's
"Undo" rule (``docs/protocol.md``): invert the step's records and rebase the result over every
other record after its first, dropping re-inserts across a restore and those another client's
batch made at the same place. The JavaScript twin is ``web/src/undo_log.js``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cowrite.client.thin_undo_ops import (
    Rich,
    compose,
    invert,
    to_plain,
    transform,
    without_echoes,
    without_inserts,
)


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


def fold(log: list[Record], group: Group, end: int | None = None) -> Rich | None:
    """The op undoing ``group`` after ``log`` (or just before record ``end``), None if none of
    its records are (still) in the log."""
    if not group.records:
        return None
    end = len(log) if end is None else end
    members = {id(r) for r in group.records}
    found = [i for i in (index_of(log, r) for r in group.records) if 0 <= i < end]
    if not found:
        return None
    # an undo and its redo side by side (still exact inverses) are skipped: rebasing over
    # a deletion and its re-insertion would lose where our text was (a tie)
    kept: list[Record] = []
    for rec in log[min(found) : end]:
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
            elif not rec.own:
                u = without_echoes(u, to_plain(rec.op))
            u = transform(u, to_plain(rec.op), "left")
    return u


def index_of(log: list[Record], rec: Record) -> int:
    """The index of ``rec`` in ``log`` by identity (records compare by identity), or -1."""
    for i, r in enumerate(log):
        if r is rec:
            return i
    return -1
