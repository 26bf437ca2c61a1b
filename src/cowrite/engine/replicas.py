"""The replica table of a document: replica ids, their local client indexes, ops seen, versions.

Why it exists: inside a document replicas get a small local index (``client``) so that ids pack
into one int (``ids.pack``); this table maps the two ways, counts the ops seen per client (the
version vector), allocates the seqs of local ops and keeps the version log of local transactions
(``history.versions``). It is the part of `Document` that needs nothing of nodes or sequences.

Caller's contract: `ReplicaTable` is a base class of `Document` only; it holds no state of its own,
`Document.__init__` creates every attribute declared below. Call `client_index` before using a
replica's client index (it registers the replica, raising `InvalidOperation` past
``MAX_CLIENTS``); `_take` is for local ops only and records the version first, so a clock that
fails leaves no seq hole.
"""

from __future__ import annotations

import builtins
import math
from array import array
from collections.abc import Callable
from typing import TYPE_CHECKING

from cowrite.engine.apply import record_version
from cowrite.engine.doc_parts import SYSTEM, DeleteColumns, _del_arrays
from cowrite.engine.errors import InvalidOperation
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, MAX_CLIENTS, VersionVector

if TYPE_CHECKING:
    from cowrite.engine.ops import AddOp, SetOp
    from cowrite.engine.sequence import ItemIndex


class ReplicaTable:
    """Replica ids <-> client indexes, ops seen per client, seq allocation, the version log."""

    # Created by Document.__init__.
    now_ms: Callable[[], int]
    version_window_ms: int
    index: ItemIndex
    _replicas: builtins.list[int]
    _clients: dict[int, int]
    _next: builtins.list[int]
    _log: builtins.list[builtins.list[SetOp | AddOp]]
    _del_cols: builtins.list[DeleteColumns]
    _me: int
    vlog_client: array[int]
    vlog_end: array[int]
    vlog_time: array[int]

    def _now(self) -> int:
        """The wall clock as an int of ms; InvalidOperation if the clock returns something else."""
        value = self.now_ms()
        if type(value) is int:
            return value
        if isinstance(value, float) and math.isfinite(value) and abs(value) < 2**62:
            return int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidOperation(f"now_ms() returned {value!r}, not an int of milliseconds")
        return value

    def client_index(self, replica: int) -> int:
        """The local client index of ``replica``, registering it on first sight."""
        c = self._clients.get(replica)
        if c is None:
            c = len(self._replicas)
            if c >= MAX_CLIENTS:
                raise InvalidOperation("too many replicas in one document")
            self._clients[replica] = c
            self._replicas.append(replica)
            self._next.append(0)
            self._log.append([])
            self._del_cols.append(_del_arrays())
            self.index.ensure_client(c)
        return c

    def replica_of(self, client: int) -> int:
        return self._replicas[client]

    def known_client(self, replica: int) -> int | None:
        return self._clients.get(replica)

    @property
    def replica_count(self) -> int:
        """Replicas registered in the client table (each costs memory while the doc lives)."""
        return len(self._replicas) - 1  # SYSTEM is not a replica

    @property
    def version(self) -> VersionVector:
        """Replica id -> number of its operations this document has seen."""
        return {self._replicas[c]: n for c, n in enumerate(self._next) if n and c != SYSTEM}

    def next_seq(self, client: int) -> int:
        return self._next[client]

    def format_id(self, pid: int) -> str:
        """A readable ``replica:seq`` form of a packed id."""
        client = pid & CLIENT_MASK
        replica = self._replicas[client] if client < len(self._replicas) else f"?{client}"
        return f"{replica}:{pid >> CLIENT_BITS}"

    def _take(self, n: int) -> int:
        """Allocate ``n`` seqs for a local op: returns the packed id of the first."""
        me = self._me
        start = self._next[me]
        record_version(self, me, start + n)  # first: a failing clock must not leave a seq hole
        self._next[me] = start + n
        return (start << CLIENT_BITS) | me

    def _record_version(self, client: int, end: int) -> None:
        record_version(self, client, end)

    @property
    def local_seq(self) -> int:
        """How many operations this replica has made."""
        return self._next[self._me]

    def seen_counts(self) -> tuple[int, ...]:
        """Ops seen per local client index (documents made with one ``replicas`` list agree)."""
        return tuple(self._next)
