"""Low-level binary codec: varints, length-prefixed fields, columns and bounded compression.

Everything the document encoder writes is built from these pieces:

* ``Writer`` / ``Reader``: LEB128 unsigned varints (at most 10 bytes, at most 64 bits), zigzag
  signed varints (64-bit signed range), length-prefixed bytes and UTF-8 strings (``surrogatepass``,
  so every Python ``str`` round-trips, lone surrogates included).
* Columns, each written as an item count followed by the column body:

  - ``uint`` RLE: a sequence of runs, each a header varint ``h`` then its values. ``h & 1 == 0``
    is a *repeat* run of ``(h >> 1) + 1`` copies of the single value that follows; ``h & 1 == 1``
    is a *literal* run of ``(h >> 1) + 1`` values that follow one by one.
  - delta RLE: signed 64-bit values stored as wrapping (mod 2**64) deltas from the previous
    value (the first from 0), zigzagged, then uint RLE. ``0, 1, 2, ..., 9999`` takes 8 bytes.
  - bool RLE: run lengths alternating False, True, False, ... starting with False. Only the first
    run may be empty (when the column starts with True).
  - str column: the code-point lengths as a uint RLE column, then one length-prefixed UTF-8 blob
    holding all the strings concatenated.

  Every column writer and reader takes ``counted=False`` to leave the item count out, for
  formats where the reader knows it from context (it then passes the count as ``max_items``).

* ``compress`` / ``decompress``: zlib, with a hard cap on the decompressed size.

Decoding never raises anything but ``DecodeError`` for bad input, never loops without consuming
input, and never allocates more than the caller's bounds allow: every length is checked against
the bytes remaining, and column decoders never build lists longer than their ``max_items``.
Misuse by the caller (a negative ``n`` for ``raw``, a value out of range for a writer) raises a
plain ``ValueError``.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from itertools import accumulate, groupby
from typing import Final

from cowrite.engine.errors import DecodeError

__all__ = [
    "I64_MAX",
    "I64_MIN",
    "U64_MAX",
    "Reader",
    "Writer",
    "compress",
    "decompress",
    "read_bool_rle",
    "read_delta_rle",
    "read_str_column",
    "read_uint_rle",
    "write_bool_rle",
    "write_delta_rle",
    "write_str_column",
    "write_uint_rle",
]

U64_MAX = (1 << 64) - 1
I64_MAX = (1 << 63) - 1
I64_MIN = -(1 << 63)
_SHORT_MAX: Final = (1 << 62) - 1
_NATIVE: Final = not __file__.endswith(".py")
"""Compiled by mypyc (see ``native``)? Picks the faster shape of ``_check_uints`` per build."""

Buffer = bytes | bytearray | memoryview


# ---------------------------------------------------------------------------------------------
# Varint primitives (module level so the column loops can call them without method lookups)


def _put_uint(out: bytearray, n: int) -> None:
    """Append ``n`` (already known to be in ``0..U64_MAX``) as a LEB128 varint."""
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _check_uint(n: int) -> None:
    if n < 0:
        raise ValueError(f"unsigned varint cannot encode a negative number: {n}")
    if n > U64_MAX:
        raise ValueError(f"unsigned varint cannot encode more than 64 bits: {n}")


def _check_uints(values: list[int]) -> None:
    if not _NATIVE:  # interpreted, the C builtins beat a loop
        if values and (min(values) < 0 or max(values) > U64_MAX):
            _check_uint(min(values) if min(values) < 0 else max(values))
        return
    for v in values:  # compiled, a loop of unboxed compares beats two generic passes
        if v < 0 or (v > _SHORT_MAX and v > U64_MAX):
            _check_uint(v)


def _zigzag(n: int) -> int:
    if n < I64_MIN or n > I64_MAX:
        raise ValueError(f"signed varint must be in the 64-bit signed range: {n}")
    return (n << 1) ^ (n >> 63)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode the varint at ``buf[pos]``; return ``(value, new_pos)``.

    At most 10 bytes, and the 10th may only carry the 64th bit, so the value is <= ``U64_MAX``.
    """
    end = len(buf)
    result = 0
    shift = 0
    while pos < end:
        b = buf[pos]
        pos += 1
        if shift == 63:
            if b > 1:
                raise DecodeError("varint longer than 10 bytes or wider than 64 bits")
            return result | (b << 63), pos
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
    raise DecodeError("truncated varint")


# ---------------------------------------------------------------------------------------------
# Writer / Reader


class Writer:
    """Accumulates an encoding in a bytearray."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = bytearray()

    def uint(self, n: int) -> None:
        """Append ``n`` (``0 <= n <= 2**64-1``) as an LEB128 varint."""
        if n < 0 or n > U64_MAX:
            _check_uint(n)
        _put_uint(self._buf, n)

    def sint(self, n: int) -> None:
        """Append ``n`` (``-2**63 <= n <= 2**63-1``) as a zigzag varint."""
        _put_uint(self._buf, _zigzag(n))

    def bytes_(self, b: Buffer) -> None:
        """Append a varint byte length, then the bytes."""
        mv = memoryview(b)
        _put_uint(self._buf, mv.nbytes)
        self._buf += mv

    def str_(self, s: str) -> None:
        """Append a varint UTF-8 byte length, then ``s`` as UTF-8 (lone surrogates allowed)."""
        data = s.encode("utf-8", "surrogatepass")
        _put_uint(self._buf, len(data))
        self._buf += data

    def raw(self, b: Buffer) -> None:
        """Append bytes as they are, with no length."""
        self._buf += memoryview(b)

    def getvalue(self) -> bytes:
        return bytes(self._buf)

    def __len__(self) -> int:
        return len(self._buf)


class Reader:
    """Reads what a ``Writer`` wrote. Every failure on bad input is a ``DecodeError``."""

    __slots__ = ("_buf", "_pos")

    def __init__(self, data: Buffer, start: int = 0) -> None:
        """``start``: where to begin reading (a header already checked: no copy of the rest)."""
        self._buf = bytes(data)
        self._pos = start

    @property
    def position(self) -> int:
        """Bytes consumed so far."""
        return self._pos

    def remaining(self) -> int:
        return len(self._buf) - self._pos

    def at_end(self) -> bool:
        return self._pos >= len(self._buf)

    def expect_end(self) -> None:
        """Raise ``DecodeError`` if any bytes are left unread."""
        if self._pos < len(self._buf):
            raise DecodeError(f"{len(self._buf) - self._pos} trailing bytes after the data")

    def uint(self, max_value: int = U64_MAX) -> int:
        """Read an unsigned varint; ``DecodeError`` if it is malformed or above ``max_value``."""
        buf = self._buf
        pos = self._pos
        if pos < len(buf) and buf[pos] < 0x80:
            value = buf[pos]
            pos += 1
        else:
            value, pos = _read_varint(buf, pos)
        if value > max_value:
            raise DecodeError(f"value {value} exceeds the maximum {max_value}")
        self._pos = pos
        return value

    def sint(self) -> int:
        """Read a zigzag varint (always within the 64-bit signed range)."""
        z = self.uint()
        return (z >> 1) ^ -(z & 1)

    def count(self, max_count: int | None = None, *, per_item_min_bytes: int = 1) -> int:
        """Read a uint used as the number of elements that follow, and check it is plausible.

        Rule: if each encoded element takes at least ``per_item_min_bytes`` bytes (default 1, true
        of anything varint-encoded), a count with ``count * per_item_min_bytes > remaining()`` is
        corrupt. Elements that may take no bytes at all (``per_item_min_bytes=0``, e.g. items of
        a run-length column) cannot be checked that way, so the caller must then pass an explicit
        ``max_count``. In every case a count above ``max_count`` is corrupt.
        """
        if per_item_min_bytes < 0:
            raise ValueError("per_item_min_bytes must be >= 0")
        if per_item_min_bytes == 0 and max_count is None:
            raise ValueError("count(per_item_min_bytes=0) needs an explicit max_count")
        n = self.uint()
        if max_count is not None and n > max_count:
            raise DecodeError(f"count {n} exceeds the maximum {max_count}")
        if per_item_min_bytes and n * per_item_min_bytes > self.remaining():
            raise DecodeError(f"count {n} cannot fit in the {self.remaining()} bytes remaining")
        return n

    def raw(self, n: int) -> bytes:
        """Read exactly ``n`` bytes."""
        if n < 0:
            raise ValueError(f"cannot read a negative number of bytes: {n}")
        pos = self._pos
        if n > len(self._buf) - pos:
            raise DecodeError(f"need {n} bytes, only {len(self._buf) - pos} remain")
        self._pos = pos + n
        return self._buf[pos : pos + n]

    def bytes_(self, max_len: int | None = None) -> bytes:
        """Read length-prefixed bytes; ``DecodeError`` if longer than ``max_len``."""
        n = self.uint()
        if max_len is not None and n > max_len:
            raise DecodeError(f"byte string of length {n} exceeds the maximum {max_len}")
        return self.raw(n)

    def str_(self, max_len: int | None = None) -> str:
        """Read a length-prefixed UTF-8 string; ``max_len`` bounds its *encoded* byte length."""
        data = self.bytes_(max_len)
        try:
            return data.decode("utf-8", "surrogatepass")
        except UnicodeDecodeError as exc:
            raise DecodeError(f"invalid UTF-8 in string: {exc.reason}") from None


# ---------------------------------------------------------------------------------------------
# Columns


def _read_column_count(r: Reader, max_items: int, counted: bool = True) -> int:
    if not counted:
        if max_items < 0:
            raise ValueError(f"an uncounted column needs its item count, not {max_items}")
        return max_items
    n = r.uint()
    if n > max_items:
        raise DecodeError(f"column of {n} items exceeds the maximum {max_items}")
    return n


def write_uint_rle(w: Writer, values: Sequence[int], *, counted: bool = True) -> None:
    """Write unsigned ints (each ``0..2**64-1``) as an item count then repeat/literal runs.

    ``counted=False`` leaves the item count out (every column writer takes it): the reader must
    know it and pass it as ``max_items`` with ``counted=False``.
    """
    if not isinstance(values, list):
        values = list(values)
    _check_uints(values)
    out = w._buf
    n = len(values)
    if counted:
        _put_uint(out, n)
    i = 0
    lit = 0  # start of the pending literal stretch values[lit:i]
    while i < n:
        v = values[i]
        j = i + 1
        while j < n and values[j] == v:
            j += 1
        run = j - i
        # A repeat run costs header + value; inside a literal each value costs its own bytes,
        # and breaking a literal stretch costs an extra header, so pairs only repeat on their own.
        if run >= 3 or (run == 2 and lit == i):
            if lit < i:
                _put_literal(out, values, lit, i)
            h = (run - 1) << 1
            if h < 0x80:
                out.append(h)
            else:
                _put_uint(out, h)
            if v < 0x80:
                out.append(v)
            else:
                _put_uint(out, v)
            lit = j
        i = j
    if lit < n:
        _put_literal(out, values, lit, n)


def _put_literal(out: bytearray, values: list[int], start: int, stop: int) -> None:
    h = ((stop - start - 1) << 1) | 1
    if h < 0x80:
        out.append(h)
    else:
        _put_uint(out, h)
    append = out.append
    for k in range(start, stop):
        v = values[k]
        if v < 0x80:
            append(v)
        else:
            while v >= 0x80:
                append((v & 0x7F) | 0x80)
                v >>= 7
            append(v)


def read_uint_rle(r: Reader, max_items: int, *, counted: bool = True) -> list[int]:
    """Inverse of ``write_uint_rle``; ``DecodeError`` if it would hold more than ``max_items``.

    ``counted=False`` (every column reader takes it) reads an uncounted column of exactly
    ``max_items`` items.
    """
    n = _read_column_count(r, max_items, counted)
    out: list[int] = []
    buf = r._buf
    end = len(buf)
    pos = r._pos
    left = n
    try:
        while left:
            h = buf[pos]
            if h < 0x80:
                pos += 1
            else:
                h, pos = _read_varint(buf, pos)
            length = (h >> 1) + 1
            if length > left:
                raise DecodeError(f"run of {length} items overruns the column of {n}")
            left -= length
            if h & 1:
                if length > end - pos:
                    raise DecodeError(f"literal run of {length} values in {end - pos} bytes")
                for _ in range(length):
                    v = buf[pos]
                    if v < 0x80:
                        pos += 1
                    elif buf[pos + 1] < 0x80:  # inline two-byte varints too
                        v = (v & 0x7F) | (buf[pos + 1] << 7)
                        pos += 2
                    else:
                        v, pos = _read_varint(buf, pos)
                    out.append(v)
            else:
                v = buf[pos]
                if v < 0x80:
                    pos += 1
                else:
                    v, pos = _read_varint(buf, pos)
                if length == 1:
                    out.append(v)
                else:
                    out += [v] * length
    except IndexError:
        raise DecodeError("truncated run-length column") from None
    r._pos = pos
    return out


def write_delta_rle(w: Writer, values: Sequence[int], *, counted: bool = True) -> None:
    """Write signed 64-bit ints as wrapping deltas (first from 0), zigzagged, uint RLE."""
    if values:
        lo = min(values)
        hi = max(values)
        if lo < I64_MIN or hi > I64_MAX:
            _zigzag(lo if lo < I64_MIN else hi)  # raises ValueError
    deltas = [b - a for a, b in zip((0, *values[:-1]), values, strict=True)] if values else []
    if deltas and (min(deltas) < I64_MIN or max(deltas) > I64_MAX):
        deltas = [((d + (1 << 63)) & U64_MAX) - (1 << 63) for d in deltas]
    write_uint_rle(w, [(d << 1) ^ (d >> 63) for d in deltas], counted=counted)


def read_delta_rle(r: Reader, max_items: int, *, counted: bool = True) -> list[int]:
    """Inverse of ``write_delta_rle``; every value is within the 64-bit signed range."""
    zs = read_uint_rle(r, max_items, counted=counted)
    values = list(accumulate([(z >> 1) ^ -(z & 1) for z in zs]))
    # Valid encodings never leave the range; hostile ones wrap, exactly as the writer wraps.
    if values and (min(values) < I64_MIN or max(values) > I64_MAX):
        values = [((v + (1 << 63)) & U64_MAX) - (1 << 63) for v in values]
    return values


def write_bool_rle(w: Writer, values: Sequence[bool], *, counted: bool = True) -> None:
    """Write bools as an item count then run lengths alternating False, True, ... from False."""
    out = w._buf
    if counted:
        _put_uint(out, len(values))
    first = True
    for key, group in groupby(map(bool, values)):
        if first and key:
            out.append(0)  # empty leading False run
        first = False
        run = sum(1 for _ in group)
        if run < 0x80:
            out.append(run)
        else:
            _put_uint(out, run)


def read_bool_rle(r: Reader, max_items: int, *, counted: bool = True) -> list[bool]:
    """Inverse of ``write_bool_rle``; ``DecodeError`` on runs that overrun or are empty."""
    n = _read_column_count(r, max_items, counted)
    out: list[bool] = []
    buf = r._buf
    pos = r._pos
    left = n
    cur = False
    first = True
    while left:
        if pos < len(buf) and buf[pos] < 0x80:
            run = buf[pos]
            pos += 1
        else:
            run, pos = _read_varint(buf, pos)
        if run > left:
            raise DecodeError(f"run of {run} items overruns the column of {n}")
        if run == 0 and not first:
            raise DecodeError("empty run in a bool column")
        first = False
        out += [cur] * run
        left -= run
        cur = not cur
    r._pos = pos
    return out


def write_str_column(w: Writer, values: Sequence[str], *, counted: bool = True) -> None:
    """Write strings as their code-point lengths (uint RLE) then one concatenated UTF-8 blob."""
    write_uint_rle(w, [len(s) for s in values], counted=counted)
    w.bytes_("".join(values).encode("utf-8", "surrogatepass"))


def read_str_column(r: Reader, max_items: int, *, counted: bool = True) -> list[str]:
    """Inverse of ``write_str_column``; the lengths must add up to the blob's length."""
    lengths = read_uint_rle(r, max_items, counted=counted)
    blob = r.bytes_()
    try:
        text = blob.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"invalid UTF-8 in string column: {exc.reason}") from None
    total = 0
    for n in lengths:
        total += n
    if total != len(text):
        raise DecodeError(
            f"string lengths add up to {total} code points, the blob holds {len(text)}"
        )
    if len(lengths) == 1:
        return [text]
    out: list[str] = []
    start = 0
    for n in lengths:
        out.append(text[start : start + n])
        start += n
    return out


# ---------------------------------------------------------------------------------------------
# Bounded compression


def compress(data: Buffer, level: int = 6) -> bytes:
    """zlib-compress ``data``."""
    return zlib.compress(data, level)


def decompress(data: Buffer, max_output: int) -> bytes:
    """Inverse of ``compress``, refusing to produce more than ``max_output`` bytes.

    A zip bomb raises ``DecodeError`` after producing at most ``max_output + 1`` bytes; truncated
    or corrupt streams and trailing bytes after the stream raise ``DecodeError`` too.
    """
    if max_output < 0:
        raise ValueError(f"max_output must be >= 0: {max_output}")
    d = zlib.decompressobj()
    try:
        # max_length=0 would mean "unlimited", so always ask for at least one byte more.
        out = d.decompress(data, max_output + 1)
    except zlib.error as exc:
        raise DecodeError(f"corrupt compressed data: {exc}") from None
    if len(out) > max_output:
        raise DecodeError(f"decompressed size exceeds the maximum of {max_output} bytes")
    if not d.eof:
        raise DecodeError("truncated compressed data")
    if d.unused_data:
        raise DecodeError(f"{len(d.unused_data)} trailing bytes after the compressed data")
    return out
