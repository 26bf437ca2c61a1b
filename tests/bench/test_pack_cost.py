"""The pack-cost benchmark packs as the SQLite store does, for the tail it is given (and leaves
the tail length as it found it); with the stores' tail (a quarter block) four packs fill a block."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from benchmarks import pack_cost
from cowrite.adapters.store import _version_blocks as vb


def _blocks(path: Path) -> list[int]:
    with sqlite3.connect(path) as c:
        return [int(n) for (n,) in c.execute("SELECT n FROM version_blocks ORDER BY last_seq")]


def test_a_short_tail_tops_the_last_block_up(tmp_path: Path) -> None:
    packs, planning, _ = pack_cost.run(600, 256, tmp_path / "short.db")
    assert packs == 2 and planning > 0
    assert _blocks(tmp_path / "short.db") == [512]  # the second pack re-encoded the first
    assert vb.TAIL_VERSIONS == vb.BLOCK_VERSIONS // 4


def test_the_stores_tail_fills_a_block_in_four_packs(tmp_path: Path) -> None:
    packs, _, _ = pack_cost.run(
        vb.BLOCK_VERSIONS + vb.TAIL_VERSIONS + 5, vb.TAIL_VERSIONS, tmp_path / "d.db"
    )
    assert packs == 5
    assert _blocks(tmp_path / "d.db") == [vb.BLOCK_VERSIONS, vb.TAIL_VERSIONS]
    with sqlite3.connect(tmp_path / "d.db") as c:
        assert c.execute("SELECT count(*) FROM versions").fetchone()[0] == 5
