"""`cowrite serve --redis redis://…`: durable updates go out on Redis for other instances."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # protocol_clients.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))  # services.py
from protocol_clients import ThinClient, running
from services import shared_redis

from cowrite.adapters.bus.redis import RedisBus
from cowrite.engine.document import Document
from cowrite.rooms.room import unwrap_update
from cowrite.server.cluster import UpdateNote, decode_note
from cowrite.server.config import Settings


async def test_a_server_with_redis_publishes_its_durable_updates(tmp_path: Path) -> None:
    url = shared_redis().url
    settings = Settings(data=str(tmp_path / "db.sqlite"), redis=url)
    listener = RedisBus(url)
    await listener.open()
    got: list[bytes] = []

    async def handler(_channel: str, message: bytes) -> None:
        got.append(message)

    await listener.subscribe("doc:shared", handler)
    try:
        async with running(settings) as server:
            assert isinstance(server.state.bus, RedisBus)
            a = await ThinClient.connect(server.ws_url, "writer", "shared")
            a.insert("text:body", 0, "via redis")
            await a.flush()
            await a.settle(1)
            updates: list[UpdateNote] = []
            for _ in range(500):
                updates = [n for n in map(decode_note, got) if isinstance(n, UpdateNote)]
                if updates:
                    break
                await asyncio.sleep(0.01)
            note = updates[0]
            assert note.instance == server.state.hub.replica and note.seq == 1
            _client, _edit, delta = unwrap_update(note.data)
            peer = Document(7)
            peer.merge(delta)
            assert peer.to_json()["body"] == "via redis"
            await a.close()
    finally:
        await listener.close()
