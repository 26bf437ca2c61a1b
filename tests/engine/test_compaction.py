"""Tombstone compaction: content dropped, merges stay correct, stale peers get a resync."""

from __future__ import annotations

import random

import pytest

from cowrite.engine import history
from cowrite.engine.compaction import compact
from cowrite.engine.document import Document
from cowrite.engine.errors import ResyncNeeded
from cowrite.engine.history import HistoryUnavailable
from cowrite.engine.sequence import Gap


def _edit(rng: random.Random, doc: Document, n: int) -> None:
    text = doc.text("t")
    for _ in range(n):
        if len(text) > 5 and rng.random() < 0.4:
            pos = rng.randrange(len(text) - 3)
            text.delete(pos, rng.randint(1, 3))
        else:
            text.insert(rng.randint(0, len(text)), rng.choice(["x", "yy", "hello ", "é😀"]))


def _sync(a: Document, b: Document) -> None:
    a.merge(b.delta_since(a.version))
    b.merge(a.delta_since(b.version))


def test_compaction_drops_deleted_content_and_keeps_the_value() -> None:
    doc = Document(1)
    text = doc.text("t")
    text.insert(0, "x" * 1000)
    text.delete(0, 900)
    before = doc.to_json()
    stats = compact(doc, doc.version)
    doc.check_invariants()
    assert stats.tombstones_collected == 900
    assert doc.to_json() == before
    gaps = [it for it in doc.sequence(text.id).items() if type(it.content) is Gap]
    assert sum(len(g.content) for g in gaps) == 900


def test_peer_that_did_not_compact_still_merges_both_ways() -> None:
    rng = random.Random(3)
    a, b = Document(1), Document(2)
    for _ in range(30):
        _edit(rng, rng.choice([a, b]), 20)
        _sync(a, b)
    compact(a, a.version)
    for _ in range(20):  # b types next to tombstones a no longer has the content of
        _edit(rng, b, 10)
        _edit(rng, a, 10)
        _sync(a, b)
        a.check_invariants()
        assert a.to_json() == b.to_json()


def test_snapshot_of_a_compacted_document_loads_and_keeps_syncing() -> None:
    rng = random.Random(5)
    a = Document(1)
    _edit(rng, a, 500)
    a.map("m").set("k", 1)
    a.map("m").set("k", 2)
    a.counter("c").add(5)
    compact(a, a.version)
    _edit(rng, a, 50)
    c = Document.load(a.encode_state(), 3)
    c.check_invariants()
    assert c.to_json() == a.to_json()
    assert c.version == a.version
    c.text("t").insert(0, "from c ")
    a.merge(c.delta_since(a.version))
    assert a.to_json() == c.to_json()


def test_replica_older_than_the_base_is_told_to_resync() -> None:
    a, b = Document(1), Document(2)
    a.text("t").insert(0, "hello")
    b.merge(a.encode_state())
    a.text("t").delete(0, 2)
    compact(a, a.version)
    with pytest.raises(ResyncNeeded):
        a.delta_since(b.version)
    with pytest.raises(ResyncNeeded):
        b.merge(a.encode_state())  # a snapshot never merges into a diverged replica
    with pytest.raises(HistoryUnavailable):
        history.value_at(a, b.version)


def test_history_after_the_base_stays_queryable() -> None:
    doc = Document(1, version_window_ms=0)
    text = doc.text("t")
    text.insert(0, "abc")
    text.delete(0, 1)
    compact(doc, doc.version)
    base = doc.version
    text.insert(0, "Z")
    assert history.value_at(doc, base) == {"t": "bc"}
    (change,) = history.diff(doc, base, doc.version)
    assert change.delta == ["Z"]
