"""Convergence of replicas under an unreliable network (Hypothesis stateful tests).

In the style of Yjs' random "test connector": a handful of replicas make random local edits of
every kind, ship deltas (since some *older* version they had, so deltas overlap) into a network
of in-flight messages, and the network delivers them in random order, to random replicas,
possibly more than once, or never. Replicas go offline and come back. After every step every
replica must pass ``check_invariants``; at the end, after a full sync, every replica must hold the
same document, the same version, nothing pending, and reload from its own encoding unchanged.

A second machine hammers one text node with highly conflicting typing at the same places and
checks FugueMax's non-interleaving guarantee on the final (tombstone-inclusive) order.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import permutations
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from cowrite.engine import ot
from cowrite.engine.document import Document
from cowrite.engine.errors import InvalidOperation
from cowrite.engine.handles import Counter, Handle, List, Map, Register, Text
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK
from cowrite.engine.ops import NodeKind
from cowrite.engine.sequence import Sequence

# Replica ids: small, huge (2**64-1) and in between, so the local client numbering never matches
# the replica ids and differs between replicas.
REPLICA_IDS = (1, 2, 3, 7, 1 << 40, (1 << 64) - 1)

# Non-BMP characters (emoji, musical symbols) on purpose: positions are code points.
CHARS = st.one_of(st.sampled_from("ab \n😀𝄞é€"), st.characters())
TEXTS = st.text(CHARS, min_size=1, max_size=6)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(1 << 63), (1 << 63) - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(CHARS, max_size=4),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text("abcé😀", max_size=2), inner, max_size=3),
    ),
    max_leaves=6,
)
KEYS = st.sampled_from(["a", "b", "c", "😀", ""])
NESTED_KINDS = st.sampled_from(list(NodeKind))

ROOTS = {
    "text": NodeKind.TEXT,
    "list": NodeKind.LIST,
    "map": NodeKind.MAP,
    "reg": NodeKind.REGISTER,
    "ctr": NodeKind.COUNTER,
}

MACHINE_SETTINGS = settings(
    max_examples=120,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def touch_roots(doc: Document) -> None:
    """Register every named root locally (``to_json`` lists the roots a replica knows)."""
    for name, kind in ROOTS.items():
        doc.handle(doc.root(kind, name))


def reachable(doc: Document) -> list[Handle]:
    """Every node reachable from the named roots, roots first."""
    out: list[Handle] = []
    todo = [doc.handle(node) for node in sorted(doc.roots)]
    while todo:
        h = todo.pop(0)
        out.append(h)
        if isinstance(h, Map):
            keys = h.keys()
            todo.extend(v for k in keys if isinstance(v := h[k], Handle))
        elif isinstance(h, List):
            todo.extend(v for i in range(len(h)) if isinstance(v := h[i], Handle))
    return out


def of_kind(doc: Document, cls: type[Handle]) -> list[Any]:
    return [h for h in reachable(doc) if isinstance(h, cls)]


def sequences(doc: Document) -> dict[int, Any]:
    """Raw values (NodeRefs kept) of every text/list node the document holds, by node id."""
    return {nid: state.value() for nid, state in doc._nodes.items() if isinstance(state, Sequence)}


def merge_checking_changes(doc: Document, data: bytes) -> None:
    """Merge ``data`` and check the returned Change events replay the edit on the old values."""
    before = sequences(doc)
    changes = doc.merge(data)
    after = sequences(doc)
    replayed = dict(before)
    for ch in changes:
        if ch.kind in (NodeKind.TEXT, NodeKind.LIST):
            empty: Any = "" if ch.kind is NodeKind.TEXT else []
            replayed[ch.node] = ot.apply(replayed.get(ch.node, empty), ch.delta)
        elif ch.kind is NodeKind.COUNTER:
            assert ch.key is None
            assert len(ch.delta) == 1
            assert type(ch.delta[0]) is int
        else:
            assert ch.delta == []
            assert (ch.key is None) == (ch.kind is NodeKind.REGISTER)
    for nid, value in after.items():
        assert replayed.get(nid, "" if isinstance(value, str) else []) == value


def full_sync(docs: list[Document]) -> None:
    """Every replica merges every other's full state, until nothing changes or is pending."""
    for _ in range(len(docs) + 2):
        states = [d.encode_state() for d in docs]
        for d in docs:
            for s in states:
                d.merge(s)
        if all(d.pending_ops == 0 for d in docs) and all(
            d.version == docs[0].version for d in docs
        ):
            return
    raise AssertionError(
        f"no convergence: pending {[d.pending_ops for d in docs]}, "
        f"versions {[d.version for d in docs]}"
    )


def assert_converged(docs: list[Document]) -> None:
    full_sync(docs)
    first = docs[0]
    expected = first.to_json()
    for d in docs:
        d.check_invariants()
        assert d.pending_ops == 0
        assert d.version == first.version
        assert d.to_json() == expected
        reloaded = Document.load(d.encode_state(), replica=d.replica)
        touch_roots(reloaded)
        reloaded.check_invariants()
        assert reloaded.version == d.version
        assert reloaded.to_json() == expected


# ---------------------------------------------------------------------------------------------
# The random-connector machine: every node kind, nested nodes, lossy reordering network
# ---------------------------------------------------------------------------------------------


class ConvergenceMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.docs: list[Document] = []
        self.history: list[list[dict[int, int]]] = []  # versions each replica has had
        self.network: list[bytes] = []
        self.offline: set[int] = set()
        self.now = 1_000
        self.skew: list[int] = []

    @initialize(n=st.integers(2, 4), ids=st.permutations(REPLICA_IDS), data=st.data())
    def start(self, n: int, ids: list[int], data: st.DataObject) -> None:
        for k, rid in enumerate(ids[:n]):
            self.skew.append(data.draw(st.integers(-500, 500), label="clock skew"))
            doc = Document(rid, now_ms=lambda k=k: max(0, self.now + self.skew[k]))
            touch_roots(doc)
            self.docs.append(doc)
            self.history.append([{}])

    # -- helpers

    def replica(self, r: int) -> tuple[int, Document]:
        r %= len(self.docs)
        return r, self.docs[r]

    def edited(self, r: int, data: st.DataObject) -> None:
        """Record the new version; often ship a delta right away (since an older version)."""
        self.history[r].append(self.docs[r].version)
        if r not in self.offline and data.draw(st.booleans(), label="send now"):
            since = data.draw(st.sampled_from(self.history[r]), label="since")
            self.network.append(self.docs[r].delta_since(since))

    # -- local edits

    @rule(r=st.integers(0, 3), data=st.data())
    def text_insert(self, r: int, data: st.DataObject) -> None:
        r, doc = self.replica(r)
        node: Text = data.draw(st.sampled_from(of_kind(doc, Text)))
        before = str(node)
        pos = data.draw(st.integers(0, len(before)))
        text = data.draw(TEXTS)
        node.insert(pos, text)
        assert str(node) == before[:pos] + text + before[pos:]
        self.edited(r, data)

    @rule(r=st.integers(0, 3), data=st.data(), text=TEXTS)
    def text_type(self, r: int, data: st.DataObject, text: str) -> None:
        """Type ``text`` one key at a time (forward typing: runs merge into one item)."""
        r, doc = self.replica(r)
        node: Text = data.draw(st.sampled_from(of_kind(doc, Text)))
        before = str(node)
        pos = data.draw(st.integers(0, len(before)))
        for k, ch in enumerate(text):
            node.insert(pos + k, ch)
        assert str(node) == before[:pos] + text + before[pos:]
        self.edited(r, data)

    @rule(r=st.integers(0, 3), data=st.data())
    def text_delete(self, r: int, data: st.DataObject) -> None:
        r, doc = self.replica(r)
        node: Text = data.draw(st.sampled_from(of_kind(doc, Text)))
        before = str(node)
        if not before:
            return
        pos = data.draw(st.integers(0, len(before) - 1))
        count = data.draw(st.integers(1, len(before) - pos))
        node.delete(pos, count)
        assert str(node) == before[:pos] + before[pos + count :]
        self.edited(r, data)

    @rule(r=st.integers(0, 3), data=st.data())
    def text_backspace(self, r: int, data: st.DataObject) -> None:
        """Backspace a few times from some position (tombstones of one run merge)."""
        r, doc = self.replica(r)
        node: Text = data.draw(st.sampled_from(of_kind(doc, Text)))
        before = str(node)
        if not before:
            return
        end = data.draw(st.integers(1, len(before)))
        times = data.draw(st.integers(1, end))
        for k in range(times):
            node.delete(end - 1 - k, 1)
        assert str(node) == before[: end - times] + before[end:]
        self.edited(r, data)

    @rule(r=st.integers(0, 3), data=st.data(), values=st.lists(JSON, min_size=1, max_size=3))
    def list_insert(self, r: int, data: st.DataObject, values: list[Any]) -> None:
        r, doc = self.replica(r)
        node: List = data.draw(st.sampled_from(of_kind(doc, List)))
        pos = data.draw(st.integers(0, len(node)))
        n = len(node)
        node.insert(pos, values)
        assert len(node) == n + len(values)
        self.edited(r, data)

    @rule(r=st.integers(0, 3), data=st.data())
    def list_delete(self, r: int, data: st.DataObject) -> None:
        r, doc = self.replica(r)
        node: List = data.draw(st.sampled_from(of_kind(doc, List)))
        n = len(node)
        if not n:
            return
        pos = data.draw(st.integers(0, n - 1))
        count = data.draw(st.integers(1, n - pos))
        node.delete(pos, count)
        assert len(node) == n - count
        self.edited(r, data)

    @rule(r=st.integers(0, 3), data=st.data())
    def list_move(self, r: int, data: st.DataObject) -> None:
        r, doc = self.replica(r)
        node: List = data.draw(st.sampled_from(of_kind(doc, List)))
        n = len(node)
        if not n:
            return
        src = data.draw(st.integers(0, n - 1))
        dst = data.draw(st.integers(0, n - 1))
        value = node[src]
        if isinstance(value, Handle):
            try:
                node.move(src, dst)
            except InvalidOperation:
                return
            raise AssertionError("moving a nested node must raise InvalidOperation")
        node.move(src, dst)
        assert node[dst] == value
        self.edited(r, data)

    @rule(r=st.integers(0, 3), data=st.data(), kind=NESTED_KINDS)
    def list_insert_new(self, r: int, data: st.DataObject, kind: NodeKind) -> None:
        r, doc = self.replica(r)
        node: List = data.draw(st.sampled_from(of_kind(doc, List)))
        pos = data.draw(st.integers(0, len(node)))
        child = node.insert_new(pos, kind)
        assert child.kind is kind
        assert node[pos] == child
        self.edited(r, data)

    @rule(r=st.integers(0, 3), data=st.data(), key=KEYS, value=JSON)
    def map_set(self, r: int, data: st.DataObject, key: str, value: Any) -> None:
        r, doc = self.replica(r)
        node: Map = data.draw(st.sampled_from(of_kind(doc, Map)))
        node.set(key, value)
        assert node[key] == value
        self.edited(r, data)

    @rule(r=st.integers(0, 3), data=st.data(), key=KEYS)
    def map_delete(self, r: int, data: st.DataObject, key: str) -> None:
        r, doc = self.replica(r)
        node: Map = data.draw(st.sampled_from(of_kind(doc, Map)))
        node.delete(key)
        assert key not in node
        self.edited(r, data)

    @rule(r=st.integers(0, 3), data=st.data(), key=KEYS, kind=NESTED_KINDS)
    def map_set_new(self, r: int, data: st.DataObject, key: str, kind: NodeKind) -> None:
        r, doc = self.replica(r)
        node: Map = data.draw(st.sampled_from(of_kind(doc, Map)))
        child = node.set_new(key, kind)
        assert child.kind is kind
        if kind is NodeKind.TEXT:  # "set_new nested text" then edit it at once
            child.insert(0, data.draw(TEXTS))
        self.edited(r, data)

    @rule(r=st.integers(0, 3), data=st.data(), value=JSON)
    def register_set(self, r: int, data: st.DataObject, value: Any) -> None:
        r, doc = self.replica(r)
        node: Register = data.draw(st.sampled_from(of_kind(doc, Register)))
        node.set(value)
        assert node.value == value
        self.edited(r, data)

    @rule(r=st.integers(0, 3), data=st.data(), amount=st.integers(-(1 << 40), 1 << 40))
    def counter_add(self, r: int, data: st.DataObject, amount: int) -> None:
        r, doc = self.replica(r)
        node: Counter = data.draw(st.sampled_from(of_kind(doc, Counter)))
        before = node.value
        node.add(amount)
        assert node.value == before + amount
        self.edited(r, data)

    @rule(dt=st.integers(-200, 2_000))
    def tick(self, dt: int) -> None:
        """Wall clocks move, sometimes backwards (the HLC must stay monotonic)."""
        self.now = max(0, self.now + dt)

    # -- network

    @rule(r=st.integers(0, 3), data=st.data())
    def send(self, r: int, data: st.DataObject) -> None:
        r, doc = self.replica(r)
        if r in self.offline:
            return
        since = data.draw(st.sampled_from(self.history[r]), label="since")
        self.network.append(doc.delta_since(since))

    @rule(r=st.integers(0, 3))
    def send_state(self, r: int) -> None:
        r, doc = self.replica(r)
        if r not in self.offline:
            self.network.append(doc.encode_state())

    @precondition(lambda self: self.network)
    @rule(data=st.data(), times=st.integers(1, 4))
    def deliver(self, data: st.DataObject, times: int) -> None:
        """Deliver random in-flight messages to random replicas, keeping some (duplicates)."""
        for _ in range(times):
            if not self.network:
                return
            r, doc = self.replica(data.draw(st.integers(0, 3), label="to"))
            if r in self.offline:
                continue
            i = data.draw(st.integers(0, len(self.network) - 1), label="message")
            keep = data.draw(st.booleans(), label="keep a copy")
            message = self.network[i] if keep else self.network.pop(i)
            merge_checking_changes(doc, message)
            self.history[r].append(doc.version)

    @precondition(lambda self: self.network)
    @rule(data=st.data())
    def drop(self, data: st.DataObject) -> None:
        self.network.pop(data.draw(st.integers(0, len(self.network) - 1), label="message"))

    @rule(r=st.integers(0, 3))
    def disconnect(self, r: int) -> None:
        self.offline.add(r % len(self.docs))

    @rule(r=st.integers(0, 3))
    def reconnect(self, r: int) -> None:
        self.offline.discard(r % len(self.docs))

    # -- checks

    @invariant()
    def every_replica_is_consistent(self) -> None:
        for doc in self.docs:
            doc.check_invariants()
            for h in of_kind(doc, Text):
                assert len(h) == len(str(h))

    def teardown(self) -> None:
        if self.docs:
            assert_converged(self.docs)


ConvergenceMachine.TestCase.settings = MACHINE_SETTINGS
TestConvergence = ConvergenceMachine.TestCase


# ---------------------------------------------------------------------------------------------
# The high-conflict text machine: typing bursts at the same places, non-interleaving check
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Burst:
    """Keys typed by one replica, one insert per key, with no merge in between."""

    replica: int
    start: int  # the replica's seq of the first key
    length: int
    seen: tuple[tuple[int, int], ...]  # the replica's version just before the burst

    def ids(self) -> set[tuple[int, int]]:
        return {(self.replica, s) for s in range(self.start, self.start + self.length)}

    def after(self, other: Burst) -> bool:
        """True if this burst was typed by a replica that had seen ``other``."""
        if self.replica == other.replica:
            return self.start >= other.start + other.length
        return dict(self.seen).get(other.replica, 0) >= other.start + other.length


def element_order(doc: Document, node: int) -> list[tuple[int, int]]:
    """(replica, seq) of every element of a sequence, tombstones included, in document order."""
    out = []
    for item in doc.sequence(node).items():
        replica = doc.replica_of(item.id & CLIENT_MASK)
        seq = item.id >> CLIENT_BITS
        out.extend((replica, seq + k) for k in range(len(item.content)))
    return out


def assert_not_interleaved(order: list[tuple[int, int]], bursts: list[Burst]) -> None:
    """Between the first and last key of a burst lie only its own keys or later ones.

    FugueMax keeps a run typed forwards (or backwards) contiguous against every concurrent
    insert; only edits made by someone who had already seen the run can land inside it.
    """
    owner = {}
    for b in bursts:
        for e in b.ids():
            owner[e] = b
    where = {e: k for k, e in enumerate(order)}
    for b in bursts:
        if b.length < 2:
            continue
        spots = sorted(where[e] for e in b.ids())
        for e in order[spots[0] : spots[-1] + 1]:
            o = owner[e]
            assert o is b or o.after(b), (
                f"burst {b} interleaved with concurrent burst {o} (element {e})"
            )


class ConflictMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.docs: list[Document] = []
        self.bursts: list[Burst] = []
        self.network: list[bytes] = []

    @initialize(n=st.integers(2, 4), ids=st.permutations(REPLICA_IDS))
    def start(self, n: int, ids: list[int]) -> None:
        self.docs = [Document(rid, now_ms=lambda: 0) for rid in ids[:n]]
        for d in self.docs:
            d.text("t")

    def _type(self, r: int, where: str, text: str, backwards: bool) -> None:
        doc = self.docs[r % len(self.docs)]
        t = doc.text("t")
        before = str(t)
        n = len(before)
        pos = {"start": 0, "end": n, "middle": min(2, n), "half": n // 2}[where]
        start = doc.version.get(doc.replica, 0)
        burst = Burst(doc.replica, start, len(text), tuple(sorted(doc.version.items())))
        if backwards:  # type the text right to left: every key lands at the same index
            for ch in reversed(text):
                t.insert(pos, ch)
        else:
            for k, ch in enumerate(text):
                t.insert(pos + k, ch)
        assert str(t) == before[:pos] + text + before[pos:]
        assert doc.version[doc.replica] == start + len(text)
        self.bursts.append(burst)

    @rule(
        r=st.integers(0, 3),
        where=st.sampled_from(["start", "end", "middle", "half"]),
        text=st.text(st.sampled_from("abcdxyz😀𝄞"), min_size=1, max_size=6),
        backwards=st.booleans(),
    )
    def type_burst(self, r: int, where: str, text: str, backwards: bool) -> None:
        self._type(r, where, text, backwards)

    @rule(where=st.sampled_from(["start", "end", "middle", "half"]), text=st.text("pq", max_size=1))
    def everybody_types(self, where: str, text: str) -> None:
        """Every replica types at the same index of its own (possibly stale) copy."""
        for r in range(len(self.docs)):
            self._type(r, where, f"{r}{text}{r}", backwards=False)

    @rule(r=st.integers(0, 3), data=st.data())
    def delete(self, r: int, data: st.DataObject) -> None:
        t = self.docs[r % len(self.docs)].text("t")
        n = len(t)
        if n:
            pos = data.draw(st.integers(0, n - 1))
            t.delete(pos, data.draw(st.integers(1, min(3, n - pos))))

    @rule(r=st.integers(0, 3))
    def send(self, r: int) -> None:
        self.network.append(self.docs[r % len(self.docs)].encode_state())

    @precondition(lambda self: self.network)
    @rule(data=st.data(), r=st.integers(0, 3))
    def deliver(self, data: st.DataObject, r: int) -> None:
        i = data.draw(st.integers(0, len(self.network) - 1))
        merge_checking_changes(self.docs[r % len(self.docs)], self.network.pop(i))

    @rule()
    def sync_all(self) -> None:
        """A common base, so that the next bursts start from identical copies."""
        full_sync(self.docs)

    @invariant()
    def consistent(self) -> None:
        for d in self.docs:
            d.check_invariants()

    def teardown(self) -> None:
        if not self.docs:
            return
        assert_converged_text(self.docs)
        assert_not_interleaved(element_order(self.docs[0], self.docs[0].text("t").id), self.bursts)


def assert_converged_text(docs: list[Document]) -> None:
    full_sync(docs)
    orders = [element_order(d, d.text("t").id) for d in docs]
    for d, order in zip(docs, orders, strict=True):
        assert order == orders[0]
        assert str(d.text("t")) == str(docs[0].text("t"))
        assert d.pending_ops == 0
        d.check_invariants()


ConflictMachine.TestCase.settings = settings(
    max_examples=120,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestHighConflictText = ConflictMachine.TestCase


# ---------------------------------------------------------------------------------------------
# Example-based: FugueMax never interleaves concurrent typing at one place
# ---------------------------------------------------------------------------------------------


def _synced(n: int, base: str) -> list[Document]:
    docs = [Document(r + 1, now_ms=lambda: 0) for r in range(n)]
    docs[0].text("t").insert(0, base)
    full_sync(docs)
    return docs


def _type(doc: Document, pos: int, text: str, backwards: bool = False) -> None:
    t = doc.text("t")
    if backwards:
        for ch in reversed(text):
            t.insert(pos, ch)
    else:
        for k, ch in enumerate(text):
            t.insert(pos + k, ch)


def _possible(base: str, pos: int, runs: list[str]) -> set[str]:
    return {base[:pos] + "".join(p) + base[pos:] for p in permutations(runs)}


@pytest.mark.parametrize("backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("pos", [0, 1, 2], ids=["start", "middle", "end"])
@pytest.mark.parametrize("n", [2, 3])
def test_concurrent_typing_at_one_place_is_not_interleaved(
    n: int, pos: int, backwards: bool
) -> None:
    docs = _synced(n, "xy")
    runs = ["abc", "12345", "😀𝄞!?"][:n]  # different lengths: Lamport-ordered RGA interleaves
    for d, run in zip(docs, runs, strict=True):
        _type(d, pos, run, backwards)
    full_sync(docs)
    results = {str(d.text("t")) for d in docs}
    assert len(results) == 1
    assert results.pop() in _possible("xy", pos, runs)


def test_typing_into_an_empty_text_concurrently() -> None:
    a, b = Document(1), Document(2)
    _type(a, 0, "hello")
    _type(b, 0, "world")
    full_sync([a, b])
    assert str(a.text("t")) in {"helloworld", "worldhello"}
    assert str(a.text("t")) == str(b.text("t"))


def test_interleaved_delivery_of_two_typists_keeps_runs() -> None:
    """Each key is shipped as its own delta and deliveries alternate: runs still stay whole."""
    a, b, c = _synced(3, "[]")
    deltas = []
    for x, y in zip("abcd", "wxyz", strict=True):
        va, vb = a.version, b.version
        a.text("t").insert(len(a.text("t")) - 1, x)
        b.text("t").insert(len(b.text("t")) - 1, y)
        deltas += [a.delta_since(va), b.delta_since(vb)]
    for d in deltas:
        c.merge(d)
    assert str(c.text("t")) in {"[abcdwxyz]", "[wxyzabcd]"}
    full_sync([a, b, c])
    assert str(a.text("t")) == str(b.text("t")) == str(c.text("t"))


def test_element_order_helper_sees_tombstones() -> None:
    (doc,) = _synced(1, "abc")
    doc.text("t").delete(1, 1)
    order = element_order(doc, doc.text("t").id)
    assert len(order) == 3
    assert [e[1] for e in order] == [0, 1, 2]
