"""``python -m benchmarks traces|server|cluster [options]``, from the repository root (``cowrite
bench`` runs the same from a checkout). ``--help`` after the suite lists its options."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

SUITES = {
    "traces": "engine vs pycrdt and str on the editing traces",
    "server": "WebSocket load: cowrite vs Hocuspocus and pycrdt-websocket",
    "cluster": "several cowrite instances on PostgreSQL + Redis",
    "history": "version history on the automerge-paper document (list, value, diff, disk)",
    "open_stall": "how long opening a large document holds up another document's edits",
}


def run(suite: str, args: Sequence[str], *, prog: str) -> int:
    """Run ``suite`` (a key of `SUITES`) with its command-line ``args``."""
    module = importlib.import_module(f"benchmarks.{suite}")
    result: int = module.main(list(args), prog=prog)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in SUITES:
        usage = "\n".join(f"  {name:8} {what}" for name, what in SUITES.items())
        asked = bool(args) and args[0] in ("-h", "--help")
        out = sys.stdout if asked else sys.stderr
        print(f"usage: python -m benchmarks {{{','.join(SUITES)}}} [options]\n{usage}", file=out)
        return 0 if asked else 2
    return run(args[0], args[1:], prog=f"python -m benchmarks {args[0]}")


if __name__ == "__main__":
    sys.exit(main())
