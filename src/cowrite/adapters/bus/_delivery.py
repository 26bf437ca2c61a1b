"""What every Bus implementation hands its subscribers: a bounded queue and a delivery task per
subscription, so a slow handler drops its own messages (counted) and never blocks a publisher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from cowrite.adapters.bus.base import Handler

log = logging.getLogger("cowrite.bus")


class QueuedSubscription:
    """One handler on one channel. ``detach`` removes it from its bus (called once, on close)."""

    def __init__(
        self,
        channel: str,
        handler: Handler,
        capacity: int,
        detach: Callable[[QueuedSubscription], Awaitable[None]],
    ) -> None:
        self.channel = channel
        self.handler = handler
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(capacity)
        self._detach = detach
        self._dropped = 0
        self._closed = False
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
        if self._closed:
            return
        self._closed = True
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        await self._detach(self)
