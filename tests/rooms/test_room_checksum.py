"""When the room sends ``checksum``s: after one version in ``min_versions`` that change a small
text, one in ``length / chars_per_version`` for a large one, and once the room is quiet; always
the checksum of the text right after the version it names."""

from __future__ import annotations

from typing import Any

import msgspec

from cowrite import protocol as p
from cowrite.engine.document import Document
from cowrite.rooms.room import Member, Outcome, Room

DOC = "d"
BODY = "text:body"
ALL = frozenset({"read", "write"})


def _room(chars_per_version: int = 8_192, min_versions: int = 1) -> Room:
    room = Room(DOC, Document())
    room.checks.chars_per_version = chars_per_version
    room.checks.min_versions = min_versions
    for session in ("a", "b"):
        member = Member(session, session, p.User(id=session), "thin", ALL, 0)
        room.join(member, p.Join(doc=DOC), [])
    return room


def _edit(room: Room, ops: list[dict[str, Any]], now_ms: int = 0) -> Outcome:
    msg = msgspec.convert(
        {
            "type": "edit",
            "doc": DOC,
            "edit_id": f"e{room.version}",
            "version": room.version,
            "ops": ops,
        },
        p.Edit,
    )
    return room.edit("a", msg, now_ms)


def _checks(out: Outcome) -> tuple[list[p.Checksum], list[p.Checksum]]:
    """The checksums for the sender (reply) and for the others (broadcast to thin clients)."""
    mine = [m for m in out.reply if isinstance(m, p.Checksum)]
    theirs = [m for m, audience in out.broadcast if isinstance(m, p.Checksum)]
    assert all(a == "thin" for m, a in out.broadcast if isinstance(m, p.Checksum))
    return mine, theirs


def _text(room: Room) -> str:
    value = room.doc.to_json()["body"]
    assert isinstance(value, str)
    return value


def test_a_small_text_is_checked_at_every_version_after_its_ack_and_remote() -> None:
    room = _room()
    for i in range(5):
        out = _edit(room, [{"type": "seq", "node": BODY, "edit": [i, "😀x"] if i else ["😀x"]}])
        mine, theirs = _checks(out)
        sums = {BODY: p.text_checksum(_text(room))}
        expected = p.Checksum(doc=DOC, version=room.version, sums=sums)
        assert mine == theirs == [expected]
        assert isinstance(out.reply[0], p.Ack)  # the ack first, then the checksum
        kinds = [type(m) for m, _ in out.broadcast]
        assert kinds.index(p.Remote) < kinds.index(p.Checksum)


def test_by_default_a_small_text_is_checked_every_sixteenth_version() -> None:
    room = _room(min_versions=Room(DOC, Document()).checks.min_versions)
    checked = []
    for i in range(40):
        out = _edit(room, [{"type": "seq", "node": BODY, "edit": [i, "a"] if i else ["a"]}])
        if _checks(out)[1]:
            checked.append(room.version)
    assert checked == [16, 32]


def test_a_large_text_is_checked_once_per_length_over_budget_versions() -> None:
    room = _room(chars_per_version=100)
    _edit(room, [{"type": "seq", "node": BODY, "edit": ["y" * 999]}])  # 999 chars: 1 of 10
    checked = []
    for _ in range(40):
        out = _edit(room, [{"type": "seq", "node": BODY, "edit": ["z"]}])
        if _checks(out)[1]:
            checked.append(room.version)
    # checked when (versions since the last check) * 100 >= length (1009 at version 11...)
    assert checked == [11, 22, 33]


def test_non_text_nodes_are_not_checked_and_an_edit_of_two_texts_checks_both() -> None:
    room = _room()
    out = _edit(room, [{"type": "set", "node": "map:meta", "key": "k", "value": 1}])
    assert _checks(out) == ([], [])
    out = _edit(room, [{"type": "seq", "node": "list:items", "edit": [[1, 2]]}])
    assert _checks(out) == ([], [])
    out = _edit(
        room,
        [
            {"type": "seq", "node": BODY, "edit": ["a"]},
            {"type": "seq", "node": "text:title", "edit": ["T"]},
        ],
    )
    (check,) = _checks(out)[1]
    assert check.sums == {BODY: p.text_checksum("a"), "text:title": p.text_checksum("T")}


def test_unchecked_changes_are_checked_once_the_room_is_quiet() -> None:
    room = _room(chars_per_version=10)

    def tick(now_ms: int) -> list[tuple[p.Message, str]]:
        return [(m, a) for m, a in room.tick(now_ms).broadcast if isinstance(m, p.Checksum)]

    _edit(room, [{"type": "seq", "node": BODY, "edit": ["w" * 100]}])
    assert tick(1_000) == []  # the tick sees the version move
    out = _edit(room, [{"type": "seq", "node": BODY, "edit": ["v"]}])
    assert _checks(out) == ([], [])
    assert tick(2_000) == []  # moved again
    assert tick(3_000) == []  # quiet for 1 s only
    quiet = tick(4_000)
    assert quiet == [
        (
            p.Checksum(doc=DOC, version=room.version, sums={BODY: p.text_checksum(_text(room))}),
            "thin",
        )
    ]
    assert tick(9_000) == []  # once


def test_the_room_says_when_its_tick_is_due_and_nothing_comes_earlier() -> None:
    """``tick_due_ms``: at once after a change the tick has not seen, then when the room will
    have been quiet for ``quiet_ms``; a tick before then sends nothing, the one then sends the
    checksum; afterwards only the members' idle time is due."""
    room = _room(chars_per_version=10)
    idle = room.limits.idle_after_ms  # the members joined at 0
    assert room.tick_due_ms() == 0  # the first tick scans the members
    room.tick(0)
    assert room.tick_due_ms() == idle
    _edit(room, [{"type": "seq", "node": BODY, "edit": ["w" * 100]}], now_ms=500)
    assert room.tick_due_ms() == 0  # a version the tick has not seen
    assert _checks(room.tick(1_000)) == ([], [])
    due = room.tick_due_ms()
    assert due == 1_000 + room.checks.quiet_ms
    assert _checks(room.tick(due - 1)) == ([], [])
    assert len(_checks(room.tick(due))[1]) == 1
    assert room.tick_due_ms() == idle  # "b", silent since it joined at 0, idles first
