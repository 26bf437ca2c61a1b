"""The open-stall benchmark against a real server: a typed document, a typist, an open."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_open_stall_measures_an_open_against_a_real_server() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "open_stall", "--chars", "20000", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 1 |")]
    assert len(rows) == 1, done.stdout
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert float(cells[1]) > 0  # the open took time and the joined carried the document
    assert float(cells[2]) > 0.01  # MB: the 20,000 typed characters came back
    assert cells[-1] in ("PASS", "MISS")
    assert "server loop" in done.stdout  # the server's own loop report came back too
