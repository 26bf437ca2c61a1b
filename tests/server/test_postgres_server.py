"""`cowrite serve --database postgresql://…`: the server on PostgreSQL, restarted on it."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # protocol_clients.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))  # services.py
from protocol_clients import ThinClient, running
from services import postgres_database

from cowrite.server.config import Settings


async def test_edits_are_durable_in_postgres_across_a_restart(tmp_path: Path) -> None:
    settings = Settings(data=str(tmp_path / "unused.db"), database=postgres_database())
    async with running(settings) as server:
        a = await ThinClient.connect(server.ws_url, "pg-client", "pgdoc")
        a.insert("text:body", 0, "stored in postgres")
        await a.flush()
        await a.settle(1)
        await a.close()
    assert not (tmp_path / "unused.db").exists(), "--database must win over --data"
    async with running(settings) as again:
        b = await ThinClient.connect(again.ws_url, "other", "pgdoc", create=False)
        assert b.text("text:body") == "stored in postgres"
        assert b.version == 1
        await b.close()
