"""A revival is judged the same after a restart (docs/protocol.md T11 "Revivals"): the names an
undo brought back are stored with its batch and learned again when the room replays its log, so
a second undo naming the same character is left out, not inserted again."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))  # conftest.py
from conftest import RawClient, start_server

KEY = "k" * 32  # the same user after the restart
TEXT = "text:body"


async def _edit(c: RawClient, edit_id: str, version: int, op: list[Any], **more: Any) -> Any:
    await c.send(
        {
            "type": "edit",
            "doc": "d",
            "edit_id": edit_id,
            "version": version,
            "ops": [{"type": "seq", "node": TEXT, "edit": op}],
            **more,
        }
    )
    return await c.expect("ack", where=lambda m: m["edit_id"] == edit_id)


def _revive(edit_id: str) -> dict[str, Any]:
    return {"node": TEXT, "at": 0, "n": 1, "edit": edit_id, "of": 0}


async def test_a_revival_is_remembered_across_a_restart(make_settings: Any) -> None:
    settings = make_settings()
    running, task = await start_server(settings)
    try:
        c = await RawClient.connect(running.ws_url, "c", key=KEY)
        await c.send({"type": "join", "doc": "d", "mode": "thin", "create": True})
        await c.expect("joined")
        await _edit(c, "e1", 0, ["abc"])
        await _edit(c, "e2", 1, [1, -1])  # deletes "b"
        ack = await _edit(c, "e3", 2, [1, "b"], revive=[_revive("e2")])  # its undo
        assert "dropped" not in ack and ack["version"] == 3
        await c.close()
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)
    running, task = await start_server(settings)  # the same database: a restart
    try:
        c = await RawClient.connect(running.ws_url, "c", key=KEY)
        await c.send({"type": "join", "doc": "d", "mode": "thin", "version": 3})
        await c.expect("joined")
        # a second undo bringing the same "b" back (made before it saw the first): left out
        ack = await _edit(c, "e4", 2, [1, "bX"], revive=[_revive("e2")])
        assert ack["dropped"] == [{"node": TEXT, "at": 0, "n": 1}]
        await c.send({"type": "join", "doc": "d", "mode": "thin"})
        joined = await c.expect("joined")
        assert joined["snapshot"][TEXT]["value"] == "aXbc"
        await c.close()
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)
