"""Durable version history: what a room notes about each version, and the retention policy.

Every update a room makes durable is a *version* (docs/architecture.md, "Version history"): the
pipeline stores a `VersionNote` with it (``Store.append_update(version=...)``, one transaction),
so versions outlive the room's memory, unloads, restarts, snapshots and moves between
instances. A version is named by the log seq of its update; its ``vector`` is the version vector
of the document right after it, from which the engine recomputes the value at that version, the
diff between two and a restore (``cowrite.engine.value_at``/``diff``/``restore_batches``), as
long as the document keeps the history (``rooms.retention``: the newest ``history_kept_ops``
ops, and never past a named version: ``pin``).

Retention (``thin``) keeps the *list* short: every version younger than ``keep_all_s``, then
one per editing session (versions with pauses under ``session_gap_s``: the last of the session
stands for it, listing every author and the summed size), and older than ``keep_sessions_s``
one per UTC day. Named versions are never removed and end the group before them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from cowrite import protocol as p
from cowrite.adapters.store import VersionRecord
from cowrite.engine import VersionVector, vv_min

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class VersionNote:
    """What a room knows of a version when it makes it (``Outcome.note``)."""

    vector: VersionVector
    """The document's version vector right after the update."""
    time_ms: int
    user_id: str
    user_name: str
    how: str = "typed"
    """typed (a client's edit or sync), restored, imported, server."""
    size: int = 0
    """Operations the update made (characters inserted, deletions, writes, adds)."""
    restored_from: int | None = None

    def record(self, resolution_ms: int = 1) -> VersionRecord:
        """What the store keeps; the time rounded down to ``resolution_ms``."""
        return VersionRecord(
            seq=0,
            time_ms=self.time_ms - self.time_ms % max(1, resolution_ms),
            authors=((self.user_id, self.user_name),),
            how=self.how,
            size=self.size,
            vector=encode_vector(self.vector),
            restored_from=self.restored_from,
        )


def note(
    before: Mapping[int, int],
    after: VersionVector,
    time_ms: int,
    user_id: str,
    name: str,
    ops: Sequence[p.EditOp] | None = None,
) -> VersionNote:
    """The note of an update that took the document from ``before`` to ``after``. Its size:
    of the wire ``ops`` when known (characters or items inserted and deleted, one per other
    op), else the operations the update made (a range delete counts one)."""
    if ops is None:
        size = sum(n - before.get(r, 0) for r, n in after.items())
    else:
        size = ops_size(ops)
    return VersionNote(after, time_ms, user_id, name, size=size)


def ops_size(ops: Sequence[p.EditOp]) -> int:
    """The size of a version made of wire ``ops``: characters or items inserted and deleted,
    one per other op."""
    size = 0
    for op in ops:
        if isinstance(op, p.SeqEdit):
            for c in op.edit:
                if isinstance(c, int):
                    if c < 0:
                        size -= c
                else:
                    size += len(c)
        else:
            size += 1
    return size


# ----------------------------------------------------------------------------- vectors


def encode_vector(vv: Mapping[int, int]) -> bytes:
    """A version vector as bytes: (replica id, count) pairs as unsigned LEB128 varints."""
    out = bytearray()
    for r, n in sorted(vv.items()):
        for value in (r, n):
            while value >= 0x80:
                out.append((value & 0x7F) | 0x80)
                value >>= 7
            out.append(value)
    return bytes(out)


def decode_vector(data: bytes) -> VersionVector:
    """The inverse of ``encode_vector``; ValueError for bytes it did not make."""
    values: list[int] = []
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if shift > 70:
            raise ValueError("a version vector varint is too long")
        if not byte & 0x80:
            values.append(value)
            value = shift = 0
    if shift or len(values) % 2:
        raise ValueError("a truncated version vector")
    return {values[i]: values[i + 1] for i in range(0, len(values), 2) if values[i + 1]}


def pin(vectors: Iterable[Mapping[int, int]]) -> VersionVector | None:
    """The newest compaction base that keeps every one of ``vectors`` readable (their pointwise
    minimum: a causal cut, as each of them is); None when there are none."""
    listed = list(vectors)
    return vv_min(listed) if listed else None


# --------------------------------------------------------------------------- retention


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    keep_all_s: float = 7 * 86_400.0
    session_gap_s: float = 300.0
    keep_sessions_s: float = 90 * 86_400.0


@dataclass(frozen=True, slots=True)
class Thinning:
    removed: list[int]
    updated: list[VersionRecord]


def thin(records: Sequence[VersionRecord], now_ms: int, policy: HistoryPolicy) -> Thinning:
    """What retention removes from ``records`` (consecutive versions, oldest first): those
    younger than ``keep_all_s`` stay; older ones are grouped (sessions, then days) and each
    group is kept as its last version, which lists the group's authors and sums its size.
    A named version always stays and closes its group."""
    all_after = now_ms - int(policy.keep_all_s * 1000)
    days_before = now_ms - int(policy.keep_sessions_s * 1000)
    gap = int(policy.session_gap_s * 1000)
    removed: list[int] = []
    updated: list[VersionRecord] = []
    group: list[VersionRecord] = []

    def close() -> None:
        if len(group) > 1:
            last = group[-1]
            authors: dict[tuple[str, str], None] = {}
            for v in group:
                authors.update(dict.fromkeys(v.authors))
            removed.extend(v.seq for v in group[:-1])
            updated.append(
                replace(
                    last,
                    authors=tuple(authors),
                    size=sum(v.size for v in group),
                    merged=sum(v.merged for v in group),
                )
            )
        group.clear()

    for v in records:
        if v.time_ms >= all_after:
            break
        if group:
            prev = group[-1]
            daily = prev.time_ms < days_before
            if daily != (v.time_ms < days_before):
                split = True  # from sessions to days
            elif daily:
                split = prev.time_ms // DAY_MS != v.time_ms // DAY_MS
            else:
                split = v.time_ms - prev.time_ms >= gap
            if split:
                close()
        group.append(v)
        if v.name is not None:
            close()
    close()  # (a session that goes on is merged again, kept row included, at the next pass)
    return Thinning(removed, updated)
