"""Long engine passes let other threads run.

Code compiled by mypyc (``engine/native.py``) never drops the interpreter lock by itself: a
document decoded in a worker thread held it for its whole load, so the event loop and the SQLite
writer thread waited (another document's acks came ~1 s late while a 2 M-character document
opened, ``python -m benchmarks open_stall``; ~0.27 s with the pure-Python engine, whose loops the
interpreter interrupts every 5 ms but whose long C calls it cannot). A pass over many items
calls ``let_others_run`` every ``YIELD_EVERY`` of them and between its phases: a thread waiting
for the lock then gets it (CPython hands it over when one was requested), and a lone thread
pays one short system call.
"""

from __future__ import annotations

import time
from typing import Final

YIELD_EVERY: Final = 4096
"""Items between two chances for other threads (a power of two: ``k & (YIELD_EVERY - 1)``)."""


def let_others_run() -> None:
    """Drop the interpreter lock for a moment, so a thread that waits for it runs now."""
    time.sleep(0)
