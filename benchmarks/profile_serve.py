"""Run ``cowrite ...`` under a CPU-weighted stack sampler (no py-spy in the lock), or with
WebSocket compression off (an experiment: ``cowrite serve`` accepts permessage-deflate).

``COWRITE_BENCH_PROFILE=DIR python -m benchmarks server ...`` starts every cowrite server as
``python -m benchmarks.profile_serve --out DIR -- serve ...``. A daemon thread wakes every
``--interval-ms`` (default 2), reads every thread's Python stack (``sys._current_frames``) and
that thread's CPU clock (``pthread_getcpuclockid``), and charges the CPU the thread used since
the previous sample to its current stack. So the report shows where CPU went, in every thread
(the event loop, the SQLite writer...), not where threads waited. Time spent in C or Rust is
charged to the Python frame that called it (``Doc.apply_update`` and the like show up as the
Python line that called them).

On exit (``cowrite serve`` stops gracefully on SIGTERM) it writes ``DIR/profile-<pid>.txt``:
CPU per thread, the top functions by self and by inclusive CPU, and
``DIR/profile-<pid>.collapsed`` (``stack;frames cpu_us`` lines, for flame graph tools).

``COWRITE_BENCH_WS_DEFLATE=0`` starts cowrite servers through ``--no-ws-deflate``: uvicorn then
refuses the permessage-deflate extension that browsers and Node's ``ws`` offer (a benchmark-side
patch of ``cowrite.server.run.server_config``; the server code is unchanged).
"""

from __future__ import annotations

import argparse
import atexit
import os
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

K = TypeVar("K")


def _where(frame: FrameType) -> str:
    code = frame.f_code
    return f"{code.co_name} ({Path(code.co_filename).name}:{code.co_firstlineno})"


class Sampler:
    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.stacks: defaultdict[tuple[str, ...], float] = defaultdict(float)
        """(thread name, outermost frame, ..., innermost frame) -> CPU seconds"""
        self.threads: defaultdict[str, float] = defaultdict(float)
        self._last: dict[int, float] = {}
        self._clocks: dict[int, int] = {}
        self._me = 0
        self.started = time.monotonic()

    def run(self) -> None:
        self._me = threading.get_ident()
        while True:
            time.sleep(self.interval_s)
            self.sample()

    def _cpu(self, ident: int) -> float | None:
        clock = self._clocks.get(ident)
        try:
            if clock is None:
                clock = self._clocks[ident] = time.pthread_getcpuclockid(ident)
            return time.clock_gettime(clock)
        except (OSError, OverflowError):
            return None

    def sample(self) -> None:
        names = {t.ident: t.name for t in threading.enumerate()}
        for ident, frame in sys._current_frames().items():
            if ident == self._me:
                continue
            cpu = self._cpu(ident)
            if cpu is None:
                continue
            used = cpu - self._last.get(ident, cpu)
            self._last[ident] = cpu
            if used <= 0:
                continue
            name = names.get(ident, str(ident))
            stack: list[str] = []
            f: FrameType | None = frame
            while f is not None:
                stack.append(_where(f))
                f = f.f_back
            self.stacks[(name, *reversed(stack))] += used
            self.threads[name] += used

    def report(self, top: int = 45) -> str:
        total = sum(self.threads.values()) or 1e-9
        wall = time.monotonic() - self.started
        own: defaultdict[str, float] = defaultdict(float)
        inclusive: defaultdict[str, float] = defaultdict(float)
        for stack, cpu in self.stacks.items():
            own[stack[-1]] += cpu
            for frame in set(stack[1:]):
                inclusive[frame] += cpu
        lines = [f"CPU sampled: {total:.2f} s over {wall:.1f} s wall", "", "## threads"]
        lines += [f"{cpu:8.2f} s {100 * cpu / total:5.1f} %  {n}" for n, cpu in _top(self.threads)]
        for title, counts in (("self", own), ("inclusive", inclusive)):
            lines += ["", f"## functions by {title} CPU"]
            lines += [
                f"{cpu:8.3f} s {100 * cpu / total:5.1f} %  {n}" for n, cpu in _top(counts, top)
            ]
        return "\n".join(lines) + "\n"

    def collapsed(self) -> str:
        return "".join(f"{';'.join(s)} {round(cpu * 1e6)}\n" for s, cpu in _top(self.stacks))


def _top(counts: Mapping[K, float], n: int | None = None) -> list[tuple[K, float]]:
    return sorted(counts.items(), key=lambda kv: -kv[1])[:n]


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
    parser.add_argument("--interval-ms", type=float, default=2.0)
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then cowrite's arguments")
    ns = parser.parse_args(argv)
    args = ns.args[1:] if ns.args[:1] == ["--"] else ns.args
    if ns.no_ws_deflate:
        _refuse_deflate()
    if ns.out is not None:
        sampler = Sampler(ns.interval_ms / 1000)
        threading.Thread(target=sampler.run, name="profile-sampler", daemon=True).start()
        out: Path = ns.out

        def write() -> None:
            out.mkdir(parents=True, exist_ok=True)
            stem = out / f"profile-{os.getpid()}"
            Path(f"{stem}.txt").write_text(sampler.report(), encoding="utf-8")
            Path(f"{stem}.collapsed").write_text(sampler.collapsed(), encoding="utf-8")

        atexit.register(write)
    from cowrite.cli import main as cowrite_main

    return cowrite_main(list(args))


if __name__ == "__main__":
    sys.exit(main())
