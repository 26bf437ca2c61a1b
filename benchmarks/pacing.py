"""Open-loop load inside one process: start ``one(i)`` at a fixed rate, whatever the earlier
ones are doing (a slow append must not slow the schedule down, or the tail would hide)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import Any


async def paced(
    one: Callable[[int], Coroutine[Any, Any, None]], rate: float, seconds: float
) -> float:
    """Start ``one(1)``, ``one(2)``, … ``rate`` times a second for ``seconds``, wait for all of
    them, and return the process CPU time they took (seconds)."""
    cpu0, start = time.process_time(), time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    i = 0
    while time.monotonic() - start < seconds:
        i += 1
        tasks.append(asyncio.create_task(one(i)))
        await asyncio.sleep(max(0.0, start + i / rate - time.monotonic()))
    await asyncio.gather(*tasks)
    return time.process_time() - cpu0
