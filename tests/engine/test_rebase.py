"""The OT edge: index edits against old versions, applied to the CRDT; anchored cursors."""

from __future__ import annotations

import random

import pytest

from cowrite.engine import ot
from cowrite.engine.document import Document
from cowrite.engine.errors import InvalidOperation, ResyncNeeded
from cowrite.engine.rebase import EditLog, anchor_at, apply_index_edit, resolve_anchor


def test_stale_insert_lands_after_concurrent_insert_before_it() -> None:
    doc = Document(1)
    text = doc.text("t")
    log = EditLog()
    apply_index_edit(doc, text.id, ["hello world"])
    base = log.record([(text.id, ["hello world"])])
    # someone else inserts at the start; a client at `base` inserts before "world"
    apply_index_edit(doc, text.id, [">> "])
    log.record([(text.id, [">> "])])
    rebased = log.rebase(text.id, [6, "big "], base)
    apply_index_edit(doc, text.id, rebased)
    assert str(text) == ">> hello big world"


def test_concurrent_inserts_at_one_position_put_the_rebased_client_first() -> None:
    log = EditLog()
    log.record([(7, [2, "B"])])
    assert log.rebase(7, [2, "A"], 0) == [2, "A"]
    assert ot.apply("xy", [2, "B"]) == "xyB"


def test_edits_of_other_nodes_do_not_move_an_edit() -> None:
    log = EditLog()
    log.record([(1, ["zzz"])])
    assert log.rebase(2, [1, "a"], 0) == [1, "a"]


def test_a_version_older_than_the_log_needs_a_resync() -> None:
    log = EditLog(capacity=3)
    for _ in range(5):
        log.record([(1, ["x"])])
    assert log.oldest == 2
    with pytest.raises(ResyncNeeded):
        log.rebase(1, ["a"], 1)
    with pytest.raises(InvalidOperation):
        log.rebase(1, ["a"], 6)


def test_apply_index_edit_refuses_edits_that_do_not_fit() -> None:
    doc = Document(1)
    text = doc.text("t")
    apply_index_edit(doc, text.id, ["abc"])
    with pytest.raises(InvalidOperation):
        apply_index_edit(doc, text.id, [5, "x"])
    with pytest.raises(InvalidOperation):
        apply_index_edit(doc, text.id, [1, ["not text"]])
    assert str(text) == "abc"


def test_thin_clients_at_random_versions_converge_with_the_server() -> None:
    rng = random.Random(7)
    doc = Document(1)
    text = doc.text("t")
    log = EditLog()
    texts = [""]  # texts[v]: the text at edit version v, what a client at v sees
    for _ in range(400):
        base = rng.randint(max(log.oldest, log.version - 5), log.version)
        seen = texts[base]
        if seen and rng.random() < 0.3:
            n = rng.randint(1, min(3, len(seen)))
            edit = ot.normalize([rng.randint(0, len(seen) - n), -n])
        else:
            edit = ot.normalize([rng.randint(0, len(seen)), rng.choice("abc😀")])
        rebased = log.rebase(text.id, edit, base)
        apply_index_edit(doc, text.id, rebased)
        log.record([(text.id, rebased)])
        texts.append(ot.apply(texts[-1], rebased))
        assert str(text) == texts[-1]
    doc.check_invariants()


def test_anchor_stays_on_its_character_while_others_edit() -> None:
    doc = Document(1)
    text = doc.text("t")
    text.insert(0, "hello world")
    caret = anchor_at(doc, text.id, 5)  # after "hello"
    start = anchor_at(doc, text.id, 6, "before")  # before "world"
    text.insert(0, "oh, ")
    text.insert(len(text), "!")
    assert resolve_anchor(doc, text.id, caret) == 9
    assert resolve_anchor(doc, text.id, start) == 10
    text.delete(4, 5)  # delete "hello": the caret falls back to where it was
    assert str(text) == "oh,  world!"
    assert resolve_anchor(doc, text.id, caret) == 4


def test_anchor_from_another_replica_resolves_after_sync() -> None:
    a, b = Document(1), Document(2)
    a.text("t").insert(0, "abcdef")
    b.merge(a.encode_state())
    anchor = anchor_at(b, b.text("t").id, 3)
    a.text("t").insert(0, "XYZ")
    b.merge(a.delta_since(b.version))
    assert resolve_anchor(b, b.text("t").id, anchor) == 6
