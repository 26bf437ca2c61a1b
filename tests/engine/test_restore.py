"""Restoring a past version as ordinary edits (``cowrite.engine.restore_batches``)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite.engine import (
    Document,
    Handle,
    List,
    Map,
    NodeKind,
    NodeRef,
    Text,
    apply_restore_edits,
    restore,
    restore_batches,
    value_at,
)

KEYS = ["a", "b", "c"]
NESTED = [NodeKind.TEXT, NodeKind.MAP, NodeKind.LIST, NodeKind.COUNTER, NodeKind.REGISTER]


def _nested(doc: Document) -> list[Handle]:
    """Handles on the nested nodes reachable now, in a deterministic order."""
    out: list[Handle] = []
    stack: list[int] = [doc.map("m").id, doc.list("l").id]
    while stack:
        node = stack.pop()
        kind = doc.kind_of(node)
        if kind is NodeKind.MAP:
            children = [v for v in (Map(doc, node).get(k) for k in KEYS) if isinstance(v, Handle)]
            ids = [h.id for h in children]
        elif kind is NodeKind.LIST:
            ids = [v.id for v in doc.sequence(node).value() if type(v) is NodeRef]
        else:
            continue
        for child in ids:
            out.append(doc.handle(child))
            stack.append(child)
    return out


def _edit(doc: Document, what: int, where: int, text: str) -> None:
    """One random edit somewhere in ``doc`` (roots "t", "l", "m", "r", "c" and nested nodes)."""
    targets: list[Handle] = [doc.text("t"), doc.list("l"), doc.map("m"), *_nested(doc)]
    target = targets[where % len(targets)]
    if what == 7:
        doc.register("r").set(text)
        return
    if what == 8:
        doc.counter("c").add(where % 7 - 3)
        return
    if isinstance(target, Text):
        n = len(target)
        if what % 2 and n:
            pos = where % n
            target.delete(pos, min(len(text), n - pos))
        else:
            target.insert(where % (n + 1), text)
    elif isinstance(target, List):
        n = len(doc.sequence(target.id))
        if what % 3 == 0 and n:
            target.delete(where % n, 1)
        elif what % 3 == 1 and doc.node_count < 40:
            target.insert_new(where % (n + 1), NESTED[where % len(NESTED)])
        else:
            target.insert(where % (n + 1), [text, where])
    elif isinstance(target, Map):
        key = KEYS[where % len(KEYS)]
        if what % 3 == 0:
            target.delete(key)
        elif what % 3 == 1 and doc.node_count < 40:
            target.set_new(key, NESTED[(where // 3) % len(NESTED)])
        else:
            target.set(key, {"v": text} if where % 2 else text)
    else:
        value = target.to_json()
        if isinstance(value, int) and not isinstance(value, bool):
            target.doc.add(target.id, where % 5 - 2)
        else:
            target.doc.set(target.id, None, text)


Action = tuple[int, int, int, str]

actions = st.lists(
    st.tuples(
        st.integers(0, 2),  # 0: edit on a, 1: edit on b, 2: exchange deltas
        st.integers(0, 8),
        st.integers(0, 1_000),
        st.text(alphabet="xyzé😀", min_size=1, max_size=3),
    ),
    max_size=40,
)


def _history(steps: list[Action]) -> tuple[Document, Document, list[tuple[Any, Any]]]:
    a = Document(1, version_window_ms=0)
    b = Document(2, version_window_ms=0)
    for doc in (a, b):  # the roots every step may touch
        doc.text("t"), doc.list("l"), doc.map("m"), doc.register("r"), doc.counter("c")
    points = [(a.version, a.to_json())]
    for who, what, where, text in steps:
        if who == 2:
            a.merge(b.delta_since(a.version))
            b.merge(a.delta_since(b.version))
        else:
            _edit(a if who == 0 else b, what, where, text)
        points.append((a.version, a.to_json()))
    return a, b, points


@settings(max_examples=150, deadline=None)
@given(actions, st.integers(0, 1_000))
def test_restore_edits_bring_back_the_value_at_any_version(steps: list[Action], pick: int) -> None:
    a, _, points = _history(steps)
    version, value = points[pick % len(points)]
    assert value_at(a, version) == value
    restore(a, version)
    assert a.to_json() == value
    a.check_invariants()
    # restoring again keeps the value (elements restored by value are new elements, so the
    # second restore may swap them for copies: the value is what a restore promises)
    restore(a, version)
    assert a.to_json() == value


@settings(max_examples=80, deadline=None)
@given(actions, st.integers(0, 1_000), actions)
def test_a_restore_merges_like_any_edit(
    steps: list[Action], pick: int, concurrent: list[Action]
) -> None:
    """The restore's edits are ordinary ops: another replica merging them (with its own
    concurrent edits) converges with the restoring one."""
    a, b, points = _history(steps)
    version, _ = points[pick % len(points)]
    for who, what, where, text in concurrent:
        if who != 2:
            _edit(b, what, where, text)
    for batch in restore_batches(a, version):
        apply_restore_edits(a, batch)
    a.merge(b.delta_since(a.version))
    b.merge(a.delta_since(b.version))
    assert a.to_json() == b.to_json()


def test_restoring_the_current_version_does_nothing() -> None:
    doc = Document(1, version_window_ms=0)
    doc.text("t").insert(0, "hello")
    doc.map("m").set_new("x", NodeKind.LIST)
    assert list(restore_batches(doc, doc.version)) == []


def test_a_deleted_nested_node_comes_back_as_a_new_node_filled_in_a_second_batch() -> None:
    doc = Document(1, version_window_ms=0)
    meta = doc.map("m")
    inner = meta.set_new("notes", NodeKind.TEXT)
    assert isinstance(inner, Text)
    inner.insert(0, "keep me")
    then = doc.version
    meta.delete("notes")
    batches = restore_batches(doc, then)
    first = next(batches)
    assert len(first) == 1  # the key gets a new text node...
    apply_restore_edits(doc, first)
    second = next(batches)  # ...and its text once that node exists
    apply_restore_edits(doc, second)
    assert list(batches) == []
    assert doc.to_json()["m"] == {"notes": "keep me"}
