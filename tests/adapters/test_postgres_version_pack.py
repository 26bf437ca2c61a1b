"""The PostgreSQL store packs a document's version tail outside the append's transaction: the
append that makes the tail due commits without packing it (the block's decode and encode held
the document's lock, and its next batch, for tens of ms), a pooled connection reads a plan from
one snapshot, a worker thread encodes it, and one conditional writer statement swaps it in unless
the tail or the last block changed since. Several instances appending to and packing one
document keep every version exactly once, names included. On a real PostgreSQL server."""

from __future__ import annotations

import asyncio
import itertools
import random
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite.adapters.store import VersionRecord
from cowrite.adapters.store._pg_pack import PackPlan, apply_pack, encode_pack, read_pack
from cowrite.adapters.store.postgres import PostgresStore

sys.path.insert(0, str(Path(__file__).parent))  # services.py, next to this file
import services

T0 = 1_700_000_000_000
BLOCK = 4  # the tail is due at 4 versions; blocks of 4


def _version(i: int, who: str = "a") -> VersionRecord:
    """A version that says who appended it and when (its author's name), to check exactly-once."""
    return VersionRecord(0, T0 + 1000 * i, (("u1", f"{who}{i}"),), "typed", 1, bytes([5, i % 128]))


@pytest.fixture
def dsn() -> str:
    return services.postgres_emptied_database("pg_version_pack")


@pytest.fixture
async def store(dsn: str) -> AsyncIterator[PostgresStore]:
    async with PostgresStore(dsn, version_block=BLOCK) as s:
        await s.create_document("d", title="", now_ms=T0)
        yield s


async def _counts(dsn: str, doc_id: str = "d") -> tuple[int, list[tuple[int, int, int]]]:
    """(tail rows, [(first_seq, last_seq, n) of each block]) as stored."""
    conn = await asyncpg.connect(dsn)
    try:
        tail = await conn.fetchval("SELECT count(*) FROM versions WHERE doc_id = $1", doc_id)
        blocks = await conn.fetch(
            "SELECT first_seq, last_seq, n FROM version_blocks WHERE doc_id = $1 ORDER BY last_seq",
            doc_id,
        )
    finally:
        await conn.close()
    return int(tail), [(int(a), int(b), int(n)) for a, b, n in blocks]


async def _plan(store: PostgresStore, doc_id: str = "d") -> PackPlan | None:
    read = await store._read(lambda c: read_pack(c, doc_id, BLOCK))
    return None if read is None else encode_pack(read, BLOCK)


async def _apply(store: PostgresStore, plan: PackPlan, doc_id: str = "d") -> bool:
    return bool(await store._write(doc_id, lambda c: apply_pack(c, doc_id, plan)))


def _hold(store: PostgresStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Packs noted but not run: the list of documents appends found due."""
    noted: list[str] = []
    monkeypatch.setattr(store.packer, "due", noted.append)
    return noted


async def test_an_append_that_makes_the_tail_due_commits_without_packing(
    store: PostgresStore, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    noted = _hold(store, monkeypatch)
    for i in range(1, BLOCK):
        await store.append_update("d", b"u", now_ms=T0, version=_version(i))
    assert noted == []
    await store.append_update("d", b"u", now_ms=T0)  # no version: nothing to pack
    await store.append_update("d", b"u", now_ms=T0, version=_version(BLOCK))
    assert noted == ["d"]
    assert await _counts(dsn) == (BLOCK, [])  # not packed in the append's transaction
    monkeypatch.undo()
    store.packer.due("d")
    await store.packer.drain()
    assert await _counts(dsn) == (0, [(1, 5, BLOCK)])
    assert store.packer.applied == 1 and store.packer.refused == 0
    seqs = [v.seq for v in await store.list_versions("d")]
    assert seqs == [1, 2, 3, 5]
    assert await _plan(store) is None  # nothing due any more


async def test_appends_in_one_batch_note_the_tail_due_once_it_is(
    store: PostgresStore, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many appends of one write batch (one statement): due is told from the tail before the
    statement and the batch's own versions."""
    noted = _hold(store, monkeypatch)
    await asyncio.gather(
        *(store.append_update("d", b"u", now_ms=T0, version=_version(i)) for i in range(1, 3))
    )
    assert noted == []
    await asyncio.gather(
        *(store.append_update("d", b"u", now_ms=T0, version=_version(i)) for i in range(3, 6))
    )
    assert set(noted) == {"d"} and await _counts(dsn) == (5, [])


async def test_a_plan_is_not_applied_once_the_tail_or_the_last_block_changed(
    store: PostgresStore, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hold(store, monkeypatch)
    for i in range(1, BLOCK + 1):
        await store.append_update("d", b"u", now_ms=T0, version=_version(i))
    stale = await _plan(store)
    assert stale is not None
    await store.thin_versions("d", [2], [])  # retention removed a tail row since
    assert not await _apply(store, stale)
    assert await _counts(dsn) == (BLOCK - 1, [])
    await store.append_update("d", b"u", now_ms=T0, version=_version(5))
    plan = await _plan(store)
    assert plan is not None
    v3 = await store.get_version("d", 3)
    assert v3 is not None
    await store.thin_versions("d", [], [replace(v3, size=9)])  # a tail row rewritten since
    assert not await _apply(store, plan)
    plan = await _plan(store)
    assert plan is not None and await _apply(store, plan)
    assert await _counts(dsn) == (0, [(1, 5, BLOCK)])
    # a stale plan that tops up a last block which changed since is refused too
    await store.thin_versions("d", [3], [])  # the block [1, 5] now holds 3 versions
    for i in range(6, 6 + BLOCK):
        await store.append_update("d", b"u", now_ms=T0, version=_version(i))
    stale = await _plan(store)
    assert stale is not None and stale.topped_up == 5
    await store.thin_versions("d", [4], [])  # rewrites that block
    assert not await _apply(store, stale)
    assert await _counts(dsn) == (BLOCK, [(1, 5, 2)])
    plan = await _plan(store)
    assert plan is not None and await _apply(store, plan)
    assert await _counts(dsn) == (0, [(1, 7, BLOCK), (8, 9, 2)])
    assert [v.seq for v in await store.list_versions("d")] == [1, 5, 6, 7, 8, 9]


async def test_appends_after_the_plan_do_not_spoil_it(
    store: PostgresStore, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hold(store, monkeypatch)
    for i in range(1, BLOCK + 1):
        await store.append_update("d", b"u", now_ms=T0, version=_version(i))
    plan = await _plan(store)
    assert plan is not None
    for i in range(BLOCK + 1, BLOCK + 3):
        await store.append_update("d", b"u", now_ms=T0, version=_version(i))
    assert await _apply(store, plan)
    assert await _counts(dsn) == (2, [(1, BLOCK, BLOCK)])
    assert not await _apply(store, plan)  # applied twice: refused, nothing doubled
    assert await _counts(dsn) == (2, [(1, BLOCK, BLOCK)])
    listed = await store.list_versions("d")
    assert listed == [replace(_version(i), seq=i) for i in range(1, BLOCK + 3)]


async def test_a_name_given_between_the_plan_and_the_swap_is_kept(
    store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hold(store, monkeypatch)
    for i in range(1, BLOCK + 1):
        await store.append_update("d", b"u", now_ms=T0, version=_version(i))
    await store.name_version("d", 1, "first", now_ms=T0 + 1)
    plan = await _plan(store)
    assert plan is not None
    await store.name_version("d", 2, "draft", now_ms=T0 + 2)
    await store.name_version("d", 1, None, now_ms=T0 + 3)
    assert await _apply(store, plan)
    named = await store.list_versions("d", named_only=True)
    assert [(v.seq, v.name, v.named_ms) for v in named] == [(2, "draft", T0 + 2)]


async def test_garbage_nothing_to_plan_for_no_tail_an_unknown_document_or_a_short_tail(
    store: PostgresStore, dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hold(store, monkeypatch)
    assert await _plan(store) is None
    assert await _plan(store, "no such document") is None
    assert await _plan(store, "'; DROP TABLE versions; --") is None
    await store.append_update("d", b"u", now_ms=T0, version=_version(1))
    assert await _plan(store) is None
    store.packer.due("no such document")  # the real one: a quiet no-op
    monkeypatch.undo()
    store.packer.due("no such document")
    store.packer.due("nul \x00 text")  # PostgreSQL refuses it: the pack fails, logged
    await store.packer.drain()
    assert store.packer.applied == 0
    assert await _counts(dsn) == (1, [])


async def test_garbage_a_damaged_last_block_fails_the_pack_not_the_appends(
    store: PostgresStore, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A block the codec cannot read: the appends are stored and acknowledged all the same, the
    tail stays unpacked and readable, and the failure is logged."""
    conn = await asyncpg.connect(dsn)
    try:  # a block of 3: short of full, so the next pack tops it up
        await conn.execute(
            "INSERT INTO version_blocks (doc_id, last_seq, first_seq, n, data) "
            "VALUES ('d', 3, 1, 3, '\\x01ff'::bytea)"
        )
        await conn.execute("UPDATE documents SET last_seq = 3 WHERE id = 'd'")
    finally:
        await conn.close()
    seqs = [
        await store.append_update("d", b"u", now_ms=T0, version=_version(i))
        for i in range(4, 4 + BLOCK)
    ]
    await store.packer.drain()
    assert seqs == list(range(4, 4 + BLOCK))
    assert [v.seq for v in await store.list_versions("d", after=3)] == seqs
    assert await _counts(dsn) == (BLOCK, [(1, 3, 3)])
    assert "packing the version tail failed" in caplog.text


async def test_close_finishes_the_packs_under_way(dsn: str) -> None:
    async with PostgresStore(dsn, version_block=BLOCK) as store:
        await store.create_document("d", title="", now_ms=T0)
        for i in range(1, 2 * BLOCK + 1):
            await store.append_update("d", b"u", now_ms=T0, version=_version(i))
    tail, blocks = await _counts(dsn)
    assert tail < BLOCK and sum(n for _, _, n in blocks) + tail == 2 * BLOCK


async def test_two_instances_appending_and_packing_one_document_keep_every_version_once(
    dsn: str,
) -> None:
    """Two instances append to the same documents at once, both packing the tails they find
    due (and each pack asked for again and again from both sides); names are given meanwhile.
    Every version is there exactly once, as appended, and named versions keep their names."""
    docs = ["d", "e"]
    async with (
        PostgresStore(dsn, version_block=BLOCK) as a,
        PostgresStore(dsn, version_block=BLOCK) as b,
    ):
        for doc in docs:
            await a.create_document(doc, title="", now_ms=T0)
        expected: dict[str, dict[int, VersionRecord]] = {doc: {} for doc in docs}
        names: dict[str, dict[int, str]] = {doc: {} for doc in docs}
        mine: dict[str, list[tuple[str, int]]] = {"a": [], "b": []}  # each names its own
        rng = random.Random(7)

        async def instance(name: str, store: PostgresStore, other: PostgresStore) -> None:
            for wave in range(12):
                doc = docs[wave % 2]
                versions = [_version(wave * 10 + k, name) for k in range(rng.randint(1, 6))]
                seqs = await asyncio.gather(
                    *(store.append_update(doc, b"u", now_ms=T0, version=v) for v in versions)
                )
                for seq, v in zip(seqs, versions, strict=True):
                    expected[doc][seq] = replace(v, seq=seq)
                    mine[name].append((doc, seq))
                store.packer.due(doc)  # both instances pack the same document at once
                other.packer.due(doc)
                where, pick = rng.choice(mine[name])
                label = f"{name}-{wave}"
                got = await store.name_version(where, pick, label, now_ms=T0 + wave)
                assert got.name == label
                names[where][pick] = label

        await asyncio.gather(instance("a", a, b), instance("b", b, a))
        await asyncio.gather(a.packer.drain(), b.packer.drain())
        for doc in docs:
            want = [
                replace(v, name=names[doc].get(s), named_ms=None)
                for s, v in sorted(expected[doc].items())
            ]
            for store in (a, b):
                got = await store.list_versions(doc, limit=1000)
                assert [replace(v, named_ms=None) for v in got] == want
                assert [v.seq for v in got] == list(range(1, len(want) + 1))
            tail, blocks = await _counts(dsn, doc)
            assert sum(n for _, _, n in blocks) + tail == len(want)  # nothing doubled
            assert all(p[1] < q[0] for p, q in itertools.pairwise(blocks))
        assert a.packer.applied + b.packer.applied > 0


# --- random interleavings of two planners, appends, names and retention ---------------------------

_STEP = st.sampled_from(
    ["append", "append", "plan a", "plan b", "apply a", "apply b", "name", "thin"]
)


@settings(max_examples=25, deadline=None)
@given(steps=st.lists(_STEP, min_size=4, max_size=40), seed=st.integers(0, 2**16))
def test_interleaved_plans_and_swaps_match_a_model(steps: list[str], seed: int) -> None:
    """Two planners (as two instances would be) plan and swap at any point among appends, names
    and retention passes: the versions always read back as a plain dictionary of them would,
    and every version is stored exactly once (tail rows plus block counts)."""

    async def main() -> None:
        fresh = services.postgres_emptied_database("pg_version_pack_model")
        rng = random.Random(seed)
        async with PostgresStore(fresh, version_block=BLOCK) as store:
            store.packer.due = lambda doc_id: None  # type: ignore[method-assign]
            await store.create_document("d", title="", now_ms=T0)
            model: dict[int, VersionRecord] = {}
            plans: dict[str, PackPlan | None] = {"a": None, "b": None}
            n = 0
            for step in steps:
                kind, _, who = step.partition(" ")
                if kind == "append":
                    n += 1
                    v = _version(n)
                    seq = await store.append_update("d", b"u", now_ms=T0, version=v)
                    model[seq] = replace(v, seq=seq)
                elif kind == "plan":
                    plans[who] = await _plan(store)
                elif kind == "apply" and plans[who] is not None:
                    plan = plans[who]
                    assert plan is not None
                    await _apply(store, plan)
                elif kind == "name" and model:
                    pick = rng.choice(list(model))
                    name = rng.choice([None, f"n{pick}"])
                    got = await store.name_version("d", pick, name, now_ms=T0 + 1)
                    model[pick] = replace(
                        model[pick], name=name, named_ms=None if name is None else T0 + 1
                    )
                    assert got == model[pick]
                elif kind == "thin" and model:
                    gone = rng.sample(list(model), min(2, len(model)))
                    count = await store.thin_versions("d", gone, [])
                    dropped = [s for s in gone if model[s].name is None]
                    assert count == len(dropped)
                    for s in dropped:
                        del model[s]
                listed = await store.list_versions("d", limit=1000)
                assert listed == [model[s] for s in sorted(model)]
            tail, blocks = await _counts(fresh)
            assert tail + sum(k for _, _, k in blocks) == len(model)

    asyncio.run(main())
