"""Packed version history: consecutive versions of a document as one compressed, columnar block.

Why: a version per edit is a version per keystroke; a row each (~66 bytes in SQLite) made the
history of a typed document ~130x the document. Consecutive versions share almost everything:
seqs go up by one, times by a few hundred ms, the author and kind repeat, and each version's
vector is the previous one plus the ops of one edit. A block keeps them as columns (seq gaps;
time deltas over their greatest common divisor; an author dictionary; kind, size, merged; vector
deltas against the previous version, the first change less the version's size) of LEB128
varints, then compressed (LZMA2 raw or zlib, whichever is smaller). Lossless: every field reads
back exactly, and a vector that is not the server's canonical encoding (sorted (replica, count)
varint pairs, ``rooms.history.encode_vector``) or that drops a replica is kept verbatim.

Names are not in blocks (the stores keep them per seq beside the blocks, so naming a packed
version does not rewrite its block). Caller's contract: ``encode`` gets records in increasing
seq order; ``decode`` raises ``ValueError`` for bytes ``encode`` did not make.

Layout: a format byte (``_ZLIB``/``_LZMA``/``_RAW``) then the body, compressed or not. Body:
count n; per column (n entries unless said): seq (first, then gaps - 1), time (zigzag first,
divisor, zigzag deltas / divisor), author table (count; per entry the pair count, then ids and
names as length-prefixed UTF-8), author index, kind table (count, names), kind index, size
(zigzag), merged (zigzag), restored (count, then position and zigzag value pairs), replica table
(count, ids), vector tag (0 delta, 1 verbatim), per delta vector its change count, per change
its replica index and zigzag delta (the first: delta - size), per verbatim vector its bytes.
"""

from __future__ import annotations

import itertools
import lzma
import math
import threading
import zlib
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

from cowrite.adapters.store.base import VersionRecord
from cowrite.engine import pace

PACE_MASK = 63
"""Off the main thread, the per-version loops call ``pace`` (``engine/threads.py``) every 64
versions: a pack encodes on a worker thread, and the event loop's turns come first."""


def _pacer() -> Callable[[], None]:
    """``pace`` on a worker thread; on the main thread (the event loop's) nothing: dropping the
    lock there would hand the loop's turn to a worker."""
    return pace if threading.current_thread() is not threading.main_thread() else _no_pace


def _no_pace() -> None:
    pass


BLOCK_VERSIONS = 2048
"""Versions a store packs into one block (the tail of newer versions stays one row each)."""

_RAW, _ZLIB, _LZMA = 0, 1, 2
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9, "dict_size": 1 << 20, "lc": 0, "lp": 0}]
_MAX_BODY = 64 << 20


# ------------------------------------------------------------------------------------ varints


def _put(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _zz(value: int) -> int:
    return value * 2 if value >= 0 else -value * 2 - 1


def _unzz(value: int) -> int:
    return value >> 1 if not value & 1 else -(value >> 1) - 1


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def uint(self) -> int:
        data, pos = self.data, self.pos
        try:
            byte = data[pos]
            if byte < 0x80:
                self.pos = pos + 1
                return byte
            value = shift = 0
            while True:
                byte = data[pos]
                pos += 1
                value |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
                if shift > 70:
                    raise ValueError("a varint in a version block is too long")
        except IndexError:
            raise ValueError("a truncated version block") from None
        self.pos = pos
        return value

    def uints(self, n: int) -> list[int]:
        return [self.uint() for _ in range(n)]

    def count(self, most: int) -> int:
        n = self.uint()
        if n > most:
            raise ValueError("a count in a version block is out of range")
        return n

    def raw(self) -> bytes:
        n = self.count(len(self.data) - self.pos)
        start = self.pos
        self.pos += n
        return self.data[start : self.pos]

    def text(self) -> str:
        return self.raw().decode("utf-8", "surrogatepass")


def _put_raw(out: bytearray, data: bytes) -> None:
    _put(out, len(data))
    out += data


def _put_text(out: bytearray, text: str) -> None:
    _put_raw(out, text.encode("utf-8", "surrogatepass"))


# ------------------------------------------------------------------------------------ vectors


def parse_vector(data: bytes) -> list[tuple[int, int]] | None:
    """The (replica, count) pairs of a canonical vector encoding, or None if ``data`` is not one
    (then it is stored verbatim)."""
    r = _Reader(data)
    pairs: list[tuple[int, int]] = []
    try:
        while r.pos < len(data):
            pairs.append((r.uint(), r.uint()))
    except ValueError:
        return None
    if any(a[0] >= b[0] for a, b in itertools.pairwise(pairs)):
        return None
    if _vector_bytes(pairs) != data:
        return None
    return pairs


def _vector_bytes(pairs: Iterable[tuple[int, int]]) -> bytes:
    out = bytearray()
    for replica, count in pairs:
        _put(out, replica)
        _put(out, count)
    return bytes(out)


# ----------------------------------------------------------------------------------- encoding


def encode(records: Sequence[VersionRecord]) -> bytes:
    """One block holding ``records`` (increasing seqs; their names are not kept)."""
    n = len(records)
    out = bytearray()
    _put(out, n)
    if n == 0:
        return bytes([_RAW]) + bytes(out)
    seqs = [v.seq for v in records]
    _put(out, _zz(seqs[0]))
    for a, b in itertools.pairwise(seqs):
        if b <= a:
            raise ValueError("versions of a block must have increasing seqs")
        _put(out, b - a - 1)
    times = [v.time_ms for v in records]
    deltas = [b - a for a, b in itertools.pairwise(times)]
    step = math.gcd(*deltas) if deltas else 1
    step = step or 1
    _put(out, _zz(times[0]))
    _put(out, step)
    for d in deltas:
        _put(out, _zz(d // step))
    _table_column(out, [v.authors for v in records], _put_authors)
    _table_column(out, [v.how for v in records], _put_text)
    for v in records:
        _put(out, _zz(v.size))
    for v in records:
        _put(out, _zz(v.merged))
    restored = [(i, v.restored_from) for i, v in enumerate(records) if v.restored_from is not None]
    _put(out, len(restored))
    for i, value in restored:
        _put(out, i)
        _put(out, _zz(value))
    _vectors(out, records)
    return _compress(bytes(out))


def _put_authors(out: bytearray, authors: tuple[tuple[str, str], ...]) -> None:
    _put(out, len(authors))
    for i, name in authors:
        _put_text(out, i)
        _put_text(out, name)


def _table_column(out: bytearray, values: list[object], put: object) -> None:
    table: dict[object, int] = {}
    index = [table.setdefault(value, len(table)) for value in values]
    _put(out, len(table))
    for value in table:
        put(out, value)  # type: ignore[operator]
    for i in index:
        _put(out, i)


def _vectors(out: bytearray, records: Sequence[VersionRecord]) -> None:
    yield_lock = _pacer()
    replicas: dict[int, int] = {}
    tags = bytearray()
    changes = bytearray()
    verbatim = bytearray()
    prev: dict[int, int] = {}
    for i, v in enumerate(records):
        if not i & PACE_MASK:
            yield_lock()
        pairs = parse_vector(v.vector)
        if pairs is None or any(c == 0 for _, c in pairs) or not prev.keys() <= dict(pairs).keys():
            tags.append(1)
            _put_raw(verbatim, v.vector)
            continue
        tags.append(0)
        changed = [(r, c - prev.get(r, 0)) for r, c in pairs if c != prev.get(r, 0)]
        _put(changes, len(changed))
        for k, (r, delta) in enumerate(changed):
            _put(changes, replicas.setdefault(r, len(replicas)))
            _put(changes, _zz(delta - v.size if k == 0 else delta))
        prev = dict(pairs)
    _put(out, len(replicas))
    for r in replicas:
        _put(out, r)
    out += tags
    out += changes
    out += verbatim


def _compress(body: bytes) -> bytes:
    best = bytes([_RAW]) + body
    packed = bytes([_ZLIB]) + zlib.compress(body, 9)
    if len(packed) < len(best):
        best = packed
    packed = bytes([_LZMA]) + lzma.compress(body, lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
    if len(packed) < len(best):
        best = packed
    return best


# ----------------------------------------------------------------------------------- decoding


def _body(data: bytes) -> bytes:
    if not data:
        raise ValueError("an empty version block")
    kind, rest = data[0], data[1:]
    try:
        if kind == _RAW:
            return rest
        if kind == _ZLIB:
            z = zlib.decompressobj()
            body = z.decompress(rest, _MAX_BODY)
            if z.unconsumed_tail or not z.eof:
                raise ValueError("a damaged version block")
            return body
        if kind == _LZMA:
            lz = lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=_LZMA_FILTERS)
            body = lz.decompress(rest, _MAX_BODY)
            if not lz.eof and lz.needs_input is False:
                raise ValueError("a version block too large")
            return body
    except (zlib.error, lzma.LZMAError) as exc:
        raise ValueError(f"a damaged version block: {exc}") from None
    raise ValueError(f"unknown version block format {kind}")


def decode(data: bytes, after: int = -(2**63), before: int = 2**63) -> list[VersionRecord]:
    """The versions of a block with ``after < seq < before``, in seq order (without names)."""
    try:
        return _decode(_Reader(_body(data)), after, before)
    except (IndexError, UnicodeDecodeError) as exc:
        raise ValueError(f"a damaged version block: {exc}") from None


def _decode(r: _Reader, after: int, before: int) -> list[VersionRecord]:
    yield_lock = _pacer()
    n = r.count(len(r.data))
    if n == 0:
        return []
    seqs = [_unzz(r.uint())]
    for _ in range(n - 1):
        seqs.append(seqs[-1] + r.uint() + 1)
    times = [_unzz(r.uint())]
    step = r.uint()
    for _ in range(n - 1):
        times.append(times[-1] + _unzz(r.uint()) * step)
    authors_table = []
    for _ in range(r.count(n)):
        pairs = tuple((r.text(), r.text()) for _ in range(r.count(len(r.data))))
        authors_table.append(pairs)
    authors = [authors_table[i] for i in r.uints(n)]
    hows_table = [r.text() for _ in range(r.count(n))]
    hows = [hows_table[i] for i in r.uints(n)]
    sizes = [_unzz(x) for x in r.uints(n)]
    merged = [_unzz(x) for x in r.uints(n)]
    restored: dict[int, int] = {}
    for _ in range(r.count(n)):
        i = r.uint()
        restored[i] = _unzz(r.uint())
    replicas = [r.uint() for _ in range(r.count(len(r.data)))]
    tags = r.data[r.pos : r.pos + n]
    r.pos += n
    if len(tags) != n:
        raise ValueError("a truncated version block")
    out: list[VersionRecord] = []
    vector: dict[int, int] = {}
    deltas = [t == 0 for t in tags]
    changes: list[list[tuple[int, int]]] = []
    for i in range(n):
        if not i & PACE_MASK:
            yield_lock()
        if deltas[i]:
            changes.append([(r.uint(), _unzz(r.uint())) for _ in range(r.count(len(r.data)))])
        else:
            changes.append([])
    for i in range(n):
        if not i & PACE_MASK:
            yield_lock()
        if deltas[i]:
            for k, (ri, delta) in enumerate(changes[i]):
                replica = replicas[ri]
                vector[replica] = vector.get(replica, 0) + (delta + sizes[i] if k == 0 else delta)
            if not after < seqs[i] < before:
                continue
            vec = _vector_bytes(sorted(vector.items()))
        else:
            vec = r.raw()
            if not after < seqs[i] < before:
                continue
        out.append(
            VersionRecord(
                seq=seqs[i],
                time_ms=times[i],
                authors=authors[i],
                how=hows[i],
                size=sizes[i],
                vector=vec,
                restored_from=restored.get(i),
                merged=merged[i],
            )
        )
    return out


# ------------------------------------------------------------------------- what stores share

TAIL_VERSIONS = BLOCK_VERSIONS // 4
"""Versions a document keeps as rows (the tail) before a store packs them into blocks: a
quarter block. A pack decodes a partly filled last block and encodes it again with the tail
(``plan_pack``'s top-up), so a tail of 256 in blocks of 2,048 encoded every version about 4.5
times and decoded it 3.5 (~52 µs of a reader's CPU per version in SQLite); a tail of 512 encodes
it ~2.5 times, a whole block (2,048) once (~14 µs). The tail is also what a version costs on
disk: a row takes ~64 bytes where a packed version takes under one, so a whole-block tail (up to
2,047 rows, ~130 kB) broke issue 13's bound on the automerge-paper history (history + document
≤ 2× the encoded document: 2.04× and 2.38×, from 1.31× and 1.64×); a quarter block keeps the
worst case under it (~33 kB of rows: ~1.8× with human typing stored to 1 s)."""


def pack_due(tail_first: int | None, seq: int, block: int) -> bool:
    """Whether the tail, whose oldest seq is ``tail_first``, should be packed now that version
    ``seq`` joined it (it spans ``min(TAIL_VERSIONS, block)`` seqs)."""
    return tail_first is not None and seq - tail_first + 1 >= min(TAIL_VERSIONS, block)


def chunks(records: Sequence[VersionRecord], block: int) -> list[list[VersionRecord]]:
    """``records`` cut into blocks of at most ``block`` versions."""
    return [list(records[i : i + block]) for i in range(0, len(records), block)]


def thin_block(
    records: Sequence[VersionRecord],
    removed: set[int],
    updated: dict[int, VersionRecord],
    named: set[int],
) -> tuple[list[VersionRecord], int]:
    """Retention applied to a block's versions: those of ``removed`` go unless ``named``; those
    of ``updated`` take its authors, size and merged. Returns the versions kept and how many
    went."""
    kept: list[VersionRecord] = []
    for v in records:
        if v.seq in removed and v.seq not in named:
            continue
        u = updated.get(v.seq)
        if u is not None:
            v = VersionRecord(
                v.seq,
                v.time_ms,
                u.authors,
                v.how,
                u.size,
                v.vector,
                v.restored_from,
                merged=u.merged,
            )
        kept.append(v)
    return kept, len(records) - len(kept)


def named(v: VersionRecord, names: dict[int, tuple[str, int]]) -> VersionRecord:
    """``v`` with its name (``names``: seq -> (name, named_ms)), if it has one."""
    found = names.get(v.seq)
    if found is None:
        return v
    return VersionRecord(
        v.seq,
        v.time_ms,
        v.authors,
        v.how,
        v.size,
        v.vector,
        v.restored_from,
        found[0],
        found[1],
        v.merged,
    )


def blocks_holding(blocks: Sequence[Sequence[int]], seqs: Iterable[int]) -> set[int]:
    """The indexes of the ``(first_seq, last_seq)`` ``blocks`` (ordered by ``last_seq``) that
    hold any of ``seqs`` (a seq in no block, e.g. in the unpacked tail, names none)."""
    ends = [int(b[1]) for b in blocks]
    held: set[int] = set()
    for seq in seqs:
        k = bisect_left(ends, seq)
        if k < len(ends) and int(blocks[k][0]) <= seq:
            held.add(k)
    return held
