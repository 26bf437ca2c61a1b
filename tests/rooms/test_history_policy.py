"""Version history in the room layer: the notes a room makes, vector bytes, the retention
policy (sessions, then days, named versions kept) and compaction pinned by named versions."""

from __future__ import annotations

import pytest

from cowrite import protocol as p
from cowrite.adapters.store import VersionRecord
from cowrite.engine import Document
from cowrite.rooms.history import (
    DAY_MS,
    HistoryPolicy,
    decode_vector,
    encode_vector,
    pin,
    thin,
)
from cowrite.rooms.retention import Cuts, compact_old_history
from cowrite.rooms.room import Member, Room

NOW = 400 * DAY_MS
MIN = 60_000
POLICY = HistoryPolicy(keep_all_s=7 * 86_400, session_gap_s=300, keep_sessions_s=90 * 86_400)


def v(seq: int, t: int, who: str = "a", name: str | None = None, size: int = 1) -> VersionRecord:
    return VersionRecord(seq, t, ((who, who.upper()),), "typed", size, b"", name=name)


@pytest.mark.parametrize(
    "vv", [{}, {1: 1}, {2**64 - 1: 2**63 - 1, 5: 300, 7: 0x80}, {123456789: 1 << 40}]
)
def test_vectors_round_trip(vv: dict[int, int]) -> None:
    assert decode_vector(encode_vector(vv)) == vv


@pytest.mark.parametrize("bad", [b"\x80", b"\x01", b"\xff" * 11 + b"\x01"])
def test_damaged_vectors_raise_value_error(bad: bytes) -> None:
    with pytest.raises(ValueError):
        decode_vector(bad)


def test_recent_versions_are_all_kept() -> None:
    records = [v(i, NOW - i * 1000) for i in range(1, 5)][::-1]
    assert thin(records, NOW, POLICY).removed == []


def test_an_old_session_becomes_its_last_version_with_every_author() -> None:
    t = NOW - 30 * DAY_MS
    records = [
        v(1, t, "a", size=2),
        v(2, t + MIN, "b", size=3),
        v(3, t + 2 * MIN, "a", size=4),
        v(4, t + 60 * MIN, "c"),  # another session (an hour later)
        v(5, NOW - 1000),  # recent: kept as it is
    ]
    out = thin(records, NOW, POLICY)
    assert out.removed == [1, 2]
    [kept] = out.updated
    assert kept.seq == 3 and kept.merged == 3 and kept.size == 9
    assert kept.authors == (("a", "A"), ("b", "B"))


def test_named_versions_stay_and_close_their_group() -> None:
    t = NOW - 30 * DAY_MS
    records = [v(1, t), v(2, t + MIN, name="Draft"), v(3, t + 2 * MIN), v(4, t + 3 * MIN)]
    out = thin(records, NOW, POLICY)
    assert out.removed == [1, 3]
    assert [(r.seq, r.merged, r.name) for r in out.updated] == [(2, 2, "Draft"), (4, 2, None)]


def test_versions_older_than_the_sessions_horizon_become_one_a_day() -> None:
    day = (NOW - 200 * DAY_MS) // DAY_MS * DAY_MS
    records = [v(1, day + 1000), v(2, day + 5 * 3_600_000), v(3, day + DAY_MS + 10)]
    out = thin(records, NOW, POLICY)
    assert out.removed == [1]  # two sessions of one day: one version; the next day its own
    assert [r.seq for r in out.updated] == [2]


def test_thinning_again_changes_nothing() -> None:
    t = NOW - 30 * DAY_MS
    records = [v(1, t), v(2, t + MIN), v(3, t + 2 * MIN)]
    out = thin(records, NOW, POLICY)
    kept = [r for r in records if r.seq not in out.removed]
    kept = [next((u for u in out.updated if u.seq == r.seq), r) for r in kept]
    again = thin(kept, NOW, POLICY)
    assert again.removed == [] and again.updated == []


def test_compaction_never_passes_a_named_version() -> None:
    doc = Document(1)
    text = doc.text("t")
    cuts = Cuts(2)
    text.insert(0, "draft")
    named = doc.version
    cuts.note(named)
    for _ in range(20):
        text.delete(0, 5)
        text.insert(0, "again")
        cuts.note(doc.version)
    assert compact_old_history(doc, cuts, 8, pin([named])) is not None
    assert doc.base == named  # not further, though newer cuts were old enough


def test_a_room_notes_who_made_each_version_and_how() -> None:
    room = Room("d", Document(1))
    user = p.User(id="u1", name="Ann")
    room.members["s"] = Member("s", "c1", user, "thin", frozenset({"read", "write"}), 0)
    edit = p.Edit(
        doc="d",
        edit_id="e1",
        version=0,
        ops=[p.SeqEdit(node="text:t", edit=["hello"])],
    )
    out = room.edit("s", edit, 1234)
    assert out.note is not None
    assert (out.note.user_id, out.note.user_name, out.note.how, out.note.size) == (
        "u1",
        "Ann",
        "typed",
        5,
    )
    assert out.note.time_ms == 1234 and out.note.vector == room.doc.version
    restored = room.apply_server_edit(
        [p.SeqEdit(node="text:t", edit=[-5])],
        2000,
        client_id="server",
        edit_id="r",
        author=user,
        restored_from=0,
    )
    assert restored.note is not None
    assert (restored.note.how, restored.note.restored_from, restored.note.size) == (
        "restored",
        0,
        5,
    )
    record = restored.note.record()
    assert record.authors == (("u1", "Ann"),) and decode_vector(record.vector) == room.doc.version
