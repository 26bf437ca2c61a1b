"""Server benchmark: drive collaboration servers over real WebSockets (``cowrite bench``).

Scenarios (see ``docs/benchmarks.md`` for results):

``a``
    one document, 10 / 50 / 200 clients, each inserting a character at a random position every
    200 ms for 30 s;
``b``
    1,000 clients over 100 documents (10 each), one character per second each, 30 s;
``c``
    5,000 idle connections over 500 documents: server RSS per connection and idle CPU (30 s).

Servers: ``cowrite`` (``cowrite serve``, SQLite store, as shipped) and the peers in
``benchmarks/peers``: ``hocuspocus`` (``@hocuspocus/server``, Yjs clients through
``@hocuspocus/provider`` in Node) and ``pycrdt-websocket`` (its ASGI server under uvicorn,
clients built from pycrdt's y-sync functions).

For every run this coordinator starts the server in its own process, starts the load generator
process(es) (``cowrite.bench.load`` workers, or the peer's), samples ``/proc`` of the server and
of the generators, and merges the generators' per-edit records into:

* edit->ack: sender's keystroke to the server's acknowledgement (cowrite ``ack``; Hocuspocus
  ``SyncStatus``; pycrdt-websocket has no acknowledgement);
* edit->visible: the keystroke to the moment the edit is applied at *every other* client of
  the document (the latest of their receive times, one clock for the machine);
* delivered: edits that reached every other client; converged: every client of a document ends
  with the same text, of the expected length (and, for cowrite, equal to the server's).

Run ``python -m cowrite.bench.server --help`` (or ``benchmarks/run_server.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as _dt
import importlib.metadata
import json
import math
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cowrite.bench import procstat
from cowrite.bench.load import EVENT_PREFIX, WorkerSpec, fetch_text, percentile, text_digest

SECTION_START = "<!-- server-bench:start -->"
SECTION_END = "<!-- server-bench:end -->"
SERVERS: tuple[str, ...] = ("cowrite", "cowrite-memory", "hocuspocus", "pycrdt-websocket")
DEFAULT_SERVERS: tuple[str, ...] = ("cowrite", "hocuspocus", "pycrdt-websocket")
"""``cowrite-memory`` (``--data :memory:``: no disk, no fsync before the ack) is opt-in."""

TARGET_A50_P99_MS = 15.0
TARGET_A200_P99_MS = 100.0
TARGET_B_P99_MS = 10.0
TARGET_C_BYTES_PER_CONN = 25_000
TARGET_C_IDLE_CPU_PCT = 2.0
"""'Near-zero idle CPU', made concrete: at most 2 % of one core averaged over the idle window."""


def repo_root() -> Path:
    """The checkout this package runs from (``src/cowrite/bench/server.py`` -> root)."""
    return Path(__file__).resolve().parents[3]


def peers_dir() -> Path:
    return Path(os.environ.get("COWRITE_BENCH_PEERS", str(repo_root() / "benchmarks" / "peers")))


# ------------------------------------------------------------------------------ scenarios


@dataclass(frozen=True)
class Scenario:
    key: str
    group: str
    clients: int
    docs: int
    interval_ms: float | None
    """Between two keystrokes of one client; None: idle connections."""
    duration_s: float

    @property
    def idle(self) -> bool:
        return self.interval_ms is None

    def describe(self) -> str:
        if self.interval_ms is None:
            return (
                f"{self.clients} idle connections over {self.docs} documents, "
                f"{self.duration_s:g} s idle"
            )
        rate = 1000 / self.interval_ms
        where = "one document" if self.docs == 1 else f"{self.docs} documents"
        return f"{self.clients} clients on {where}, {rate:g} chars/s each, {self.duration_s:g} s"


def build_scenarios(
    which: str,
    *,
    clients: Sequence[int] | None = None,
    duration: float | None = None,
    quick: bool = False,
) -> list[Scenario]:
    groups = ["a", "b", "c"] if which == "all" else [which]
    out: list[Scenario] = []
    for g in groups:
        if g == "a":
            counts = list(clients) if clients else ([10, 50] if quick else [10, 50, 200])
            d = duration if duration is not None else (3.0 if quick else 30.0)
            out.extend(Scenario(f"a{n}", "a", n, 1, 200.0, d) for n in counts)
        elif g == "b":
            n = clients[0] if clients and which == "b" else (200 if quick else 1000)
            d = duration if duration is not None else (3.0 if quick else 30.0)
            out.append(Scenario("b", "b", n, max(1, n // 10), 1000.0, d))
        elif g == "c":
            n = clients[0] if clients and which == "c" else (500 if quick else 5000)
            d = duration if duration is not None else (3.0 if quick else 30.0)
            out.append(Scenario("c", "c", n, max(1, n // 10), None, d))
        else:
            raise ValueError(f"unknown scenario {g!r}")
    return out


# -------------------------------------------------------------------------------- servers


@dataclass(frozen=True)
class ServerDef:
    name: str

    def check(self) -> str | None:
        """Why this server cannot run here (None: it can)."""
        if self.name in ("cowrite", "cowrite-memory"):
            return None
        peers = peers_dir()
        if self.name == "hocuspocus":
            if shutil.which("node") is None:
                return "node is not installed"
            if not (peers / "node_modules" / "@hocuspocus" / "server").is_dir():
                return f"run `npm ci` in {peers} first"
            return None
        if self.name == "pycrdt-websocket":
            try:
                import pycrdt.websocket  # noqa: F401
            except ImportError:
                return "pycrdt-websocket is not installed (pip install -e '.[bench]')"
            return None
        return f"unknown server {self.name!r}"

    def server_command(self, port: int, workdir: Path) -> list[str]:
        peers = peers_dir()
        if self.name in ("cowrite", "cowrite-memory"):
            data = ":memory:" if self.name == "cowrite-memory" else str(workdir / "cowrite.db")
            return [
                sys.executable,
                "-m",
                "cowrite.cli",
                "serve",
                "--port",
                str(port),
                "--data",
                data,
                "--log-level",
                "warning",
            ]
        if self.name == "hocuspocus":
            return ["node", str(peers / "hocuspocus_server.mjs"), "--port", str(port)]
        return [sys.executable, str(peers / "pycrdt_server.py"), "--port", str(port)]

    def worker_command(self) -> list[str]:
        peers = peers_dir()
        if self.kind == "cowrite":
            return [sys.executable, "-m", "cowrite.bench.load"]
        if self.name == "hocuspocus":
            return ["node", str(peers / "yjs_load.mjs")]
        return [sys.executable, str(peers / "pycrdt_load.py")]

    def url(self, port: int) -> str:
        if self.kind == "cowrite":
            return f"ws://127.0.0.1:{port}/ws"
        return f"ws://127.0.0.1:{port}"

    @property
    def kind(self) -> str:
        kinds = {"hocuspocus": "yjs", "pycrdt-websocket": "pycrdt"}
        return kinds.get(self.name, "cowrite")

    def auto_procs(self, scenario: Scenario) -> int:
        """Generator processes for ``--procs auto``: the Yjs clients cost Node about four times
        what the cowrite and pycrdt clients cost Python per received edit, so Hocuspocus gets
        two generators once there is real traffic (its server needs well under one core)."""
        if self.name == "hocuspocus" and not scenario.idle and scenario.clients >= 50:
            return 2
        return 1

    @property
    def has_ack(self) -> bool:
        return self.name != "pycrdt-websocket"


# -------------------------------------------------------------------------------- results


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
    drained: bool = True
    server_cpu_pct: float | None = None
    server_rss_kb_start: int | None = None
    server_rss_kb_end: int | None = None
    server_hwm_kb: int | None = None
    rss_per_conn_bytes: float | None = None
    generator_cpu_pct: list[float] = field(default_factory=list)
    machine_cpu_pct: float | None = None
    other_cpu_pct: float | None = None
    lag_p99_ms: float | None = None
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


def _dist(values: list[float]) -> dict[str, float] | None:
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
    sends: dict[str, list[Any]] = {}
    recv: dict[str, list[int]] = {}
    texts: dict[str, set[tuple[int, str]]] = {}
    keystrokes: dict[str, int] = {}
    unsettled = 0
    for rep in reports:
        for key, doc, t_send, t_ack, chars in rep["sends"]:
            sends[key] = [doc, t_send, t_ack, chars]
        for key, count, t_max in rep["recv"]:
            entry = recv.get(key)
            if entry is None:
                recv[key] = [count, t_max]
            else:
                entry[0] += count
                entry[1] = max(entry[1], t_max)
        for _index, doc, length, digest, typed, settled in rep["clients"]:
            texts.setdefault(doc, set()).add((length, digest))
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
    for key, (doc, t_send, t_ack, _chars) in sends.items():
        if t_ack > 0:
            acked += 1
            ack.append((t_ack - t_send) / 1e6)
        got = recv.get(key)
        want = clients_per_doc.get(doc, 1) - 1
        if got is not None:
            deliveries += got[0]
        if want <= 0:
            continue
        if got is not None and got[0] >= want:
            delivered += 1
            vis.append((got[1] - t_send) / 1e6)
    res.edits = len(sends)
    res.acked = acked
    res.delivered = delivered
    res.deliveries = deliveries
    res.keystrokes = sum(keystrokes.values())
    res.ack_ms = _dist(ack)
    res.visible_ms = _dist(vis)
    if res.window_s > 0:
        res.edits_per_s = delivered / res.window_s
        res.deliveries_per_s = deliveries / res.window_s
    agreed: dict[str, str] = {}
    problems: list[str] = []
    for doc, seen in sorted(texts.items()):
        if len(seen) != 1:
            lengths = sorted({length for length, _ in seen})
            problems.append(f"{doc}: {len(seen)} different texts (lengths {lengths[:5]})")
            continue
        ((length, digest),) = seen
        if length != keystrokes.get(doc, 0):
            problems.append(f"{doc}: {length} characters, {keystrokes.get(doc, 0)} typed")
            continue
        agreed[doc] = digest
    if unsettled:
        problems.append(f"{unsettled} clients still had unacknowledged edits")
    res.converged = not problems
    res.convergence = "; ".join(problems[:5]) + (
        f" (+{len(problems) - 5})" if len(problems) > 5 else ""
    )
    return agreed


# --------------------------------------------------------------------------------- runner


@dataclass
class Options:
    procs: int = 0
    """Generator processes per run; 0: ``ServerDef.auto_procs``."""
    drain_timeout_s: float = 30.0
    verbose: bool = True
    logdir: Path | None = None


def apply_nice(nice: int) -> str:
    """Try to run this process and its children at ``nice``; describe what is in force.

    With scheduler autogroups (Linux, ``kernel.sched_autogroup_enabled``) a process's niceness
    only orders it against its own session, so the session's autogroup is given ``nice`` too.
    """
    if nice:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)
        with contextlib.suppress(OSError):
            Path("/proc/self/autogroup").write_text(str(nice))
    out = f"nice {os.getpriority(os.PRIO_PROCESS, 0)}"
    with contextlib.suppress(OSError):
        group = Path("/proc/self/autogroup").read_text().split()
        if len(group) == 3:
            out += f", autogroup nice {group[2]}"
    return out


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log(msg: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


async def _wait_port(port: int, proc: asyncio.subprocess.Process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.returncode is not None:
            raise RuntimeError(f"server exited with status {proc.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"server did not listen on port {port} in {timeout:g} s"
                ) from None
            await asyncio.sleep(0.1)


async def _stop(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


class Worker:
    """One generator process and its line protocol."""

    def __init__(self, proc: asyncio.subprocess.Process, spec: WorkerSpec) -> None:
        self.proc = proc
        self.spec = spec
        self.noise: list[str] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def send(self, data: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(data) + "\n").encode())
        await self.proc.stdin.drain()

    async def event(self, name: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise TimeoutError
                line = await asyncio.wait_for(self.proc.stdout.readline(), left)
            except TimeoutError:
                raise TimeoutError(
                    f"generator {self.spec.proc} sent no {name!r} within {timeout:g} s"
                ) from None
            if not line:
                tail = " | ".join(self.noise[-5:])
                raise RuntimeError(f"worker {self.spec.proc} exited before {name!r}: {tail}")
            text = line.decode(errors="replace")
            if not text.startswith(EVENT_PREFIX):
                self.noise.append(text.rstrip())
                continue
            data: dict[str, Any] = json.loads(text[len(EVENT_PREFIX) :])
            if data.get("event") != name:
                raise RuntimeError(f"worker {self.spec.proc}: expected {name!r}, got {data}")
            return data


async def _gather_events(workers: list[Worker], name: str, timeout: float) -> list[dict[str, Any]]:
    return list(await asyncio.gather(*(w.event(name, timeout) for w in workers)))


async def run_one(server: ServerDef, scenario: Scenario, opts: Options) -> RunResult:
    res = RunResult(server.name, scenario.key, scenario.describe(), clients=scenario.clients)
    res.started = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = procstat.load_average()
    res.load_before = [round(x, 2) for x in load] if load else []
    why = server.check()
    if why:
        res.status, res.reason = "skipped", why
        return res
    run_id = f"{int(time.time()) % 100000}{os.getpid() % 1000}"
    docs = [f"bench-{run_id}-{scenario.key}-{d}" for d in range(scenario.docs)]
    procs = max(1, min(opts.procs or server.auto_procs(scenario), scenario.clients))
    specs = [
        WorkerSpec(
            kind=server.kind,
            url="",
            proc=i,
            run_id=run_id,
            clients=[],
            interval_ms=scenario.interval_ms or 0.0,
            mode="idle" if scenario.idle else "edit",
            drain_timeout_s=opts.drain_timeout_s,
            seed=1 + i,
        )
        for i in range(procs)
    ]
    clients_per_doc: dict[str, int] = {}
    for c in range(scenario.clients):
        doc = docs[c % scenario.docs]
        specs[c % procs].clients.append((c, doc))
        clients_per_doc[doc] = clients_per_doc.get(doc, 0) + 1

    workdir = Path(tempfile.mkdtemp(prefix=f"cowrite-bench-{server.name}-"))
    logdir = opts.logdir or workdir
    logdir.mkdir(parents=True, exist_ok=True)
    server_log = open(logdir / f"{server.name}-{scenario.key}-server.log", "wb")  # noqa: SIM115
    worker_log = open(logdir / f"{server.name}-{scenario.key}-workers.log", "wb")  # noqa: SIM115
    port = free_port()
    srv = await asyncio.create_subprocess_exec(
        *server.server_command(port, workdir),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=server_log,
        stderr=asyncio.subprocess.STDOUT,
        cwd=str(workdir),
    )
    workers: list[Worker] = []
    try:
        await _wait_port(port, srv, 60)
        await asyncio.sleep(0.5)
        mem0 = procstat.memory_kb(srv.pid)
        res.server_rss_kb_start = mem0.get("VmRSS")
        for spec in specs:
            spec.url = server.url(port)
            proc = await asyncio.create_subprocess_exec(
                *server.worker_command(),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=worker_log,
                limit=1 << 30,
            )
            w = Worker(proc, spec)
            workers.append(w)
        # one worker after the other, so that the first client of a document is alone
        ready = []
        for w in workers:
            await w.send(w.spec.to_json())
            ready.append(await w.event("ready", 300))
        res.connected = sum(r["clients"] - r["failed"] for r in ready)
        res.connect_s = max(r["connect_s"] for r in ready)
        failures = [f for r in ready for f in r.get("failures", [])]
        if failures:
            res.errors[f"connect: {failures[0]}"] = sum(r["failed"] for r in ready)
        pids = [srv.pid, os.getpid(), *(w.pid for w in workers)]
        if scenario.idle:
            await asyncio.sleep(2.0)  # let joins and presence broadcasts settle
            start = procstat.CpuMark.take(pids)
            await asyncio.sleep(scenario.duration_s)
            end = procstat.CpuMark.take(pids)
            res.window_s = end.wall - start.wall
            for w in workers:
                await w.send({"cmd": "stop"})
            reports = await _gather_events(workers, "result", 120)
            merge_results(res, reports, {})
            res.converged = None
        else:
            start_ns = time.monotonic_ns() + 500_000_000
            end_ns = start_ns + int(scenario.duration_s * 1e9)
            for w in workers:
                await w.send({"cmd": "go", "start_ns": start_ns, "end_ns": end_ns})
            await asyncio.sleep(max(0.0, (start_ns - time.monotonic_ns()) / 1e9))
            start = procstat.CpuMark.take(pids)
            await asyncio.sleep(max(0.0, (end_ns - time.monotonic_ns()) / 1e9))
            end = procstat.CpuMark.take(pids)
            res.window_s = end.wall - start.wall
            sent = await _gather_events(workers, "sent", scenario.duration_s + 300)
            per_doc: dict[str, int] = {}
            for s in sent:
                for doc, n in s["per_doc"].items():
                    per_doc[doc] = per_doc.get(doc, 0) + n
            for w in workers:
                await w.send(
                    {"cmd": "expect", "per_doc": per_doc, "timeout_s": opts.drain_timeout_s}
                )
            reports = await _gather_events(workers, "result", opts.drain_timeout_s + 300)
            agreed = merge_results(res, reports, clients_per_doc)
            if server.kind == "cowrite" and agreed:
                await _check_server_texts(res, server.url(port), agreed)
        lags = [r["lag_ms"]["p99"] for r in reports if r.get("lag_ms", {}).get("p99") is not None]
        res.lag_p99_ms = max(lags) if lags else None
        res.server_cpu_pct = procstat.cpu_percent(start, end, srv.pid)
        res.generator_cpu_pct = [
            round(v, 1)
            for w in workers
            if (v := procstat.cpu_percent(start, end, w.pid)) is not None
        ]
        res.machine_cpu_pct = procstat.machine_percent(start, end)
        ours = sum(v for pid in pids if (v := procstat.cpu_percent(start, end, pid)) is not None)
        res.other_cpu_pct = max(0.0, res.machine_cpu_pct - ours)
        mem1 = procstat.memory_kb(srv.pid)
        res.server_rss_kb_end = mem1.get("VmRSS")
        res.server_hwm_kb = mem1.get("VmHWM")
        if scenario.idle and res.still_connected and mem0 and mem1:
            grown = (mem1["VmRSS"] - mem0["VmRSS"]) * 1024
            res.rss_per_conn_bytes = grown / res.still_connected
        if res.still_connected < res.clients:
            res.errors["connections lost or never made"] = res.clients - res.still_connected
    except Exception as exc:
        res.status = "error"
        res.reason = f"{type(exc).__name__}: {exc}"
    finally:
        for w in workers:
            with contextlib.suppress(Exception):
                if w.proc.stdin is not None:
                    w.proc.stdin.close()
        for w in workers:
            await _stop(w.proc, 10.0)
        await _stop(srv)
        server_log.close()
        worker_log.close()
        shutil.rmtree(workdir, ignore_errors=True)  # logs live there only without --logs
    return res


async def _check_server_texts(res: RunResult, url: str, agreed: dict[str, str]) -> None:
    """Compare the clients' common text of each document with a fresh join's snapshot."""
    sem = asyncio.Semaphore(16)
    bad: list[str] = []

    async def check(doc: str, digest: str) -> None:
        async with sem:
            try:
                text = await fetch_text(url, doc)
            except Exception as exc:
                bad.append(f"{doc}: server check failed ({type(exc).__name__}: {exc})")
                return
            if text_digest(text) != digest:
                bad.append(f"{doc}: the server's text differs from its clients'")

    await asyncio.gather(*(check(d, g) for d, g in agreed.items()))
    if bad:
        res.converged = False
        res.convergence = "; ".join([res.convergence, *bad[:3]]).strip("; ")


async def run_all(
    servers: Sequence[str], scenarios: Sequence[Scenario], opts: Options
) -> list[RunResult]:
    results: list[RunResult] = []
    for scenario in scenarios:
        for name in servers:
            if opts.verbose:
                log(f"{name}: scenario {scenario.key}: {scenario.describe()}")
            res = await run_one(ServerDef(name), scenario, opts)
            if opts.verbose:
                log("  " + _one_line(res))
            results.append(res)
    return results


def _one_line(r: RunResult) -> str:
    if r.status != "ok":
        return f"{r.status}: {r.reason}"
    parts = [f"connected {r.connected}/{r.clients}"]
    if r.ack_ms:
        parts.append(f"ack p50/p99 {r.ack_ms['p50']:.1f}/{r.ack_ms['p99']:.1f} ms")
    if r.visible_ms:
        parts.append(f"visible p50/p99 {r.visible_ms['p50']:.1f}/{r.visible_ms['p99']:.1f} ms")
    if r.edits:
        parts.append(f"delivered {r.delivered}/{r.edits}")
    if r.converged is not None:
        parts.append("converged" if r.converged else f"NOT converged: {r.convergence}")
    if r.server_cpu_pct is not None:
        parts.append(f"server CPU {r.server_cpu_pct:.0f}%")
    if r.generator_cpu_pct:
        parts.append(f"generator CPU {'+'.join(f'{v:.0f}' for v in r.generator_cpu_pct)}%")
    if r.rss_per_conn_bytes is not None:
        parts.append(f"RSS/conn {r.rss_per_conn_bytes / 1000:.1f} kB")
    if r.errors:
        parts.append(f"errors {sum(r.errors.values())}")
    return ", ".join(parts)


# -------------------------------------------------------------------------------- targets


@dataclass
class Verdict:
    target: str
    server: str
    value: str
    ok: bool | None

    @property
    def mark(self) -> str:
        return "n/a" if self.ok is None else ("PASS" if self.ok else "MISS")


def verdicts(results: Sequence[RunResult]) -> list[Verdict]:
    out: list[Verdict] = []
    for r in results:
        if r.status != "ok":
            continue
        correct = r.converged is not False and r.edits > 0 and r.delivered == r.edits
        if r.scenario == "a50":
            p99 = r.p99
            out.append(
                Verdict(
                    f"(a) 50 clients: p99 ≤ {TARGET_A50_P99_MS:g} ms",
                    r.server,
                    _ms(p99),
                    None if p99 is None else (p99 <= TARGET_A50_P99_MS and correct),
                )
            )
        elif r.scenario == "a200":
            p99 = r.p99
            out.append(
                Verdict(
                    "(a) 200 clients: every edit delivered, all converge",
                    r.server,
                    f"{r.delivered}/{r.edits} delivered, "
                    + ("converged" if r.converged else "NOT converged"),
                    correct,
                )
            )
            out.append(
                Verdict(
                    f"(a) 200 clients: p99 ≤ {TARGET_A200_P99_MS:g} ms",
                    r.server,
                    _ms(p99),
                    None if p99 is None else p99 <= TARGET_A200_P99_MS,
                )
            )
        elif r.scenario == "b":
            p99 = r.p99
            out.append(
                Verdict(
                    f"(b) 1,000 clients / 100 docs: p99 ≤ {TARGET_B_P99_MS:g} ms",
                    r.server,
                    _ms(p99),
                    None if p99 is None else (p99 <= TARGET_B_P99_MS and correct),
                )
            )
        elif r.scenario == "c":
            per = r.rss_per_conn_bytes
            out.append(
                Verdict(
                    f"(c) ≤ {TARGET_C_BYTES_PER_CONN / 1000:g} kB RSS per idle connection",
                    r.server,
                    "–" if per is None else f"{per / 1000:.1f} kB",
                    None if per is None else per <= TARGET_C_BYTES_PER_CONN,
                )
            )
            cpu = r.server_cpu_pct
            out.append(
                Verdict(
                    f"(c) idle CPU ≤ {TARGET_C_IDLE_CPU_PCT:g} % of a core",
                    r.server,
                    "–" if cpu is None else f"{cpu:.2f} %",
                    None if cpu is None else cpu <= TARGET_C_IDLE_CPU_PCT,
                )
            )
    return out


# -------------------------------------------------------------------------------- report


def _ms(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "–"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def _trio(d: dict[str, float] | None) -> str:
    if not d:
        return "–"
    return " / ".join(_ms(d[k]) for k in ("p50", "p95", "p99"))


def _mb(kb: int | None) -> str:
    return "–" if kb is None else f"{kb / 1024:.0f} MiB"


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f} %"


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def machine_info() -> dict[str, str]:
    mem = procstat.memory_total_gib()
    info = {
        "cpu": f"{procstat.cpu_model()} ({os.cpu_count()} logical CPUs)",
        "memory": "?" if mem is None else f"{mem:.0f} GiB",
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    versions = []
    for dist in ("cowrite", "uvicorn", "websockets", "uvloop", "pycrdt", "pycrdt-websocket"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    info["python packages"] = ", ".join(versions)
    node = procstat.command_version(["node", "--version"])
    info["node"] = node or "not installed"
    lock = peers_dir() / "package-lock.json"
    if lock.exists():
        with contextlib.suppress(OSError, ValueError, KeyError):
            packages = json.loads(lock.read_text())["packages"]
            names = ("@hocuspocus/server", "@hocuspocus/provider", "yjs", "ws")
            info["node packages"] = ", ".join(
                f"{n} {packages[f'node_modules/{n}']['version']}"
                for n in names
                if f"node_modules/{n}" in packages
            )
    return info


def render_section(
    results: Sequence[RunResult],
    *,
    command: str,
    info: dict[str, str],
    quick: bool,
    notes: str = "",
) -> str:
    out = [SECTION_START, "## Server: real-time load (`cowrite bench`)", ""]
    out.append(
        f"Generated by `{command}`"
        + (" (**--quick: short smoke run, not the benchmark**)" if quick else "")
        + f" on {info.get('date', '?')}."
    )
    out.append("")
    out.append("Machine: " + "; ".join(f"{k}: {v}" for k, v in info.items() if k != "date") + ".")
    out.append("")
    out.append(
        "How it is measured: each run starts a fresh server process and its own load "
        "generator(s) on the same machine: Python clients for cowrite (thin OT clients) and "
        "pycrdt-websocket (pycrdt documents), Node clients (`yjs` + `@hocuspocus/provider`) for "
        "Hocuspocus, two generator processes for Hocuspocus once 50 or more clients type. "
        "`cowrite` uses its default SQLite store (each ack waits for an fsync), "
        "`cowrite-memory` runs `--data :memory:`; the peers keep documents in memory. "
        "Latencies use one machine-wide monotonic clock: **edit→ack** from the keystroke to the "
        "server's acknowledgement (cowrite `ack`, Hocuspocus `SyncStatus`; pycrdt-websocket has "
        "none), **edit→visible** from the keystroke until the edit is applied at *every* other "
        "client of the document. *edits/s* counts edits that reached every other client, "
        "*deliveries/s* every (edit, receiving client) pair, both over the typing window. "
        "A cowrite client holds one batch in flight, so when acks are slow its keystrokes "
        "travel in fewer, larger edits (noted). A generator that falls so far behind that a "
        "keystroke's time comes after the end skips it (noted): a saturated generator shows "
        "up as fewer edits, and its latencies are an upper bound. CPU is % of one core over "
        "the typing (or idle) window, from `/proc/<pid>/stat`; RSS from `/proc/<pid>/status`. "
        "*Other load* is CPU used during the window by processes outside the benchmark: this "
        "machine is shared, and when that column is high (200 % is both cores) latency tails "
        "include scheduling delays that have nothing to do with the server."
    )
    out.append("")
    groups = [
        ("a", "(a) one document, clients typing 5 characters/s each"),
        ("b", "(b) many documents"),
        ("c", "(c) idle connections"),
    ]
    for group, title in groups:
        rows_src = [r for r in results if r.scenario.startswith(group)]
        if not rows_src:
            continue
        out.append(f"### {title}")
        out.append("")
        if group == "c":
            head = [
                "server",
                "connections",
                "RSS before → after",
                "RSS / connection",
                "idle server CPU",
                "generator CPU",
                "other load",
                "notes",
            ]
            rows = []
            for r in rows_src:
                if r.status != "ok":
                    rows.append([r.server, str(r.clients), "–", "–", "–", "–", "–", r.reason])
                    continue
                per = r.rss_per_conn_bytes
                rows.append(
                    [
                        r.server,
                        f"{r.still_connected}/{r.clients}",
                        f"{_mb(r.server_rss_kb_start)} → {_mb(r.server_rss_kb_end)}",
                        "–" if per is None else f"{per / 1000:.1f} kB",
                        "–" if r.server_cpu_pct is None else f"{r.server_cpu_pct:.2f} %",
                        "+".join(f"{v:.1f}" for v in r.generator_cpu_pct) + " %",
                        _pct(r.other_cpu_pct),
                        _notes(r),
                    ]
                )
        else:
            head = [
                "server",
                "clients / docs",
                "edit→ack p50 / p95 / p99 ms",
                "edit→visible p50 / p95 / p99 (max) ms",
                "edits/s · deliveries/s",
                "delivered",
                "converged",
                "server CPU",
                "peak RSS",
                "generator CPU",
                "other load",
                "notes",
            ]
            rows = []
            for r in rows_src:
                docs = r.describe.split(" on ")[1].split(",")[0] if " on " in r.describe else "?"
                if r.status != "ok":
                    rows.append(
                        [r.server, f"{r.clients} / {docs}", *["–"] * 9, f"{r.status}: {r.reason}"]
                    )
                    continue
                vis = _trio(r.visible_ms)
                if r.visible_ms:
                    vis += f" ({_ms(r.visible_ms['max'])})"
                rows.append(
                    [
                        r.server,
                        f"{r.clients} / {docs}",
                        _trio(r.ack_ms) if r.ack_ms else "n/a",
                        vis,
                        f"{r.edits_per_s:.0f} · {r.deliveries_per_s:,.0f}",
                        f"{r.delivered}/{r.edits}",
                        "yes" if r.converged else f"**no**: {r.convergence}",
                        _pct(r.server_cpu_pct),
                        _mb(r.server_hwm_kb),
                        "+".join(f"{v:.0f}" for v in r.generator_cpu_pct) + " %",
                        _pct(r.other_cpu_pct),
                        _notes(r),
                    ]
                )
        out.extend(_table(head, rows))
        out.append("")
    vs = verdicts(results)
    if vs:
        out.append("### Targets")
        out.append("")
        out.extend(
            _table(
                ["target", "server", "measured", ""],
                [[v.target, v.server, v.value, v.mark] for v in vs],
            )
        )
        out.append("")
    ratio_rows = _ratio_rows(results)
    if ratio_rows:
        out.append("### cowrite ÷ peer (below 1: cowrite is better)")
        out.append("")
        head = ["scenario", "ratio", "p99 edit→visible", "server CPU", "peak RSS (c: per conn)"]
        out.extend(_table(head, ratio_rows))
        if any("†" in row[1] for row in ratio_rows):
            out.append("")
            out.append(
                "† not like for like: one of the two runs did not carry the whole load (its "
                "generator skipped keystrokes or was saturated, or edits were left undelivered)."
            )
        out.append("")
    if notes.strip():
        out.append(notes.strip())
        out.append("")
    out.append(SECTION_END)
    return "\n".join(out) + "\n"


def _notes(r: RunResult) -> str:
    notes = []
    if r.lag_p99_ms is not None and r.lag_p99_ms > 20:
        notes.append(f"generator behind schedule (p99 {r.lag_p99_ms:.0f} ms)")
    if any(v >= 90 for v in r.generator_cpu_pct):
        notes.append("generator saturated: latencies are upper bounds")
    if r.skipped:
        notes.append(f"generator skipped {r.skipped} late keystrokes")
    if not r.drained:
        notes.append("not drained within the timeout")
    if r.keystrokes and r.edits and r.edits < r.keystrokes:
        notes.append(f"{r.keystrokes} keystrokes in {r.edits} edit batches")
    if r.errors:
        top = sorted(r.errors.items(), key=lambda kv: -kv[1])[:2]
        notes.append("errors: " + "; ".join(f"{n}× {e}" for e, n in top))
    return "; ".join(notes).replace("|", "/")


def _ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b <= 0 or math.isnan(a) or math.isnan(b):
        return "–"
    return f"{a / b:.2f}"


def _ratio_rows(results: Sequence[RunResult]) -> list[list[str]]:
    rows = []
    ok = [r for r in results if r.status == "ok"]
    for r in ok:
        if not r.server.startswith("cowrite"):
            continue
        for peer in ok:
            if peer.scenario != r.scenario or peer.server.startswith("cowrite"):
                continue
            if r.scenario == "c":
                mem = _ratio(r.rss_per_conn_bytes, peer.rss_per_conn_bytes)
                vis = "–"
            else:
                mem = _ratio(
                    None if r.server_hwm_kb is None else float(r.server_hwm_kb),
                    None if peer.server_hwm_kb is None else float(peer.server_hwm_kb),
                )
                vis = _ratio(
                    r.visible_ms["p99"] if r.visible_ms else None,
                    peer.visible_ms["p99"] if peer.visible_ms else None,
                )
            cpu = _ratio(r.server_cpu_pct, peer.server_cpu_pct)
            mark = " †" if not (_comparable(r) and _comparable(peer)) else ""
            rows.append([r.scenario, f"{r.server} ÷ {peer.server}{mark}", vis, cpu, mem])
    return rows


def _comparable(r: RunResult) -> bool:
    """Did this run carry the whole load (so its latency and CPU can be compared)?"""
    if r.scenario == "c":
        return r.still_connected == r.clients
    return (
        r.converged is not False
        and r.skipped == 0
        and r.delivered == r.edits
        and all(v < 90 for v in r.generator_cpu_pct)
    )


SCENARIO_ORDER = ("a10", "a50", "a200", "b", "c")


def result_from_json(data: dict[str, Any]) -> RunResult:
    names = {f.name for f in dataclasses.fields(RunResult)}
    return RunResult(**{k: v for k, v in data.items() if k in names})


def merge_runs(earlier: list[RunResult], now: list[RunResult]) -> list[RunResult]:
    """``now`` plus the results of ``earlier`` for (server, scenario) pairs ``now`` lacks."""
    fresh = {(r.server, r.scenario) for r in now}
    merged = [r for r in earlier if (r.server, r.scenario) not in fresh] + now

    def order(r: RunResult) -> tuple[int, int, str]:
        scen = SCENARIO_ORDER.index(r.scenario) if r.scenario in SCENARIO_ORDER else 99
        serv = SERVERS.index(r.server) if r.server in SERVERS else 99
        return (scen, serv, r.scenario)

    return sorted(merged, key=order)


def replace_section(existing: str, section: str) -> str:
    """Put ``section`` between the markers, or append it when they are missing."""
    start = existing.find(SECTION_START)
    end = existing.find(SECTION_END)
    if start != -1 and end != -1 and end > start:
        return existing[:start] + section.rstrip("\n") + existing[end + len(SECTION_END) :]
    if existing and not existing.endswith("\n"):
        existing += "\n"
    return existing + ("\n" if existing else "") + section


def write_section(path: Path, section: str) -> None:
    existing = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(existing, section), encoding="utf-8")


# ------------------------------------------------------------------------------ command line


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Real-time server benchmark over WebSockets: cowrite vs Hocuspocus vs "
        "pycrdt-websocket.",
    )
    parser.add_argument("--scenario", choices=["a", "b", "c", "all"], default="all")
    parser.add_argument(
        "--clients",
        help="client counts: scenario a takes a comma list (default 10,50,200), "
        "b and c (run alone) one number",
    )
    parser.add_argument("--duration", type=float, help="seconds of editing / idling per run")
    parser.add_argument(
        "--peers",
        default=",".join(DEFAULT_SERVERS),
        help=f"servers to run, comma-separated, from {','.join(SERVERS)} "
        f"(default {','.join(DEFAULT_SERVERS)})",
    )
    parser.add_argument("--quick", action="store_true", help="short runs for a CI smoke test")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit the docs")
    parser.add_argument("--output", type=Path, help="markdown file (default docs/benchmarks.md)")
    parser.add_argument("--json", type=Path, help="also write every result as JSON here")
    parser.add_argument(
        "--notes",
        type=Path,
        help="markdown appended to the section (e.g. profiles and findings of this run)",
    )
    parser.add_argument(
        "--from-json",
        type=Path,
        help="run nothing: render (and write) the section from results saved with --json",
    )
    parser.add_argument(
        "--merge",
        type=Path,
        help="results JSON of an earlier run (--json): its (server, scenario) results that this "
        "run does not repeat are kept in the tables",
    )
    parser.add_argument(
        "--procs",
        default="auto",
        help="load-generator processes per run (default auto: 2 for Hocuspocus with 50 or "
        "more active clients, else 1)",
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=30.0, help="seconds to wait for delivery"
    )
    parser.add_argument("--logs", type=Path, help="keep server and generator logs here")
    parser.add_argument(
        "--nice",
        type=int,
        default=-10,
        help="niceness of the benchmark's processes, so that other work on a shared machine "
        "disturbs it less (default -10 when allowed; 0: leave alone)",
    )
    return parser


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _render_saved(path: Path, args: argparse.Namespace) -> int:
    saved = json.loads(path.read_text(encoding="utf-8"))
    results = [result_from_json(r) for r in saved.get("results", [])]
    info = {str(k): str(v) for k, v in saved.get("info", {}).items()}
    command = str(saved.get("command", "cowrite bench"))
    quick = "--quick" in command
    notes = args.notes.read_text(encoding="utf-8") if args.notes else ""
    section = render_section(results, command=command, info=info, quick=quick, notes=notes)
    print(section)
    if not args.no_write:
        output: Path = args.output or (repo_root() / "docs" / "benchmarks.md")
        write_section(output, section)
        log(f"wrote {output}")
    return 0


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--instances" or a.startswith("--instances=") for a in args_list):
        from cowrite.bench import cluster  # several instances on PostgreSQL + Redis

        return cluster.main(args_list, prog=prog)
    parser = build_parser(prog)
    args = parser.parse_args(args_list)
    servers = [s.strip() for s in args.peers.split(",") if s.strip()]
    unknown = [s for s in servers if s not in SERVERS]
    if unknown or not servers:
        parser.error(f"--peers: unknown {unknown}; choose from {','.join(SERVERS)}")
    clients: list[int] | None = None
    if args.clients:
        try:
            clients = [int(c) for c in args.clients.split(",") if c.strip()]
        except ValueError:
            parser.error("--clients: comma-separated integers")
        if not clients or min(clients) < 2:
            parser.error("--clients: at least 2 clients per run")
    procs = 0
    if args.procs != "auto":
        try:
            procs = int(args.procs)
        except ValueError:
            parser.error("--procs: a number or auto")
        if procs < 1:
            parser.error("--procs must be at least 1")
    scenarios = build_scenarios(
        args.scenario, clients=clients, duration=args.duration, quick=args.quick
    )
    if args.from_json:
        return _render_saved(args.from_json, args)
    _raise_fd_limit()
    nice = apply_nice(args.nice)
    opts = Options(
        procs=procs,
        drain_timeout_s=10.0 if args.quick else args.drain_timeout,
        logdir=args.logs,
    )
    info = machine_info()
    info["benchmark processes"] = nice
    results = asyncio.run(run_all(servers, scenarios, opts))
    earlier_command = ""
    if args.merge:
        earlier = json.loads(args.merge.read_text(encoding="utf-8"))
        earlier_command = str(earlier.get("command", ""))
        results = merge_runs(
            [result_from_json(r) for r in earlier.get("results", [])], list(results)
        )
    shown: list[str] = []
    skip = False
    for a in args_list:  # the command to reproduce: without local paths
        if skip:
            skip = False
            continue
        if a in ("--json", "--logs", "--output", "--notes", "--merge"):
            skip = True
            continue
        if a == "--no-write" or a.startswith(
            ("--json=", "--logs=", "--output=", "--notes=", "--merge=")
        ):
            continue
        shown.append(a)
    command = "cowrite bench" + (" " + shlex.join(shown) if shown else "")
    if earlier_command and earlier_command != command:
        command = f"{earlier_command}`, then `{command}"
    notes = args.notes.read_text(encoding="utf-8") if args.notes else ""
    section = render_section(results, command=command, info=info, quick=args.quick, notes=notes)
    print(section)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"info": info, "command": command, "results": [asdict(r) for r in results]}
        args.json.write_text(json.dumps(payload, indent=1), encoding="utf-8")
    if not args.no_write:
        output: Path = args.output or (repo_root() / "docs" / "benchmarks.md")
        write_section(output, section)
        log(f"wrote {output}")
    broken = [
        f"{r.server}/{r.scenario}"
        for r in results
        if r.status == "error" or (r.server.startswith("cowrite") and r.converged is False)
    ]
    if broken:
        log("failed or incorrect: " + ", ".join(broken))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
