"""Operational transformation for index-based sequence edits (text and lists).

The operation format is the field's OT text type (ot.js ``TextOperation``, ``ot-text-unicode``),
counted in Unicode code points, i.e. Python ``str`` indexes, never UTF-16 units. An operation
(``Op``) is a plain list of components walking the base sequence from position 0:

- ``int > 0``: retain (skip) that many items;
- ``int < 0``: delete ``-n`` items;
- ``str``: insert that text (text documents);
- ``list``: insert those items (list documents; a non-empty list of JSON values).

Whatever the op does not reach is retained implicitly. A single op inserts either text or list
items, never both. A *normalized* op has no zero-length components, merged adjacent components of
the same kind, an insert before a delete when both sit at the same position, and no trailing
retain; ``[]`` is the identity. Every function returning an op returns it normalized and never
aliases the lists of its inputs (list items themselves are shared, not copied).

Other functions validate ops as ``check`` does (``normalize`` also drops zero-length components)
and accept unnormalized ones, honouring component order like ot-text-unicode: ``[-1, "A"]``
inserts after the deleted item, so a concurrent insert at its start lands first; ``["A", -1]``
is the reverse. ``transform`` matches ot-text-unicode's ``transform`` component for component.

``transform`` does not distribute over ``compose``: rebasing over ``compose(a, b)`` can order tied
inserts differently from rebasing over ``a`` then ``b``. Rebase like the clients: one op at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain
from typing import Any, Literal, TypeAlias, cast, overload

from cowrite.engine.errors import InvalidOperation

Component: TypeAlias = int | str | list[Any]
Op: TypeAlias = list[Component]
Side: TypeAlias = Literal["left", "right"]
_Insert: TypeAlias = str | list[Any]


def _scan(op: object, *, allow_empty: bool = False) -> type | None:
    """Validate ``op``; return ``str`` or ``list`` (what it inserts), or None if no inserts."""
    if not isinstance(op, list):
        raise InvalidOperation(f"an operation must be a list, not {type(op).__name__}")
    kind: type | None = None
    first = -1  # the first insert, for messages
    for i, c in enumerate(op):
        if isinstance(c, bool):
            raise InvalidOperation(f"component {i}: {c!r} is a bool, not a retain/delete count")
        if isinstance(c, int):
            if c == 0 and not allow_empty:
                raise InvalidOperation(f"component {i}: zero-length retain/delete (0)")
            continue
        if not isinstance(c, str | list):
            raise InvalidOperation(f"component {i}: {type(c).__name__} is not int, str or list")
        if not c:
            if allow_empty:
                continue
            raise InvalidOperation(f"component {i}: empty insert {c!r}")
        this = str if isinstance(c, str) else list
        if kind is None:
            kind, first = this, i
        elif kind is not this:
            raise InvalidOperation(
                f"component {i}: {this.__name__} insert in an operation whose component {first} "
                f"is a {kind.__name__} insert; an operation inserts text or list items, not both"
            )
    return kind


def _same_kind(a: type | None, b: type | None, what: str) -> None:
    if a is not None and b is not None and a is not b:
        raise InvalidOperation(f"cannot {what} a {a.__name__}-inserting op with a {b.__name__} one")


def _size(c: Component) -> int:
    return abs(c) if isinstance(c, int) else len(c)


class _Reader:
    """Consumes an op component by component, splitting components when asked to."""

    __slots__ = ("_i", "_off", "_op")

    def __init__(self, op: Op) -> None:
        self._op, self._i, self._off = op, 0, 0

    def peek(self) -> Component | None:
        """The current component (ignoring how much of it was taken), None when exhausted."""
        return self._op[self._i] if self._i < len(self._op) else None

    def take(self, n: int = -1) -> Component:
        """Take at most ``n`` items (everything if ``n < 0``) of the current component."""
        c = self._op[self._i]
        off = self._off
        size = _size(c) - off
        if 0 <= n < size:
            self._off += n
            if isinstance(c, int):
                return n if c > 0 else -n
            return c[off : off + n]
        self._i += 1
        self._off = 0
        if isinstance(c, int):
            return size if c > 0 else -size
        return c[off:] if off else c


class _Builder:
    """Appends components and yields a normalized op (inserts before deletes within a gap)."""

    __slots__ = ("_dels", "_ins", "_out", "_ret")

    def __init__(self) -> None:
        self._out: Op = []
        self._ins: list[_Insert] = []
        self._ret = self._dels = 0

    def retain(self, n: int) -> None:
        if n > 0:
            self._flush()
            self._ret += n

    def _edit(self) -> None:
        if self._ret:
            self._out.append(self._ret)
            self._ret = 0

    def delete(self, n: int) -> None:
        if n > 0:
            self._edit()
            self._dels += n

    def insert(self, s: _Insert) -> None:
        if s:
            self._edit()
            self._ins.append(s)

    def push(self, c: Component) -> None:
        if isinstance(c, int):
            if c > 0:
                self.retain(c)
            else:
                self.delete(-c)
        else:
            self.insert(c)

    def _flush(self) -> None:
        ins = self._ins
        if ins:
            if isinstance(ins[0], str):
                self._out.append("".join(cast(list[str], ins)))
            else:
                self._out.append(list(chain.from_iterable(ins)))
            self._ins = []
        if self._dels:
            self._out.append(-self._dels)
            self._dels = 0

    def result(self) -> Op:
        self._flush()
        return self._out


def check(op: object) -> None:
    """Raise InvalidOperation unless ``op`` is a well-formed operation (normalized or not).

    Rejects non-lists, bools, zero counts, empty inserts, non-component types and ops mixing text
    and list inserts. List items are not inspected.
    """
    _scan(op)


def text_site(op: object) -> tuple[int, str, int] | None:
    """``(pos, inserted, deleted)`` of a text op making one change (what a keystroke sends):
    ``[pos]`` (retain > 0), then a non-empty ``str``, then a delete, each optional but not both
    of the last two, and a trailing retain; None for any other op, valid or not.

    Such an op is valid, and its normalized form is ``text_op(pos, inserted, deleted)``: callers
    take it as a fast path and give every other op to ``check``/``normalize``.
    """
    if type(op) is not list:
        return None
    n = len(op)
    i = pos = deleted = 0
    ins = ""
    c = op[0] if n else None
    if type(c) is int and c > 0:
        pos = c
        i = 1
        c = op[1] if n > 1 else None
    if type(c) is str and c:
        ins = c
        i += 1
        c = op[i] if n > i else None
    if type(c) is int and c < 0:
        deleted = -c
        i += 1
        c = op[i] if n > i else None
    if type(c) is int and c > 0 and (ins or deleted):
        i += 1
    if i != n or not (ins or deleted):
        return None
    return pos, ins, deleted


def text_op(pos: int, inserted: str, deleted: int) -> Op:
    """The normalized op of one change (``text_site``'s inverse): a new list."""
    out: Op = [pos] if pos else []
    if inserted:
        out.append(inserted)
    if deleted:
        out.append(-deleted)
    return out


def normalize(op: Op) -> Op:
    """The normalized equivalent of ``op``; zero-length components are dropped, not errors."""
    _scan(op, allow_empty=True)
    out = _Builder()
    for c in op:
        out.push(c)
    return out.result()


def is_noop(op: Op) -> bool:
    """True when the (valid) op changes nothing, i.e. it only retains."""
    _scan(op)
    return all(isinstance(c, int) and c > 0 for c in op)


def base_length(op: Op) -> int:
    """The shortest sequence ``op`` applies to: its retains plus its deletes."""
    _scan(op)
    return sum(abs(c) for c in op if isinstance(c, int))


def target_length(op: Op, base_len: int) -> int:
    """The length of ``apply(seq, op)`` for a ``seq`` of length ``base_len``."""
    need = base_length(op)
    if base_len < need:
        raise InvalidOperation(f"op needs a sequence of length >= {need}, got {base_len}")
    delta = 0
    for c in op:
        if not isinstance(c, int):
            delta += len(c)
        elif c < 0:
            delta += c
    return base_len + delta


def from_splice(pos: int, delete_count: int, insert: str | list[Any]) -> Op:
    """The op deleting ``delete_count`` items at ``pos`` then inserting ``insert`` there."""
    for name, v in (("pos", pos), ("delete_count", delete_count)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InvalidOperation(f"splice {name} must be an int >= 0, got {v!r}")
    if not isinstance(insert, str | list):
        raise InvalidOperation(f"splice insert must be str or list, not {type(insert).__name__}")
    out = _Builder()
    out.retain(pos)
    out.insert(insert)
    out.delete(delete_count)
    return out.result()


def _seq_kind(seq: object, kind: type | None) -> None:
    if not isinstance(seq, str | list):
        raise InvalidOperation(f"ops apply to a str or a list, not {type(seq).__name__}")
    if kind is not None and not isinstance(seq, kind):
        raise InvalidOperation(f"op inserts {kind.__name__} into a {type(seq).__name__}")


@overload
def apply(seq: str, op: Op) -> str: ...
@overload
def apply(seq: list[Any], op: Op) -> list[Any]: ...
def apply(seq: str | list[Any], op: Op) -> str | list[Any]:
    """Return a new sequence: ``op`` applied to ``seq``; raises if ``op`` runs past its end."""
    _seq_kind(seq, _scan(op))
    parts: list[_Insert] = []
    pos, n = 0, len(seq)
    for i, c in enumerate(op):
        if isinstance(c, int):
            size = abs(c)
            if pos + size > n:
                what = "retain" if c > 0 else "delete"
                raise InvalidOperation(
                    f"component {i} ({what} {size} at {pos}) runs past the end of a sequence of "
                    f"length {n}"
                )
            if c > 0:
                parts.append(seq[pos : pos + size])
            pos += size
        else:
            parts.append(c)
    parts.append(seq[pos:])
    if isinstance(seq, str):
        return "".join(cast(list[str], parts))
    return list(chain.from_iterable(parts))


def compose(a: Op, b: Op) -> Op:
    """The op equal to ``a`` then ``b``: ``apply(apply(s, a), b) == apply(s, compose(a, b))``."""
    _same_kind(_scan(a), _scan(b), "compose")
    out = _Builder()
    ra = _Reader(a)
    for c in b:
        if not isinstance(c, int):
            out.insert(c)
            continue
        n = abs(c)
        while n > 0:
            x = ra.peek()
            if x is None:  # past the end of a: implicit retain
                out.push(n if c > 0 else -n)
                break
            if isinstance(x, int) and x < 0:  # a's deletes are invisible to b
                out.push(ra.take())
                continue
            piece = ra.take(n)
            m = _size(piece)
            n -= m
            if c > 0:
                out.push(piece)
            elif isinstance(piece, int):
                out.delete(m)
            # else: b deletes text a inserted; both vanish
    while ra.peek() is not None:
        out.push(ra.take())
    return out.result()


def compose_all(ops: Iterable[Op]) -> Op:
    """Compose a sequence of consecutive ops; ``[]`` for none."""
    result: Op = []
    for op in ops:
        result = compose(result, op)
    return result


def transform(a: Op, b: Op, side: Side) -> Op:
    """Rebase ``a`` to apply after the concurrent ``b`` (both against the same base).

    Inserts at the same position: ``side="left"`` puts a's first, ``"right"`` puts b's first.
    Text deleted by both is deleted once. TP1:
    ``apply(apply(s, b), transform(a, b, "left")) == apply(apply(s, a), transform(b, a, "right"))``.
    """
    if side not in ("left", "right"):
        raise InvalidOperation(f"side must be 'left' or 'right', got {side!r}")
    _same_kind(_scan(a), _scan(b), "transform")
    left = side == "left"
    out = _Builder()
    ra = _Reader(a)
    for c in b:
        if not isinstance(c, int):
            if left:
                while (x := ra.peek()) is not None and not isinstance(x, int):
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
            if not isinstance(x, int):  # a's insert here survives, before b's retain/delete
                out.push(ra.take())
                continue
            piece = ra.take(n)
            n -= _size(piece)
            if c > 0:  # b keeps these items: a's retain/delete stands
                out.push(piece)
            # else: b deleted them already; a's retain or delete of them disappears
    while ra.peek() is not None:
        out.push(ra.take())
    return out.result()


def invert(op: Op, before: str | list[Any]) -> Op:
    """The op undoing ``op``: ``apply(apply(before, op), invert(op, before)) == before``."""
    _seq_kind(before, _scan(op))
    out = _Builder()
    pos, n = 0, len(before)
    for i, c in enumerate(op):
        if isinstance(c, int):
            size = abs(c)
            if pos + size > n:
                raise InvalidOperation(f"component {i} runs past the end of length {n}")
            if c > 0:
                out.retain(size)
            else:
                out.insert(before[pos : pos + size])
            pos += size
        else:
            out.delete(len(c))
    return out.result()


def transform_position(pos: int, op: Op, is_own_op: bool = False) -> int:
    """Where a cursor at code-point ``pos`` ends up once ``op`` is applied.

    Inserts before the cursor shift it. An insert exactly at ``pos`` leaves the cursor before the
    inserted items when the op is someone else's (``is_own_op=False``, the ot-text-unicode
    ``transformPosition`` behaviour) and moves it after them when it is the cursor owner's own op
    (like a caret while typing). A delete spanning the cursor moves it to where the delete was.
    """
    if isinstance(pos, bool) or not isinstance(pos, int) or pos < 0:
        raise InvalidOperation(f"position must be an int >= 0, got {pos!r}")
    _scan(op)
    cursor = pos
    at = 0  # the current point, in the coordinates of the old sequence
    for c in op:
        if at > pos:
            break
        if not isinstance(c, int):
            if at < pos or (at == pos and is_own_op):
                cursor += len(c)
        elif c > 0:
            at += c
        else:
            if at < pos:
                cursor -= min(-c, pos - at)
            at -= c
    return cursor


def transform_selection(anchor: int, head: int, op: Op, is_own_op: bool = False) -> tuple[int, int]:
    """``(anchor, head)`` each moved by ``transform_position``."""
    return transform_position(anchor, op, is_own_op), transform_position(head, op, is_own_op)
