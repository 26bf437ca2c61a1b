"""Invertible text ops for the undo manager (``thin_undo``): the ``engine.ot`` format with deletes
that carry the text they remove, so an op inverts without the document it applied to.

Components: ``n > 0`` retain, ``"str"`` insert, ``Del("str")`` delete that text. Normalized like
``engine.ot`` (no empty components, neighbours merged, inserts before deletes at one position, no
trailing retain). Text ops only. The JavaScript twin is ``web/src/undo_ops.js``; the spec is
``docs/protocol.md``, "Undo in thin clients".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

from cowrite.engine import InvalidOperation, ot


@dataclass(frozen=True, slots=True)
class Del:
    """A delete of ``text``."""

    text: str


Comp: TypeAlias = int | str | Del
Rich: TypeAlias = list[Comp]


def _size(c: Comp) -> int:
    if isinstance(c, int):
        return abs(c)
    return len(c) if isinstance(c, str) else len(c.text)


class _Builder:
    def __init__(self) -> None:
        self.out: Rich = []
        self.ret = 0
        self.ins: list[str] = []
        self.dels: list[str] = []

    def retain(self, n: int) -> None:
        if n > 0:
            self.flush()
            self.ret += n

    def _edit(self) -> None:
        if self.ret:
            self.out.append(self.ret)
        self.ret = 0

    def insert(self, s: str) -> None:
        if s:
            self._edit()
            self.ins.append(s)

    def remove(self, s: str) -> None:
        if s:
            self._edit()
            self.dels.append(s)

    def push(self, c: Comp) -> None:
        if isinstance(c, int):
            self.retain(c)
        elif isinstance(c, str):
            self.insert(c)
        else:
            self.remove(c.text)

    def flush(self) -> None:
        if self.ins:
            self.out.append("".join(self.ins))
        if self.dels:
            self.out.append(Del("".join(self.dels)))
        self.ins = []
        self.dels = []

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

    def left(self) -> int:
        return _size(self.op[self.i]) - self.off

    def take(self, n: int = -1) -> Comp:
        """At most ``n`` items of the current component (all that is left when ``n < 0``)."""
        c = self.op[self.i]
        left = _size(c) - self.off
        start = self.off
        if n < 0 or n >= left:
            self.i += 1
            self.off = 0
            n = left
        else:
            self.off += n
        if isinstance(c, int):
            return n
        if isinstance(c, str):
            return c[start : start + n]
        return Del(c.text[start : start + n])


def from_plain(op: ot.Op, before: str) -> Rich:
    """The invertible op of plain text op ``op`` applied to ``before``."""
    out = _Builder()
    pos = 0
    for c in ot.normalize(op):
        if isinstance(c, str):
            out.insert(c)
        elif isinstance(c, int) and c > 0:
            out.retain(c)
            pos += c
        elif isinstance(c, int):
            out.remove(before[pos : pos - c])
            pos -= c
        else:
            raise InvalidOperation("undo is for text nodes")
    return out.result()


def to_plain(op: Rich) -> ot.Op:
    """The plain (wire) op."""
    return [-len(c.text) if isinstance(c, Del) else c for c in op]


def is_noop(op: Rich) -> bool:
    return all(isinstance(c, int) for c in op)


def invert(op: Rich) -> Rich:
    """The op undoing ``op`` (applies to what ``op`` produced)."""
    out = _Builder()
    for c in op:
        if isinstance(c, int):
            out.retain(c)
        elif isinstance(c, str):
            out.remove(c)
        else:
            out.insert(c.text)
    return out.result()


def without_inserts(op: Rich) -> Rich:
    """``op`` without its inserts: what it would re-insert is dropped (the restore rule)."""
    out = _Builder()
    for c in op:
        if not isinstance(c, str):
            out.push(c)
    return out.result()


def compose(a: Rich, b: Rich) -> Rich:
    """``a`` then ``b`` as one op."""
    out = _Builder()
    ra, rb = _Reader(a), _Reader(b)
    while (c := rb.peek()) is not None:
        if isinstance(c, str):
            out.push(rb.take())
            continue
        x = ra.peek()
        if x is None:
            out.push(rb.take())
            continue
        if isinstance(x, Del):
            out.push(ra.take())
            continue
        n = min(rb.left(), ra.left())
        piece, mine = ra.take(n), rb.take(n)
        if isinstance(mine, int):
            out.push(piece)
        elif isinstance(piece, int):
            out.push(mine)  # b deletes base text: keep its content
        # else: b deletes what a inserted: both vanish
    while ra.peek() is not None:
        out.push(ra.take())
    return out.result()


def transform(a: Rich, b: ot.Op, side: ot.Side) -> Rich:
    """Rebase ``a`` over the concurrent plain op ``b`` (same base), like ``ot.transform``: what
    both delete is no longer deleted by ``a``."""
    out = _Builder()
    ra = _Reader(a)
    for c in b:
        if not isinstance(c, int):
            if side == "left":
                while isinstance(ra.peek(), str):
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
            if isinstance(x, str):
                out.push(ra.take())
                continue
            piece = ra.take(n)
            n -= _size(piece)
            if c > 0:
                out.push(piece)
    while ra.peek() is not None:
        out.push(ra.take())
    return out.result()


def extra_inserts(actual: Rich, expected: Rich | None) -> Rich:
    """The op (applying after ``actual``) deleting what ``actual`` inserted beyond ``expected``
    (same base): ``expected``'s insert at the same base position is matched in order."""
    want: dict[int, str] = {}
    base = 0
    for c in expected or []:
        if isinstance(c, int):
            base += c
        elif isinstance(c, str):
            want[base] = want.get(base, "") + c
        else:
            base += len(c.text)
    out = _Builder()
    base = 0
    for c in actual:
        if isinstance(c, int):
            out.retain(c)
            base += c
        elif isinstance(c, str):
            t = want.get(base, "")
            k = 0
            for ch in c:
                if k < len(t) and t[k] == ch:
                    k += 1
                    out.retain(1)
                else:
                    out.remove(ch)
        else:
            base += len(c.text)
    return out.result()
