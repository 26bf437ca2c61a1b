"""What a busy event loop costs the SQLite writer's commits (issue 12's durable tail).

The writer thread releases the interpreter lock around every SQLite call (each statement's step
and reset, the ``COMMIT`` and its fsync) and must take it back after each. While the event loop
runs Python, a thread that wants the lock waits for it to be released, or for CPython's switch
interval (``sys.getswitchinterval()``, 5 ms by default) before it asks for it: an append is ~6
statements and a dozen or more such round trips, so a commit that needs a millisecond of CPU
can take tens of milliseconds of wall time (a *convoy*).

``python -m benchmarks.commit_convoy [--rate 250] [--seconds 8] [--busy-ms 1.5] [--period-ms 4]
[--intervals 5,1,0.5] [--sync PIPE,FULL,NORMAL] [--rounds 2]`` appends to a real `SQLiteStore` at
``--rate`` from the event loop (one version per append, as the server writes; every 256th append
makes a version-tail pack on a reader thread), while a loop callback runs ``--busy-ms`` of Python
every ``--period-ms`` (the server's own work; 0 for an idle loop). It alternates switch
intervals and sync modes in one process: ``PIPE`` is ``synchronous="FULL"`` with the pipelined
group commit (the default: commits without fsync, a sync thread fdatasyncs the WAL before the
batch resolves), ``FULL`` the same without the pipeline (SQLite fsyncs inside ``COMMIT``),
``NORMAL`` no fsync before a write resolves (what its commits take beyond their CPU is the lock).
It prints, per run: append latency (submitted -> durable, the future resolved on the loop), the
writer's transactions (wall time and the writer thread's CPU time), the WAL syncs (how many, and
the committed batches per sync) and the process's CPU.

Wall-clock numbers: on a shared machine compare the modes within one run, and the CPU columns.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.pacing import paced
from benchmarks.pack_stall import _vector
from cowrite.adapters.store import SQLiteStore, VersionRecord, _writer


def _q(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def _burn(seconds: float) -> None:
    """Python bytecode for ``seconds`` (the interpreter checks for a lock request as it runs)."""
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        for i in range(50):
            n += i


async def run(
    *,
    interval_s: float,
    sync: str,
    rate: float,
    seconds: float,
    busy_s: float,
    period_s: float,
    path: str,
) -> dict[str, float]:
    """One mode's run on a fresh database: append latencies and commit times, ms."""
    commits: list[float] = []
    commit_cpu: list[float] = []
    original: Callable[..., Any] = _writer.BatchWriter._commit

    def timed(self: _writer.BatchWriter, batch: list[Any]) -> Any:
        t, c = time.perf_counter(), time.thread_time()
        try:
            return original(self, batch)
        finally:
            commits.append(time.perf_counter() - t)
            commit_cpu.append(time.thread_time() - c)

    latencies: list[float] = []
    previous = sys.getswitchinterval()
    _writer.BatchWriter._commit = timed  # type: ignore[method-assign]
    sys.setswitchinterval(interval_s)
    try:
        async with SQLiteStore(
            path,
            synchronous="NORMAL" if sync == "NORMAL" else "FULL",
            sync_pipeline=sync == "PIPE",
        ) as store:
            await store.create_document("d", title="", now_ms=0)
            loop = asyncio.get_running_loop()
            stop = False

            def busy() -> None:
                if not stop:
                    _burn(busy_s)
                    loop.call_later(period_s, busy)

            async def one(i: int) -> None:
                t = time.monotonic()
                v = VersionRecord(
                    0, 1_765_000_000_000 + i * 200, (("u1", "Ann"),), "typed", 1, _vector(i)
                )
                await store.append_update("d", b"x" * 40, now_ms=v.time_ms, version=v)
                latencies.append(time.monotonic() - t)

            if busy_s > 0:
                loop.call_soon(busy)
            commits.clear()
            commit_cpu.clear()
            cpu = await paced(one, rate, seconds)
            stop = True
            syncs = store.stats.sync.syncs
            batches = store.stats.sync.batches
    finally:
        _writer.BatchWriter._commit = original  # type: ignore[method-assign]
        sys.setswitchinterval(previous)
    return {
        "appends": len(latencies),
        "append p50": _q(latencies, 50),
        "p99": _q(latencies, 99),
        "max": _q(latencies, 100),
        "commits": len(commits),
        "commit p50": _q(commits, 50),
        "commit p99": _q(commits, 99),
        "commit max": _q(commits, 100),
        "commit cpu p99": _q(commit_cpu, 99),
        "syncs": syncs,
        "batches/sync": batches / syncs if syncs else 0.0,
        "cpu %": 100 * cpu / seconds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rate", type=float, default=250.0, help="appends per second")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--busy-ms", type=float, default=1.5, help="loop work per period")
    parser.add_argument("--period-ms", type=float, default=4.0)
    parser.add_argument("--intervals", default="5,1,0.5", help="switch intervals, ms")
    parser.add_argument(
        "--sync", default="PIPE,FULL", help="PIPE, FULL and/or NORMAL, comma-separated"
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternated series of runs")
    args = parser.parse_args(argv)
    intervals = [float(x) / 1000 for x in args.intervals.split(",")]
    syncs = [s.strip().upper() for s in args.sync.split(",")]
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.rounds):
            for sync in syncs:
                for interval in intervals:
                    path = os.path.join(d, f"{sync}-{interval}-{r}.db")
                    res = asyncio.run(
                        run(
                            interval_s=interval,
                            sync=sync,
                            rate=args.rate,
                            seconds=args.seconds,
                            busy_s=args.busy_ms / 1000,
                            period_s=args.period_ms / 1000,
                            path=path,
                        )
                    )
                    load = os.getloadavg()[0]
                    cells = ", ".join(
                        f"{k} {v:.0f}" if k in ("appends", "commits", "syncs") else f"{k} {v:.1f}"
                        for k, v in res.items()
                    )
                    print(
                        f"{sync:6s} switch {1000 * interval:g} ms, round {r + 1}: {cells}; "
                        f"load {load:.1f}",
                        flush=True,
                    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
