"""Run ``cowrite ...`` under cProfile (no py-spy in the lock), or with WebSocket compression
off (an experiment: ``cowrite serve`` accepts permessage-deflate).

``COWRITE_BENCH_PROFILE=DIR python -m benchmarks server ...`` starts every cowrite server as
``python -m benchmarks.profile_serve --out DIR -- serve ...``: the main thread (the event loop,
where requests, rooms and the pipeline run) under ``cProfile``, and every thread's CPU time
(the SQLite writer's too) read from its CPU clock (``pthread_getcpuclockid``) every 50 ms. On
exit (``cowrite serve`` stops gracefully on SIGTERM) it writes ``DIR/profile-<pid>.txt``: CPU
per thread, then the main thread's functions by own time and by cumulative time, and
``DIR/profile-<pid>.pstats`` (``python -m pstats``). cProfile slows Python code down (about
1.5-2x here): read shares, not absolute times. Time in C or Rust shows up as the builtin that
was called (pycrdt's ``apply_update``, zlib's ``compress``...); time inside uvloop between
callbacks is not attributed.

``COWRITE_BENCH_LOOP_LAG=DIR`` (``--lag-out DIR``) measures how late the event loop runs a
callback posted every 5 ms from another thread (its stalls), written to
``DIR/looplag-<pid>.txt``; no profiler, so it can run alongside the numbers. It also writes how
long document loads held the interpreter lock between two drops (``DIR/lockholds-<pid>.txt``).

``COWRITE_BENCH_PROBE=DIR`` (``--probe-out DIR``) times the SQLite commits, the pipeline's
persist step and the GC pauses (``benchmarks/pipeline_probe.py``); no profiler either.

``COWRITE_BENCH_WS_DEFLATE=0`` (or a ``-nodeflate`` server name) starts cowrite servers through
``--no-ws-deflate``: uvicorn then refuses the permessage-deflate extension that browsers and
Node's ``ws`` offer (a benchmark-side patch of ``cowrite.server.run.server_config``; the server
code is unchanged).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import cProfile
import io
import os
import pstats
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any


class ThreadClock:
    """CPU seconds used by each thread, sampled from its CPU clock (threads that end between
    two samples lose their last interval)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.threads: defaultdict[str, float] = defaultdict(float)
        self._last: dict[int, float] = {}
        self._clocks: dict[int, int] = {}
        self.started = time.monotonic()

    def run(self) -> None:
        while True:
            time.sleep(self.interval_s)
            self.sample()

    def sample(self) -> None:
        for t in threading.enumerate():
            ident = t.ident
            if ident is None:
                continue
            try:
                if ident not in self._clocks:
                    self._clocks[ident] = time.pthread_getcpuclockid(ident)
                cpu = time.clock_gettime(self._clocks[ident])
            except (OSError, OverflowError):
                continue
            self.threads[t.name] += cpu - self._last.get(ident, 0.0)
            self._last[ident] = cpu

    def report(self) -> str:
        self.sample()
        total = sum(self.threads.values()) or 1e-9
        wall = time.monotonic() - self.started
        lines = [f"CPU: {total:.2f} s over {wall:.1f} s wall", "", "## threads"]
        for name, cpu in sorted(self.threads.items(), key=lambda kv: -kv[1]):
            lines.append(f"{cpu:8.2f} s {100 * cpu / total:5.1f} %  {name}")
        return "\n".join(lines) + "\n"


class LoopLag:
    """How late the event loop runs a callback scheduled from another thread every
    ``interval_s``: the loop's stalls (long callbacks, GC pauses, waiting for a CPU)."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.lags: list[float] = []

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        def tick() -> None:
            while not loop.is_closed():
                sent = time.monotonic()
                try:
                    loop.call_soon_threadsafe(self._seen, sent)
                except RuntimeError:
                    return
                time.sleep(self.interval_s)

        threading.Thread(target=tick, name="loop-lag", daemon=True).start()

    def _seen(self, sent: float) -> None:
        self.lags.append(time.monotonic() - sent)

    def report(self) -> str:
        lags = sorted(self.lags)
        if not lags:
            return "no samples\n"

        def q(p: float) -> float:
            return 1000 * lags[min(len(lags) - 1, int(p / 100 * len(lags)))]

        over = {ms: sum(1 for v in lags if v * 1000 > ms) for ms in (10, 50, 100, 250)}
        return (
            f"loop lag ms over {len(lags)} samples: p50 {q(50):.2f} p99 {q(99):.2f} "
            f"p99.9 {q(99.9):.2f} max {1000 * lags[-1]:.1f}; samples over "
            + ", ".join(f"{ms} ms: {n}" for ms, n in over.items())
            + "\n"
        )


def _watch_loop(out: Path) -> None:
    """Start ``LoopLag`` on uvicorn's loop; write its report to ``out`` at exit."""
    import uvicorn

    lag = LoopLag()
    startup = uvicorn.Server.startup

    async def watched(self: uvicorn.Server, sockets: Any = None) -> None:
        lag.start(asyncio.get_running_loop())
        await startup(self, sockets)

    uvicorn.Server.startup = watched  # type: ignore[method-assign]

    holds = _watch_holds()

    def write() -> None:
        out.mkdir(parents=True, exist_ok=True)
        (out / f"looplag-{os.getpid()}.txt").write_text(lag.report(), encoding="utf-8")
        (out / f"lockholds-{os.getpid()}.txt").write_text(_holds_report(holds), encoding="utf-8")

    atexit.register(write)


def _watch_holds() -> list[float]:
    """Every stretch a long engine pass (a document's load) held the interpreter lock between
    two drops, in CPU seconds of its thread (``cowrite.engine.observe_holds``): the stall that
    does not depend on how loaded the machine is."""
    from cowrite.engine import observe_holds

    holds: list[float] = []
    _KEPT.append(observe_holds(holds.append))  # kept: a collected one would stop observing
    _KEPT[-1].__enter__()  # for the life of the process
    return holds


_KEPT: list[AbstractContextManager[None]] = []


def _holds_report(holds: list[float]) -> str:
    if not holds:
        return "no long engine pass\n"
    ranked = sorted(holds)
    p99 = ranked[min(len(ranked) - 1, int(0.99 * len(ranked)))]
    return (
        f"interpreter lock held by long engine passes between two drops, thread CPU ms: "
        f"{len(holds)} drops, p50 {1000 * ranked[len(ranked) // 2]:.2f} p99 {1000 * p99:.2f} "
        f"max {1000 * ranked[-1]:.1f}; over 5 ms: {sum(1 for h in holds if h > 0.005)}\n"
    )


def _stats(profile: cProfile.Profile, order: str, top: int) -> str:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats(order).print_stats(top)
    return out.getvalue()


def _refuse_deflate() -> None:
    """uvicorn's ``ws_per_message_deflate=False`` for ``cowrite serve``."""
    from cowrite.server import run

    original = run.server_config

    def server_config(app: Any, settings: Any) -> Any:
        config = original(app, settings)
        config.ws_per_message_deflate = False
        return config

    run.server_config = server_config


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_serve", description=__doc__)
    parser.add_argument("--out", type=Path, help="directory for the profiles (none: no sampling)")
    parser.add_argument(
        "--no-ws-deflate", action="store_true", help="refuse permessage-deflate (uvicorn)"
    )
    parser.add_argument("--top", type=int, default=45, help="functions listed per table")
    parser.add_argument("--lag-out", type=Path, help="directory for the event loop's lag report")
    parser.add_argument(
        "--probe-out", type=Path, help="directory for store, pipeline and GC timings"
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then cowrite's arguments")
    ns = parser.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    if ns.no_ws_deflate:
        _refuse_deflate()
    if ns.lag_out is not None:
        _watch_loop(ns.lag_out)
    if ns.probe_out is not None:
        from benchmarks.pipeline_probe import install

        install(ns.probe_out)
    if ns.out is not None:
        out: Path = ns.out
        clock = ThreadClock(0.05)
        threading.Thread(target=clock.run, name="profile-clock", daemon=True).start()
        profile = cProfile.Profile()

        def write() -> None:
            profile.disable()
            out.mkdir(parents=True, exist_ok=True)
            stem = out / f"profile-{os.getpid()}"
            profile.dump_stats(f"{stem}.pstats")
            text = clock.report()
            text += "\n## main thread by own time\n" + _stats(profile, "tottime", ns.top)
            text += "\n## main thread by cumulative time\n" + _stats(profile, "cumulative", ns.top)
            Path(f"{stem}.txt").write_text(text, encoding="utf-8")

        atexit.register(write)
        profile.enable()
    from cowrite.cli import main as cowrite_main

    return cowrite_main(list(args))


if __name__ == "__main__":
    sys.exit(main())
