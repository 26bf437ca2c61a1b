"""The ``cowrite`` command line."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from importlib.metadata import version

    from cowrite import cli_token
    from cowrite.engine import engine_build

    parser = argparse.ArgumentParser(prog="cowrite", description=__doc__)
    parser.add_argument(
        "--version",
        action="version",
        version=f"cowrite {version('cowrite')} (engine: {engine_build()})",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    replay = sub.add_parser("replay", help="replay an editing trace through the CRDT engine")
    replay.add_argument("path", help="trace file (.json or .json.gz)")
    replay.add_argument("--json", action="store_true", help="print the report as JSON")
    serve = sub.add_parser("serve", help="run the collaboration server")
    serve.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--data", help="SQLite file (default ./cowrite.db) or :memory:")
    serve.add_argument("--database", help="postgresql://... (shared by several instances)")
    serve.add_argument("--redis", help="redis://... (the bus between instances)")
    serve.add_argument("--secret", help="HMAC secret for access tokens (default: no auth)")
    serve.add_argument("--log-level", default="info")
    bench = sub.add_parser(
        "bench",
        help="benchmarks: 'traces' (engine vs pycrdt on editing traces), 'server' (WebSocket load),"
        " 'cluster' (several instances on PostgreSQL + Redis)",
    )
    bench.add_argument("suite", choices=["traces", "server", "cluster"])
    bench.add_argument("args", nargs=argparse.REMAINDER, help="options of that suite (--help)")
    cli_token.add_parser(sub)
    schema = sub.add_parser("schema", help="print the wire protocol's JSON Schema")
    schema.add_argument("--output", help="write to this file instead of stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "replay":
        from cowrite.replay import run_replay_command

        return run_replay_command(args.path, as_json=args.json)
    if args.command == "serve":
        from cowrite.server.run import serve

        return serve(
            database=args.database,
            redis=args.redis,
            host=args.host,
            port=args.port,
            data=args.data,
            secret=args.secret,
            log_level=args.log_level,
        )
    if args.command == "bench":
        return _bench(args.suite, args.args)
    if args.command == "token":
        from cowrite import cli_token

        return cli_token.run(args)
    if args.command == "schema":
        import json

        from cowrite.protocol import json_schema

        text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
        return 0
    return 2


def _bench(suite: str, args: list[str]) -> int:
    """``cowrite bench``: runs ``benchmarks`` (not shipped) when importable, from ``sys.path`` or
    the current directory (a checkout's root)."""
    import importlib
    import os

    here = os.getcwd()
    if os.path.isfile(os.path.join(here, "benchmarks", "__main__.py")) and here not in sys.path:
        sys.path.append(here)
    try:
        run = importlib.import_module("benchmarks.__main__").run
    except (ImportError, AttributeError):
        print("benchmarks run from a source checkout: python -m benchmarks …", file=sys.stderr)
        return 2
    result: int = run(suite, args, prog=f"cowrite bench {suite}")
    return result


if __name__ == "__main__":
    sys.exit(main())
