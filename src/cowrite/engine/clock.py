"""Hybrid logical clock (HLC): timestamps that totally order every write of every replica.

A :class:`Timestamp` is ``(wall_ms, counter, replica)``. Plain tuple ordering is the total order:
wall time first, then the logical counter, then the replica id as a deterministic tie-break. Two
different replicas can therefore never issue equal timestamps, and one replica never issues the
same timestamp twice, so *equal timestamps mean the same write*.

The engine never reads the system clock. A :class:`HybridClock` is given a ``now_ms`` callable by
its owner; in tests that callable may jump backwards or stand still and the clock stays monotonic.

Clock accuracy and hostile peers
--------------------------------
Convergence never depends on local clocks. Last-writer-wins only needs *some* total order that
every replica agrees on, and ``Timestamp`` ordering is such an order whatever the wall values are.
Clock accuracy only affects *freshness*: which of two concurrent writes wins.

``observe`` therefore accepts every well-formed remote timestamp, even one far in the future, and
caps nothing: after observing it, this clock's next timestamps are greater, exactly as the HLC
rules require. The consequence of a remote wall far ahead of physical time is that this replica's
wall component stays pinned to that value (with the counter advancing) until physical time
catches up; ordering stays correct throughout. ``max_drift_ms`` does not change that behaviour.
It is the threshold used by :meth:`HybridClock.is_far_ahead`, so code at the network edge can
detect (log, rate-limit, disconnect) a peer whose clock is badly wrong before handing its
timestamps to the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from cowrite.engine.errors import InvalidOperation

MAX_REPLICA = 2**64 - 1
"""Replica ids are unsigned 64-bit integers."""


class Timestamp(NamedTuple):
    """One point of the HLC total order. Compare with the ordinary tuple operators."""

    wall_ms: int
    counter: int
    replica: int


ZERO = Timestamp(0, 0, 0)
"""The empty timestamp: smaller than every timestamp a :class:`HybridClock` issues."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_replica(replica: object) -> int:
    """Return ``replica`` if it is a valid replica id (an unsigned 64-bit int), else raise.

    Raises :class:`InvalidOperation` for a bool, a non-int or an out-of-range value.
    """
    if not isinstance(replica, int) or isinstance(replica, bool):
        raise InvalidOperation(f"replica id must be an int, got {type(replica).__name__}")
    if not 0 <= replica <= MAX_REPLICA:
        raise InvalidOperation(f"replica id out of the unsigned 64-bit range: {replica}")
    return replica


def check_timestamp(ts: object) -> Timestamp:
    """Return ``ts`` if it is a well-formed :class:`Timestamp`, else raise ``InvalidOperation``.

    Well-formed: a ``Timestamp`` whose wall and counter are non-negative ints and whose replica is
    a valid replica id.
    """
    if not isinstance(ts, Timestamp):
        raise InvalidOperation(f"expected a Timestamp, got {type(ts).__name__}")
    if not (_is_int(ts.wall_ms) and ts.wall_ms >= 0):
        raise InvalidOperation(f"timestamp wall_ms must be a non-negative int: {ts.wall_ms!r}")
    if not (_is_int(ts.counter) and ts.counter >= 0):
        raise InvalidOperation(f"timestamp counter must be a non-negative int: {ts.counter!r}")
    check_replica(ts.replica)
    return ts


class HybridClock:
    """A hybrid logical clock for one replica.

    ``now()`` returns a timestamp strictly greater than every timestamp this clock has issued or
    observed, whatever the physical clock does (it may jump backwards or stand still).
    """

    __slots__ = ("_last", "_now_ms", "max_drift_ms", "replica")

    def __init__(self, replica: int, now_ms: Callable[[], int], max_drift_ms: int = 60_000) -> None:
        self.replica: int = check_replica(replica)
        if not (_is_int(max_drift_ms) and max_drift_ms >= 0):
            raise InvalidOperation(f"max_drift_ms must be a non-negative int: {max_drift_ms!r}")
        self.max_drift_ms: int = max_drift_ms
        self._now_ms = now_ms
        self._last: Timestamp = ZERO

    @property
    def last(self) -> Timestamp:
        """The greatest timestamp issued or observed so far (``ZERO`` initially)."""
        return self._last

    def now(self) -> Timestamp:
        """Issue a new timestamp, strictly greater than every one issued or observed before."""
        last = self._last
        physical = self._now_ms()
        if physical > last.wall_ms:
            ts = Timestamp(physical, 0, self.replica)
        else:
            ts = Timestamp(last.wall_ms, last.counter + 1, self.replica)
        self._last = ts
        return ts

    def observe(self, ts: Timestamp) -> None:
        """Merge a remote timestamp: every later ``now()`` is greater than ``ts``.

        Any well-formed timestamp is accepted, including one far ahead of physical time (see the
        module docstring); a malformed one raises :class:`InvalidOperation`.
        """
        check_timestamp(ts)
        self._last = max(self._last, ts)

    def is_far_ahead(self, ts: Timestamp) -> bool:
        """True if ``ts`` is more than ``max_drift_ms`` ahead of the physical clock now.

        Purely informational: ``observe`` accepts such timestamps regardless.
        """
        return ts.wall_ms - self._now_ms() > self.max_drift_ms
