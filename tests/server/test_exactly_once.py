"""Exactly-once over real sockets, whatever the server still holds in memory (issue 9, item 2).

An edit whose acknowledgement was lost is resent by its client; the server must recognise it from
the store when its memory no longer knows it: after the document was folded into a snapshot and
reloaded (a restart), after more edits than the in-memory table holds, in a ``join.inflight``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import websockets

from cowrite import protocol as p
from cowrite.client import connect
from cowrite.client.connection import _Retry

sys.path.insert(0, str(Path(__file__).parent))  # conftest.py, protocol_clients.py
from conftest import start_server
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
    settings = make_settings(edits_per_second=1e9, edit_burst=1e9, snapshot_every=10**9)
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
