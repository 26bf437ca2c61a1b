"""The thin client core (``ThinDocState``), one message at a time.

These unit tests feed it hand-written server messages. The same core against the real ``Room``
is ``test_thin_room.py`` (random schedules, several clients) and ``test_thin_vectors.py`` (the
shared vectors of ``tests/vectors/``, recorded from the Room, which the JavaScript client runs
too); the algorithm is specified in ``docs/protocol.md`` ("The thin-client algorithm").
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cowrite import protocol as p
from cowrite.client.thin import ThinDocState
from cowrite.client.values import diff_seq, diff_text, position_before
from cowrite.engine import ot
from cowrite.engine.errors import InvalidOperation
from cowrite.engine.rebase import EditLog

TEXT = "text:body"
MAP = "map:meta"
COUNTER = "counter:clicks"
LIST = "list:items"


# ------------------------------------------------------------------ unit tests


def test_diff_text_keeps_common_prefix_and_suffix() -> None:
    assert diff_text("hello world", "hello brave world") == [6, "brave "]
    assert diff_text("abc", "abc") == []
    assert diff_text("abc", "") == [-3]
    assert diff_text("", "xy") == ["xy"]
    assert diff_text("a😀b", "a😀😀b") == [2, "😀"]


@given(st.text("ab😀x", max_size=12), st.text("ab😀y", max_size=12))
def test_diff_turns_a_into_b(a: str, b: str) -> None:
    assert ot.apply(a, diff_text(a, b)) == b
    assert ot.apply(list(a), diff_seq(list(a), list(b))) == list(b)


@given(st.text("abc😀", max_size=10), st.data())
def test_position_before_maps_back_into_the_base(s: str, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, len(s)))
    delete = data.draw(st.integers(0, len(s) - n))
    op = ot.from_splice(n, delete, data.draw(st.text("xy", max_size=3)))
    after = ot.apply(s, op)
    pos = data.draw(st.integers(0, len(after)))
    back = position_before(pos, op)
    assert 0 <= back <= len(s)
    if pos < n:
        assert back == pos
    if pos >= n + len(after) - len(s) + delete:  # after the edit: shifted back by its size
        assert back == pos - (len(after) - len(s))


def joined_state(version: int = 0, text: str = "") -> ThinDocState:
    state = ThinDocState("d", "me", edit_id_prefix="e")
    snapshot = {TEXT: {"kind": "text", "value": text}}
    state.on_joined(
        p.Joined(doc="d", mode="thin", version=version, rights=["write"], snapshot=snapshot)
    )
    return state


def test_local_edits_batch_one_at_a_time_and_ack_moves_them_to_the_server_state() -> None:
    state = joined_state(text="abc")
    state.local_edit(TEXT, [3, "d"])
    state.local_edit(TEXT, [4, "e"])
    batch = state.take_batch()
    assert batch is not None and batch.version == 0
    assert batch.ops == [p.SeqEdit(node=TEXT, edit=[3, "de"])]
    state.local_edit(TEXT, ["X"])
    assert state.take_batch() is None  # one batch in flight
    assert state.on_ack(p.Ack(doc="d", edit_id=batch.edit_id, version=1)) == []
    assert state.version == 1 and state.server[TEXT] == "abcde"
    nxt = state.take_batch()
    assert nxt is not None and nxt.version == 1 and nxt.edit_id != batch.edit_id
    assert nxt.ops == [p.SeqEdit(node=TEXT, edit=["X"])]
    assert not state.synced
    state.on_ack(p.Ack(doc="d", edit_id=nxt.edit_id, version=2))
    assert state.synced and state.local[TEXT] == "Xabcde"
    state.check_invariants()


def test_remote_insert_at_our_position_lands_after_ours_like_the_server_puts_it() -> None:
    # the server rebases our op over the remote with ours on the left: ours first at a tie
    state = joined_state(text="ab")
    state.local_edit(TEXT, [1, "X"])
    batch = state.take_batch()
    assert batch is not None
    change = state.on_remote(
        p.Remote(doc="d", version=1, ops=[p.SeqEdit(node=TEXT, edit=[1, "Y"])])
    )
    assert change == [p.SeqEdit(node=TEXT, edit=[2, "Y"])]
    assert state.local[TEXT] == "aXYb"
    server = EditLog()
    server.record([(0, [1, "Y"])])
    assert ot.apply("aYb", server.rebase(0, [1, "X"], 0)) == "aXYb"
    state.on_ack(p.Ack(doc="d", edit_id=batch.edit_id, version=2))
    assert state.server[TEXT] == "aXYb"
    state.check_invariants()


def test_duplicate_and_out_of_order_remotes_are_ignored_or_trigger_a_rejoin() -> None:
    state = joined_state(text="ab")
    remote = p.Remote(doc="d", version=1, ops=[p.SeqEdit(node=TEXT, edit=["Z"])])
    assert state.on_remote(remote) == [p.SeqEdit(node=TEXT, edit=["Z"])]
    assert state.on_remote(remote) == []
    assert state.local[TEXT] == "Zab"
    assert not state.rejoin_needed
    state.on_remote(p.Remote(doc="d", version=3, ops=[p.SeqEdit(node=TEXT, edit=["Q"])]))
    assert state.rejoin_needed and state.local[TEXT] == "Zab"
    assert state.join_message().version == 1


def test_our_batch_coming_back_in_a_catch_up_counts_as_its_ack() -> None:
    state = joined_state(text="ab")
    state.local_edit(TEXT, [2, "!"])
    batch = state.take_batch()
    assert batch is not None
    state.on_disconnect()
    join = state.join_message()
    assert join.version == 0
    state.on_joined(p.Joined(doc="d", mode="thin", version=0, rights=["write"]))
    resent = state.take_batch()
    assert resent is not None and resent.edit_id == batch.edit_id
    mine = p.Remote(doc="d", version=1, ops=batch.ops, client_id="me", edit_id=batch.edit_id)
    assert state.on_remote(mine) == []
    assert state.synced and state.version == 1 and state.server[TEXT] == "ab!"
    # the server then acknowledges the resend as a duplicate: nothing happens
    assert state.on_ack(p.Ack(doc="d", edit_id=batch.edit_id, version=1)) == []
    assert state.local[TEXT] == "ab!"


def test_snapshot_rejoin_merges_three_ways_and_undoes_a_batch_applied_twice() -> None:
    state = joined_state(text="hello world")
    state.local_edit(TEXT, [5, ","])
    batch = state.take_batch()  # applied by the server, but the ack is lost
    assert batch is not None
    state.local_edit(TEXT, [12, "!"])  # pending: "hello, world!"
    state.on_disconnect()
    state.join_message()
    # meanwhile: our batch at 1, someone else's "big " at 2; the log no longer reaches back
    snapshot = {TEXT: {"kind": "text", "value": "hello, big world"}}
    changes = state.on_joined(
        p.Joined(doc="d", mode="thin", version=2, rights=["write"], snapshot=snapshot)
    )
    assert changes and state.version == 2
    state.check_invariants()
    resent = state.take_batch()
    assert resent is not None and resent.edit_id == batch.edit_id and resent.version == 2
    assert state.local[TEXT] == "hello,, big world!"  # optimistic: not yet known to be applied
    undo = state.on_ack(p.Ack(doc="d", edit_id=batch.edit_id, version=1))
    assert undo in ([p.SeqEdit(node=TEXT, edit=[5, -1])], [p.SeqEdit(node=TEXT, edit=[6, -1])])
    assert state.local[TEXT] == "hello, big world!"
    state.check_invariants()
    last = state.take_batch()
    assert last is not None and last.ops == [p.SeqEdit(node=TEXT, edit=[16, "!"])]


def test_refused_batch_is_undone_and_pending_edits_stay() -> None:
    state = joined_state(text="abc")
    state.local_edit(TEXT, [1, "X"])
    state.local_set(MAP, "k", 1)
    state.local_add(COUNTER, 5)
    batch = state.take_batch()
    assert batch is not None
    state.local_edit(TEXT, [4, "Y"])
    outcome = state.on_error(
        p.Error(code=p.ErrorCode.INVALID_EDIT, message="no", edit_id=batch.edit_id)
    )
    assert outcome.action == "rejected"
    assert state.local[TEXT] == "abcY"
    assert state.local[MAP] == {} and state.local[COUNTER] == 0
    assert state.inflight is None
    state.check_invariants()
    retry = state.on_error(p.Error(code=p.ErrorCode.RATE_LIMITED, message="", edit_id="nope"))
    assert retry.action == "ignore"


def test_rate_limited_batch_is_resent_with_the_same_edit_id() -> None:
    state = joined_state()
    state.local_edit(TEXT, ["a"])
    batch = state.take_batch()
    assert batch is not None and state.take_batch() is None
    outcome = state.on_error(
        p.Error(code=p.ErrorCode.RATE_LIMITED, message="", edit_id=batch.edit_id)
    )
    assert outcome.action == "retry"
    again = state.take_batch()
    assert again is not None and again.edit_id == batch.edit_id


def test_map_register_and_counter_writes_show_until_the_server_orders_them() -> None:
    state = joined_state()
    state.local_set(MAP, "title", "mine")
    state.local_set("register:r", None, 1)
    state.local_add(COUNTER, 2)
    batch = state.take_batch()
    assert batch is not None
    ops: list[p.EditOp] = [
        p.SetKey(node=MAP, key="title", value="theirs"),
        p.SetKey(node=MAP, key="other", value=1),
        p.CounterAdd(node=COUNTER, amount=10),
    ]
    changes = state.on_remote(p.Remote(doc="d", version=1, ops=ops))
    # our write of "title" is applied after theirs: the local view keeps ours
    assert changes == [
        p.SetKey(node=MAP, key="other", value=1),
        p.CounterAdd(node=COUNTER, amount=10),
    ]
    assert state.local[MAP] == {"title": "mine", "other": 1}
    assert state.local[COUNTER] == 12
    state.on_ack(p.Ack(doc="d", edit_id=batch.edit_id, version=2))
    assert state.server[MAP] == {"title": "mine", "other": 1}
    assert state.server["register:r"] == 1 and state.server[COUNTER] == 12
    state.local_delete(MAP, "other")
    assert state.local[MAP] == {"title": "mine"}
    state.check_invariants()


def test_nested_nodes_created_in_a_map_get_their_ids_from_the_ack() -> None:
    state = joined_state()
    state.local_set(MAP, "doc", {"$new": "text"})
    batch = state.take_batch()
    assert batch is not None
    state.on_ack(p.Ack(doc="d", edit_id=batch.edit_id, version=1, created=["#7.3"]))
    assert state.local[MAP] == {"doc": {"$node": "#7.3"}}
    assert state.kind("#7.3") == "text"
    state.local_edit("#7.3", ["nested"])
    assert state.value("#7.3") == "nested"
    with pytest.raises(InvalidOperation):
        state.local_edit(LIST, [[{"$new": "map"}]])


def test_edits_that_do_not_fit_are_refused_before_anything_changes() -> None:
    state = joined_state(text="ab")
    with pytest.raises(InvalidOperation):
        state.local_edit(TEXT, [5, "x"])
    with pytest.raises(InvalidOperation):
        state.local_edit(TEXT, [[1]])
    with pytest.raises(InvalidOperation):
        state.local_set(TEXT, "k", 1)
    assert state.synced and state.local[TEXT] == "ab"


def test_remote_cursors_follow_edits_made_since_their_version() -> None:
    state = joined_state(text="0123456789")
    state.on_remote(p.Remote(doc="d", version=1, ops=[p.SeqEdit(node=TEXT, edit=["ab"])]))
    state.local_edit(TEXT, [0, "Q"])
    # a cursor set at version 0 at "5": two chars inserted remotely, one locally before it
    assert state.cursor_to_local(p.Cursor(node=TEXT, anchor=5, head=7, version=0)) == (8, 10)
    assert state.cursor_to_local(p.Cursor(node=TEXT, anchor=5, head=5, version=1)) == (6, 6)
    # ours, sent to the server: without the pending "Q"
    assert state.cursor_to_server(TEXT, 6, 6) == p.Cursor(node=TEXT, anchor=5, head=5, version=1)
