"""The registry loads a document off the event loop: other documents go on meanwhile."""

from __future__ import annotations

import asyncio
import gc
import random
from typing import Any

from cowrite.adapters.store import MemoryStore
from cowrite.engine import Document, thaw_frozen
from cowrite.rooms.kind import CRDT
from cowrite.server import registry
from cowrite.server.config import Settings
from cowrite.server.hub import Hub
from cowrite.server.metrics import Metrics


async def test_a_large_document_loads_while_the_event_loop_runs_on() -> None:
    store = MemoryStore()
    await store.open()
    doc = Document(1)
    text = doc.text("t")
    rng = random.Random(1)
    for _ in range(20_000):  # scattered inserts: a load that decodes many runs
        text.insert(rng.randrange(len(text) + 1), "ab")
    await store.create_document("big", title="", now_ms=0)
    await store.save_snapshot("big", doc.encode_state(), 0)
    hub = Hub(store, Settings(data=":memory:"), Metrics())
    ticks = 0
    during: list[int] = []

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0)
            ticks += 1

    load = CRDT.load

    def observed(*args: Any, **kw: Any) -> Any:  # runs where the registry calls it
        start = ticks
        try:
            return load(*args, **kw)
        finally:
            during.append(ticks - start)

    CRDT.load = observed  # type: ignore[method-assign]
    running = asyncio.create_task(ticker())
    try:
        lr = await hub.open_room("big", create=False)
        assert str(lr.crdt.doc.text("t")) == str(text)
    finally:
        del CRDT.load
        running.cancel()
        await hub.close()
    assert during and during[0] > 0  # the loop ticked while the document was decoded


async def test_a_large_load_is_frozen_for_the_collector_until_its_room_is_unloaded(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr(registry, "LARGE_LOAD_BYTES", 1)  # this small document counts as large
    thaw_frozen()
    store = MemoryStore()
    await store.open()
    doc = Document(1)
    doc.text("t").insert(0, "hello")
    await store.create_document("big", title="", now_ms=0)
    await store.save_snapshot("big", doc.encode_state(), 0)
    hub = Hub(store, Settings(data=":memory:"), Metrics())
    try:
        lr = await hub.open_room("big", create=False)
        assert lr.frozen
        assert gc.isenabled()  # the collector runs again once the load is done
        assert gc.get_freeze_count() > 0  # what the load built is out of its reach
        await hub._unload("big", force=True)
        assert gc.get_freeze_count() == 0  # the collector's again, now that it is dropped
    finally:
        await hub.close()
        thaw_frozen()
