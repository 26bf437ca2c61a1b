"""History: versions, the document at a past version, diffs between versions."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite.engine import history, ot
from cowrite.engine.document import Document
from cowrite.engine.history import HistoryUnavailable


class Clock:
    def __init__(self) -> None:
        self.t = 1_000

    def __call__(self) -> int:
        return self.t


def test_value_at_returns_each_past_version_exactly() -> None:
    clock = Clock()
    doc = Document(1, now_ms=clock, version_window_ms=0)
    text = doc.text("body")
    meta = doc.map("meta")  # named roots exist from first use, at every version
    snapshots = []
    for word in ["alpha ", "beta ", "gamma "]:
        text.insert(len(text), word)
        clock.t += 5
        snapshots.append((doc.version, doc.to_json()))
    text.delete(0, 6)
    meta.set("title", "Greek")
    for version, value in snapshots:
        assert history.value_at(doc, version) == value
    assert history.value_at(doc, doc.version) == doc.to_json()


def test_versions_group_a_burst_within_the_window() -> None:
    clock = Clock()
    doc = Document(1, now_ms=clock, version_window_ms=1000)
    text = doc.text("t")
    for ch in "hello":
        text.insert(len(text), ch)
        clock.t += 10
    clock.t += 5_000
    text.insert(0, ">")
    listed = history.versions(doc)
    assert len(listed) == 2
    assert history.value_at(doc, listed[0].version) == {"t": "hello"}
    assert history.value_at(doc, listed[1].version) == {"t": ">hello"}


def test_diff_turns_old_text_into_new_text() -> None:
    doc = Document(1)
    text = doc.text("t")
    text.insert(0, "the quick brown fox")
    old = doc.version
    text.delete(4, 6)
    text.insert(4, "slow ")
    text.insert(len(text), "!")
    (change,) = history.diff(doc, old, doc.version)
    assert ot.apply("the quick brown fox", change.delta) == str(text)


def test_diff_reports_map_register_and_counter_changes() -> None:
    doc = Document(1)
    doc.map("m").set("a", 1)
    doc.register("title").set("old")
    old = doc.version
    doc.map("m").set("a", 2)
    doc.map("m").set("b", True)
    doc.register("title").set("new")
    doc.counter("likes").add(3)
    changes = {c.path: (c.before, c.after) for c in history.diff(doc, old, doc.version)}
    assert changes == {
        ("m", "a"): (1, 2),
        ("m", "b"): (None, True),
        ("title",): ("old", "new"),
        ("likes",): (0, 3),
    }


def test_a_version_the_document_has_not_seen_is_refused() -> None:
    doc = Document(1)
    doc.text("t").insert(0, "x")
    with pytest.raises(HistoryUnavailable):
        history.value_at(doc, {1: 5})


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(0, 10_000), st.text(min_size=1, max_size=4)),
        max_size=40,
    )
)
def test_diff_between_any_two_versions_applies(edits: list[tuple[bool, int, str]]) -> None:
    doc = Document(1)
    text = doc.text("t")
    points = [(doc.version, "")]
    for is_delete, where, s in edits:
        n = len(text)
        if is_delete and n:
            pos = where % n
            text.delete(pos, min(len(s), n - pos))
        else:
            text.insert(where % (n + 1), s)
        points.append((doc.version, str(text)))
    for v1, s1 in points[:: max(1, len(points) // 5)]:
        for v2, s2 in points[:: max(1, len(points) // 4)]:
            delta = [c.delta for c in history.diff(doc, v1, v2)]
            assert ot.apply(s1, delta[0] if delta else []) == s2


def _batch_beside_a_deleted_element() -> tuple[Document, dict[int, int]]:
    """Replica 2 put "bc" next to an "a" that replica 1 had replaced (at index 1 of the new
    text: the CRDT puts it before the deleted "a"). A client of base ``{1: 1}`` ("a") typed that
    "bc" after its "a": which side of the deleted "a" it stands on differs."""
    doc = Document(1)
    doc.text("t").insert(0, "a")
    base = doc.version
    doc.text("t").insert(0, "a")
    doc.text("t").delete(1, 1)
    other = Document(2)
    other.merge(doc.delta_since({}))
    other.text("t").insert(1, "bc")
    doc.merge(other.delta_since(doc.version))
    assert doc.to_json() == {"t": "abc"}
    return doc, base


def test_diff_over_extra_ranges_replaces_a_stretch_it_cannot_order() -> None:
    doc, base = _batch_beside_a_deleted_element()
    (change,) = history.diff(doc, base, doc.version, {2: (0, 2)})
    for copy in ("abc", "bca"):  # the client's, and the CRDT's order at base + batch
        assert ot.apply(copy, change.delta) == "abc"
    assert ot.transform([3, "d"], change.delta, "left") == [3, "d"]  # typing after stays after


def test_diff_over_extra_ranges_stays_exact_beside_kept_elements() -> None:
    doc = Document(1)
    doc.text("t").insert(0, "xy")
    base = doc.version
    other = Document(2)
    other.merge(doc.delta_since({}))
    other.text("t").insert(1, "bc")
    doc.merge(other.delta_since(doc.version))
    doc.text("t").insert(4, "!")
    (change,) = history.diff(doc, base, doc.version, {2: (0, 2)})
    assert change.delta == [4, "!"]
