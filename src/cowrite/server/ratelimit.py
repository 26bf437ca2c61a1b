"""A token bucket: ``rate`` tokens a second, at most ``burst`` saved up.

Each connection holds one per kind of work that costs the server (edits, presence and joins:
``budgets``, ``yjs_budget``; expensive reads have these too), so that one client's flood is
refused with ``rate_limited`` while everyone else carries on.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    __slots__ = ("_at", "_clock", "_tokens", "burst", "rate")

    def __init__(
        self, rate: float, burst: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """``clock``: seconds, monotonic (tests pass their own instead of sleeping)."""
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def take(self, cost: float = 1.0) -> bool:
        """Spend ``cost`` tokens if there are that many (refilled since the last call); a cost
        over ``burst`` is charged as ``burst`` (a full bucket always pays)."""
        cost = min(cost, self.burst)
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens < cost:
            return False
        self._tokens -= cost
        return True

    def delay(self, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens, going into debt if need be; return the seconds until the
        debt is paid (0.0: none). For protocols that cannot refuse a message (Yjs): the caller
        waits that long before reading on, so a flood slows its own sender only."""
        cost = min(cost, self.burst)
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate) - cost
        self._at = now
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
