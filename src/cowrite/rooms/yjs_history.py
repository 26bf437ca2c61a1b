"""Version history of Yjs documents: the stored update log that old values are replayed from.

A version of a Yjs document is the document right after one stored update (its log seq, as for
the CRDT kind: ``rooms/history.py``). Its *value* is recomputed by replaying: a base state (the
document at ``base_seq``) plus the stored updates after it, in seq order (a causal order: an
update is stored only after everything it builds on). Yjs's own snapshots (state vector plus
delete set) would need the document kept without garbage collection, every deleted character
forever, in memory and in every sync; replaying the log needs nothing of the live document.

Where the log lives: entries after the store's snapshot are the store's log itself; the entries
a snapshot folds away move into the snapshot, which for a Yjs document is a *container*
(``wrap``): the document's state (what a load reads, at once) plus this history (``YjsHistory``:
the base, the entries after it, and a checkpoint, the whole state, of each named version older
than the base). Plain snapshots (written before history existed) still load: their history
starts at their seq.

Storage stays bounded (``fold``, at every snapshot): entries older than the retention window
(``history_keep_all_s``: the versions listed one by one) fold into the base, and so do the
oldest ones beyond ``max_bytes`` whatever their age; a named version folded away keeps its
checkpoint (one state each: naming is deliberate and rare). A version older than the base and
not named is listed but no longer ``available`` (410, like a CRDT version compacted away).

Everything here is pure (bytes in, bytes out): the server reads the store and calls it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pycrdt

MAGIC = b"\xff" * 9 + b"\x7fcowrite-yjs-history/1\n"
"""Starts a container. A Yjs update v1 starts with a varUint client count: this one is over
2^63, which no update can hold, so a plain snapshot is never taken for a container."""
EMPTY_UPDATE = b"\x00\x00"


class _Stored(msgspec.Struct, array_like=True):
    state: bytes
    base_seq: int
    base: bytes
    entries: list[tuple[int, bytes]]
    checkpoints: list[tuple[int, bytes]]


@dataclass
class YjsHistory:
    """What old values are replayed from (see the module docstring)."""

    base_seq: int = 0
    base: bytes = EMPTY_UPDATE
    """The document at ``base_seq`` (a Yjs update; the empty document at 0)."""
    entries: list[tuple[int, bytes]] = field(default_factory=list)
    """Stored updates after ``base_seq``, by increasing seq."""
    checkpoints: dict[int, bytes] = field(default_factory=dict)
    """States of named versions at or before ``base_seq``."""

    @property
    def last_seq(self) -> int:
        return self.entries[-1][0] if self.entries else self.base_seq

    @property
    def size_bytes(self) -> int:
        return (
            len(self.base)
            + sum(len(u) for _, u in self.entries)
            + sum(len(s) for s in self.checkpoints.values())
        )

    def extend(self, entries: Iterable[tuple[int, bytes]]) -> None:
        """Append log entries (``(seq, update)``); those at or before ``last_seq`` are known."""
        last = self.last_seq
        for seq, update in sorted(entries, key=lambda e: e[0]):
            if seq > last:
                self.entries.append((seq, update))
                last = seq

    def available(self, seq: int) -> bool:
        """The value at version ``seq`` can be recomputed (0: the empty document)."""
        return seq == 0 or seq >= self.base_seq or seq in self.checkpoints

    def state_at(self, seq: int) -> bytes | None:
        """The document at version ``seq`` as one Yjs update (None: not available). A seq past
        the last entry is the last state (the caller checks that the version exists)."""
        if seq == 0:
            return EMPTY_UPDATE
        if seq in self.checkpoints:
            return self.checkpoints[seq]
        if seq < self.base_seq:
            return None
        return apply_all(self.base, (u for s, u in self.entries if s <= seq)).get_update()

    def replay(self, start: int, end: int) -> Iterator[tuple[int, pycrdt.Doc[Any]]]:
        """The versions after ``start`` up to ``end``, one document each (the same object,
        advanced: read it before the next step). Starts at ``start``'s state (available)."""
        state = self.state_at(start)
        if state is None:
            raise ValueError(f"version {start} is not available")
        doc: pycrdt.Doc[Any] = pycrdt.Doc()
        doc.apply_update(state)
        for seq, update in self.entries:
            if start < seq <= end:
                doc.apply_update(update)
                yield seq, doc


def apply_all(state: bytes, updates: Iterable[bytes]) -> pycrdt.Doc[Any]:
    """A document with ``state``, then ``updates`` applied in order in one transaction (Yrs
    ``merge_updates`` over thousands of small updates costs seconds; this, milliseconds)."""
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    doc.apply_update(state)
    with doc.transaction():
        for update in updates:
            doc.apply_update(update)
    return doc


def is_container(snapshot: bytes) -> bool:
    return snapshot.startswith(MAGIC)


def wrap(state: bytes, history: YjsHistory) -> bytes:
    """A Yjs document's stored snapshot: its ``state`` and its ``history``."""
    body = _Stored(
        state,
        history.base_seq,
        history.base,
        list(history.entries),
        sorted(history.checkpoints.items()),
    )
    return MAGIC + msgspec.msgpack.encode(body)


def unwrap(snapshot: bytes, snapshot_seq: int) -> tuple[bytes, YjsHistory]:
    """The state and history of a stored snapshot (a plain one: history from ``snapshot_seq``).
    Raises ValueError for a damaged container."""
    if not is_container(snapshot):
        return snapshot, YjsHistory(snapshot_seq, snapshot or EMPTY_UPDATE)
    try:
        body = msgspec.msgpack.decode(snapshot[len(MAGIC) :], type=_Stored)
    except msgspec.DecodeError as exc:
        raise ValueError(f"a damaged Yjs history container: {exc}") from None
    history = YjsHistory(body.base_seq, body.base, list(body.entries), dict(body.checkpoints))
    return body.state, history


def state_of(snapshot: bytes) -> bytes:
    """The document state of a stored snapshot (plain or container); ValueError if damaged."""
    return unwrap(snapshot, 0)[0]


def fold(
    history: YjsHistory,
    *,
    named: Iterable[int],
    times: Mapping[int, int],
    now_ms: int,
    keep_ms: int,
    max_bytes: int,
) -> YjsHistory:
    """``history`` with its old entries folded into the base (see the module docstring).

    ``times``: when each entry was made (one without a time is kept, as are all after it);
    ``named``: the named versions (a checkpoint is made for each one folded, and kept
    only while it is named). Returns a new history; ``history`` is unchanged.
    """
    named_set = set(named)
    horizon = now_ms - keep_ms
    entries = history.entries
    upto = 0  # entries[:upto] fold
    while upto < len(entries) and times.get(entries[upto][0], horizon) < horizon:
        upto += 1
    kept = sum(len(u) for _, u in entries[upto:])
    while upto < len(entries) and kept > max_bytes:
        kept -= len(entries[upto][1])
        upto += 1
    checkpoints = {s: state for s, state in history.checkpoints.items() if s in named_set}
    if upto == 0:
        return YjsHistory(history.base_seq, history.base, list(entries), checkpoints)
    if history.base_seq in named_set and history.base_seq:  # the base moves past it
        checkpoints.setdefault(history.base_seq, history.base)
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    doc.apply_update(history.base)
    new_base = entries[upto - 1][0]
    with doc.transaction():
        for seq, update in entries[:upto]:
            doc.apply_update(update)
            if seq in named_set and seq != new_base:  # the new base is its own checkpoint
                checkpoints[seq] = doc.get_update()
    return YjsHistory(new_base, doc.get_update(), list(entries[upto:]), checkpoints)
