"""Yjs documents across instances: two servers in one process on one store and an in-process
bus (the PostgreSQL + Redis cluster with the real JS providers is in ``tests/yjs``). Updates
cross over the bus, awareness too, and the awareness of an instance that goes away is removed."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pycrdt
import pytest
import uvicorn

from cowrite.adapters.bus import LocalBus
from cowrite.adapters.store import MemoryStore
from cowrite.server.app import create_app
from cowrite.server.config import Settings
from cowrite.yjs import messages as m
from cowrite.yjs.awareness import AwarenessEntry, decode_update, encode_update

from .conftest import RunningServer
from .test_yjs_server import Hocus, stored_text, text_of, until


class SharedStore(MemoryStore):
    """One store for both instances: closing one instance leaves it open for the other."""

    async def close(self) -> None:
        pass


async def serve(store: MemoryStore, bus: LocalBus) -> tuple[RunningServer, asyncio.Task[None]]:
    settings = Settings(
        data=":memory:",
        heartbeat_s=0.5,
        heartbeat_timeout_s=1.5,
        instance_heartbeat_s=0.2,
        instance_timeout_s=1.0,
    )
    app = create_app(settings, store=store, bus=bus)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, lifespan="on", ws_ping_interval=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    return RunningServer(f"http://127.0.0.1:{sock.getsockname()[1]}", app, server), task


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[list[tuple[RunningServer, asyncio.Task[None]]]]:
    store, bus = SharedStore(), LocalBus()
    servers = [await serve(store, bus), await serve(store, bus)]
    yield servers
    for running, task in servers:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)


def states(client: Hocus) -> dict[int, str | None]:
    out: dict[int, str | None] = {}
    for f in client.of(m.HAwareness):
        for e in decode_update(f.update):
            out[e.client_id] = e.state
    return out


async def test_updates_and_awareness_cross_instances(pair: list[Any]) -> None:
    (a_server, a_task), (b_server, _) = pair
    a, b = await Hocus.connect(a_server), await Hocus.connect(b_server)
    da, db = await a.open("doc"), await b.open("doc")
    await until(lambda: bool(a.of(m.HSyncStatus)) and bool(b.of(m.HSyncStatus)))
    da.get("t", type=pycrdt.Text).insert(0, "from a ")
    await until(lambda: text_of(db) == "from a ")
    db.get("t", type=pycrdt.Text).insert(7, "and b")
    await until(lambda: text_of(da) == "from a and b")
    await until(lambda: len(a.of(m.HSyncStatus)) == 2 and len(b.of(m.HSyncStatus)) == 2)
    assert await stored_text(a_server, "doc") == "from a and b"
    stored = await a_server.state.store.load("doc")
    assert stored is not None and len(stored.updates) == 2  # each stored once, by its instance

    state = json.dumps({"user": {"name": "Ann"}})
    await a.ws.send(
        m.encode_hocuspocus(m.HAwareness("doc", encode_update([AwarenessEntry(5, 1, state)])))
    )
    await until(lambda: states(b).get(5) == state)
    late = await Hocus.connect(b_server)  # attaches later: greeted with what b's instance knows
    await late.open("doc")
    await until(lambda: states(late).get(5) == state)

    a_server.server.should_exit = True  # instance a goes away (it says bye on the bus)
    await asyncio.wait_for(a_task, 20)
    await until(lambda: 5 in states(b) and states(b)[5] is None)
    await b.close()
    await late.close()
