"""Members of a document connected to *other* server instances, as this instance sees them.

Instances tell each other about their members over the bus. A cursor cannot travel as an index
(an index means something only at one version, and every instance numbers its versions apart), so
it travels as element anchors, ``(replica, seq, assoc)``, which name the same characters on every
replica. The receiving room resolves them against its own document; an anchor whose element has
not arrived yet leaves that member without a cursor until its next update.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from cowrite import protocol as p
from cowrite.engine import Anchor


class WireAnchor(msgspec.Struct, array_like=True, frozen=True):
    replica: int
    seq: int
    after: bool

    @classmethod
    def of(cls, anchor: Anchor) -> WireAnchor:
        return cls(anchor.replica, anchor.seq, anchor.assoc == "after")

    def anchor(self) -> Anchor:
        assoc: Literal["before", "after"] = "after" if self.after else "before"
        return Anchor(self.replica, self.seq, assoc)


class PeerCursor(msgspec.Struct, array_like=True, frozen=True):
    node: str
    """The node's wire id (the same on every instance)."""
    anchor: WireAnchor
    head: WireAnchor


class PeerEntry(msgspec.Struct, frozen=True):
    """One member of another instance: its presence entry with the cursor as anchors."""

    session: str
    user: p.User
    active: bool = True
    cursor: PeerCursor | None = None


class RemoteMember(msgspec.Struct):
    """A member held by this room on behalf of ``instance``."""

    instance: int
    entry: PeerEntry
