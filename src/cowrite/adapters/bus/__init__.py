"""Publish/subscribe between server instances: ``Bus`` protocol, in-process ``LocalBus``."""

from cowrite.adapters.bus.base import Bus, BusClosed, Subscription
from cowrite.adapters.bus.local import LocalBus

__all__ = ["Bus", "BusClosed", "LocalBus", "Subscription"]
