"""A client whose connection splits between two instances gets its batch applied once.

Instance A is still storing the client's batch when the client, cut off from A, rejoins through
instance B and resends it; B finds nothing in the store yet and applies it too. The store refuses
the second append of the same edit key atomically (`DuplicateEdit`), and the instance that lost
stores its copy without the key and undoes it (issue 9, item 2: before, 5/5 runs ended with the
batch twice). Two in-process instances on one store and one bus; A's appends are held (the
timing of a slow database, which only the test can arrange) while the client moves.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # protocol_clients.py, conftest.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))  # services.py
import services
from conftest import RawClient
from protocol_clients import ThinClient, running

from cowrite.adapters.bus import LocalBus
from cowrite.adapters.store import MemoryStore, Store
from cowrite.adapters.store.postgres import PostgresStore
from cowrite.server.config import Settings


class Shared:
    """A store shared by in-process instances; ``hold`` makes its appends wait."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.hold: asyncio.Event | None = None
        self.held = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def append_update(self, *args: Any, **kwargs: Any) -> int:
        if self.hold is not None and kwargs.get("edit_keys"):
            self.held += 1
            await self.hold.wait()
        seq: int = await self._store.append_update(*args, **kwargs)
        return seq


class OpenBus(LocalBus):
    async def close(self) -> None:
        pass


def _settings() -> Settings:
    return Settings(
        data=":memory:",
        heartbeat_s=0.5,
        heartbeat_timeout_s=1.5,
        instance_heartbeat_s=0.2,
        instance_timeout_s=1.0,
    )


async def _until(check: Any, what: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached: {what()}")
        await asyncio.sleep(0.02)


@pytest.fixture(params=["memory", "postgres"])
async def stores(request: pytest.FixtureRequest) -> Any:
    """Each instance's own store on shared data: one MemoryStore, or one PostgreSQL database
    written by several PostgresStores (separate writers, separate transactions)."""
    if request.param == "memory":
        base = MemoryStore()
        await base.open()
        yield [base, base, base]
        await base.close()
        return
    dsn = services.postgres_emptied_database("cluster_split")
    opened: list[Store] = [PostgresStore(dsn) for _ in range(3)]
    for s in opened:
        await s.open()
    yield opened
    for s in opened:
        await s.close()


async def test_a_batch_resent_to_another_instance_while_the_first_stores_it_is_applied_once(
    stores: list[Store],
) -> None:
    bus = OpenBus()
    await bus.open()
    store_a, store_b = Shared(stores[0]), Shared(stores[1])
    async with contextlib.AsyncExitStack() as stack:
        a = await stack.enter_async_context(running(_settings(), store_a, bus))
        b = await stack.enter_async_context(running(_settings(), store_b, bus))
        on_a = await RawClient.connect(a.ws_url, "mover")
        await on_a.send({"type": "join", "doc": "split", "create": True})
        joined = await on_a.expect("joined")
        store_a.hold = asyncio.Event()
        op = {"type": "seq", "node": "text:t", "edit": ["hello"]}
        edit = {"type": "edit", "doc": "split", "edit_id": "e1", "version": 0, "ops": [op]}
        await on_a.send(edit)
        await _until(lambda: store_a.held == 1, lambda: store_a.held)
        await on_a.close()  # the split: A keeps storing, the client goes to B

        on_b = await RawClient.connect(b.ws_url, "mover")
        await on_b.send(
            {
                "type": "join",
                "doc": "split",
                "version": 0,
                "epoch": joined["epoch"],
                "inflight": "e1",
                "state": {},
            }
        )
        rejoined = await on_b.expect("joined")
        await on_b.send({**edit, "version": rejoined["version"]})
        await on_b.expect("ack", where=lambda m: m["edit_id"] == "e1")
        store_a.hold.set()  # A's append now finds the key stored by B

        def texts() -> list[Any]:
            return [s.state.hub.rooms["split"].room.doc.to_json().get("t") for s in (a, b)]

        await _until(lambda: texts() == ["hello", "hello"], texts)
        readers = [
            await ThinClient.connect(s.ws_url, f"r{i}", "split") for i, s in enumerate((a, b))
        ]
        assert [r.text("text:t") for r in readers] == ["hello", "hello"]
        async with running(_settings(), Shared(stores[2]), LocalBus()) as fresh:
            reader = await ThinClient.connect(fresh.ws_url, "fresh", "split")
            assert reader.text("text:t") == "hello"  # the store's log says it once too
            await reader.close()
        for c in [*readers, on_b]:
            await c.close()
    await LocalBus.close(bus)
