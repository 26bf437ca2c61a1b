"""Undoing a second copy of an edit (``rooms.duplicates``): whatever happened since, its
inserted elements disappear, its counter adds are taken back, and nothing else changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite import protocol as p
from cowrite.engine.document import Document
from cowrite.engine.rebase import apply_index_edit
from cowrite.rooms import edit_keys
from cowrite.rooms.duplicates import undo_ops
from cowrite.rooms.wire import node_from_wire

Step = tuple[bool, int, str]  # (insert?, where, letters)

steps = st.lists(
    st.tuples(st.booleans(), st.integers(0, 10_000), st.text("abcdef", min_size=1, max_size=4)),
    max_size=12,
)


def _apply(doc: Document, steps: list[Step]) -> None:
    text = doc.text("body")
    for insert, where, letters in steps:
        n = len(str(text))
        if insert or n == 0:
            text.insert(where % (n + 1), letters)
        else:
            text.delete(where % n, min(len(letters), n - where % n))


@given(
    before=steps,
    at=st.integers(0, 10_000),
    copy=st.text("XYZ", min_size=1, max_size=5),
    amount=st.integers(-50, 50),
    after=steps,
)
@settings(max_examples=150, deadline=None)
def test_undo_removes_exactly_the_copy(
    before: list[Step], at: int, copy: str, amount: int, after: list[Step]
) -> None:
    doc = Document(1)
    other = Document(2)
    _apply(doc, before)
    doc.counter("n").add(7)
    other.merge(doc.delta_since(other.version))
    start = doc.version
    n = len(str(doc.text("body")))
    doc.text("body").insert(at % (n + 1), copy)
    doc.counter("n").add(amount)
    update = edit_keys.wrap_update("k", "e", doc.delta_since(start), "digest")
    _apply(other, after)  # concurrent edits by someone else, merged later
    doc.merge(other.delta_since(doc.version))
    seen = str(doc.text("body"))

    for op in undo_ops(doc, update):
        node = node_from_wire(doc, op.node)
        if isinstance(op, p.SeqEdit):
            apply_index_edit(doc, node, op.edit)
        else:
            assert isinstance(op, p.CounterAdd)
            doc.add(node, op.amount)

    assert str(doc.text("body")) == "".join(c for c in seen if c not in "XYZ")
    assert doc.counter("n").value == 7
