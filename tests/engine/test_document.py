"""Laws and API contract of ``cowrite.engine.document.Document``.

Merge is commutative, associative and idempotent; deltas bring a replica at a version up to
date; ops wait for their causal dependencies; local API misuse raises ``InvalidOperation`` and
changes nothing; maps and registers resolve by hybrid-logical-clock timestamp; counters add;
nested nodes replicate; the ``Change`` events of a merge replay the remote edit as index ops.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cowrite.engine import ot
from cowrite.engine.clock import Timestamp
from cowrite.engine.document import DELETED, Document
from cowrite.engine.errors import InvalidOperation
from cowrite.engine.handles import Handle, List, Map, Text
from cowrite.engine.ids import NO_ID, pack
from cowrite.engine.ops import AddOp, InsertOp, NewNode, NodeKind, SetOp

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CHARS = st.one_of(st.sampled_from("ab \n😀𝄞é"), st.characters())
TEXTS = st.text(CHARS, min_size=1, max_size=5)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(CHARS, max_size=3),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text("ab", max_size=2), inner, max_size=3)
    ),
    max_leaves=5,
)
ROOTS = (
    ("t", NodeKind.TEXT),
    ("l", NodeKind.LIST),
    ("m", NodeKind.MAP),
    ("r", NodeKind.REGISTER),
    ("c", NodeKind.COUNTER),
)


def new_doc(replica: int, now: int | None = None, **kwargs: Any) -> Document:
    clock = (lambda: now) if now is not None else (lambda: 0)
    doc = Document(replica, now_ms=clock, **kwargs)
    for name, kind in ROOTS:
        doc.root(kind, name)
    return doc


def full_sync(docs: list[Document]) -> None:
    for _ in range(len(docs) + 2):
        states = [d.encode_state() for d in docs]
        for d in docs:
            for s in states:
                d.merge(s)
        if all(d.pending_ops == 0 and d.version == docs[0].version for d in docs):
            return
    raise AssertionError("replicas did not converge")


def load(data: bytes, replica: int) -> Document:
    """A new replica from ``data``, knowing every named root (as ``new_doc`` replicas do)."""
    doc = Document.load(data, replica, now_ms=lambda: 0)
    for name, kind in ROOTS:
        doc.root(kind, name)
    return doc


def snapshot(doc: Document) -> tuple[Any, dict[int, int], int]:
    return doc.to_json(), doc.version, doc.pending_ops


def random_edit(doc: Document, data: st.DataObject) -> None:
    """One random local edit on one of the roots (or a nested node under the map)."""
    what = data.draw(
        st.sampled_from(["text+", "text+", "text-", "list+", "list-", "map", "reg", "ctr", "new"])
    )
    t, lst, m = doc.text("t"), doc.list("l"), doc.map("m")
    if what == "text+":
        pos = data.draw(st.integers(0, len(t)))
        text = data.draw(TEXTS)
        if data.draw(st.booleans()):  # typed key by key
            for k, ch in enumerate(text):
                t.insert(pos + k, ch)
        else:
            t.insert(pos, text)
    elif what == "text-" and len(t):
        pos = data.draw(st.integers(0, len(t) - 1))
        t.delete(pos, data.draw(st.integers(1, len(t) - pos)))
    elif what == "list+":
        lst.insert(data.draw(st.integers(0, len(lst))), data.draw(st.lists(JSON, min_size=1)))
    elif what == "list-" and len(lst):
        pos = data.draw(st.integers(0, len(lst) - 1))
        lst.delete(pos, data.draw(st.integers(1, len(lst) - pos)))
    elif what == "map":
        key = data.draw(st.sampled_from("xyz"))
        if data.draw(st.booleans()):
            m.set(key, data.draw(JSON))
        else:
            m.delete(key)
    elif what == "reg":
        doc.register("r").set(data.draw(JSON))
    elif what == "ctr":
        doc.counter("c").add(data.draw(st.integers(-100, 100)))
    elif what == "new":
        child = m.get("n")
        if not isinstance(child, Text) or data.draw(st.booleans()):
            child = m.set_new("n", NodeKind.TEXT)
        child.insert(data.draw(st.integers(0, len(child))), data.draw(TEXTS))


def random_history(data: st.DataObject, n: int = 3) -> tuple[list[Document], list[bytes]]:
    """Replicas editing concurrently with partial syncs; returns them and a pile of deltas.

    Each delta is some replica's ``delta_since`` one of the versions it had earlier, so deltas
    overlap, and some of them lack dependencies that only other deltas carry.
    """
    docs = [new_doc(r + 1, now=10 * r) for r in range(n)]
    seen: list[list[dict[int, int]]] = [[{}] for _ in docs]
    deltas: list[bytes] = []
    for _ in range(data.draw(st.integers(1, 12), label="steps")):
        r = data.draw(st.integers(0, n - 1))
        step = data.draw(st.sampled_from(["edit", "edit", "edit", "sync", "delta"]))
        if step == "edit":
            random_edit(docs[r], data)
        elif step == "sync":
            other = data.draw(st.integers(0, n - 1))
            docs[r].merge(docs[other].delta_since(docs[r].version))
        else:
            deltas.append(docs[r].delta_since(data.draw(st.sampled_from(seen[r]))))
        seen[r].append(docs[r].version)
    for r, doc in enumerate(docs):
        deltas.append(doc.delta_since(data.draw(st.sampled_from(seen[r]))))
    return docs, deltas


# ---------------------------------------------------------------------------------------------
# Merge laws
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data())
def test_merge_is_commutative_and_idempotent(data: st.DataObject) -> None:
    _, deltas = random_history(data)
    reference = new_doc(99)
    for d in deltas:
        reference.merge(d)
    reference.check_invariants()
    order = data.draw(st.permutations(deltas), label="order")
    dupes = data.draw(st.lists(st.sampled_from(deltas), max_size=4), label="duplicates")
    shuffled = data.draw(st.permutations(order + dupes), label="with duplicates")
    other = new_doc(98)
    for d in shuffled:
        other.merge(d)
        other.check_invariants()
    assert other.to_json() == reference.to_json()
    assert other.version == reference.version
    # merging everything again changes nothing
    before = other.to_json(), other.version
    for d in deltas:
        assert other.merge(d) == []
    assert (other.to_json(), other.version) == before


@SETTINGS
@given(data=st.data())
def test_merged_deltas_converge_to_the_sources(data: st.DataObject) -> None:
    docs, deltas = random_history(data)
    target = new_doc(50)
    for d in data.draw(st.permutations(deltas)):
        target.merge(d)
    for doc in docs:
        target.merge(doc.encode_state())
    assert target.pending_ops == 0
    full_sync(docs)
    assert target.to_json() == docs[0].to_json()
    assert target.version == docs[0].version


@SETTINGS
@given(data=st.data())
def test_merge_is_associative(data: st.DataObject) -> None:
    """merge(merge(a, b), c) == merge(a, merge(b, c)), with states as the elements."""
    docs, _ = random_history(data)
    a, b, c = (d.encode_state() for d in docs)

    def union(*parts: bytes) -> Document:
        doc = new_doc(77)
        for p in parts:
            doc.merge(p)
        return doc

    left = union(union(a, b).encode_state(), c)
    right = union(a, union(b, c).encode_state())
    flat = union(c, b, a)
    for doc in (left, right):
        doc.check_invariants()
        assert doc.to_json() == flat.to_json()
        assert doc.version == flat.version
        assert doc.pending_ops == 0


@SETTINGS
@given(data=st.data())
def test_delta_since_brings_a_replica_at_that_version_up_to_date(data: st.DataObject) -> None:
    source = new_doc(1)
    versions: list[tuple[dict[int, int], bytes]] = [({}, source.encode_state())]
    for _ in range(data.draw(st.integers(1, 15))):
        random_edit(source, data)
        versions.append((source.version, source.encode_state()))
    version, state = data.draw(st.sampled_from(versions), label="old version")
    replica = Document.load(state, replica=2)
    assert replica.version == version
    replica.merge(source.delta_since(version))
    replica.check_invariants()
    assert replica.pending_ops == 0
    assert replica.version == source.version
    assert replica.to_json() == Document.load(source.encode_state(), 3).to_json()
    for name, kind in ROOTS:
        replica.root(kind, name)
    assert replica.to_json() == source.to_json()


@SETTINGS
@given(data=st.data())
def test_delta_since_a_concurrent_version(data: st.DataObject) -> None:
    """A replica with its own unsent edits asks with its version: it gets exactly what it lacks."""
    a, b = new_doc(1), new_doc(2)
    for _ in range(data.draw(st.integers(0, 5))):
        random_edit(a, data)
    b.merge(a.encode_state())
    for _ in range(data.draw(st.integers(1, 6))):
        random_edit(data.draw(st.sampled_from([a, b])), data)
    b.merge(a.delta_since(b.version))
    a.merge(b.delta_since(a.version))
    assert a.pending_ops == b.pending_ops == 0
    assert a.version == b.version
    assert a.to_json() == b.to_json()


def test_delta_since_mid_run_sends_the_unseen_suffix_only() -> None:
    a = new_doc(1)
    t = a.text("t")
    for k, ch in enumerate("hello"):
        t.insert(k, ch)
    b = Document.load(a.encode_state(), 2)
    mid = a.version
    for k, ch in enumerate(" world"):
        t.insert(5 + k, ch)  # extends the same run: one item "hello world"
    changes = b.merge(a.delta_since(mid))
    assert [c.delta for c in changes] == [[5, " world"]]
    assert b.merge(a.delta_since(mid)) == []  # a second time: nothing new
    assert str(b.text("t")) == "hello world"
    assert b.version == a.version


def test_op_lists_exchange_directly_with_a_shared_replica_list() -> None:
    replicas = [5, 1, 9]
    a = new_doc(1, now=1, replicas=replicas)  # op objects carry no root table: the
    b = new_doc(9, now=2, replicas=replicas)  # receivers must know the named roots already
    a.text("t").insert(0, "abc")
    b.text("t").insert(0, "xyz")
    b.map("m").set("k", 1)
    va, vb = dict(a.version), dict(b.version)
    a.apply_ops(b.ops_since(va))
    b.apply_ops(a.ops_since(vb))
    assert a.pending_ops == b.pending_ops == 0
    assert a.to_json() == b.to_json()
    assert a.version == b.version == {1: 3, 9: 4}


# ---------------------------------------------------------------------------------------------
# Causal delivery
# ---------------------------------------------------------------------------------------------


def test_ops_with_missing_dependencies_wait_in_pending() -> None:
    a = new_doc(1)
    t = a.text("t")
    t.insert(0, "abc")
    v1 = a.version
    a.counter("c").add(5)
    t.delete(1, 1)
    a.map("m").set("k", "v")
    v2 = a.version
    t.insert(2, "Z")
    later = a.delta_since(v2)
    middle = a.delta_since(v1)

    b = new_doc(2)
    before = b.to_json()
    assert b.merge(later) == []
    assert b.pending_ops == 1
    assert b.to_json() == before
    assert b.version == {}
    b.check_invariants()

    b.merge(middle)  # still lacks the first insert: everything waits
    assert b.to_json() == before
    assert b.pending_ops >= 4

    changes = b.merge(a.delta_since({}))
    assert b.pending_ops == 0
    assert b.to_json() == a.to_json()
    assert b.version == a.version
    assert changes  # the queued ops were applied by this merge and reported
    b.check_invariants()


def test_cross_replica_dependencies_wait_for_the_other_replica() -> None:
    a, b, c = new_doc(1), new_doc(2), new_doc(3)
    a.text("t").insert(0, "hello")
    b.merge(a.encode_state())
    b.text("t").insert(5, " world")  # origin: a's "o"
    b.map("m").set_new("nested", NodeKind.LIST).insert(0, [1, 2])
    c.merge(b.delta_since(a.version))  # b's ops only
    assert c.pending_ops > 0
    assert c.to_json()["t"] == ""
    c.merge(a.encode_state())
    assert c.pending_ops == 0
    assert c.to_json() == b.to_json()


def test_ops_on_a_nested_node_wait_for_its_creation() -> None:
    a = new_doc(1)
    child = a.map("m").set_new("doc", NodeKind.TEXT)
    v = a.version
    child.insert(0, "nested")
    b = new_doc(2)
    b.merge(a.delta_since(v))
    assert b.pending_ops == 1
    assert b.to_json()["m"] == {}
    b.merge(a.encode_state())
    assert b.pending_ops == 0
    assert b.to_json()["m"] == {"doc": "nested"}


def test_redelivering_a_waiting_delta_does_not_grow_the_queue() -> None:
    a = new_doc(1)
    a.counter("c").add(1)
    v1 = a.version
    a.counter("c").add(2)
    gap = a.delta_since(v1)  # needs the first add
    b = new_doc(2)
    b.merge(gap)
    once = b.pending_ops
    for _ in range(5):
        b.merge(gap)
    assert b.pending_ops == once == 1


# ---------------------------------------------------------------------------------------------
# API errors: InvalidOperation, and nothing changes
# ---------------------------------------------------------------------------------------------


def _bad_json_values() -> list[Any]:
    deep: Any = 0
    for _ in range(100):
        deep = [deep]
    return [
        math.nan,
        math.inf,
        -math.inf,
        {1: 2},
        {"a": math.nan},
        [1, math.inf],
        1 << 64,
        -(1 << 63) - 1,
        b"bytes",
        {1, 2},
        object(),
        deep,
    ]


def _error_cases() -> list[tuple[str, Any]]:
    doc_cases: list[tuple[str, Any]] = [
        ("text insert before start", lambda d: d.text("t").insert(-1, "x")),
        ("text insert past end", lambda d: d.text("t").insert(4, "x")),
        ("text delete past end", lambda d: d.text("t").delete(1, 3)),
        ("text delete negative pos", lambda d: d.text("t").delete(-1, 1)),
        ("text delete negative count", lambda d: d.text("t").delete(0, -1)),
        ("text gets a list", lambda d: d.insert(d.text("t").id, 0, ["x"])),
        ("list gets a str", lambda d: d.insert(d.list("l").id, 0, "abc")),
        ("list insert past end", lambda d: d.list("l").insert(3, [1])),
        ("list delete past end", lambda d: d.list("l").delete(1, 2)),
        ("list move out of range", lambda d: d.list("l").move(0, 2)),
        ("move a nested node", lambda d: d.list("l").move(1, 0)),
        ("insert into a map", lambda d: d.insert(d.map("m").id, 0, "x")),
        ("delete in a map", lambda d: d.delete(d.map("m").id, 0, 1)),
        ("set on a text", lambda d: d.set(d.text("t").id, "k", 1)),
        ("set on a list", lambda d: d.set(d.list("l").id, None, 1)),
        ("set on a counter", lambda d: d.set(d.counter("c").id, None, 1)),
        ("map key not a str", lambda d: d.set(d.map("m").id, 1, "v")),
        ("map key None", lambda d: d.set(d.map("m").id, None, "v")),
        ("register with a key", lambda d: d.set(d.register("r").id, "k", 1)),
        ("register holds a new node", lambda d: d.set(d.register("r").id, None, NewNode(1))),
        ("counter add float", lambda d: d.counter("c").add(1.0)),
        ("counter add bool", lambda d: d.counter("c").add(True)),
        ("counter add str", lambda d: d.counter("c").add("1")),
        ("add to a map", lambda d: d.add(d.map("m").id, 1)),
        ("text root reused as map", lambda d: d.map("t")),
        ("map root reused as text", lambda d: d.text("m")),
        ("empty root name", lambda d: d.text("")),
        ("root name not a str", lambda d: d.root(NodeKind.TEXT, 5)),
        ("unknown node", lambda d: d.handle(123456789)),
        ("unknown node insert", lambda d: d.insert(987654321, 0, "x")),
    ]
    for k, bad in enumerate(_bad_json_values()):
        doc_cases.append((f"map value {k}", lambda d, v=bad: d.map("m").set("k", v)))
        doc_cases.append((f"register value {k}", lambda d, v=bad: d.register("r").set(v)))
        doc_cases.append((f"list value {k}", lambda d, v=bad: d.list("l").insert(0, [v])))
    return doc_cases


ERROR_CASES = _error_cases()


@pytest.mark.parametrize(("what", "call"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_api_misuse_raises_invalid_operation_and_changes_nothing(what: str, call: Any) -> None:
    doc = new_doc(1)
    doc.text("t").insert(0, "abc")
    doc.list("l").insert(0, [1])
    doc.list("l").insert_new(1, NodeKind.MAP)
    before = snapshot(doc)
    with pytest.raises(InvalidOperation):
        call(doc)
    assert snapshot(doc) == before
    doc.check_invariants()
    Document.load(doc.encode_state(), 2)  # still encodable


@pytest.mark.parametrize("replica", [0, -1, 1 << 64, 1.0, "1", None, True])
def test_bad_replica_ids_are_rejected(replica: Any) -> None:
    if replica is None:  # None means "random": fine
        assert Document(replica).replica >= 1
        return
    with pytest.raises(InvalidOperation):
        Document(replica)


def test_largest_replica_id_is_fine() -> None:
    big = (1 << 64) - 1
    a, b = new_doc(big), new_doc(1)
    a.text("t").insert(0, "x")
    b.merge(a.encode_state())
    assert b.version == {big: 1}


def test_counter_add_outside_64_bits_is_rejected_or_encodable() -> None:
    doc = new_doc(1)
    try:
        doc.counter("c").add(1 << 70)
    except InvalidOperation:
        return
    assert Document.load(doc.encode_state(), 2).counter("c").value == 1 << 70


@pytest.mark.parametrize("where", ["map", "register", "list", "object key"])
def test_values_with_lone_surrogates_are_rejected_or_encodable(where: str) -> None:
    doc = new_doc(1)
    try:
        if where == "map":
            doc.map("m").set("k", "\ud800")
        elif where == "register":
            doc.register("r").set(["\udfff"])
        elif where == "list":
            doc.list("l").insert(0, ["a\ud83d"])
        else:
            doc.map("m").set("k", {"\ud800": 1})
    except InvalidOperation:
        return
    assert load(doc.encode_state(), 2).to_json() == doc.to_json()


def test_lone_surrogates_in_text_and_keys_round_trip() -> None:
    doc = new_doc(1)
    doc.text("t").insert(0, "a\ud800b")
    doc.map("m").set("\udfff", 1)
    assert load(doc.encode_state(), 2).to_json() == doc.to_json()


def test_mutating_a_value_after_setting_it_does_not_change_the_document() -> None:
    a, b = new_doc(1), new_doc(2)
    value = [1]
    a.map("m").set("k", value)
    b.merge(a.encode_state())
    value.append(2)
    c = Document.load(a.encode_state(), 3)
    assert a.to_json()["m"] == b.to_json()["m"] == c.to_json()["m"] == {"k": [1]}


def test_tuple_values_read_back_the_same_everywhere() -> None:
    a = new_doc(1)
    a.register("r").set((1, [2, (3,)]))
    assert a.register("r").value == [1, [2, [3]]]
    b = load(a.encode_state(), 2)
    assert a.to_json() == b.to_json()


@pytest.mark.parametrize("edit", ["text", "map"])
def test_a_bad_clock_reading_leaves_no_hole_in_the_history(edit: str) -> None:
    doc = Document(1, now_ms=lambda: 1.5)  # e.g. time.time() * 1000
    try:
        if edit == "text":
            doc.text("t").insert(0, "x")
        else:
            doc.map("m").set("k", 1)
    except InvalidOperation:
        assert doc.version == {}
        return
    peer = Document(2)
    peer.merge(doc.encode_state())
    assert peer.pending_ops == 0
    assert peer.version == doc.version


def _op_exchange_pair() -> tuple[Document, Document]:
    replicas = [1, 2]
    return new_doc(1, now=5, replicas=replicas), new_doc(2, now=5, replicas=replicas)


def test_apply_ops_rejects_non_json_set_values() -> None:
    a, b = _op_exchange_pair()
    op = SetOp(pack(a.client_index(1), 0), a.map("m").id, "k", math.nan, a.clock.now())
    with pytest.raises(InvalidOperation):
        b.apply_ops([op])
    assert b.version == {}


@pytest.mark.parametrize("bad", ["nan in a list", "float amount"])
def test_a_batch_with_a_bad_value_applies_none_of_it(bad: str) -> None:
    a, b = _op_exchange_pair()
    me = a.client_index(1)
    good = InsertOp(pack(me, 0), a.text("t").id, NO_ID, NO_ID, "hi")
    if bad == "nan in a list":
        wrong: Any = InsertOp(pack(me, 2), a.list("l").id, NO_ID, NO_ID, [math.nan])
    else:
        wrong = AddOp(pack(me, 2), a.counter("c").id, 1.5)
    before = snapshot(b)
    with pytest.raises(InvalidOperation):
        b.apply_ops([good, wrong])
    assert snapshot(b) == before


def test_the_waiting_set_holds_only_waiting_ops() -> None:
    a, b, x = new_doc(1), new_doc(2), new_doc(3)
    a.counter("c").add(1)
    a.map("m").set("k", 1)
    b.merge(a.encode_state())
    x.counter("c").add(5)
    v = x.version
    x.counter("c").add(5)
    b.merge(x.delta_since(v))  # one op waits
    for _ in range(3):
        b.merge(a.encode_state())  # seen ops pass through the queue while one waits
    assert b.pending_ops == 1
    assert len(b._queued) == b.pending_ops


# ---------------------------------------------------------------------------------------------
# Maps and registers: last writer (by HLC) wins, everywhere
# ---------------------------------------------------------------------------------------------


def test_concurrent_map_sets_resolve_to_the_later_clock() -> None:
    a, b = new_doc(1, now=200), new_doc(2, now=100)
    a.map("m").set("k", "from a")
    b.map("m").set("k", "from b")
    full_sync([a, b])
    assert a.to_json()["m"] == b.to_json()["m"] == {"k": "from a"}


def test_equal_clocks_tie_break_on_replica_id() -> None:
    a, b = new_doc(1, now=100), new_doc(2, now=100)
    a.register("r").set("a")
    b.register("r").set("b")
    full_sync([a, b])
    assert a.register("r").value == b.register("r").value == "b"


@pytest.mark.parametrize("delete_later", [True, False])
def test_concurrent_set_and_delete_later_wins(delete_later: bool) -> None:
    a = new_doc(1, now=300 if delete_later else 100)
    b = new_doc(2, now=200)
    a.map("m").delete("k")
    b.map("m").set("k", 1)
    full_sync([a, b])
    expected = {} if delete_later else {"k": 1}
    assert a.to_json()["m"] == b.to_json()["m"] == expected


def test_write_after_seeing_a_future_clock_still_wins() -> None:
    """HLC: a write made after observing another is newer, whatever the wall clocks say."""
    a, b = new_doc(1, now=10_000), new_doc(2, now=5)
    a.map("m").set("k", "early, far-future clock")
    b.merge(a.encode_state())
    b.map("m").set("k", "later")
    a.merge(b.encode_state())
    assert a.map("m")["k"] == b.map("m")["k"] == "later"


@SETTINGS
@given(
    clocks=st.lists(st.lists(st.integers(0, 50), min_size=1, max_size=5), min_size=2, max_size=4),
    data=st.data(),
)
def test_lww_winner_is_the_greatest_timestamp_on_every_replica(
    clocks: list[list[int]], data: st.DataObject
) -> None:
    """Random writes (sets and deletes) with stubbed, jumping clocks and random partial syncs."""
    calls = [0] * len(clocks)

    def clock(r: int) -> int:  # each replica's wall clock jumps around its list of readings
        calls[r] += 1
        return clocks[r][calls[r] % len(clocks[r])]

    docs = [Document(r + 1, now_ms=lambda r=r: clock(r)) for r in range(len(clocks))]
    writes: list[tuple[Timestamp, Any]] = []
    for _ in range(data.draw(st.integers(1, 12))):
        r = data.draw(st.integers(0, len(docs) - 1))
        doc = docs[r]
        if data.draw(st.booleans()):
            other = docs[data.draw(st.integers(0, len(docs) - 1))]
            doc.merge(other.delta_since(doc.version))
            continue
        key = data.draw(st.sampled_from("ab"))
        value = data.draw(st.one_of(st.integers(-(1 << 63), (1 << 63) - 1), st.just(DELETED)))
        seen = doc.clock.last
        v = doc.version
        if value is DELETED:
            doc.map("m").delete(key)
        else:
            doc.map("m").set(key, value)
        (op,) = doc.ops_since(v)
        assert isinstance(op, SetOp)
        assert op.ts > seen  # HLC: newer than everything seen
        assert op.ts.replica == doc.replica
        writes.append((op.ts, (key, value)))
    for d in docs:
        d.map("m")
    full_sync(docs)
    expected: dict[str, Any] = {}
    for _, (key, value) in sorted(writes):
        if value is DELETED:
            expected.pop(key, None)
        else:
            expected[key] = value
    for d in docs:
        assert d.to_json()["m"] == expected


# ---------------------------------------------------------------------------------------------
# Counters
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(
    adds=st.lists(st.lists(st.integers(-(1 << 62), 1 << 62), max_size=6), min_size=2, max_size=4),
    dup=st.booleans(),
)
def test_counters_sum_concurrent_adds(adds: list[list[int]], dup: bool) -> None:
    docs = [new_doc(r + 1) for r in range(len(adds))]
    for doc, amounts in zip(docs, adds, strict=True):
        for a in amounts:
            doc.counter("c").add(a)
    if dup:  # deliver everything twice first: adds must not be double counted
        for d in docs:
            for o in docs:
                d.merge(o.encode_state())
    full_sync(docs)
    total = sum(sum(a) for a in adds)
    assert all(d.counter("c").value == total for d in docs)


# ---------------------------------------------------------------------------------------------
# Nested nodes
# ---------------------------------------------------------------------------------------------


def test_nested_nodes_replicate_and_are_editable_remotely() -> None:
    a, b = new_doc(1), new_doc(2)
    m = a.map("m")
    text = m.set_new("body", NodeKind.TEXT)
    text.insert(0, "hi")
    items = m.set_new("items", NodeKind.LIST)
    items.insert(0, ["x"])
    row = items.insert_new(1, NodeKind.MAP)
    row.set("done", False)
    cnt = row.set_new("votes", NodeKind.COUNTER)
    cnt.add(2)
    reg = items.insert_new(0, NodeKind.REGISTER)
    reg.set({"deep": [1]})
    b.merge(a.encode_state())
    assert b.to_json() == a.to_json()
    assert b.to_json()["m"] == {
        "body": "hi",
        "items": [{"deep": [1]}, "x", {"done": False, "votes": 2}],
    }
    # edit the nested nodes on b, reached through the tree
    bm = b.map("m")
    bm["body"].insert(2, " there")
    brow = bm["items"][2]
    assert isinstance(brow, Map)
    brow.set("done", True)
    brow["votes"].add(-1)
    nested = bm["items"].insert_new(0, NodeKind.LIST)
    assert isinstance(nested, List)
    nested.insert(0, [[1], {"a": None}])
    a.merge(b.delta_since(a.version))
    assert a.to_json() == b.to_json()
    assert a.to_json()["m"]["body"] == "hi there"
    assert a.to_json()["m"]["items"][0] == [[1], {"a": None}]
    a.check_invariants()
    b.check_invariants()


def test_concurrent_set_new_on_one_key_keeps_one_subtree() -> None:
    a, b = new_doc(1, now=1), new_doc(2, now=2)
    lost = a.map("m").set_new("k", NodeKind.TEXT)
    lost.insert(0, "from a")
    b.map("m").set_new("k", NodeKind.LIST).insert(0, ["from b"])
    full_sync([a, b])
    assert a.to_json() == b.to_json()
    assert a.to_json()["m"] == {"k": ["from b"]}
    # the losing subtree still takes edits, which replicate without showing up
    assert isinstance(lost, Handle)
    lost.insert(0, "more ")
    full_sync([a, b])
    assert a.to_json() == b.to_json()
    assert a.to_json()["m"] == {"k": ["from b"]}
    client_of_a = b.known_client(a.replica)
    assert client_of_a is not None
    assert str(b.handle(lost.id - a.known_client(a.replica) + client_of_a)) == "more from a"


def test_deleted_nested_node_still_merges_edits() -> None:
    a, b = new_doc(1, now=1), new_doc(2, now=2)
    child = a.map("m").set_new("k", NodeKind.TEXT)
    b.merge(a.encode_state())
    b.map("m").delete("k")  # later clock: wins
    child.insert(0, "edit of a deleted node")
    full_sync([a, b])
    assert a.to_json() == b.to_json()
    assert "k" not in a.to_json()["m"]


# ---------------------------------------------------------------------------------------------
# Change events
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), concurrent=st.booleans())
def test_change_events_replay_remote_text_edits(data: st.DataObject, concurrent: bool) -> None:
    a, b = new_doc(1), new_doc(2)
    a.text("t").insert(0, data.draw(st.text(CHARS, max_size=8)))
    b.merge(a.encode_state())
    for _ in range(data.draw(st.integers(1, 8))):
        random_edit(a, data)
    if concurrent:
        for _ in range(data.draw(st.integers(1, 4))):
            random_edit(b, data)
    text_before = str(b.text("t"))
    list_before = b.sequence(b.list("l").id).value()
    changes = b.merge(a.delta_since(b.version))
    text_after = text_before
    list_after = list_before
    for ch in changes:
        if ch.node == b.text("t").id:
            assert ch.kind is NodeKind.TEXT
            text_after = ot.apply(text_after, ch.delta)
        elif ch.node == b.list("l").id:
            list_after = ot.apply(list_after, ch.delta)
    assert text_after == str(b.text("t"))
    assert list_after == b.sequence(b.list("l").id).value()


def test_change_event_shapes() -> None:
    a, b = new_doc(1), new_doc(2)
    a.text("t").insert(0, "hello")
    b.merge(a.encode_state())
    v = a.version
    a.text("t").delete(1, 3)
    a.text("t").insert(2, "😀!")
    a.map("m").set("k", 1)
    a.register("r").set(2)
    a.counter("c").add(3)
    changes = b.merge(a.delta_since(v))
    kinds = [(c.kind, c.key, c.delta) for c in changes]
    assert kinds == [
        (NodeKind.TEXT, None, [1, -3]),
        (NodeKind.TEXT, None, [2, "😀!"]),
        (NodeKind.MAP, "k", []),
        (NodeKind.REGISTER, None, []),
        (NodeKind.COUNTER, None, [3]),
    ]
    assert b.merge(a.delta_since(v)) == []  # nothing new: no events
    assert b.merge(a.delta_since(v), changes=False) == []


def test_one_root_name_used_with_two_kinds_concurrently_converges() -> None:
    """Locally a name cannot change kind (InvalidOperation); concurrently it can: both roots
    exist on every replica, both stay editable, and every replica shows the same JSON."""
    a, b = Document(1), Document(2)
    a.text("x").insert(0, "text")
    b.list("x").insert(0, [1])
    full_sync([a, b])
    assert a.to_json() == b.to_json()
    assert str(b.text("x")) == "text"
    assert a.list("x").to_json() == [1]
