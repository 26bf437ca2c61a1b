"""The version-pack stall benchmark runs both modes against a real SQLite store (and leaves the
store's append as it found it); the probe's stage report splits an edit's time by stage."""

from __future__ import annotations

import tempfile
from pathlib import Path

from benchmarks import pack_stall, pipeline_probe
from cowrite.adapters.store import sqlite as sqlite_store


async def test_both_modes_append_everything_and_the_store_is_left_as_found() -> None:
    original = sqlite_store._append_update  # type: ignore[attr-defined]
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("inline", "background"):
            r = await pack_stall.run(mode, 400.0, 0.8, str(Path(tmp) / f"{mode}.db"))
            assert r["appends"] >= 300  # past the 256-version tail: one pack at least
            assert r["append max"] >= r["append p99"] >= r["append p50"] > 0
    assert sqlite_store._append_update is original  # type: ignore[attr-defined]


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
