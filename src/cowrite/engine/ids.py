"""Operation ids and version vectors.

Every operation a replica makes gets an id ``(replica, seq)`` where ``seq`` counts that replica's
operations from 0 without gaps; an insert of n items takes n consecutive seqs (one per character or
list element), every other operation takes one. A version vector maps each replica to the number
of its operations seen, so "has this replica seen op (r, s)" is ``s < vv.get(r, 0)``.

Inside one document, replicas are numbered by a small local *client index* and an id is packed
into one int, ``seq << CLIENT_BITS | client``, so that the hot paths compare and step ids as plain
ints: the id after ``x`` in the same run is ``x + ONE``. Packed ids never leave a document: the
encoder writes replica ids.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

CLIENT_BITS: Final = 20
CLIENT_MASK: Final = (1 << CLIENT_BITS) - 1
ONE: Final = 1 << CLIENT_BITS
NO_ID: Final = -1
"""Packed id meaning "none" (the start or the end of a sequence as an origin)."""

MAX_REPLICA_ID = (1 << 64) - 1
MAX_CLIENTS = CLIENT_MASK + 1

VersionVector = dict[int, int]
"""replica id -> number of that replica's operations seen (the next expected seq)."""


def pack(client: int, seq: int) -> int:
    return (seq << CLIENT_BITS) | client


def client_of(packed: int) -> int:
    return packed & CLIENT_MASK


def seq_of(packed: int) -> int:
    return packed >> CLIENT_BITS


def vv_includes(vv: Mapping[int, int], other: Mapping[int, int]) -> bool:
    """True if ``vv`` has seen everything ``other`` has seen."""
    return all(vv.get(r, 0) >= s for r, s in other.items())


def vv_merge(a: Mapping[int, int], b: Mapping[int, int]) -> VersionVector:
    out = dict(a)
    for r, s in b.items():
        if s > out.get(r, 0):
            out[r] = s
    return out


def vv_min(vectors: list[Mapping[int, int]]) -> VersionVector:
    """The greatest version every vector includes (pointwise minimum)."""
    if not vectors:
        return {}
    out: VersionVector = {}
    first, rest = vectors[0], vectors[1:]
    for r, s in first.items():
        m = min([s, *(v.get(r, 0) for v in rest)])
        if m > 0:
            out[r] = m
    return out
