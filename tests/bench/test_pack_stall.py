"""The version-pack stall benchmark runs both modes against a real SQLite store and a real
PostgreSQL (and leaves the stores' code as it found it); the probe's stage report splits an
edit's time by stage; the join-snapshot memory probe sees the snapshots dropped."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pytest

from benchmarks import join_snapshot_memory, pack_stall, pipeline_probe
from cowrite.adapters.store import _pg_pack, _pg_writer
from cowrite.adapters.store import sqlite as sqlite_store

sys.path.insert(0, str(Path(__file__).parents[1] / "adapters"))  # services.py
import services


async def test_both_modes_append_everything_and_the_store_is_left_as_found() -> None:
    original = sqlite_store._append_update  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("inline", "background"):
            r = await pack_stall.run(mode, 400.0, 1.5, str(Path(tmp) / f"{mode}.db"), tail=256)
            # past the 256-version tail: one pack at least (a loaded machine paces fewer)
            assert r["appends"] > 256
            assert r["append max"] >= r["append p99"] >= r["append p50"] > 0
    assert sqlite_store._append_update is original  # type: ignore[attr-defined]


async def test_both_modes_on_postgres_pack_and_time_the_packs_hold() -> None:
    appends, apply = _pg_writer.append_run, _pg_pack.apply_pack  # type: ignore[attr-defined]
    for mode in ("inline", "background"):
        dsn = services.postgres_database()
        r = await pack_stall.run(mode, 400.0, 1.5, dsn, "postgres", tail=256)
        assert r["appends"] > 256
        assert r["packs"] >= 1 and r["held max"] >= r["held p50"] > 0
    assert _pg_writer.append_run is appends  # type: ignore[attr-defined]
    assert _pg_pack.apply_pack is apply


def test_the_join_snapshot_memory_probe_drops_every_snapshot(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert join_snapshot_memory.main(["--docs", "2", "--chars", "2000", "--inserts", "50"]) == 0
    out = capsys.readouterr().out
    assert "| saved |" in out and "2 rooms of 2,000 characters" in out


def test_the_stage_report_splits_the_slowest_edits_by_stage() -> None:
    edits = [pipeline_probe.EditStages(0.0, 0.001, 0.002, 0.003, 0.003, 0.004) for _ in range(99)]
    edits.append(pipeline_probe.EditStages(0.0, 0.001, 0.031, 0.041, 0.042, 0.043))
    lines = pipeline_probe.stages_report(edits)
    assert lines[0].startswith("stages (received -> sent): n 100,")
    assert lines[2] == (
        "stages mean ms, slowest 1% (n 1): apply 1.00, queue 30.00, store 10.00, wake 1.00, "
        "fanout 1.00"
    )
    assert pipeline_probe.stages_report([]) == ["stages: none"]
