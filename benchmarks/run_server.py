"""Server benchmark: cowrite vs Hocuspocus vs pycrdt-websocket over WebSockets (see README.md).

The same as ``python -m benchmarks server`` and ``cowrite bench server``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works uninstalled too
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: benchmarks
from benchmarks.server import main

if __name__ == "__main__":
    sys.exit(main(prog="run_server.py"))
