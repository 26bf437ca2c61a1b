"""The memory store packs a version tail on a worker thread (no stall of the event loop) and swaps
the blocks in on the loop, unless the tail or the last block changed meanwhile; every version
reads back the same whenever the packing ran."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite.adapters.store import VersionRecord
from cowrite.adapters.store import _version_blocks as vb
from cowrite.adapters.store._memory_versions import PackedVersions

T0 = 1_700_000_000_000


def _version(seq: int) -> VersionRecord:
    return VersionRecord(seq, T0 + 1000 * seq, (("u1", "Ann"),), "typed", 1, bytes([5, seq % 128]))


async def _settle(versions: PackedVersions) -> None:
    while versions._packing is not None:
        await asyncio.wait({versions._packing})
        await asyncio.sleep(0)  # the swap callback runs


def test_without_a_running_loop_the_tail_is_packed_at_once() -> None:
    versions = PackedVersions(4)
    for seq in range(1, 5):
        versions.add(_version(seq))
    assert not versions.tail and versions.counts == [4]


async def test_a_due_tail_is_packed_off_the_loop_and_swapped_in() -> None:
    versions = PackedVersions(4)
    for seq in range(1, 5):
        versions.add(_version(seq))
    assert len(versions.tail) == 4 and versions._packing is not None  # not packed in add
    assert versions.get(2) == _version(2)
    await _settle(versions)
    assert not versions.tail and versions.counts == [4]
    assert versions.list(0, 100, 100, False) == [_version(s) for s in range(1, 5)]


async def test_a_name_given_while_packing_cancels_the_swap_and_the_next_add_packs_again() -> None:
    versions = PackedVersions(4)
    for seq in range(1, 5):
        versions.add(_version(seq))
    named = versions.name(2, "draft", T0)
    await _settle(versions)
    assert len(versions.tail) == 4 and not versions.blocks  # the plan was stale
    versions.add(_version(5))
    await _settle(versions)
    assert not versions.tail and versions.get(2) == named
    assert versions.list(0, 100, 100, True) == [named]


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 60), st.sampled_from([1, 3, 4, 8]), st.integers(0, 3))
def test_every_version_reads_back_whenever_the_packs_ran(n: int, block: int, every: int) -> None:
    async def main() -> None:
        versions = PackedVersions(block)
        added = []
        for seq in range(1, n + 1):
            versions.add(_version(seq))
            added.append(_version(seq))
            if every and seq % every == 0:
                await asyncio.sleep(0)  # sometimes a swap lands in between
            if seq % 7 == 0:
                added[1] = versions.name(2, f"v{seq}", T0) or added[1]
            assert versions.list(0, 10_000, 10_000, False) == added
        await _settle(versions)
        assert versions.list(0, 10_000, 10_000, False) == added
        assert [versions.get(v.seq) for v in added] == added
        # a plan made stale by a rename waits for the next version
        versions.add(_version(n + 1))
        added.append(_version(n + 1))
        await _settle(versions)
        assert versions.list(0, 10_000, 10_000, False) == added
        assert len(versions.tail) < max(2, min(vb.TAIL_VERSIONS, block))

    asyncio.run(main())


def test_garbage_no_versions_nothing_to_pack() -> None:
    versions = PackedVersions(4)
    assert versions.get(1) is None and versions.list(0, 10, 10, False) == []
    assert versions._packing is None and replace(_version(1), name=None) == _version(1)
