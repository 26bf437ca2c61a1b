"""Engine benchmark: replay every editing trace through three contenders (``str``, ``pycrdt``,
``cowrite``) and write the results into ``docs/benchmarks.md``.

This module loads the traces, orchestrates the runs and holds the command line. The contenders
themselves live in ``benchmarks.trace_peers``, the markdown report in
``benchmarks.trace_report``; the names other code and the tests use are re-exported here.

Every measurement runs in a fresh subprocess (``python -m benchmarks.traces --worker ...``) so
that memory and warm-up are not shared. Each (trace, contender) pair is timed ``repeat`` times and
the median is reported; heap memory is measured in one extra run under ``tracemalloc`` (which
slows Python code down, so it never overlaps with a timing run).

Run ``python -m benchmarks traces --help`` (or ``benchmarks/run_traces.py``) for the options.
"""

from __future__ import annotations

import argparse
import gc
import gzip
import importlib.util
import json
import os
import shlex
import statistics
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks import child_env
from benchmarks.trace_peers import (
    NotApplicableError,
    Probe,
    UnavailableError,
    Utf8Offsets,
    count_edits,
    is_ascii_trace,
    replay_cowrite,
    replay_pycrdt,
    replay_str,
    trace_kind,
)
from benchmarks.trace_report import (
    SECTION_END,
    SECTION_START,
    Cell,
    TraceResult,
    fmt_bytes,
    machine_info,
    render_section,
    replace_section,
    repo_root,
    write_section,
)

__all__ = [
    "CONTENDERS",
    "RESULT_PREFIX",
    "SECTION_END",
    "SECTION_START",
    "Cell",
    "RunResult",
    "TraceResult",
    "Utf8Offsets",
    "aggregate",
    "benchmark_trace",
    "build_parser",
    "contender_available",
    "count_edits",
    "default_traces_dir",
    "find_traces",
    "is_ascii_trace",
    "load_trace",
    "main",
    "render_section",
    "replace_section",
    "run_contender",
    "spawn_run",
    "trace_kind",
    "trace_name",
    "write_section",
]

CONTENDERS: tuple[str, ...] = ("str", "pycrdt", "cowrite")
RESULT_PREFIX = "COWRITE-BENCH-RESULT "


# --------------------------------------------------------------------------------------------
# Trace files


def load_trace(path: str | Path) -> dict[str, Any]:
    """Parse a trace file (``.json`` or ``.json.gz``)."""
    p = Path(path)
    if p.name.endswith(".gz"):
        with gzip.open(p, "rt", encoding="utf-8") as fh:
            data = json.load(fh)
    else:
        with p.open(encoding="utf-8") as fh:
            data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{p}: a trace must be a JSON object")
    return data


def trace_name(path: Path) -> str:
    """``automerge-paper.json.gz`` -> ``automerge-paper``."""
    name = path.name
    for suffix in (".json.gz", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_traces(directory: Path) -> list[Path]:
    """Every ``*.json`` / ``*.json.gz`` trace in ``directory``, sorted by name."""
    files = [
        p
        for p in directory.iterdir()
        if p.is_file() and (p.name.endswith(".json.gz") or p.name.endswith(".json"))
    ]
    return sorted(files, key=trace_name)


# --------------------------------------------------------------------------------------------
# One run's result (what a worker prints, as JSON, for the orchestrator)


@dataclass
class RunResult:
    """One worker run of one contender on one trace."""

    trace: str
    contender: str
    mode: str  # "time" | "memory"
    status: str  # "done" | "n/a" | "unavailable" | "error"
    kind: str = ""
    edits: int = 0
    seconds: float = 0.0
    ok: bool = False
    encoded_bytes: int = 0
    prep_seconds: float = 0.0
    heap_peak_bytes: int | None = None
    rss_delta_bytes: int | None = None
    rss_method: str = ""
    detail: str = ""


# --------------------------------------------------------------------------------------------
# In-process entry point (used by the worker and by the tests)


def run_contender(
    contender: str, trace: dict[str, Any], name: str, *, mode: str = "time"
) -> RunResult:
    """Replay ``trace`` with one contender in this process.

    ``mode="time"`` measures wall time and peak RSS; ``mode="memory"`` runs under tracemalloc
    (for pycrdt, whose heap lives in Rust, tracemalloc would see almost nothing: that run
    reports no heap figure).
    """
    if contender not in CONTENDERS:
        raise ValueError(f"unknown contender {contender!r}")
    if mode not in ("time", "memory"):
        raise ValueError(f"unknown mode {mode!r}")
    result = RunResult(trace=name, contender=contender, mode=mode, status="done")
    result.kind = trace_kind(trace)
    # pycrdt: tracemalloc cannot see the Rust heap; cowrite: replay_trace runs tracemalloc itself.
    probe = Probe(heap=mode == "memory" and contender == "str")
    try:
        if contender == "str":
            outcome = replay_str(trace, probe)
        elif contender == "pycrdt":
            outcome = replay_pycrdt(trace, probe)
        else:
            outcome = replay_cowrite(trace, name, probe, measure_memory=mode == "memory")
    except NotApplicableError as exc:
        result.status, result.detail = "n/a", str(exc)
        return result
    except UnavailableError as exc:
        result.status, result.detail = "unavailable", str(exc)
        return result
    result.edits = outcome.edits
    result.ok = outcome.ok
    result.encoded_bytes = outcome.encoded_bytes
    result.prep_seconds = outcome.prep_seconds
    result.seconds = outcome.seconds if outcome.seconds is not None else probe.seconds
    result.heap_peak_bytes = (
        outcome.heap_peak_bytes if outcome.heap_peak_bytes is not None else probe.heap_peak_bytes
    )
    result.rss_delta_bytes = probe.rss_delta_bytes
    result.rss_method = probe.rss_method
    result.detail = outcome.detail
    return result


def _worker(contender: str, mode: str, path: Path) -> int:
    name = trace_name(path)
    try:
        trace = load_trace(path)
        result = run_contender(contender, trace, name, mode=mode)
    except Exception as exc:
        result = RunResult(
            trace=name,
            contender=contender,
            mode=mode,
            status="error",
            detail=f"{type(exc).__name__}: {exc}",
        )
    sys.stdout.write(RESULT_PREFIX + json.dumps(asdict(result)) + "\n")
    sys.stdout.flush()
    return 0


# --------------------------------------------------------------------------------------------
# Orchestration: fresh subprocess per run


def default_traces_dir() -> Path:
    env = os.environ.get("COWRITE_TRACES")
    if env:
        return Path(env)
    return (repo_root() / ".." / "shared" / "traces").resolve()


def spawn_run(contender: str, mode: str, path: Path, *, timeout: float) -> RunResult:
    """Run one measurement in a fresh interpreter and parse its result line."""
    env = child_env()
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.traces",
        "--worker",
        contender,
        "--mode",
        mode,
        "--trace-file",
        str(path),
    ]
    name = trace_name(path)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        return RunResult(name, contender, mode, "error", detail=f"timed out after {timeout:g} s")
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX) :])
            return RunResult(**data)
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return RunResult(
        name, contender, mode, "error", detail=f"worker exited {proc.returncode}: {tail}"
    )


def aggregate(contender: str, timed: list[RunResult], memory: RunResult | None) -> Cell:
    """Fold the timing runs (median) and the memory run of one contender into a ``Cell``."""
    bad = [r for r in timed if r.status != "done"]
    if bad:
        return Cell(contender, bad[0].status, detail=bad[0].detail)
    times = [r.seconds for r in timed]
    rss = [r.rss_delta_bytes for r in timed if r.rss_delta_bytes is not None]
    cell = Cell(
        contender=contender,
        status="done",
        edits=timed[0].edits,
        seconds=statistics.median(times),
        runs=times,
        ok=all(r.ok for r in timed) and len({r.edits for r in timed}) == 1,
        encoded_bytes=timed[0].encoded_bytes,
        rss_delta_bytes=max(rss) if rss else None,
        rss_method=timed[0].rss_method,
        prep_seconds=statistics.median(r.prep_seconds for r in timed),
        detail=timed[0].detail,
    )
    if memory is not None:
        if memory.status == "done":
            cell.heap_peak_bytes = memory.heap_peak_bytes
            cell.ok = cell.ok and memory.ok
        else:
            cell.detail = (cell.detail + "; " if cell.detail else "") + (
                f"memory run {memory.status}: {memory.detail}"
            )
    return cell


def contender_available(contender: str) -> str | None:
    """None if the contender can run, else why not."""
    if contender == "pycrdt" and importlib.util.find_spec("pycrdt") is None:
        return "pycrdt is not installed (uv sync --all-extras)"
    if contender == "cowrite":
        try:
            spec = importlib.util.find_spec("cowrite.replay")
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return "cowrite.replay is not available"
    return None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def benchmark_trace(
    path: Path, contenders: Sequence[str], *, repeat: int, timeout: float
) -> TraceResult:
    trace = load_trace(path)
    result = TraceResult(
        name=trace_name(path),
        kind=trace_kind(trace),
        edits=count_edits(trace),
        ascii_only=is_ascii_trace(trace),
        end_chars=len(trace["endContent"]),
    )
    del trace
    gc.collect()
    for contender in contenders:
        if contender == "str" and result.kind == "concurrent":
            result.cells[contender] = Cell(contender, "n/a", detail="sequential traces only")
            continue
        why_not = contender_available(contender)
        if why_not is not None:
            result.cells[contender] = Cell(contender, "unavailable", detail=why_not)
            _log(f"{result.name} / {contender}: unavailable ({why_not})")
            continue
        timed: list[RunResult] = []
        for k in range(repeat):
            run = spawn_run(contender, "time", path, timeout=timeout)
            timed.append(run)
            if run.status != "done":
                _log(f"{result.name} / {contender}: {run.status}: {run.detail}")
                break
            _log(
                f"{result.name} / {contender} run {k + 1}/{repeat}: {run.seconds:.3f} s, "
                f"ok={run.ok}, edits={run.edits}"
            )
        memory: RunResult | None = None
        if all(r.status == "done" for r in timed) and contender != "pycrdt":
            memory = spawn_run(contender, "memory", path, timeout=timeout)
            _log(
                f"{result.name} / {contender} tracemalloc run: "
                + (
                    fmt_bytes(memory.heap_peak_bytes)
                    if memory.status == "done"
                    else f"{memory.status}: {memory.detail}"
                )
            )
        result.cells[contender] = aggregate(contender, timed, memory)
    return result


# --------------------------------------------------------------------------------------------
# Command line


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Benchmark trace replay: plain str vs pycrdt vs cowrite.",
    )
    parser.add_argument(
        "--traces",
        type=Path,
        default=None,
        help="directory of traces (default: $COWRITE_TRACES or ../shared/traces next to the repo)",
    )
    parser.add_argument("--repeat", type=int, default=3, help="timing runs per pair (median)")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="NAME",
        help="benchmark only this trace (repeatable), e.g. automerge-paper",
    )
    parser.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="comma-separated subset of: " + ",".join(CONTENDERS),
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=None,
        help="markdown file to update (default: docs/benchmarks.md in the repo)",
    )
    parser.add_argument("--no-write", action="store_true", help="print the section only")
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds per worker run (default 3600)"
    )
    parser.add_argument(
        "--doc-ops",
        action="store_true",
        help="measure load, save, delta, merge and memory of the final document, and concurrent"
        " replay over encoded bytes, cowrite vs pycrdt in one process (default traces:"
        " automerge-paper and clownschool); prints a table, writes nothing",
    )
    parser.add_argument(
        "--cpu",
        action="store_true",
        help="with --doc-ops: time with the process's CPU time, best of --repeat (steadier than"
        " wall-clock medians on a shared machine)",
    )
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument(
        "--mode", choices=("time", "memory"), default="time", help=argparse.SUPPRESS
    )
    parser.add_argument("--trace-file", type=Path, help=argparse.SUPPRESS)
    return parser


def main(argv: Sequence[str] | None = None, *, prog: str | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(prog)
    args = parser.parse_args(args_list)
    if args.worker:
        if args.trace_file is None:
            parser.error("--worker needs --trace-file")
        return _worker(args.worker, args.mode, args.trace_file)

    contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = [c for c in contenders if c not in CONTENDERS]
    if unknown or not contenders:
        parser.error(f"--contenders: unknown {unknown}; choose from {','.join(CONTENDERS)}")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    traces_dir: Path = args.traces or default_traces_dir()
    if not traces_dir.is_dir():
        parser.error(f"trace directory not found: {traces_dir} (use --traces or COWRITE_TRACES)")
    paths = find_traces(traces_dir)
    if args.only:
        by_name = {trace_name(p): p for p in paths}
        missing = [n for n in args.only if n not in by_name]
        if missing:
            parser.error(f"--only: no such trace {missing}; available: {sorted(by_name)}")
        paths = [by_name[n] for n in dict.fromkeys(args.only)]
    if not paths:
        parser.error(f"no traces (*.json, *.json.gz) in {traces_dir}")
    if args.doc_ops:
        from benchmarks.trace_docops import DEFAULT_TRACES, run_doc_ops

        if not args.only:
            paths = [p for p in paths if trace_name(p) in DEFAULT_TRACES]
        print(run_doc_ops(paths, args.repeat, with_pycrdt="pycrdt" in contenders, cpu=args.cpu))
        return 0

    results = [
        benchmark_trace(p, contenders, repeat=args.repeat, timeout=args.timeout) for p in paths
    ]
    shown = [a for a in args_list if a != "--no-write"]
    command = ".venv/bin/python benchmarks/run_traces.py" + (
        " " + shlex.join(shown) if shown else ""
    )
    section = render_section(results, repeat=args.repeat, command=command, info=machine_info())
    print(section)
    if not args.no_write:
        output: Path = args.output or (repo_root() / "docs" / "benchmarks.md")
        write_section(output, section)
        _log(f"wrote {output}")
    failed = [
        f"{r.name}/{c.contender}"
        for r in results
        for c in r.cells.values()
        if c.status == "error" or (c.status == "done" and not c.ok)
    ]
    if failed:
        _log("incorrect or failed: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
