"""LWWRegister: greatest timestamp wins, whatever the delivery order and duplicates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cowrite.engine.clock import ZERO, Timestamp
from cowrite.engine.errors import InvalidOperation
from cowrite.engine.register import LWWRegister

# Small ranges so equal walls/counters (tie-break on replica) happen often.
timestamps = st.builds(
    Timestamp,
    wall_ms=st.integers(min_value=0, max_value=5),
    counter=st.integers(min_value=0, max_value=3),
    replica=st.integers(min_value=0, max_value=4),
).filter(lambda ts: ts != ZERO)  # no clock issues ZERO; set() rejects it


def value_of(ts: Timestamp) -> str:
    # Equal timestamps mean the same write, so a write's value is a function of its timestamp.
    return f"v{ts.wall_ms}.{ts.counter}.{ts.replica}"


def reg(*writes: Timestamp) -> LWWRegister[str]:
    r: LWWRegister[str] = LWWRegister()
    for ts in writes:
        r.set(value_of(ts), ts)
    return r


def merged(*regs: LWWRegister[str]) -> LWWRegister[str]:
    out: LWWRegister[str] = LWWRegister()
    for r in regs:
        out.merge(r)
    return out


registers = st.lists(timestamps, max_size=5).map(lambda ws: reg(*ws))


def test_new_register_is_empty() -> None:
    r: LWWRegister[int] = LWWRegister()
    assert r.value is None
    assert r.timestamp == ZERO


@given(a=registers, b=registers)
def test_merge_is_commutative(a: LWWRegister[str], b: LWWRegister[str]) -> None:
    assert merged(a, b) == merged(b, a)


@given(a=registers, b=registers, c=registers)
def test_merge_is_associative(
    a: LWWRegister[str], b: LWWRegister[str], c: LWWRegister[str]
) -> None:
    left = merged(a)
    left.merge(merged(b, c))
    right = merged(a, b)
    right.merge(c)
    assert left == right


@given(a=registers, b=registers)
def test_merge_is_idempotent(a: LWWRegister[str], b: LWWRegister[str]) -> None:
    assert merged(a, b) == merged(a, b, b, a)
    x = merged(a)
    x.merge(x)
    assert x == merged(a)


@given(writes=st.lists(timestamps, min_size=1, max_size=20), data=st.data())
def test_any_delivery_order_with_duplicates_converges_to_greatest_timestamp(
    writes: list[Timestamp], data: st.DataObject
) -> None:
    order = data.draw(st.permutations(writes))
    dupes = data.draw(st.lists(st.sampled_from(writes), max_size=10))
    r = reg(*order, *dupes)
    winner = max(writes)
    assert r.timestamp == winner
    assert r.value == value_of(winner)
    assert r == reg(*writes)


@given(current=timestamps, incoming=timestamps)
def test_set_applies_iff_timestamp_is_greater(current: Timestamp, incoming: Timestamp) -> None:
    r = reg(current)
    applied = r.set("new", incoming)
    assert applied == (incoming > current)
    assert r.timestamp == max(current, incoming)
    assert r.value == ("new" if incoming > current else value_of(current))


@given(ts=timestamps)
def test_applying_the_same_write_twice_is_a_no_op(ts: Timestamp) -> None:
    r = reg(ts)
    assert not r.set(value_of(ts), ts)
    assert r == reg(ts)


def test_equal_wall_and_counter_are_broken_by_replica_id() -> None:
    r = reg(Timestamp(10, 0, 2), Timestamp(10, 0, 1))
    assert r.value == value_of(Timestamp(10, 0, 2))


def test_merging_an_empty_register_changes_nothing() -> None:
    r = reg(Timestamp(1, 0, 1))
    r.merge(LWWRegister())
    assert r == reg(Timestamp(1, 0, 1))


def test_register_holds_any_value_type_including_none() -> None:
    r: LWWRegister[dict[str, int] | None] = LWWRegister()
    r.set({"a": 1}, Timestamp(1, 0, 1))
    assert r.value == {"a": 1}
    r.set(None, Timestamp(2, 0, 1))
    assert r.value is None
    assert r.timestamp == Timestamp(2, 0, 1)


@pytest.mark.parametrize("bad", [(5, 0, 1), Timestamp(-1, 0, 0), Timestamp(1, 0, 2**64), None])
def test_set_rejects_malformed_timestamp(bad: object) -> None:
    r: LWWRegister[str] = LWWRegister()
    with pytest.raises(InvalidOperation):
        r.set("x", bad)  # type: ignore[arg-type]
    assert r.timestamp == ZERO
