"""Yjs version history, sans-I/O: values replayed at every version, folding (retention window,
byte budget, named checkpoints), the container, diffs with authors, and restore updates."""

from __future__ import annotations

from typing import Any

import pycrdt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite.rooms.yjs_diff import diff
from cowrite.rooms.yjs_history import MAGIC, YjsHistory, fold, state_of, unwrap, wrap
from cowrite.rooms.yjs_restore import restore_update
from cowrite.rooms.yjs_values import infer_types, value_of
from cowrite.yjs import YjsDocument, YjsProtocolError


class Recorder:
    """A pycrdt document whose every transaction is a stored update (seq from 1)."""

    def __init__(self) -> None:
        self.doc: pycrdt.Doc[Any] = pycrdt.Doc()
        self.updates: list[bytes] = []
        self.doc.observe(lambda e: self.updates.append(e.update))
        self.text = self.doc.get("t", type=pycrdt.Text)
        self.map = self.doc.get("m", type=pycrdt.Map)
        self.xml = self.doc.get("x", type=pycrdt.XmlFragment)
        self.values: dict[int, dict[str, Any]] = {0: {}}

    def note(self) -> int:
        seq = len(self.updates)
        self.values[seq] = value_of(self.doc.get_update())[0]
        return seq

    def history(self) -> YjsHistory:
        h = YjsHistory()
        h.extend(enumerate(self.updates, 1))
        return h


edits = st.lists(
    st.one_of(
        st.tuples(st.just("ins"), st.integers(0, 50), st.text("abé😀 \n", min_size=1, max_size=4)),
        st.tuples(st.just("del"), st.integers(0, 50), st.integers(1, 5)),
        st.tuples(st.just("set"), st.sampled_from("abc"), st.integers(-3, 3)),
        st.tuples(st.just("unset"), st.sampled_from("abc"), st.just(0)),
        st.tuples(st.just("para"), st.integers(0, 5), st.text("xyz", min_size=1, max_size=3)),
    ),
    min_size=1,
    max_size=25,
)


def play(rec: Recorder, script: list[tuple[str, Any, Any]]) -> None:
    for op, a, b in script:
        text = str(rec.text)
        if op == "ins":
            pos = min(a, len(text))
            rec.text.insert(len(text[:pos].encode()), b, {"bold": True} if a % 2 else None)
        elif op == "del" and text:
            pos = min(a, len(text) - 1)
            end = min(len(text), pos + b)
            del rec.text[len(text[:pos].encode()) : len(text[:end].encode())]
        elif op == "set":
            rec.map[a] = b
        elif op == "unset" and a in rec.map:
            del rec.map[a]
        elif op == "para":
            n = len(rec.xml.children)
            if a % 3 == 0 and n:
                del rec.xml.children[min(a, n - 1)]
            else:
                para = pycrdt.XmlElement("paragraph", {"n": str(a)}, [pycrdt.XmlText(b)])
                rec.xml.children.insert(min(a, n), para)
        else:
            continue
        rec.note()


@settings(max_examples=25, deadline=None)
@given(edits)
def test_every_version_replays_to_its_value(script: list[tuple[str, Any, Any]]) -> None:
    rec = Recorder()
    play(rec, script)
    h = rec.history()
    for seq, want in rec.values.items():
        state = h.state_at(seq)
        assert state is not None
        assert value_of(state)[0] == want


@settings(max_examples=25, deadline=None)
@given(edits, st.data())
def test_a_restore_update_gives_the_old_value(script: list[Any], data: st.DataObject) -> None:
    rec = Recorder()
    play(rec, script)
    h = rec.history()
    target = data.draw(st.sampled_from(sorted(rec.values)))
    current, old = h.state_at(h.last_seq), h.state_at(target)
    assert current is not None and old is not None
    types = infer_types(old, infer_types(current))
    types.update(infer_types(current, types))
    update = restore_update(current, old, types)
    if update is None:
        assert_same(current, old, types)
        return
    # applied like a client's update (validated), on a document with the current state
    doc = YjsDocument()
    doc.merge_update(current)
    assert doc.apply_client_update(update) is not None
    assert_same(doc.encode_snapshot(), old, types)


def assert_same(state: bytes, wanted_state: bytes, types: dict[str, Any]) -> None:
    """The two read the same, an absent root as its type's empty value."""
    got, wanted = value_of(state, types)[0], value_of(wanted_state, types)[0]
    for name, kind in types.items():
        empty = {"text": "", "xml": "", "map": {}, "array": []}[kind]
        assert got.get(name, empty) == wanted.get(name, empty), name


def test_restore_keeps_formatting_and_xml_attributes() -> None:
    rec = Recorder()
    rec.text.insert(0, "bold", {"bold": True})
    rec.text.insert(4, " plain", {})  # {}: not bold (None inherits)
    rec.xml.children.append(pycrdt.XmlElement("heading", {"level": "2"}, [pycrdt.XmlText("Title")]))
    v = rec.note()
    del rec.text[0:4]
    del rec.xml.children[0]
    rec.xml.children.append(pycrdt.XmlElement("paragraph", None, [pycrdt.XmlText("new")]))
    rec.note()
    h = rec.history()
    current, old = h.state_at(h.last_seq), h.state_at(v)
    assert current is not None and old is not None
    update = restore_update(current, old, infer_types(current))
    assert update is not None
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    doc.apply_update(current)
    doc.apply_update(update)
    assert doc.get("t", type=pycrdt.Text).diff() == [("bold", {"bold": True}), (" plain", None)]
    assert str(doc.get("x", type=pycrdt.XmlFragment)) == '<heading level="2">Title</heading>'


def test_diff_names_the_update_that_inserted_and_deleted_each_part() -> None:
    rec = Recorder()
    rec.text.insert(0, "hello")
    start = rec.note()
    rec.text.insert(5, " world")
    inserted = rec.note()
    del rec.text[0:1]
    deleted = rec.note()
    rec.text.insert(0, "J")
    again = rec.note()
    rec.map["k"] = 1
    keyed = rec.note()
    h = rec.history()
    types = infer_types(h.state_at(h.last_seq) or b"")
    changes = {(c.root, c.key): c for c in diff(h, start, h.last_seq, types)}
    text = changes[("t", None)]
    assert text.delta == [-1, "J", 4, " world"]
    got = [(s.op, "".join(s.tokens), s.by) for s in text.spans or [] if s.op != "retain"]
    assert got == [("delete", "h", deleted), ("insert", "J", again), ("insert", " world", inserted)]
    assert changes[("m", "k")].by == keyed and changes[("m", "k")].after == 1
    # too many versions to walk: the same diff, without authors
    plain = {(c.root, c.key): c for c in diff(h, start, h.last_seq, types, max_steps=1)}
    assert plain[("t", None)].delta == text.delta
    assert all(s.by is None for s in plain[("t", None)].spans or [])


def test_fold_keeps_the_window_and_checkpoints_named_versions() -> None:
    rec = Recorder()
    for i in range(10):
        rec.text.insert(0, str(i))
        rec.note()
    h = rec.history()
    times = {seq: seq * 1000 for seq in range(1, 11)}
    # the window keeps versions made at 7 s and later: 1..6 fold, 3 is named
    folded = fold(h, named={3}, times=times, now_ms=10_000, keep_ms=3_000, max_bytes=1 << 20)
    assert folded.base_seq == 6 and [s for s, _ in folded.entries] == list(range(7, 11))
    assert folded.available(3) and folded.available(6) and not folded.available(5)
    for seq in (0, 3, 6, 7, 10):
        assert value_of(folded.state_at(seq) or b"")[0] == rec.values[seq]
    assert folded.state_at(5) is None
    # a container round trip keeps all of it; the state a load reads comes first
    state, back = unwrap(wrap(b"state", folded), 99)
    assert state == b"state" and back == folded
    # the byte budget folds young entries too; unnamed checkpoints go
    tiny = fold(back, named=set(), times=times, now_ms=0, keep_ms=0, max_bytes=0)
    assert tiny.base_seq == 10 and not tiny.entries and not tiny.checkpoints
    assert value_of(tiny.state_at(10) or b"")[0] == rec.values[10]
    # an undated entry (and everything after it) stays
    kept = fold(h, named=set(), times={1: 0}, now_ms=10_000, keep_ms=0, max_bytes=1 << 20)
    assert kept.base_seq == 1 and len(kept.entries) == 9


def test_a_named_base_keeps_its_checkpoint_when_the_base_moves_on() -> None:
    rec = Recorder()
    for i in range(4):
        rec.text.insert(0, str(i))
        rec.note()
    h = rec.history()
    once = fold(h, named={2}, times={1: 0, 2: 0}, now_ms=1, keep_ms=0, max_bytes=1 << 20)
    assert once.base_seq == 2 and not once.checkpoints
    twice = fold(once, named={2}, times={3: 0, 4: 0}, now_ms=1, keep_ms=0, max_bytes=1 << 20)
    assert twice.base_seq == 4 and set(twice.checkpoints) == {2}
    assert value_of(twice.state_at(2) or b"")[0] == rec.values[2]


def test_plain_and_damaged_snapshots() -> None:
    rec = Recorder()
    rec.text.insert(0, "old")
    plain = rec.doc.get_update()
    state, h = unwrap(plain, 7)
    assert state == plain and h.base_seq == 7 and h.state_at(7) == plain
    assert not h.available(6) and h.state_at(6) is None
    assert state_of(wrap(plain, h)) == plain
    with pytest.raises(ValueError):
        unwrap(MAGIC + b"\x93garbage", 1)
    # the container is never a Yjs update: a document refuses it
    with pytest.raises(YjsProtocolError):
        YjsDocument().merge_update(wrap(plain, h))


def test_types_are_inferred_from_content_and_hints() -> None:
    rec = Recorder()
    rec.text.insert(0, "t")
    rec.map["k"] = [1, 2]
    rec.xml.children.append(pycrdt.XmlElement("p", None, [pycrdt.XmlText("x")]))
    rec.doc.get("a", type=pycrdt.Array).extend(["one", 2])
    rec.doc.get("empty", type=pycrdt.Array)
    value, types = value_of(rec.doc.get_update(), {"e": "map"})
    assert types == {"t": "text", "m": "map", "x": "xml", "a": "array"}
    assert value == {"t": "t", "m": {"k": [1.0, 2.0]}, "x": "<p>x</p>", "a": ["one", 2.0]}


steps = st.lists(
    st.one_of(
        st.tuples(st.just("type"), st.integers(1, 4)),
        st.tuples(st.just("name"), st.integers(0, 100)),
        st.tuples(st.just("unname"), st.integers(0, 100)),
        st.tuples(st.just("fold"), st.integers(0, 400)),
    ),
    max_size=40,
)


@settings(max_examples=25, deadline=None)
@given(steps)
def test_folding_at_any_time_keeps_every_available_and_every_named_version(
    script: list[tuple[str, int]],
) -> None:
    """Snapshots fold at random moments (random byte budgets) while versions are made, named
    and unnamed: every version said to be available replays to its value, and every named one
    (named before the fold) stays available."""
    rec = Recorder()
    history = YjsHistory()
    named: set[int] = set()
    for op, n in script:
        if op == "type":
            for _ in range(n):
                rec.text.insert(0, "ab"[n % 2])
                rec.note()
            history.extend(enumerate(rec.updates, 1))
        elif op == "name" and rec.updates:
            seq = n % len(rec.updates) + 1
            if history.available(seq):  # as the server: a folded version cannot be named
                named.add(seq)
        elif op == "unname" and named:
            named.discard(sorted(named)[n % len(named)])
        elif op == "fold":
            times = {seq: 0 for seq, _ in history.entries}
            history = fold(history, named=named, times=times, now_ms=1, keep_ms=0, max_bytes=n)
            history = unwrap(wrap(b"", history), 0)[1]
            assert all(history.available(seq) for seq in named)
    assert all(history.available(seq) for seq in named)
    for seq, want in rec.values.items():
        if history.available(seq):
            assert value_of(history.state_at(seq) or b"")[0] == want, seq
