"""GCounter and PNCounter: merge laws, convergence under any delivery, deltas, validation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cowrite.engine.counter import GCounter, PNCounter
from cowrite.engine.errors import InvalidOperation

U64 = 2**64 - 1

# A few replicas so states overlap often; plus the extremes of the id range.
replica_ids = st.sampled_from([0, 1, 2, 3, 12345, U64])
g_states = st.dictionaries(replica_ids, st.integers(min_value=0, max_value=10**9))
pn_states = st.tuples(g_states, g_states)
g_ops = st.lists(st.tuples(replica_ids, st.integers(min_value=0, max_value=1000)), max_size=40)
pn_ops = st.lists(st.tuples(replica_ids, st.integers(min_value=-1000, max_value=1000)), max_size=40)


def g(state: dict[int, int]) -> GCounter:
    return GCounter.from_state(state)


def pn(state: tuple[dict[int, int], dict[int, int]]) -> PNCounter:
    return PNCounter.from_state(state)


def g_merged(*states: dict[int, int]) -> GCounter:
    out = GCounter()
    for s in states:
        out.merge(s)
    return out


def pn_merged(*states: tuple[dict[int, int], dict[int, int]]) -> PNCounter:
    out = PNCounter()
    for s in states:
        out.merge(s)
    return out


# --- GCounter -------------------------------------------------------------------------------


@given(a=g_states, b=g_states)
def test_gcounter_merge_is_commutative(a: dict[int, int], b: dict[int, int]) -> None:
    assert g_merged(a, b) == g_merged(b, a)


@given(a=g_states, b=g_states, c=g_states)
def test_gcounter_merge_is_associative(
    a: dict[int, int], b: dict[int, int], c: dict[int, int]
) -> None:
    left = g(a)
    left.merge(g_merged(b, c))
    right = g_merged(a, b)
    right.merge(c)
    assert left == right


@given(a=g_states, b=g_states)
def test_gcounter_merge_is_idempotent(a: dict[int, int], b: dict[int, int]) -> None:
    once = g_merged(a, b)
    twice = g_merged(a, b, b)
    assert once == twice
    self_merged = g(a)
    self_merged.merge(g(a))
    assert self_merged == g(a)


@given(a=g_states, b=g_states)
def test_gcounter_merge_is_pointwise_max(a: dict[int, int], b: dict[int, int]) -> None:
    merged = g_merged(a, b).state()
    for r in set(a) | set(b):
        assert merged.get(r, 0) == max(a.get(r, 0), b.get(r, 0))


@given(ops=g_ops)
def test_gcounter_value_is_sum_of_increments(ops: list[tuple[int, int]]) -> None:
    c = GCounter()
    for r, amount in ops:
        c.increment(r, amount)
    assert c.value == sum(amount for _, amount in ops)


@given(ops=g_ops, data=st.data())
def test_gcounter_converges_under_any_delivery_order_with_duplicates(
    ops: list[tuple[int, int]], data: st.DataObject
) -> None:
    # Each replica increments its own entry; snapshots of its state are shipped over time.
    replicas: dict[int, GCounter] = {}
    snapshots: list[dict[int, int]] = []
    for r, amount in ops:
        replicas.setdefault(r, GCounter()).increment(r, amount)
        snapshots.append(replicas[r].state())
    full = [c.state() for c in replicas.values()]
    deliveries = snapshots + full
    order = data.draw(st.permutations(deliveries))
    dupes = data.draw(st.lists(st.sampled_from(deliveries), max_size=10)) if deliveries else []
    receiver = GCounter()
    for s in [*order, *dupes]:
        receiver.merge(s)
    assert receiver == g_merged(*full)
    assert receiver.value == sum(amount for _, amount in ops)


@given(a=g_states, b=g_states)
def test_gcounter_delta_since_seen_merged_into_peer_gives_full_state(
    a: dict[int, int], b: dict[int, int]
) -> None:
    sender = g(a)
    peer = g(b)
    delta = sender.delta_since(peer.state())
    peer.merge(delta)
    assert peer == g_merged(a, b)


@given(a=g_states, extra=g_ops)
def test_gcounter_delta_since_earlier_state_contains_only_newer_entries(
    a: dict[int, int], extra: list[tuple[int, int]]
) -> None:
    c = g(a)
    seen = c.state()
    for r, amount in extra:
        c.increment(r, amount)
    delta = c.delta_since(seen)
    assert all(total > seen.get(r, 0) for r, total in delta.items())
    assert g_merged(seen, delta) == c
    assert c.delta_since(c.state()) == {}


def test_gcounter_state_is_a_copy() -> None:
    c = GCounter()
    c.increment(1, 2)
    s = c.state()
    s[1] = 100
    assert c.value == 2


def test_gcounter_zero_entries_do_not_affect_equality() -> None:
    c = GCounter()
    c.increment(5, 0)
    assert c == GCounter.from_state({5: 0}) == GCounter()
    assert c.state() == {}


@pytest.mark.parametrize("amount", [-1, True, False, 1.0, "1", None])
def test_gcounter_increment_rejects_bad_amount(amount: object) -> None:
    c = GCounter()
    with pytest.raises(InvalidOperation):
        c.increment(1, amount)  # type: ignore[arg-type]
    assert c.value == 0


@pytest.mark.parametrize("replica", [-1, 2**64, True, "a", None])
def test_gcounter_increment_rejects_bad_replica(replica: object) -> None:
    with pytest.raises(InvalidOperation):
        GCounter().increment(replica)  # type: ignore[arg-type]


@pytest.mark.parametrize("state", [{1: -1}, {1: True}, {-1: 3}, {"a": 3}, {1: 2.0}, [1, 2]])
def test_gcounter_merge_rejects_malformed_state_without_change(state: object) -> None:
    c = GCounter.from_state({0: 4})
    with pytest.raises(InvalidOperation):
        c.merge(state)  # type: ignore[arg-type]
    with pytest.raises(InvalidOperation):
        GCounter.from_state(state)  # type: ignore[arg-type]
    assert c.state() == {0: 4}


def test_gcounter_merge_is_atomic_when_a_later_entry_is_bad() -> None:
    c = GCounter()
    with pytest.raises(InvalidOperation):
        c.merge({1: 5, 2: -1})
    assert c.state() == {}


# --- PNCounter ------------------------------------------------------------------------------


@given(a=pn_states, b=pn_states)
def test_pncounter_merge_is_commutative(
    a: tuple[dict[int, int], dict[int, int]], b: tuple[dict[int, int], dict[int, int]]
) -> None:
    assert pn_merged(a, b) == pn_merged(b, a)


@given(a=pn_states, b=pn_states, c=pn_states)
def test_pncounter_merge_is_associative(
    a: tuple[dict[int, int], dict[int, int]],
    b: tuple[dict[int, int], dict[int, int]],
    c: tuple[dict[int, int], dict[int, int]],
) -> None:
    left = pn(a)
    left.merge(pn_merged(b, c))
    right = pn_merged(a, b)
    right.merge(c)
    assert left == right


@given(a=pn_states, b=pn_states)
def test_pncounter_merge_is_idempotent(
    a: tuple[dict[int, int], dict[int, int]], b: tuple[dict[int, int], dict[int, int]]
) -> None:
    assert pn_merged(a, b) == pn_merged(a, b, b, a)
    x = pn(a)
    x.merge(pn(a))
    assert x == pn(a)


@given(ops=pn_ops, data=st.data())
def test_pncounter_value_is_sum_of_all_adds_after_merging_all_replicas_in_any_order(
    ops: list[tuple[int, int]], data: st.DataObject
) -> None:
    replicas: dict[int, PNCounter] = {}
    snapshots: list[tuple[dict[int, int], dict[int, int]]] = []
    for r, amount in ops:
        replicas.setdefault(r, PNCounter()).add(r, amount)
        snapshots.append(replicas[r].state())
    full = [c.state() for c in replicas.values()]
    deliveries = snapshots + full
    order = data.draw(st.permutations(deliveries))
    dupes = data.draw(st.lists(st.sampled_from(deliveries), max_size=10)) if deliveries else []
    receiver = PNCounter()
    for s in [*order, *dupes]:
        receiver.merge(s)
    assert receiver.value == sum(amount for _, amount in ops)
    assert receiver == pn_merged(*full)


@given(a=pn_states, b=pn_states)
def test_pncounter_delta_since_seen_merged_into_peer_gives_full_state(
    a: tuple[dict[int, int], dict[int, int]], b: tuple[dict[int, int], dict[int, int]]
) -> None:
    sender = pn(a)
    peer = pn(b)
    peer.merge(sender.delta_since(peer.state()))
    assert peer == pn_merged(a, b)


def test_pncounter_negative_add_decrements() -> None:
    c = PNCounter()
    c.add(1, 5)
    c.add(2, -8)
    c.add(1, 0)
    assert c.value == -3
    assert c.state() == ({1: 5}, {2: 8})


@pytest.mark.parametrize("amount", [True, False, 1.0, "1", None])
def test_pncounter_add_rejects_bad_amount(amount: object) -> None:
    c = PNCounter()
    with pytest.raises(InvalidOperation):
        c.add(1, amount)  # type: ignore[arg-type]
    assert c.value == 0


@pytest.mark.parametrize("replica", [-1, 2**64, True, "a", None])
def test_pncounter_add_rejects_bad_replica(replica: object) -> None:
    with pytest.raises(InvalidOperation):
        PNCounter().add(replica, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("state", [({1: 2},), ({1: 2}, {1: -1}), ({1: 2}, [1]), [{1: 2}, {}], None])
def test_pncounter_merge_rejects_malformed_state_without_change(state: object) -> None:
    c = PNCounter.from_state(({0: 4}, {0: 1}))
    with pytest.raises(InvalidOperation):
        c.merge(state)  # type: ignore[arg-type]
    with pytest.raises(InvalidOperation):
        PNCounter.from_state(state)  # type: ignore[arg-type]
    assert c.state() == ({0: 4}, {0: 1})
