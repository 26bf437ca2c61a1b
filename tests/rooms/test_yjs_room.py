"""The Yjs kind's room (sans-I/O): what it persists, the frames it addresses, awareness across
instances, loading from a store that holds a damaged entry."""

from __future__ import annotations

import json
from typing import Any

import pycrdt

from cowrite.rooms.state import RoomError, RoomLimits
from cowrite.rooms.yjs_history import MAGIC, YjsHistory, wrap
from cowrite.rooms.yjs_room import YJS, Attachment, YjsRoom
from cowrite.yjs.awareness import AwarenessEntry, decode_update, encode_update


class Sink:
    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.frames.append(data)


def update_of(text: str, client: int = 1) -> bytes:
    doc: pycrdt.Doc[Any] = pycrdt.Doc(client_id=client)
    doc.get("t", type=pycrdt.Text).insert(0, text)
    return doc.get_update()


def load(updates: list[tuple[int, bytes]], snapshot: bytes | None = None) -> YjsRoom:
    return YJS.load("d", snapshot, 0, updates, RoomLimits(), replica=1, now_ms=lambda: 0)


def attach(room: YjsRoom, key: str, dialect_key: Any, calls: list[str]) -> Sink:
    sink = Sink()

    def frame(kind: str) -> Any:
        def encode(data: Any) -> bytes:
            calls.append(key)
            return kind.encode() + bytes(data if isinstance(data, bytes) else data.encode())

        return encode

    room.attach(Attachment(key, sink, frame("u"), frame("a"), dialect_key=dialect_key))
    return sink


def test_frames_are_encoded_once_per_dialect_key_and_skip_their_origin() -> None:
    room = load([])
    calls: list[str] = []
    attach(room, "a", ("y",), calls)
    attach(room, "b", ("y",), calls)
    attach(room, "c", ("h", "doc"), calls)
    attach(room, "d", None, calls)
    attach(room, "e", None, calls)
    frames = room.update_frames(b"U", origin="b")
    assert [f for _, f in frames] == [b"uU"] * 4
    assert sorted(calls) == ["a", "c", "d", "e"]  # b is the origin; a's frame shared by none
    calls.clear()
    frames = room.awareness_frames(b"A")
    assert len(frames) == 5 and sorted(calls) == ["a", "c", "d", "e"]  # b shares a's frame
    assert frames[0][1] is frames[1][1]


def test_persisted_updates_number_the_versions() -> None:
    room = load([(1, update_of("a")), (2, update_of("b", 2))])
    assert room.version == 2
    outcome = room.persisted(b"x")
    assert (outcome.persist, outcome.version, room.version) == (b"x", 3, 3)
    assert room.merge_update(update_of("c", 3)).frames == []  # nobody attached
    assert room.version == 4


def test_a_damaged_stored_entry_is_skipped_and_the_rest_loads() -> None:
    room = load([(1, update_of("ok")), (2, b"\xff\xfe garbage"), (3, update_of("!", 2))])
    assert room.version == 3
    assert sorted(room.shared.doc.text("t")) == sorted("ok!")
    try:
        room.merge_update(b"\x01\x02\x03")
    except RoomError as exc:
        assert "not a Yjs update" in exc.message
    else:
        raise AssertionError("garbage merged")


def test_awareness_of_another_instance_is_relayed_then_dropped_with_it() -> None:
    room = load([])
    sink = Sink()
    room.attach(Attachment("x", sink, lambda u: b"u" + u, lambda a: a))
    state = json.dumps({"user": {"name": "Ann"}})
    outcome = room.merge_awareness(7, encode_update([AwarenessEntry(42, 3, state)]), 1_000)
    assert [decode_update(f)[0].state for _, f in outcome.frames] == [state]
    assert room.local_awareness() is None  # nobody here owns it
    assert room.drop_instance(8).frames == []  # another instance: nothing of it
    outcome = room.drop_instance(7)
    [(_, frame)] = outcome.frames
    assert decode_update(frame) == [AwarenessEntry(42, 3, None)]
    assert room.shared.awareness.states() == {}
    try:
        room.merge_awareness(7, b"\x05", 1_000)
    except RoomError:
        pass
    else:
        raise AssertionError("garbage awareness merged")


def test_a_snapshot_merges_what_it_adds() -> None:
    room = load([(1, update_of("a"))])
    sink = Sink()
    room.attach(Attachment("x", sink, lambda u: u, lambda a: a))
    outcome = room.merge_snapshot(update_of("b", 2))
    assert outcome is not None and len(outcome.frames) == 1
    assert sorted(room.shared.doc.text("t")) == ["a", "b"]
    assert room.merge_snapshot(b"\x00\x07 nothing") is None


def test_a_history_container_loads_as_its_state_and_tells_what_is_replayable() -> None:
    history = YjsHistory(5, update_of("old"), [(6, update_of("new", client=2))], {2: b"x"})
    snapshot = wrap(update_of("both"), history)
    room = YJS.load(
        "d", snapshot, 6, [(7, update_of("!", 3))], RoomLimits(), replica=1, now_ms=lambda: 0
    )
    assert "both" in room.shared.doc.text("t") and "!" in room.shared.doc.text("t")
    assert room.version == 7 and room.history_floor == 5
    assert room.available(0) and room.available(2) and room.available(5)
    assert not room.available(3)
    # another instance's container merges as its state, and its history floor is taken
    other = load([])
    assert other.merge_snapshot(snapshot) is not None
    assert other.shared.doc.text("t") == "both" and other.history_floor == 5
    assert other.merge_snapshot(MAGIC + b"damaged") is None


def test_persisted_notes_how_and_what_was_restored() -> None:
    room = load([])
    effective = room.shared.doc.apply_client_update(update_of("x"))
    assert effective is not None
    outcome = room.persisted(effective, ("u", "U"), 5, how="restored", restored_from=3)
    assert outcome.note is not None
    record = outcome.note.record()
    assert (record.how, record.restored_from, record.authors) == ("restored", 3, (("u", "U"),))
    assert record.size == len(effective) and record.time_ms == 5
