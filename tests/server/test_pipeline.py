"""The room pipeline's jobs: a server-side outcome's future completes once it is durable (with
its version and Store seq), or fails with NotDurable when it cannot be stored."""

from __future__ import annotations

import asyncio
import gc
import time
import weakref

import msgspec
import pytest

from cowrite import protocol as p
from cowrite.adapters.store.memory import MemoryStore
from cowrite.server.config import Settings
from cowrite.server.hub import Hub
from cowrite.server.metrics import Metrics
from cowrite.server.pipeline import NotDurable


def _ops(text: str) -> list[p.EditOp]:
    return msgspec.convert([{"type": "seq", "node": "text:t", "edit": [text]}], list[p.EditOp])


async def test_a_server_edit_future_completes_once_stored_with_its_version_and_seq() -> None:
    store = MemoryStore()
    await store.open()
    hub = Hub(store, Settings(data=":memory:"), Metrics())
    await hub.start()
    try:
        lr = await hub.open_room("d", create=True)
        outcome = lr.room.apply_server_edit(_ops("hi"), hub.now_ms(), client_id="srv", edit_id="1")
        done = hub.submit_durable(lr, outcome, time.monotonic())
        durable = await asyncio.wait_for(done, 5)
        assert durable.version == outcome.version and durable.seq is not None
        stored = await store.load("d")
        assert stored is not None and [s for s, _ in stored.updates] == [durable.seq]
    finally:
        await hub.close()


async def test_a_server_edit_future_fails_when_the_document_is_gone() -> None:
    store = MemoryStore()
    await store.open()
    hub = Hub(store, Settings(data=":memory:"), Metrics())
    await hub.start()
    try:
        lr = await hub.open_room("d", create=True)
        await store.delete_document("d")
        outcome = lr.room.apply_server_edit(_ops("hi"), hub.now_ms(), client_id="srv", edit_id="1")
        with pytest.raises(NotDurable) as err:
            await asyncio.wait_for(hub.submit_durable(lr, outcome, time.monotonic()), 5)
        assert err.value.error.code is p.ErrorCode.UNKNOWN_DOCUMENT
    finally:
        await hub.close()


async def test_an_idle_room_keeps_nothing_of_its_last_batch() -> None:
    """Once a batch is carried out, nothing of it stays referenced while the room waits for
    the next one: its outcomes (a joined snapshot can be megabytes) would otherwise live as long
    as the room, once per idle room."""
    store = MemoryStore()
    await store.open()
    hub = Hub(store, Settings(data=":memory:"), Metrics())
    await hub.start()
    try:
        lr = await hub.open_room("d", create=True)
        outcome = lr.room.apply_server_edit(_ops("hi"), hub.now_ms(), client_id="srv", edit_id="1")
        gone = weakref.ref(outcome)
        await asyncio.wait_for(hub.submit_durable(lr, outcome, time.monotonic()), 5)
        del outcome
        await asyncio.sleep(0)  # the pipeline is back to waiting for its queue
        gc.collect()
        assert gone() is None
    finally:
        await hub.close()
