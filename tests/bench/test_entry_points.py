"""The benchmarks' entry points: ``python -m benchmarks`` and ``cowrite bench`` (from a checkout
only), and the wheel-free layout they rely on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_python_m_benchmarks_lists_the_suites() -> None:
    done = _run([sys.executable, "-m", "benchmarks"], ROOT)
    assert done.returncode == 2
    assert "traces" in done.stderr and "server" in done.stderr and "cluster" in done.stderr
    done = _run([sys.executable, "-m", "benchmarks", "traces", "--help"], ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: python -m benchmarks traces")


def _cowrite(*args: str) -> list[str]:
    """``cowrite ARGS`` as the console script runs it: no checkout on ``sys.path`` (``-P``: not
    even the cwd)."""
    code = f"import sys; from cowrite.cli import main; sys.exit(main({list(args)!r}))"
    return [sys.executable, "-P", "-c", code]


def test_cowrite_bench_runs_them_from_the_checkout_root() -> None:
    done = _run(_cowrite("bench", "cluster", "--help"), ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: cowrite bench cluster")


def test_cowrite_bench_elsewhere_says_where_benchmarks_run(tmp_path: Path) -> None:
    done = _run(_cowrite("bench", "traces"), tmp_path)
    assert done.returncode == 2
    assert done.stderr.strip() == "benchmarks run from a source checkout: python -m benchmarks …"


def test_the_shipped_package_holds_no_benchmarks() -> None:
    assert not (ROOT / "src" / "cowrite" / "bench").exists()
    assert not list((ROOT / "src").glob("*/bench*"))
