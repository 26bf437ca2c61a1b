"""Where an update's time goes inside ``cowrite serve``: the store, the pipeline, the collector.

``COWRITE_BENCH_PROBE=DIR python -m benchmarks server ...`` starts cowrite servers through
``benchmarks.profile_serve --probe-out DIR`` (no profiler: it can run alongside the numbers),
which calls ``install`` before the server starts. At exit ``DIR/probe-<pid>.txt`` holds:

* ``commit``: each SQLite writer transaction (``BatchWriter._commit``: the jobs, the commit and
  its fsync), its duration and its number of jobs;
* ``persist``: each room batch's wait in ``Pipeline._persist``, from handing its updates to the
  store until they are durable *and the room's task runs again* (so a late event loop shows
  here: with ``--data :memory:`` it is the loop alone);
* ``gc``: each garbage collection's pause, by generation (``gc.callbacks``).

Durations are wall-clock: on a loaded machine they include waiting for a CPU.
"""

from __future__ import annotations

import atexit
import gc
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


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


def install(out: Path) -> None:
    """Wrap the writer's commit and the pipeline's persist step; record GC pauses; write the
    report to ``out`` at exit."""
    from cowrite.adapters.store import _writer
    from cowrite.server import pipeline

    commits: list[float] = []
    jobs: list[float] = []
    persists: list[float] = []
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}

    commit: Callable[..., Any] = _writer.BatchWriter._commit

    def timed_commit(self: _writer.BatchWriter, batch: list[Any]) -> Any:
        t = time.perf_counter()
        try:
            return commit(self, batch)
        finally:
            commits.append(time.perf_counter() - t)
            jobs.append(len(batch) / 1000)  # shown as "ms": jobs per commit

    persist: Callable[..., Any] = pipeline.Pipeline._persist

    async def timed_persist(self: pipeline.Pipeline, *args: Any) -> Any:
        t = time.perf_counter()
        try:
            return await persist(self, *args)
        finally:
            persists.append(time.perf_counter() - t)

    started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - started[0])

    _writer.BatchWriter._commit = timed_commit  # type: ignore[method-assign]
    pipeline.Pipeline._persist = timed_persist  # type: ignore[method-assign,assignment]
    gc.callbacks.append(on_gc)

    def write() -> None:
        lines = [
            f"commit: {_quantiles(commits)}",
            f"jobs per commit (x1000): {_quantiles(jobs)}",
            f"persist: {_quantiles(persists)}",
            *(f"gc generation {g}: {_quantiles(v)}" for g, v in pauses.items()),
        ]
        out.mkdir(parents=True, exist_ok=True)
        (out / f"probe-{os.getpid()}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    atexit.register(write)
