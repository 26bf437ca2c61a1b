"""Cluster benchmark: scenario (b) against 1, 2 and 3 cowrite instances on one PostgreSQL and one
Redis, clients colocated or spread over the instances (see ``cowrite.bench.cluster``).

The same entry point is ``cowrite bench cluster`` and ``python -m cowrite.bench.cluster``. It
starts PostgreSQL and Redis itself (installed by ``scripts/ensure-services``) and prints the
markdown section for ``docs/benchmarks.md`` (``--output FILE`` writes it between markers).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # works uninstalled too
from cowrite.bench.cluster import main

if __name__ == "__main__":
    sys.exit(main(prog="run_cluster.py"))
