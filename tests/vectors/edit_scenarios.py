"""Scripted vectors: edits, concurrency, acks, astral characters, cursors, several nodes."""

from __future__ import annotations

from vectors import (
    COUNTER,
    LIST,
    MAP,
    NOTES,
    REGISTER,
    TEXT,
    Scenario,
    joined,
    scenario,
    seq,
)


@scenario
def first_join_and_one_edit() -> Scenario:
    s = Scenario("first-join-and-one-edit", "join, load the snapshot, type, send, get the ack")
    joined(s, "hello")
    s.local(seq([5, " world"]))
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def local_edits_compose_into_one_batch() -> Scenario:
    s = Scenario(
        "local-edits-compose-into-one-batch",
        "edits typed before a send go out as one op per node; one batch in flight at a time",
    )
    joined(s, "abc")
    s.local(seq([3, "d"]))
    s.local(seq([4, "e"]))
    s.local(seq([-1]))
    s.send()
    s.local(seq(["X"]))
    s.send()  # nothing: a batch is in flight
    s.server_reads()
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def concurrent_inserts_remote_first() -> Scenario:
    s = Scenario(
        "concurrent-inserts-remote-first",
        "two inserts at one place; the server applies the other one first, so ours is rebased "
        "over it and goes first (client op on the left): the remote lands after ours",
    )
    joined(s, "ab")
    s.local(seq([1, "X"]))
    s.send()
    s.other("bob", seq([1, "Y"]))
    s.server_reads()
    s.deliver(2)
    return s


@scenario
def concurrent_inserts_ours_first() -> Scenario:
    s = Scenario(
        "concurrent-inserts-ours-first",
        "two inserts at one place; the server applies ours first, then the other client's, made "
        "at the old version, which it rebases over ours (its op on the left): it goes first",
    )
    joined(s, "ab")
    base = s.room.version
    s.local(seq([1, "X"]))
    s.send()
    s.server_reads()
    s.other("bob", seq([1, "Y"]), at=base)
    s.deliver(2)
    return s


@scenario
def concurrent_inserts_pending() -> Scenario:
    s = Scenario(
        "concurrent-inserts-pending",
        "an insert at the place of our unsent edit: pending is rebased like in-flight",
    )
    joined(s, "ab")
    s.local(seq([1, "X"]))
    s.other("bob", seq([1, "Y"]))
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def delete_overlaps_remote_delete() -> Scenario:
    s = Scenario(
        "delete-overlaps-remote-delete",
        "our in-flight delete of 'bcd' and a remote delete of 'cde' overlap: 'af' everywhere",
    )
    joined(s, "abcdef")
    s.local(seq([1, -3]))
    s.send()
    s.other("bob", seq([2, -3]))
    s.server_reads()
    s.deliver(2)
    return s


@scenario
def delete_overlaps_pending() -> Scenario:
    s = Scenario(
        "delete-overlaps-pending",
        "the remote deletes part of what our unsent delete removes: the batch sent is smaller",
    )
    joined(s, "abcdef")
    s.local(seq([1, -3]))
    s.other("bob", seq([2, -3]))
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def pending_cancelled_by_remote() -> Scenario:
    s = Scenario(
        "pending-cancelled-by-remote",
        "the remote deletes exactly what our unsent edit deletes: nothing is left to send",
    )
    joined(s, "abc")
    s.local(seq([1, -1]))
    s.other("bob", seq([1, -1]))
    s.deliver()
    s.send()
    return s


@scenario
def remote_deletes_around_pending_insert() -> Scenario:
    s = Scenario(
        "remote-deletes-around-pending-insert",
        "a remote delete spans the place of our pending insert: the insert survives",
    )
    joined(s, "0123456789")
    s.local(seq([5, "X"]))
    s.other("bob", seq([2, -6]))
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def edits_while_in_flight() -> Scenario:
    s = Scenario(
        "edits-while-in-flight",
        "typing goes on while a batch is in flight; a remote is rebased over in-flight then "
        "pending; the next batch goes out after the ack, against the ack's version",
    )
    joined(s, "hello world")
    s.local(seq([5, ","]))
    s.send()
    s.local(seq([12, "!"]))
    s.local(seq([0, ">"]))
    s.other("bob", seq([6, "big "]))
    s.deliver()
    s.server_reads()
    s.deliver()
    s.send()
    s.other("bob", seq([-1]))
    s.server_reads()
    s.deliver(2)
    return s


@scenario
def ack_after_remotes() -> Scenario:
    s = Scenario(
        "ack-after-remotes",
        "two other edits reach the server before our batch: their remotes arrive first, then "
        "the ack (version +3)",
    )
    joined(s, "abc")
    s.local(seq([3, "1"]))
    s.send()
    s.other("bob", seq(["B"]))
    s.other("carol", seq([2, "C"]))
    s.server_reads()
    s.local(seq([0, "2"]))
    s.deliver()
    s.deliver()
    s.deliver()
    s.send()
    return s


@scenario
def duplicate_and_stale_messages() -> Scenario:
    s = Scenario(
        "duplicate-and-stale-messages", "a remote and an ack delivered twice change nothing"
    )
    joined(s, "ab")
    s.local(seq([2, "c"]))
    s.send()
    s.other("bob", seq(["Z"]))
    s.server_reads()
    assert s.link is not None
    s.link.down.insert(1, s.link.down[0])
    s.link.down.append(s.link.down[-1])
    s.deliver(4)
    return s


@scenario
def astral_inserts() -> Scenario:
    s = Scenario(
        "astral-inserts",
        "positions count code points: emoji (two UTF-16 units in JS) and flags are one or two "
        "positions; concurrent inserts between them",
    )
    joined(s, "a😀b🇫🇷c")
    s.local(seq([2, "👍🏽"]))
    s.send()
    s.other("bob", seq([2, "𝔘"]))
    s.local(seq([7, "é"]))
    s.deliver()
    s.server_reads()
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def astral_deletes() -> Scenario:
    s = Scenario(
        "astral-deletes",
        "deletes counted in code points: half a skin-toned emoji, one flag letter, overlapping",
    )
    joined(s, "👍🏽x🇫🇷y😀😀")
    s.local(seq([1, -2]))  # the skin tone and the x
    s.send()
    s.other("bob", seq([2, -2]))  # the x and the first flag letter
    s.server_reads()
    s.local(seq([-1]))
    s.deliver(2)
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def astral_cursors() -> Scenario:
    s = Scenario(
        "astral-cursors",
        "remote cursors from older versions follow edits (in code points) and clamp at the end; "
        "our cursor goes to the server without our unacknowledged edits",
    )
    joined(s, "😀😀😀😀")
    old = s.client.version
    assert old is not None
    s.other("bob", seq(["🇫🇷"]))
    s.deliver()
    s.local(seq([3, "é😀"]))
    s.cursor_to_local(TEXT, 2, 4, old)
    s.cursor_to_local(TEXT, 9, 9, old + 1)
    s.cursor_to_server(TEXT, 6, 7)
    s.send()
    s.cursor_to_server(TEXT, 6, 7)
    s.server_reads()
    s.deliver()
    s.cursor_to_local(TEXT, 1, 1, old)
    return s


@scenario
def several_nodes() -> Scenario:
    s = Scenario(
        "several-nodes",
        "one batch writes text, a second text, a list, a map, a counter and a register; a remote "
        "touches the same nodes; map keys and registers show our write until it is ordered",
    )
    joined(s, "ab")
    s.local(seq(["x"]))
    s.local(seq(["notes"], NOTES))
    s.local(seq([[1, 2]], LIST))
    s.local({"type": "set", "node": MAP, "key": "k", "value": "mine"})
    s.local({"type": "add", "node": COUNTER, "amount": 2})
    s.local({"type": "set", "node": REGISTER, "value": "T"})
    s.send()
    s.local({"type": "del", "node": MAP, "key": "k"})
    s.local(seq([1, [3]], LIST))
    s.other(
        "bob",
        seq([[9]], LIST),
        {"type": "set", "node": MAP, "key": "k", "value": "theirs"},
        {"type": "set", "node": MAP, "key": "j", "value": 1},
        {"type": "add", "node": COUNTER, "amount": 10},
        seq(["N"], NOTES),
    )
    s.deliver()
    s.server_reads()
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s
