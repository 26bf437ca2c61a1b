"""The floor under the durable server's latency: this disk's fsync, and one SQLite commit.

An edit is acknowledged after the ``COMMIT`` that holds it has fsynced the WAL
(``SQLiteStore``, ``synchronous=FULL``); an edit that arrives while its room's previous batch
commits waits for that commit and then for its own. So edit->visible p99 of the durable server
cannot be below about one fsync's p99, nor often below two. ``python -m benchmarks.fsync_floor
[--n 1000] [--dir DIR] [--gap-ms 4]`` measures, in one process with nothing else running in
it, (1) a 4 kB ``pwrite`` at a fixed offset then ``fdatasync`` (a WAL being reused), (2) the
same appended to a growing file then ``fsync``, and (3) a one-row SQLite transaction in WAL mode
with ``synchronous=FULL`` (``BEGIN IMMEDIATE``, ``INSERT``, ``COMMIT``), each ``--n`` times
``--gap-ms`` apart, and prints p50/p90/p99/max and the load average. ``--dir`` should be on the
disk the server's database uses (default: the temporary directory).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import time
from collections.abc import Callable, Sequence


def _q(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def _timed(n: int, gap_s: float, step: Callable[[], None]) -> list[float]:
    out: list[float] = []
    for _ in range(n):
        t = time.perf_counter()
        step()
        out.append(time.perf_counter() - t)
        time.sleep(gap_s)
    return out


def measure(directory: str, n: int, gap_s: float) -> dict[str, list[float]]:
    """Seconds per operation, by kind (see the module's docstring)."""
    block = b"\x5a" * 4096
    results: dict[str, list[float]] = {}
    fd = os.open(os.path.join(directory, "reused"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.pwrite(fd, block, 0)
        os.fsync(fd)

        def overwrite() -> None:
            os.pwrite(fd, block, 0)
            os.fdatasync(fd)

        results["pwrite 4 kB + fdatasync (same size)"] = _timed(n, gap_s, overwrite)
    finally:
        os.close(fd)
    fd = os.open(os.path.join(directory, "growing"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:

        def append() -> None:
            os.write(fd, block)
            os.fsync(fd)

        results["write 4 kB appended + fsync"] = _timed(n, gap_s, append)
    finally:
        os.close(fd)
    conn = sqlite3.connect(os.path.join(directory, "floor.db"), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v BLOB)")
        row = b"y" * 200

        def commit() -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (v) VALUES (?)", (row,))
            conn.execute("COMMIT")

        results["SQLite WAL, synchronous=FULL: one-row commit"] = _timed(n, gap_s, commit)
    finally:
        conn.close()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="operations of each kind")
    parser.add_argument("--dir", default=None, help="a directory on the database's disk")
    parser.add_argument("--gap-ms", type=float, default=4.0, help="pause between operations")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cowrite-fsync-floor-", dir=args.dir) as d:
        results = measure(d, args.n, args.gap_ms / 1000)
    after = os.getloadavg()
    for name, values in results.items():
        print(
            f"{name}: n {len(values)}, ms p50 {_q(values, 50):.2f} p90 {_q(values, 90):.2f} "
            f"p99 {_q(values, 99):.2f} max {_q(values, 100):.1f}"
        )
    print(f"load average {load[0]:.1f} before, {after[0]:.1f} after")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
