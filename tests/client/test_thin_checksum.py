"""The thin core against ``checksum`` messages (``cowrite.client.checksum``), without sockets:
a matching copy passes, a corrupted server copy or view is caught, edits outstanding are kept
through the snapshot rejoin that repairs it."""

from __future__ import annotations

from cowrite import protocol as p
from cowrite.client.thin import ThinDocState

BODY = "text:body"


def joined(text: str) -> ThinDocState:
    state = ThinDocState("d", "me")
    state.join_message()
    snapshot = {BODY: {"kind": "text", "value": text}}
    state.on_joined(p.Joined(doc="d", mode="thin", version=1, rights=["write"], snapshot=snapshot))
    return state


def check(version: int, text: str) -> p.Checksum:
    return p.Checksum(doc="d", version=version, sums={BODY: p.text_checksum(text)})


def resync(state: ThinDocState, version: int, text: str) -> None:
    join = state.join_message()
    assert join.version is None  # a snapshot, not a catch-up
    snapshot = {BODY: {"kind": "text", "value": text}}
    state.on_joined(
        p.Joined(doc="d", mode="thin", version=version, rights=["write"], snapshot=snapshot)
    )


def test_a_matching_copy_passes_and_other_versions_are_not_checked() -> None:
    state = joined("héllo 😀")
    assert state.on_checksum(check(1, "héllo 😀")) == []
    assert state.on_checksum(check(2, "something else")) == []  # not our version
    assert (state.checks, state.divergences, state.rejoin_needed) == (1, 0, False)


def test_a_corrupted_view_is_caught_and_the_rejoin_restores_the_server_text() -> None:
    state = joined("héllo 😀 world")
    state.local[BODY] = "héllo 😀 wXrld!"
    assert state.on_checksum(check(1, "héllo 😀 world")) == [BODY]
    assert state.divergences == 1 and state.rejoin_needed
    resync(state, 3, "héllo 😀 world, again")
    assert state.value(BODY) == "héllo 😀 world, again"
    state.check_invariants()


def test_with_edits_outstanding_the_server_copy_is_checked_and_the_edits_survive() -> None:
    state = joined("abc")
    state.local_edit(BODY, [3, "!"])
    batch = state.take_batch()  # in flight
    assert batch is not None
    state.local_edit(BODY, [4, "?"])  # pending
    assert state.on_checksum(check(1, "abc")) == []  # the view "abc!?" is not compared
    state.server[BODY] = "aXc"  # a remote misapplied to the server copy (and so to the view)
    state.local[BODY] = "aXc!?"
    assert state.on_checksum(check(1, "abc")) == [BODY]
    resync(state, 2, "abcd")
    assert state.value(BODY) == "abcd!?"  # our edits kept, merged into the snapshot
    state.check_invariants()
