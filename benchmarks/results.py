"""What one load run measured (``RunResult``), from the generator workers' reports.

Shared by the server benchmark (``benchmarks.server``) and the cluster benchmark
(``benchmarks.cluster``, which extends ``RunResult``): merging the workers' ``result`` events
into latencies, delivery and convergence (``merge_results``), checking the clients' agreed text
against the server's (``check_server_texts``), and saving results as JSON and reading them back
(``save_results``, ``load_results``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as _dt
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self, TypeVar

from benchmarks import procstat
from benchmarks.load import Recorder, fetch_text, percentile, text_digest


@dataclass
class RunResult:
    server: str
    scenario: str
    describe: str
    status: str = "ok"
    """ok | error | skipped"""
    reason: str = ""
    clients: int = 0
    connected: int = 0
    still_connected: int = 0
    connect_s: float = 0.0
    window_s: float = 0.0
    keystrokes: int = 0
    edits: int = 0
    acked: int = 0
    delivered: int = 0
    deliveries: int = 0
    ack_ms: dict[str, float] | None = None
    visible_ms: dict[str, float] | None = None
    edits_per_s: float = 0.0
    deliveries_per_s: float = 0.0
    converged: bool | None = None
    convergence: str = ""
    mismatched: int = 0
    """Clients whose text is not their document's (most common) text of the typed length."""
    drained: bool = True
    server_cpu_pct: float | None = None
    server_cpu_s: float | None = None
    """Server CPU seconds from the start of typing until every edit was delivered (or the drain
    timed out): all the work the deliveries cost, for ``cpu_us_per_delivery``."""
    client: str = ""
    """The generator's client: ``cowrite``, ``pycrdt``, or the Yjs provider (``hocuspocus``,
    ``y-websocket``)."""
    server_rss_kb_start: int | None = None
    server_rss_kb_end: int | None = None
    server_hwm_kb: int | None = None
    rss_per_conn_bytes: float | None = None
    generator_cpu_pct: list[float] = field(default_factory=list)
    machine_cpu_pct: float | None = None
    other_cpu_pct: float | None = None
    lag_p99_ms: float | None = None
    generator_gc_ms: list[float] = field(default_factory=list)
    """Node generators: each process's garbage-collection pauses over the typing window, in ms
    (a pause holds every client of the process at once: the tail of its latencies)."""
    generator_gc_max_ms: float | None = None
    """The longest of those pauses."""
    skipped: int = 0
    """Keystrokes the generator never typed: it was behind schedule past the end."""
    errors: dict[str, int] = field(default_factory=dict)
    load_before: list[float] = field(default_factory=list)
    started: str = ""
    """UTC time the run started."""

    @property
    def p99(self) -> float | None:
        """The latency the targets judge: p99 edit->visible, or edit->ack if that is worse."""
        vals = [m["p99"] for m in (self.ack_ms, self.visible_ms) if m]
        return max(vals) if vals else None

    @property
    def cpu_us_per_delivery(self) -> float | None:
        """Server CPU per delivered update ((edit, receiving client) pair), in µs."""
        if self.server_cpu_s is None or not self.deliveries:
            return None
        return 1e6 * self.server_cpu_s / self.deliveries

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """A result saved with ``asdict`` (fields this version does not know are dropped)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def mark_start(self) -> None:
        """Note when the run starts and the machine's load average then."""
        self.started = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
        load = procstat.load_average()
        self.load_before = [round(x, 2) for x in load] if load else []

    def fail(self, exc: Exception) -> None:
        self.status = "error"
        self.reason = f"{type(exc).__name__}: {exc}"

    def count_lost_connections(self) -> None:
        if self.still_connected < self.clients:
            self.errors["connections lost or never made"] = self.clients - self.still_connected


def dist(values: list[float]) -> dict[str, float] | None:
    """p50 / p95 / p99 / max / n of ``values`` (None when there are none)."""
    if not values:
        return None
    return {
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values),
        "n": float(len(values)),
    }


def merge_results(
    res: RunResult, reports: list[dict[str, Any]], clients_per_doc: dict[str, int]
) -> dict[str, str]:
    """Fill latency, delivery and convergence fields from the workers' reports.

    Returns doc -> the digest every client agreed on (for the server-side check).
    """
    rec = Recorder()
    texts: dict[str, Counter[tuple[int, str]]] = {}
    keystrokes: dict[str, int] = {}
    unsettled = 0
    for rep in reports:
        rec.add_sends(rep["sends"])
        rec.add_receipts(rep["recv"])
        for _index, doc, length, digest, typed, settled in rep["clients"]:
            texts.setdefault(doc, Counter())[(length, digest)] += 1
            keystrokes[doc] = keystrokes.get(doc, 0) + typed
            unsettled += 0 if settled else 1
        for err, n in rep.get("errors", {}).items():
            res.errors[err] = res.errors.get(err, 0) + n
        res.still_connected += rep.get("still_connected", 0)
        res.skipped += int(rep.get("skipped", 0))
        res.drained = res.drained and bool(rep.get("drained", True))
    ack: list[float] = []
    vis: list[float] = []
    delivered = deliveries = acked = 0
    for key, (doc, t_send, t_ack, _chars) in rec.sends.items():
        if t_ack > 0:
            acked += 1
            ack.append((t_ack - t_send) / 1e6)
        got = rec.recv.get(key)
        want = clients_per_doc.get(doc, 1) - 1
        if got is not None:
            deliveries += got[0]
        if want <= 0:
            continue
        if got is not None and got[0] >= want:
            delivered += 1
            vis.append((got[1] - t_send) / 1e6)
    res.edits = len(rec.sends)
    res.acked = acked
    res.delivered = delivered
    res.deliveries = deliveries
    res.keystrokes = sum(keystrokes.values())
    res.ack_ms = dist(ack)
    res.visible_ms = dist(vis)
    if res.window_s > 0:
        res.edits_per_s = delivered / res.window_s
        res.deliveries_per_s = deliveries / res.window_s
    agreed: dict[str, str] = {}
    problems: list[str] = []
    for doc, seen in sorted(texts.items()):
        want = keystrokes.get(doc, 0)
        common = max(seen, key=lambda text: (text[0] == want, seen[text]))
        res.mismatched += sum(seen.values()) - (seen[common] if common[0] == want else 0)
        if len(seen) != 1:
            lengths = sorted({length for length, _ in seen})
            problems.append(f"{doc}: {len(seen)} different texts (lengths {lengths[:5]})")
            continue
        length, digest = common
        if length != want:
            problems.append(f"{doc}: {length} characters, {want} typed")
            continue
        agreed[doc] = digest
    if unsettled:
        problems.append(f"{unsettled} clients still had unacknowledged edits")
    res.converged = not problems
    res.convergence = "; ".join(problems[:5]) + (
        f" (+{len(problems) - 5})" if len(problems) > 5 else ""
    )
    return agreed


async def check_server_texts(
    res: RunResult,
    url: str,
    agreed: dict[str, str],
    fetch: Callable[[str, str], Awaitable[str]] = fetch_text,
) -> None:
    """Compare the clients' common text of each document with the server's (``fetch(url,
    doc)``: by default a fresh cowrite join's snapshot)."""
    sem = asyncio.Semaphore(16)
    bad: list[str] = []

    async def check(doc: str, digest: str) -> None:
        async with sem:
            try:
                text = await fetch(url, doc)
            except Exception as exc:
                bad.append(f"{doc}: server check failed ({type(exc).__name__}: {exc})")
                return
            if text_digest(text) != digest:
                bad.append(f"{doc}: the server's text differs from its clients'")

    await asyncio.gather(*(check(d, g) for d, g in agreed.items()))
    if bad:
        res.converged = False
        res.convergence = "; ".join([res.convergence, *bad[:3]]).strip("; ")


# ------------------------------------------------------------------------------ saved runs


R = TypeVar("R", bound=RunResult)


def save_results(
    path: Path, info: dict[str, str], command: str, results: Sequence[RunResult]
) -> None:
    """Write ``{"info", "command", "results"}`` as JSON (``--json``; ``load_results`` reads it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"info": info, "command": command, "results": [asdict(r) for r in results]}
    path.write_text(json.dumps(payload, indent=1), encoding="utf-8")


def load_results(
    path: Path, kind: type[R], command: str = ""
) -> tuple[list[R], dict[str, str], str]:
    """(results, machine info, command) saved by ``save_results``; ``command`` if none is."""
    saved = json.loads(path.read_text(encoding="utf-8"))
    results = [kind.from_json(r) for r in saved.get("results", [])]
    info = {str(k): str(v) for k, v in saved.get("info", {}).items()}
    return results, info, str(saved.get("command", command))
