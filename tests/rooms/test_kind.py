"""The CRDT kind's loader (``rooms/kind.py``): a stored document becomes a room, ready to join."""

from __future__ import annotations

import pytest

from cowrite import protocol as p
from cowrite.engine.document import Document
from cowrite.rooms import room as room_module
from cowrite.rooms.kind import CRDT, PREPARED_JOINS_KEPT_MS
from cowrite.rooms.room import Member, RoomLimits
from cowrite.rooms.wire import snapshot


def _stored() -> bytes:
    doc = Document(7, now_ms=lambda: 0)
    doc.text("body").insert(0, "hello world")
    doc.list("items").insert(0, [1, {"$x": 2}])
    return doc.encode_state()


def test_a_loaded_room_has_the_first_join_snapshot_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    room = CRDT.load("d", _stored(), 0, [], RoomLimits(), replica=1, now_ms=lambda: 0)
    expected = snapshot(room.doc)

    def on_the_loop(*_: object, **__: object) -> None:
        raise AssertionError("the join built the snapshot: the loader should have")

    monkeypatch.setattr(room_module, "snapshot", on_the_loop)
    who = Member("s", "c", p.User(id="c"), "thin", frozenset({"read"}), 0)
    out = room.join(who, p.Join(doc="d"), [])
    joined = out.reply[0]
    assert isinstance(joined, p.Joined)
    assert (joined.snapshot, joined.roots) == expected
    assert joined.snapshot is not None
    assert joined.snapshot["text:body"]["value"] == "hello world"


def test_an_edit_after_the_load_gets_a_fresh_snapshot() -> None:
    room = CRDT.load("d", _stored(), 0, [], RoomLimits(), replica=1, now_ms=lambda: 0)
    writer = Member("w", "w", p.User(id="w"), "thin", frozenset({"read", "write"}), 0)
    room.join(writer, p.Join(doc="d"), [])
    edit = p.Edit(doc="d", edit_id="e1", version=room.version, ops=[p.SeqEdit("text:body", ["!"])])
    room.edit("w", edit, 0)
    out = room.join(
        Member("r", "r", p.User(id="r"), "thin", frozenset({"read"}), 0), p.Join(doc="d"), []
    )
    joined = out.reply[0]
    assert isinstance(joined, p.Joined) and joined.snapshot is not None
    assert joined.snapshot["text:body"]["value"] == "!hello world"


def _thin(session: str) -> Member:
    return Member(session, session, p.User(id=session), "thin", frozenset({"read"}), 0)


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the snapshots built from now on."""
    calls: list[int] = []
    real = room_module.snapshot

    def counted(doc: Document, **options: bool) -> object:
        calls.append(1)
        return real(doc, **options)

    monkeypatch.setattr(room_module, "snapshot", counted)
    return calls


def test_the_loaders_snapshot_is_dropped_if_no_join_uses_it_in_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A document loaded and not joined thin (a replica's, an idle one) keeps no copy of its
    text: the room's tick drops the loader's snapshot ``PREPARED_JOINS_KEPT_MS`` after the load;
    a thin join after that builds it again (right)."""
    t0 = 1_000_000
    room = CRDT.load("d", _stored(), 0, [], RoomLimits(), replica=1, now_ms=lambda: t0)
    deadline = t0 + PREPARED_JOINS_KEPT_MS
    assert room._snap is not None
    due = room.tick_due_ms()
    assert due is not None and due <= deadline
    room.tick(deadline - 1)
    assert room._snap is not None
    room.tick(deadline)
    assert room._snap is None
    due = room.tick_due_ms()
    assert due is None or due != deadline  # no visit for it any more
    calls = _counting(monkeypatch)
    joined = room.join(_thin("late"), p.Join(doc="d"), []).reply[0]
    assert isinstance(joined, p.Joined) and joined.snapshot is not None
    assert joined.snapshot["text:body"]["value"] == "hello world" and calls == [1]


def test_the_loaders_snapshot_once_used_by_a_join_stays_for_later_joins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room = CRDT.load("d", _stored(), 0, [], RoomLimits(), replica=1, now_ms=lambda: 0)
    calls = _counting(monkeypatch)
    room.join(_thin("a"), p.Join(doc="d"), [])
    room.tick(PREPARED_JOINS_KEPT_MS * 10)
    assert room._snap is not None
    room.join(_thin("b"), p.Join(doc="d"), [])
    assert calls == []  # both joins shared the loader's snapshot


def test_an_edit_before_the_deadline_ends_the_loaders_snapshot_and_its_timer() -> None:
    room = CRDT.load("d", _stored(), 0, [], RoomLimits(), replica=1, now_ms=lambda: 0)
    writer = Member("w", "w", p.User(id="w"), "replica", frozenset({"read", "write"}), 0)
    room.join(writer, p.Join(doc="d", mode="replica"), [])
    edit = p.Edit(doc="d", edit_id="e1", version=room.version, ops=[p.SeqEdit("text:body", ["!"])])
    room.edit("w", edit, 0)
    assert room._snap is None and room._snap_unused_until is None
