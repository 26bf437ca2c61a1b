"""Invertible text ops with character identities for the undo manager (``thin_undo``).

The ``engine.ot`` format where inserts and deletes carry their text *and* one identity per code
point, so an op inverts without the document, and the manager tells its characters apart (an
undo never re-inserts a character that is there; a correction deletes exactly the characters it
must, wherever later steps moved them).

Components: ``n > 0`` retain, ``Ins(text, ids)`` insert, ``Del(text, ids)`` delete; ``ids`` has one
entry per code point: a client-local identity (an int the manager numbers) or None (unknown).
Normalized like ``engine.ot`` (no empty components, neighbours merged, inserts before deletes at
one position, no trailing retain). Text ops only. The JavaScript twin is ``web/src/undo_ops.js``;
the spec is ``docs/protocol.md``, T11.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from cowrite.engine import ot

Id: TypeAlias = int | None


@dataclass(frozen=True, slots=True)
class Ins:
    """An insert of ``text``; ``ids``: the identity of each code point."""

    text: str
    ids: tuple[Id, ...]


@dataclass(frozen=True, slots=True)
class Del:
    """A delete of ``text``; ``ids``: the identity of each code point."""

    text: str
    ids: tuple[Id, ...]


Comp: TypeAlias = int | Ins | Del
Rich: TypeAlias = list[Comp]


def _size(c: Comp) -> int:
    return c if isinstance(c, int) else len(c.text)


class _Builder:
    def __init__(self) -> None:
        self.out: Rich = []
        self.ret = 0
        self.ins: list[str] = []
        self.ins_ids: list[Id] = []
        self.dels: list[str] = []
        self.del_ids: list[Id] = []

    def retain(self, n: int) -> None:
        if n > 0:
            self.flush()
            self.ret += n

    def _edit(self) -> None:
        if self.ret:
            self.out.append(self.ret)
        self.ret = 0

    def insert(self, s: str, ids: Sequence[Id]) -> None:
        if s:
            self._edit()
            self.ins.append(s)
            self.ins_ids.extend(ids)

    def remove(self, s: str, ids: Sequence[Id]) -> None:
        if s:
            self._edit()
            self.dels.append(s)
            self.del_ids.extend(ids)

    def push(self, c: Comp) -> None:
        if isinstance(c, int):
            self.retain(c)
        elif isinstance(c, Ins):
            self.insert(c.text, c.ids)
        else:
            self.remove(c.text, c.ids)

    def flush(self) -> None:
        if self.ins:
            self.out.append(Ins("".join(self.ins), tuple(self.ins_ids)))
            self.ins, self.ins_ids = [], []
        if self.dels:
            self.out.append(Del("".join(self.dels), tuple(self.del_ids)))
            self.dels, self.del_ids = [], []

    def result(self) -> Rich:
        self.flush()
        return self.out


class _Reader:
    def __init__(self, op: Rich) -> None:
        self.op = op
        self.i = 0
        self.off = 0

    def peek(self) -> Comp | None:
        return self.op[self.i] if self.i < len(self.op) else None

    def take(self, n: int = -1) -> Comp:
        """At most ``n`` code points of the current component (all that is left if n < 0)."""
        c = self.op[self.i]
        left = _size(c) - self.off
        k = left if n < 0 or n >= left else n
        off = self.off
        if k == left:
            self.i += 1
            self.off = 0
        else:
            self.off += k
        if isinstance(c, int):
            return k
        if off == 0 and k == len(c.text):
            return c
        return type(c)(c.text[off : off + k], c.ids[off : off + k])


def from_plain(
    op: ot.Op,
    before: str,
    ids_of: Callable[[int, int], Sequence[Id]] | None = None,
    new_id: Callable[[], Id] | None = None,
) -> Rich:
    """The invertible op of plain ``op`` applied to ``before``. ``ids_of(a, b)``: the identities
    of ``before[a:b]`` (default unknown); ``new_id()``: one for each inserted code point."""
    out = _Builder()
    pos = 0
    for c in ot.normalize(op):
        if isinstance(c, str):
            out.insert(c, [new_id() if new_id else None for _ in c])
        elif not isinstance(c, int):
            raise TypeError("text ops only")
        elif c > 0:
            out.retain(c)
            pos += c
        else:
            out.remove(before[pos : pos - c], ids_of(pos, pos - c) if ids_of else [None] * -c)
            pos -= c
    return out.result()


def to_plain(op: Sequence[Comp | str]) -> ot.Op:
    """The plain (wire) op (a plain op is returned as it is)."""
    return [c.text if isinstance(c, Ins) else -len(c.text) if isinstance(c, Del) else c for c in op]


def is_noop(op: Rich) -> bool:
    return all(isinstance(c, int) for c in op)


def invert(op: Rich) -> Rich:
    """The op undoing ``op`` (applies to what ``op`` produced)."""
    out = _Builder()
    for c in op:
        if isinstance(c, int):
            out.retain(c)
        elif isinstance(c, Ins):
            out.remove(c.text, c.ids)
        else:
            out.insert(c.text, c.ids)
    return out.result()


def without_inserts(op: Rich) -> Rich:
    """``op`` without its inserts: what it would re-insert is dropped (the restore rule)."""
    out = _Builder()
    for c in op:
        if not isinstance(c, Ins):
            out.push(c)
    return out.result()


def inserted_ids(op: Rich | None) -> list[int]:
    """The identities ``op`` inserts (None left out)."""
    return [i for c in op or () if isinstance(c, Ins) for i in c.ids if i is not None]


def compose(a: Rich, b: Rich) -> Rich:
    """``a`` then ``b`` (both invertible) as one op."""
    out = _Builder()
    ra, rb = _Reader(a), _Reader(b)
    while (c := rb.peek()) is not None:
        if isinstance(c, Ins):
            out.push(rb.take())
            continue
        x = ra.peek()
        if x is None:
            out.push(rb.take())
            continue
        if isinstance(x, Del):
            out.push(ra.take())
            continue
        n = min(_size(c) - rb.off, _size(x) - ra.off)
        piece = ra.take(n)  # a retain (base text) or an insert of a
        mine = rb.take(n)
        if isinstance(mine, int):
            out.push(piece)
        elif isinstance(piece, int):
            out.push(mine)  # b deletes base text
        # else: b deletes what a inserted: both vanish
    while ra.peek() is not None:
        out.push(ra.take())
    return out.result()


def transform(a: Rich, b: ot.Op, side: ot.Side) -> Rich:
    """Rebase invertible ``a`` over the concurrent plain op ``b`` (same base), like
    ``ot.transform``; what both delete is no longer deleted by ``a``."""
    left = side == "left"
    out = _Builder()
    ra = _Reader(a)
    for c in b:
        if not isinstance(c, int):
            if left:
                while isinstance(ra.peek(), Ins):
                    out.push(ra.take())
            out.retain(len(c))
            continue
        n = abs(c)
        while n > 0:
            x = ra.peek()
            if x is None:
                if c > 0:
                    out.retain(n)
                break
            if isinstance(x, Ins):
                out.push(ra.take())
                continue
            piece = ra.take(n)
            n -= _size(piece)
            if c > 0:
                out.push(piece)
    while ra.peek() is not None:
        out.push(ra.take())
    return out.result()


def apply_ids(
    ids: list[Id], op: Sequence[Any], new_id: Callable[[], Id], in_place: bool = False
) -> list[Id]:
    """``ids`` (a text's identities) after ``op``: an invertible op inserts its own ids, a plain
    one ``new_id()`` for each inserted code point. ``in_place``: change ``ids`` itself (a slice
    assignment per component: cheap for typing's one-place edits); else a new list."""
    out = ids if in_place else list(ids)
    pos = 0
    for c in op:
        if isinstance(c, int):
            if c >= 0:
                pos += c
            else:
                del out[pos : pos - c]
        elif isinstance(c, Del):
            del out[pos : pos + len(c.text)]
        else:
            add = [new_id() for _ in c] if isinstance(c, str) else list(c.ids)
            out[pos:pos] = add
            pos += len(add)
    return out


def retarget(op: Rich, text: str, ids: Sequence[Id], keep: Callable[[Id], bool]) -> Rich:
    """``op`` (from the undo log) as an op of ``text`` (identities ``ids``): the log can order
    two runs inserted at one position (a tie) otherwise than the text (the thin client rebases
    its batches whole, the log record by record). The deletes take exactly the characters of
    their identities that are there (a None identity: the one at its position), the inserts go
    to their position (clamped) unless ``keep(id)`` refuses. Always applies to ``text``."""
    n = len(ids)
    dead: set[Id] = set()
    dead_at: set[int] = set()
    ins: dict[int, list[tuple[str, Id]]] = {}
    pos = 0
    for c in op:
        if isinstance(c, int):
            pos += c
        elif isinstance(c, Ins):
            at = ins.setdefault(min(pos, n), [])
            at.extend((ch, i) for ch, i in zip(c.text, c.ids, strict=True) if keep(i))
        else:
            for k, i in enumerate(c.ids):
                if i is not None:
                    dead.add(i)
                else:
                    dead_at.add(pos + k)
            pos += len(c.text)
    # the positions that change, in order (one scan of the identities)
    stops = set(ins) | {b for b in dead_at if b < n}
    if dead:
        stops.update(b for b, i in enumerate(ids) if i in dead)
    out = _Builder()
    last = 0
    for b in sorted(stops):
        out.retain(b - last)
        last = b
        for ch, i in ins.get(b, ()):
            out.insert(ch, (i,))
        if b < n and (ids[b] in dead or b in dead_at):
            out.remove(text[b], (ids[b],))
            last = b + 1
    return out.result()


def relayout(op: Rich, before: Sequence[Id], to: Sequence[Id]) -> Rich | None:
    """``op`` (applying to a text whose identities are ``before``) as the same change of the same
    characters laid out as ``to`` (the same identities, maybe in another order: the undo log's
    layout, which can order a tie otherwise than the text). Deletes go by identity; an insert
    goes right after the character it follows in ``before`` (or first). None when ``to`` lacks
    one of those identities (the layouts do not match: a bug)."""
    want = sum(1 if isinstance(c, Ins) else len(c.text) for c in op if not isinstance(c, int))
    where: dict[Id, int] | None = {i: b for b, i in enumerate(to)} if want > 8 else None

    def index(i: Id, near: int) -> int:
        if where is not None:
            return where.get(i, -1)
        # the layouts differ only at ties: look near the same position first
        for lo, hi in ((max(0, near - 256), near + 256), (0, len(to))):
            try:
                return to.index(i, lo, hi)
            except ValueError:
                pass
        return -1

    stops: dict[int, list[Comp]] = {}
    pos = 0
    for c in op:
        if isinstance(c, int):
            pos += c
        elif isinstance(c, Ins):
            b = index(before[pos - 1], pos - 1) + 1 if pos else 0
            if b < 0 or (pos and b == 0):
                return None
            stops.setdefault(b, []).append(c)
        else:
            for k, (ch, i) in enumerate(zip(c.text, c.ids, strict=True)):
                b = index(i if i is not None else before[pos + k], pos + k)
                if b < 0:
                    return None
                stops.setdefault(b, []).append(Del(ch, (i,)))
            pos += len(c.text)
    out = _Builder()
    last = 0
    for b in sorted(stops):
        out.retain(b - last)
        last = b
        for c in stops[b]:
            if isinstance(c, Ins):
                out.insert(c.text, c.ids)
        for c in stops[b]:
            if isinstance(c, Del):
                out.remove(c.text, c.ids)
                last = b + 1
    return out.result()


def without_echoes(op: Rich, b: ot.Op) -> Rich:
    """``op`` without the code points it inserts where the concurrent plain op ``b`` (same base)
    inserts the same code points at the same position, in order: another client's undo brought
    back text we deleted too (to us, new characters), so re-inserting ours would put it there
    twice."""
    theirs: dict[int, str] = {}
    pos = 0
    for x in b:
        if isinstance(x, str):
            theirs[pos] = theirs.get(pos, "") + x
        else:
            assert isinstance(x, int)
            pos += abs(x)
    if not theirs:
        return op
    out = _Builder()
    pos = 0
    for c in op:
        if isinstance(c, int):
            out.retain(c)
            pos += c
        elif isinstance(c, Del):
            out.remove(c.text, c.ids)
            pos += len(c.text)
        else:
            there = theirs.get(pos, "")
            k = 0
            for ch, i in zip(c.text, c.ids, strict=True):
                while k < len(there) and there[k] != ch:
                    k += 1
                if k < len(there):
                    k += 1
                else:
                    out.insert(ch, (i,))
    return out.result()
