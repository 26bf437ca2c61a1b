"""Document operations around the edits, cowrite vs pycrdt in one process (issue 12 table).

``cowrite bench traces --doc-ops`` (or ``benchmarks/run_traces.py --doc-ops``) measures, on one
sequential trace (automerge-paper by default) whose final document both contenders first build
by replaying it:

* load the document from its bytes (cowrite ``Document.load``, pycrdt ``apply_update`` into a
  new ``Doc``);
* save after one load (``encode_state`` of the loaded document: time and size);
* delta since the empty version (what a new replica is sent);
* merge of a concurrent replica's 1,000 edits (a typed burst, and scattered edits), timed on
  the receiving side only (decode + apply);
* memory of the loaded document: tracemalloc for cowrite, RSS delta for pycrdt (its memory
  lives in Rust, invisible to tracemalloc);
* cowrite's item count after load vs after replay (a loaded document should have the shape of
  the live one);

and, on every concurrent trace, the replay with replicas exchanging *encoded bytes* (cowrite
``delta``/``merge``, pycrdt updates) instead of cowrite's in-process op objects.

Times are medians of ``repeat`` wall-clock runs, or with ``cpu`` the best of ``repeat`` runs in
process CPU time (pycrdt runs in the same thread, so its CPU time is counted too): on a shared,
loaded machine wall-clock times mostly measure the scheduler. The ratio column is the one to
compare (same run).
"""

from __future__ import annotations

import gc
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.trace_peers import (
    Probe,
    _release_free_memory,
    _replay_pycrdt_concurrent,
    _status_kib,
    import_pycrdt,
    trace_kind,
    warm_up_pycrdt,
)
from cowrite.engine import Document, encode_ops, engine_build
from cowrite.replay import load_trace

MERGE_EDITS = 1000
DEFAULT_TRACES = ("automerge-paper", "clownschool")


@dataclass
class Row:
    """One measured operation: cowrite and pycrdt values (seconds, bytes or counts)."""

    name: str
    unit: str
    cowrite: float
    pycrdt: float | None
    target: str = ""


@dataclass
class DocOpsResult:
    trace: str
    rows: list[Row] = field(default_factory=list)


class _Clock:
    """Wall clock and median (default), or process CPU time and best (``--cpu``)."""

    now: Callable[[], float] = time.perf_counter
    pick: Callable[[list[float]], float] = statistics.median


def _use_cpu(cpu: bool) -> None:
    _Clock.now = time.process_time if cpu else time.perf_counter
    _Clock.pick = min if cpu else statistics.median


def _median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        gc.collect()
        t0 = _Clock.now()
        fn()
        times.append(_Clock.now() - t0)
    return _Clock.pick(times)


def _replay_cowrite(trace: dict[str, Any]) -> Document:
    doc = Document(1)
    node = doc.text("text").id
    start = trace.get("startContent") or ""
    if start:
        doc.insert(node, 0, start)
    for txn in trace["txns"]:
        for pos, ndel, ins in txn["patches"]:
            if ndel:
                doc.delete(node, pos, ndel)
            if ins:
                doc.insert(node, pos, ins)
    return doc


def _replay_pycrdt(pycrdt: Any, trace: dict[str, Any]) -> Any:
    doc = pycrdt.Doc(client_id=1)
    text = doc.get("text", type=pycrdt.Text)
    start = trace.get("startContent") or ""
    if start:
        text.insert(0, start)
    for txn in trace["txns"]:
        with doc.transaction():
            for pos, ndel, ins in txn["patches"]:
                if ndel:
                    del text[pos : pos + ndel]
                if ins:
                    text.insert(pos, ins)
    return doc


def _edit_scripts(length: int) -> dict[str, list[tuple[int, int, str]]]:
    """Two scripts of MERGE_EDITS single-character edits on a text of ``length``."""
    rng = random.Random(12)
    burst: list[tuple[int, int, str]] = []
    pos = length // 2
    for k in range(MERGE_EDITS):
        if k % 10 == 9:
            burst.append((pos - 1, 1, ""))
            pos -= 1
        else:
            burst.append((pos, 0, "abcdefghij"[k % 10]))
            pos += 1
    scattered: list[tuple[int, int, str]] = []
    n = length
    for _ in range(MERGE_EDITS):
        p = rng.randrange(n)
        if rng.random() < 0.3:
            scattered.append((p, 1, ""))
            n -= 1
        else:
            scattered.append((p, 0, "x"))
            n += 1
    return {"typed burst": burst, "scattered": scattered}


def item_count(doc: Document) -> int:
    """How many items (runs) the document's sequences hold."""
    return doc.index.count()


def _heap_of(fn: Callable[[], Any]) -> tuple[Any, int]:
    """``fn()`` and the tracemalloc bytes still allocated by it afterwards."""
    gc.collect()
    tracemalloc.start()
    try:
        value = fn()
        gc.collect()
        current = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return value, current


def _rss_of(fn: Callable[[], Any]) -> tuple[Any, int | None]:
    gc.collect()
    _release_free_memory()
    before = _status_kib("VmRSS")
    value = fn()
    gc.collect()
    after = _status_kib("VmRSS")
    if before is None or after is None:
        return value, None
    return value, max(0, after - before) * 1024


def measure_document(path: Path, repeat: int, *, with_pycrdt: bool = True) -> DocOpsResult:
    """The issue-12 table rows for one sequential trace."""
    trace = load_trace(path)
    name = path.name.removesuffix(".gz").removesuffix(".json")
    result = DocOpsResult(name)
    rows = result.rows
    pycrdt = import_pycrdt() if with_pycrdt else None
    if pycrdt is not None:
        warm_up_pycrdt(pycrdt)

    live = _replay_cowrite(trace)
    data = live.encode_state()
    live_items = item_count(live)
    del live
    py_data = b""
    if pycrdt is not None:
        py_doc = _replay_pycrdt(pycrdt, trace)
        py_data = py_doc.get_update()
        del py_doc
    # the parsed trace (millions of objects) would make every full collection during the
    # measurements slow, which only the contender allocating Python objects would pay
    del trace
    gc.collect()

    def py_load() -> Any:
        assert pycrdt is not None
        d = pycrdt.Doc()
        d.get("text", type=pycrdt.Text)
        d.apply_update(py_data)
        return d

    def py(fn: Callable[[], Any]) -> float | None:
        return _median_time(fn, repeat) if pycrdt is not None else None

    rows.append(Row("encoded size", "B", len(data), len(py_data) if pycrdt else None))
    rows.append(
        Row(
            "load from bytes",
            "s",
            _median_time(lambda: Document.load(data, 2), repeat),
            py(py_load),
            "<= 4x",
        )
    )
    loaded = Document.load(data, 2)
    resaved = loaded.encode_state()
    rows.append(
        Row(
            "save after load",
            "s",
            _median_time(loaded.encode_state, repeat),
            py(lambda: py_load().get_update()) if pycrdt is not None else None,
        )
    )
    rows.append(Row("size after load -> save", "B", len(resaved), None))
    rows.append(
        Row(
            "load after load -> save",
            "s",
            _median_time(lambda: Document.load(resaved, 3), repeat),
            None,
        )
    )
    py_loaded: Any = py_load() if pycrdt is not None else None
    py_mod: Any = pycrdt
    rows.append(
        Row(
            "delta since empty",
            "s",
            _median_time(lambda: loaded.delta_since({}), repeat),
            py(lambda: py_loaded.get_update(py_mod.Doc().get_state())),
            "<= 10x",
        )
    )
    length = len(str(loaded.text("text")))
    for label, script in _edit_scripts(length).items():
        rows.append(_merge_row(label, data, py_data, script, pycrdt, repeat))
    again, heap = _heap_of(lambda: Document.load(data, 4))
    del again
    py_rss: int | None = None
    if pycrdt is not None:
        py_again, py_rss = _rss_of(py_load)
        del py_again
    rows.append(Row("memory of the loaded document", "B", heap, py_rss, "<= 3x"))
    rows.append(Row("items after replay", "n", live_items, None))
    rows.append(Row("items after load", "n", item_count(loaded), None))
    return result


def _merge_row(
    label: str,
    data: bytes,
    py_data: bytes,
    script: list[tuple[int, int, str]],
    pycrdt: Any,
    repeat: int,
) -> Row:
    """A replica loaded from ``data`` makes ``script``; another loaded copy merges its delta."""
    sender = Document.load(data, 5)
    before = sender.version
    node = sender.text("text").id
    for pos, ndel, ins in script:
        if ndel:
            sender.delete(node, pos, ndel)
        if ins:
            sender.insert(node, pos, ins)
    delta = sender.delta_since(before)
    receivers = [Document.load(data, 6) for _ in range(repeat)]
    times = []
    for receiver in receivers:
        gc.collect()
        t0 = _Clock.now()
        receiver.merge(delta, changes=False)
        times.append(_Clock.now() - t0)
    if str(receivers[0].text("text")) != str(sender.text("text")):
        raise AssertionError("merge diverged")
    py_time: float | None = None
    if pycrdt is not None:
        py_sender = pycrdt.Doc(client_id=5)
        text = py_sender.get("text", type=pycrdt.Text)
        py_sender.apply_update(py_data)
        state = py_sender.get_state()
        for pos, ndel, ins in script:
            with py_sender.transaction():
                if ndel:
                    del text[pos : pos + ndel]
                if ins:
                    text.insert(pos, ins)
        py_delta = py_sender.get_update(state)
        py_times = []
        for _ in range(repeat):
            r = pycrdt.Doc(client_id=6)
            r.get("text", type=pycrdt.Text)
            r.apply_update(py_data)
            gc.collect()
            t0 = _Clock.now()
            r.apply_update(py_delta)
            py_times.append(_Clock.now() - t0)
        py_time = _Clock.pick(py_times)
    return Row(f"merge 1,000 edits ({label})", "s", _Clock.pick(times), py_time, "<= 1x")


def replay_concurrent_bytes(trace: dict[str, Any]) -> Document:
    """Replay a concurrent trace, replicas exchanging encoded deltas (bytes), like real peers."""
    agents = int(trace["numAgents"])
    docs = [Document(a + 1) for a in range(agents)]
    nodes = [d.text("text").id for d in docs]
    versions: list[list[int]] = []  # per txn: per agent, its txns in the causal closure
    done: list[list[int]] = [[] for _ in range(agents)]  # per agent, its txn indexes
    seen = [[0] * agents for _ in range(agents)]  # per replica, txns seen per agent
    deltas: list[bytes] = []
    for i, txn in enumerate(trace["txns"]):
        agent = txn["agent"]
        doc = docs[agent]
        want = [0] * agents
        for p in txn["parents"]:
            want = [max(x, y) for x, y in zip(want, versions[p], strict=True)]
        have = seen[agent]
        missing: list[int] = []
        for b in range(agents):
            missing.extend(done[b][have[b] : want[b]])
        missing.sort()
        for j in missing:
            doc.merge(deltas[j], changes=False)
        if doc.pending_ops:
            raise AssertionError("a transaction's parents were not all delivered")
        before = doc.local_seq
        node = nodes[agent]
        for pos, ndel, ins in txn["patches"]:
            if ndel:
                doc.delete(node, pos, ndel)
            if ins:
                doc.insert(node, pos, ins)
        deltas.append(encode_ops(doc, doc.local_ops_since(before)))
        want[agent] += 1
        versions.append(want)
        seen[agent] = want
        done[agent].append(i)
    final = Document(agents + 1)
    for doc in docs:
        final.merge(doc.encode_state(), changes=False)
    if str(final.text("text")) != trace["endContent"]:
        raise AssertionError("the replicas did not reach endContent")
    return final


def measure_concurrent(path: Path, repeat: int, *, with_pycrdt: bool = True) -> DocOpsResult:
    trace = load_trace(path)
    name = path.name.removesuffix(".gz").removesuffix(".json")
    result = DocOpsResult(name)
    pycrdt = import_pycrdt() if with_pycrdt else None
    py_time: float | None = None
    if pycrdt is not None:
        warm_up_pycrdt(pycrdt)
        py_time = _median_time(
            lambda: _replay_pycrdt_concurrent(pycrdt, trace, Probe(heap=False)), repeat
        )
    cw = _median_time(lambda: replay_concurrent_bytes(trace), repeat)
    result.rows.append(Row("concurrent replay, encoded bytes", "s", cw, py_time, "<= 1x"))
    return result


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "s":
        return f"{value * 1000:,.1f} ms"
    if unit == "B":
        return f"{value / 1024:,.1f} KiB" if value < 1 << 20 else f"{value / (1 << 20):,.1f} MiB"
    return f"{value:,.0f}"


def render(results: list[DocOpsResult]) -> str:
    """A markdown table per trace: cowrite, pycrdt, ratio, target."""
    clock = "best CPU time" if _Clock.pick is min else "median wall-clock time"
    out: list[str] = [f"engine: {engine_build()}; times: {clock}"]
    for result in results:
        out.append(f"\n{result.trace}\n")
        out.append("| operation | cowrite | pycrdt | ratio | target |")
        out.append("|---|---:|---:|---:|---|")
        for row in result.rows:
            ratio = (
                f"{row.cowrite / row.pycrdt:.2f}x" if row.pycrdt and row.unit in ("s", "B") else "-"
            )
            out.append(
                f"| {row.name} | {_fmt(row.cowrite, row.unit)} | {_fmt(row.pycrdt, row.unit)}"
                f" | {ratio} | {row.target} |"
            )
    return "\n".join(out)


def run_doc_ops(
    paths: list[Path], repeat: int, *, with_pycrdt: bool = True, cpu: bool = False
) -> str:
    """Measure every trace in ``paths`` (sequential: the document rows; concurrent: bytes);
    ``cpu``: best-of-``repeat`` process CPU time instead of wall-clock medians."""
    _use_cpu(cpu)
    results = []
    for path in paths:
        kind = trace_kind(load_trace(path))
        if kind == "concurrent":
            results.append(measure_concurrent(path, repeat, with_pycrdt=with_pycrdt))
        else:
            results.append(measure_document(path, repeat, with_pycrdt=with_pycrdt))
    return render(results)


__all__ = ["item_count", "replay_concurrent_bytes", "run_doc_ops"]
