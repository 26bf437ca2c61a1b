"""What packing the version history costs the edits around it (issue 12's tail at low load).

Every edit appends a version; once a document's tail holds 256 of them the store packs them into
a block, topping up the last one (``_version_blocks``: decode it, encode it again with the tail,
~25 ms of Python for a full 2,048-version block). At 250 edits/s (scenario (a)) that is once a
second. ``python -m benchmarks.pack_stall [--rate 250] [--seconds 20] [--rounds 2]`` appends to a
real `SQLiteStore` (fsync on) at ``--rate`` from the event loop, one version each (shaped like
the server's: one author, one replica's counter), and times each append (submitted -> durable)
and the event loop's lateness (a 2 ms ticker), in two modes alternated in one process:

* ``inline``: the pack runs in the append's transaction, on the writer (as before 2026-12-07):
  that commit, and every append queued behind it, waits for the encoding;
* ``background``: the store's default since: the append only notes the tail is due; a reader
  thread encodes the blocks (pacing the interpreter lock) and one short writer job swaps them in.

Wall-clock latencies: on a shared machine compare the modes within one run, and their CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from cowrite.adapters.store import SQLiteStore, VersionRecord
from cowrite.adapters.store import sqlite as sqlite_store

REPLICA = bytes([0x8B, 0xAE, 0x95, 0xD2, 0xFF, 0xD9, 0xE3, 0xDB, 0x46])
"""A server replica id's varint, as the server's version vectors hold it."""


def _vector(count: int) -> bytes:
    out = bytearray(REPLICA)
    while count >= 0x80:
        out.append((count & 0x7F) | 0x80)
        count >>= 7
    out.append(count)
    return bytes(out)


def _q(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


async def run(mode: str, rate: float, seconds: float, path: str) -> dict[str, float]:
    """One mode's run on a fresh database: append latencies and loop lateness, ms."""
    inline = mode == "inline"
    original: Callable[..., int] = sqlite_store._append_update  # type: ignore[attr-defined]
    if inline:  # no list to note a due tail in: the append packs it, as before

        def packing(c: Any, *args: Any) -> int:
            return original(c, *args[:-1], None)

        sqlite_store._append_update = packing  # type: ignore[attr-defined,assignment]
    lags: list[float] = []
    latencies: list[float] = []
    try:
        async with SQLiteStore(path) as store:
            await store.create_document("d", title="", now_ms=0)
            stop = False

            async def ticker() -> None:
                while not stop:
                    t = time.monotonic()
                    await asyncio.sleep(0.002)
                    lags.append(max(0.0, time.monotonic() - t - 0.002))

            async def one(i: int) -> None:
                t = time.monotonic()
                v = VersionRecord(
                    0, 1_765_000_000_000 + i * 200, (("u1", "Ann"),), "typed", 1, _vector(i)
                )
                await store.append_update("d", b"x" * 40, now_ms=v.time_ms, version=v)
                latencies.append(time.monotonic() - t)

            tick = asyncio.create_task(ticker())
            cpu0, start = time.process_time(), time.monotonic()
            tasks = []
            i = 0
            while time.monotonic() - start < seconds:
                i += 1
                tasks.append(asyncio.create_task(one(i)))
                await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
            await asyncio.gather(*tasks)
            cpu = time.process_time() - cpu0
            stop = True
            await tick
    finally:
        sqlite_store._append_update = original  # type: ignore[attr-defined]
    return {
        "appends": len(latencies),
        "append p50": _q(latencies, 50),
        "append p99": _q(latencies, 99),
        "append max": _q(latencies, 100),
        "loop lag p99": _q(lags, 99),
        "loop lag max": _q(lags, 100),
        "cpu %": 100 * cpu / seconds,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=250.0, help="appends per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternated pairs of runs")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.rounds):
            for mode in ("inline", "background"):
                path = os.path.join(d, f"{mode}-{r}.db")
                res = asyncio.run(run(mode, args.rate, args.seconds, path))
                load = os.getloadavg()[0]
                cells = ", ".join(f"{k} {v:.1f}" for k, v in res.items())
                print(f"{mode:10s} round {r + 1}: {cells}; load {load:.1f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
