"""Where an update's time goes inside ``cowrite serve``: the store, the pipeline, the collector,
the event loop's stalls.

``COWRITE_BENCH_PROBE=DIR python -m benchmarks server ...`` starts cowrite servers through
``benchmarks.profile_serve --probe-out DIR`` (no profiler: it can run alongside the numbers),
which calls ``install`` before the server starts. At exit ``DIR/probe-<pid>.txt`` holds:

* ``commit``: each SQLite writer transaction (``BatchWriter._commit``: the jobs, the commit and
  its fsync), its duration and its number of jobs;
* ``persist``: each room batch's wait in ``Pipeline._persist``, from handing its updates to the
  store until they are durable *and the room's task runs again* (so a late event loop shows
  here: with ``--data :memory:`` it is the loop alone);
* ``gc``: each garbage collection's pause, by generation (``gc.callbacks``);
* ``stages``: every edit's time split by stage (``EditStages``): received (``Hub.edit``) ->
  submitted to the room's pipeline (room applied) -> its batch taken by the pipeline (queued
  behind the room's previous batch) -> durable (the writer's commit returned) -> the room's task
  resumed -> acks and broadcasts queued on the connections; all edits, then the slowest 1 %;
* ``stalls``: the event loop's stalls (a callback posted every 5 ms from a thread, late by 10 ms
  or more), each with what the main thread was running while it was late (sampled from
  ``sys._current_frames``), grouped by place;
* ``lock``: how long a thread waits to take the interpreter lock back after a blocking call
  (``time.sleep(0)`` every 5 ms on a thread of its own: what the SQLite writer pays after each
  statement), with the switch interval in effect; and for the commits over 20 ms their wall
  time against the writer thread's CPU time, the statements apart from ``BEGIN``/``COMMIT``
  (the statements do no I/O that waits: their wall time beyond their CPU is the lock, or a
  CPU the thread did not get; ``COMMIT``'s also holds the fsync);
* ``disk``: the disk's own fsync beside the server (a 4 kB ``pwrite`` and ``fdatasync`` every
  20 ms of a file in ``DIR``, same device as the benchmark's database), and the checkpointer's
  WAL checkpoints (``_checkpoint.py``); each slow commit is listed with the slowest disk fsync
  and the checkpoint that overlapped it;
* ``WAL syncs`` (pipelined group commit, ``_wal_sync.py``): each ``fdatasync`` of the sync
  thread, and each commit's wait from ``COMMIT`` returned to the end of the sync that covered it;
  with the pipeline on, an edit is *durable* (the stages) when that sync ended, not its commit.

Durations are wall-clock: on a loaded machine they include waiting for a CPU.
"""

from __future__ import annotations

import atexit
import bisect
import gc
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

STALL_MS = 10.0
"""A posted callback this late is a stall (what ran meanwhile is sampled)."""
STAGES = ("apply", "queue", "store", "wake", "fanout")


def _quantiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)

    def q(p: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    return (
        f"n {len(ordered)}, ms p50 {q(50):.2f} p90 {q(90):.2f} p99 {q(99):.2f} "
        f"max {1000 * ordered[-1]:.1f}, total {sum(ordered):.2f} s"
    )


@dataclass(slots=True)
class EditStages:
    """One edit's monotonic timestamps (seconds), in pipeline order."""

    received: float
    submitted: float
    taken: float = 0.0
    durable: float = 0.0
    resumed: float = 0.0
    sent: float = 0.0

    def split(self) -> tuple[float, ...]:
        """Seconds in each of ``STAGES``."""
        return (
            self.submitted - self.received,
            self.taken - self.submitted,
            self.durable - self.taken,
            self.resumed - self.durable,
            self.sent - self.resumed,
        )

    @property
    def total(self) -> float:
        return self.sent - self.received


def stages_report(edits: list[EditStages]) -> list[str]:
    """Mean ms per stage over every edit and over the slowest 1 % (received -> sent)."""
    if not edits:
        return ["stages: none"]
    ordered = sorted(edits, key=lambda e: e.total)
    slow = ordered[-max(1, len(ordered) // 100) :]
    lines = [f"stages (received -> sent): {_quantiles([e.total for e in ordered])}"]
    for name, group in (("all", ordered), ("slowest 1%", slow)):
        sums = [0.0] * len(STAGES)
        for e in group:
            for i, v in enumerate(e.split()):
                sums[i] += v
        means = ", ".join(
            f"{s} {1000 * v / len(group):.2f}" for s, v in zip(STAGES, sums, strict=True)
        )
        lines.append(f"stages mean ms, {name} (n {len(group)}): {means}")
    return lines


@dataclass
class StallWatch:
    """Posts a callback to the loop every ``interval_s`` from a thread; while one is late by
    ``STALL_MS`` or more, samples the main thread's stack. ``stalls``: (start, seconds late,
    the places sampled meanwhile)."""

    interval_s: float = 0.005
    stalls: list[tuple[float, float, tuple[str, ...]]] = field(default_factory=list)
    _main: int = 0

    def start(self, loop: Any) -> None:
        self._main = threading.get_ident()
        threading.Thread(target=self._run, args=(loop,), name="stall-watch", daemon=True).start()

    def _run(self, loop: Any) -> None:
        while not loop.is_closed():
            seen = threading.Event()
            sent = time.monotonic()
            try:
                loop.call_soon_threadsafe(seen.set)
            except RuntimeError:
                return
            places: list[str] = []
            while not seen.wait(STALL_MS / 4000):  # sample 4 times per STALL_MS
                if time.monotonic() - sent >= STALL_MS / 1000:
                    frame = sys._current_frames().get(self._main)
                    if frame is not None:
                        places.append(place(frame))
            late = time.monotonic() - sent
            if late >= STALL_MS / 1000:
                self.stalls.append((sent, late, tuple(places)))
            time.sleep(self.interval_s)

    def report(self) -> list[str]:
        lates = [s[1] for s in self.stalls]
        lines = [f"stalls >= {STALL_MS:g} ms: {_quantiles(lates)}"]
        where: Counter[str] = Counter()
        nothing = "(no sample: the thread got no CPU, or C code held the GIL)"
        for _, _, places in self.stalls:
            for p in set(places) or {nothing}:
                where[p] += 1
        for p, n in where.most_common(12):
            lines.append(f"  {n:4d} stalls at {p}")
        return lines


@dataclass
class LockWatch:
    """Every ``interval_s``, times one release and re-take of the interpreter lock
    (``time.sleep(0)``) on a thread of its own: the wait a thread pays to get the lock back
    after a blocking call while others run Python (``sys.getswitchinterval()`` at most, unless
    the holder is in a long C call, or the process gets no CPU)."""

    interval_s: float = 0.005
    waits: list[float] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    """When each wait began (monotonic), for ``worst_during``."""

    def start(self) -> None:
        threading.Thread(target=self._run, name="lock-watch", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            t = time.monotonic()
            time.sleep(0)
            self.waits.append(time.monotonic() - t)
            self.starts.append(t)

    def worst_during(self, start: float, end: float) -> float:
        """The longest wait that overlapped ``[start, end]``, seconds (0: none)."""
        return _overlap(list(zip(self.starts, self.waits, strict=False)), start, end)

    def report(self) -> list[str]:
        over = sum(1 for w in self.waits if w >= 0.001)
        return [
            f"lock re-take after a blocking call (switch interval "
            f"{1000 * sys.getswitchinterval():g} ms): {_quantiles(self.waits)}; "
            f"{over} of {len(self.waits)} waited 1 ms or more"
        ]


@dataclass
class DiskWatch:
    """Every ``interval_s``, a 4 kB ``pwrite`` at a fixed offset and an ``fdatasync`` of a file
    of its own (the size never changes: like a WAL being reused), timed: the disk's fsync
    latency at the same moment as the server's commits. ``syncs``: (start, seconds)."""

    path: Path
    interval_s: float = 0.02
    syncs: list[tuple[float, float]] = field(default_factory=list)

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        threading.Thread(target=self._run, name="disk-watch", daemon=True).start()

    def _run(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        block = b"\x5a" * 4096
        try:
            os.pwrite(fd, block, 0)
            os.fsync(fd)
            while True:
                time.sleep(self.interval_s)
                t = time.monotonic()
                os.pwrite(fd, block, 0)
                os.fdatasync(fd)
                self.syncs.append((t, time.monotonic() - t))
        finally:
            os.close(fd)

    def worst_during(self, start: float, end: float) -> float:
        """The slowest fsync that overlapped ``[start, end]``, seconds (0: none)."""
        return max((d for t, d in self.syncs if t <= end and t + d >= start), default=0.0)

    def report(self) -> list[str]:
        return [
            f"disk fsync (4 kB pwrite + fdatasync, beside the server): "
            f"{_quantiles([d for _, d in self.syncs])}"
        ]


class _TimedCheckpoints:
    """A checkpointer's connection whose ``wal_checkpoint`` statements are timed into
    ``into`` as (start, seconds)."""

    def __init__(self, conn: Any, into: list[tuple[float, float]]) -> None:
        self._conn = conn
        self._into = into

    def execute(self, sql: str, *args: Any) -> Any:
        if "wal_checkpoint" not in sql:
            return self._conn.execute(sql, *args)
        t = time.monotonic()
        try:
            return self._conn.execute(sql, *args)
        finally:
            self._into.append((t, time.monotonic() - t))

    def close(self) -> None:
        self._conn.close()


def place(frame: FrameType | None, depth: int = 4) -> str:
    """The innermost ``depth`` frames as ``file:function:line`` (innermost first)."""
    out: list[str] = []
    while frame is not None and len(out) < depth:
        code = frame.f_code
        out.append(f"{Path(code.co_filename).name}:{code.co_name}:{frame.f_lineno}")
        frame = frame.f_back
    return " < ".join(out)


_Slow = tuple[float, float, str, float, float, float, float]


def _runqueue_ns() -> int:
    """Nanoseconds this thread has been runnable without a CPU (``/proc``'s schedstat; 0 where
    there is none)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat", "rb") as f:
            return int(f.read().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _slow_summary(slow: list[_Slow]) -> list[str]:
    """The slow commits' time split: CPU, no CPU, waiting inside the statements, the rest."""
    if not slow:
        return []
    n = len(slow)
    wall = sum(s[1] for s in slow)
    cpu = sum(s[3] for s in slow)
    runq = sum(s[6] for s in slow)
    stmt_wait = sum(s[4] - s[5] for s in slow)
    rest = wall - sum(s[4] for s in slow)
    return [
        f"slow commits: {n}, {1000 * wall / n:.1f} ms mean: thread CPU {1000 * cpu / n:.1f}, "
        f"runnable without a CPU {1000 * runq / n:.1f} (included in the next two); statements' "
        f"wall beyond their CPU {1000 * stmt_wait / n:.1f}, BEGIN + COMMIT (fsync) "
        f"{1000 * rest / n:.1f}"
    ]


def _overlap(spans: list[tuple[float, float]], start: float, end: float) -> float:
    """The longest of ``spans`` (start, seconds) that overlapped ``[start, end]`` (0: none)."""
    return max((d for t, d in spans if t <= end and t + d >= start), default=0.0)


def _disk_summary(
    slow: list[_Slow],
    disk: DiskWatch,
    checkpoints: list[tuple[float, float]],
    lock: LockWatch | None = None,
) -> list[str]:
    """How many slow commits had beside them a slow disk fsync (10 ms or more), a lock re-take
    of 5 ms or more, a checkpoint."""
    if not slow:
        return []
    n = len(slow)
    slow_disk = sum(1 for t, d, *_ in slow if disk.worst_during(t, t + d) >= 0.01)
    with_checkpoint = sum(1 for t, d, *_ in slow if _overlap(checkpoints, t, t + d) > 0)
    line = (
        f"slow commits with a disk fsync of 10 ms or more beside them: {slow_disk} of {n}; "
        f"overlapping a WAL checkpoint: {with_checkpoint} of {n}"
    )
    if lock is not None:
        held = sum(1 for t, d, *_ in slow if lock.worst_during(t, t + d) >= 0.005)
        line += f"; with a lock re-take of 5 ms or more beside: {held} of {n}"
    return [line]


def install(out: Path) -> None:
    """Wrap the writer's commit and the pipeline's steps; record GC pauses and loop stalls;
    write the report to ``out`` at exit."""
    from cowrite.adapters.store import _checkpoint, _wal_sync, _writer
    from cowrite.adapters.store import _version_blocks as vb
    from cowrite.server import hub, pipeline

    commits: list[float] = []
    commit_cpu: list[float] = []
    """Each transaction's writer thread CPU (statements, BEGIN, COMMIT)."""
    commit_ends: list[float] = []
    jobs: list[float] = []
    persists: list[float] = []
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    edits: list[EditStages] = []
    received: dict[int, float] = {}
    """id(message) -> when ``Hub.edit`` got it."""
    staged: dict[int, EditStages] = {}
    """id(outcome) -> its edit's stages, until its batch is sent."""
    persisted: dict[int, tuple[float, float]] = {}
    """id(room) -> (start, end) of its last ``_persist``."""
    lock = threading.Lock()

    queued: dict[int, float] = {}
    """id(future) -> when the writer job was submitted."""
    wakes: list[float] = []
    """From the batch's first job submitted to the writer thread starting its transaction."""
    runs: list[float] = []
    """The batch's jobs (statements) inside the transaction, without the COMMIT."""
    slow_commits: list[tuple[float, float, str, float, float, float, float]] = []
    """Commits over 20 ms: (start, seconds, jobs, thread CPU seconds, the statements' wall and
    CPU seconds, seconds the thread was runnable but got no CPU)."""

    writer_submit: Callable[..., Any] = _writer.BatchWriter.submit

    def timed_writer_submit(self: _writer.BatchWriter, fn: Any) -> Any:
        future = writer_submit(self, fn)
        queued[id(future)] = time.monotonic()
        return future

    run_together: Callable[..., Any] = _writer.BatchWriter._run_together

    run_cpu: list[float] = []
    """The same, in the writer thread's CPU time (what it did, not what it waited for)."""

    def timed_run_together(self: _writer.BatchWriter, batch: list[Any]) -> Any:
        t, cpu = time.perf_counter(), time.thread_time()
        try:
            return run_together(self, batch)
        finally:
            runs.append(time.perf_counter() - t)
            run_cpu.append(time.thread_time() - cpu)

    commit: Callable[..., Any] = _writer.BatchWriter._commit

    def timed_commit(self: _writer.BatchWriter, batch: list[Any]) -> Any:
        t, cpu = time.perf_counter(), time.thread_time()
        queued_ns = _runqueue_ns()
        begun = time.monotonic()
        first = min((queued.pop(id(j.future), begun) for j in batch), default=begun)
        wakes.append(begun - first)
        n_runs = len(runs)
        try:
            return commit(self, batch)
        finally:
            took = time.perf_counter() - t
            used = time.thread_time() - cpu
            commits.append(took)
            commit_cpu.append(used)
            if took > 0.02:
                names = Counter(getattr(j.fn, "__qualname__", "?") for j in batch)
                stmts = sum(runs[n_runs:]), sum(run_cpu[n_runs:])
                runq = (_runqueue_ns() - queued_ns) / 1e9
                jobs_named = " ".join(f"{k}x{v}" for k, v in names.items())
                slow_commits.append((begun, took, jobs_named, used, *stmts, runq))
            with lock:
                commit_ends.append(time.monotonic())
            jobs.append(len(batch) / 1000)  # shown as "ms": jobs per commit

    persist: Callable[..., Any] = pipeline.Pipeline._persist

    async def timed_persist(self: pipeline.Pipeline, doc_id: str, lr: Any, *args: Any) -> Any:
        t = time.perf_counter()
        start = time.monotonic()
        try:
            return await persist(self, doc_id, lr, *args)
        finally:
            persists.append(time.perf_counter() - t)
            persisted[id(lr)] = (start, time.monotonic())

    edit: Callable[..., Any] = hub.Hub.edit

    async def timed_edit(self: hub.Hub, peer: Any, msg: Any) -> Any:
        received[id(msg)] = time.monotonic()
        try:
            return await edit(self, peer, msg)
        finally:
            received.pop(id(msg), None)

    apply: Callable[..., Any] = hub.Hub._apply_edit

    def timed_apply(self: hub.Hub, peer: Any, msg: Any, t0: float, lr: Any = None) -> Any:
        self._probe_received = received.get(id(msg), t0)  # type: ignore[attr-defined]
        try:
            return apply(self, peer, msg, t0, lr)
        finally:
            self._probe_received = None  # type: ignore[attr-defined]

    submit: Callable[..., Any] = pipeline.Pipeline.submit

    def timed_submit(self: pipeline.Pipeline, lr: Any, outcome: Any, *args: Any, **kw: Any) -> Any:
        got = getattr(self, "_probe_received", None)
        if got is not None and outcome.persist is not None:
            staged[id(outcome)] = EditStages(got, time.monotonic())
        return submit(self, lr, outcome, *args, **kw)

    carry_out: Callable[..., Any] = pipeline.Pipeline._carry_out

    async def timed_carry_out(
        self: pipeline.Pipeline, doc_id: str, lr: Any, batch: list[Any]
    ) -> Any:
        taken = time.monotonic()
        mine = [s for s in (staged.pop(id(j.outcome), None) for j in batch) if s is not None]
        persisted.pop(id(lr), None)
        try:
            return await carry_out(self, doc_id, lr, batch)
        finally:
            sent = time.monotonic()
            start, end = persisted.pop(id(lr), (taken, taken))
            with lock:  # the last commit (sync) that ended while this batch waited: its own
                ends = sync_ends if sync_ends else commit_ends
                i = bisect.bisect_right(ends, end) - 1
                durable = ends[i] if i >= 0 and ends[i] >= start else end
            for s in mine:
                s.taken, s.durable, s.resumed, s.sent = taken, durable, end, sent
                edits.append(s)

    started = [0.0]

    origin = time.monotonic()
    full: list[tuple[float, float]] = []
    """(monotonic start, seconds) of each full collection."""

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            took = time.perf_counter() - started[0]
            pauses[info["generation"]].append(took)
            if info["generation"] == 2:
                full.append((time.monotonic() - took, took))

    syncs: list[float] = []
    sync_ends: list[float] = []
    sync_starts: list[float] = []
    wal_sync: Callable[..., Any] = _wal_sync.WalSyncer._sync

    def timed_sync(self: _wal_sync.WalSyncer) -> None:
        t, begun = time.perf_counter(), time.monotonic()
        try:
            wal_sync(self)
        finally:
            syncs.append(time.perf_counter() - t)
            with lock:
                sync_starts.append(begun)
                sync_ends.append(time.monotonic())

    _wal_sync.WalSyncer._sync = timed_sync  # type: ignore[method-assign]
    _writer.BatchWriter._commit = timed_commit  # type: ignore[method-assign]
    _writer.BatchWriter.submit = timed_writer_submit  # type: ignore[method-assign]
    _writer.BatchWriter._run_together = timed_run_together  # type: ignore[method-assign]
    pipeline.Pipeline._persist = timed_persist  # type: ignore[method-assign,assignment]
    pipeline.Pipeline.submit = timed_submit  # type: ignore[method-assign]
    pipeline.Pipeline._carry_out = timed_carry_out  # type: ignore[method-assign]
    hub.Hub.edit = timed_edit  # type: ignore[method-assign]
    hub.Hub._apply_edit = timed_apply  # type: ignore[method-assign]
    gc.callbacks.append(on_gc)
    codec: dict[str, list[float]] = {"encode": [], "decode": []}
    """Version-block codec calls (``_version_blocks``): seconds per call, any thread."""
    for name, times in codec.items():
        original = getattr(vb, name)

        def timed(*args: Any, _f: Any = original, _t: list[float] = times, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return _f(*args, **kw)
            finally:
                _t.append(time.perf_counter() - t)

        setattr(vb, name, timed)
    watch = StallWatch()
    lock_watch = LockWatch()
    lock_watch.start()
    disk = DiskWatch(out / f"disk-watch-{os.getpid()}")
    disk.start()
    checkpoints: list[tuple[float, float]] = []
    """(start, seconds) of each WAL checkpoint of the checkpointer thread."""
    checkpointer_init: Callable[..., Any] = _checkpoint.Checkpointer.__init__

    def timed_checkpointer(self: Any, connect: Any, *args: Any, **kw: Any) -> None:
        checkpointer_init(self, lambda: _TimedCheckpoints(connect(), checkpoints), *args, **kw)

    _checkpoint.Checkpointer.__init__ = timed_checkpointer  # type: ignore[method-assign]
    start: Callable[..., Any] = hub.Hub.start

    async def watched_start(self: hub.Hub) -> None:
        import asyncio

        watch.start(asyncio.get_running_loop())
        await start(self)

    hub.Hub.start = watched_start  # type: ignore[method-assign]

    first_commit = [commit_ends[0] if commit_ends else 0.0]

    def _sync_waits() -> list[float]:
        """Per commit, from its end to the end of the first sync begun after it (pipeline
        only)."""
        with lock:
            ends, begun, done = list(commit_ends), list(sync_starts), list(sync_ends)
        waits = []
        for e in ends:
            i = bisect.bisect_left(begun, e)
            if i < len(done):
                waits.append(done[i] - e)
        return waits

    def write() -> None:
        first_commit[0] = commit_ends[0] if commit_ends else 0.0
        lines = [
            f"commit: {_quantiles(commits)}",
            f"jobs per commit (x1000): {_quantiles(jobs)}",
            f"persist: {_quantiles(persists)}",
            *(f"gc generation {g}: {_quantiles(v)}" for g, v in pauses.items()),
            *stages_report(edits),
            f"writer wake (job queued -> transaction begun): {_quantiles(wakes)}",
            f"writer statements (without COMMIT): {_quantiles(runs)}",
            f"writer statements, thread CPU: {_quantiles(run_cpu)}",
            f"commit, thread CPU: {_quantiles(commit_cpu)}",
            *lock_watch.report(),
            *disk.report(),
            f"WAL checkpoints: {_quantiles([d for _, d in checkpoints])}",
            f"WAL syncs (pipeline), fdatasync: {_quantiles(syncs)}",
            f"WAL syncs, commit returned -> its sync ended: {_quantiles(_sync_waits())}",
            "commits over 20 ms (s since the first commit, ms; thread CPU ms; runnable without a"
            " CPU ms; statements wall/CPU ms, the rest is BEGIN and COMMIT; beside it: the"
            " slowest disk fsync, the longest lock re-take, a WAL checkpoint, ms; jobs):",
            *(
                f"  {t - first_commit[0]:.2f} {1000 * d:.0f}; cpu {1000 * c:.1f}; "
                f"runq {1000 * rq:.1f}; statements {1000 * sw:.1f}/{1000 * sc:.1f}; "
                f"disk {1000 * disk.worst_during(t, t + d):.0f}; "
                f"lock {1000 * lock_watch.worst_during(t, t + d):.0f}; "
                f"checkpoint {1000 * _overlap(checkpoints, t, t + d):.0f}; {n}"
                for t, d, n, c, sw, sc, rq in slow_commits[:60]
            ),
            *_disk_summary(slow_commits, disk, checkpoints, lock_watch),
            *_slow_summary(slow_commits),
            *watch.report(),
            "full collections (s since the server started, ms): "
            + ", ".join(f"{t - origin:.2f} {1000 * d:.0f}" for t, d in full),
            *(f"version blocks {k}: {_quantiles(v)}" for k, v in codec.items()),
        ]
        out.mkdir(parents=True, exist_ok=True)
        (out / f"probe-{os.getpid()}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    atexit.register(write)
