"""Updates that split a surrogate pair are refused before they reach the document (Yrs cannot
hold what Yjs then holds: see ``cowrite/yjs/surrogates.py``).

The updates below were written by yjs 13.6.33 (``tests/yjs/js``): client 1 typed "a😀b"; client 2,
from that state, did one edit each (UTF-16 indices, as Yjs counts).
"""

from __future__ import annotations

import pycrdt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite.yjs.document import YjsDocument
from cowrite.yjs.lib0 import YjsProtocolError
from cowrite.yjs.surrogates import SurrogateIndex, _parse

BASE = "01010100040101740661f09f98806200"  # client 1: "a😀b"
EDITS = {  # client 2's edit -> (its update, whether it splits the emoji)
    "insert X at 2 (between the halves)": ("01010200c401010102015800", True),
    "delete 1 unit at 1 (one half)": ("000101010101", True),
    "insert Y at 3 (after the emoji)": ("01010200c401020103015900", False),
    "delete 2 units at 1 (the emoji)": ("000101010102", False),
    "insert Z at 1 (before the emoji)": ("01010200c401000101015a00", False),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_only_updates_that_split_a_pair_are_refused(name: str) -> None:
    update, splits = EDITS[name]
    doc = YjsDocument()
    doc.apply_client_update(bytes.fromhex(BASE))
    if splits:
        with pytest.raises(YjsProtocolError) as refused:
            doc.apply_client_update(bytes.fromhex(update))
        assert refused.value.code == "unsupported_update"
        assert doc.text("t") == "a😀b"  # unchanged
    else:
        assert doc.apply_client_update(bytes.fromhex(update)) is not None


def test_the_index_learns_from_merges_and_loads_too() -> None:
    stored = YjsDocument.load(bytes.fromhex(BASE))  # a snapshot: the emoji came from the store
    with pytest.raises(YjsProtocolError):
        stored.apply_client_update(bytes.fromhex(EDITS["delete 1 unit at 1 (one half)"][0]))
    merged = YjsDocument()
    merged.merge_update(bytes.fromhex(BASE))  # from another instance
    with pytest.raises(YjsProtocolError):
        merged.apply_client_update(bytes.fromhex(EDITS["insert X at 2 (between the halves)"][0]))


def test_an_emoji_and_its_split_in_one_update_are_refused() -> None:
    both = pycrdt.merge_updates(
        bytes.fromhex(BASE), bytes.fromhex(EDITS["insert X at 2 (between the halves)"][0])
    )
    assert SurrogateIndex().split(both) is not None


def test_documents_without_astral_characters_are_not_parsed() -> None:
    index = SurrogateIndex()
    doc: pycrdt.Doc[object] = pycrdt.Doc()
    doc.get("t", type=pycrdt.Text).insert(0, "plain text, é and ß but nothing astral")
    index.add(doc.get_update())
    assert index.highs == {}
    assert index.split(b"\x01\x02 not even an update") is None  # not ours to judge


@given(st.binary(max_size=300))
@settings(max_examples=500, deadline=None)
def test_garbage_never_raises_from_the_index(data: bytes) -> None:
    index = SurrogateIndex()
    index.add(data)
    assert index.split(data) is None or isinstance(index.split(data), str)


@given(st.lists(st.tuples(st.integers(0, 4), st.text(max_size=6)), min_size=1, max_size=25))
@settings(max_examples=100, deadline=None)
def test_every_kind_of_content_parses(steps: list[tuple[int, str]]) -> None:
    """Updates of every content type pycrdt writes (strings with astral characters, formats,
    embeds, maps of nested values, arrays, XML elements with attributes) parse to the end."""
    doc: pycrdt.Doc[object] = pycrdt.Doc()
    text = doc.get("t", type=pycrdt.Text)
    root = doc.get("m", type=pycrdt.Map)
    items = doc.get("a", type=pycrdt.Array)
    xml = doc.get("x", type=pycrdt.XmlFragment)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    for kind, s in steps:
        if kind == 0:
            text.insert(len(text) // 2, s + "😀", {"bold": True} if s else None)
        elif kind == 1:
            root[s] = {"n": len(s), "list": [1.5, None, True, s], "deep": {"x": [s]}}
        elif kind == 2:
            items.append(s)
            items.append(pycrdt.Map({"k": s}))
        elif kind == 3:
            xml.children.append(pycrdt.XmlElement("p", {"class": s}, [pycrdt.XmlText(s + "🎉")]))
        elif len(text):
            del text[0 : min(len(text), 2)]
    for update in [*updates, doc.get_update()]:
        items_, _ = _parse(update)  # raises if any byte is not understood
        assert all(i.clock >= 0 for i in items_)
    index = SurrogateIndex()
    index.add(doc.get_update())
    assert index.split(doc.get_update()) is None  # a document never splits itself


def test_struct_ends_counts_updates_that_do_not_start_at_clock_zero() -> None:
    """What the twin's per-update clocks rely on (``pycrdt.get_state(update)`` gives ``{}`` for
    an update whose structs start later than clock 0)."""
    from cowrite.yjs.surrogates import struct_ends

    doc: pycrdt.Doc[object] = pycrdt.Doc(client_id=7)
    text = doc.get("t", type=pycrdt.Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    text.insert(0, "abc")
    text.insert(3, "d😀")
    del text[0:1]
    assert [struct_ends(u) for u in updates] == [{7: 3}, {7: 6}, {}]
    assert pycrdt.get_state(updates[1]) == b"\x00"
    merged = pycrdt.merge_updates(updates[0], updates[2])  # a gap: client 7 misses 3..6
    assert struct_ends(merged) == {7: 3}


def test_parse_reads_the_delete_set_yrs_reads() -> None:
    """``YjsDocument`` checks a client update's deletions against the twin's clocks from this
    Python read instead of asking Yrs to re-encode the update: both must agree."""
    from cowrite.yjs.document import _delete_set
    from cowrite.yjs.surrogates import parse

    doc: pycrdt.Doc[object] = pycrdt.Doc(client_id=9)
    text = doc.get("t", type=pycrdt.Text)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    text.insert(0, "hello world")
    del text[2:5]
    with doc.transaction():
        text.insert(0, "x")
        del text[4:6]
    for update in [*updates, doc.get_update()]:
        parsed = parse(update)
        yrs = _delete_set(update, parsed.ends or {9: 0})
        assert sorted(parsed.deletes) == sorted(yrs)
    assert parse(updates[1]).ends == {}
    assert parse(updates[1]).deletes == [(9, 2, 3)]
