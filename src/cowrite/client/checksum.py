"""A thin client checks its copy of the document against the server's ``checksum`` messages.

A ``checksum`` names text values right after one version. The client keeps the server state at
its ``version`` apart from its own unacknowledged edits, so it can verify that copy exactly even
while it has edits in flight or pending. For a node with no edit of its own outstanding the
local view must equal that copy too, so then both are checked: a bug that corrupted either
(a remote applied at the wrong place, a UTF-16 slip...) shows.

On a mismatch the caller rejoins for a snapshot (the existing resync path: a three-way merge of
its unacknowledged work into the server's state). A node with nothing outstanding first takes the
local view as its base, so that merge turns what the user sees into exactly the server's text.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowrite import protocol as p

if TYPE_CHECKING:
    from cowrite.client.thin import ThinDocState


def verify(state: ThinDocState, msg: p.Checksum) -> list[str]:
    """The nodes whose copy fails ``msg`` (empty when ``state`` is not at ``msg.version``).

    For each failing node the state is prepared for a snapshot rejoin (``request_rejoin``).
    """
    if state.version != msg.version or not state.joined:
        return []
    state.checks += 1
    diverged = []
    for node, expected in msg.sums.items():
        if state.kind(node) != "text":
            continue
        server = state.server.get(node, "")
        if not isinstance(server, str):
            continue
        slot = ("seq", node, None)
        outstanding = slot in state.pending or (
            state.inflight is not None and slot in state.inflight.ops
        )
        local = state.local.get(node, "")
        if p.text_checksum(server) == expected and (outstanding or local == server):
            continue
        diverged.append(node)
        if not outstanding and isinstance(local, str):
            state.server[node] = local  # the merge then takes the view to the server's text
    if diverged:
        state.request_rejoin(snapshot=True)
    return diverged
