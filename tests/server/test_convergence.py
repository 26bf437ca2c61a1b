"""Random concurrent editing by thin (OT) and replica (CRDT) clients converges on the server's
document: text (emoji included), a map key, a register and a counter."""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # protocol_clients.py, next to this file
from protocol_clients import ReplicaClient, ThinClient

ALPHABET = "abcdefghij XYZ🙂👍🏽é中"


def _word(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 4)))


def _thin_step(rng: random.Random, c: ThinClient, i: int) -> None:
    r = rng.random()
    text = c.text("text:body")
    if r < 0.5 or not text:
        c.insert("text:body", rng.randint(0, len(text)), _word(rng))
    elif r < 0.7:
        pos = rng.randrange(len(text))
        c.delete("text:body", pos, rng.randint(1, min(3, len(text) - pos)))
    elif r < 0.8:
        c.set_key("map:meta", "k", f"{c.client_id}-{i}")
    elif r < 0.9:
        c.set_key("register:title", None, {"by": c.client_id, "n": i})
    else:
        c.add("counter:hits", rng.randint(-3, 5))


def _replica_step(rng: random.Random, c: ReplicaClient, i: int) -> None:
    r = rng.random()
    text = c.doc.text("body")
    if r < 0.5 or not len(text):
        text.insert(rng.randint(0, len(text)), _word(rng))
    elif r < 0.7:
        pos = rng.randrange(len(text))
        text.delete(pos, rng.randint(1, min(3, len(text) - pos)))
    elif r < 0.8:
        c.doc.map("meta").set("k", f"{c.client_id}-{i}")
    elif r < 0.9:
        c.doc.register("title").set({"by": c.client_id, "n": i})
    else:
        c.doc.counter("hits").add(rng.randint(-3, 5))


async def _run(server: Any, seed: int, thin: int, replicas: int, steps: int) -> None:
    rng = random.Random(seed)
    doc = f"conv-{seed}"
    thins = [await ThinClient.connect(server.ws_url, f"t{k}", doc) for k in range(thin)]
    server.state.hub.rooms[doc].room.checks.min_versions = 1  # a checksum at every version
    reps = [await ReplicaClient.connect(server.ws_url, f"r{k}", doc) for k in range(replicas)]
    clients: list[ThinClient | ReplicaClient] = [*thins, *reps]
    for i in range(steps):
        c = rng.choice(clients)
        if isinstance(c, ThinClient):
            _thin_step(rng, c, i)
            await c.flush()
        else:
            _replica_step(rng, c, i)
            if rng.random() < 0.5:
                await c.push()
        if rng.random() < 0.3:
            await asyncio.sleep(rng.random() * 0.005)  # let messages cross
    for r in reps:
        await r.push()
    room = server.state.hub.rooms[doc].room
    for c in thins:
        await c.settle(0)
    for r in reps:
        await r.settle(0)
    final = room.version
    for c in clients:
        await c.settle(final)
    expected = room.doc.to_json()
    assert expected["body"]  # something was typed
    assert sum(t.rebased for t in thins) > 20  # the edits really were concurrent
    for t in thins:
        assert t.value() == expected, t.client_id
        assert not t.errors
        assert not t.diverged, t.client_id  # every checksum the server sent matched
    assert sum(t.checks for t in thins) > 10  # and some were verified
    for r in reps:
        assert r.doc.to_json() == expected, r.client_id
        assert not r.errors
    for c in clients:
        await c.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_thin_clients_converge_with_the_server(server: Any, seed: int) -> None:
    await _run(server, seed, thin=5, replicas=0, steps=400)


@pytest.mark.parametrize("seed", [11, 12, 13])
async def test_thin_and_replica_clients_converge(server: Any, seed: int) -> None:
    await _run(server, seed, thin=4, replicas=2, steps=400)


async def test_clients_joining_mid_burst_see_every_edit_once(server: Any) -> None:
    """A join while edits are queued: the snapshot includes them, so no ``remote`` repeats one."""
    writer = await ThinClient.connect(server.ws_url, "writer", "burst")
    stop = asyncio.Event()

    async def type_away() -> None:
        i = 0
        while not stop.is_set():
            writer.insert("text:body", len(writer.text("text:body")), f"<{i}>")
            i += 1
            await writer.flush()
            await asyncio.sleep(0)

    task = asyncio.create_task(type_away())
    joiners: list[ThinClient | ReplicaClient] = []
    for k in range(8):
        joiners.append(await ThinClient.connect(server.ws_url, f"late{k}", "burst"))
        joiners.append(await ReplicaClient.connect(server.ws_url, f"rep{k}", "burst"))
    stop.set()
    await task
    await writer.settle(0)
    room = server.state.hub.rooms["burst"].room
    for c in [writer, *joiners]:
        await c.settle(room.version)
    expected = room.doc.to_json()
    assert writer.value() == expected
    for c in joiners:
        value = c.value() if isinstance(c, ThinClient) else c.doc.to_json()
        assert value == expected, c.client_id
    for c in [writer, *joiners]:
        await c.close()
