"""The awareness table: y-protocols' clock rules, ownership, limits, removal and expiry."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cowrite.yjs.awareness import (
    AwarenessEntry,
    AwarenessLimits,
    AwarenessTable,
    claimed_name,
    decode_update,
    encode_update,
)
from cowrite.yjs.lib0 import YjsProtocolError


def entry(client: int, clock: int, state: object) -> AwarenessEntry:
    return AwarenessEntry(client, clock, None if state is None else json.dumps(state))


def test_newer_clock_wins_and_null_removes() -> None:
    t = AwarenessTable()
    ch = t.apply([entry(1, 1, {"name": "a"})], owner="c1")
    assert ch.added == (1,) and ch.relay is not None
    assert t.apply([entry(1, 1, {"name": "old"})], owner="c1").relay is None  # same clock
    assert t.apply([entry(1, 0, {"name": "older"})], owner="c1").relay is None
    ch = t.apply([entry(1, 2, {"name": "b"})], owner="c1")
    assert ch.updated == (1,)
    assert json.loads(t.states()[1]) == {"name": "b"}
    # An equal clock with null removes a state we hold (y-protocols' rule).
    ch = t.apply([entry(1, 2, None)], owner="c1")
    assert ch.removed == (1,) and t.states() == {}
    # ...and the clock is remembered: an older state cannot resurrect the client.
    assert t.apply([entry(1, 2, {"name": "b"})], owner="c1").relay is None
    assert t.apply([entry(1, 3, {"name": "c"})], owner="c1").added == (1,)


def test_relay_holds_only_accepted_entries() -> None:
    t = AwarenessTable()
    t.apply([entry(1, 5, "x")], owner="a")
    ch = t.apply([entry(1, 4, "stale"), entry(2, 1, "new")], owner="b")
    assert ch.relay is not None
    assert decode_update(ch.relay) == [entry(2, 1, "new")]


def test_remove_owner_uses_current_clocks_and_forgets() -> None:
    t = AwarenessTable()
    t.apply([entry(1, 7, "a"), entry(2, 3, "b")], owner="conn")
    t.apply([entry(3, 1, "c")], owner="other")
    removal = t.remove_owner("conn")
    assert removal is not None
    assert sorted(decode_update(removal), key=lambda e: e.client_id) == [
        entry(1, 7, None),
        entry(2, 3, None),
    ]
    assert set(t.states()) == {3}
    # A peer holding the states accepts the removal (equal clock + null).
    peer = AwarenessTable()
    peer.apply([entry(1, 7, "a"), entry(2, 3, "b")], owner=None)
    assert peer.apply(decode_update(removal), owner=None).removed == (1, 2)
    # The reconnecting client's unchanged state (same clock) is accepted here at once.
    assert t.apply([entry(1, 7, "a")], owner="conn2").added == (1,)
    assert t.remove_owner("nobody") is None


def test_takeover_moves_ownership() -> None:
    t = AwarenessTable()
    t.apply([entry(1, 1, "a")], owner="old")
    t.apply([entry(1, 2, "a")], owner="new")
    assert t.owner(1) == "new"
    assert t.remove_owner("old") is None
    assert t.remove_owner("new") is not None


def test_limits() -> None:
    t = AwarenessTable(AwarenessLimits(max_clients_per_owner=2, max_clients=3))
    t.apply([entry(1, 1, "a"), entry(2, 1, "b")], owner="c")
    with pytest.raises(YjsProtocolError):
        t.apply([entry(3, 1, "c")], owner="c")
    assert set(t.states()) == {1, 2}  # refused as a whole
    t.apply([entry(3, 1, "c")], owner="d")
    with pytest.raises(YjsProtocolError):
        t.apply([entry(4, 1, "d")], owner="e")
    with pytest.raises(YjsProtocolError):
        decode_update(encode_update([entry(1, 1, "x" * 100)]), AwarenessLimits(max_state_bytes=50))
    with pytest.raises(YjsProtocolError):
        decode_update(
            encode_update([entry(i, 1, 1) for i in range(5)]),
            AwarenessLimits(max_entries_per_update=4),
        )


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x01\x01\x01",  # truncated
        b"\x01\x01\x01\x03abc",  # not JSON
        b"\x01\x01\x01\x02[" + b"",  # truncated string
        b"\xff\xff\xff\x7f",  # lying count
        encode_update([entry(1, 1, 1)]) + b"\x00",  # trailing
    ],
)
def test_decode_refusals(data: bytes) -> None:
    with pytest.raises(YjsProtocolError):
        decode_update(data)


def test_deep_json_is_refused_not_crashing() -> None:
    deep = "[" * 50_000 + "]" * 50_000
    data = encode_update([AwarenessEntry(1, 1, deep)])
    with pytest.raises(YjsProtocolError):
        decode_update(data, AwarenessLimits(max_state_bytes=200_000))


def test_expire() -> None:
    t = AwarenessTable()
    t.apply([entry(1, 1, "a")], owner="c", now=0.0)
    t.apply([entry(2, 1, "b")], owner="c", now=20.0)
    removal = t.expire(now=31.0)
    assert removal is not None and decode_update(removal) == [entry(1, 1, None)]
    assert set(t.states()) == {2}
    assert t.expire(now=31.0) is None


_entries = st.lists(
    st.builds(
        AwarenessEntry,
        st.integers(0, 3),
        st.integers(0, 4),
        st.one_of(st.none(), st.integers(0, 9).map(str)),
    ),
    max_size=12,
)


@given(_entries, st.randoms())
def test_table_is_order_independent_for_distinct_clocks(
    entries: list[AwarenessEntry], rnd: object
) -> None:
    # With at most one entry per (client, clock), the final states do not depend on the order
    # updates arrive in: the highest clock wins, and a null at that clock removes.
    seen: set[tuple[int, int]] = set()
    unique = []
    for e in entries:
        if (e.client_id, e.clock) not in seen:
            seen.add((e.client_id, e.clock))
            unique.append(e)
    results = []
    for perm in itertools.islice(itertools.permutations(unique), 6):
        t = AwarenessTable()
        for e in perm:
            t.apply([e], owner="x")
        results.append(t.states())
    assert all(r == results[0] for r in results)
    t = AwarenessTable()
    for e in unique:
        t.apply([e], owner=None)
    expected = {}
    for client in {e.client_id for e in unique}:
        top = max((e for e in unique if e.client_id == client), key=lambda e: e.clock)
        if top.state is not None:
            expected[client] = top.state
    # A client whose first-seen entries were all nulls is never added; that matches "latest wins".
    assert t.states() == expected


@given(_entries)
def test_relay_applied_to_a_peer_reproduces_the_table(entries: list[AwarenessEntry]) -> None:
    t, peer = AwarenessTable(), AwarenessTable()
    for e in entries:
        ch = t.apply([e], owner="x")
        if ch.relay is not None:
            peer.apply(decode_update(ch.relay), owner=None)
    assert peer.states() == t.states()
    full = t.encode_full()
    fresh = AwarenessTable()
    if full is not None:
        fresh.apply(decode_update(full), owner=None)
    assert fresh.states() == t.states()


def test_echoes_of_a_departed_client_do_not_bring_it_back() -> None:
    table = AwarenessTable(AwarenessLimits(max_clients_per_owner=2))
    table.apply([AwarenessEntry(1, 1, '"watcher"')], "w", 0.0)
    for client in range(100, 110):  # clients come and go; the watcher's provider echoes them
        table.apply([AwarenessEntry(client, 3, '"here"')], f"c{client}", 1.0)
        table.remove_owner(f"c{client}", 2.0)
        change = table.apply([AwarenessEntry(client, 3, '"here"')], "w", 3.0)  # late echo
        assert change.relay is None
        assert table.apply([AwarenessEntry(client, 3, None)], "w", 3.0).relay is None
    assert table.states() == {1: '"watcher"'}  # no ghosts, and none counted against "w"
    back = table.apply([AwarenessEntry(105, 3, '"here"')], "c105-again", 4.0)  # reconnects
    assert back.added == (105,) and table.owner(105) == "c105-again"
    table.expire(40.0, timeout=30.0)  # past the window, the departed are forgotten
    assert table.apply([AwarenessEntry(106, 3, '"here"')], "w2", 40.0).added == (106,)


def test_an_instance_that_went_away_leaves_no_echoes_either() -> None:
    table = AwarenessTable()
    table.apply([AwarenessEntry(9, 2, '"remote"')], None, 0.0)
    table.apply([AwarenessEntry(1, 1, '"me"')], "echoer", 0.0)
    assert table.remove_clients([9], 1.0) is not None
    assert table.apply([AwarenessEntry(9, 2, '"remote"')], "echoer", 1.5).relay is None
    assert table.apply([AwarenessEntry(9, 3, '"newer"')], "echoer", 1.5).added == (9,)  # news


def test_claimed_name_reads_user_name_and_ignores_anything_else() -> None:
    def entry(state: object) -> AwarenessEntry:
        return AwarenessEntry(1, 1, None if state is None else json.dumps(state))

    assert claimed_name([entry({"user": {"name": "  Ada  ", "color": "#fff"}})]) == "Ada"
    assert claimed_name([entry({"user": {"name": "A"}}), entry({"user": {"name": "B"}})]) == "B"
    assert claimed_name([entry({"user": {"name": "x" * 500}})]) == "x" * 100
    for state in [None, {}, {"name": "top"}, {"user": "Ada"}, {"user": {"name": 7}},
                  {"user": {"name": "   "}}, [1, "name"], "name", {"user": None}]:  # fmt: skip
        assert claimed_name([entry(state)]) is None, state


@given(st.lists(st.tuples(_entries, st.integers(0, 100)), max_size=5), st.sampled_from([0, 1]))
def test_nothing_expires_before_expires_at(
    batches: list[tuple[list[AwarenessEntry], int]], leave: int
) -> None:
    """``expires_at`` is the first time ``expire`` changes anything (a state timed out, a
    removal forgotten): nothing before it, something at it; None: nothing ever, until a change."""
    t = AwarenessTable()
    now = 0
    for entries, dt in batches:
        now += dt
        t.apply(entries, owner="c", now=float(now))
    if leave:
        t.remove_owner("c", now=float(now))

    def seen() -> tuple[object, ...]:
        return (dict(t.states()), len(t._states), len(t._departed))

    at = t.expires_at()
    before = seen()
    if at is None:
        assert t.expire(1e9) is None and seen() == before
        return
    assert t.expire(at - 0.001) is None and seen() == before
    t.expire(at)
    assert seen() != before


def test_an_echoed_renewal_is_ignored_without_reading_its_state() -> None:
    t = AwarenessTable()
    t.apply([entry(1, 3, {"a": 1})], owner="c1")
    assert t.ignores(encode_update([entry(1, 3, {"a": 1})]))  # the echo of what we hold
    assert t.ignores(encode_update([entry(1, 2, {"b": 2})]))  # older
    assert not t.ignores(encode_update([entry(1, 4, {"a": 1})]))  # a renewal
    assert not t.ignores(encode_update([entry(1, 3, None)]))  # removes the held state
    assert not t.ignores(encode_update([entry(2, 1, {})]))  # unknown client
    assert not t.ignores(encode_update([entry(1, 3, {}), entry(1, 3, {})]))  # several entries


@given(st.binary(max_size=40))
def test_garbage_is_never_ignored_unread_unless_apply_would_ignore_it(data: bytes) -> None:
    t = AwarenessTable()
    t.apply([entry(c, 5, {"c": c}) for c in range(4)], owner="c1")
    if not t.ignores(data):
        return
    before = t.states()
    try:
        entries = decode_update(data)
    except YjsProtocolError:
        return  # (an ignored entry's state is not read: stale garbage is dropped, not refused)
    change = t.apply(entries, owner="c2")
    assert change.relay is None and t.states() == before


@given(_entries, _entries)
def test_ignored_updates_are_exactly_those_apply_ignores(
    held: list[AwarenessEntry], incoming: list[AwarenessEntry]
) -> None:
    t = AwarenessTable()
    t.apply(held, owner="c1")
    for e in incoming:
        data = encode_update([e])
        ignored = t.ignores(data)
        before = {c: (t.clock(c), s) for c, s in t.states().items()}
        change = t.apply([e], owner="c2")
        assert ignored <= (change.relay is None and not change.added + change.updated)
        if ignored:
            assert {c: (t.clock(c), s) for c, s in t.states().items()} == before
