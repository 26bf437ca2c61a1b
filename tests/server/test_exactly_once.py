"""Exactly-once over real sockets, whatever the server still holds in memory (issue 9, item 2).

An edit whose acknowledgement was lost is resent by its client; the server must recognise it from
the store when its memory no longer knows it: after the document was folded into a snapshot and
reloaded (a restart), after more edits than the in-memory table holds, in a ``join.inflight``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import websockets

from cowrite import protocol as p
from cowrite.client import connect
from cowrite.client.connection import _Retry
from cowrite.engine.document import Document
from cowrite.rooms.edit_keys import key_client
from cowrite.server.auth import issue

sys.path.insert(0, str(Path(__file__).parent))  # conftest.py, protocol_clients.py
from conftest import RawClient, start_server
from protocol_clients import ThinClient

FAST: dict[str, Any] = {"backoff_base_s": 0.05, "backoff_max_s": 0.2, "flush_timeout_s": 20.0}
NOWHERE = "ws://127.0.0.1:9/ws"  # refused: the client keeps retrying until it gets a real url


async def _eventually(check: Any, timeout_s: float = 20.0, what: Any = None) -> None:
    try:
        async with asyncio.timeout(timeout_s):
            while not check():
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not reached; {what() if what else ''}") from None


async def test_a_lost_ack_resent_after_a_snapshot_and_restart_is_applied_once(
    make_settings: Any,
) -> None:
    """The real SDK; its batch was stored, the ack lost; more edits than ``snapshot_every`` fold
    it into a snapshot, the server restarts; the client rejoins with the batch in flight."""
    settings = make_settings(snapshot_every=5)
    running, task = await start_server(settings)
    try:
        async with connect(running.ws_url, doc="d", name="a", **FAST) as a:
            a.text("body").insert(0, "x")
            await a.synced()
            original = a._handle
            dropped: list[p.Ack] = []

            def lose_the_ack(msg: p.ServerMessage) -> None:
                if isinstance(msg, p.Ack) and not dropped:
                    dropped.append(msg)
                    a.url = NOWHERE  # away until the test says so
                    raise _Retry("test: the connection dies with the ack")
                original(msg)

            a._handle = lose_the_ack  # type: ignore[method-assign]
            a.text("body").insert(1, "A")
            await _eventually(lambda: bool(dropped))
            async with connect(running.ws_url, doc="d", name="b", **FAST) as b:
                for i in range(12):  # folded into a snapshot at the latest when the server stops
                    b.text("body").insert(0, str(i % 10))
                    await b.synced()
            running.server.should_exit = True
            await asyncio.wait_for(task, 20)
            running, task = await start_server(settings)
            a.url = running.ws_url
            await a.synced(timeout_s=20)
            expected = "109876543210xA"
            await _eventually(
                lambda: str(a.text("body")) == expected, 5, lambda: str(a.text("body"))
            )
        async with connect(running.ws_url, doc="d", name="c", **FAST) as c:
            assert str(c.text("body")) == expected
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_a_resend_after_more_edits_than_memory_holds_is_applied_once(
    make_settings: Any,
) -> None:
    # the raw socket below answers no pings: keep the heartbeat out of the way on a busy machine
    settings = make_settings(
        edits_per_second=1e9,
        edit_burst=1e9,
        snapshot_every=10**9,
        heartbeat_s=30,
        heartbeat_timeout_s=300,
    )
    running, task = await start_server(settings)
    try:
        x = await ThinClient.connect(running.ws_url, "x", "d")
        edit = {
            "type": "edit",
            "doc": "d",
            "edit_id": "x-1",
            "version": 0,
            "ops": [{"type": "seq", "node": "text:body", "edit": ["once "]}],
        }
        await x.send(edit)
        first = await x.expect("ack")
        await x.close()
        # more edits than the room remembers (10,000), pipelined on one raw socket
        async with websockets.connect(running.ws_url, max_size=None) as y:
            await y.send(json.dumps({"type": "hello", "client_id": "y"}))
            await y.send(json.dumps({"type": "join", "doc": "d"}))
            n, acks = 10_050, 0
            for start in range(0, n, 500):  # in steps the outbox holds
                for i in range(start, min(start + 500, n)):
                    op = {"type": "seq", "node": "text:body", "edit": ["."]}
                    edit_i = {"type": "edit", "doc": "d", "edit_id": f"y{i}", "version": 1 + i}
                    await y.send(json.dumps({**edit_i, "ops": [op]}))
                while acks < min(start + 500, n):
                    data = json.loads(await asyncio.wait_for(y.recv(), 30))
                    for m in data if isinstance(data, list) else [data]:
                        assert m["type"] != "error", m
                        acks += m["type"] == "ack"
        # the same edit again, after a snapshot join (the history no longer reaches version 0)
        again = await ThinClient.connect(running.ws_url, "x", "d")
        await again.send({**edit, "version": again.version})
        second = await again.expect("ack")
        assert second["version"] == first["version"]
        text = running.state.hub.rooms["d"].room.doc.to_json()["body"]
        assert text.count("once") == 1
        await again.close()
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)


def _edit(edit_id: str, version: int, text: str, at: int = 0) -> dict[str, Any]:
    edit: list[Any] = [at, text] if at else [text]
    return {
        "type": "edit",
        "doc": "d",
        "edit_id": edit_id,
        "version": version,
        "ops": [{"type": "seq", "node": "text:body", "edit": edit}],
    }


async def test_an_edit_id_reused_for_other_content_is_refused(make_settings: Any) -> None:
    """Before: acknowledged with the first edit's version, the new content silently dropped.
    A true resend, even rebased to another version and position, is still acknowledged; the
    refusal holds after a restart (the digest is in the log and the store)."""
    settings = make_settings()
    running, task = await start_server(settings)
    try:
        x = await ThinClient.connect(running.ws_url, "x", "d")
        await x.send(_edit("x-1", 0, "hello"))
        first = await x.expect("ack")
        other = await ThinClient.connect(running.ws_url, "o", "d")
        await other.send(_edit("o-1", 1, ">> "))
        await other.expect("ack")

        await x.send(_edit("x-1", 1, "world"))
        error = await x.expect("error")
        assert error["code"] == "edit_id_reused" and error["edit_id"] == "x-1"
        await x.send(_edit("x-1", 2, "hello", at=3))  # the same batch, rebased past ">> "
        assert (await x.expect("ack"))["version"] == first["version"]

        running.server.should_exit = True
        await asyncio.wait_for(task, 20)
        running, task = await start_server(settings)
        y = await ThinClient.connect(running.ws_url, "x", "d")
        await y.send(_edit("x-1", y.version, "world"))
        assert (await y.expect("error"))["code"] == "edit_id_reused"
        await y.send(_edit("x-1", y.version, "hello"))
        assert (await y.expect("ack"))["version"] == first["version"]
        assert running.state.hub.rooms["d"].room.doc.to_json()["body"] == ">> hello"
        await y.close()
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_another_user_cannot_claim_a_victims_edit_ids(make_settings: Any) -> None:
    """With auth on, ``client_id`` and edit ids are visible in every ``remote``; a writer who
    reuses them must not make the victim's next edit look like a resend (acked, discarded)."""
    secret = "an-exactly-once-test-secret-of-32-bytes"
    running, task = await start_server(make_settings(secret=secret))
    tokens = {
        user: issue(secret, user, docs={"*": ["read", "write"]}, expires_at=int(time.time()) + 600)
        for user in ("alice", "mallory")
    }
    try:

        async def join(client_id: str, user: str) -> RawClient:
            client = await RawClient.connect(running.ws_url, client_id, token=tokens[user])
            await client.send({"type": "join", "doc": "d", "create": True})
            await client.expect("joined")
            return client

        mallory = await join("laptop", "mallory")
        alice = await join("laptop", "alice")
        await alice.send(_edit("laptop-1", 0, "dear "))
        await alice.expect("ack")
        remote = await mallory.expect("remote", where=lambda m: m["version"] == 1)
        assert (remote["client_id"], remote["edit_id"]) == ("laptop", "laptop-1")
        await mallory.send(_edit("laptop-2", 1, "spam "))  # the victim's next edit id
        await mallory.expect("ack")
        await alice.send(_edit("laptop-2", 1, "diary", at=5))
        ack = await alice.expect("ack")
        assert ack["version"] == 3  # applied, not taken for mallory's edit
        body = running.state.hub.rooms["d"].room.doc.to_json()["body"]
        assert "diary" in body and "spam" in body
        await alice.close()
        await mallory.close()
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)


@pytest.mark.parametrize(("ttl", "kept"), [(3600.0, True), (0.0, False)])
async def test_edit_keys_are_pruned_only_past_their_horizon(
    make_settings: Any, ttl: float, kept: bool
) -> None:
    """Keys are pruned when a document loads (and after snapshots), once older than
    ``edit_key_ttl_s``: kept within the horizon, gone past it."""
    settings = make_settings(edit_key_ttl_s=ttl, unload_after_s=0.05)
    running, task = await start_server(settings)
    try:
        hub = running.state.hub
        x = await RawClient.connect(running.ws_url, "x")
        await x.send({"type": "join", "doc": "d", "create": True})
        await x.expect("joined")
        await x.send(_edit("x-1", 0, "hello"))
        await x.expect("ack")
        await x.close()
        await _eventually(lambda: "d" not in hub.rooms)
        y = await RawClient.connect(running.ws_url, "y")
        await y.send({"type": "join", "doc": "d"})  # loads it again: prunes
        await y.expect("joined")
        await _eventually(lambda: not hub._unloads)
        found = await hub.store.lookup_edit("d", key_client("x", "x"), "x-1")
        assert (found is not None) == kept
        await y.close()
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_a_sync_edit_id_reused_for_new_operations_is_refused(server: Any) -> None:
    """Replicas too: a ``sync`` under a known edit id that carries operations the server does
    not have is refused, not acknowledged and dropped; a true resend is acknowledged."""
    replica = Document(7)
    replica.text("t").insert(0, "first")
    first = replica.delta_since({})
    start = replica.version
    replica.text("t").insert(5, " second")
    second = replica.delta_since(start)
    r = await RawClient.connect(server.ws_url, "rep")
    await r.send({"type": "join", "doc": "d", "mode": "replica", "create": True, "state": {}})
    await r.expect("joined")

    def sync(delta: bytes) -> dict[str, Any]:
        return {
            "type": "sync",
            "doc": "d",
            "delta": base64.b64encode(delta).decode(),
            "edit_id": "s1",
        }

    await r.send(sync(first))
    acked = await r.expect("ack")
    await r.send(sync(second))
    refused = await r.expect("error")
    assert refused["code"] == "edit_id_reused" and refused["edit_id"] == "s1"
    await r.send(sync(first))
    assert (await r.expect("ack"))["version"] == acked["version"]
    assert server.state.hub.rooms["d"].room.doc.to_json() == {"t": "first"}
    await r.close()
