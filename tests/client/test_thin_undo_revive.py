"""Revivals on the client (``cowrite.client.thin_undo_revive``; ``docs/protocol.md``, T11
"Revivals"): the names an undo/redo sends, and what the thin client does with what the server
left out (``ack.dropped``, or a catch-up of its own batch), including garbage ``dropped`` runs."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite import protocol as p
from cowrite.client.thin import ThinDocState
from cowrite.client.thin_undo import UndoManager
from cowrite.client.thin_undo_ops import Del, Ins, to_plain
from cowrite.client.thin_undo_revive import (
    Deleted,
    batch_op,
    delete_inserted,
    deletes,
    dropped_inserts,
    record_deleted,
    revive_runs,
    run_indices,
)
from cowrite.engine import ot

DOC = "d"
TEXT = "text:t"


def joined(state: ThinDocState, text: str) -> None:
    snapshot = {TEXT: {"kind": "text", "value": text}}
    state.on_joined(p.Joined(doc=DOC, mode="thin", version=0, rights=["write"], snapshot=snapshot))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_dropped_inserts_finds_what_was_left_out(data: st.DataObject) -> None:
    base = data.draw(st.text("ab", max_size=6))
    pos = data.draw(st.integers(0, len(base)))
    cut = data.draw(st.integers(0, len(base) - pos))
    new = data.draw(st.text("xyz", min_size=1, max_size=5))
    held = ot.from_splice(pos, cut, new)
    leave = set(data.draw(st.lists(st.integers(0, len(new) - 1), unique=True)))
    gone = delete_inserted(ot.normalize(held), leave)
    applied = ot.compose(held, gone) if gone is not None else held
    found = dropped_inserts(held, applied)
    assert found is not None
    # the same text, whichever of equal code points it names
    kept = "".join(ch for k, ch in enumerate(new) if k not in found)
    assert kept == "".join(ch for k, ch in enumerate(new) if k not in leave)
    assert ot.apply(base, applied) == ot.apply(ot.apply(base, held), gone or [])
    assert dropped_inserts(held, held) == set()
    assert dropped_inserts([2, "ab"], [1, "ab"]) is None  # not ours without some inserts


def test_garbage_dropped_runs_name_nothing() -> None:
    runs = [
        p.Dropped(node=TEXT, at=-1, n=2),
        p.Dropped(node=TEXT, at=0, n=0),
        p.Dropped(node="text:other", at=0, n=1),
        p.Dropped(node=TEXT, at=3, n=1),
    ]
    assert run_indices(runs, TEXT) == {3}
    assert delete_inserted(["ab"], {3}) is None  # past what the op inserts: nothing


def test_names_come_from_the_acknowledged_batch_and_the_batch_itself() -> None:
    deleted = Deleted()
    record_deleted([1, Del("bc", (2, 3)), Ins("q", (9,))], "e-1", deleted)
    assert dict(deleted) == {2: ("e-1", 0), 3: ("e-1", 1)}
    # an undo re-inserting 3 and 2, and deleting 5 and re-inserting it (composed)
    runs = revive_runs([Ins("cb", (3, 2)), 2, Ins("z", (5,)), Del("z", (5,))], TEXT, "e-2", deleted)
    assert runs == [
        p.Revive(node=TEXT, at=0, n=1, edit="e-1", of=1),
        p.Revive(node=TEXT, at=1, n=1, edit="e-1", of=0),
        p.Revive(node=TEXT, at=2, n=1, edit="e-2", of=0),
    ]


def test_an_ack_naming_dropped_code_points_takes_them_out_of_the_local_text() -> None:
    state = ThinDocState(DOC, "me", edit_id_prefix="me")
    undo = UndoManager(state, TEXT, clock=lambda: 0.0)
    joined(state, "ac")
    state.local_edit(TEXT, [1, "bX"])
    batch = state.take_batch()
    assert batch is not None and batch.revive is None  # nothing brought back: no names
    state.local_edit(TEXT, [4, "!"])  # pending, after the batch
    changes = state.on_ack(
        p.Ack(doc=DOC, edit_id=batch.edit_id, version=1, dropped=[p.Dropped(node=TEXT, at=0, n=1)])
    )
    assert state.value(TEXT) == "aXc!"
    assert [c.edit for c in changes if isinstance(c, p.SeqEdit)] == [[1, -1]]
    state.check_invariants()
    assert undo.failures == 0


def test_a_catch_up_of_our_own_batch_without_some_inserts_is_settled_alike() -> None:
    state = ThinDocState(DOC, "me", edit_id_prefix="me")
    UndoManager(state, TEXT, clock=lambda: 0.0)
    joined(state, "ac")
    state.local_edit(TEXT, [1, "bX"])
    batch = state.take_batch()
    assert batch is not None
    state.on_disconnect()
    state.on_joined(p.Joined(doc=DOC, mode="thin", version=0, rights=["write"]))
    ops: list[p.EditOp] = [p.SeqEdit(node=TEXT, edit=[1, "X"])]
    state.on_remote(p.Remote(doc=DOC, version=1, ops=ops, client_id="me", edit_id=batch.edit_id))
    assert state.value(TEXT) == "aXc" and state.synced
    state.check_invariants()


def test_an_undo_names_what_it_brings_back_unless_told_not_to() -> None:
    for revive in (True, False):
        state = ThinDocState(DOC, "me", edit_id_prefix="me", revive=revive)
        undo = UndoManager(state, TEXT, clock=lambda: 0.0)
        joined(state, "abc")
        state.local_edit(TEXT, [1, -1])
        batch = state.take_batch()
        assert batch is not None
        state.on_ack(p.Ack(doc=DOC, edit_id=batch.edit_id, version=1))
        undo.undo()  # brings "b" back
        batch = state.take_batch()
        assert batch is not None
        expect = [p.Revive(node=TEXT, at=0, n=1, edit="me-1", of=0)] if revive else None
        assert batch.revive == expect and state.value(TEXT) == "abc"


def test_batch_op_finds_the_characters_of_a_batch_laid_out_otherwise() -> None:
    """The log laid a batch's records out otherwise than the text (a tie): what it deletes is
    still named, by code point in the order the batch's op deletes them (the JS twin's test)."""

    class Rec:
        def __init__(self, op: list[Any]) -> None:
            self.op, self.own, self.gen, self.kind = op, True, 2, "edit"

    log = [
        Rec([Del("专丒", (5, 4)), 9, Del("丏丟", (3, 7))]),
        Rec([8, Ins("两严", (12, 13)), Del("与", (11,))]),
        Rec([8, Ins("与", (11,)), Del("两严", (12, 13))]),
        Rec([8, Ins("丩个", (19, 20)), Del("与", (11,))]),
    ]
    payload: list[Any] = [-4, 8, "丩个", -1]
    base = "专丒丏丟丅丆东丝丞両丢不与"
    assert batch_op(log, 2, payload, deletes) is None  # not the payload as composed
    c = batch_op(log, 2, payload, deletes, base)
    assert c is not None and to_plain(c) == payload
    named: Deleted = Deleted()
    record_deleted(c, "e-2", named)
    assert list(named.items()) == [(i, ("e-2", k)) for k, i in enumerate([5, 4, 3, 7, 11])]
    assert batch_op(log, 2, [-4, 8, "丩x", -1], deletes, base) is None
    assert batch_op(log, 2, payload, deletes, "专丒丏丟丅丆东丝丞両丢不z") is None
