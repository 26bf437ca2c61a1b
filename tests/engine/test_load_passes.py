"""The paced passes of a load (``engine/load_passes.py``): the bucket sort by id sorts, whatever
the spread of the seqs (uniform, clustered, far apart: crowded buckets)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite.engine import load_passes
from cowrite.engine.errors import DecodeError
from cowrite.engine.ids import CLIENT_BITS
from cowrite.engine.runs import Item


def _items(seqs: list[int]) -> list[Item]:
    return [Item((s << CLIENT_BITS) | 1, "ab", -1, -1, False) for s in seqs]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(0, (1 << 43) - 1), unique=True, max_size=300),
    st.randoms(use_true_random=False),
)
def test_the_paced_sort_sorts_by_id(seqs: list[int], rng: random.Random) -> None:
    # uniform, clustered and far-apart seqs: crowded buckets go through ``sorted``
    seqs = seqs + [1000 + k for k in range(rng.randrange(40)) if 1000 + k not in seqs]
    rng.shuffle(seqs)
    items = _items(seqs)
    out = load_passes.sorted_by_id(items)
    assert [it.id for it in out] == sorted(it.id for it in items)
    assert sorted(map(id, out)) == sorted(map(id, items))  # the same objects, each once


def test_overlapping_items_are_refused() -> None:
    items = _items([0, 1])  # "ab" at seq 0 covers seq 1 too
    with pytest.raises(DecodeError, match="overlap"):
        load_passes.starts(items)
