"""Presence over real WebSockets: entries on join, cursors that stay on their character, idle and
active, and ghosts (connections that die without a close) removed within the heartbeat timeout."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # protocol_clients.py, next to this file
from protocol_clients import Msg, SilentSocket, ThinClient, running


def _entry(update: Msg, session: str) -> Msg | None:
    return next((e for e in update.get("entries", []) if e["session"] == session), None)


async def _update_for(client: ThinClient, session: str, **want: Any) -> Msg:
    """The next presence entry of ``session`` whose fields match ``want``."""

    def match(m: Msg) -> bool:
        e = _entry(m, session)
        return e is not None and all(
            e.get(k, True if k == "active" else None) == v for k, v in want.items()
        )

    return _entry(await client.expect("presence_update", where=match), session)  # type: ignore[return-value]


async def test_join_lists_everyone_and_announces_the_newcomer(server: Any) -> None:
    a = await ThinClient.connect(server.ws_url, "a", "p", user={"name": "Ada", "color": "#f00"})
    b = await ThinClient.connect(server.ws_url, "b", "p", user={"name": "Bob"})
    sa, sb = a.welcome["session"], b.welcome["session"]
    names = {e["session"]: e["user"]["name"] for e in b.joined["presence"]}
    assert names == {sa: "Ada", sb: "Bob"}
    entry = await _update_for(a, sb)
    assert entry["user"]["name"] == "Bob" and entry.get("active", True)
    assert a.joined["presence"][0]["user"] == dict(a.welcome["user"], name="Ada", color="#f00")
    await b.close()
    await a.expect("presence_update", where=lambda m: sb in m.get("left", []))
    await a.close()


async def test_cursor_updates_are_broadcast(server: Any) -> None:
    a = await ThinClient.connect(server.ws_url, "a", "c")
    b = await ThinClient.connect(server.ws_url, "b", "c")
    a.insert("text:body", 0, "hello world")
    await a.flush()
    await a.expect("ack")
    await b.wait_for(lambda: b.text("text:body") == "hello world")
    cursor = {"node": "text:body", "anchor": 2, "head": 5, "version": a.version}
    await a.send({"type": "presence", "doc": "c", "cursor": cursor})
    entry = await _update_for(b, a.welcome["session"], cursor={**cursor})
    assert entry["cursor"]["anchor"] == 2 and entry["cursor"]["head"] == 5
    await a.send({"type": "presence", "doc": "c", "user": {"name": "Ann", "color": "#0f0"}})
    entry = await _update_for(b, a.welcome["session"])
    assert entry["user"]["name"] == "Ann" and entry["cursor"]["anchor"] == 2
    await a.close()
    await b.close()


async def test_a_cursor_stays_on_its_character_while_others_insert_before_it(
    server: Any,
) -> None:
    a = await ThinClient.connect(server.ws_url, "a", "k")
    b = await ThinClient.connect(server.ws_url, "b", "k")
    a.insert("text:body", 0, "hello world")
    await a.flush()
    await a.expect("ack")
    v = a.version
    await b.wait_for(lambda: b.version == v)
    # b inserts before the cursor, concurrently: a places its cursor as of version v,
    # on the "w" of "world" (index 6), not knowing about b's edit
    b.insert("text:body", 0, "🙂🙂 ")
    await b.flush()
    await b.expect("ack")
    session = a.welcome["session"]
    await a.send(
        {
            "type": "presence",
            "doc": "k",
            "cursor": {"node": "text:body", "anchor": 6, "head": 11, "version": v},
        }
    )
    entry = await _update_for(b, session)
    text = b.text("text:body")
    assert text == "🙂🙂 hello world"
    assert entry["cursor"]["version"] == b.version
    assert text[entry["cursor"]["anchor"] :].startswith("world")
    assert entry["cursor"]["head"] == len(text)
    # more inserts before it, then a broadcast of a's entry (a name change) and a late joiner
    b.insert("text:body", 0, "ab")
    b.insert("text:body", 7, "cd")  # inside "hello", still before the cursor
    await b.flush()
    await b.expect("ack")
    await a.send({"type": "presence", "doc": "k", "user": {"name": "moved"}})
    entry = await _update_for(b, session)
    text = b.text("text:body")
    assert text[entry["cursor"]["anchor"] :] == "world"
    c = await ThinClient.connect(server.ws_url, "c", "k")
    mine = next(e for e in c.joined["presence"] if e["session"] == session)
    assert c.text("text:body")[mine["cursor"]["anchor"] :] == "world"
    for x in (a, b, c):
        await x.close()


async def test_idle_members_are_marked_and_wake_on_activity(make_settings: Any) -> None:
    async with running(make_settings(idle_after_s=0.5)) as server:
        a = await ThinClient.connect(server.ws_url, "a", "idle")
        b = await ThinClient.connect(server.ws_url, "b", "idle")
        sa = a.welcome["session"]
        await _update_for(b, sa, active=False)  # the hub ticks every second
        a.insert("text:body", 0, "x")  # an edit wakes it
        await a.flush()
        await _update_for(b, sa, active=True)
        await _update_for(b, sa, active=False)
        await a.send(
            {
                "type": "presence",
                "doc": "idle",
                "cursor": {"node": "text:body", "anchor": 0, "head": 1},
            }
        )
        await _update_for(b, sa, active=True)  # so does a cursor move
        await _update_for(b, sa, active=False)
        await a.send({"type": "chat_send", "doc": "idle", "text": "hi"})
        await _update_for(b, sa, active=True)  # and a chat message
        await a.send({"type": "presence", "doc": "idle", "active": False})
        await _update_for(b, sa, active=False)  # or the client says so itself
        await a.close()
        await b.close()


async def test_a_connection_that_goes_silent_leaves_within_the_heartbeat_timeout(
    server: Any,
) -> None:
    """No close frame, no FIN: the peer just stops reading and answering pings."""
    await _ghost_leaves(server, within_s=6)  # the first beat after 1.5 s of silence (conftest)


async def test_at_the_default_ratio_a_silent_connection_leaves_at_its_second_missed_ping(
    make_settings: Any,
) -> None:
    """The defaults (30 s, timeout 45 s), scaled down: the beat after the first unanswered
    ping finds the client silent for over the timeout and drops it, its presence with it."""
    async with running(make_settings(heartbeat_s=2.0, heartbeat_timeout_s=3.0)) as server:
        await _ghost_leaves(server, within_s=12)  # the beat at 4 s after its last pong


async def _ghost_leaves(server: Any, within_s: float) -> None:
    a = await ThinClient.connect(server.ws_url, "a", "ghost")
    port = int(server.url.rsplit(":", 1)[1])
    ghost = await asyncio.to_thread(SilentSocket, port)
    ghost.send({"type": "hello", "client_id": "ghost"})
    session = (await asyncio.to_thread(ghost.recv_until, "welcome"))["session"]
    ghost.send({"type": "join", "doc": "ghost"})
    await asyncio.to_thread(ghost.recv_until, "joined")
    await _update_for(a, session)
    gone = lambda m: session in m.get("left", [])  # noqa: E731
    await a.expect("presence_update", timeout=within_s, where=gone)
    assert server.state.metrics.disconnects.labels("4000")._value.get() == 1
    ghost.sock.close()
    await a.close()


CHILD = textwrap.dedent(
    """
    import json, sys, time
    from websockets.sync.client import connect
    ws = connect(sys.argv[1])
    ws.send(json.dumps({"type": "hello", "client_id": "doomed"}))
    first = json.loads(ws.recv())  # welcome (with features after it: a frame may be an array)
    session = (first[0] if isinstance(first, list) else first)["session"]
    ws.send(json.dumps({"type": "join", "doc": "ghost"}))
    ws.recv()
    print(session, flush=True)
    time.sleep(60)
    """
)


async def test_a_killed_client_process_leaves(server: Any) -> None:
    a = await ThinClient.connect(server.ws_url, "a", "ghost")
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, server.ws_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        session = (await asyncio.to_thread(child.stdout.readline)).strip()
        await _update_for(a, session)
        os.kill(child.pid, signal.SIGKILL)
        await a.expect("presence_update", timeout=6, where=lambda m: session in m.get("left", []))
        room = server.state.hub.rooms["ghost"].room
        assert session not in room.members
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert json.dumps(a.errors) == "[]"
    await a.close()
