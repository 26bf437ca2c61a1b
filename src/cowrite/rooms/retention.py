"""How much history a document keeps: the server's compaction policy.

Without compaction a document keeps every character ever inserted: text typed and deleted again
and again leaves a visible length of zero but the whole history in memory, in every snapshot on
disk, and in the time of every load and join after a restart. ``compact_old_history`` folds all
but the newest ``kept_ops`` ops of history into the compaction base (``engine.compaction``):
deleted content before the base is dropped, tombstone runs (ids and lengths) stay so that late
inserts still land in the same place everywhere.

What the kept window preserves, and what degrades gracefully beyond it:
- thin clients rejoin through the room's ``EditLog`` (index edits, not CRDT history): unaffected;
- a rejoin by version vector older than the base, and REST history (``versions``, ``diff``)
  before it, get a snapshot / ``history_unavailable`` instead of a diff;
- a replica whose version predates the base gets the whole state (``ResyncNeeded`` in ``join``).

Named versions pin the base: it never passes the pointwise minimum of their version vectors
(``rooms.history.pin``), so every named version keeps its value, diffs and restore.

It runs when the server writes a snapshot (a quiet room, or one being unloaded; a snapshot is due
as soon as compaction is, however few updates the log holds: a few huge ones are the case), and
only once the history holds at least twice ``kept_ops`` ops, so its cost (a pass over the
document) is paid once per ``kept_ops`` ops of editing, not at every snapshot.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from cowrite.engine import CompactionStats, Document, VersionVector, compact, vv_min


class Cuts:
    """Version vectors the document was at after a batch (causal cuts, so valid compaction
    bases), one about every ``step`` ops and at most ``most`` of them (the newest).

    The engine's own version list merges bursts of edits into one version, too coarse to cut
    a quickly typed history; the room notes its versions here as it records them.
    """

    def __init__(self, step: int, most: int = 64) -> None:
        self.step = max(1, step)
        self._cuts: deque[tuple[int, VersionVector]] = deque(maxlen=most)

    def note(self, version: Mapping[int, int]) -> None:
        total = sum(version.values())
        if not self._cuts or total - self._cuts[-1][0] >= self.step:
            self._cuts.append((total, dict(version)))

    def any_between(self, low: int, high: int) -> bool:
        """A cut holding more than ``low`` and at most ``high`` ops is noted."""
        return any(low < t <= high for t, _ in self._cuts)

    def newest_before(self, total: int) -> VersionVector | None:
        """The newest cut holding at most ``total`` ops, dropping it and older ones."""
        found = None
        while self._cuts and self._cuts[0][0] <= total:
            found = self._cuts.popleft()[1]
        return found


def compaction_due(
    doc: Document, cuts: Cuts, kept_ops: int, pin: Mapping[int, int] | None = None
) -> bool:
    """``compact_old_history`` would fold something (so a snapshot is worth writing)."""
    total = sum(doc.version.values())
    based = sum(doc.base.values())
    high = total - kept_ops if pin is None else min(total - kept_ops, sum(pin.values()))
    return total - based >= 2 * kept_ops and cuts.any_between(based, high)


def compact_old_history(
    doc: Document, cuts: Cuts, kept_ops: int, pin: Mapping[int, int] | None = None
) -> CompactionStats | None:
    """Fold history older than the newest ``kept_ops`` ops into the base (at the newest cut
    that leaves at least that much, and never past ``pin``: the versions someone named stay
    readable, ``rooms.history``); None if not due (less than twice ``kept_ops`` of history
    since the base) or no cut is old enough."""
    total = sum(doc.version.values())
    based = sum(doc.base.values())
    if total - based < 2 * kept_ops:
        return None
    upto = cuts.newest_before(total - kept_ops)
    if upto is not None and pin is not None:
        upto = vv_min([upto, pin])
    if upto is None or sum(upto.values()) <= based:
        return None
    return compact(doc, upto)
