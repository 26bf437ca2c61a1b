"""Server benchmark: cowrite vs Hocuspocus vs pycrdt-websocket over WebSockets (see README.md).

The same entry point is ``cowrite bench`` and ``python -m cowrite.bench.server``.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works uninstalled too
from cowrite.bench.server import main

if __name__ == "__main__":
    sys.exit(main(prog="run_server.py"))
