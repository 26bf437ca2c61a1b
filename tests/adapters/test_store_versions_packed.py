"""Packed version history, on every store: versions moved into blocks (``_version_blocks``) read
back exactly as stored, page across blocks and the tail, keep their names through packing,
retention and restarts, and garbage arguments get clear answers. A tiny block size (3) makes
every test cross block boundaries."""

from __future__ import annotations

import random
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from cowrite.adapters.store import MemoryStore, NotFound, SQLiteStore, Store, VersionRecord
from cowrite.adapters.store.postgres import PostgresStore

sys.path.insert(0, str(Path(__file__).parent))  # services.py, next to this file
import services

T0 = 1_700_000_000_000
BLOCK = 3


@dataclass
class Backend:
    name: str
    make: Callable[[], Store]


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        shared = MemoryStore(version_block=BLOCK)
        return Backend("memory", lambda: shared)
    if request.param == "postgres":
        dsn = services.postgres_emptied_database("store_versions_packed")
        return Backend("postgres", lambda: PostgresStore(dsn, version_block=BLOCK))
    path = tmp_path / "cowrite.db"
    return Backend("sqlite", lambda: SQLiteStore(path, version_block=BLOCK))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = backend.make()
    await s.open()
    yield s
    await s.close()


def _vector(n: int, other: int = 0) -> bytes:
    out = bytearray([5, n]) if n < 128 else bytearray([5, (n & 0x7F) | 0x80, n >> 7])
    if other:
        out += bytes([9, other])
    return bytes(out)


def _versions(n: int, rng: random.Random) -> list[VersionRecord]:
    """Versions as the server writes them, with the odd verbatim vector, restore and author."""
    out = []
    t = T0
    for i in range(1, n + 1):
        t += rng.choice([0, 1, 180, 230, 600_000])
        who = rng.choice([("u1", "Ann"), ("u1", "Ann"), ("u2", "Bo é")])
        vector = _vector(i, i // 4) if i % 7 else b"\xff\x00odd"
        how = "restored" if i % 5 == 0 else "typed"
        out.append(
            VersionRecord(
                0,
                t,
                (who,),
                how,
                rng.randint(-2, 40),
                vector,
                restored_from=i - 1 if how == "restored" else None,
            )
        )
    return out


async def _fill(store: Store, records: list[VersionRecord]) -> list[VersionRecord]:
    await store.create_document("d", title="", now_ms=T0)
    stored = []
    for v in records:
        seq = await store.append_update("d", b"u", now_ms=v.time_ms, version=v)
        stored.append(replace(v, seq=seq))
    return stored


async def test_packed_versions_read_back_exactly_and_page_across_blocks(store: Store) -> None:
    stored = await _fill(store, _versions(20, random.Random(1)))
    assert await store.list_versions("d", limit=1000) == stored
    for v in stored:
        assert await store.get_version("d", v.seq) == v
    for after in range(0, 21, 4):
        page = await store.list_versions("d", after=after, limit=5)
        assert page == stored[after : after + 5]
    assert await store.list_versions("d", after=2, before=9) == stored[2:8]


async def test_names_survive_packing_retention_and_a_restart(
    backend: Backend, store: Store
) -> None:
    stored = await _fill(store, _versions(4, random.Random(2)))
    await store.name_version("d", 2, "draft", now_ms=T0 + 1)  # a tail row, packed later
    for v in _versions(8, random.Random(3)):
        await store.append_update("d", b"u", now_ms=T0, version=v)
    await store.name_version("d", 5, "packed", now_ms=T0 + 2)  # already in a block
    named = await store.list_versions("d", named_only=True)
    assert [(v.seq, v.name, v.named_ms) for v in named] == [
        (2, "draft", T0 + 1),
        (5, "packed", T0 + 2),
    ]
    merged = replace(stored[3], authors=(("u1", "Ann"), ("u9", "Zed")), size=99, merged=4)
    assert await store.thin_versions("d", [1, 2, 3, 5, 6], [merged]) == 3  # 2 and 5: named
    store = await _reopen(backend, store)
    listed = await store.list_versions("d", limit=100)
    assert [v.seq for v in listed] == [2, 4, 5, 7, 8, 9, 10, 11, 12]
    four = await store.get_version("d", 4)
    assert four is not None and (four.authors, four.size, four.merged) == (merged.authors, 99, 4)
    assert four.vector == stored[3].vector and four.time_ms == stored[3].time_ms
    assert (await store.get_version("d", 5)) is not None
    assert await store.get_version("d", 6) is None  # removed by retention
    unnamed = await store.name_version("d", 5, None, now_ms=T0 + 3)
    assert unnamed.name is None
    assert [v.seq for v in await store.list_versions("d", named_only=True)] == [2]
    await store.close()


async def _reopen(backend: Backend, store: Store) -> Store:
    await store.close()
    s = backend.make()
    await s.open()
    return s


async def test_a_snapshot_giving_up_a_packed_named_version_is_refused(store: Store) -> None:
    """The snapshot's ``drops`` check sees the names of packed versions too."""
    await store.create_document("d", title="", now_ms=T0)
    for v in _versions(4 * BLOCK, random.Random(5)):
        await store.append_update("d", b"u", now_ms=T0, version=v)
    await store.append_update("d", b"u", now_ms=T0)  # packs the full blocks
    await store.name_version("d", 2, "packed", now_ms=T0)
    assert await store.save_snapshot("d", b"s", 4 * BLOCK, drops=range(1, 4)) is False
    assert await store.save_snapshot("d", b"s", 4 * BLOCK, drops=range(3, 7)) is True


async def test_garbage_arguments_get_clear_answers(store: Store) -> None:
    stored = await _fill(store, _versions(10, random.Random(4)))
    assert await store.get_version("d", 0) is None
    assert await store.get_version("d", 11) is None
    assert await store.get_version("d", 2**63 - 1) is None
    assert await store.get_version("d", -5) is None
    assert await store.list_versions("d", limit=2**63 - 1) == stored  # a huge page: all there is
    assert await store.list_versions("d", after=2**63 - 2) == []
    assert await store.list_versions("d", after=5, before=3) == []
    assert await store.list_versions("d", after=-10, limit=2) == stored[:2]
    with pytest.raises(ValueError):
        await store.list_versions("d", limit=0)
    with pytest.raises(ValueError):
        await store.list_versions("d", limit=2**63)
    with pytest.raises(NotFound):
        await store.name_version("d", 11, "x", now_ms=T0)
    assert await store.thin_versions("d", [0, 99, 2**63 - 1], []) == 0
    assert await store.thin_versions("missing", [1], []) == 0
    assert await store.list_versions("d", limit=1000) == stored


async def test_random_histories_match_a_model(store: Store) -> None:
    """Appends, names and retention passes in a seeded random order: the store answers as a
    plain dictionary of the versions would."""
    rng = random.Random(5)
    await store.create_document("d", title="", now_ms=T0)
    model: dict[int, VersionRecord] = {}
    for v in _versions(60, rng):
        seq = await store.append_update("d", b"u", now_ms=T0, version=v)
        model[seq] = replace(v, seq=seq)
        roll = rng.random()
        if roll < 0.1:
            pick = rng.choice(list(model))
            name = rng.choice([None, "n" + str(seq)])
            got = await store.name_version("d", pick, name, now_ms=T0 + seq)
            model[pick] = replace(
                model[pick], name=name, named_ms=None if name is None else T0 + seq
            )
            assert got == model[pick]
        elif roll < 0.2:
            gone = rng.sample(list(model), min(4, len(model)))
            keep = rng.choice(list(model))
            upd = replace(model[keep], authors=(("u3", "Cy"),), size=7, merged=2)
            count = await store.thin_versions("d", gone, [upd])
            dropped = [s for s in gone if model[s].name is None]
            assert count == len(dropped)
            for s in dropped:
                del model[s]
            if keep in model:
                model[keep] = replace(model[keep], authors=upd.authors, size=7, merged=2)
    expected = [model[s] for s in sorted(model)]
    assert await store.list_versions("d", limit=10_000) == expected
    assert await store.list_versions("d", named_only=True, limit=10_000) == [
        v for v in expected if v.name is not None
    ]
    for s in range(1, 62):
        assert await store.get_version("d", s) == model.get(s)
