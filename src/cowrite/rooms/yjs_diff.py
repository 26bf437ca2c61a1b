"""The diff between two versions of a Yjs document, with who made each change.

The diff is of *values* (``rooms/yjs_values.py``): a text or an XML fragment's rendering is
compared character by character (code points), an array item by item (as JSON), a map key by
key. Each insertion and deletion is attributed to the stored update that made it, found by
replaying the versions in between one by one (``YjsHistory.replay``) and carrying each
character's origin along, like a blame: a character still there from the old version has no
author; one inserted in between has the update that inserted it; a deleted one, the update that
deleted it. The walk reads every compared root once per version, so it is bounded
(``max_steps`` versions; beyond, the diff comes without authors). Authors are per update: the
caller maps an update's seq to the version row that lists it (retention may have merged it).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cowrite.rooms.yjs_history import YjsHistory
from cowrite.rooms.yjs_values import RootType, doc_of, read, read_all

MAX_STEPS = 500
"""Versions a diff replays one by one for its authors (beyond: no authors)."""
MAX_EXACT_CELLS = 4_000_000
"""Beyond this many (old x new) differing tokens, texts are compared line by line."""


@dataclass(slots=True)
class Span:
    """``retain``, ``insert`` or ``delete`` ``count`` tokens; ``by``: the update's seq."""

    op: str
    count: int
    tokens: list[Any]
    by: int | None = None


@dataclass
class RootChange:
    """How one root changed. Text/xml/array: ``delta`` (retain n, delete -n, insert a string or
    a list) and ``spans``; a map: one change per key (``key``, ``before``, ``after``, ``by``)."""

    root: str
    kind: RootType
    key: str | None = None
    delta: list[Any] = field(default_factory=list)
    before: Any = None
    after: Any = None
    spans: list[Span] | None = None
    by: int | None = None


def tokens(kind: RootType, value: Any) -> Sequence[Any]:
    """What a value is compared by: characters (the string itself), or array items as JSON."""
    if kind in ("text", "xml"):
        return str(value or "")
    return [msgspec.json.encode(v).decode() for v in value or []]


def _common(same: Callable[[int], bool], most: int) -> int:
    """The largest n <= ``most`` with ``same(n)`` (a binary search over slice comparisons,
    which run in C: a scan in Python would cost a second per diff of a long text)."""
    lo, hi = 0, most
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if same(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def opcodes(a: Sequence[Any], b: Sequence[Any]) -> list[tuple[str, int, int, int, int]]:
    """difflib opcodes from ``a`` to ``b``, after trimming the common ends (so consecutive
    versions, which differ by one small edit, cost a scan)."""
    lo = _common(lambda n: a[:n] == b[:n], min(len(a), len(b)))
    hi = _common(lambda n: a[len(a) - n :] == b[len(b) - n :], min(len(a), len(b)) - lo)
    mid_a, mid_b = a[lo : len(a) - hi], b[lo : len(b) - hi]
    out: list[tuple[str, int, int, int, int]] = []
    if lo:
        out.append(("equal", 0, lo, 0, lo))
    if mid_a or mid_b:
        if not mid_a or not mid_b or len(mid_a) * len(mid_b) > MAX_EXACT_CELLS:
            out.append(("replace", lo, lo + len(mid_a), lo, lo + len(mid_b)))
        else:
            matcher = difflib.SequenceMatcher(None, mid_a, mid_b, autojunk=False)
            for tag, i1, i2, j1, j2 in matcher.get_opcodes():
                out.append((tag, lo + i1, lo + i2, lo + j1, lo + j2))
    if hi:
        out.append(("equal", len(a) - hi, len(a), len(b) - hi, len(b)))
    return out


class _Blame:
    """Each current token's origin (>= 0: its index in the old value; < 0: minus the seq of the
    update that inserted it), and which update deleted each old token."""

    def __init__(self, old: Sequence[Any]) -> None:
        self.current = old
        self.origin: list[int] = list(range(len(old)))
        self.deleted_by: dict[int, int] = {}

    def step(self, seq: int, now: Sequence[Any]) -> None:
        if now == self.current:
            return
        # later changes first, in place: earlier positions stay valid
        for tag, i1, i2, j1, j2 in reversed(opcodes(self.current, now)):
            if tag == "equal":
                continue
            for o in self.origin[i1:i2]:
                if o >= 0:
                    self.deleted_by[o] = seq
            self.origin[i1:i2] = [-seq] * (j2 - j1)
        self.current = now


def _runs(ops: str, toks: Sequence[Any], owners: list[int | None]) -> list[Span]:
    out: list[Span] = []
    for tok, by in zip(toks, owners, strict=True):
        if out and out[-1].by == by:
            out[-1].tokens.append(tok)
            out[-1].count += 1
        else:
            out.append(Span(ops, 1, [tok], by))
    return out


def _sequence_change(
    root: str, kind: RootType, old: Sequence[Any], new: Sequence[Any], blame: _Blame | None
) -> RootChange:
    delta: list[Any] = []
    spans: list[Span] = []
    text = kind in ("text", "xml")

    def insert(toks: Sequence[Any]) -> Any:
        return "".join(toks) if text else [msgspec.json.decode(t) for t in toks]

    for tag, i1, i2, j1, j2 in opcodes(old, new):
        if tag == "equal":
            delta.append(i2 - i1)
            spans.append(Span("retain", i2 - i1, []))
            continue
        if i2 > i1:
            delta.append(-(i2 - i1))
            owners = [None if blame is None else blame.deleted_by.get(i) for i in range(i1, i2)]
            spans.extend(_runs("delete", old[i1:i2], owners))
        if j2 > j1:
            delta.append(insert(new[j1:j2]))
            by: list[int | None] = []
            for j in range(j1, j2):
                o = 0 if blame is None else blame.origin[j]
                by.append(-o if o < 0 else None)
            spans.extend(_runs("insert", new[j1:j2], by))
    if delta and isinstance(delta[-1], int) and delta[-1] > 0:
        delta.pop()  # a trailing retain says nothing
    return RootChange(root, kind, delta=delta, spans=spans)


def diff(
    history: YjsHistory,
    start: int,
    end: int,
    types: dict[str, RootType],
    max_steps: int = MAX_STEPS,
) -> list[RootChange]:
    """The changes from version ``start`` to ``end`` (both available, ``start <= end`` or
    not: a backwards diff has no authors), root by root in name order."""
    old_state, new_state = history.state_at(start), history.state_at(end)
    if old_state is None or new_state is None:
        raise ValueError("a version of the diff is not available")
    old = read_all(doc_of(old_state), types)
    new = read_all(doc_of(new_state), types)
    changed = [name for name in sorted(types) if old[name] != new[name]]
    if not changed:
        return []
    steps = [s for s, _ in history.entries if start < s <= end]
    walk = start < end and len(steps) <= max_steps and history.available(start)
    blames: dict[str, _Blame] = {}
    last_set: dict[tuple[str, str], int] = {}
    if walk:
        for name in changed:
            if types[name] != "map":
                blames[name] = _Blame(tokens(types[name], old[name]))
        previous = {name: old[name] for name in changed}
        for seq, doc in history.replay(start, end):
            for name in changed:
                value = read(doc, name, types[name])
                if value == previous[name]:
                    continue
                if name in blames:
                    blames[name].step(seq, tokens(types[name], value))
                else:
                    before = previous[name] or {}
                    for key in set(before) | set(value or {}):
                        if before.get(key) != (value or {}).get(key):
                            last_set[(name, key)] = seq
                previous[name] = value
    out: list[RootChange] = []
    for name in changed:
        kind = types[name]
        if kind == "map":
            before_map, after_map = old[name] or {}, new[name] or {}
            for key in sorted(set(before_map) | set(after_map)):
                if before_map.get(key) != after_map.get(key):
                    out.append(
                        RootChange(
                            name,
                            kind,
                            key=key,
                            before=before_map.get(key),
                            after=after_map.get(key),
                            by=last_set.get((name, key)),
                        )
                    )
            continue
        change = _sequence_change(
            name, kind, tokens(kind, old[name]), tokens(kind, new[name]), blames.get(name)
        )
        change.before, change.after = (old[name], new[name]) if kind == "array" else (None, None)
        out.append(change)
    return out
