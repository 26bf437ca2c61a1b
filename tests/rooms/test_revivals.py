"""Revivals in the Room (``cowrite.rooms.revivals``; ``docs/protocol.md``, T11 "Revivals"): an
undo/redo's re-inserts that name what a batch of the sender deleted are inserted at most once,
never after a restore the sender had not seen, never when someone else deleted that character
first; an edit without ``revive`` (an older client) is applied as before, and garbage names are
refused at the wire or judged as plain inserts."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from cowrite import protocol as p
from cowrite.engine import ot
from cowrite.engine.document import Document
from cowrite.rooms.revivals import lost_deletes, without_inserted
from cowrite.rooms.room import Member, Outcome, Room

DOC = "d"
TEXT = "text:t"
ALL = frozenset({"read", "write"})


def room() -> Room:
    r = Room(DOC, Document(1, now_ms=lambda: 0))
    for s in ("a", "b"):
        r.join(Member(s, s, p.User(id=s), "thin", ALL, 0), p.Join(doc=DOC), [])
    return r


def edit(r: Room, who: str, op: list[Any], version: int, edit_id: str, **more: Any) -> Outcome:
    msg = msgspec.convert(
        {
            "type": "edit",
            "doc": DOC,
            "edit_id": edit_id,
            "version": version,
            "ops": [{"type": "seq", "node": TEXT, "edit": op}],
            **more,
        },
        p.Edit,
    )
    return r.edit(who, msg, 0)


def text(r: Room) -> str:
    doc = r.doc
    (node,) = [n for n, (name, _) in doc.roots.items() if name == "t"]
    return str(doc.node_json(node))


def ack(out: Outcome) -> p.Ack:
    msg = out.reply[0]
    assert isinstance(msg, p.Ack)
    return msg


def remote_edit(out: Outcome) -> Any:
    msg = out.broadcast[0][0]
    assert isinstance(msg, p.Remote) and isinstance(msg.ops[0], p.SeqEdit)
    return msg.ops[0].edit


def revive(at: int, n: int, edit_id: str, of: int) -> dict[str, Any]:
    return {"node": TEXT, "at": at, "n": n, "edit": edit_id, "of": of}


def test_a_revival_is_inserted_once() -> None:
    r = room()
    edit(r, "a", ["abc"], 0, "a-1")
    edit(r, "a", [1, -1], 1, "a-2")  # deletes "b"
    out = edit(r, "a", [1, "b"], 2, "a-3", revive=[revive(0, 1, "a-2", 0)])
    assert ack(out).dropped == [] and text(r) == "abc"
    # the same character brought back again (a second undo): left out, and said so
    out = edit(r, "a", [1, "bX"], 2, "a-4", revive=[revive(0, 1, "a-2", 0)])
    assert ack(out).dropped == [p.Dropped(node=TEXT, at=0, n=1)]
    assert remote_edit(out) == [1, "X"] and text(r) == "aXbc"
    assert "dropped" not in msgspec.to_builtins(ack(edit(r, "a", ["z"], 4, "a-5")))


def test_a_restore_the_sender_had_not_seen_takes_its_revivals() -> None:
    r = room()
    edit(r, "a", ["abc"], 0, "a-1")
    edit(r, "a", [1, -1], 1, "a-2")
    restore = r.apply_server_edit(
        [p.SeqEdit(node=TEXT, edit=[1, "b"])], 0, client_id="server", edit_id="restore-x-0"
    )
    assert restore.version == 3 and text(r) == "abc"
    # the undo made at version 2 (before the restore brought "b" back): not twice
    out = edit(r, "a", [1, "b"], 2, "a-3", revive=[revive(0, 1, "a-2", 0)])
    assert ack(out).dropped == [p.Dropped(node=TEXT, at=0, n=1)] and text(r) == "abc"
    # made after it (the client saw the restore and still re-inserts: an undone restore)
    edit(r, "a", [1, -1], 4, "a-4")
    out = edit(r, "a", [1, "b"], 5, "a-5", revive=[revive(0, 1, "a-4", 0)])
    assert ack(out).dropped == [] and text(r) == "abc"


def test_what_someone_else_deleted_first_is_not_brought_back_by_our_own_batch() -> None:
    r = room()
    edit(r, "a", ["abc"], 0, "a-1")
    edit(r, "b", [1, -1], 1, "b-1")  # b deletes "b" first
    # a's batch deleted "b" and re-inserted it (an undo composed with its edit), made at 1:
    # its own delete was taken by b's, so its revival is not its to make
    out = edit(r, "a", [1, "b", -1, "Y"], 1, "a-2", revive=[revive(0, 1, "a-2", 0)])
    assert ack(out).dropped == [p.Dropped(node=TEXT, at=0, n=1)] and text(r) == "aYc"
    # made after b's delete: nothing taken, nothing dropped
    out = edit(r, "a", ["Z", 1, "k", -1], 3, "a-3", revive=[revive(1, 1, "a-3", 0)])
    assert ack(out).dropped == [] and text(r) == "ZakYc"[:2] + "k" + "c"


def test_names_the_room_cannot_judge_are_plain_inserts() -> None:
    r = room()
    edit(r, "a", ["abc"], 0, "a-1")
    # an edit the room never applied (refused, forgotten): inserted as before
    out = edit(r, "a", [1, "q"], 1, "a-2", revive=[revive(0, 1, "nobody", 3)])
    assert ack(out).dropped == [] and text(r) == "aqbc"
    # runs past what the op inserts, or of another node: ignored
    out = edit(
        r,
        "a",
        ["w"],
        2,
        "a-3",
        revive=[revive(0, 5, "a-1", 0), {**revive(0, 1, "a-1", 0), "node": "text:other"}],
    )
    assert ack(out).dropped == [] and text(r) == "waqbc"
    # another client's edit ids name nothing of ours
    out = edit(r, "b", ["v"], 3, "b-1", revive=[revive(0, 1, "a-1", 0)])
    assert ack(out).dropped == [] and text(r) == "vwaqbc"


@pytest.mark.parametrize(
    "run",
    [
        {"node": TEXT, "at": -1, "n": 1, "edit": "e", "of": 0},
        {"node": TEXT, "at": 0, "n": 0, "edit": "e", "of": 0},
        {"node": TEXT, "at": 0, "n": 1, "edit": "", "of": 0},
        {"node": TEXT, "at": 0, "n": 1, "edit": "e", "of": "0"},
        {"node": TEXT, "at": 0, "n": 1, "edit": "e"},
        {"node": TEXT, "at": 0, "n": 1, "edit": "e", "of": 0, "extra": 1},
        "run",
    ],
)
def test_garbage_revive_is_refused_at_the_wire(run: Any) -> None:
    frame = msgspec.json.encode(
        {
            "type": "edit",
            "doc": DOC,
            "edit_id": "e",
            "version": 0,
            "ops": [{"type": "seq", "node": TEXT, "edit": ["x"]}],
            "revive": [run],
        }
    )
    with pytest.raises(p.ProtocolError) as exc:
        p.decode_client(frame, 10_000)
    assert exc.value.code is p.ErrorCode.BAD_MESSAGE and "revive" in exc.value.message


def test_lost_deletes_agree_with_the_transform() -> None:
    op = ot.normalize([1, -2, 2, -1])  # deletes base positions 1, 2 and 5
    assert lost_deletes(op, [[2, -1]]) == {1}
    assert lost_deletes(op, [["xy", 5, -1]]) == {2}
    assert lost_deletes(op, [["xy", 4, -1]]) == set()
    assert lost_deletes(op, [[1, "z"], [2, -2]]) == {0, 1}
    assert lost_deletes(op, []) == set()
    assert without_inserted(["ab", 2, "c", -1], {1, 2}) == ["a", 2, -1]


def test_a_resend_withdraws_what_its_correction_takes_back() -> None:
    r = room()
    edit(r, "a", ["abc"], 0, "a-1")
    withdraw = [
        {"node": TEXT, "at": 1, "n": 1},
        {"node": TEXT, "at": 1, "n": 9},  # past what the op inserts: ignored
        {"node": "text:other", "at": 0, "n": 1},
    ]
    out = edit(r, "a", [1, "xyz"], 1, "a-2", withdraw=withdraw)
    assert ack(out).dropped == [p.Dropped(node=TEXT, at=1, n=1)]
    assert remote_edit(out) == [1, "xz"] and text(r) == "axzbc"
    # a withdrawn revival is not remembered as revived
    edit(r, "a", [1, -1], 2, "a-3")  # deletes "x"
    first = [{"node": TEXT, "at": 0, "n": 1}]
    out = edit(r, "a", [1, "x"], 3, "a-4", revive=[revive(0, 1, "a-3", 0)], withdraw=first)
    assert ack(out).dropped == [p.Dropped(node=TEXT, at=0, n=1)] and text(r) == "azbc"
    out = edit(r, "a", [1, "x"], 4, "a-5", revive=[revive(0, 1, "a-3", 0)])
    assert ack(out).dropped == [] and text(r) == "axzbc"


def test_a_revival_survives_an_unload_and_another_instance() -> None:
    r = room()
    stored = [edit(r, "a", ["abc"], 0, "a-1").persist, edit(r, "a", [1, -1], 1, "a-2").persist]
    out = edit(r, "a", [1, "b"], 2, "a-3", revive=[revive(0, 1, "a-2", 0)])
    assert ack(out).dropped == [] and out.persist is not None
    stored.append(out.persist)
    edit(r, "b", [3, "z"], 3, "b-1")  # (an update without revivals stays in the old format)
    # the room is unloaded and loaded again from its log (a restart): the name is remembered
    again = Room(DOC, Document(1, now_ms=lambda: 0))
    for seq, data in enumerate(stored, 1):
        assert data is not None
        again.load_update(seq, data)
    for s in ("a", "b"):
        again.join(Member(s, s, p.User(id=s), "thin", ALL, 0), p.Join(doc=DOC), [])
    out = edit(again, "a", [1, "bX"], 2, "a-4", revive=[revive(0, 1, "a-2", 0)])
    assert ack(out).dropped == [p.Dropped(node=TEXT, at=0, n=1)] and text(again) == "aXbc"
    # another instance merging the stored updates judges the same
    other = Room(DOC, Document(2, now_ms=lambda: 0))
    for data in stored:
        assert data is not None
        other.merge_update(data)
    for s in ("a", "b"):
        other.join(Member(s, s, p.User(id=s), "thin", ALL, 0), p.Join(doc=DOC), [])
    out = edit(other, "a", [1, "bX"], 2, "a-4", revive=[revive(0, 1, "a-2", 0)])
    assert ack(out).dropped == [p.Dropped(node=TEXT, at=0, n=1)]


def test_stored_revivals_garbage_changes_no_judgement() -> None:
    from cowrite.rooms import edit_keys, revivals

    assert revivals.decode(b"") == [] and revivals.decode(b"\xff{") == []
    assert revivals.decode(b'[["e","n",-1,1],["e","n",0,0],["e","n",2,3]]') == [("e", "n", 2, 3)]
    data = edit_keys.wrap_update("k", "e", b"DELTA", "dg", b"EXTRA")
    assert edit_keys.unwrap_update(data) == ("k", "e", "dg", b"DELTA")
    assert edit_keys.unwrap_update_extra(data) == ("k", "e", "dg", b"EXTRA", b"DELTA")
    with pytest.raises(ValueError, match="truncated"):
        edit_keys.unwrap_update(data[:12])
    with pytest.raises(ValueError, match="truncated"):
        edit_keys.unwrap_update(b"CWU\x03\x00\x01k\x00\x01e\x00\x00\x00\x00\x00\x09ab")


def test_a_name_past_the_batch_deletes_is_judged_by_the_restore_rule_alone() -> None:
    r = room()
    edit(r, "a", ["abc"], 0, "a-1")
    edit(r, "b", [1, -1], 1, "b-1")  # someone else deletes "b": a's undo cannot name it
    # a's re-insert of "b", named by its own batch past its deletes (it deletes none)
    out = edit(r, "a", [1, "b"], 2, "a-2", revive=[revive(0, 1, "a-2", 0)])
    assert ack(out).dropped == [] and text(r) == "abc"  # no restore since: inserted
    edit(r, "a", [1, -1], 3, "a-3")
    r.apply_server_edit(
        [p.SeqEdit(node=TEXT, edit=[1, "B"])], 0, client_id="server", edit_id="restore-y-0"
    )
    out = edit(r, "a", [1, "b", -1], 4, "a-4", revive=[revive(0, 1, "a-4", 1)])
    assert ack(out).dropped == [p.Dropped(node=TEXT, at=0, n=1)]  # a restore it had not seen
