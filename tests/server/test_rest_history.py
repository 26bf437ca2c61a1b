"""Paging the version list from the newest (``GET /versions?before=``, ``newest_before``): over
a real SQLite store whose history retention thinned to a few versions in places, every page is
exactly the newest ``limit`` versions below ``before``, its cursors lead on without gaps or
repeats, and no store read returns more than a few pages of rows."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from cowrite.adapters.store import SQLiteStore, Store, VersionRecord
from cowrite.server.rest_history import newest_before

T0 = 1_700_000_000_000
COUNT = 700


class Counting:
    """The store, counting the rows each ``list_versions`` returns."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads: list[int] = []

    async def list_versions(self, doc_id: str, **kwargs: Any) -> list[VersionRecord]:
        rows = await self.store.list_versions(doc_id, **kwargs)
        self.reads.append(len(rows))
        return rows


@pytest.fixture(params=[1, 2, 3])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """``COUNT`` versions; retention kept one in 40 of the oldest 400 (and the named ones), a
    random half of the next 200, all of the newest 100. Every 50th is named."""
    rng = random.Random(request.param)
    store = SQLiteStore(tmp_path / "h.db")
    await store.open()
    await store.create_document("d", title="d", now_ms=T0)
    for i in range(COUNT):
        v = VersionRecord(0, T0 + i, (("u1", "Ann"),), "typed", 1, b"")
        await store.append_update("d", b"u", now_ms=T0, version=v)
    for seq in range(50, COUNT + 1, 50):
        await store.name_version("d", seq, f"n{seq}", now_ms=T0)
    gone = [s for s in range(1, 401) if s % 40] + [s for s in range(401, 601) if rng.random() < 0.5]
    await store.thin_versions("d", gone, [])
    yield store
    await store.close()


@pytest.mark.parametrize("named", [False, True])
async def test_pages_from_the_newest_are_exact_and_lead_on(store: Store, named: bool) -> None:
    every = [v.seq for v in await store.list_versions("d", limit=10_000, named_only=named)]
    rng = random.Random(7)
    for limit in (1, 3, 10, 100, 1000):
        # the newest page, then older ones by `older`, down to the first version
        seen: list[int] = []
        before = 2**63 - 1
        while True:
            counting = Counting(store)
            page, after, older = await newest_before(
                counting,  # type: ignore[arg-type]
                "d",
                before,
                COUNT,
                limit,
                named,
            )
            ids = [v.seq for v in page]
            below = [s for s in every if s < before]
            assert ids == below[-limit:]
            assert older == (ids[0] if len(below) > limit else None)
            later = [s for s in every if s > ids[-1]] if ids else []
            assert after == (ids[-1] if later and before <= COUNT else None)
            assert max(counting.reads) <= 4 * (limit + 1)
            seen[:0] = ids
            if older is None:
                break
            before = older
        assert seen == every
        for _ in range(5):  # and from anywhere
            before = rng.randint(1, COUNT + 5)
            page, _, _ = await newest_before(store, "d", before, COUNT, limit, named)
            assert [v.seq for v in page] == [s for s in every if s < before][-limit:]
