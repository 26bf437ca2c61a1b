"""The in-process bus: the default, for one server process (a real implementation, not a stub:
one bounded queue and one delivery task per subscriber, so a slow handler never blocks others)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from cowrite.adapters.bus.base import BusClosed, Handler

log = logging.getLogger("cowrite.bus")


class _LocalSubscription:
    def __init__(self, bus: LocalBus, channel: str, handler: Handler, capacity: int) -> None:
        self.bus = bus
        self.channel = channel
        self.handler = handler
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(capacity)
        self._dropped = 0
        self.task = asyncio.create_task(self._deliver())

    @property
    def dropped(self) -> int:
        return self._dropped

    def offer(self, message: bytes) -> None:
        try:
            self.queue.put_nowait(message)
        except asyncio.QueueFull:
            self._dropped += 1

    async def _deliver(self) -> None:
        while True:
            message = await self.queue.get()
            try:
                await self.handler(self.channel, message)
            except Exception:
                log.exception("bus handler failed", extra={"channel": self.channel})

    async def close(self) -> None:
        self.bus._subscribers.get(self.channel, set()).discard(self)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class LocalBus:
    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._subscribers: dict[str, set[_LocalSubscription]] = {}
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

    async def subscribe(self, channel: str, handler: Handler) -> _LocalSubscription:
        if not self._open:
            raise BusClosed("the bus is closed")
        sub = _LocalSubscription(self, channel, handler, self.capacity)
        self._subscribers.setdefault(channel, set()).add(sub)
        return sub
