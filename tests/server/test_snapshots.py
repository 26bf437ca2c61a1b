"""Snapshots compact the log, but wait for a quiet room (encoding one holds the event loop)."""

from __future__ import annotations

import asyncio
import random
import string
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # protocol_clients.py
from protocol_clients import running

import cowrite
from cowrite.server import hub as hub_module
from cowrite.server.config import Settings


async def test_a_quiet_room_takes_its_due_snapshot_and_a_busy_one_only_when_forced(
    tmp_path: Path,
) -> None:
    settings = Settings(data=str(tmp_path / "db.sqlite"), snapshot_every=5)
    async with running(settings) as server, cowrite.connect(server.url, doc="snap") as doc:
        store = server.state.store
        for i in range(12):  # one batch each: 12 log entries, more than snapshot_every
            doc.text("t").insert(i, "x")
            await doc.synced()
        stored = await store.load("snap")
        assert stored is not None
        assert stored.snapshot_seq == 0  # busy a moment ago: not yet
        deadline = asyncio.get_running_loop().time() + hub_module.SNAPSHOT_QUIET_S + 10
        while stored.snapshot_seq == 0:
            assert asyncio.get_running_loop().time() < deadline, "no snapshot once quiet"
            await asyncio.sleep(0.2)
            stored = await store.load("snap")
            assert stored is not None
        assert stored.snapshot_seq >= 12 and stored.updates == []
        # a busy room that never goes quiet is snapshotted once the tail is long enough
        for _ in range(5 * hub_module.SNAPSHOT_FORCE_FACTOR + 1):
            doc.text("t").insert(0, "y")
            await doc.synced()
        # the forced snapshot is written right after the last ack went out: give its write a
        # moment, less than the quiet time (so this cannot be the quiet snapshot)
        deadline = asyncio.get_running_loop().time() + hub_module.SNAPSHOT_QUIET_S * 0.75
        stored = await store.load("snap")
        while stored is not None and stored.snapshot_seq <= 12:
            assert asyncio.get_running_loop().time() < deadline, "no forced snapshot"
            await asyncio.sleep(0.05)
            stored = await store.load("snap")
        assert stored is not None and stored.snapshot_seq > 12


async def test_a_few_large_updates_make_a_snapshot_due_by_their_bytes(tmp_path: Path) -> None:
    """Two pastes of 40,000 random letters (about 30 kB each, compressed) are far from
    ``snapshot_every`` updates but over ``snapshot_every_bytes``: the log they make would be
    slow to replay, so a snapshot is taken once the room is quiet; after one paste, none is."""
    rng = random.Random(1)
    settings = Settings(
        data=str(tmp_path / "db.sqlite"), snapshot_every=1_000, snapshot_every_bytes=50_000
    )
    async with running(settings) as server, cowrite.connect(server.url, doc="big") as doc:
        store = server.state.store
        doc.text("t").insert(0, "".join(rng.choices(string.ascii_letters, k=40_000)))
        await doc.synced()
        await asyncio.sleep(hub_module.SNAPSHOT_QUIET_S + 1.5)  # quiet, but one paste: none
        stored = await store.load("big")
        assert stored is not None and stored.snapshot_seq == 0 and len(stored.updates) == 1
        assert 20_000 < len(stored.updates[0][1]) < 50_000
        doc.text("t").insert(0, "".join(rng.choices(string.ascii_letters, k=40_000)))
        await doc.synced()
        deadline = asyncio.get_running_loop().time() + hub_module.SNAPSHOT_QUIET_S + 10
        while stored.snapshot_seq == 0:
            assert asyncio.get_running_loop().time() < deadline, "no snapshot of ~60 kB of log"
            await asyncio.sleep(0.2)
            stored = await store.load("big")
            assert stored is not None
        assert stored.updates == [] and stored.snapshot_seq >= 2
