"""Last-writer-wins register ordered by hybrid-logical-clock timestamps.

A write ``(value, ts)`` is applied iff ``ts`` is greater than the register's current timestamp.
Applying the same write twice is a no-op and the winner is the write with the greatest timestamp
whatever order writes arrive in, so replicas converge.

Ties are impossible: a :class:`~cowrite.engine.clock.Timestamp` includes the replica id and a
replica never issues the same timestamp twice, so equal timestamps mean the same write. (A peer
that sends two different values under one timestamp is broken; the first one seen is kept.)
"""

from __future__ import annotations

from typing import Generic, TypeVar

from cowrite.engine.clock import ZERO, Timestamp, check_timestamp
from cowrite.engine.errors import InvalidOperation

T = TypeVar("T")


class LWWRegister(Generic[T]):
    """A single value; the write with the greatest timestamp wins.

    Initially empty: ``value`` is ``None`` and ``timestamp`` is ``ZERO``.
    """

    __slots__ = ("_timestamp", "_value")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self) -> None:
        self._value: T | None = None
        self._timestamp: Timestamp = ZERO

    @property
    def value(self) -> T | None:
        return self._value

    @property
    def timestamp(self) -> Timestamp:
        return self._timestamp

    def set(self, value: T, ts: Timestamp) -> bool:
        """Apply the write iff ``ts`` is newer than the current one; return whether it applied.

        A malformed timestamp, or ``ZERO`` (the empty register's timestamp, which no clock
        issues), raises :class:`~cowrite.engine.errors.InvalidOperation`.
        """
        check_timestamp(ts)
        if ts == ZERO:
            raise InvalidOperation("ZERO is the empty register's timestamp, not a write's")
        if ts > self._timestamp:
            self._value = value
            self._timestamp = ts
            return True
        return False

    def merge(self, other: LWWRegister[T]) -> None:
        """Adopt ``other``'s write if it is newer (an empty register changes nothing)."""
        if other._timestamp > self._timestamp:
            self._value = other._value
            self._timestamp = other._timestamp

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LWWRegister):
            return NotImplemented
        return self._timestamp == other._timestamp and bool(self._value == other._value)

    def __repr__(self) -> str:
        return f"LWWRegister(value={self._value!r}, timestamp={self._timestamp!r})"
