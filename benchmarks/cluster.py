"""Cluster benchmark: scenario (b) against 1, 2 and 3 ``cowrite serve`` instances sharing one
PostgreSQL (the store) and one Redis (the bus), all started here on free ports.

``python -m benchmarks cluster`` (or ``... server --scenario b --instances 1,2,3``, or
``benchmarks/run_cluster.py``, or ``cowrite bench cluster`` from a checkout). Clients type one
character per second each into documents of ten clients (scenario b of ``benchmarks.server``,
scaled down by default so that a run takes a few minutes on two cores). Each client connects to
one instance, by *placement*:

``single``
    one instance: every edit goes client -> instance -> PostgreSQL -> the other clients;
``colocated``
    n instances, all clients of a document on the same instance (documents round-robin): the
    load is spread, but no edit has to cross instances (each instance still publishes on Redis);
``spread``
    n instances, the k-th client of every document on instance k mod n: editors of one document
    sit on different instances, so most deliveries take the cross-instance path (durable write,
    Redis, CRDT merge on the receiving instance, broadcast there).

``spread`` against ``colocated`` at the same n is the cost of the cross-instance path (same
processes, same load per instance); against ``single`` it is the cost of scaling out on this
machine. Latencies: edit->ack, edit->visible at every other client of the document, and
edit->visible split by where the receivers are (on the sender's instance / elsewhere). CPU per
process over the typing window: the instances (sum and each), PostgreSQL (postmaster and
backends), Redis, the load generator.

PostgreSQL runs with its durable defaults (fsync on, synchronous commit), so every ack waits for
a flush, like the single-server benchmark's SQLite default. Nothing here writes
``docs/benchmarks.md``: ``render_section`` gives the markdown (``--output`` writes it to a file).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import cmdline, procstat, report
from benchmarks.coordinator import Generators, apply_nice, log, new_run_id, plan_workers
from benchmarks.load import Recorder, WorkerSpec
from benchmarks.results import (
    RunResult,
    check_server_texts,
    dist,
    load_results,
    merge_results,
    save_results,
)
from cowrite_dev.http_services import CowriteInstance
from cowrite_dev.services import PostgresServer, RedisServer, ServiceError, descendants

SECTION_START = "<!-- cluster-bench:start -->"
SECTION_END = "<!-- cluster-bench:end -->"
PLACEMENTS = ("colocated", "spread")
CLIENTS_PER_DOC = 10


@dataclass
class ClusterResult(RunResult):
    instances: int = 1
    placement: str = "single"
    cross_share: float | None = None
    """Share of the (edit, receiving client) pairs whose receiver is on another instance."""
    visible_local_ms: dict[str, float] | None = None
    """edit -> visible at every other client *on the sender's instance*."""
    visible_remote_ms: dict[str, float] | None = None
    """edit -> visible at every client of the document *on other instances*."""
    instance_cpu_pct: list[float] = field(default_factory=list)
    instance_hwm_kb: list[int] = field(default_factory=list)
    postgres_cpu_pct: float | None = None
    redis_cpu_pct: float | None = None


# ------------------------------------------------------------------------------- placement


def place(client: int, docs: int, instances: int, placement: str) -> int:
    """The instance of client ``client`` (document ``client % docs``, the ``client // docs``-th
    client of that document)."""
    if instances <= 1 or placement == "single":
        return 0
    if placement == "colocated":
        return (client % docs) % instances
    if placement == "spread":
        return (client // docs) % instances
    raise ValueError(f"unknown placement {placement!r}")


def split_visible(
    reports: list[dict[str, Any]],
    instance_of: dict[int, int],
    doc_of: dict[int, str],
    instances: int,
) -> tuple[dict[str, float] | None, dict[str, float] | None, float | None]:
    """(edit->visible on the sender's instance, on other instances, cross-instance share).

    A key counts for a side once every client of the document on that side got it.
    """
    on: dict[tuple[str, int], int] = {}  # (doc, instance) -> clients
    for index, doc in doc_of.items():
        slot = (doc, instance_of[index])
        on[slot] = on.get(slot, 0) + 1
    sent = Recorder()
    on_instance = [Recorder() for _ in range(instances)]  # who got what when, by instance
    for rep in reports:
        sent.add_sends(rep["sends"])
        for inst, rows in enumerate(rep.get("recv_by_instance", [])):
            on_instance[inst].add_receipts(rows)
    local: list[float] = []
    remote: list[float] = []
    pairs = cross = 0
    for key, (doc, t_send, _t_ack, _chars) in sent.sends.items():
        sender = instance_of.get(int(key.split(".", 1)[0]), 0)
        want_local = on.get((doc, sender), 1) - 1
        want_remote = sum(on.get((doc, i), 0) for i in range(instances) if i != sender)
        pairs += want_local + want_remote
        cross += want_remote
        got = on_instance[sender].recv.get(key)
        if want_local > 0 and got is not None and got[0] >= want_local:
            local.append((got[1] - t_send) / 1e6)
        if want_remote > 0:
            others = [on_instance[i].recv.get(key) for i in range(instances) if i != sender]
            if sum(g[0] for g in others if g) >= want_remote:
                remote.append((max(g[1] for g in others if g) - t_send) / 1e6)
    share = cross / pairs if pairs else None
    return dist(local), dist(remote), share


# ---------------------------------------------------------------------------------- runs


@dataclass
class Options:
    clients: int = 300
    docs: int = 0
    """0: clients / 10."""
    duration_s: float = 20.0
    interval_ms: float = 1000.0
    procs: int = 1
    drain_timeout_s: float = 30.0
    logdir: Path | None = None
    verbose: bool = True
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Services:
    pg: PostgresServer
    redis: RedisServer

    @classmethod
    def start(cls) -> Services:
        pg = PostgresServer.create(fsync=True)
        try:
            redis = RedisServer.create()
        except BaseException:
            pg.destroy()
            raise
        return cls(pg, redis)

    def close(self) -> None:
        self.redis.destroy()
        self.pg.destroy()


def _pg_pids(pg: PostgresServer) -> list[int]:
    return [pg.pid, *descendants(pg.pid)] if pg.pid is not None else []


async def run_one(
    services: Services, instances: int, placement: str, opts: Options
) -> ClusterResult:
    docs_n = opts.docs or max(1, opts.clients // CLIENTS_PER_DOC)
    rate = 1000 / opts.interval_ms
    describe = (
        f"{opts.clients} clients on {docs_n} documents, {rate:g} chars/s each, "
        f"{opts.duration_s:g} s, {instances} instance{'s' if instances > 1 else ''} ({placement})"
    )
    res = ClusterResult(
        "cowrite", "b", describe, clients=opts.clients, instances=instances, placement=placement
    )
    res.mark_start()
    run_id = new_run_id()
    docs = [f"cluster-{run_id}-{instances}{placement[0]}-{d}" for d in range(docs_n)]
    instance_of = {c: place(c, docs_n, instances, placement) for c in range(opts.clients)}
    doc_of = {c: docs[c % docs_n] for c in range(opts.clients)}
    specs, clients_per_doc = plan_workers(
        [doc_of[c] for c in range(opts.clients)],
        max(1, min(opts.procs, opts.clients)),
        kind="cowrite",
        run_id=run_id,
        interval_ms=opts.interval_ms,
        mode="edit",
        drain_timeout_s=opts.drain_timeout_s,
    )

    workdir = Path(tempfile.mkdtemp(prefix="cowrite-bench-cluster-"))
    logdir = opts.logdir or workdir
    logdir.mkdir(parents=True, exist_ok=True)
    tag = f"cluster-{instances}-{placement}"
    dsn = services.pg.create_database(f"bench_{run_id}_{instances}{placement[0]}")
    services.redis.stop()  # a fresh, empty bus for every run
    services.redis.start()
    servers = [
        CowriteInstance(
            f"i{k}",
            logdir / f"{tag}-i{k}.log",
            database=dsn,
            redis=services.redis.url,
            env=opts.env,
            log_level="warning",
        )
        for k in range(instances)
    ]
    generators = Generators(logdir / f"{tag}-workers.log")
    try:
        await asyncio.gather(*(s.start(timeout=60) for s in servers))
        await asyncio.sleep(0.5)
        urls = [s.ws_url for s in servers]
        await generators.spawn([sys.executable, "-m", "benchmarks.cluster_load"], specs)

        def spec_line(spec: WorkerSpec) -> dict[str, Any]:
            mine = {str(i): instance_of[i] for i, _doc in spec.clients}
            return {**spec.to_json(), "urls": urls, "instance_of": mine}

        await generators.ready(res, spec_line)
        server_pids = [s.pid for s in servers if s.pid is not None]
        pg_pids = _pg_pids(services.pg)
        redis_pid = services.redis.pid
        pids = [*server_pids, *pg_pids, os.getpid(), *generators.pids]
        if redis_pid is not None:
            pids.append(redis_pid)

        start, end, reports = await generators.type_for(
            res, pids, opts.duration_s, opts.drain_timeout_s
        )
        agreed = merge_results(res, reports, clients_per_doc)
        res.visible_local_ms, res.visible_remote_ms, res.cross_share = split_visible(
            reports, instance_of, doc_of, instances
        )
        if agreed:
            for s in servers:  # every instance serves what the clients agreed on
                await check_server_texts(res, s.ws_url, agreed)
        per_instance = [procstat.cpu_percent(start, end, pid) for pid in server_pids]
        res.instance_cpu_pct = [round(v, 1) for v in per_instance if v is not None]
        res.server_cpu_pct = sum(res.instance_cpu_pct) if res.instance_cpu_pct else None
        pg_cpu = [procstat.cpu_percent(start, end, pid) for pid in pg_pids]
        res.postgres_cpu_pct = sum(v for v in pg_cpu if v is not None)
        if redis_pid is not None:
            res.redis_cpu_pct = procstat.cpu_percent(start, end, redis_pid)
        generators.record_load(res, reports, start, end, pids)
        hwm = [procstat.memory_kb(pid).get("VmHWM", 0) for pid in server_pids]
        res.instance_hwm_kb = hwm
        res.server_hwm_kb = max(hwm) if hwm else None
        res.count_lost_connections()
    except Exception as exc:
        res.fail(exc)
        for s in servers:
            if s.proc is not None and s.proc.poll() is not None:
                res.reason += f" ({s.name} exited {s.proc.returncode}: {s.log_tail(300)})"
    finally:
        await generators.close()
        for s in servers:
            await asyncio.to_thread(s.terminate, 15.0)
        shutil.rmtree(workdir, ignore_errors=True)  # logs live there only without --logs
    return res


def plan(instances: Sequence[int], placements: Sequence[str]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for n in instances:
        if n == 1:
            out.append((1, "single"))
        else:
            out.extend((n, p) for p in placements)
    return out


async def run_all(
    services: Services, runs: Sequence[tuple[int, str]], opts: Options
) -> list[ClusterResult]:
    results: list[ClusterResult] = []
    for n, placement in runs:
        if opts.verbose:
            log(f"{n} instance(s), {placement}: {opts.clients} clients")
        res = await run_one(services, n, placement, opts)
        if opts.verbose:
            log("  " + one_line(res))
        results.append(res)
    return results


def one_line(r: ClusterResult) -> str:
    parts = []
    if r.visible_remote_ms:
        v = r.visible_remote_ms
        parts.append(f"cross-instance p50/p99 {v['p50']:.1f}/{v['p99']:.1f} ms")
    parts.append(f"delivered {r.delivered}/{r.edits}")
    parts.append("converged" if r.converged else f"NOT converged: {r.convergence}")
    parts.append(f"instances CPU {'+'.join(f'{v:.0f}' for v in r.instance_cpu_pct)}%")
    if r.postgres_cpu_pct is not None:
        parts.append(f"PostgreSQL {r.postgres_cpu_pct:.0f}%")
    if r.generator_cpu_pct:
        parts.append(f"generator {'+'.join(f'{v:.0f}' for v in r.generator_cpu_pct)}%")
    return report.one_line(r, parts)


# ---------------------------------------------------------------------------------- report


def _cpu_per_edit(r: ClusterResult) -> float | None:
    """CPU-milliseconds (instances + PostgreSQL + Redis) per delivered edit."""
    if r.status != "ok" or not r.edits_per_s or r.server_cpu_pct is None:
        return None
    total = r.server_cpu_pct + (r.postgres_cpu_pct or 0) + (r.redis_cpu_pct or 0)
    return total * 10 / r.edits_per_s  # % of a core = 10 ms of CPU per second


def render_section(
    results: Sequence[ClusterResult], *, command: str, info: dict[str, str], notes: str = ""
) -> str:
    """The markdown section (between ``SECTION_START``/``SECTION_END`` markers); ``notes``
    (markdown: findings of this run) goes after the tables."""
    title = "## Several instances (`python -m benchmarks cluster`)"
    out = report.section_head(SECTION_START, title, command, info)
    first = next((r for r in results if r.status == "ok"), None)
    scenario = first.describe.rsplit(", ", 1)[0] if first else ""
    out.append(
        "Scenario (b) scaled to this machine"
        + (f" ({scenario})" if scenario else "")
        + ": every instance is a `cowrite serve --database postgresql://… --redis redis://…` "
        "process; PostgreSQL (durable defaults: every ack waits for a WAL flush) and Redis run "
        "on the same machine, started by the benchmark. *single*: one instance. *colocated*: n "
        "instances, all clients of a document on one instance (documents round-robin), so no "
        "edit crosses instances. *spread*: the k-th client of each document on instance k mod "
        "n, so editors of one document sit on different instances and most deliveries go "
        "instance → PostgreSQL → Redis → other instance → client. *cross share*: (edit, "
        "receiver) pairs whose receiver is on another instance than the sender. edit→visible "
        "is measured at every other client of the document, then split by receivers on the "
        "sender's instance (*same*) and elsewhere (*cross*). CPU is % of one core over the "
        "typing window: the instances (sum, and each), PostgreSQL (postmaster and backends), "
        "Redis and the load generator (one Python process for all clients); *other load* is "
        "CPU used by processes outside the benchmark. Everything shares 2 cores, so more "
        "instances means more processes competing for the same CPUs, not more capacity."
    )
    out.append("")
    head = [
        "instances",
        "placement",
        "cross share",
        "edit→ack p50 / p95 / p99 ms",
        "edit→visible p50 / p95 / p99 (max) ms",
        "visible, same instance p50 / p99",
        "visible, cross-instance p50 / p99",
        *report.DELIVERY_COLUMNS,
        "cowrite CPU (each)",
        "PostgreSQL CPU",
        "Redis CPU",
        *report.LOAD_COLUMNS,
    ]
    rows = []
    for r in results:
        if r.status != "ok":
            rows.append(
                [str(r.instances), r.placement, *["–"] * 13, f"{r.status}: {r.reason}"[:200]]
            )
            continue

        def pair(d: dict[str, float] | None) -> str:
            return "–" if not d else f"{report.fmt_ms(d['p50'])} / {report.fmt_ms(d['p99'])}"

        rows.append(
            [
                str(r.instances),
                r.placement,
                "–" if r.cross_share is None else f"{r.cross_share:.0%}",
                report.trio(r.ack_ms),
                report.visible_cell(r),
                pair(r.visible_local_ms),
                pair(r.visible_remote_ms),
                *report.delivery_cells(r),
                report.pct(r.server_cpu_pct)
                + (
                    f" ({' + '.join(f'{v:.0f}' for v in r.instance_cpu_pct)})"
                    if len(r.instance_cpu_pct) > 1
                    else ""
                ),
                report.pct(r.postgres_cpu_pct),
                report.pct(r.redis_cpu_pct),
                *report.load_cells(r),
            ]
        )
    out.extend(report.table(head, rows))
    out.append("")
    cost = _cost_rows(results)
    if cost:
        title = "The cross-instance path: spread against colocated (same n) and single"
        head = [
            "instances",
            "edit→visible p50 / p99: spread − colocated (ms)",
            "edit→visible p50 / p99: spread − single (ms)",
            "edit→ack p50: spread − colocated (ms)",
            "CPU ms per delivered edit: single · colocated · spread",
        ]
        out.extend(report.subsection(title, head, cost))
        out.append(
            "CPU per delivered edit counts the instances, PostgreSQL and Redis (not the "
            "generator): what one edit costs the deployment, fan-out included."
        )
        out.append("")
    return report.section_end(out, notes, SECTION_END)


def _delta(a: dict[str, float] | None, b: dict[str, float] | None, key: str) -> str:
    if not a or not b:
        return "–"
    return f"{a[key] - b[key]:+.1f}"


def _cost_rows(results: Sequence[ClusterResult]) -> list[list[str]]:
    ok = [r for r in results if r.status == "ok"]
    single = next((r for r in ok if r.placement == "single"), None)
    rows = []
    for n in sorted({r.instances for r in ok if r.instances > 1}):
        spread = next((r for r in ok if r.instances == n and r.placement == "spread"), None)
        colo = next((r for r in ok if r.instances == n and r.placement == "colocated"), None)
        if spread is None:
            continue

        def cpu(r: ClusterResult | None) -> str:
            v = _cpu_per_edit(r) if r is not None else None
            return "–" if v is None else f"{v:.2f}"

        vs_colo = (
            f"{_delta(spread.visible_ms, colo.visible_ms if colo else None, 'p50')} / "
            f"{_delta(spread.visible_ms, colo.visible_ms if colo else None, 'p99')}"
        )
        vs_single = (
            f"{_delta(spread.visible_ms, single.visible_ms if single else None, 'p50')} / "
            f"{_delta(spread.visible_ms, single.visible_ms if single else None, 'p99')}"
        )
        rows.append(
            [
                str(n),
                vs_colo,
                vs_single,
                _delta(spread.ack_ms, colo.ack_ms if colo else None, "p50"),
                f"{cpu(single)} · {cpu(colo)} · {cpu(spread)}",
            ]
        )
    return rows


# ---------------------------------------------------------------------------- command line


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Scenario (b) against 1..n cowrite instances on one PostgreSQL and one Redis "
        "(all started here), clients placed colocated or spread over the instances.",
    )
    parser.add_argument("--scenario", choices=["b"], default="b", help="only (b) for now")
    parser.add_argument("--instances", default="1,2,3", help="instance counts (default 1,2,3)")
    parser.add_argument(
        "--placements",
        default=",".join(PLACEMENTS),
        help="for more than one instance: colocated, spread or both (default both)",
    )
    parser.add_argument("--clients", type=int, default=300, help="clients (default 300)")
    parser.add_argument("--docs", type=int, default=0, help="documents (default clients/10)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of typing (20)")
    parser.add_argument(
        "--interval-ms", type=float, default=1000.0, help="between keystrokes of one client"
    )
    parser.add_argument("--procs", type=int, default=1, help="load-generator processes (1)")
    parser.add_argument("--drain-timeout", type=float, default=30.0)
    parser.add_argument("--quick", action="store_true", help="60 clients, 4 s: a smoke run")
    parser.add_argument("--json", type=Path, help="also write every result as JSON here")
    parser.add_argument("--from-json", type=Path, help="run nothing: render saved results")
    parser.add_argument(
        "--output", type=Path, help="write the markdown section into this file (between markers)"
    )
    parser.add_argument("--logs", type=Path, help="keep instance and generator logs here")
    parser.add_argument("--notes", type=Path, help="markdown appended to the section")
    parser.add_argument(
        "--nice", type=int, default=-10, help="niceness of the benchmark's processes (-10)"
    )
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    args = parser.parse_args(args_list)
    instances = cmdline.comma_ints(
        parser, "--instances", args.instances, least=1, too_few="at least one instance"
    )
    placements = cmdline.comma_list(args.placements)
    if not placements or any(p not in PLACEMENTS for p in placements):
        parser.error(f"--placements: from {','.join(PLACEMENTS)}")
    if args.from_json:
        results, info, command = load_results(args.from_json, ClusterResult)
        notes = cmdline.read_notes(args.notes)
        section = render_section(results, command=command, info=info, notes=notes)
        print(section)
        if args.output:
            _write(args.output, section)
        return 0
    clients = 60 if args.quick else args.clients
    duration = 4.0 if args.quick else args.duration
    if clients < 2:
        parser.error("--clients: at least 2")
    opts = Options(
        clients=clients,
        docs=args.docs,
        duration_s=duration,
        interval_ms=args.interval_ms,
        procs=max(1, args.procs),
        drain_timeout_s=10.0 if args.quick else args.drain_timeout,
        logdir=args.logs,
    )
    nice = apply_nice(args.nice)
    info = report.machine_info()
    info["benchmark processes"] = nice
    try:
        services = Services.start()
    except ServiceError as exc:
        log(f"cannot start PostgreSQL and Redis: {exc}")
        return 2
    try:
        info["postgresql"] = f"PostgreSQL {services.pg.major} (fsync on)"
        info["redis"] = procstat.command_version([services.redis.binary, "--version"]) or "?"
        results = asyncio.run(run_all(services, plan(instances, placements), opts))
    finally:
        services.close()
    command = cmdline.shown_command(  # the command to reproduce: without local paths
        "python -m benchmarks cluster",
        args_list,
        private=("--json", "--logs", "--output", "--from-json", "--notes"),
    )
    notes = cmdline.read_notes(args.notes)
    section = render_section(results, command=command, info=info, notes=notes)
    print(section)
    if args.json:
        save_results(args.json, info, command, results)
    if args.output:
        _write(args.output, section)
    broken = [
        f"{r.instances}/{r.placement}" for r in results if r.status != "ok" or not r.converged
    ]
    if broken:
        log("failed or incorrect: " + ", ".join(broken))
        return 1
    return 0


def _write(path: Path, section: str) -> None:
    report.write_section(path, section, SECTION_START, SECTION_END)
    log(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
