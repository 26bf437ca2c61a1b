"""One flush per loop tick for every Yjs connection of a hub that got frames in that tick.

A Yjs update goes to every other connection of its document: with one ``call_soon`` per
receiving connection, the event loop would make and run a callback per delivery. Instead the
first frame of a tick lists its connection here, and one callback at the end of the tick writes
every listed outbox (as ``connection.Shared`` does for native connections).
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Protocol

from cowrite.server.hub import Hub

log = logging.getLogger("cowrite.connection")


class Flushable(Protocol):
    def _flush(self) -> None:
        """Write what the outbox holds (or wait for the socket, and flush again itself)."""

    def _ids(self) -> dict[str, object]: ...


class Flusher:
    """The connections to flush at the end of this loop tick (``soon``)."""

    __slots__ = ("_dirty",)

    def __init__(self) -> None:
        self._dirty: list[Flushable] = []

    def soon(self, conn: Flushable) -> None:
        """Flush ``conn`` at the end of this loop tick, with every other listed connection.
        The caller lists a connection once until its flush has run (its ``_flushing`` flag)."""
        dirty = self._dirty
        dirty.append(conn)
        if len(dirty) == 1:
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            try:
                conn._flush()
            except Exception:  # one connection's failure must not hold back the others' frames
                log.exception("Yjs flush failed", extra=conn._ids())


_flushers: weakref.WeakKeyDictionary[Hub, Flusher] = weakref.WeakKeyDictionary()


def flusher_of(hub: Hub) -> Flusher:
    """The ``Flusher`` of ``hub``'s Yjs connections (one per hub, i.e. per server and loop)."""
    flusher = _flushers.get(hub)
    if flusher is None:
        flusher = _flushers[hub] = Flusher()
    return flusher
