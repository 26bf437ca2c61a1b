"""The markdown of the Yjs suite (``python -m benchmarks server --yjs``): the section "Yjs:
cowrite vs Hocuspocus and pycrdt-websocket" of ``docs/benchmarks.md``, with issue 11's targets,
which are ratios to Hocuspocus in the same run (``verdicts``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.report import (
    LOAD_COLUMNS,
    fmt_ms,
    load_cells,
    mb,
    pct,
    section_end,
    section_head,
    subsection,
    trio,
    visible_cell,
)
from benchmarks.results import RunResult

SECTION_START = "<!-- yjs-bench:start -->"
SECTION_END = "<!-- yjs-bench:end -->"
REFERENCE = "hocuspocus"
"""The peer the targets are ratios to."""
CPU_RATIO_LIMIT = 1.5

CLIENTS = {
    "hocuspocus": "@hocuspocus/provider",
    "y-websocket": "y-websocket",
    "pycrdt": "pycrdt (Python)",
    "cowrite": "cowrite thin client",
}
LOAD_HEAD = [
    "server",
    "client",
    "clients / docs",
    "edit→ack p50 / p95 / p99 ms",
    "edit→visible p50 / p95 / p99 (max) ms",
    "edits/s · deliveries/s",
    "delivered",
    "converged",
    "server CPU",
    "CPU µs / delivery",
    "peak RSS",
    *LOAD_COLUMNS,
]
IDLE_HEAD = [
    "server",
    "client",
    "connections",
    "RSS before → after",
    "RSS / connection",
    "idle server CPU",
    *LOAD_COLUMNS,
]
METHOD = (
    "How it is measured: one Node load generator (`benchmarks/peers/yjs_load.mjs`: `yjs` "
    "documents through the real providers, awareness on as by default) drives every server "
    "with the same edits (same seeds: the same clients type the same characters at the same "
    "times): `@hocuspocus/provider` against Hocuspocus and cowrite's `/hocuspocus` endpoint "
    "(`cowrite-yjs-hocuspocus`), y-websocket's `WebsocketProvider` against cowrite's "
    "`/yjs/<name>` endpoint (`cowrite-yjs`), y-websocket's own server (`@y/websocket-server`)"
    " and pycrdt-websocket. Each run starts a fresh server; two generator processes once 50 "
    "or more clients type. cowrite is durable (`cowrite serve --data <file>`: SQLite, an "
    "update is fsync'd before its SyncStatus and before it is broadcast); the peers keep "
    "documents in memory. The clients offer WebSocket compression (permessage-deflate) as "
    "browsers do: cowrite (by default: `COWRITE_WS_DEFLATE` off) and the Node servers (`ws`) "
    "refuse it, pycrdt-websocket (uvicorn) accepts it; `-nodeflate` rows refuse it through a "
    "benchmark-side patch as well. **edit→ack** is Hocuspocus' SyncStatus (the y-websocket protocol"
    " has none), **edit→visible** runs from the keystroke until the character is applied at "
    "*every* other client of the document (one machine-wide monotonic clock; keys are Yjs "
    "item ids). *Converged*: at the end every client of a document holds the same text, as "
    "long as everything typed (a count of the clients that differ otherwise), and for cowrite"
    " the server's copy (a fresh y-websocket join) is that text too. *CPU µs / delivery*: "
    "server CPU from the first keystroke until every edit was delivered, divided by the "
    "deliveries (edit, receiving client). CPU is % of one core from `/proc/<pid>/stat`; a "
    "generator at 90 % or more is saturated (noted: its latencies are upper bounds). *Other "
    "load*: CPU used by processes outside the benchmark during the window (the machine is "
    "shared)."
)


def _client(r: RunResult) -> str:
    return CLIENTS.get(r.client, r.client or "?")


def _converged(r: RunResult) -> str:
    if r.converged is None:
        return "–"
    if r.converged:
        return "yes"
    differ = f"{r.mismatched} of {r.connected} clients differ; " if r.mismatched else ""
    return f"**no**: {differ}{r.convergence}"


def _load_rows(runs: Sequence[RunResult]) -> list[list[str]]:
    rows = []
    for r in runs:
        docs = r.describe.split(" on ")[1].split(",")[0] if " on " in r.describe else "?"
        head = [r.server, _client(r), f"{r.clients} / {docs}"]
        if r.status != "ok":
            rows.append([*head, *["–"] * 10, f"{r.status}: {r.reason}"])
            continue
        per = r.cpu_us_per_delivery
        rows.append(
            [
                *head,
                trio(r.ack_ms) if r.ack_ms else "n/a",
                visible_cell(r),
                f"{r.edits_per_s:.0f} · {r.deliveries_per_s:,.0f}",
                f"{r.delivered}/{r.edits}",
                _converged(r),
                pct(r.server_cpu_pct),
                "–" if per is None else f"{per:.1f}",
                mb(r.server_hwm_kb),
                *load_cells(r),
            ]
        )
    return rows


def _idle_rows(runs: Sequence[RunResult]) -> list[list[str]]:
    rows = []
    for r in runs:
        if r.status != "ok":
            rows.append([r.server, _client(r), str(r.clients), *["–"] * 5, r.reason])
            continue
        per = r.rss_per_conn_bytes
        rows.append(
            [
                r.server,
                _client(r),
                f"{r.still_connected}/{r.clients}",
                f"{mb(r.server_rss_kb_start)} → {mb(r.server_rss_kb_end)}",
                "–" if per is None else f"{per / 1000:.1f} kB",
                "–" if r.server_cpu_pct is None else f"{r.server_cpu_pct:.2f} %",
                *load_cells(r, digits=1),
            ]
        )
    return rows


# -------------------------------------------------------------------------------- targets


@dataclass
class Verdict:
    target: str
    server: str
    cowrite: str
    reference: str
    ratio: float | None
    ok: bool | None
    caveat: str = ""

    @property
    def mark(self) -> str:
        return "n/a" if self.ok is None else ("PASS" if self.ok else "MISS")

    def row(self) -> list[str]:
        ratio = "–" if self.ratio is None else f"{self.ratio:.2f}"
        return [
            self.target,
            self.server,
            self.cowrite,
            self.reference,
            ratio,
            self.mark + (f" ({self.caveat})" if self.caveat else ""),
        ]


def complete(r: RunResult) -> bool:
    """Every edit delivered to every other client and every client converged."""
    return bool(r.converged) and r.edits > 0 and r.delivered == r.edits and not r.mismatched


def carried_load(r: RunResult) -> bool:
    """Did the run carry the whole load (its generator neither skipped nor saturated)?"""
    if r.scenario == "c":
        return r.still_connected == r.clients
    few = r.skipped <= 0.01 * max(r.keystrokes, 1)  # a late keystroke or two is noise
    return few and all(v < 90 for v in r.generator_cpu_pct)


def _compare(
    target: str, r: RunResult, ref: RunResult | None, mine: float | None, theirs: float | None,
    limit: float, unit: str, *, correct: bool = True,
) -> Verdict:  # fmt: skip
    """``target``: ``mine`` (cowrite's ``r``) at most ``limit`` times ``theirs`` (``ref``'s)."""
    ratio = None if mine is None or not theirs else mine / theirs

    def fmt(v: float) -> str:
        return fmt_ms(v) if unit == "ms" else f"{v:.1f} {unit}"

    caveat = ""
    if ref is not None and not (carried_load(r) and carried_load(ref)):
        caveat = "not like for like: a generator was saturated or skipped keystrokes"
    if ref is not None and ref.scenario != "c" and not complete(ref):
        caveat = "Hocuspocus' run was incomplete"
    return Verdict(
        target,
        r.server,
        "–" if mine is None else fmt(mine),
        "–" if theirs is None else fmt(theirs),
        ratio,
        None if ratio is None else (ratio <= limit and correct),
        caveat,
    )


def verdicts(results: Sequence[RunResult]) -> list[Verdict]:
    ok = [r for r in results if r.status == "ok"]
    refs = {r.scenario: r for r in ok if r.server == REFERENCE}
    out: list[Verdict] = []
    for r in ok:
        if not (r.server.startswith("cowrite") and r.client != "cowrite"):
            continue
        ref = refs.get(r.scenario)
        group = "(a) 50 clients, one doc" if r.scenario.startswith("a") else f"({r.scenario})"
        if r.scenario == "b":
            group = "(b) 1,000 clients, 100 docs"
        if r.scenario == "c":
            mine = r.rss_per_conn_bytes
            theirs = ref.rss_per_conn_bytes if ref else None
            target = f"(c) {r.clients:,} idle connections: RSS per connection ≤ Hocuspocus'"
            out.append(
                _compare(
                    target,
                    r,
                    ref,
                    None if mine is None else mine / 1000,
                    None if theirs is None else theirs / 1000,
                    1.0,
                    "kB",
                )
            )
            continue
        out.append(
            Verdict(
                f"{group}: every edit delivered, every client converged",
                r.server,
                f"{r.delivered}/{r.edits}, " + ("converged" if complete(r) else "NOT converged"),
                "–" if ref is None else f"{ref.delivered}/{ref.edits}",
                None,
                complete(r),
            )
        )
        vis = r.visible_ms["p99"] if r.visible_ms else None
        ref_vis = ref.visible_ms["p99"] if ref and ref.visible_ms else None
        target = f"{group}: p99 edit→visible ≤ Hocuspocus'"
        out.append(_compare(target, r, ref, vis, ref_vis, 1.0, "ms", correct=complete(r)))
        cpu, ref_cpu = r.cpu_us_per_delivery, ref.cpu_us_per_delivery if ref else None
        target = f"{group}: CPU per delivered update ≤ {CPU_RATIO_LIMIT:g}× Hocuspocus'"
        out.append(_compare(target, r, ref, cpu, ref_cpu, CPU_RATIO_LIMIT, "µs"))
    return out


def _ratio_rows(results: Sequence[RunResult]) -> list[list[str]]:
    """Every cowrite Yjs run against every peer of its scenario."""
    ok = [r for r in results if r.status == "ok"]
    rows = []

    def ratio(a: float | None, b: float | None) -> str:
        return "–" if a is None or not b else f"{a / b:.2f}"

    for r in ok:
        if not r.server.startswith("cowrite"):
            continue
        for peer in ok:
            if peer.scenario != r.scenario or peer.server.startswith("cowrite"):
                continue
            mark = "" if carried_load(r) and carried_load(peer) else " †"
            if r.scenario == "c":
                cells = ["–", "–", ratio(r.rss_per_conn_bytes, peer.rss_per_conn_bytes)]
            else:
                vis = r.visible_ms["p99"] if r.visible_ms else None
                pvis = peer.visible_ms["p99"] if peer.visible_ms else None
                cells = [
                    ratio(vis, pvis),
                    ratio(r.cpu_us_per_delivery, peer.cpu_us_per_delivery),
                    ratio(
                        None if r.server_hwm_kb is None else float(r.server_hwm_kb),
                        None if peer.server_hwm_kb is None else float(peer.server_hwm_kb),
                    ),
                ]
            rows.append([r.scenario, f"{r.server} ÷ {peer.server}{mark}", *cells])
    return rows


# -------------------------------------------------------------------------------- section


def _load_line(results: Sequence[RunResult]) -> list[str]:
    """The machine's load while the runs ran (it is shared): load averages and times."""
    loads = [r.load_before[0] for r in results if r.load_before]
    others = [r.other_cpu_pct for r in results if r.other_cpu_pct is not None]
    times = sorted(r.started for r in results if r.started)
    if not loads:
        return []
    line = (
        f"Machine load: runs from {times[0]} to {times[-1]}; 1-minute load average at the start "
        f"of each run {min(loads):.1f}–{max(loads):.1f} ({os.cpu_count()} CPUs)"
    )
    if others:
        line += f"; CPU used by other processes during the windows {min(others):.0f}–"
        line += f"{max(others):.0f} % of a core"
    return [line + ".", ""]


def render_section(
    results: Sequence[RunResult],
    *,
    command: str,
    info: dict[str, str],
    quick: bool,
    notes: str = "",
) -> str:
    remark = " (**--quick: short smoke run, not the benchmark**)" if quick else ""
    results = sorted(results, key=lambda r: "abc".find(r.scenario[:1]))  # stable: run order
    title = "## Yjs: cowrite vs Hocuspocus and pycrdt-websocket"
    out = section_head(SECTION_START, title, command, info, remark)
    out += [METHOD, ""]
    out += _load_line(results)
    groups = [
        ("a", "(a) one document, clients typing 5 characters/s each"),
        ("b", "(b) many documents, one character/s per client"),
        ("c", "(c) idle Yjs connections"),
    ]
    for group, heading in groups:
        runs = [r for r in results if r.scenario.startswith(group)]
        if runs:
            idle = group == "c"
            head, rows = (IDLE_HEAD, _idle_rows(runs)) if idle else (LOAD_HEAD, _load_rows(runs))
            out.extend(subsection(heading, head, rows))
    vs = verdicts(results)
    if vs:
        head = ["target", "server", "cowrite", "Hocuspocus", "ratio", ""]
        out.extend(subsection("Targets (issue 11)", head, [v.row() for v in vs]))
    ratio_rows = _ratio_rows(results)
    if ratio_rows:
        head = ["scenario", "ratio", "p99 edit→visible", "CPU / delivery", "RSS (c: per conn)"]
        out.extend(subsection("cowrite ÷ peer (below 1: cowrite is better)", head, ratio_rows))
        if any("†" in row[1] for row in ratio_rows):
            out.append(
                "† not like for like: one of the two runs' generators skipped keystrokes or "
                "was saturated, so that run carried less load than the other."
            )
            out.append("")
    return section_end(out, notes, SECTION_END)
