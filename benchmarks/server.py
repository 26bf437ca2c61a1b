"""Server benchmark: drive collaboration servers over real WebSockets (``python -m benchmarks
server``; ``cowrite bench server`` from a checkout).

Scenarios (see ``docs/benchmarks.md`` for results):

``a``
    one document, 10 / 50 / 200 clients, each inserting a character at a random position every
    200 ms for 30 s;
``b``
    1,000 clients over 100 documents (10 each), one character per second each, 30 s;
``c``
    5,000 idle connections over 500 documents: server RSS per connection and idle CPU (30 s).

Servers: ``cowrite`` (``cowrite serve``, SQLite store, as shipped; ``cowrite-js``: the same
server driven by cowrite's real JS client in Node) and the peers in ``benchmarks/peers``:
``hocuspocus`` (``@hocuspocus/server``, Yjs clients through ``@hocuspocus/provider`` in Node),
``pycrdt-websocket`` (its ASGI server under uvicorn, clients built from pycrdt's y-sync
functions) and ``sharedb`` (ShareDB 7 in memory, json0, ``sharedb/lib/client`` in Node).

For every run this coordinator starts the server in its own process, starts the load generator
process(es) (``benchmarks.load`` workers, or the peer's), samples ``/proc`` of the server and
of the generators, and merges the generators' per-edit records into:

* edit->ack: sender's keystroke to the server's acknowledgement (cowrite ``ack``; Hocuspocus
  ``SyncStatus``; pycrdt-websocket has no acknowledgement);
* edit->visible: the keystroke to the moment the edit is applied at *every other* client of
  the document (the latest of their receive times, one clock for the machine);
* delivered: edits that reached every other client; converged: every client of a document ends
  with the same text, of the expected length (and, for cowrite, equal to the server's).

Run ``python -m benchmarks server --help`` (or ``benchmarks/run_server.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks import child_env, cmdline, procstat, report, yjs_report
from benchmarks.coordinator import (
    Generators,
    apply_nice,
    log,
    new_run_id,
    plan_workers,
    stop_process,
)
from benchmarks.results import (
    RunResult,
    check_server_texts,
    load_results,
    merge_results,
    save_results,
)
from benchmarks.server_defs import (
    DEFAULT_SERVERS,
    SERVERS,
    YJS_SERVERS,
    ServerDef,
    peers_dir,
)
from benchmarks.server_report import SECTION_END, SECTION_START, render_section
from benchmarks.yjs_fetch import fetch_yjs_text
from cowrite_dev.services import free_port, repo_root

__all__ = ["DEFAULT_SERVERS", "SERVERS", "YJS_SERVERS", "ServerDef", "build_scenarios", "main"]

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
    yjs: bool = False,
) -> list[Scenario]:
    """The runs of ``which`` (a, b, c or all); ``yjs``: the Yjs suite's, whose scenario a is
    50 clients only."""
    groups = ["a", "b", "c"] if which == "all" else which.split(",")
    out: list[Scenario] = []
    for g in groups:
        if g == "a":
            counts = list(clients or ([50] if yjs else [10, 50, 200][: 2 if quick else 3]))
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


# --------------------------------------------------------------------------------- runner


@dataclass
class Options:
    procs: int = 0
    """Generator processes per run; 0: ``ServerDef.auto_procs``."""
    drain_timeout_s: float = 30.0
    verbose: bool = True
    logdir: Path | None = None
    yjs_clients: bool = False
    """``ServerDef.yjs_clients``: the Node Yjs generator for every Yjs server (``--yjs``)."""


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


async def run_one(server: ServerDef, scenario: Scenario, opts: Options) -> RunResult:
    res = RunResult(server.name, scenario.key, scenario.describe(), clients=scenario.clients)
    res.client = server.kind
    res.mark_start()
    why = server.check()
    if why:
        res.status, res.reason = "skipped", why
        return res
    run_id = new_run_id()
    docs = [f"bench-{run_id}-{scenario.key}-{d}" for d in range(scenario.docs)]
    auto = server.auto_procs(scenario.clients, scenario.idle)
    procs = max(1, min(opts.procs or auto, scenario.clients))
    specs, clients_per_doc = plan_workers(
        [docs[c % scenario.docs] for c in range(scenario.clients)],
        procs,
        kind=server.kind,
        run_id=run_id,
        interval_ms=scenario.interval_ms or 0.0,
        mode="idle" if scenario.idle else "edit",
        drain_timeout_s=opts.drain_timeout_s,
    )

    workdir = Path(tempfile.mkdtemp(prefix=f"cowrite-bench-{server.name}-"))
    logdir = opts.logdir or workdir
    logdir.mkdir(parents=True, exist_ok=True)
    server_log = open(logdir / f"{server.name}-{scenario.key}-server.log", "wb")  # noqa: SIM115
    generators = Generators(logdir / f"{server.name}-{scenario.key}-workers.log")
    port = free_port()
    srv = await asyncio.create_subprocess_exec(
        *server.server_command(port, workdir),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=server_log,
        stderr=asyncio.subprocess.STDOUT,
        cwd=str(workdir),
        env=child_env(),
    )
    try:
        await _wait_port(port, srv, 60)
        await asyncio.sleep(0.5)
        mem0 = procstat.memory_kb(srv.pid)
        res.server_rss_kb_start = mem0.get("VmRSS")
        for spec in specs:
            spec.url = server.url(port)
        await generators.spawn(server.worker_command(), specs)
        await generators.ready(res)
        pids = [srv.pid, os.getpid(), *generators.pids]
        if scenario.idle:
            await asyncio.sleep(2.0)  # let joins and presence broadcasts settle
            start = procstat.CpuMark.take(pids)
            await asyncio.sleep(scenario.duration_s)
            end = procstat.CpuMark.take(pids)
            res.window_s = end.wall - start.wall
            await generators.send_all({"cmd": "stop"})
            reports = await generators.events("result", 120)
            merge_results(res, reports, {})
            res.converged = None
        else:
            start, end, reports = await generators.type_for(
                res, pids, scenario.duration_s, opts.drain_timeout_s
            )
            drained = procstat.CpuMark.take([srv.pid])
            if srv.pid in drained.procs and srv.pid in start.procs:
                res.server_cpu_s = drained.procs[srv.pid] - start.procs[srv.pid]
            agreed = merge_results(res, reports, clients_per_doc)
            if server.thin and agreed:
                await check_server_texts(res, server.url(port), agreed)
            elif server.cowrite and agreed:  # a Yjs endpoint: what a new y-websocket client gets
                yjs_url = ServerDef("cowrite-yjs").url(port)
                await check_server_texts(res, yjs_url, agreed, fetch=fetch_yjs_text)
        res.server_cpu_pct = procstat.cpu_percent(start, end, srv.pid)
        generators.record_load(res, reports, start, end, pids)
        mem1 = procstat.memory_kb(srv.pid)
        res.server_rss_kb_end = mem1.get("VmRSS")
        res.server_hwm_kb = mem1.get("VmHWM")
        if scenario.idle and res.still_connected and mem0 and mem1:
            grown = (mem1["VmRSS"] - mem0["VmRSS"]) * 1024
            res.rss_per_conn_bytes = grown / res.still_connected
        res.count_lost_connections()
    except Exception as exc:
        res.fail(exc)
    finally:
        await generators.close()
        await stop_process(srv)
        server_log.close()
        shutil.rmtree(workdir, ignore_errors=True)  # logs live there only without --logs
    return res


async def run_all(
    servers: Sequence[str], scenarios: Sequence[Scenario], opts: Options
) -> list[RunResult]:
    results: list[RunResult] = []
    for scenario in scenarios:
        for name in servers:
            if opts.verbose:
                log(f"{name}: scenario {scenario.key}: {scenario.describe()}")
            res = await run_one(ServerDef(name, opts.yjs_clients), scenario, opts)
            if opts.verbose:
                log("  " + report.one_line(res, _details(res)))
            results.append(res)
    return results


def _details(r: RunResult) -> list[str]:
    """What the progress line says about a run beyond connections and latencies."""
    parts = []
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
    return parts


# ------------------------------------------------------------------------------- results


def machine_info() -> dict[str, str]:
    """``report.machine_info`` and Node with the peers' Node packages."""
    info = report.machine_info()
    node = procstat.command_version(["node", "--version"])
    info["node"] = node or "not installed"
    lock = peers_dir() / "package-lock.json"
    if lock.exists():
        with contextlib.suppress(OSError, ValueError, KeyError):
            packages = json.loads(lock.read_text())["packages"]
            names = (
                "@hocuspocus/server",
                "@hocuspocus/provider",
                "y-websocket",
                "@y/websocket-server",
                "yjs",
                "ws",
                "sharedb",
                "@teamwork/websocket-json-stream",
            )
            info["node packages"] = ", ".join(
                f"{n} {packages[f'node_modules/{n}']['version']}"
                for n in names
                if f"node_modules/{n}" in packages
            )
    return info


SCENARIO_ORDER = ("a10", "a50", "a200", "b", "c")


def merge_runs(earlier: list[RunResult], now: list[RunResult]) -> list[RunResult]:
    """``now`` plus the results of ``earlier`` for (server, scenario) pairs ``now`` lacks."""
    fresh = {(r.server, r.scenario) for r in now}
    merged = [r for r in earlier if (r.server, r.scenario) not in fresh] + now

    def order(r: RunResult) -> tuple[int, int, str]:
        scen = SCENARIO_ORDER.index(r.scenario) if r.scenario in SCENARIO_ORDER else 99
        serv = SERVERS.index(r.server) if r.server in SERVERS else 99
        return (scen, serv, r.scenario)

    return sorted(merged, key=order)


# ------------------------------------------------------------------------------ command line


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Real-time server benchmark over WebSockets: cowrite vs Hocuspocus, "
        "pycrdt-websocket and ShareDB.",
    )
    parser.add_argument(
        "--scenario",
        default="all",
        help="a, b, c, all, or a comma list run in that order (e.g. c,a,b; default all)",
    )
    parser.add_argument(
        "--clients",
        help="client counts: scenario a takes a comma list (default 10,50,200), "
        "b and c (run alone) one number",
    )
    parser.add_argument("--duration", type=float, help="seconds of editing / idling per run")
    parser.add_argument(
        "--peers",
        "--servers",
        dest="peers",
        help=f"servers to run, comma-separated, from {','.join(SERVERS)} "
        f"(default {','.join(DEFAULT_SERVERS)}; with --yjs {','.join(YJS_SERVERS)})",
    )
    parser.add_argument(
        "--yjs",
        action="store_true",
        help="the Yjs suite: cowrite's Yjs endpoints against the Yjs servers, every one driven "
        "by the same Node generator (yjs + the real providers); scenario a with 50 clients, "
        "b and c; writes the section 'Yjs: cowrite vs Hocuspocus and pycrdt-websocket'",
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
        help="load-generator processes per run (default auto: 2 for the Node Yjs generator "
        "with 50 or more active clients, else 1)",
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
    results, info, command = load_results(path, RunResult, "cowrite bench")
    quick = "--quick" in command
    yjs = args.yjs or "--yjs" in command.split()
    notes = cmdline.read_notes(args.notes)
    section = _render(yjs, results, command=command, info=info, quick=quick, notes=notes)
    print(section)
    if not args.no_write:
        _write(args.output, section, yjs)
    return 0


def _render(
    yjs: bool,
    results: Sequence[RunResult],
    *,
    command: str,
    info: dict[str, str],
    quick: bool,
    notes: str,
) -> str:
    """The section of ``docs/benchmarks.md``: the Yjs suite's or the server benchmark's."""
    render = yjs_report.render_section if yjs else render_section
    return render(results, command=command, info=info, quick=quick, notes=notes)


def _write(output: Path | None, section: str, yjs: bool = False) -> None:
    path = output or (repo_root() / "docs" / "benchmarks.md")
    start, end = (
        (yjs_report.SECTION_START, yjs_report.SECTION_END) if yjs else (SECTION_START, SECTION_END)
    )
    report.write_section(path, section, start, end, empty="# Benchmarks\n")
    log(f"wrote {path}")


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if any(a == "--instances" or a.startswith("--instances=") for a in args_list):
        from benchmarks import cluster  # several instances on PostgreSQL + Redis

        return cluster.main(args_list, prog=prog)
    parser = build_parser(prog)
    args = parser.parse_args(args_list)
    default = YJS_SERVERS if args.yjs else DEFAULT_SERVERS
    servers = cmdline.comma_list(args.peers) if args.peers else list(default)
    unknown = [s for s in servers if s not in SERVERS]
    if unknown or not servers:
        parser.error(f"--peers: unknown {unknown}; choose from {','.join(SERVERS)}")
    clients: list[int] | None = None
    if args.clients:
        too_few = "at least 2 clients per run"
        clients = cmdline.comma_ints(parser, "--clients", args.clients, least=2, too_few=too_few)
    procs = 0
    if args.procs != "auto":
        try:
            procs = int(args.procs)
        except ValueError:
            parser.error("--procs: a number or auto")
        if procs < 1:
            parser.error("--procs must be at least 1")
    if not set(args.scenario.split(",")) <= {"a", "b", "c"} and args.scenario != "all":
        parser.error("--scenario: a, b, c, all, or a comma list of a, b and c")
    scenarios = build_scenarios(
        args.scenario, clients=clients, duration=args.duration, quick=args.quick, yjs=args.yjs
    )
    if args.from_json:
        return _render_saved(args.from_json, args)
    _raise_fd_limit()
    nice = apply_nice(args.nice)
    opts = Options(
        procs=procs,
        drain_timeout_s=10.0 if args.quick else args.drain_timeout,
        logdir=args.logs,
        yjs_clients=args.yjs,
    )
    info = machine_info()
    info["benchmark processes"] = nice
    results = asyncio.run(run_all(servers, scenarios, opts))
    earlier_command = ""
    if args.merge:
        earlier, _info, earlier_command = load_results(args.merge, RunResult)
        results = merge_runs(earlier, list(results))
    command = cmdline.shown_command(  # the command to reproduce: without local paths
        "python -m benchmarks server",
        args_list,
        private=("--json", "--logs", "--output", "--notes", "--merge"),
        flags=("--no-write",),
    )
    if earlier_command and earlier_command != command:
        command = f"{earlier_command}`, then `{command}"
    notes = cmdline.read_notes(args.notes)
    section = _render(args.yjs, results, command=command, info=info, quick=args.quick, notes=notes)
    print(section)
    if args.json:
        save_results(args.json, info, command, results)
    if not args.no_write:
        _write(args.output, section, args.yjs)
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
