"""The SDK sends what only newer servers understand (an undo's ``revive``: docs/protocol.md T11
"Revivals") only to a server whose ``features`` message names it. Against a stand-in server on a
real socket: a current one (``welcome`` then ``features``) and an older one (``welcome`` only,
refusing unknown fields like the real one did)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from cowrite.client import connect

FAST: dict[str, Any] = {"backoff_base_s": 0.05, "backoff_max_s": 0.5, "flush_timeout_s": 5.0}


class StandIn:
    """Just enough of a server for one thin client: welcome, joined, an ack per edit."""

    def __init__(self, features: list[str] | None) -> None:
        self.features = features
        self.edits: list[dict[str, Any]] = []
        self.version = 0

    async def handle(self, ws: ServerConnection) -> None:
        async for frame in ws:
            msg = json.loads(frame)
            kind = msg["type"]
            out: list[dict[str, Any]] = []
            if kind == "hello":
                user = {"id": "u", "name": "a"}
                out.append({"type": "welcome", "session": "s", "user": user})
                if self.features is not None:
                    out.append({"type": "features", "features": self.features})
            elif kind == "join":
                out.append(
                    {
                        "type": "joined",
                        "doc": msg["doc"],
                        "mode": "thin",
                        "version": self.version,
                        "rights": ["write"],
                        "snapshot": {},
                    }
                )
            elif kind == "edit":
                self.edits.append(msg)
                known = {"type", "doc", "edit_id", "version", "ops"}
                if self.features is not None:
                    known |= {"revive", "withdraw"}
                if set(msg) - known:  # an older server refuses what it does not know
                    out.append({"type": "error", "code": "bad_message", "message": "unknown field"})
                else:
                    self.version += 1
                    out.append(
                        {
                            "type": "ack",
                            "doc": msg["doc"],
                            "edit_id": msg["edit_id"],
                            "version": self.version,
                        }
                    )
            if out:
                await ws.send(json.dumps(out))


@pytest.mark.parametrize("features", [["revive"], [], None])
async def test_an_undo_names_what_it_brings_back_only_to_a_server_that_knows_revive(
    features: list[str] | None,
) -> None:
    stand_in = StandIn(features)
    async with serve(stand_in.handle, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/ws", doc="d", **FAST) as session:
            undo = session.undo_manager("body")
            session.text("body").insert(0, "hello")
            await session.synced()
            undo.close()
            session.text("body").delete(0, 5)
            await session.synced()
            undo.close()
            assert undo.undo() is not None
            await asyncio.wait_for(session.synced(), 5)
            assert str(session.text("body")) == "hello"
    last = stand_in.edits[-1]
    assert ("revive" in last) == (features == ["revive"]), last
    assert stand_in.version == 3  # nothing refused


def test_a_garbled_features_message_is_skipped_and_names_nothing() -> None:
    from cowrite import protocol as p
    from cowrite.client.connection import _decode

    assert _decode('{"type":"features","features":["revive","x"]}') == [
        p.Features(features=["revive", "x"])
    ]
    assert _decode('[{"type":"features","features":5},{"type":"features"}]') == []
