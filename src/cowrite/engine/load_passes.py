"""Paced passes over the long lists of a state's load (``state_load``): checks, id packing, the
sort by id and freeing, each calling ``pace()`` every ``PACE_EVERY`` items (``threads``), so that
none holds the interpreter lock for long. Caller's contract: the values are a load's columns and
items, already decoded; these raise ``DecodeError`` where the load must refuse them.
"""

from __future__ import annotations

from array import array
from typing import Any

from cowrite.engine.errors import DecodeError
from cowrite.engine.ids import CLIENT_BITS
from cowrite.engine.runs import Item
from cowrite.engine.threads import PACE_EVERY, pace


def below(values: array[int] | list[int], bound: int) -> bool:
    """Every value is below ``bound`` (a paced ``max``)."""
    for k in range(0, len(values), 16 * PACE_EVERY):
        if max(values[k : k + 16 * PACE_EVERY]) >= bound:
            return False
        pace()
    return True


def without(flags: list[int], flag: int) -> bool:
    """No value has ``flag`` set (paced)."""
    for k, f in enumerate(flags):
        if k & (PACE_EVERY - 1) == PACE_EVERY - 1:
            pace()
        if f & flag:
            return False
    return True


def packed(clients: array[int], seqs: array[int], cmap: list[int]) -> list[int]:
    """Packed ids from a client column and a seq column (of equal length, checked)."""
    if len(clients) != len(seqs):
        raise DecodeError("item columns disagree")
    out: list[int] = []
    append = out.append
    for k in range(len(clients)):
        if k & (PACE_EVERY - 1) == PACE_EVERY - 1:
            pace()
        append((seqs[k] << CLIENT_BITS) | cmap[clients[k]])
    return out


def drop(values: list[Any]) -> None:
    """Empty a long list a slice at a time: freeing a million objects at once is one long hold."""
    while values:
        del values[-16 * PACE_EVERY :]
        pace()


def sorted_by_id(items: list[Item]) -> list[Item]:
    """``items`` (of one replica) sorted by id, pacing throughout: a bucket sort on the seq (one
    ``list.sort`` of 700k items held the lock for a fifth of a second). Buckets are as many as
    items, so most hold one or two; starts are distinct, so a bucket holds at most its share of
    the seq range (``span / n``), sorted at once by ``sorted`` when over 16. Reads the items in
    their given order only (document order: memory order, mostly)."""
    n = len(items)
    if n < 2:
        return items
    seqs: list[int] = []
    for k in range(n):
        if k & (PACE_EVERY - 1) == PACE_EVERY - 1:
            pace()
        seqs.append(items[k].id >> CLIENT_BITS)
    lo = hi = seqs[0]
    for k in range(0, n, 16 * PACE_EVERY):  # min and max a slice at a time
        pace()
        part = seqs[k : k + 16 * PACE_EVERY]
        low, high = min(part), max(part)
        lo = min(lo, low)
        hi = max(hi, high)
    span = hi - lo + 1
    pace()
    where = [0] * n  # each item's bucket
    pace()  # allocating megabytes takes a few ms each (fresh pages)
    ends = [0] * (n + 1)  # counts, then where each bucket starts, then where it ends
    pace()
    for k in range(n):
        if k & (PACE_EVERY - 1) == PACE_EVERY - 1:
            pace()
        b = (seqs[k] - lo) * n // span
        where[k] = b
        ends[b + 1] += 1
    total = 0
    for b in range(n + 1):
        if b & (PACE_EVERY - 1) == PACE_EVERY - 1:
            pace()
        total += ends[b]
        ends[b] = total
    pace()
    out: list[Item | None] = [None] * n
    pace()
    keys = [0] * n  # the seq of each item of ``out``
    pace()
    for k in range(n):
        if k & (PACE_EVERY - 1) == PACE_EVERY - 1:
            pace()
        b = where[k]
        at = ends[b]
        out[at] = items[k]
        keys[at] = seqs[k]
        ends[b] = at + 1
    start = 0
    for b in range(n):
        if b & (PACE_EVERY - 1) == PACE_EVERY - 1:
            pace()
        end = ends[b]
        if end - start > 1:
            _sort_bucket(out, keys, start, end)
        start = end
    for ints in (seqs, where, ends, keys):  # freed a slice at a time
        drop(ints)
    return out  # type: ignore[return-value]  # every slot was filled


def _sort_bucket(out: list[Item | None], keys: list[int], start: int, end: int) -> None:
    if end - start > 16:  # seqs far from uniform: list.sort, on this bucket only
        pairs = sorted(zip(keys[start:end], range(start, end), strict=True))
        part = [out[k] for _, k in pairs]
        out[start:end] = part
        return
    for k in range(start + 1, end):  # insertion sort: a bucket holds a few items
        it = out[k]
        key = keys[k]
        j = k - 1
        while j >= start and keys[j] > key:
            out[j + 1] = out[j]
            keys[j + 1] = keys[j]
            j -= 1
        out[j + 1] = it
        keys[j + 1] = key


def starts(items: list[Item]) -> list[int]:
    """The first seq of each of one replica's items (sorted by id), checking none overlap."""
    starts: list[int] = []
    append = starts.append
    end = 0
    for k, it in enumerate(items):
        if k & (PACE_EVERY - 1) == PACE_EVERY - 1:
            pace()
        s = it.id >> CLIENT_BITS
        if s < end:
            raise DecodeError("items overlap")
        append(s)
        end = s + len(it.content)
    return starts


__all__ = ["below", "drop", "packed", "sorted_by_id", "starts", "without"]
