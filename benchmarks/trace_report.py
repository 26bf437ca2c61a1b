"""The markdown report of the trace-replay benchmark: the ``Engine: trace replay`` section.

Split out of ``benchmarks.traces`` so that rendering (formatting, targets, tables, machine
info, updating the section in place) is apart from running the measurements. It also defines
the aggregated result types it renders, which ``traces`` builds.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.trace_peers import pycrdt_version
from cowrite.engine import engine_build

SECTION_START = "<!-- engine-traces:start -->"
SECTION_END = "<!-- engine-traces:end -->"
PRIMARY_TRACE = "automerge-paper"

# Targets, checked against numbers from the same run.
TARGET_PYCRDT_RATIO_PRIMARY = 0.4
TARGET_PYCRDT_RATIO_OTHER = 1.0
TARGET_STR_RATIO_PRIMARY = 2.5
TARGET_MEMORY_BYTES = 20_000_000  # 20 MB (decimal)
TARGET_ENCODED_BYTES = 150_000  # 150 kB (decimal)


# --------------------------------------------------------------------------------------------
# The checkout (whose commit the report names, and whose docs/benchmarks.md it updates)


def repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


# --------------------------------------------------------------------------------------------
# Aggregated results (built by benchmarks.traces, rendered here)


@dataclass
class Cell:
    """Aggregated result of one contender on one trace."""

    contender: str
    status: str
    edits: int = 0
    seconds: float | None = None  # median
    runs: list[float] = field(default_factory=list)
    ok: bool = False
    encoded_bytes: int | None = None
    heap_peak_bytes: int | None = None
    rss_delta_bytes: int | None = None
    rss_method: str = ""
    prep_seconds: float = 0.0
    detail: str = ""

    @property
    def edits_per_second(self) -> float | None:
        if not self.seconds:
            return None
        return self.edits / self.seconds


@dataclass
class TraceResult:
    name: str
    kind: str
    edits: int
    ascii_only: bool
    end_chars: int
    cells: dict[str, Cell] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Markdown report


def _fmt_seconds(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:.0f} s"
    if value >= 10:
        return f"{value:.1f} s"
    if value >= 0.1:
        return f"{value:.2f} s"
    return f"{value * 1000:.1f} ms"


def fmt_bytes(value: int | None) -> str:
    if value is None:
        return "–"
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f} MB"
    if value >= 1_000:
        return f"{value / 1_000:.1f} kB"
    return f"{value} B"


def _fmt_rate(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f}"


def _ratio(cells: dict[str, Cell], num: str, den: str) -> float | None:
    a, b = cells.get(num), cells.get(den)
    if a is None or b is None or a.seconds is None or not b.seconds:
        return None
    return a.seconds / b.seconds


def _mark(value: float | None, threshold: float, *, valid: bool) -> str:
    if value is None:
        return "n/a"
    if not valid:
        return "MISS (wrong result)"
    return "PASS" if value <= threshold else "MISS"


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {
        "cpu": f"{cpu} ({os.cpu_count()} logical CPUs)",
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "pycrdt": pycrdt_version() or "not installed",
        "engine": engine_build(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    try:
        from cowrite import __version__ as cowrite_version

        info["cowrite"] = cowrite_version
    except ImportError:  # pragma: no cover - the package is importable if we run
        info["cowrite"] = "?"
    commit = _git_commit()
    if commit:
        info["cowrite"] += f" (commit {commit})"
    return info


def _git_commit() -> str | None:
    """Short commit of the checkout, '+dirty' if modified. Read-only: never takes the index lock."""
    root = repo_root()
    if not (root / ".git").exists():
        return None
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "--no-optional-locks", "-C", str(root), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def _target_rows(results: Sequence[TraceResult]) -> Iterator[list[str]]:
    for res in results:
        cells = res.cells
        cw = cells.get("cowrite")
        primary = res.name == PRIMARY_TRACE
        if "cowrite" in cells and "pycrdt" in cells:
            ratio = _ratio(cells, "cowrite", "pycrdt")
            threshold = TARGET_PYCRDT_RATIO_PRIMARY if primary else TARGET_PYCRDT_RATIO_OTHER
            valid = bool(cw and cw.ok and cells["pycrdt"].ok)
            yield [
                "time cowrite / pycrdt",
                res.name,
                "–" if ratio is None else f"{ratio:.2f}",
                f"≤ {threshold}",
                _mark(ratio, threshold, valid=valid),
            ]
        if primary and "cowrite" in cells and "str" in cells:
            ratio = _ratio(cells, "cowrite", "str")
            valid = bool(cw and cw.ok and cells["str"].ok)
            yield [
                "time cowrite / str",
                res.name,
                "–" if ratio is None else f"{ratio:.2f}",
                f"≤ {TARGET_STR_RATIO_PRIMARY}",
                _mark(ratio, TARGET_STR_RATIO_PRIMARY, valid=valid),
            ]
        if primary and cw is not None:
            heap = cw.heap_peak_bytes
            yield [
                "cowrite peak memory (tracemalloc)",
                res.name,
                fmt_bytes(heap),
                f"≤ {fmt_bytes(TARGET_MEMORY_BYTES)}",
                _mark(None if heap is None else float(heap), TARGET_MEMORY_BYTES, valid=cw.ok),
            ]
            enc = cw.encoded_bytes if cw.status == "done" else None
            yield [
                "cowrite encoded size (full history)",
                res.name,
                fmt_bytes(enc),
                f"≤ {fmt_bytes(TARGET_ENCODED_BYTES)}",
                _mark(None if enc is None else float(enc), TARGET_ENCODED_BYTES, valid=cw.ok),
            ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _cell_row(cell: Cell) -> list[str]:
    if cell.status != "done":
        return [f"`{cell.contender}`", cell.status, "–", "–", "–", "–", "–", "–", cell.detail]
    heap = fmt_bytes(cell.heap_peak_bytes)
    if cell.contender == "pycrdt":
        heap = "n/a (Rust heap)"
    notes = []
    if cell.detail:
        notes.append(cell.detail)
    if cell.prep_seconds >= 0.0005:
        notes.append(f"untimed prep {_fmt_seconds(cell.prep_seconds)}")
    return [
        f"`{cell.contender}`",
        "yes" if cell.ok else "**NO**",
        _fmt_seconds(cell.seconds),
        _fmt_rate(cell.edits_per_second),
        ", ".join(f"{t:.4g}" for t in cell.runs),
        heap,
        fmt_bytes(cell.rss_delta_bytes),
        fmt_bytes(cell.encoded_bytes),
        "; ".join(notes),
    ]


def render_section(
    results: Sequence[TraceResult], *, repeat: int, command: str, info: dict[str, str]
) -> str:
    """The whole ``Engine: trace replay`` section, delimited by its HTML comment markers."""
    out = [
        SECTION_START,
        "## Engine: trace replay",
        "",
        "Generated by `benchmarks.traces` — do not edit by hand; rerun the command below.",
        "",
        f"- **Date:** {info['date']}",
        f"- **CPU:** {info['cpu']}; {info['os']}",
        f"- **Python:** {info['python']} · **pycrdt:** {info['pycrdt']} · "
        f"**cowrite:** {info['cowrite']} · **engine:** {info.get('engine', '?')}",
        f"- **Runs:** every number comes from a fresh subprocess; time = median of {repeat} "
        "run(s); heap memory from one extra tracemalloc run.",
        "",
        "### Targets (ratios from this run)",
        "",
    ]
    target_rows = list(_target_rows(results))
    if target_rows:
        out += _table(["target", "trace", "measured", "threshold", "result"], target_rows)
    else:
        out.append("No target could be evaluated (cowrite or its peers were not run).")
    header = [
        "contender",
        "ok",
        "median time",
        "edits/s",
        "runs (s)",
        "peak heap (tracemalloc)",
        "peak RSS delta",
        "encoded size",
        "notes",
    ]
    for res in results:
        text_kind = "ASCII" if res.ascii_only else "non-ASCII"
        out += [
            "",
            f"### {res.name}",
            "",
            f"{res.kind}, {res.edits:,} edits, {res.end_chars:,} chars at the end ({text_kind}).",
            "",
        ]
        out += _table(header, [_cell_row(cell) for cell in res.cells.values()])
        ratios = []
        for den in ("pycrdt", "str"):
            r = _ratio(res.cells, "cowrite", den)
            if r is not None:
                ratios.append(f"cowrite/{den} time = {r:.2f}")
        if ratios:
            out += ["", "Ratios: " + ", ".join(ratios) + "."]
    out += [
        "",
        "### Method",
        "",
        "- **Timed region.** Only the replay: loading and parsing the JSON is excluded for "
        "every contender. `cowrite` reports its own replay time (`ReplayReport.seconds`). "
        "`pycrdt` timing includes creating the Doc(s) (after an untimed warm-up Doc that pays "
        "pycrdt's one-time process initialisation, ~20 ms); for concurrent traces it also includes "
        "the causal bookkeeping, applying the recorded updates between agent docs and the final "
        "merge. Verifying the final text and encoding the document are not timed.",
        "- **`str`.** `s = s[:pos] + ins + s[pos + d:]` for every patch; sequential traces "
        "only (it cannot merge concurrent branches).",
        "- **`pycrdt`.** Public API (`del text[a:b]`, `text.insert(i, s)`), one "
        "`doc.transaction()` per trace transaction, deletes before inserts within a patch. "
        "pycrdt counts `Text` positions in UTF-8 bytes while traces count code points: on "
        "all-ASCII traces positions are passed through unchanged; on sequential non-ASCII "
        "traces the byte offsets are computed in an *untimed* pre-pass (shown as 'untimed "
        "prep'), which favours pycrdt; on concurrent non-ASCII traces the conversion runs "
        "inside the timed region (it needs the merged state). Concurrent traces: one Doc per "
        "agent; before applying transaction *i* the agent's Doc receives the recorded updates "
        "(from `Doc.observe`) of exactly the transactions in the causal closure of *i*'s "
        "parents that it lacks; at the end all agent Docs are merged into one Doc, which is "
        "checked and encoded.",
        "- **Peak heap (tracemalloc).** Peak of Python allocations made during the replay "
        "(the loaded trace is not counted), from a separate run with tracemalloc on. "
        "For `cowrite` this is `ReplayReport.peak_memory_bytes`. Not meaningful for `pycrdt`: "
        "its document lives in Rust memory that tracemalloc does not see.",
        "- **Peak RSS delta.** From the timing runs (no tracemalloc): Linux `VmHWM` after the "
        "replay minus `VmRSS` before it, with the high-water mark reset through "
        "`/proc/self/clear_refs` just before the replay (fallback: `ru_maxrss` delta, a lower "
        "bound). Maximum over the runs. Includes Rust and C allocations. Before the baseline "
        "is read, `gc.collect()` and glibc `malloc_trim(0)` hand memory freed after loading "
        "the trace back to the OS; pages pymalloc still holds can be reused without showing "
        "up, so small deltas under-count. This is the comparable column for `pycrdt`. For "
        "`cowrite` the window also covers encoding the final full-history document and "
        "loading it back into a fresh replica (the round-trip check, done after the timer): "
        "on automerge-paper that is a transient ~40 MB, while the replay alone adds ~8 MB "
        "(`VmRSS` before and after, measured separately).",
        "- **Encoded size.** `str`: UTF-8 length of the final text (no history). `pycrdt`: "
        "`len(doc.get_update())`, the full-history Yjs v1 update. `cowrite`: "
        "`ReplayReport.encoded_bytes`.",
        "- **Units.** kB = 1,000 bytes, MB = 1,000,000 bytes (the targets use the same units).",
        "",
        "### Reproduce",
        "",
        "```sh",
        command,
        "```",
        SECTION_END,
    ]
    return "\n".join(out) + "\n"


def replace_section(document: str, section: str) -> str:
    """Replace the delimited engine-traces section of ``document`` (or append it)."""
    section = section.rstrip("\n")
    start = document.find(SECTION_START)
    end = document.find(SECTION_END, start + len(SECTION_START)) if start >= 0 else -1
    if start >= 0 and end >= 0:
        return document[:start] + section + document[end + len(SECTION_END) :]
    if not document.strip():
        return "# Benchmarks\n\n" + section + "\n"
    return document.rstrip("\n") + "\n\n" + section + "\n"


def write_section(path: Path, section: str) -> None:
    existing = path.read_text(encoding="utf-8") if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(existing, section), encoding="utf-8")
