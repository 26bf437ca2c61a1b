"""Long engine passes let other threads run, at least every ``SLICE_S`` of holding the lock.

Code compiled by mypyc (``engine/native.py``) never drops the interpreter lock by itself, and the
pure-Python engine's long C calls (a sort, a list comprehension's cleanup) do not either: a 2
M-character document decoded in a worker thread held the lock for up to a second at a time, so the
event loop and the SQLite writer thread waited (``python -m benchmarks open_stall``). A long pass
therefore calls ``pace()`` every ``PACE_EVERY`` items (and ``let_others_run()`` between its
phases); ``pace`` drops the lock once ``SLICE_S`` has passed since this thread last did. Each step
between two calls must be short (a few thousand items at most): that is the caller's contract.

Dropping the lock is ``time.sleep(0)``: a waiting thread that is running takes it at once; one
that has waited CPython's switch interval has asked for it, and then the drop waits until it
took it (``collector_paused`` shortens that interval to 0.5 ms for a large load). Sleeping
longer (0.1 ms) gave the lock away more surely but made the load 1.5-3x longer in wall time on
a loaded machine (each drop gave the CPU away too). ``observe_holds`` records every hold (thread
CPU seconds between two drops), which is how the benchmark reports the stall in CPU terms and
the tests count the drops.

The cyclic garbage collector is the other long hold: a load allocates a million objects, and a
collection that walks them cannot be interrupted (15-45 ms each with the server's thresholds).
``collector_paused`` keeps it off during a large load and then freezes what exists
(``gc.freeze``), so no later collection walks the document; ``thaw_frozen`` gives such objects
back to the collector (the caller's part: when the document is dropped, or its cycles are never
freed).
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Final

PACE_EVERY: Final = 64
"""Items between two ``pace()`` calls (a power of two: ``k & (PACE_EVERY - 1)``); tens of µs."""

SLICE_S: Final = 0.002
"""The longest the lock is held between two drops (wall seconds) when ``pace`` is called often."""

LOAD_SWITCH_INTERVAL_S: Final = 0.0005
"""CPython's switch interval during a large load (``collector_paused``; otherwise 1 ms in
``cowrite serve``, ``server/run.switch_interval``, and CPython's 5 ms elsewhere): how long a
thread waits for the lock before it asks for it, and the loader's next drop hands it over."""

_Observer = Callable[[float], None]


class _Clock(threading.local):
    last: float = 0.0  # perf_counter at this thread's last drop
    cpu: float = 0.0  # thread_time then (only while observed)


_clock = _Clock()
_observers: list[_Observer] = []


def pace() -> None:
    """Drop the lock if this thread has held it for ``SLICE_S`` (cheap otherwise)."""
    if time.perf_counter() - _clock.last >= SLICE_S:
        let_others_run()


def let_others_run() -> None:
    """Drop the interpreter lock, so that a thread waiting for it can take it now."""
    if _observers:
        now = time.thread_time()
        if _clock.cpu:
            for observer in _observers:
                observer(now - _clock.cpu)
    time.sleep(0)
    _clock.last = time.perf_counter()
    if _observers:
        _clock.cpu = time.thread_time()


def start_slice() -> None:
    """Begin a long pass: the lock is held from now (``pace`` measures from here)."""
    _clock.last = time.perf_counter()
    _clock.cpu = time.thread_time() if _observers else 0.0


@contextmanager
def observe_holds(observer: _Observer) -> Iterator[None]:
    """Call ``observer(cpu_seconds)`` at every drop, with the CPU time this thread held the lock
    since its previous drop (or ``start_slice``); for benchmarks and tests, not production."""
    _observers.append(observer)
    try:
        yield
    finally:
        _observers.remove(observer)


class _Pause:
    lock = threading.Lock()
    depth = 0  # loads inside collector_paused
    was_enabled = False
    interval = 0.005


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection during the block (any thread), and a short switch interval; at the
    end of the last such block, everything alive is frozen (the caller must ``thaw_frozen`` when
    it drops what it built)."""
    with _Pause.lock:
        if _Pause.depth == 0:
            _Pause.was_enabled = gc.isenabled()
            gc.disable()
            _Pause.interval = sys.getswitchinterval()
            sys.setswitchinterval(min(_Pause.interval, LOAD_SWITCH_INTERVAL_S))
        _Pause.depth += 1
    try:
        yield
    finally:
        with _Pause.lock:
            _Pause.depth -= 1
            if _Pause.depth == 0:
                sys.setswitchinterval(_Pause.interval)
                gc.freeze()  # one list splice: the load's objects leave the young generation
                if _Pause.was_enabled:
                    gc.enable()


def thaw_frozen() -> None:
    """Give every frozen object back to the oldest generation (one list splice): the next full
    collection frees the cycles of what was dropped since ``collector_paused`` froze it."""
    gc.unfreeze()
