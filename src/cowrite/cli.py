"""The ``cowrite`` command line."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cowrite", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    replay = sub.add_parser("replay", help="replay an editing trace through the CRDT engine")
    replay.add_argument("path", help="trace file (.json or .json.gz)")
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "replay":
        from cowrite.replay import run_replay_command

        return run_replay_command(args.path, as_json=args.json)
    return 2


if __name__ == "__main__":
    sys.exit(main())
