"""Naming a Yjs version while another instance's snapshot folds it: the version keeps its
checkpoint, or the naming is refused (410); it is never named and lost.

Two servers on one database (one SQLite file; PostgreSQL, as two instances of a cluster): B
holds the document and writes its snapshots, A answers the naming request. B's store holds its
``save_snapshot`` at a gate, so the fold is made (without the version, not named yet) while A
names it: the snapshot must then not be stored (the next one keeps the checkpoint). And the
other way round: B's snapshot is stored first, A's copy of the document's history is stale, and
A must refuse.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pycrdt
import pytest

import cowrite
from cowrite.adapters.store import SQLiteStore, Store
from cowrite.adapters.store.postgres import PostgresStore
from cowrite.server.config import Settings

from .protocol_clients import running

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))  # services.py
import services

DOC = "race"


class Gate:
    """Holds a store's ``save_snapshot`` at ``gate`` (a slow fold, a slow write)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.waiting = asyncio.Event()


def gated(store: Store, gate: Gate) -> Store:
    """``store`` with its ``save_snapshot`` held at ``gate``."""
    save = store.save_snapshot

    async def held(doc_id: str, snapshot: bytes, upto_seq: int, **kw: Any) -> bool:
        gate.waiting.set()
        await gate.gate.wait()
        return await save(doc_id, snapshot, upto_seq, **kw)

    store.save_snapshot = held  # type: ignore[method-assign]
    return store


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # no history bytes kept: a snapshot folds the whole log (the versions stay listed, as
    # retention keeps the rows of the window); no snapshot or unload unless the test asks
    return Settings(
        data=str(tmp_path / "one.db"),
        history_yjs_kept_bytes=0,
        snapshot_every=10**6,
        snapshot_every_bytes=10**9,
        unload_after_s=600,
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def pair(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[Any, Any, Gate]]:
    """Servers A and B on one database (B's snapshots are gated)."""
    if request.param == "sqlite":
        stores: list[Store] = [SQLiteStore(settings.data), SQLiteStore(settings.data)]
    else:
        dsn = services.postgres_database()
        stores = [PostgresStore(dsn), PostgresStore(dsn)]
    gate = Gate()
    async with (
        running(settings, store=gated(stores[0], gate)) as b,
        running(settings, store=stores[1]) as a,
    ):
        yield a, b, gate


async def _write(url: str, texts: list[str]) -> list[int]:
    """One Yjs update per text (each replaces the whole text) on the server at ``url``; the
    versions they made."""
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        async with cowrite.open_yjs(url, DOC) as ydoc:
            t = ydoc.doc.get("t", type=pycrdt.Text)
            for s in texts:
                with ydoc.doc.transaction():
                    del t[:]
                    t.insert(0, s)
                await ydoc.saved(timeout_s=20)
        rows = (await http.get(f"/api/documents/{DOC}/versions")).json()["versions"]
    return [int(v["id"]) for v in rows]


async def _value(url: str, seq: int) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        return await http.get(f"/api/documents/{DOC}/versions/{seq}")


async def _name(url: str, seq: int, name: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=20) as http:
        return await http.post(
            f"/api/documents/{DOC}/versions", json={"name": name, "version": seq}
        )


async def _snapshot(server: Any) -> None:
    hub = server.state.hub
    await hub._snapshot(DOC, hub.rooms[DOC])


async def _wait(check: Callable[[], bool]) -> None:
    async with asyncio.timeout(20):
        while not check():
            await asyncio.sleep(0.01)


async def test_a_version_named_while_a_snapshot_folds_it_keeps_its_checkpoint(
    pair: tuple[Any, Any, Gate],
) -> None:
    a, b, store = pair
    one, _two, _three = await _write(b.url, ["one", "two", "three"])
    assert (await _value(a.url, one)).json()["value"]["t"] == "one"  # A has the document too

    store.gate.clear()
    store.waiting.clear()
    folding = asyncio.create_task(_snapshot(b))  # folds the log: version one is not named yet
    await _wait(store.waiting.is_set)
    r = await _name(a.url, one, "keep")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "keep" and r.json()["available"]
    store.gate.set()
    await folding

    for server in (a, b):  # named, and its value is still there
        r = await _value(server.url, one)
        assert r.status_code == 200, r.text
        assert r.json()["value"]["t"] == "one" and r.json()["version"]["name"] == "keep"
    await _snapshot(b)  # the next snapshot folds, keeping the checkpoint
    stored = await b.state.store.load(DOC)
    assert stored.snapshot_seq > one and not stored.updates
    for server in (a, b):
        r = await _value(server.url, one)
        assert r.status_code == 200, r.text
        assert r.json()["value"]["t"] == "one"


async def test_naming_a_version_another_instance_folded_away_is_refused(
    pair: tuple[Any, Any, Gate],
) -> None:
    a, b, _ = pair
    one, _two, three = await _write(b.url, ["one", "two", "three"])
    assert (await _value(a.url, one)).status_code == 200  # A's copy: every version available
    await _snapshot(b)  # B folds the log: version one is gone
    assert (await _value(b.url, one)).status_code == 410

    r = await _name(a.url, one, "too late")
    assert r.status_code == 410, r.text
    assert r.json()["error"]["code"] == "history_unavailable"
    async with httpx.AsyncClient(base_url=a.url, timeout=20) as http:
        rows = (await http.get(f"/api/documents/{DOC}/versions")).json()["versions"]
    assert all(v["name"] is None for v in rows)  # not left named without its value
    r = await _name(a.url, three, "latest")  # the version the snapshot is at: still there
    assert r.status_code == 200, r.text
    assert (await _value(b.url, three)).json()["value"]["t"] == "three"
