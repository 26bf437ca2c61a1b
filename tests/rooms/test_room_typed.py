"""`Room.edit`'s fast path for typing (one change to a named text: ``ThinEdits._typed``) gives
exactly what the general plan gives: the same outcome (stored update, version note, ack, remote,
relay, checksums) or the same error, for head and stale edits alike, normalized or not."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite import protocol as p
from cowrite.engine import Document
from cowrite.rooms.room import Member, Outcome, Room, RoomError, RoomLimits

DOC = "d"
ALL = frozenset({"read", "write"})


def _room(general: bool) -> Room:
    room = Room(DOC, Document(replica=77), limits=RoomLimits(max_node_length=60))
    room.checks.min_versions = 3  # checksums come often enough to be compared too
    room.checks.chars_per_version = 1 << 20
    if general:
        room._typed = lambda msg: None  # type: ignore[method-assign]
    for s in ("a", "b"):
        room.join(Member(s, s, p.User(id=s), "thin", ALL, 0), p.Join(doc=DOC), [])
    return room


def _edit(edit: list[Any], version: int, edit_id: str, node: str = "text:t") -> p.Edit:
    """(Built unchecked, as the room may be handed anything: bools, empty inserts...)"""
    ops: list[p.EditOp] = [p.SeqEdit(node=node, edit=edit)]
    return p.Edit(doc=DOC, edit_id=edit_id, version=version, ops=ops)


def _seen(room: Room, session: str, msg: p.Edit, now: int) -> Any:
    """What the room did with ``msg``: its outcome as plain data, or its error."""
    try:
        out = room.edit(session, msg, now)
    except RoomError as exc:
        return ("error", exc.code, exc.message, exc.resync)
    return _plain(out)


def _plain(out: Outcome) -> Any:
    return (
        out.persist,
        out.version,
        out.edit_keys,
        out.edit_digest,
        [msgspec.to_builtins(m) for m in out.reply],
        [(msgspec.to_builtins(m), a) for m, a in out.broadcast],
        out.note,
        out.fault,
    )


component = st.one_of(
    st.integers(-6, 8),
    st.text(alphabet="ab€😀", max_size=3),
    st.just(True),
    st.lists(st.integers(0, 2), max_size=2),
)


@st.composite
def keystroke(draw: st.DrawFn) -> list[Any]:
    """One change, as typing sends it (a retain, an insert and/or a delete, maybe a trailing
    retain), its position possibly past the end of the text."""
    pos, ins, deleted, tail = (
        draw(st.integers(0, 14)),
        draw(st.text(alphabet="xy€😀", max_size=2)),
        draw(st.integers(0, 3)),
        draw(st.integers(0, 2)),
    )
    op: list[Any] = [pos] if pos else []
    op += [ins] if ins else []
    op += [-deleted] if deleted else []
    return [*op, tail] if tail else op


step = st.tuples(
    st.one_of(keystroke(), keystroke(), keystroke(), st.lists(component, max_size=4)),
    st.integers(0, 4),  # versions back from the head
    st.sampled_from(["a", "b"]),
    st.one_of(st.just("text:t"), st.sampled_from(["list:l", "text:u", "#9.9", "bad"])),
    st.booleans(),  # reuse the previous edit id
)


@settings(max_examples=150, deadline=None)
@given(st.lists(step, min_size=1, max_size=25))
def test_typed_edits_match_the_general_plan(steps: list[Any]) -> None:
    fast, slow = _room(False), _room(True)
    for room in (fast, slow):  # a text to edit, and a list (not the fast path's)
        room.edit("a", _edit(["hello world"], 0, "init"), 0)
        room.edit("a", _edit([[1, 2]], room.version, "list", "list:l"), 0)
    for i, (edit, back, session, node, again) in enumerate(steps):
        version = max(0, fast.version - back)
        edit_id = f"e{i - 1 if again and i else i}"
        msg = _edit(edit, version, edit_id, node)
        assert _seen(fast, session, msg, i) == _seen(slow, session, msg, i)
        assert fast.doc.to_json() == slow.doc.to_json()
    assert fast.doc.delta_since({}) == slow.doc.delta_since({})


def test_a_keystroke_takes_the_fast_path() -> None:
    room = _room(False)
    room.edit("a", _edit(["hello"], 0, "init"), 0)
    calls = []
    plan = room._plan

    def spy(msg: p.Edit) -> Any:
        calls.append(msg)
        return plan(msg)

    room._plan = spy  # type: ignore[method-assign]
    out = room.edit("b", _edit([5, "!"], room.version, "k1"), 1)
    room.edit("b", _edit([2, -1], room.version - 1, "k2"), 2)  # stale: rebased, still fast
    assert calls == []
    assert out.note is not None and out.note.size == 1
    assert room.doc.to_json()["t"] == "helo!"
    room.edit("b", _edit([-1, "x"], room.version, "k3"), 3)  # not normalized: the plan's
    assert len(calls) == 1
    assert room.doc.to_json()["t"] == "xelo!"


def test_the_first_edit_of_a_new_replica_is_stored_as_a_state_delta() -> None:
    """No op of this replica yet: the delta comes from ``delta_since`` as before."""
    fast, slow = _room(False), _room(True)
    fast.doc.text("t")  # the root exists: the fast path may take the edit
    slow.doc.text("t")
    msg = _edit(["abc"], 0, "first")
    assert _seen(fast, "a", msg, 0) == _seen(slow, "a", msg, 0)


def test_an_edit_after_a_rename_is_noted_under_the_new_name() -> None:
    """The member's author is kept between edits (``Member.author``), but never past a change
    of its user."""
    room = _room(False)
    first = room.edit("a", _edit(["x"], 0, "1"), 0)
    room.presence("a", p.SetPresence(doc=DOC, user=p.User(name="Ann")), 1)
    second = room.edit("a", _edit(["y"], room.version, "2"), 2)
    assert first.note is not None and second.note is not None
    assert (first.note.user_name, second.note.user_name) == ("", "Ann")


def test_an_engine_failure_inside_a_keystroke_keeps_the_room_consistent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replace (insert + delete) whose delete fails in the engine: the insert stays, is a
    version stored and relayed under no edit id, and thin clients are told to reload; one that
    fails before changing anything raises and leaves no version."""
    fast = _room(False)
    first = fast.edit("a", _edit(["hello"], 0, "init"), 0)

    def broken(node: int, pos: int, count: int) -> None:
        raise RuntimeError("engine bug")

    monkeypatch.setattr(fast.doc, "delete", broken)
    with pytest.raises(RuntimeError):
        fast.edit("a", _edit([1, -1], fast.version, "del"), 1)
    assert fast.version == 1
    out = fast.edit("a", _edit([1, "X", -1], fast.version, "swap"), 2)
    assert isinstance(out.fault, RuntimeError) and out.version == 2 and out.edit_keys == []
    assert [type(m) for m in out.reply] == [p.Error, p.Resync]
    assert [(type(m), a) for m, a in out.broadcast] == [
        (p.Resync, "thin"),
        (p.RemoteSync, "replica"),
    ]
    assert fast.seen(fast.members["a"].key_client, "swap") is None
    assert fast.doc.to_json()["t"] == "hXello"
    replay = Room(DOC, Document(replica=5))
    assert first.persist is not None and out.persist is not None
    replay.load_update(1, first.persist)
    replay.load_update(2, out.persist)
    assert replay.doc.to_json() == fast.doc.to_json()
