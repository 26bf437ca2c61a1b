"""Engine benchmark: replay every trace through str, pycrdt and cowrite (see README.md).

The same as ``python -m benchmarks traces``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works uninstalled too
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: benchmarks
from benchmarks.traces import main

if __name__ == "__main__":
    sys.exit(main(prog="run_traces.py"))
