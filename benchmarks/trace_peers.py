"""The contenders of the trace-replay benchmark, each replaying one trace in this process.

Split out of ``benchmarks.traces`` so that what is measured (the replay code, and the probe
that measures it) lives apart from how runs are orchestrated and reported.

``str``
    Plain Python ``str`` slicing (``s = s[:pos] + ins + s[pos + d:]``): the floor for a
    non-collaborative editor. Sequential traces only.
``pycrdt``
    The peer: Yrs (Rust) through its Python bindings. One ``Doc`` with one ``Text``, one
    transaction per trace transaction. Concurrent traces use one ``Doc`` per agent, synchronised
    with the recorded pycrdt updates exactly as the causal graph says.
``cowrite``
    ``cowrite.replay.replay_trace``.
"""

from __future__ import annotations

import bisect
import gc
import importlib
import importlib.metadata
import re
import resource
import time
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

# --------------------------------------------------------------------------------------------
# What the contenders need to know about a trace


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
