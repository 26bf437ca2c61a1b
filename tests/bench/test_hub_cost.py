"""The in-process per-edit CPU benchmark: every edit acknowledged and delivered to every other
member, through a real SQLite store."""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks import hub_cost


async def test_hub_cost_delivers_every_edit_to_every_other_member() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        r = await hub_cost.run(3, 4, 20.0, 1.0, str(Path(tmp) / "bench.db"))
    assert r["edits"] > 10
    assert r["deliveries"] == 3 * r["edits"]  # each edit reaches the 3 other members
    assert r["cpu"] > 0 and r["writer"] > 0 and r["commits"] >= 1
    assert "per delivery" in hub_cost._report(r)
