"""Markdown of the load benchmarks (``benchmarks.server``, ``benchmarks.cluster``).

Number formats and tables, the cells every run's row has (edit->visible, delivery, the
generator's load, notes), the progress line of a run, the machine the run was on, and the
marked section of ``docs/benchmarks.md`` each benchmark owns (``section_head`` ...
``section_end``, put in place by ``replace_section``).
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import math
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from benchmarks import procstat
from benchmarks.results import RunResult

# --------------------------------------------------------------------------------- numbers


def fmt_ms(v: float | None) -> str:
    if v is None or math.isnan(v):
        return "–"
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


def trio(d: dict[str, float] | None) -> str:
    """``p50 / p95 / p99`` of a latency distribution (``results.dist``)."""
    if not d:
        return "–"
    return " / ".join(fmt_ms(d[k]) for k in ("p50", "p95", "p99"))


def mb(kb: int | None) -> str:
    return "–" if kb is None else f"{kb / 1024:.0f} MiB"


def pct(v: float | None) -> str:
    return "–" if v is None else f"{v:.0f} %"


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def subsection(title: str, head: list[str], rows: list[list[str]]) -> list[str]:
    """``### title`` over a table, each followed by a blank line."""
    return [f"### {title}", "", *table(head, rows), ""]


# ------------------------------------------------------------------------------------ runs


def visible_cell(r: RunResult) -> str:
    """edit->visible p50 / p95 / p99 (max)."""
    vis = trio(r.visible_ms)
    if r.visible_ms:
        vis += f" ({fmt_ms(r.visible_ms['max'])})"
    return vis


DELIVERY_COLUMNS = ("edits/s · deliveries/s", "delivered", "converged")
LOAD_COLUMNS = ("generator CPU", "other load", "notes")


def delivery_cells(r: RunResult) -> list[str]:
    """The ``DELIVERY_COLUMNS`` of a run's row."""
    return [
        f"{r.edits_per_s:.0f} · {r.deliveries_per_s:,.0f}",
        f"{r.delivered}/{r.edits}",
        "yes" if r.converged else f"**no**: {r.convergence}",
    ]


def load_cells(r: RunResult, digits: int = 0) -> list[str]:
    """The ``LOAD_COLUMNS`` of a run's row (generator CPU: each process's), its last cells."""
    generators = "+".join(f"{v:.{digits}f}" for v in r.generator_cpu_pct) + " %"
    return [generators, pct(r.other_cpu_pct), run_notes(r)]


def run_notes(r: RunResult) -> str:
    """What to keep in mind about a run's numbers (generator behind or saturated, errors...)."""
    notes = []
    if r.lag_p99_ms is not None and r.lag_p99_ms > 20:
        notes.append(f"generator behind schedule (p99 {r.lag_p99_ms:.0f} ms)")
    if r.generator_gc_max_ms is not None and r.generator_gc_max_ms >= 10:
        total = "+".join(f"{v:.0f}" for v in r.generator_gc_ms)
        notes.append(f"generator GC pauses {total} ms (longest {r.generator_gc_max_ms:.0f} ms)")
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


def one_line(r: RunResult, details: Sequence[str]) -> str:
    """A run for the progress log: connections, latencies, ``details``, errors (or why it
    did not run)."""
    if r.status != "ok":
        return f"{r.status}: {r.reason}"
    parts = [f"connected {r.connected}/{r.clients}"]
    if r.ack_ms:
        parts.append(f"ack p50/p99 {r.ack_ms['p50']:.1f}/{r.ack_ms['p99']:.1f} ms")
    if r.visible_ms:
        parts.append(f"visible p50/p99 {r.visible_ms['p50']:.1f}/{r.visible_ms['p99']:.1f} ms")
    parts.extend(details)
    if r.errors:
        parts.append(f"errors {sum(r.errors.values())}")
    return ", ".join(parts)


# --------------------------------------------------------------------------------- context


def machine_info() -> dict[str, str]:
    """CPU, memory, OS, Python and the Python packages the servers and clients run on."""
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
    return info


# --------------------------------------------------------------------------------- section


def section_head(
    start: str, title: str, command: str, info: dict[str, str], remark: str = ""
) -> list[str]:
    """The first lines of a section: its start marker, ``title``, the command that made it
    (``remark`` after it) and the machine."""
    return [
        start,
        title,
        "",
        f"Generated by `{command}`{remark} on {info.get('date', '?')}.",
        "",
        "Machine: " + "; ".join(f"{k}: {v}" for k, v in info.items() if k != "date") + ".",
        "",
    ]


def section_end(out: list[str], notes: str, end: str) -> str:
    """The section: ``out``, then ``notes`` (markdown: findings of this run) and the end
    marker."""
    if notes.strip():
        out.append(notes.strip())
        out.append("")
    out.append(end)
    return "\n".join(out) + "\n"


def replace_section(existing: str, section: str, start: str, end: str) -> str:
    """Put ``section`` between the markers ``start`` and ``end``, or append it when they are
    missing."""
    first = existing.find(start)
    last = existing.find(end)
    if first != -1 and last != -1 and last > first:
        return existing[:first] + section.rstrip("\n") + existing[last + len(end) :]
    if existing and not existing.endswith("\n"):
        existing += "\n"
    return existing + ("\n" if existing else "") + section


def write_section(path: Path, section: str, start: str, end: str, *, empty: str = "") -> None:
    """``replace_section`` in the file at ``path`` (``empty``: its text if it does not exist)."""
    existing = path.read_text(encoding="utf-8") if path.exists() else empty
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(existing, section, start, end), encoding="utf-8")
