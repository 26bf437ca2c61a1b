"""Regenerate the thin-client test vectors: ``python tests/vectors/generate.py`` (from the repo).

Every scenario below runs against a real ``Room`` (``vectors.Scenario``) and is written to
``thin/<name>.json``. ``tests/client/test_thin_vectors.py`` checks that regenerating gives the
committed files, and runs each file against the Python SDK; ``web/test/thin_vectors.test.js``
runs them against the JavaScript client.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # room_link.py, vectors.py

from fuzz import FUZZ, fuzz

from cowrite import protocol as p
from vectors import DOC, Json, Scenario

OUT = Path(__file__).resolve().parent / "thin"
TEXT = "text:body"
NOTES = "text:notes"
LIST = "list:items"
MAP = "map:meta"
COUNTER = "counter:clicks"
REGISTER = "register:title"


def seq(edit: list[Any], node: str = TEXT) -> Json:
    """An index edit (zero retains left out: the server refuses them)."""
    return {"type": "seq", "node": node, "edit": [c for c in edit if c != 0]}


def joined(s: Scenario, seed: str = "", node: str = TEXT) -> Scenario:
    """Seed the document (by another client) and let the subject join and load it."""
    if seed:
        s.other("seed", seq([seed], node))
    s.join()
    s.server_reads()
    s.deliver()
    return s


SCENARIOS: list[Callable[[], Scenario]] = []


def scenario(fn: Callable[[], Scenario]) -> Callable[[], Scenario]:
    SCENARIOS.append(fn)
    return fn


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
def rejoin_catch_up_lost_ack() -> Scenario:
    s = Scenario(
        "rejoin-catch-up-lost-ack",
        "the server applied our batch but the link dropped before the ack; the rejoin by "
        "version replays it among the catch-up remotes, which counts as its ack",
    )
    joined(s, "abc")
    s.local(seq([3, "!"]))
    s.send()
    s.server_reads()
    s.disconnect()
    s.local(seq(["offline "]))
    s.other("bob", seq([1, "B"]))
    s.join()
    s.server_reads()
    s.deliver(3)
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def rejoin_catch_up_batch_lost() -> Scenario:
    s = Scenario(
        "rejoin-catch-up-batch-lost",
        "the link dropped before the server read our batch: after the catch-up it is resent "
        "with the same edit_id, rebased to the new version",
    )
    joined(s, "abc")
    s.local(seq([1, "X"]))
    s.send()
    s.disconnect()
    s.other("bob", seq([1, "Y"]))
    s.join()
    s.server_reads()
    s.deliver(2)
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def gap_triggers_catch_up() -> Scenario:
    s = Scenario(
        "gap-triggers-catch-up",
        "our ack is lost on a link that stays up; the next remote skips a version, so the client "
        "rejoins by version and the catch-up replays its own batch, which counts as the ack",
    )
    joined(s, "abc")
    s.local(seq(["<"]))
    s.send()
    s.server_reads()
    assert s.link is not None
    s.link.down.clear()  # the ack is lost
    s.other("bob", seq([4, ">"]))
    s.deliver()  # version +2: a gap
    s.join()
    s.server_reads()
    s.deliver_all()
    return s


@scenario
def future_version_asks_for_a_snapshot() -> Scenario:
    s = Scenario(
        "future-version-asks-for-a-snapshot",
        "an error future_version for our batch (injected: a server that lost versions) makes the "
        "client rejoin without a version; its in-flight batch, already applied, is merged three "
        "ways, resent, acknowledged with its first version and undone once",
    )
    joined(s, "abc")
    s.local(seq([3, "!"]))
    s.send()
    s.server_reads()
    s.other("bob", seq(["B"]))
    assert s.link is not None
    s.link.down.clear()  # the ack and the remote are lost...
    s.link.down.append(  # ... and the server answers as if it had never seen version 1
        p.Error(code=p.ErrorCode.FUTURE_VERSION, message="v1", doc=DOC, edit_id="v-1")
    )
    s.deliver()
    s.join()
    s.server_reads()
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def stale_batch_rejoins() -> Scenario:
    s = Scenario(
        "stale-batch-rejoins",
        "our batch is older than the server's edit log (capacity 2) when it arrives: "
        "stale_version + resync; the client, caught up meanwhile, rejoins by version and "
        "resends the batch, rebased, with the same edit_id",
        log_capacity=2,
    )
    joined(s, "abc")
    s.local(seq([3, "!"]))
    s.send()
    for i in range(3):
        s.other("bob", seq([i + 1, str(i)]))
    s.server_reads()
    s.deliver(5)
    s.join()
    s.server_reads()
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def remotes_between_join_and_joined() -> Scenario:
    s = Scenario(
        "remotes-between-join-and-joined",
        "after stale_version + resync the client rejoins on the same link; remotes the server "
        "sent before reading the join arrive before joined, which is a diff from the state the "
        "join named: they must be ignored, or they are applied twice (found by the differential "
        "fuzz; both clients applied them twice before the fix)",
        log_capacity=2,
    )
    joined(s, "abc")
    s.local(seq([3, "!"]))
    s.send()
    for i in range(3):
        s.other("bob", seq([i + 1, str(i)]))
    s.server_reads()
    s.deliver(5)  # three remotes, error stale_version, resync
    s.join()
    s.other("bob", seq(["R"]))
    s.other("bob", seq([-1]))
    s.other("bob", seq(["S"], NOTES))
    s.server_reads()  # the log no longer reaches our version: answered from our state
    s.deliver(3)  # ignored: the answer covers them
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def one_join_outstanding() -> Scenario:
    s = Scenario(
        "one-join-outstanding",
        "error stale_version asks for a rejoin; the resync that comes with it arrives after the "
        "join is sent and asks for nothing more (the join's answer covers it): one join, whose "
        "answer (a diff from our state) is applied once",
        log_capacity=2,
    )
    joined(s, "abc")
    s.local(seq([3, "!"]))
    s.send()
    for i in range(3):
        s.other("bob", seq([i + 1, str(i)]))
    s.server_reads()
    s.deliver(4)  # three remotes, error stale_version: rejoin
    s.join()
    s.deliver()  # resync: no second join
    for _ in range(3):
        s.other("bob", seq(["R"], NOTES))
    s.server_reads()
    s.deliver_all()
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def rejoin_by_state_lost_ack() -> Scenario:
    s = Scenario(
        "rejoin-by-state-lost-ack",
        "another instance (new epoch) answers a rejoin by version vector; our batch was applied "
        "(join.inflight -> joined.acked): it is settled first, then joined.ops are rebased over "
        "the pending edits",
    )
    joined(s, "abc")
    s.local(seq([3, "!"]))
    s.send()
    s.server_reads()
    s.disconnect()
    s.local(seq([0, "<"]))
    s.other("bob", seq([1, "B"]))
    s.new_epoch("instance-2")
    s.join()
    s.server_reads()
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def rejoin_by_state_batch_lost() -> Scenario:
    s = Scenario(
        "rejoin-by-state-batch-lost",
        "a rejoin by version vector when our batch never reached the server: joined.ops are "
        "rebased over it, and it is resent with the same edit_id",
    )
    joined(s, "abc")
    s.local(seq([1, "X"]))
    s.send()
    s.disconnect()
    s.other("bob", seq([1, "Y"]))
    s.new_epoch("instance-2")
    s.join()
    s.server_reads()
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def rejoin_by_state_history_too_short() -> Scenario:
    s = Scenario(
        "rejoin-by-state-history-too-short",
        "the server's edit log (capacity 2) no longer reaches our version: the rejoin is "
        "answered from the version vector with the exact changes",
        log_capacity=2,
    )
    joined(s, "abcdef")
    s.disconnect()
    s.local(seq([6, "!"]))
    for i in range(4):
        s.other("bob", seq([i, str(i)]))
    s.join()
    s.server_reads()
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s


def with_nested_node(s: Scenario) -> None:
    """A nested node makes exact changes unavailable: rejoins get snapshots."""
    s.other("bob", {"type": "set", "node": MAP, "key": "sub", "value": {"$new": "text"}})


@scenario
def rejoin_by_snapshot_with_pending() -> Scenario:
    s = Scenario(
        "rejoin-by-snapshot-with-pending",
        "the document holds a nested node, so the rejoin gets a snapshot: the difference from "
        "our server state is rebased over in-flight and pending edits (three-way merge)",
    )
    joined(s, "hello world")
    with_nested_node(s)
    s.deliver()
    s.local(seq([5, ","]))
    s.send()
    s.disconnect()
    s.local(seq([12, "!"]))
    s.other("bob", seq([6, "big "]))
    s.new_epoch("instance-2")
    s.join()
    s.server_reads()
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
    return s


@scenario
def rejoin_by_snapshot_lost_ack() -> Scenario:
    s = Scenario(
        "rejoin-by-snapshot-lost-ack",
        "our batch was applied and its ack lost; the snapshot holds it and joined.acked says "
        "so: it is settled before the three-way merge (never shown twice) and not resent",
    )
    joined(s, "hello world")
    with_nested_node(s)
    s.deliver()
    s.local(seq([5, ","]))
    s.send()
    s.server_reads()
    s.disconnect()
    s.local(seq([12, "!"]))
    s.other("bob", seq([7, "big "]))
    s.new_epoch("instance-2")
    s.join()
    s.server_reads()
    s.deliver()
    s.send()
    s.server_reads()
    s.deliver()
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


for _seed, _steps, _found in FUZZ:
    SCENARIOS.append(fuzz(_seed, _steps, _found))


def render(vector: Json) -> str:
    return json.dumps(vector, ensure_ascii=False, indent=1) + "\n"


def generate() -> dict[str, str]:
    """File name -> contents, for every scenario."""
    out: dict[str, str] = {}
    for build in SCENARIOS:
        vector = build().finish()
        out[f"{vector['name']}.json"] = render(vector)
    return out


def main() -> None:
    OUT.mkdir(exist_ok=True)
    files = generate()
    for old in OUT.glob("*.json"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (OUT / name).write_text(text, encoding="utf-8")
    print(f"{len(files)} vectors in {OUT}")


if __name__ == "__main__":
    main()
