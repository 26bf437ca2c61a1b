"""Engine benchmark: replay every editing trace through three contenders.

Contenders
----------
``str``
    Plain Python ``str`` slicing (``s = s[:pos] + ins + s[pos + d:]``): the floor for a
    non-collaborative editor. Sequential traces only.
``pycrdt``
    The peer: Yrs (Rust) through its Python bindings. One ``Doc`` with one ``Text``, one
    transaction per trace transaction. Concurrent traces use one ``Doc`` per agent, synchronised
    with the recorded pycrdt updates exactly as the causal graph says.
``cowrite``
    ``cowrite.replay.replay_trace``.

Every measurement runs in a fresh subprocess (``python -m cowrite.bench.traces --worker ...``) so
that memory and warm-up are not shared. Each (trace, contender) pair is timed ``repeat`` times and
the median is reported; heap memory is measured in one extra run under ``tracemalloc`` (which
slows Python code down, so it never overlaps with a timing run).

Run ``python -m cowrite.bench.traces --help`` (or ``benchmarks/run_traces.py``) for the options.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as _dt
import gc
import gzip
import importlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

CONTENDERS: tuple[str, ...] = ("str", "pycrdt", "cowrite")
SECTION_START = "<!-- engine-traces:start -->"
SECTION_END = "<!-- engine-traces:end -->"
RESULT_PREFIX = "COWRITE-BENCH-RESULT "
PRIMARY_TRACE = "automerge-paper"

# Targets, checked against numbers from the same run.
TARGET_PYCRDT_RATIO_PRIMARY = 0.4
TARGET_PYCRDT_RATIO_OTHER = 1.0
TARGET_STR_RATIO_PRIMARY = 2.5
TARGET_MEMORY_BYTES = 20_000_000  # 20 MB (decimal)
TARGET_ENCODED_BYTES = 150_000  # 150 kB (decimal)


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


def trace_kind(trace: dict[str, Any]) -> str:
    return "concurrent" if trace.get("kind") == "concurrent" else "sequential"


def count_edits(trace: dict[str, Any]) -> int:
    return sum(len(txn["patches"]) for txn in trace["txns"])


def is_ascii_trace(trace: dict[str, Any]) -> bool:
    """True if no inserted text (nor the start content) contains a non-ASCII code point.

    Then code-point positions equal UTF-8 byte positions in every reachable document state.
    """
    if not str(trace.get("startContent", "")).isascii():
        return False
    return all(ins.isascii() for txn in trace["txns"] for _pos, _d, ins in txn["patches"])


# --------------------------------------------------------------------------------------------
# Code points -> UTF-8 byte offsets (pycrdt counts Text positions in UTF-8 bytes)

_NON_ASCII = re.compile("[^\x00-\x7f]")


def _extra_bytes(ch: str) -> int:
    """UTF-8 length of ``ch`` minus one (surrogates count like 'surrogatepass')."""
    cp = ord(ch)
    if cp < 0x80:
        return 0
    if cp < 0x800:
        return 1
    if cp < 0x10000:
        return 2
    return 3


class Utf8Offsets:
    """Tracks where the non-ASCII code points of a mostly-ASCII text are.

    ``byte offset of code point i = i + sum(extra bytes of the non-ASCII code points before i)``,
    so keeping a sorted list of the (few) non-ASCII positions is enough; an edit costs
    O(number of non-ASCII characters), not O(document length).
    """

    __slots__ = ("_extra", "_pos")

    def __init__(self, text: str = "") -> None:
        self._pos: list[int] = []
        self._extra: list[int] = []
        if not text.isascii():
            for m in _NON_ASCII.finditer(text):
                self._pos.append(m.start())
                self._extra.append(_extra_bytes(m.group()))

    def byte_offset(self, pos: int) -> int:
        return pos + sum(self._extra[: bisect.bisect_left(self._pos, pos)])

    def splice(self, pos: int, delete: int, insert: str) -> tuple[int, int]:
        """Apply ``splice(pos, delete, insert)``; return (byte position, byte delete length)."""
        positions, extras = self._pos, self._extra
        lo = bisect.bisect_left(positions, pos)
        hi = bisect.bisect_left(positions, pos + delete, lo)
        byte_pos = pos + sum(extras[:lo])
        byte_delete = delete + sum(extras[lo:hi])
        shift = len(insert) - delete
        new_pos: list[int] = []
        new_extra: list[int] = []
        if not insert.isascii():
            for m in _NON_ASCII.finditer(insert):
                new_pos.append(pos + m.start())
                new_extra.append(_extra_bytes(m.group()))
        if new_pos or hi > lo or (shift and hi < len(positions)):
            positions[lo:] = new_pos + [p + shift for p in positions[hi:]]
            extras[lo:] = new_extra + extras[hi:]
        return byte_pos, byte_delete


def utf8_patches(start: str, txns: Sequence[dict[str, Any]]) -> list[list[tuple[int, int, str]]]:
    """Rewrite a sequential trace's patches with UTF-8 byte positions and lengths."""
    offsets = Utf8Offsets(start)
    out: list[list[tuple[int, int, str]]] = []
    for txn in txns:
        converted: list[tuple[int, int, str]] = []
        for pos, delete, ins in txn["patches"]:
            byte_pos, byte_delete = offsets.splice(pos, delete, ins)
            converted.append((byte_pos, byte_delete, ins))
        out.append(converted)
    return out


# --------------------------------------------------------------------------------------------
# Measuring one replay


class UnavailableError(Exception):
    """The contender cannot run here (e.g. pycrdt is not installed)."""


class NotApplicableError(Exception):
    """The contender does not apply to this trace (e.g. ``str`` on a concurrent trace)."""


def _status_kib(field_name: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _release_free_memory() -> None:
    """Best effort (glibc): give freed heap pages back to the OS, so that allocations made by the
    replay show up in RSS instead of silently reusing what loading the trace left behind."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False if not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        return False
    return True


class Probe:
    """Context manager around the timed region: wall time, optional tracemalloc, peak RSS."""

    def __init__(self, *, heap: bool) -> None:
        self.heap = heap
        self.seconds = 0.0
        self.heap_peak_bytes: int | None = None
        self.rss_delta_bytes: int | None = None
        self.rss_method = ""
        self._rss_before = 0
        self._hwm_reset = False
        self._t0 = 0.0

    def __enter__(self) -> Probe:
        gc.collect()
        _release_free_memory()
        self._hwm_reset = _reset_peak_rss()
        rss = _status_kib("VmRSS") if self._hwm_reset else None
        if self._hwm_reset and rss is not None:
            self._rss_before = rss
        else:
            self._hwm_reset = False
            self._rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if self.heap:
            tracemalloc.start()
        self._t0 = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.seconds = time.perf_counter() - self._t0
        if self.heap:
            self.heap_peak_bytes = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        hwm = _status_kib("VmHWM") if self._hwm_reset else None
        if hwm is not None:
            self.rss_delta_bytes = max(0, hwm - self._rss_before) * 1024
            self.rss_method = "VmHWM after - VmRSS before (peak reset via clear_refs)"
        else:
            after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.rss_delta_bytes = max(0, after - self._rss_before) * 1024
            self.rss_method = "ru_maxrss delta (lower bound: peak of loading not reset)"


@dataclass
class Outcome:
    """What a contender reports about one replay (besides what the probe measured)."""

    edits: int
    ok: bool
    encoded_bytes: int
    prep_seconds: float = 0.0  # untimed pre-pass (code points -> UTF-8 byte offsets)
    seconds: float | None = None  # overrides the probe (cowrite times itself)
    heap_peak_bytes: int | None = None  # overrides the probe (cowrite traces itself)
    detail: str = ""


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
# Contender: str


def replay_str(trace: dict[str, Any], probe: Probe) -> Outcome:
    if trace_kind(trace) == "concurrent":
        raise NotApplicableError("plain str cannot merge concurrent branches")
    txns = trace["txns"]
    edits = count_edits(trace)
    text: str = trace.get("startContent", "")
    with probe:
        for txn in txns:
            for pos, delete, ins in txn["patches"]:
                text = text[:pos] + ins + text[pos + delete :]
    return Outcome(
        edits=edits, ok=text == trace["endContent"], encoded_bytes=len(text.encode("utf-8"))
    )


# --------------------------------------------------------------------------------------------
# Contender: pycrdt


def import_pycrdt() -> Any:
    """The pycrdt module, typed as ``Any`` (the import boundary), or raise ``UnavailableError``."""
    try:
        import pycrdt
    except ImportError as exc:
        raise UnavailableError(f"pycrdt is not installed ({exc})") from exc
    module: Any = pycrdt
    return module


def pycrdt_version() -> str | None:
    try:
        return importlib.metadata.version("pycrdt")
    except importlib.metadata.PackageNotFoundError:
        return None


def warm_up_pycrdt(pycrdt: Any) -> None:
    """Pay pycrdt's one-time process initialisation (~20 ms on the first ``Doc``) outside the
    timed region: it is not replay work, and cowrite's equivalent (module import) is untimed."""
    source, sink = pycrdt.Doc(), pycrdt.Doc()
    sink.observe(lambda event: None)
    text = source.get("text", type=pycrdt.Text)
    with source.transaction():
        text.insert(0, "warm-up é")
        del text[0:5]
    sink.apply_update(source.get_update(sink.get_state()))
    if str(sink.get("text", type=pycrdt.Text)) != "up é":
        raise RuntimeError("pycrdt warm-up produced an unexpected text")


def replay_pycrdt(trace: dict[str, Any], probe: Probe) -> Outcome:
    pycrdt = import_pycrdt()
    warm_up_pycrdt(pycrdt)
    if trace_kind(trace) == "concurrent":
        return _replay_pycrdt_concurrent(pycrdt, trace, probe)
    return _replay_pycrdt_sequential(pycrdt, trace, probe)


def _replay_pycrdt_sequential(pycrdt: Any, trace: dict[str, Any], probe: Probe) -> Outcome:
    start: str = trace.get("startContent", "")
    txns = trace["txns"]
    edits = count_edits(trace)
    ascii_only = is_ascii_trace(trace)
    ops: list[Any]
    prep_seconds = 0.0
    if ascii_only:
        ops = [txn["patches"] for txn in txns]  # code points == bytes
    else:
        prep_start = time.perf_counter()
        ops = utf8_patches(start, txns)  # untimed pre-pass, reported as prep_seconds
        prep_seconds = time.perf_counter() - prep_start
    with probe:
        doc = pycrdt.Doc(client_id=1)
        text = doc.get("text", type=pycrdt.Text)
        if start:
            with doc.transaction():
                text.insert(0, start)
        for patches in ops:
            with doc.transaction():
                for pos, delete, ins in patches:
                    if delete:
                        del text[pos : pos + delete]
                    if ins:
                        text.insert(pos, ins)
    final = str(text)
    return Outcome(
        edits=edits,
        ok=final == trace["endContent"],
        encoded_bytes=len(doc.get_update()),
        prep_seconds=prep_seconds,
        detail="" if ascii_only else "non-ASCII: byte offsets precomputed (untimed)",
    )


def _replay_pycrdt_concurrent(pycrdt: Any, trace: dict[str, Any], probe: Probe) -> Outcome:
    """One Doc per agent; before txn i, bring its agent's Doc to exactly the causal closure of
    txn i's parents by applying the recorded updates of the missing txns (in index order, which
    is a topological order), then apply txn i's patches and record its update.

    Causal closures are tracked as version vectors: one agent's txns are totally ordered, so the
    txns of agent b inside any closure are a prefix of b's txns.
    """
    txns = trace["txns"]
    edits = count_edits(trace)
    agents = 1 + max((int(txn["agent"]) for txn in txns), default=0)
    agents = max(agents, int(trace.get("numAgents", 0)))
    ascii_only = is_ascii_trace(trace)

    with probe:
        docs = [pycrdt.Doc(client_id=a + 1) for a in range(agents)]
        texts = [doc.get("text", type=pycrdt.Text) for doc in docs]
        captured: list[bytes] = []

        def on_commit(event: Any) -> None:
            captured.append(event.update)

        for doc in docs:
            doc.observe(on_commit)
        offsets = [Utf8Offsets() for _ in range(agents)]
        doc_vv = [[0] * agents for _ in range(agents)]
        agent_txns: list[list[int]] = [[] for _ in range(agents)]
        txn_vv: list[list[int]] = []
        updates: list[bytes | None] = []

        for i, txn in enumerate(txns):
            a = int(txn["agent"])
            target = [0] * agents
            for p in txn["parents"]:
                if not 0 <= p < i:
                    raise ValueError(f"txn {i}: parent {p} is not an earlier txn")
                target = [x if x >= y else y for x, y in zip(target, txn_vv[p], strict=True)]
            if target[a] != len(agent_txns[a]):
                raise ValueError(f"txn {i}: agent {a}'s txns are not totally ordered")
            current = doc_vv[a]
            doc, text = docs[a], texts[a]
            if current != target:
                missing: list[int] = []
                for b in range(agents):
                    if current[b] > target[b]:
                        raise ValueError(f"txn {i}: agent {a}'s doc is ahead of its parents")
                    missing.extend(agent_txns[b][current[b] : target[b]])
                missing.sort()
                for j in missing:
                    update = updates[j]
                    if update is not None:
                        doc.apply_update(update)
                if not ascii_only:
                    offsets[a] = Utf8Offsets(str(text))  # timed: needs the merged state
            captured.clear()
            with doc.transaction():
                if ascii_only:
                    for pos, delete, ins in txn["patches"]:
                        if delete:
                            del text[pos : pos + delete]
                        if ins:
                            text.insert(pos, ins)
                else:
                    agent_offsets = offsets[a]
                    for pos, delete, ins in txn["patches"]:
                        byte_pos, byte_delete = agent_offsets.splice(pos, delete, ins)
                        if byte_delete:
                            del text[byte_pos : byte_pos + byte_delete]
                        if ins:
                            text.insert(byte_pos, ins)
            updates.append(captured[-1] if captured else None)
            target[a] += 1
            txn_vv.append(target)
            doc_vv[a] = target
            agent_txns[a].append(i)

        merged = pycrdt.Doc(client_id=agents + 1)
        merged_text = merged.get("text", type=pycrdt.Text)
        for doc in docs:
            merged.apply_update(doc.get_update())
    final = str(merged_text)
    return Outcome(
        edits=edits,
        ok=final == trace["endContent"],
        encoded_bytes=len(merged.get_update()),
        detail=f"{agents} agent docs, merged"
        + ("" if ascii_only else "; non-ASCII: byte offsets computed in the timed region"),
    )


# --------------------------------------------------------------------------------------------
# Contender: cowrite


def replay_cowrite(
    trace: dict[str, Any], name: str, probe: Probe, *, measure_memory: bool
) -> Outcome:
    """``replay_trace`` times itself and runs tracemalloc itself (``measure_memory``); the probe
    must therefore not run tracemalloc too: it only adds the peak-RSS reading."""
    try:
        replay_module = importlib.import_module("cowrite.replay")
    except ImportError as exc:
        raise UnavailableError(f"cowrite.replay is not importable ({exc})") from exc
    replay_fn: Any = getattr(replay_module, "replay_trace", None)
    if replay_fn is None:
        raise UnavailableError("cowrite.replay has no replay_trace")
    with probe:
        report: Any = replay_fn(trace, name, measure_memory=measure_memory)
    return Outcome(
        edits=int(report.edits),
        ok=bool(report.ok),
        encoded_bytes=int(report.encoded_bytes),
        seconds=float(report.seconds),
        heap_peak_bytes=int(report.peak_memory_bytes) if measure_memory else None,
    )


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


def _package_root() -> Path:
    """The directory that contains the ``cowrite`` package (``src/`` in a checkout)."""
    return Path(__file__).resolve().parents[2]


def repo_root() -> Path:
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "pyproject.toml").is_file():
            return parent
    return Path.cwd()


def default_traces_dir() -> Path:
    env = os.environ.get("COWRITE_TRACES")
    if env:
        return Path(env)
    return (repo_root() / ".." / "shared" / "traces").resolve()


def spawn_run(contender: str, mode: str, path: Path, *, timeout: float) -> RunResult:
    """Run one measurement in a fresh interpreter and parse its result line."""
    env = dict(os.environ)
    src = str(_package_root())
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [
        sys.executable,
        "-m",
        "cowrite.bench.traces",
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
        return "pycrdt is not installed (pip install 'cowrite[bench]')"
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
                    _fmt_bytes(memory.heap_peak_bytes)
                    if memory.status == "done"
                    else f"{memory.status}: {memory.detail}"
                )
            )
        result.cells[contender] = aggregate(contender, timed, memory)
    return result


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


def _fmt_bytes(value: int | None) -> str:
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
                _fmt_bytes(heap),
                f"≤ {_fmt_bytes(TARGET_MEMORY_BYTES)}",
                _mark(None if heap is None else float(heap), TARGET_MEMORY_BYTES, valid=cw.ok),
            ]
            enc = cw.encoded_bytes if cw.status == "done" else None
            yield [
                "cowrite encoded size (full history)",
                res.name,
                _fmt_bytes(enc),
                f"≤ {_fmt_bytes(TARGET_ENCODED_BYTES)}",
                _mark(None if enc is None else float(enc), TARGET_ENCODED_BYTES, valid=cw.ok),
            ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _cell_row(cell: Cell) -> list[str]:
    if cell.status != "done":
        return [f"`{cell.contender}`", cell.status, "–", "–", "–", "–", "–", "–", cell.detail]
    heap = _fmt_bytes(cell.heap_peak_bytes)
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
        _fmt_bytes(cell.rss_delta_bytes),
        _fmt_bytes(cell.encoded_bytes),
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
        "Generated by `cowrite.bench.traces` — do not edit by hand; rerun the command below.",
        "",
        f"- **Date:** {info['date']}",
        f"- **CPU:** {info['cpu']}; {info['os']}",
        f"- **Python:** {info['python']} · **pycrdt:** {info['pycrdt']} · "
        f"**cowrite:** {info['cowrite']}",
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
        "up, so small deltas under-count. This is the comparable column for `pycrdt`.",
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
