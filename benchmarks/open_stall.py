"""How long opening a large document holds up the edits of another document (issue 12).

Target: opening a 2 M-character document never delays another document's edits by more than 20
ms. A real ``cowrite serve`` (SQLite, durable acks) gets a document of ``--chars`` characters
(typed through the SDK as a replica: short inserts at random places, some deletions, so it
holds many runs as a typed document does), and is restarted so that the document is on disk only.
Then a *typist* edits a small document over the raw WebSocket protocol, one edit every
``--interval-ms`` (25: 40 edits a second, under the edit budget) with one edit in flight (as a
thin client), and records each edit's time to its ``ack``; after a quiet second an *opener*
joins the large document (the server loads it and sends the ``joined`` snapshot). The typist's
acks before the open are the baseline; the delay is how much later than the baseline's median
any ack came while the open went on. The server also reports its event loop's stalls and how
long the load held the interpreter lock between two drops, in CPU time of its thread (the figure
that does not depend on how loaded the machine is; ``benchmarks.profile_serve``, one report per
server process: the first is the one the document was typed into). ``OPEN_STALL_PROBE=DIR``
adds the SQLite commit and pipeline timings (``benchmarks.pipeline_probe``).

``python -m benchmarks open_stall [--chars 2000000] [--rounds 3] [--db FILE]``: prints a table.
``--db FILE`` keeps the typed database: the first run types it and copies it to FILE, later runs
(same ``--chars``) start from a copy of it, so that rounds of several runs open the same document
(and skip the minute of typing).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import websockets

from cowrite.client import connect
from cowrite_dev.http_services import CowriteInstance

BIG, SMALL = "big", "small"


class _LaggedInstance(CowriteInstance):
    """``cowrite serve`` under ``benchmarks.profile_serve --lag-out`` (loop stalls at exit)."""

    def __init__(self, log: Path, data: str, lag_dir: Path, chars: int) -> None:
        # a document of exactly the limit's size must take its last sync: room above it
        env = {"COWRITE_MAX_NODE_LENGTH": str(max(2_000_000, 2 * chars))}
        super().__init__("cowrite", log, data=data, log_level="warning", env=env)
        self.lag_dir = lag_dir

    def argv(self) -> list[str]:
        argv = super().argv()
        serve = argv.index("serve")
        wrap = [self.python, "-m", "benchmarks.profile_serve", "--lag-out", str(self.lag_dir)]
        if os.environ.get("OPEN_STALL_PROFILE"):  # a directory: cProfile of each run
            wrap += ["--out", os.environ["OPEN_STALL_PROFILE"]]
        if os.environ.get("OPEN_STALL_PROBE"):  # a directory: benchmarks.pipeline_probe
            wrap += ["--probe-out", os.environ["OPEN_STALL_PROBE"]]
        return [*wrap, "--", *argv[serve:]]


async def _fill(url: str, chars: int, seed: int = 7) -> int:
    """Type ``chars`` characters into the large document as a CRDT replica, the way people
    type: short inserts at random places and a few deletions, so the document holds many
    items (runs), as a typed one does, not a few huge ones. Durable when this returns; the
    number of inserts made."""
    rng = random.Random(seed)
    words = ["lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit"]
    inserts = 0
    async with connect(url, doc=BIG, name="filler", mode="replica") as doc:
        text = doc.text("t")
        n = 0  # its length, kept here (reading it back each time costs a pass)
        while n < chars:
            for _ in range(5_000):  # about 40 kB a sync: under the frame limit
                if n > 50 and rng.random() < 0.1:
                    count = rng.randint(1, 5)
                    text.delete(rng.randrange(n - 5), count)
                    n -= count
                else:
                    word = rng.choice(words) + " "
                    text.insert(rng.randint(0, n), word)
                    n += len(word)
                    inserts += 1
            await doc.synced(timeout_s=120)
    return inserts


async def _recv_until(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        raw = await ws.recv()
        frames = json.loads(raw)
        for msg in frames if isinstance(frames, list) else [frames]:
            if msg.get("type") == kind:
                return dict(msg)
            if msg.get("type") == "error":
                raise RuntimeError(f"server error: {msg}")


async def _hello(url: str, client: str) -> Any:
    ws = await websockets.connect(url, max_size=None, compression=None)
    await ws.send(json.dumps({"type": "hello", "client_id": client}))
    await _recv_until(ws, "welcome")
    return ws


async def _typist(
    url: str, stop: asyncio.Event, interval: float, acks: list[tuple[float, float]]
) -> None:
    """Edit the small document every ``interval`` s, one in flight: (sent, ack time) pairs."""
    ws = await _hello(url, "typist")
    await ws.send(json.dumps({"type": "join", "doc": SMALL, "create": True}))
    version = int((await _recv_until(ws, "joined"))["version"])
    n = 0
    next_at = time.monotonic()
    while not stop.is_set():
        n += 1
        edit = {"type": "seq", "node": "text:t", "edit": ["x"]}
        msg = {"type": "edit", "doc": SMALL, "edit_id": f"e{n}", "version": version, "ops": [edit]}
        sent = time.monotonic()
        await ws.send(json.dumps(msg))
        ack = await _recv_until(ws, "ack")
        acks.append((sent, time.monotonic()))
        version = int(ack["version"])
        next_at = max(next_at + interval, time.monotonic())
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
    await ws.close()


async def _round(url: str, interval: float) -> dict[str, float]:
    """One open of the large document while the typist types: the numbers of this round."""
    stop = asyncio.Event()
    acks: list[tuple[float, float]] = []
    typist = asyncio.create_task(_typist(url, stop, interval, acks))
    await asyncio.sleep(1.5)  # the baseline
    opener = await _hello(url, "opener")
    t_open = time.monotonic()
    await opener.send(json.dumps({"type": "join", "doc": BIG}))
    joined = await _recv_until(opener, "joined")
    t_joined = time.monotonic()
    await asyncio.sleep(0.5)
    stop.set()
    await typist
    await opener.close()
    size = len(json.dumps(joined))
    base = [1000 * (a - s) for s, a in acks if a < t_open]
    during = [1000 * (a - s) for s, a in acks if a >= t_open and s <= t_joined + 0.2]
    median = statistics.median(base)
    return {
        "open_ms": 1000 * (t_joined - t_open),
        "joined_mb": size / 1e6,
        "base_p50": median,
        "base_max": max(base),
        "during_max": max(during) if during else 0.0,
        "delay": (max(during) if during else median) - median,
        "edits_during": float(len(during)),
    }


def _copy_db(src: Path, dst: Path) -> None:
    """An SQLite database and its write-ahead log, if it has one left."""
    for suffix in ("", "-wal"):
        part = src.with_name(src.name + suffix)
        if part.exists():
            shutil.copyfile(part, dst.with_name(dst.name + suffix))


async def _run(
    chars: int, rounds: int, interval_ms: float, workdir: Path, db: Path | None = None
) -> int:
    lag_dir = workdir / "lag"
    data = workdir / "cowrite.db"
    server = _LaggedInstance(workdir / "server.log", str(data), lag_dir, chars)
    if db is not None and db.exists():
        _copy_db(db, data)
        print(f"the typed document: a copy of {db}", file=sys.stderr)
    await server.start()
    url = f"ws://127.0.0.1:{server.port}/ws"
    if db is None or not db.exists():
        t0 = time.monotonic()
        inserts = await _fill(url, chars)
        took = time.monotonic() - t0
        print(f"typed {chars:,} characters in {inserts:,} inserts ({took:.0f} s)", file=sys.stderr)
        if db is not None:
            server.terminate()  # a clean stop: the database file is complete
            await asyncio.sleep(1.0)
            _copy_db(data, db)
    rows = []
    for r in range(rounds):
        server.terminate()
        await asyncio.sleep(0.5)
        await server.restart()  # the large document is on disk only
        rows.append(await _round(url, interval_ms / 1000))
        print(f"round {r + 1}: {rows[-1]}", file=sys.stderr)
    server.terminate()
    await asyncio.sleep(1.0)
    print(
        "| round | open + joined ms | joined MB | typist ack p50 before | max before | "
        "max during the open | delay (max during - p50) | target ≤ 20 ms |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for i, row in enumerate(rows, 1):
        verdict = "PASS" if row["delay"] <= 20 else "MISS"
        print(
            f"| {i} | {row['open_ms']:.0f} | {row['joined_mb']:.2f} | {row['base_p50']:.1f} | "
            f"{row['base_max']:.1f} | {row['during_max']:.1f} | {row['delay']:.1f} | {verdict} |"
        )
    for report in sorted(lag_dir.glob("*")):
        print(f"\nserver loop ({report.name}): {report.read_text().strip()}")
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--chars", type=int, default=2_000_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--interval-ms", type=float, default=25.0)
    ap.add_argument("--db", type=Path, default=None, help="keep / reuse the typed database")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cowrite-open-stall-") as tmp:
        return asyncio.run(_run(args.chars, args.rounds, args.interval_ms, Path(tmp), args.db))


if __name__ == "__main__":
    sys.exit(main())
