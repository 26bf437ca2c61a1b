"""A deadline for receiving each HTTP request, which uvicorn does not have.

uvicorn's h11 protocol arms its keep-alive timer only after a response and disarms it on any
byte received, so a client that opens connections and sends half a request line, half the
headers or half a body (slowloris) holds each connection, its buffers and (for a body) an ASGI
task forever. ``guarded_h11(timeout_s)`` is uvicorn's h11 protocol with one timer more: from the
connection's first moment (or the first byte of a request after a keep-alive pause) the request
must have arrived whole (head and body, or the WebSocket upgrade) within ``timeout_s``, or the
connection is closed. A WebSocket, once upgraded, is the heartbeat's business
(``heartbeat_timeout_s``); an idle keep-alive connection is uvicorn's (``timeout_keep_alive``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("cowrite.http")

_RECEIVED = (h11.DONE, h11.MUST_CLOSE, h11.CLOSED, h11.ERROR, h11.SWITCHED_PROTOCOL)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol; incomplete requests are closed after ``request_timeout_s``."""

    request_timeout_s = 15.0
    timed_out = 0
    """Connections closed by the deadline since start (for tests and curiosity)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._upgraded = False  # the transport belongs to a WebSocket protocol now

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()  # a connection that never sends anything is an incomplete request too

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        their = self.conn.their_state
        if self._upgraded or their in _RECEIVED:
            self._disarm()  # received whole (the response may take as long as it takes)
        elif their is h11.IDLE and not self.conn.trailing_data[0] and self.cycle is not None:
            self._disarm()  # between requests: uvicorn's keep-alive timeout applies
        else:
            self._arm()  # a request (or the first one) has begun and is not whole yet

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgraded = True
        self._disarm()
        super().handle_websocket_upgrade(event)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.request_timeout_s, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport is not None and not self.transport.is_closing():
            type(self).timed_out += 1
            log.info("incomplete HTTP request timed out", extra={"client": self.client})
            self.transport.close()


def guarded_h11(timeout_s: float) -> type[GuardedH11Protocol]:
    """The protocol class to pass to ``uvicorn.Config(http=...)``."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"request_timeout_s": timeout_s})
