"""Cursor conversion for the thin client: remote cursors to local positions and back.

Why a module of its own: cursors are presence, not document state; converting them only reads
the thin core's history and queues (``thin.ThinDocState``), never changes them.

Caller's contract: ``ThinCursors`` is a mixin for ``ThinDocState`` only (which owns the state
declared below). ``cursor_to_local`` maps a cursor received in ``presence`` into the local view
(None for a node that is not a text or list); ``cursor_to_server`` maps a local selection to
positions at the client's ``version`` before it is sent (InvalidOperation for other nodes).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from cowrite import protocol as p
from cowrite.client.thin_slots import Batch, Slot
from cowrite.client.values import SEQ_KINDS, Kind, position_before
from cowrite.engine import InvalidOperation, ot


class ThinCursors:
    """Cursor conversion over a ``ThinDocState`` (a mixin: see the module docstring)."""

    if TYPE_CHECKING:
        version: int | None
        local: dict[str, Any]
        inflight: Batch | None
        pending: dict[Slot, Any]
        _history: deque[tuple[int, list[tuple[str, ot.Op]]]]

        def kind(self, node: str) -> Kind | None: ...
        def _history_start(self) -> int: ...

    def cursor_to_local(self, cursor: p.Cursor) -> tuple[int, int] | None:
        """A remote cursor (positions at ``cursor.version``) in local coordinates.

        Positions from versions this client has not reached yet, or older than the history it
        keeps, are clamped rather than transformed. None for a node that is not a text or list.
        """
        node = cursor.node
        if self.kind(node) not in SEQ_KINDS or self.version is None:
            return None
        anchor, head = cursor.anchor, cursor.head
        version = self.version if cursor.version is None else cursor.version
        if self._history_start() <= version <= self.version:
            for v, entries in self._history:
                if v <= version:
                    continue
                for n, logged in entries:
                    if n == node:
                        anchor, head = ot.transform_selection(anchor, head, logged)
            slot: Slot = ("seq", node, None)
            for ops in (self.inflight.ops if self.inflight else {}, self.pending):
                mine = ops.get(slot)
                if mine is not None:
                    anchor, head = ot.transform_selection(anchor, head, mine)
        length = len(self.local.get(node, ""))
        return min(anchor, length), min(head, length)

    def cursor_to_server(self, node: str, anchor: int, head: int) -> p.Cursor:
        """A local selection as the server understands it: positions at ``version``."""
        if self.kind(node) not in SEQ_KINDS:
            raise InvalidOperation(f"cursors live in text and list nodes, not {node!r}")
        slot: Slot = ("seq", node, None)
        for op in (self.pending.get(slot), self.inflight.ops.get(slot) if self.inflight else None):
            if op is not None:
                anchor, head = position_before(anchor, op), position_before(head, op)
        return p.Cursor(node=node, anchor=anchor, head=head, version=self.version)
