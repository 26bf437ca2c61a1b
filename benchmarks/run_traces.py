"""Engine benchmark: replay every trace through str, pycrdt and cowrite (see README.md)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works uninstalled too
from cowrite.bench.traces import main

if __name__ == "__main__":
    sys.exit(main(prog="run_traces.py"))
