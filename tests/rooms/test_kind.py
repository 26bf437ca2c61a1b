"""The CRDT kind's loader (``rooms/kind.py``): a stored document becomes a room, ready to join."""

from __future__ import annotations

import pytest

from cowrite import protocol as p
from cowrite.engine.document import Document
from cowrite.rooms import room as room_module
from cowrite.rooms.kind import CRDT
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
