"""What the connections of one hub share: one heartbeat timer, one flush per loop tick.

Native (``connection.Connection``) and Yjs (``yjs_connection.YjsConnection``) connections join
their hub's ``Shared`` (``shared_of``) while they run: it pings each of them every
``heartbeat_s`` from one timer, and flushes, in one callback at the end of a loop tick, every
connection that was sent something during that tick.
"""

from __future__ import annotations

import asyncio
import logging
import math
import weakref
from typing import Protocol

from cowrite.server.config import Settings
from cowrite.server.hub import Hub
from cowrite.server.metrics import LoopHistogram
from cowrite.server.transport import forget_frames

log = logging.getLogger("cowrite.connection")


class Flushable(Protocol):
    """A connection whose outbox ``Shared`` flushes at the end of a loop tick."""

    def _flush(self) -> bool | None:
        """Write what the outbox holds (or wait for the socket, and flush again itself).
        True: it was one message, written at once (``Shared`` counts it in the outbox depth
        histogram, as a depth of 0, for all such flushes of the tick at once)."""

    def _ids(self) -> dict[str, object]: ...


class Beating(Protocol):
    """A connection on the shared heartbeat timer (native and Yjs)."""

    def beat(self) -> None: ...

    def _ids(self) -> dict[str, object]: ...


class Shared:
    """What the connections of one hub share: one heartbeat timer, one flush per loop tick.

    Heartbeats: the connections are spread over ``slots`` buckets, one served per tick
    (``heartbeat_s / slots``, at most a second): each connection is pinged (or dropped,
    ``Connection.beat``, ``YjsConnection.beat``) every ``heartbeat_s``, the first time between
    ``heartbeat_s - tick`` and ``heartbeat_s`` after it joined. The pings of a tick go out
    together, so idle connections wake the server about once a tick rather than once per
    connection and ping; the timer runs only while there are connections.

    Flushing: a connection that gets its first message of a loop tick is listed; one callback at
    the end of the tick flushes every listed connection (``Connection._flush``,
    ``YjsConnection._flush``).
    """

    def __init__(self, interval: float, depth: LoopHistogram | None = None) -> None:
        self.slots = max(4, math.ceil(interval))  # ticks of at most a second
        self.tick = interval / self.slots
        self._buckets: list[dict[Beating, None]] = [{} for _ in range(self.slots)]
        self._where: dict[Beating, int] = {}
        self._next = 0  # the bucket the next tick serves
        self._timer: asyncio.TimerHandle | None = None
        self._at = 0.0
        self.dirty: list[Flushable] = []
        """The connections to flush at the end of this tick: ``flush_soon``, or (the native
        connection's send, once per receiver of every broadcast) its two lines inlined."""
        self._depth = depth  # the outbox depth histogram (``Metrics.outbox_depth``)

    def __len__(self) -> int:
        return len(self._where)

    # ------------------------------------------------------------- flushing

    def flush_soon(self, conn: Flushable) -> None:
        """Flush ``conn`` at the end of this loop tick (with every other connection). The
        caller lists a connection once until its flush has run (its ``_flushing`` flag)."""
        dirty = self.dirty
        dirty.append(conn)
        if len(dirty) == 1:
            self.schedule()

    def schedule(self) -> None:
        """The first connection was listed in ``dirty``: flush at the end of the tick."""
        asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        dirty, self.dirty = self.dirty, []
        at_once = 0
        for conn in dirty:
            try:
                if conn._flush():
                    at_once += 1
            except Exception:  # one connection's failure must not stop the others' frames
                log.exception("flush failed", extra=conn._ids())
        forget_frames()  # a broadcast's frame was built once for all its receivers
        if at_once and self._depth is not None:
            self._depth.observe_many(0, at_once)

    # ----------------------------------------------------------- heartbeats

    def add(self, conn: Beating) -> None:
        if conn in self._where:
            return
        slot = (self._next - 1) % self.slots  # served last: its turn comes a full round later
        self._buckets[slot][conn] = None
        self._where[conn] = slot
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._at = loop.time() + self.tick
            self._timer = loop.call_at(self._at, self._beat)

    def discard(self, conn: Beating) -> None:
        slot = self._where.pop(conn, None)
        if slot is not None:
            del self._buckets[slot][conn]
        if not self._where and self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _beat(self) -> None:
        bucket = self._buckets[self._next]
        self._next = (self._next + 1) % self.slots
        for conn in list(bucket):
            try:
                conn.beat()
            except Exception:  # one connection's failure must not stop the others' heartbeat
                log.exception("heartbeat failed", extra=conn._ids())
        if not self._where:
            self._timer = None
            return
        loop = asyncio.get_running_loop()
        # a fixed grid: late ticks do not push the next ones back
        self._at = max(self._at + self.tick, loop.time())
        self._timer = loop.call_at(self._at, self._beat)


_shared: weakref.WeakKeyDictionary[Hub, Shared] = weakref.WeakKeyDictionary()


def shared_of(hub: Hub, settings: Settings) -> Shared:
    """The ``Shared`` of ``hub``'s connections (one per hub, i.e. per server)."""
    shared = _shared.get(hub)
    if shared is None:
        shared = _shared[hub] = Shared(settings.heartbeat_s, hub.metrics.outbox_depth)
    return shared
