"""``authored_changes``: a diff of text and list nodes that names the op behind each change."""

from __future__ import annotations

import itertools
import random

import pytest

from cowrite.engine import (
    Document,
    HistoryUnavailable,
    authored_changes,
    compact,
    diff,
    ot,
    value_at,
)


def spans_of(doc: Document, old: dict[int, int], new: dict[int, int]) -> list[tuple[object, ...]]:
    [change] = authored_changes(doc, old, new)
    return [(s.kind, s.count, "".join(s.content), s.replica, s.seq) for s in change.spans]


def test_inserts_name_their_own_ops_and_deletes_the_deleting_op() -> None:
    a, b = Document(1), Document(2)
    a.text("t").insert(0, "hello")
    b.merge(a.delta_since(b.version))
    v1 = dict(b.version)
    b.text("t").insert(5, " world")
    a.merge(b.delta_since(a.version))
    a.text("t").delete(0, 2)  # a's op seq 5
    assert spans_of(a, v1, a.version) == [
        ("delete", 2, "he", 1, 5),
        ("retain", 3, "", 0, 0),
        ("insert", 6, " world", 2, 0),
    ]
    # from nothing: who wrote what is there now
    assert spans_of(a, {}, a.version) == [("insert", 3, "llo", 1, 2), ("insert", 6, " world", 2, 0)]


def test_list_values_and_nested_nodes_are_followed() -> None:
    doc = Document(1)
    items = doc.list("items")
    items.insert(0, [1, 2])
    v1 = dict(doc.version)
    doc.map("m").set("k", "x")  # not a sequence: not listed
    items.insert(2, [3])
    changes = authored_changes(doc, v1, doc.version)
    assert [(c.kind.name, [(s.kind, s.content) for s in c.spans]) for c in changes] == [
        ("LIST", [("retain", []), ("insert", [3])])
    ]


def test_agrees_with_diff_on_random_histories() -> None:
    rng = random.Random(7)
    doc = Document(1)
    text = doc.text("t")
    marks = [dict(doc.version)]
    value = ""
    for _ in range(200):
        if value and rng.random() < 0.4:
            pos = rng.randrange(len(value))
            n = rng.randint(1, min(4, len(value) - pos))
            text.delete(pos, n)
            value = value[:pos] + value[pos + n :]
        else:
            pos = rng.randint(0, len(value))
            s = rng.choice(["a", "bc", "def"])
            text.insert(pos, s)
            value = value[:pos] + s + value[pos:]
        marks.append(dict(doc.version))
    for _ in range(30):
        i, j = sorted(rng.sample(range(len(marks)), 2))
        [d] = diff(doc, marks[i], marks[j]) or [None]
        got = authored_changes(doc, marks[i], marks[j])
        if d is None:
            assert got == []
            continue
        edit: list[object] = []
        for s in got[0].spans:
            edit.append(
                s.count
                if s.kind == "retain"
                else -s.count
                if s.kind == "delete"
                else "".join(s.content)
            )
        before, after = value_at(doc, marks[i])["t"], value_at(doc, marks[j])["t"]
        assert ot.apply(before, ot.normalize(edit)) == after == ot.apply(before, d.delta)
        for s in got[0].spans:
            if s.kind == "delete":  # the deleting op is between the two versions
                assert marks[i].get(1, 0) <= s.seq < marks[j][1]


def test_compacted_versions_raise() -> None:
    doc = Document(1)
    doc.text("t").insert(0, "abc")
    old = dict(doc.version)
    doc.text("t").delete(0, 3)
    compact(doc, doc.version)
    with pytest.raises(HistoryUnavailable):
        authored_changes(doc, old, doc.version)


@pytest.mark.parametrize("seed", [11, 0, 1, 2, 3, 4])
def test_values_at_past_versions_with_concurrent_replicas_and_reads_in_between(seed: int) -> None:
    """The delete index grows with the document (reads between edits) and handles elements
    deleted by several replicas at once: every past value comes back exactly. (Seed 11 caught
    a view taking a stretch deleted by two clients for one client's.)"""
    rng = random.Random(seed)
    a, b = Document(1), Document(2)
    seen: list[tuple[dict[int, int], str]] = []
    for step in range(300):
        doc = a if rng.random() < 0.5 else b
        text = doc.text("t")
        value = str(text)
        if value and rng.random() < 0.45:
            pos = rng.randrange(len(value))
            text.delete(pos, rng.randint(1, min(3, len(value) - pos)))
        else:
            text.insert(rng.randint(0, len(value)), rng.choice(["x", "yz", "abc"]))
        if rng.random() < 0.3:  # sync (both may have deleted the same element meanwhile)
            a.merge(b.delta_since(a.version))
            b.merge(a.delta_since(b.version))
        seen.append((dict(a.version), str(a.text("t"))))
        if step % 25 == 0:  # a read now and then: the index is extended, not rebuilt
            vv, want = seen[rng.randrange(len(seen))]
            assert value_at(a, vv)["t"] == want
    a.merge(b.delta_since(a.version))
    for vv, want in seen:
        assert value_at(a, vv)["t"] == want
    for (old, before), (new, after) in itertools.pairwise(seen):
        changes = authored_changes(a, old, new)
        edit: list[object] = []
        for span in changes[0].spans if changes else []:
            if span.kind == "retain":
                edit.append(span.count)
            elif span.kind == "insert":
                edit.append("".join(span.content))
                assert old.get(span.replica, 0) <= span.seq < new[span.replica]
            else:
                edit.append(-span.count)
                assert old.get(span.replica, 0) <= span.seq < new[span.replica]
        assert ot.apply(before, ot.normalize(edit)) == after


def test_an_authored_diff_has_the_same_deltas_with_spans() -> None:
    rng = random.Random(5)
    doc = Document(1)
    text, items = doc.text("t"), doc.list("l")
    marks = [dict(doc.version)]
    for _ in range(120):
        if len(text) and rng.random() < 0.4:
            text.delete(rng.randrange(len(text)), 1)
        else:
            text.insert(rng.randint(0, len(text)), rng.choice("abc"))
        if rng.random() < 0.3:
            items.insert(rng.randint(0, len(items)), [rng.randrange(9)])
        marks.append(dict(doc.version))
    for _ in range(40):
        i, j = sorted(rng.sample(range(len(marks)), 2))
        plain = diff(doc, marks[i], marks[j])
        authored = diff(doc, marks[i], marks[j], authored=True)
        assert [(d.node, d.delta) for d in plain] == [(d.node, d.delta) for d in authored]
        assert all(d.spans for d in authored) and not any(d.spans for d in plain)
