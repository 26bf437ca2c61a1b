"""A Yjs connection's budgets (``YjsConnection``): how long to wait before handling a frame.

The Yjs protocols cannot refuse a message, so a client over budget is simply read more slowly:
updates cost 1 + 1 per 10 kB of ``edits_per_second``, awareness 1 of ``presence_per_second``, a
Hocuspocus token (which opens a document) one of ``joins_per_second``, anything else a tenth of
an awareness (a flood is read slowly).
"""

from __future__ import annotations

from collections.abc import Callable

from cowrite.server.config import Settings
from cowrite.server.ratelimit import TokenBucket


class YjsBudgets:
    """The token buckets of one connection, and the delay already charged for a frame that
    the socket's reader took (``YjsConnection._take``) but left to the connection's reader."""

    __slots__ = ("_awareness", "_joins", "_updates", "hocuspocus", "paid")

    def __init__(self, settings: Settings, clock: Callable[[], float], hocuspocus: bool) -> None:
        self._updates = TokenBucket(settings.edits_per_second, settings.edit_burst, clock)
        self._awareness = TokenBucket(settings.presence_per_second, settings.presence_burst, clock)
        self._joins = TokenBucket(settings.joins_per_second, settings.join_burst, clock)
        self.hocuspocus = hocuspocus
        self.paid: float | None = None
        """Charged already: the next frame the reader gets waits this long (``take_paid``)."""

    def pace(self, kind: int | None, size: int) -> float:
        """Charge a frame of message type ``kind`` and ``size`` bytes; the seconds to wait
        before handling it (0.0: none)."""
        if kind == 0:
            return self._updates.delay(1 + size // 10_000)
        if kind == 1:
            return self._awareness.delay()
        if kind == 2 and self.hocuspocus:
            return self._joins.delay()
        return self._awareness.delay(0.1)

    def take_paid(self, kind: int | None, size: int) -> float:
        """``pace`` for the reader: what was charged already for this frame, else its charge."""
        delay = self.paid
        if delay is None:
            return self.pace(kind, size)
        self.paid = None
        return delay
