"""Document sessions over real WebSockets: join, edit, ack, broadcast, catch-up."""

from __future__ import annotations

from typing import Any

from cowrite.engine import ot


async def test_edit_is_acknowledged_and_broadcast(server: Any, raw: Any) -> None:
    a = await raw(server.ws_url, "alice")
    b = await raw(server.ws_url, "bob")
    await a.send({"type": "join", "doc": "notes", "create": True})
    joined = await a.expect("joined")
    assert joined["version"] == 0
    await b.send({"type": "join", "doc": "notes"})
    await b.expect("joined")
    op = {"type": "seq", "node": "text:body", "edit": ["hello"]}
    await a.send({"type": "edit", "doc": "notes", "edit_id": "e1", "version": 0, "ops": [op]})
    ack = await a.expect("ack")
    assert ack["version"] == 1 and ack["edit_id"] == "e1"
    remote = await b.expect("remote")
    assert remote["ops"] == [op] and remote["version"] == 1


async def test_stale_edit_is_rebased_past_a_concurrent_one(server: Any, raw: Any) -> None:
    a = await raw(server.ws_url, "a")
    b = await raw(server.ws_url, "b")
    for c in (a, b):
        await c.send({"type": "join", "doc": "d", "create": True})
        await c.expect("joined")
    base = {"type": "seq", "node": "text:t", "edit": ["hello world"]}
    await a.send({"type": "edit", "doc": "d", "edit_id": "1", "version": 0, "ops": [base]})
    await a.expect("ack")
    await b.expect("remote")
    # both edit at version 1, concurrently
    await a.send(
        {
            "type": "edit",
            "doc": "d",
            "edit_id": "2",
            "version": 1,
            "ops": [{"type": "seq", "node": "text:t", "edit": [">> "]}],
        }
    )
    await b.send(
        {
            "type": "edit",
            "doc": "d",
            "edit_id": "3",
            "version": 1,
            "ops": [{"type": "seq", "node": "text:t", "edit": [6, "big "]}],
        }
    )
    await a.expect("ack")
    await b.expect("ack")
    text = server.state.hub.rooms["d"].room.doc.to_json()["t"]
    assert text == ">> hello big world"


async def test_resent_edit_is_applied_once(server: Any, raw: Any) -> None:
    a = await raw(server.ws_url, "same-client")
    await a.send({"type": "join", "doc": "d", "create": True})
    await a.expect("joined")
    edit = {
        "type": "edit",
        "doc": "d",
        "edit_id": "x",
        "version": 0,
        "ops": [{"type": "seq", "node": "text:t", "edit": ["once"]}],
    }
    await a.send(edit)
    first = await a.expect("ack")
    await a.close()
    again = await raw(server.ws_url, "same-client")
    await again.send({"type": "join", "doc": "d", "version": 0})
    await again.expect("joined")
    await again.send(edit)
    second = await again.expect("ack")
    assert second["version"] == first["version"]
    assert server.state.hub.rooms["d"].room.doc.to_json()["t"] == "once"


async def test_rejoin_catches_up_from_a_version(server: Any, raw: Any) -> None:
    a = await raw(server.ws_url, "a")
    await a.send({"type": "join", "doc": "d", "create": True})
    await a.expect("joined")
    texts = [""]
    for i in range(5):
        edit = [len(texts[-1]), f"w{i} "] if texts[-1] else [f"w{i} "]
        await a.send(
            {
                "type": "edit",
                "doc": "d",
                "edit_id": str(i),
                "version": i,
                "ops": [{"type": "seq", "node": "text:t", "edit": edit}],
            }
        )
        await a.expect("ack")
        texts.append(ot.apply(texts[-1], edit))
    b = await raw(server.ws_url, "b")
    await b.send({"type": "join", "doc": "d", "version": 2})
    joined = await b.expect("joined")
    assert joined["version"] == 2 and "snapshot" not in joined
    text = texts[2]
    for v in (3, 4, 5):
        remote = await b.expect("remote")
        assert remote["version"] == v
        text = ot.apply(text, remote["ops"][0]["edit"])
    assert text == texts[5]
