"""``cowrite replay``: run a recorded editing trace through the CRDT engine and check the result.

Trace formats are described in ``shared/traces/README.md``: sequential traces replay on one
replica; concurrent traces use one replica per agent, each transaction applied on its agent's
replica after merging (as encoded deltas, like real peers) exactly the transactions its
``parents`` name, transitively.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
import tracemalloc
from bisect import bisect_right
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cowrite.engine import Document, Op


@dataclass
class ReplayReport:
    trace: str
    kind: str
    edits: int
    seconds: float
    edits_per_second: float
    peak_memory_bytes: int
    encoded_bytes: int
    ok: bool
    message: str = ""


class TraceError(ValueError):
    """The trace file is not in the documented format."""


def load_trace(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise TraceError(f"{path}: cannot read trace: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("txns"), list):
        raise TraceError(f"{path}: not a trace (no 'txns' list)")
    if not isinstance(data.get("endContent"), str):
        raise TraceError(f"{path}: no 'endContent' string")
    return data


def replay_trace(trace: dict[str, Any], name: str, *, measure_memory: bool = False) -> ReplayReport:
    """Replay a parsed trace; memory is measured with tracemalloc when asked (it slows Python)."""
    concurrent = trace.get("kind") == "concurrent"
    if measure_memory:
        tracemalloc.start()
    start = time.perf_counter()
    try:
        if concurrent:
            doc, edits = _replay_concurrent(trace)
        else:
            doc, edits = _replay_sequential(trace)
        seconds = time.perf_counter() - start
    finally:
        peak = tracemalloc.get_traced_memory()[1] if measure_memory else 0
        if measure_memory:
            tracemalloc.stop()
    text = str(doc.text("text"))
    expected = trace["endContent"]
    ok = text == expected
    message = "" if ok else _first_difference(text, expected)
    # the binary format round trip, untimed: a fresh replica loaded from the encoded state
    encoded = doc.encode_state()
    if ok and str(Document.load(encoded).text("text")) != text:
        ok, message = False, "the encoded state does not load back to the same text"
    return ReplayReport(
        trace=name,
        kind="concurrent" if concurrent else "sequential",
        edits=edits,
        seconds=seconds,
        edits_per_second=edits / seconds if seconds > 0 else 0.0,
        peak_memory_bytes=peak,
        encoded_bytes=len(encoded),
        ok=ok,
        message=message,
    )


def _replay_sequential(trace: dict[str, Any]) -> tuple[Document, int]:
    doc = Document(1)
    text = doc.text("text")
    node = text.id
    insert = doc.insert
    delete = doc.delete
    edits = 0
    start = trace.get("startContent") or ""
    if start:
        insert(node, 0, start)
    for txn in trace["txns"]:
        for pos, ndel, ins in txn["patches"]:
            if ndel:
                delete(node, pos, ndel)
            if ins:
                insert(node, pos, ins)
            edits += 1
    return doc, edits


def _replay_concurrent(trace: dict[str, Any]) -> tuple[Document, int]:
    agents = int(trace["numAgents"])
    ids = range(1, agents + 1)
    # one numbering (client index = agent + 1) in every replica, so op lists are portable
    docs = [Document(a + 1, replicas=ids) for a in range(agents)]
    nodes = [d.text("text").id for d in docs]
    versions: list[tuple[int, ...]] = []  # per transaction: ops seen per agent after it
    # per agent, its transactions in order: its op count after each, and the ops it made
    ends: list[list[int]] = [[] for _ in range(agents)]
    deltas: list[list[tuple[int, list[Op]]]] = [[] for _ in range(agents)]
    edits = 0
    for txn in trace["txns"]:
        agent = txn["agent"]
        doc = docs[agent]
        parents = txn["parents"]
        if parents:
            want = versions[parents[0]]
            for p in parents[1:]:
                want = tuple(map(max, want, versions[p]))
            # bring the agent's replica to exactly the parents' version, merging the missing
            # transactions in the order they were made (causal order: nothing has to wait)
            counts = doc.seen_counts()
            missing: list[tuple[int, list[Op]]] = []
            sources = 0
            for other in range(agents):
                have = counts[other + 1]
                if have < want[other]:
                    first = bisect_right(ends[other], have)
                    last = bisect_right(ends[other], want[other])
                    missing.extend(deltas[other][first:last])
                    sources += 1
            if missing:
                if sources > 1:
                    missing.sort(key=lambda d: d[0])
                ops = missing[0][1] if len(missing) == 1 else [op for _, d in missing for op in d]
                doc.apply_ops(ops, changes=False)
            if doc.pending_ops:
                raise AssertionError("a transaction's parents were not all delivered")
        before = doc.local_seq
        node = nodes[agent]
        for pos, ndel, ins in txn["patches"]:
            if ndel:
                doc.delete(node, pos, ndel)
            if ins:
                doc.insert(node, pos, ins)
            edits += 1
        after = doc.seen_counts()[1 : agents + 1]
        versions.append(after)
        ends[agent].append(after[agent])
        deltas[agent].append((len(versions), doc.local_ops_since(before)))
    # full sync: every replica merges what each other replica has that it lacks
    for doc in docs:
        for peer in docs:
            if peer is not doc:
                doc.apply_ops(peer.ops_since(doc.version), changes=False)
    for agent, doc in enumerate(docs):
        if doc.pending_ops or str(doc.text("text")) != str(docs[0].text("text")):
            raise AssertionError(f"replica {agent} diverged")
    final = docs[0]
    return final, edits


def _first_difference(got: str, want: str) -> str:
    i = next(
        (k for k, (a, b) in enumerate(zip(got, want, strict=False)) if a != b),
        min(len(got), len(want)),
    )
    return (
        f"result differs from endContent at code point {i}: got {got[i : i + 30]!r}, "
        f"expected {want[i : i + 30]!r} (lengths {len(got)} vs {len(want)})"
    )


def run_replay_command(path: str, *, as_json: bool) -> int:
    try:
        trace = load_trace(path)
    except TraceError as exc:
        print(f"cowrite replay: {exc}", file=sys.stderr)
        return 2
    name = Path(path).name.removesuffix(".gz").removesuffix(".json")
    report = replay_trace(trace, name)
    report.peak_memory_bytes = replay_trace(trace, name, measure_memory=True).peak_memory_bytes
    if as_json:
        print(json.dumps(asdict(report)))
    else:
        print(
            f"{report.trace} ({report.kind}): {report.edits} edits in {report.seconds:.3f} s "
            f"({report.edits_per_second:,.0f} edits/s), peak memory "
            f"{report.peak_memory_bytes / 1e6:.1f} MB, encoded {report.encoded_bytes:,} bytes"
        )
    if not report.ok:
        print(f"cowrite replay: MISMATCH: {report.message}", file=sys.stderr)
        return 1
    return 0
