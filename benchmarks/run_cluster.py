"""Cluster benchmark: scenario (b) against 1, 2 and 3 cowrite instances on one PostgreSQL and one
Redis, clients colocated or spread over the instances (see ``benchmarks.cluster``).

The same as ``python -m benchmarks cluster`` and ``cowrite bench cluster``. It starts PostgreSQL
and Redis itself (installed by ``scripts/ensure-services``) and prints the markdown section for
``docs/benchmarks.md`` (``--output FILE`` writes it between markers).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works uninstalled too
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: benchmarks
from benchmarks.cluster import main

if __name__ == "__main__":
    sys.exit(main(prog="run_cluster.py"))
