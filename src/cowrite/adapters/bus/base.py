"""The Bus: fire-and-forget messages on named channels, between server instances.

Delivery is at most once and unordered across publishers; per publisher and channel it is in
order. Nothing depends on the bus for durability: an instance that missed messages (restart,
network blip, a slow subscriber dropping messages) catches up from the Store. That is why a
subscriber's queue is bounded and drops rather than blocking the publisher.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

Handler = Callable[[str, bytes], Awaitable[None]]
"""Called with (channel, message) for every message on a subscribed channel."""


class BusClosed(Exception):
    """The bus was closed (or is unreachable): publishing failed, nothing was sent."""


class Subscription(Protocol):
    @property
    def dropped(self) -> int:
        """Messages dropped because this subscriber was too slow (it should resync)."""
        ...

    async def close(self) -> None:
        """Stop receiving; idempotent."""
        ...


class Bus(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def publish(self, channel: str, message: bytes) -> None:
        """Send ``message`` to every current subscriber of ``channel``; raises BusClosed."""
        ...

    async def subscribe(self, channel: str, handler: Handler) -> Subscription:
        """Call ``handler`` for each message on ``channel`` until the subscription is closed."""
        ...
