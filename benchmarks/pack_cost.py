"""CPU per version of packing the version history (issue 12: the store's work per edit).

Every edit appends a version; once a document's tail is ``TAIL_VERSIONS`` long, the SQLite store
packs it into blocks on a reader thread (``_versions.plan_pack``: the last block, when it is not
full, is decoded and encoded again with the tail) and swaps them in with one writer job
(``apply_pack``). ``python -m benchmarks.pack_cost [--versions 8192] [--tails 256,2048]`` appends
``--versions`` versions to one document of a SQLite database (no fsync: the pack's CPU is what
is measured), shaped like the server's (one author of ten, a three-entry vector), packing as the
store does each time a tail is due, for each tail length in turn (the module constant patched,
so one process compares them), and prints the packs' CPU (thread time: plan and swap) per
version appended. Run it for a multiple of 2,048 versions: a tail shorter than a block tops the
last block up, so its cost per version grows with the block's fill and repeats every block.
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from cowrite.adapters.store import _version_blocks as vb
from cowrite.adapters.store._schema import migrate
from cowrite.adapters.store._sqlite_queries import _append_update, _create_document
from cowrite.adapters.store._versions import apply_pack, plan_pack
from cowrite.adapters.store.base import EditKey, VersionRecord
from cowrite.rooms.history import encode_vector


def run(versions: int, tail: int, path: Path) -> tuple[int, float, float]:
    """Append ``versions`` versions with a tail of ``tail``; return (packs, plan CPU s, swap CPU
    s)."""
    saved = vb.TAIL_VERSIONS
    vb.TAIL_VERSIONS = tail
    writer = sqlite3.connect(path, isolation_level=None)
    reader = sqlite3.connect(path, isolation_level=None)
    try:
        writer.execute("PRAGMA journal_mode = WAL")
        writer.execute("PRAGMA synchronous = OFF")
        migrate(writer)
        _create_document(writer, "d", "", 0, "crdt")
        packs, planning, swapping = 0, 0.0, 0.0
        for n in range(1, versions + 1):
            record = VersionRecord(
                seq=0,
                time_ms=1000 * (n // 3),
                authors=((f"u{n % 10}", f"user {n % 10}"),),
                how="typed",
                size=1,
                vector=encode_vector({1: n, 2: n // 2, 3 + n % 10: n}),
            )
            due: list[str] = []
            writer.execute("BEGIN IMMEDIATE")
            key = EditKey(f"c{n % 10}", str(n), "0123456789abcdef")
            _append_update(writer, "d", b"x" * 40, (key,), n, record, vb.BLOCK_VERSIONS, due)
            writer.execute("COMMIT")
            if due:
                t0 = time.thread_time()
                plan = plan_pack(reader, "d", vb.BLOCK_VERSIONS)
                t1 = time.thread_time()
                if plan is not None:
                    writer.execute("BEGIN IMMEDIATE")
                    apply_pack(writer, "d", plan)
                    writer.execute("COMMIT")
                swapping += time.thread_time() - t1
                planning += t1 - t0
                packs += 1
        return packs, planning, swapping
    finally:
        vb.TAIL_VERSIONS = saved
        writer.close()
        reader.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pack_cost", description=__doc__)
    parser.add_argument("--versions", type=int, default=4 * vb.BLOCK_VERSIONS)
    parser.add_argument("--tails", default=f"256,{vb.TAIL_VERSIONS}")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    for _ in range(args.rounds):
        for tail in [int(t) for t in args.tails.split(",")]:
            with tempfile.TemporaryDirectory() as tmp:
                packs, planning, swapping = run(args.versions, tail, Path(tmp) / "pack.db")
            per = 1e6 * (planning + swapping) / args.versions
            print(
                f"tail {tail}: {packs} packs, plan {1e3 * planning:.0f} ms + swap "
                f"{1e3 * swapping:.0f} ms of CPU: {per:.1f} µs per version",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
