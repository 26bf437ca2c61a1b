"""Scripted vectors: rejoins (by version, by version vector, by snapshot), gaps, errors."""

from __future__ import annotations

from cowrite import protocol as p
from vectors import (
    DOC,
    MAP,
    NOTES,
    Scenario,
    joined,
    scenario,
    seq,
)


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
        "(join.inflight), so the answer is a snapshot with joined.acked: the batch is settled, "
        "the snapshot merged three ways over the pending edits, nothing resent",
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
def lost_ack_after_concurrent_deletes() -> Scenario:
    s = Scenario(
        "lost-ack-after-concurrent-deletes",
        "'abcd': we insert H between c and d; another client deletes 'cd' first, so the room "
        "rebases our batch to 'abH'; the ack is lost and another instance answers the rejoin "
        "with a snapshot and acked. (Before the fix it sent ops diffed from its 'abHcd', not our "
        "'abcHd', and we ended at 'abc'; found by the fuzz, seed 2050.)",
    )
    joined(s, "abcd")
    s.local(seq([3, "H"]))
    s.send()
    s.other("bob", seq([2, -2]))
    s.server_reads()
    s.disconnect()
    s.local(seq(["<"]))
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
