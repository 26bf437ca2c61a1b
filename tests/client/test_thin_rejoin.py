"""The SDK thin client (``ThinDocState``) moving to another instance by state, against real
``Room``s: what the new instance answers (``joined.acked`` naming its in-flight batch, and the
changes since its state after that batch) turns its copy into the new instance's document."""

from __future__ import annotations

from typing import Any

import msgspec

from cowrite import protocol as p
from cowrite.client.thin import ThinDocState
from cowrite.engine.document import Document
from cowrite.rooms.room import Member, Room

DOC = "d"


def _member(session: str, client_id: str) -> Member:
    rights = frozenset({"read", "write"})
    return Member(session, client_id, p.User(id=client_id), "thin", rights, 0)


def _edit(edit: list[Any], version: int, edit_id: str) -> p.Edit:
    ops = [{"type": "seq", "node": "text:t", "edit": edit}]
    msg = {"type": "edit", "doc": DOC, "edit_id": edit_id, "version": version, "ops": ops}
    return msgspec.convert(msg, p.Edit)


def test_a_batch_rebased_over_a_delete_beside_it_survives_a_move_by_state() -> None:
    """Instance 1 replaces an "a" by another; instance 0 applies the SDK client's "bc" (typed
    after the first "a") after that change, which the client never sees: its ack is lost and it
    rejoins instance 1 with its state and the batch in flight, with "d" typed meanwhile."""
    rooms = [Room(DOC, Document(100 + i, now_ms=lambda: 0)) for i in range(2)]
    for i, room in enumerate(rooms):
        room.epoch = f"i{i}"
    rooms[1].join(_member("s1", "c1"), p.Join(doc=DOC, mode="thin"), [])
    log: list[bytes] = []

    def store(persist: bytes | None) -> None:
        assert persist is not None
        log.append(persist)

    store(rooms[1].edit("s1", _edit(["a"], 0, "c1.1"), 0).persist)
    store(rooms[1].edit("s1", _edit(["a", -1], 1, "c1.2"), 0).persist)
    me = ThinDocState(DOC, "me", edit_id_prefix="me")
    (joined, *_) = rooms[0].join(_member("s2", "me"), me.join_message(), []).reply
    assert isinstance(joined, p.Joined)
    me.on_joined(joined)
    first = rooms[0].merge_update(log[0])
    rooms[0].merge_update(log[1])
    (remote,) = [m for m, _ in first.broadcast if isinstance(m, p.Remote)]
    me.on_remote(remote)  # the first "a" reaches it, the change after it does not
    me.local_edit("text:t", [1, "bc"])
    batch = me.take_batch()
    assert batch is not None
    store(rooms[0].edit("s2", batch, 0).persist)  # applied at 0: "bc" before the old "a"
    me.on_disconnect()  # the ack is lost with the connection
    me.local_edit("text:t", [3, "d"])  # unsent
    rooms[1].merge_update(log[2])  # the new instance reads the store first
    join = me.join_message()
    assert join.state is not None and join.inflight == batch.edit_id
    (joined, *_) = rooms[1].join(_member("s3", "me"), join, []).reply
    assert isinstance(joined, p.Joined)
    assert joined.acked == batch.edit_id  # with the exact changes after it (or a snapshot)
    me.on_joined(joined)
    assert me.inflight is None
    assert me.server == {"text:t": "abc"}
    assert me.local == {"text:t": "abcd"}
    me.check_invariants()
    out = rooms[1].edit("s3", me.take_batch(), 0)  # type: ignore[arg-type]
    (ack, *_) = out.reply
    assert isinstance(ack, p.Ack)
    me.on_ack(ack)
    assert me.local == {"text:t": "abcd"} and rooms[1].doc.to_json() == {"t": "abcd"}
