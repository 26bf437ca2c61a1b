"""State-based counters: a grow-only counter and a positive-negative counter.

A :class:`GCounter` keeps one non-negative total per replica; its value is the sum and merging is
the pointwise maximum, which is commutative, associative and idempotent, so replicas converge
whatever order (and however many times) states are delivered. Each replica must only increment
its own entry. A :class:`PNCounter` is a pair of GCounters: increments and decrements.

States never hold zero entries (a missing entry means zero), so equal states compare equal.

Inside a document, counter ops get an id and are deduplicated by the document's version vector;
for these standalone types, state merge is the contract.
"""

from __future__ import annotations

from collections.abc import Mapping

from cowrite.engine.clock import check_replica
from cowrite.engine.errors import InvalidOperation

GCounterState = dict[int, int]
PNCounterState = tuple[dict[int, int], dict[int, int]]


def _check_amount(amount: object, *, allow_negative: bool) -> int:
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise InvalidOperation(f"counter amount must be an int, got {type(amount).__name__}")
    if amount < 0 and not allow_negative:
        raise InvalidOperation(f"grow-only counter amount must be non-negative: {amount}")
    return amount


def _checked_state(state: object) -> dict[int, int]:
    """Validate a GCounter state from outside; return a normalised copy (no zero entries)."""
    if not isinstance(state, Mapping):
        raise InvalidOperation(f"GCounter state must be a mapping, got {type(state).__name__}")
    out: dict[int, int] = {}
    for replica, total in state.items():
        check_replica(replica)
        _check_amount(total, allow_negative=False)
        if total:
            out[replica] = total
    return out


class GCounter:
    """A grow-only counter: per-replica non-negative totals, merged by pointwise maximum."""

    __slots__ = ("_totals",)
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self) -> None:
        self._totals: dict[int, int] = {}

    @classmethod
    def from_state(cls, state: Mapping[int, int]) -> GCounter:
        """Build a counter from a state as returned by :meth:`state`."""
        counter = cls()
        counter._totals = _checked_state(state)
        return counter

    def state(self) -> GCounterState:
        """A copy of the per-replica totals (zero entries omitted)."""
        return dict(self._totals)

    @property
    def value(self) -> int:
        return sum(self._totals.values())

    def increment(self, replica: int, amount: int = 1) -> None:
        """Add ``amount`` (a non-negative int, not a bool) to ``replica``'s total."""
        check_replica(replica)
        _check_amount(amount, allow_negative=False)
        if amount:
            self._totals[replica] = self._totals.get(replica, 0) + amount

    def merge(self, other: GCounter | Mapping[int, int]) -> None:
        """Merge another counter or state into this one (pointwise maximum).

        A malformed state raises :class:`InvalidOperation` and leaves this counter unchanged.
        """
        incoming = other._totals if isinstance(other, GCounter) else _checked_state(other)
        self._merge_totals(incoming)

    def _merge_totals(self, incoming: Mapping[int, int]) -> None:
        totals = self._totals
        for replica, total in incoming.items():
            if total > totals.get(replica, 0):
                totals[replica] = total

    def delta_since(self, seen: GCounter | Mapping[int, int]) -> GCounterState:
        """The entries a peer whose state is ``seen`` lacks: merging them in gives it our state.

        Only entries greater than the peer's are returned; ``seen`` may be any earlier (or
        concurrent) state.
        """
        peer = seen._totals if isinstance(seen, GCounter) else _checked_state(seen)
        return self._delta(peer)

    def _delta(self, peer: Mapping[int, int]) -> GCounterState:
        return {r: t for r, t in self._totals.items() if t > peer.get(r, 0)}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GCounter):
            return NotImplemented
        return self._totals == other._totals

    def __repr__(self) -> str:
        return f"GCounter({self._totals!r})"


class PNCounter:
    """A counter that can go up and down: two :class:`GCounter` (increments, decrements)."""

    __slots__ = ("_dec", "_inc")
    __hash__ = None  # type: ignore[assignment]  # mutable

    def __init__(self) -> None:
        self._inc = GCounter()
        self._dec = GCounter()

    @classmethod
    def from_state(cls, state: tuple[Mapping[int, int], Mapping[int, int]]) -> PNCounter:
        """Build a counter from a state as returned by :meth:`state`."""
        raw_inc, raw_dec = _checked_pair(state)
        inc, dec = _checked_state(raw_inc), _checked_state(raw_dec)
        counter = cls()
        counter._inc._totals = inc
        counter._dec._totals = dec
        return counter

    def state(self) -> PNCounterState:
        """Copies of the (increments, decrements) per-replica totals."""
        return (self._inc.state(), self._dec.state())

    @property
    def value(self) -> int:
        return self._inc.value - self._dec.value

    def add(self, replica: int, amount: int) -> None:
        """Add ``amount`` (any int, not a bool; negative decrements) on behalf of ``replica``."""
        check_replica(replica)
        _check_amount(amount, allow_negative=True)
        if amount > 0:
            self._inc.increment(replica, amount)
        elif amount < 0:
            self._dec.increment(replica, -amount)

    def merge(self, other: PNCounter | tuple[Mapping[int, int], Mapping[int, int]]) -> None:
        """Merge another counter or state into this one.

        A malformed state raises :class:`InvalidOperation` and leaves this counter unchanged.
        """
        if isinstance(other, PNCounter):
            inc: Mapping[int, int] = other._inc._totals
            dec: Mapping[int, int] = other._dec._totals
        else:
            raw_inc, raw_dec = _checked_pair(other)
            inc, dec = _checked_state(raw_inc), _checked_state(raw_dec)
        self._inc._merge_totals(inc)
        self._dec._merge_totals(dec)

    def delta_since(self, seen: tuple[Mapping[int, int], Mapping[int, int]]) -> PNCounterState:
        """The (increments, decrements) entries a peer whose state is ``seen`` lacks."""
        raw_inc, raw_dec = _checked_pair(seen)
        inc, dec = _checked_state(raw_inc), _checked_state(raw_dec)
        return (self._inc._delta(inc), self._dec._delta(dec))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PNCounter):
            return NotImplemented
        return self._inc == other._inc and self._dec == other._dec

    def __repr__(self) -> str:
        return f"PNCounter(inc={self._inc.state()!r}, dec={self._dec.state()!r})"


def _checked_pair(state: object) -> tuple[object, object]:
    if not isinstance(state, tuple) or len(state) != 2:
        raise InvalidOperation("PNCounter state must be a (increments, decrements) pair")
    return state[0], state[1]
