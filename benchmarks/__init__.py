"""cowrite's benchmark harnesses, run from a source checkout (``python -m benchmarks``; see
``benchmarks/README.md``). Not part of the shipped package."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The checkout: ``benchmarks/`` sits at its top."""


def child_env() -> dict[str, str]:
    """This process's environment with the checkout and its ``src`` first on ``PYTHONPATH``, so
    that a child ``python -m benchmarks.…`` finds this tree (and ``cowrite``) from any cwd."""
    env = dict(os.environ)
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "src"), *inherited])
    return env
