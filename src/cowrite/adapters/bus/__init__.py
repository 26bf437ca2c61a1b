"""Publish/subscribe between server instances: ``Bus`` protocol, in-process ``LocalBus``."""

from cowrite.adapters.bus.base import Bus, BusClosed, Subscription
from cowrite.adapters.bus.local import LocalBus


def open_bus(url: str | None) -> Bus:
    """The Bus for a ``--redis`` value: ``redis://…`` (imported only then), else in-process."""
    if url:
        from cowrite.adapters.bus.redis import RedisBus

        return RedisBus(url)
    return LocalBus()


__all__ = ["Bus", "BusClosed", "LocalBus", "Subscription", "open_bus"]
