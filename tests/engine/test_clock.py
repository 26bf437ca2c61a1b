"""Hybrid logical clock: monotonic whatever the physical clock does, and causally ordered."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cowrite.engine.clock import ZERO, HybridClock, Timestamp
from cowrite.engine.errors import InvalidOperation

U64 = 2**64 - 1

replicas = st.integers(min_value=0, max_value=U64)
# Physical readings: arbitrary, including negative and backwards jumps.
physical = st.integers(min_value=-(10**6), max_value=10**13)
timestamps = st.builds(
    Timestamp,
    wall_ms=st.integers(min_value=0, max_value=10**13),
    counter=st.integers(min_value=0, max_value=2**32),
    replica=replicas,
)
actions = st.lists(
    st.one_of(
        st.tuples(st.just("now"), physical),
        st.tuples(st.just("observe"), timestamps),
    ),
    max_size=60,
)


class FakePhysicalClock:
    def __init__(self, ms: int = 0) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


@given(replica=replicas, steps=actions)
def test_now_exceeds_everything_issued_or_observed_under_arbitrary_physical_clock(
    replica: int, steps: list[tuple[str, object]]
) -> None:
    phys = FakePhysicalClock()
    clock = HybridClock(replica, phys)
    seen: list[Timestamp] = []
    for kind, arg in steps:
        if kind == "now":
            assert isinstance(arg, int)
            phys.ms = arg
            ts = clock.now()
            assert all(ts > earlier for earlier in seen)
            assert ts > ZERO
            assert ts.replica == replica
            seen.append(ts)
        else:
            assert isinstance(arg, Timestamp)
            clock.observe(arg)
            seen.append(arg)
        assert clock.last == max([ZERO, *seen])


@given(replica=replicas, before=physical, remote=timestamps, after=physical)
def test_next_now_after_observe_is_greater_than_the_observed_timestamp(
    replica: int, before: int, remote: Timestamp, after: int
) -> None:
    phys = FakePhysicalClock(before)
    clock = HybridClock(replica, phys)
    clock.now()
    clock.observe(remote)
    phys.ms = after
    assert clock.now() > remote


@given(a=replicas, b=replicas, readings=st.lists(st.tuples(physical, physical), max_size=30))
def test_message_exchange_orders_receive_after_send(
    a: int, b: int, readings: list[tuple[int, int]]
) -> None:
    phys_a, phys_b = FakePhysicalClock(), FakePhysicalClock()
    clock_a, clock_b = HybridClock(a, phys_a), HybridClock(b, phys_b)
    for ra, rb in readings:
        phys_a.ms, phys_b.ms = ra, rb
        sent = clock_a.now()
        clock_b.observe(sent)
        reply = clock_b.now()
        assert reply > sent
        clock_a.observe(reply)
        assert clock_a.now() > reply


@given(replica=replicas, start=st.integers(min_value=1, max_value=10**12))
def test_now_follows_physical_time_when_it_advances(replica: int, start: int) -> None:
    phys = FakePhysicalClock(start)
    clock = HybridClock(replica, phys)
    assert clock.now() == Timestamp(start, 0, replica)
    assert clock.now() == Timestamp(start, 1, replica)
    phys.ms = start + 5
    assert clock.now() == Timestamp(start + 5, 0, replica)


def test_now_advances_counter_when_physical_clock_jumps_backwards() -> None:
    phys = FakePhysicalClock(1_000)
    clock = HybridClock(7, phys)
    first = clock.now()
    phys.ms = 10
    assert clock.now() == Timestamp(1_000, first.counter + 1, 7)


def test_last_is_zero_before_any_timestamp() -> None:
    assert HybridClock(1, FakePhysicalClock()).last == ZERO


def test_timestamps_order_by_wall_then_counter_then_replica() -> None:
    assert Timestamp(1, 9, 9) < Timestamp(2, 0, 0)
    assert Timestamp(1, 1, 9) < Timestamp(1, 2, 0)
    assert Timestamp(1, 1, 1) < Timestamp(1, 1, 2)


def test_far_future_remote_timestamp_is_accepted_and_flagged() -> None:
    phys = FakePhysicalClock(1_000)
    clock = HybridClock(3, phys, max_drift_ms=60_000)
    hostile = Timestamp(10**15, 5, 9)
    assert clock.is_far_ahead(hostile)
    assert not clock.is_far_ahead(Timestamp(1_000 + 60_000, 0, 9))
    clock.observe(hostile)
    ts = clock.now()
    assert ts > hostile
    assert ts == Timestamp(10**15, 6, 3)


@pytest.mark.parametrize("replica", [-1, 2**64, True, 1.0, "1", None])
def test_invalid_replica_id_is_rejected(replica: object) -> None:
    with pytest.raises(InvalidOperation):
        HybridClock(replica, FakePhysicalClock())  # type: ignore[arg-type]


def test_negative_max_drift_is_rejected() -> None:
    with pytest.raises(InvalidOperation):
        HybridClock(1, FakePhysicalClock(), max_drift_ms=-1)


@pytest.mark.parametrize(
    "bad",
    [
        Timestamp(-1, 0, 0),
        Timestamp(0, -1, 0),
        Timestamp(0, 0, -1),
        Timestamp(0, 0, 2**64),
        Timestamp(True, 0, 0),
        Timestamp(1.5, 0, 0),  # type: ignore[arg-type]
        (5, 0, 0),
    ],
)
def test_observe_rejects_malformed_timestamp_and_keeps_state(bad: object) -> None:
    clock = HybridClock(1, FakePhysicalClock(10))
    before = clock.now()
    with pytest.raises(InvalidOperation):
        clock.observe(bad)  # type: ignore[arg-type]
    assert clock.last == before
