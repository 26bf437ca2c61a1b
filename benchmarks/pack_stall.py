"""What packing the version history costs the edits around it (issue 12's tail at low load).

Every edit appends a version; once a document's tail holds ``TAIL_VERSIONS`` of them (a whole
block since session 14; 256 before, ``--tail``) the store packs them into a block, topping up the
last one when it is not full (``_version_blocks``: decode it, encode it again with the tail,
~25 ms of Python for a full 2,048-version block). At 250 edits/s (scenario (a)) that is once
every 8 seconds (with a tail of 256: once a second). ``python -m benchmarks.pack_stall [--rate
250] [--seconds 20] [--rounds 2] [--tail N]`` appends to a real `SQLiteStore` (fsync on) at
``--rate`` from the event loop, one version each (shaped like the server's: one author, one
replica's counter), and times each append (submitted -> durable) and the event loop's lateness
(a 2 ms ticker), in two modes alternated in one process:

* ``inline``: the pack runs in the append's transaction, on the writer (as before 2026-12-07):
  that commit, and every append queued behind it, waits for the encoding;
* ``background``: the store's default since: the append only notes the tail is due; a reader
  thread encodes the blocks (pacing the interpreter lock) and one short writer job swaps them in.

``--store postgres`` does the same against a real `PostgresStore` (a throwaway PostgreSQL server
with fsync on, started by ``cowrite_dev.services``; its binaries from ``scripts/ensure-services``):
``inline`` packs in the append's transaction as before 2026-12-08 (the codec on a worker thread,
but the document's advisory lock held, so its next batch waits), ``background`` is
``_pg_pack.py`` (a plan on the read pool, a worker thread, a conditional swap by the writer).
Besides the percentiles, ``due max`` is the slowest of the appends from the one that makes the
tail due to the eight after it: what a document whose tail is due waits; ``held`` is how long
each pack held a writer transaction (the document's lock: its next batch waits that long).

Wall-clock latencies: on a shared machine compare the modes within one run, and their CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from benchmarks.pacing import paced
from cowrite.adapters.store import SQLiteStore, Store, VersionRecord
from cowrite.adapters.store import _version_blocks as vb
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


@asynccontextmanager
async def _sqlite(mode: str, path: str) -> AsyncIterator[Store]:
    original: Callable[..., int] = sqlite_store._append_update  # type: ignore[attr-defined]
    if mode == "inline":  # no list to note a due tail in: the append packs it, as before

        def packing(c: Any, *args: Any) -> int:
            return original(c, *args[:-1], None)

        sqlite_store._append_update = packing  # type: ignore[attr-defined,assignment]
    try:
        async with SQLiteStore(path) as store:
            yield store
    finally:
        sqlite_store._append_update = original  # type: ignore[attr-defined]


HELD: list[float] = []
"""PostgreSQL: how long each pack held a writer transaction (the document's lock), s."""


@asynccontextmanager
async def _postgres(mode: str, dsn: str) -> AsyncIterator[Store]:
    from cowrite.adapters.store import _pg_append, _pg_pack, _pg_versions, _pg_writer
    from cowrite.adapters.store.postgres import PostgresStore

    original, apply = _pg_append.append_run, _pg_pack.apply_pack

    async def packing(conn: Any, run: list[Any]) -> list[Any]:
        outcomes = await original(conn, run)
        for doc_id, block in {job.doc_id: job.block for job in run if job.due}.items():
            t = time.monotonic()
            await _pg_versions.pack(conn, doc_id, block)
            HELD.append(time.monotonic() - t)
        return outcomes

    async def applying(c: Any, doc_id: str, plan: _pg_pack.PackPlan) -> bool:
        t = time.monotonic()
        try:
            return await apply(c, doc_id, plan)
        finally:
            HELD.append(time.monotonic() - t)

    if mode == "inline":  # the pack in the append's transaction, as before (``pack`` is the same)
        _pg_writer.append_run = packing  # type: ignore[attr-defined]
    else:
        _pg_pack.apply_pack = applying
    try:
        async with PostgresStore(dsn) as store:
            if mode == "inline":
                store.packer.due = lambda doc_id: None  # type: ignore[method-assign]
            yield store
    finally:
        _pg_writer.append_run = original  # type: ignore[attr-defined]
        _pg_pack.apply_pack = apply


async def run(
    mode: str,
    rate: float,
    seconds: float,
    where: str,
    store_kind: str = "sqlite",
    tail: int | None = None,
) -> dict[str, float]:
    """One mode's run on a fresh database: append latencies and loop lateness, ms (``tail``:
    the stores' tail length for the run, default theirs)."""
    saved = vb.TAIL_VERSIONS
    vb.TAIL_VERSIONS = tail or saved
    try:
        return await _run(mode, rate, seconds, where, store_kind, vb.TAIL_VERSIONS)
    finally:
        vb.TAIL_VERSIONS = saved


async def _run(
    mode: str, rate: float, seconds: float, where: str, store_kind: str, tail: int
) -> dict[str, float]:
    opened = _postgres(mode, where) if store_kind == "postgres" else _sqlite(mode, where)
    HELD.clear()
    lags: list[float] = []
    latencies: list[float] = []
    by_seq: dict[int, float] = {}
    async with opened as store:
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
            seq = await store.append_update("d", b"x" * 40, now_ms=v.time_ms, version=v)
            latencies.append(time.monotonic() - t)
            by_seq[seq] = latencies[-1]

        tick = asyncio.create_task(ticker())
        cpu = await paced(one, rate, seconds)
        stop = True
        await tick
    # the appends from the one that made the tail due (every ``tail``) to eight after it
    due = [t for s, t in by_seq.items() if s >= tail and s % tail <= 8]
    return {
        "appends": len(latencies),
        "append p50": _q(latencies, 50),
        "append p99": _q(latencies, 99),
        "append max": _q(latencies, 100),
        "due p50": _q(due, 50),
        "due max": _q(due, 100),
        "loop lag p99": _q(lags, 99),
        "loop lag max": _q(lags, 100),
        "cpu %": 100 * cpu / seconds,
        **(
            {"packs": len(HELD), "held p50": _q(HELD, 50), "held max": _q(HELD, 100)}
            if HELD
            else {}
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=250.0, help="appends per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternated pairs of runs")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--tail", type=int, default=vb.TAIL_VERSIONS, help="versions")
    args = parser.parse_args(argv)
    server: Any = None
    if args.store == "postgres":
        from cowrite_dev.services import PostgresServer

        server = PostgresServer.create(fsync=True)
    try:
        with tempfile.TemporaryDirectory() as d:
            for r in range(args.rounds):
                for mode in ("inline", "background"):
                    if server is not None:
                        where = server.create_database(f"pack_{mode}_{r}")
                    else:
                        where = os.path.join(d, f"{mode}-{r}.db")
                    ran = run(mode, args.rate, args.seconds, where, args.store, args.tail)
                    res = asyncio.run(ran)
                    load = os.getloadavg()[0]
                    cells = ", ".join(f"{k} {v:.1f}" for k, v in res.items())
                    print(f"{mode:10s} round {r + 1}: {cells}; load {load:.1f}", flush=True)
    finally:
        if server is not None:
            server.destroy()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
