"""`cowrite replay` on every shared trace, and on traces that must fail."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cowrite.replay import load_trace, replay_trace

TRACES = Path(
    os.environ.get(
        "COWRITE_TRACES", Path(__file__).resolve().parents[1].parent / "shared" / "traces"
    )
)
ALL = sorted(TRACES.glob("*.json.gz")) if TRACES.is_dir() else []


@pytest.mark.slow
@pytest.mark.parametrize("path", ALL, ids=[p.name for p in ALL])
def test_every_shared_trace_replays_to_its_end_content(path: Path) -> None:
    report = replay_trace(load_trace(path), path.name)
    assert report.ok, report.message
    assert report.edits > 0


def test_the_shared_traces_are_present() -> None:
    assert len(ALL) >= 6, f"expected the shared traces in {TRACES}"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cowrite.cli", "replay", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_replay_command_reports_json(tmp_path: Path) -> None:
    trace = {
        "startContent": "",
        "endContent": "hé😀!",
        "txns": [{"patches": [[0, 0, "hé😀"]]}, {"patches": [[3, 0, "!"]]}],
    }
    path = tmp_path / "t.json"
    path.write_text(json.dumps(trace))
    proc = _run(str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["edits"] == 2 and report["encoded_bytes"] > 0


def test_replay_command_exits_1_on_a_mismatch(tmp_path: Path) -> None:
    trace = {"endContent": "nope", "txns": [{"patches": [[0, 0, "yes"]]}]}
    path = tmp_path / "bad.json.gz"
    with gzip.open(path, "wt") as f:
        json.dump(trace, f)
    proc = _run(str(path))
    assert proc.returncode == 1
    assert "MISMATCH" in proc.stderr and "'yes'" in proc.stderr


def test_concurrent_trace_forks_and_merges(tmp_path: Path) -> None:
    trace = {
        "kind": "concurrent",
        "numAgents": 2,
        "endContent": "ab",
        "txns": [
            {"parents": [], "agent": 0, "patches": [[0, 0, "a"]]},
            {"parents": [], "agent": 1, "patches": [[0, 0, "b"]]},
            {"parents": [0, 1], "agent": 0, "patches": []},
        ],
    }
    # both insert at 0 concurrently: the lower replica id (agent 0) goes first, on every replica
    report = replay_trace(trace, "tiny")
    assert report.ok, report.message
    assert report.edits == 2


def test_unreadable_trace_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json")
    proc = _run(str(path))
    assert proc.returncode == 2
    assert "cannot read trace" in proc.stderr
