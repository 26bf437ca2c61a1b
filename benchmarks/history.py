"""Version history on a long document: the automerge-paper trace (260k edits) as 260k versions.

``python -m benchmarks history [--trace PATH] [--write]`` replays the trace into a document
(one author, one version per edit, typed at one edit per 300 ms with a 10-minute pause every
2,000 edits: about 130 editing sessions), stores it the way the server does (the full-history
document as the snapshot, one ``versions`` row per edit, SQLite), starts a real server on it and
times, through REST (median of 5 after one warm-up): a page of the version list, the value at a
version, and the diff (with authors) between two adjacent sessions. It also measures what the
history costs on disk: the ``versions`` rows against the encoded full-history document, with
every version kept, and after retention (one per session; one per day). ``--write`` puts the
tables into ``docs/benchmarks.md`` under "History".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from benchmarks.traces import default_traces_dir, load_trace
from cowrite.adapters.store import SQLiteStore, VersionRecord
from cowrite.engine import Document
from cowrite.rooms.history import DAY_MS, HistoryPolicy, encode_vector, thin
from cowrite.server.app import create_app
from cowrite.server.config import Settings

DOC = "automerge-paper"
STEP_MS = 300
SESSION_EDITS = 2_000
PAUSE_MS = 10 * 60_000
T0 = 1_700_000_000_000
REPEAT = 5
MARK_START = "<!-- history-benchmark:start -->"
MARK_END = "<!-- history-benchmark:end -->"


def replay(trace: dict[str, Any]) -> tuple[Document, list[VersionRecord]]:
    """The trace's document and one version record per edit (``seq`` = its log seq)."""
    doc = Document(1, now_ms=lambda: T0)
    node = doc.text("text").id
    records: list[VersionRecord] = []
    start = trace.get("startContent") or ""
    if start:
        doc.insert(node, 0, start)
    t = T0
    for i, txn in enumerate(trace["txns"], 1):
        size = 0
        for pos, ndel, ins in txn["patches"]:
            if ndel:
                doc.delete(node, pos, ndel)
            if ins:
                doc.insert(node, pos, ins)
            size += ndel + len(ins)
        t += STEP_MS + (PAUSE_MS if i % SESSION_EDITS == 0 else 0)
        vector = encode_vector(doc.version)
        records.append(VersionRecord(i, t, (("u1", "Author"),), "typed", size, vector))
    return doc, records


def _db_bytes(path: Path) -> int:
    with sqlite3.connect(path) as c:
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        c.execute("VACUUM")
        pages = c.execute("PRAGMA page_count").fetchone()[0]
        size = c.execute("PRAGMA page_size").fetchone()[0]
    return int(pages) * int(size)


async def store_document(path: Path, snapshot: bytes, records: list[VersionRecord]) -> None:
    store = SQLiteStore(path)
    await store.open()
    await store.create_document(DOC, title=DOC, now_ms=T0)
    await store.close()
    with sqlite3.connect(path) as c:
        c.execute("UPDATE documents SET last_seq = ? WHERE id = ?", (len(records), DOC))
        c.execute(
            "INSERT INTO snapshots (doc_id, upto_seq, data) VALUES (?, ?, ?)",
            (DOC, len(records), snapshot),
        )


def insert_versions(path: Path, records: list[VersionRecord]) -> None:
    with sqlite3.connect(path) as c:
        c.executemany(
            "INSERT INTO versions (doc_id, seq, time_ms, authors, how, size, vector, merged) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (DOC, v.seq, v.time_ms, '[["u1","Author"]]', v.how, v.size, v.vector, v.merged)
                for v in records
            ],
        )


def retained(records: list[VersionRecord], now_ms: int) -> list[VersionRecord]:
    out = thin(records, now_ms, HistoryPolicy())
    gone = set(out.removed)
    updated = {v.seq: v for v in out.updated}
    return [updated.get(v.seq, v) for v in records if v.seq not in gone]


async def _serve(settings: Settings) -> tuple[str, uvicorn.Server, asyncio.Task[None]]:
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return f"http://127.0.0.1:{port}", server, task


async def _timed(call: Callable[[], Awaitable[httpx.Response]]) -> tuple[float, float]:
    """Median wall time and median CPU time (this process: server and client) of a request."""
    r = await call()  # warm-up (and a check)
    assert r.status_code == 200, r.text
    walls, cpus = [], []
    for _ in range(REPEAT):
        t0, c0 = time.perf_counter(), time.process_time()
        r = await call()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        assert r.status_code == 200, r.text
    return statistics.median(walls), statistics.median(cpus)


async def measure_server(
    path: Path, records: list[VersionRecord]
) -> dict[str, tuple[float, float]]:
    settings = Settings(
        data=str(path),
        history_ops_per_second=1e12,
        history_ops_burst=10**15,
        unload_after_s=3600.0,
        log_json=False,
    )
    url, server, task = await _serve(settings)
    out: dict[str, tuple[float, float]] = {}
    try:
        async with httpx.AsyncClient(base_url=url, timeout=600) as http:
            base = f"/api/documents/{DOC}"
            t0, c0 = time.perf_counter(), time.process_time()
            r = await http.get(f"{base}/versions", params={"limit": 1})
            out["first open (load the document)"] = (
                time.perf_counter() - t0,
                time.process_time() - c0,
            )
            assert r.status_code == 200, r.text
            t0, c0 = time.perf_counter(), time.process_time()
            r = await http.get(f"{base}/versions/1")
            out["first history read (builds the delete index)"] = (
                time.perf_counter() - t0,
                time.process_time() - c0,
            )
            assert r.status_code == 200, r.text
            last = records[-1].seq
            mid = records[len(records) // 2].seq
            ends = [v.seq for v in records if v.seq % SESSION_EDITS == 0]
            k = len(ends) // 2
            out["list versions: first page (100)"] = await _timed(
                lambda: http.get(f"{base}/versions", params={"limit": 100})
            )
            out["list versions: a page in the middle (100)"] = await _timed(
                lambda: http.get(f"{base}/versions", params={"limit": 100, "after": mid})
            )
            out[f"value at a version (id {mid}, the middle)"] = await _timed(
                lambda: http.get(f"{base}/versions/{mid}")
            )
            out[f"value at a version (id {last}, the latest)"] = await _timed(
                lambda: http.get(f"{base}/versions/{last}")
            )
            out[
                f"diff of two adjacent sessions ({ends[k - 1]} -> {ends[k]}, with authors)"
            ] = await _timed(
                lambda: http.get(f"{base}/diff", params={"from": ends[k - 1], "to": ends[k]})
            )
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 60)
    return out


def _fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _fmt_bytes(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


async def run(trace_path: Path) -> str:
    trace = load_trace(trace_path)
    t0 = time.perf_counter()
    doc, records = replay(trace)
    replay_s = time.perf_counter() - t0
    snapshot = doc.encode_state()
    sessions_now = records[-1].time_ms + 30 * DAY_MS
    days_now = records[-1].time_ms + 120 * DAY_MS
    lines = [
        f"Trace `{trace_path.name}`: {len(records):,} edits, one version each (replayed in "
        f"{replay_s:.1f} s); the encoded full-history document is {_fmt_bytes(len(snapshot))}.",
        "",
        f"Load average when measured: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
        "(other work shared the machine: CPU time is the steadier figure).",
        "",
        "| operation (REST, real server, SQLite) | median wall | median CPU | target |",
        "| --- | --- | --- | --- |",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "history.db"
        await store_document(path, snapshot, records)
        without = _db_bytes(path)
        insert_versions(path, records)
        every = _db_bytes(path) - without
        timings = await measure_server(path, records)
        for name, (wall, cpu) in timings.items():
            target = "-" if name.startswith("first") else "< 100 ms"
            lines.append(f"| {name} | {_fmt_ms(wall)} | {_fmt_ms(cpu)} | {target} |")
        sizes: list[tuple[str, int, int]] = [("every version kept", len(records), every)]
        for label, now in (
            ("after retention: one per session (older than 7 days)", sessions_now),
            ("after retention: one per day (older than 90 days)", days_now),
        ):
            kept = retained(records, now)
            path.unlink()
            await store_document(path, snapshot, kept)
            insert_versions(path, kept)
            sizes.append((label, len(kept), _db_bytes(path) - without))
    lines += [
        "",
        "| history on disk | versions | `versions` rows | rows + document "
        "(vs the encoded document) | target |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, count, size in sizes:
        ratio = (size + len(snapshot)) / len(snapshot)
        lines.append(f"| {label} | {count:,} | {_fmt_bytes(size)} | {ratio:.2f}x | <= 2x |")
    return "\n".join(lines)


def write_report(table: str, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    block = f"{MARK_START}\n{table}\n{MARK_END}"
    if MARK_START in text:
        before, rest = text.split(MARK_START, 1)
        _, after = rest.split(MARK_END, 1)
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n## History\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--trace", type=Path, default=default_traces_dir() / "automerge-paper.json.gz"
    )
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)
    table = asyncio.run(run(args.trace))
    print(table)
    if args.write:
        write_report(table, Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
