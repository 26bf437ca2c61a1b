"""The in-process bus: the default, for one server process (a real implementation, not a stub:
one bounded queue and one delivery task per subscriber, so a slow handler never blocks others)."""

from __future__ import annotations

from cowrite.adapters.bus._delivery import QueuedSubscription
from cowrite.adapters.bus.base import BusClosed, Handler


class LocalBus:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._subscribers: dict[str, set[QueuedSubscription]] = {}
        self._open = False

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False
        subs = [s for group in self._subscribers.values() for s in group]
        for sub in subs:
            await sub.close()
        self._subscribers.clear()

    async def publish(self, channel: str, message: bytes) -> None:
        if not self._open:
            raise BusClosed("the bus is closed")
        for sub in list(self._subscribers.get(channel, ())):
            sub.offer(message)

    async def _detach(self, sub: QueuedSubscription) -> None:
        self._subscribers.get(sub.channel, set()).discard(sub)

    async def subscribe(self, channel: str, handler: Handler) -> QueuedSubscription:
        if not self._open:
            raise BusClosed("the bus is closed")
        sub = QueuedSubscription(channel, handler, self.capacity, self._detach)
        self._subscribers.setdefault(channel, set()).add(sub)
        return sub
