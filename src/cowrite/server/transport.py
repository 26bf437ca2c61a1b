"""How a connection's frames reach the socket: ``open_link`` picks the cheapest way available.

A ``Link`` is what a `Connection` needs of its WebSocket once it is accepted: ``receive`` the next
ASGI event, ``write`` one text frame without waiting, learn whether the socket takes more
(``writable``, ``wait_writable``) and ``close``. The connection coalesces what one loop tick queued
for it into one frame and writes it at once, so there is no writer task per connection.

* ``UvicornLink``: under uvicorn's default WebSocket implementation (``websockets-sansio``, what
  ``cowrite serve`` runs), a frame goes straight to the socket: the text frame header is written
  in front of the encoded JSON bytes (the ``websockets`` protocol frames it when an extension,
  permessage-deflate, was negotiated, so compression still applies). No ASGI message, no
  Starlette wrapper, no bytes -> str -> bytes round trip and no await per frame. ``writable``
  follows uvicorn's flow control (the transport's write buffer under its high-water mark).
  Opening, closing and receiving still go through ASGI. ASGI middleware that wraps ``send``
  sees the accept and the close, not the data frames.
* ``AsgiLink``: any other ASGI server (or uvicorn's other WebSocket implementations): each
  frame is an ASGI ``websocket.send``, awaited in a task that exists only while a frame is in
  flight; frames queued meanwhile are coalesced into the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketState

try:  # uvicorn is a dependency, but its protocol module may change: then ASGI it is
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State as _WsState
except ImportError:  # pragma: no cover
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]
    _WsState = None  # type: ignore[assignment,misc]


class LinkClosed(Exception):
    """The socket is gone: nothing more can be written."""


class Link(Protocol):
    receive: Callable[[], Awaitable[Mapping[str, Any]]]
    """The next ASGI event (``websocket.receive`` or ``websocket.disconnect``): the server's
    own ``receive`` when possible (no wrapper coroutine per frame)."""

    def writable(self) -> bool:
        """True when a ``write`` goes out now (False while the peer is not reading, or while
        the previous frame is still in flight)."""

    def when_writable(self, callback: Callable[[], object]) -> None:
        """Call ``callback`` once ``writable`` may be true again (or the link failed)."""

    def write(self, payload: bytes) -> None:
        """Send one text frame of UTF-8 ``payload``; raises LinkClosed when it cannot."""

    def write_now(self, payload: bytes) -> bool:
        """``write`` when ``writable``, in one call (a receiver's usual flush): False, nothing
        written, when it is not; raises LinkClosed when it cannot."""

    def write_binary(self, payloads: list[bytes]) -> None:
        """Send one binary frame per payload, in order (the Yjs dialects: a message is a
        frame); raises LinkClosed when it cannot."""

    def write_ping(self, payload: bytes) -> bool:
        """Send the heartbeat's constant text frame ``payload`` now, ahead of anything queued
        (it orders nothing), when that costs no more than a socket write; False: it was not
        sent (closed, flow-controlled, compressed or not a raw socket), queue it instead."""

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame after everything written before it."""


def asgi_websocket(handler: Callable[[WebSocket], Awaitable[None]]) -> AsgiWebSocket:
    """Decorate a WebSocket endpoint (``async def f(ws: WebSocket)``, or a plain function
    returning the awaitable that serves it) to be routed as a plain ASGI app: Starlette then
    calls it directly instead of through its per-session wrappers. Same behaviour (exceptions
    still reach the app's exception middleware); a long-lived connection just holds fewer
    coroutine frames."""
    return AsgiWebSocket(handler)


class AsgiWebSocket:
    """An ASGI app running ``handler`` with the ``WebSocket`` of each connection."""

    __slots__ = ("handler",)

    def __init__(self, handler: Callable[[WebSocket], Awaitable[None]]) -> None:
        self.handler = handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.handler(WebSocket(scope, receive=receive, send=send))


def open_link(ws: WebSocket, on_error: Callable[[], None]) -> Link:
    """The link of an accepted WebSocket; ``on_error`` is called when a write fails later."""
    receive = getattr(ws, "_receive", None)
    proto = getattr(receive, "__self__", None)
    if (
        WebSocketsSansIOProtocol is not None
        and isinstance(proto, WebSocketsSansIOProtocol)
        and all(hasattr(proto, a) for a in _UVICORN_ATTRIBUTES)
        and getattr(proto.conn, "state", None) is _WsState.OPEN
    ):
        return UvicornLink(ws, proto)
    return AsgiLink(ws, on_error)


def release_request(ws: WebSocket) -> None:
    """The connection is open and its ``on_connect`` hooks have seen the request: drop its
    headers and query string (a y-websocket token among them), which nothing reads any more
    and which the server's scope would keep for the life of the connection (~1.5 kB)."""
    scope = ws.scope
    scope["headers"] = []
    scope["query_string"] = b""
    for cached in ("_headers", "_query_params", "_url"):  # Starlette's, built on first use
        ws.__dict__.pop(cached, None)


_UVICORN_ATTRIBUTES = ("conn", "transport", "writable", "close_sent", "disconnected", "receive")


def text_header(n: int, opcode: int = 0x1) -> bytes:
    """The header of an unmasked, final text (or ``opcode``) frame of ``n`` payload bytes
    (RFC 6455 5.2)."""
    first = 0x80 | opcode
    if n < 126:
        return bytes((first, n))
    if n < 65536:
        return struct.pack("!BBH", first, 126, n)
    return struct.pack("!BBQ", first, 127, n)


_framed: dict[bytes, bytes] = {}
"""``write_ping``'s payloads with their frame header (one or two constants)."""

_HEADERS = tuple(bytes((0x81, n)) for n in range(126))
"""``text_header(n)`` of the small frames (nearly every frame: an edit's ``remote`` is ~200 B)."""

_tick_frames: dict[int, tuple[bytes, bytes]] = {}
"""Text frames built since ``forget_frames``, by their payload's ``id`` (with the payload, so
the id cannot be reused while the entry lives): a broadcast is one bytes object for all its
receivers, and the server's frames are unmasked, so its frame is the same bytes for each."""


def text_frame(payload: bytes) -> bytes:
    """``payload`` as one unmasked, uncompressed text frame: built once for a payload that
    several connections write (a broadcast) until ``forget_frames``."""
    key = id(payload)
    entry = _tick_frames.get(key)
    if entry is not None and entry[0] is payload:
        return entry[1]
    n = len(payload)
    frame = (_HEADERS[n] if n < 126 else text_header(n)) + payload
    _tick_frames[key] = (payload, frame)
    return frame


def forget_frames() -> None:
    """Drop the frames ``text_frame`` kept (``Shared`` calls it after each per-tick flush)."""
    _tick_frames.clear()


class UvicornLink:
    """Frames written straight to the transport of uvicorn's ``websockets-sansio`` protocol."""

    __slots__ = ("_conn", "_proto", "_transport", "_waiter", "_waiting", "_ws", "receive")

    def __init__(self, ws: WebSocket, proto: Any) -> None:
        self._ws = ws
        self._proto = proto
        self._waiting: Callable[[], bool] | None = getattr(proto.queue, "waiting", None)
        self._conn = proto.conn  # the websockets sans-I/O protocol: state, extensions
        self._transport = proto.transport
        self.receive: Callable[[], Awaitable[Mapping[str, Any]]] = proto.receive
        self._waiter: asyncio.Task[None] | None = None
        # the handshake is over: uvicorn keeps the parsed request and the response for nothing
        for name in ("request", "response"):
            with contextlib.suppress(AttributeError):
                setattr(proto, name, None)

    def intercept(self, handler: Callable[[str], bool]) -> None:
        """Offer small text messages to ``handler`` where they are read, before they become
        ASGI events (True: handled). Only under ``cowrite serve``'s protocol (``uvicorn_ws``);
        else nothing changes."""
        if hasattr(self._proto, "on_small_text"):
            self._proto.on_small_text = handler

    def intercept_binary(self, handler: Callable[[bytes], bool]) -> None:
        """The same for small binary messages (the Yjs dialects), read as one frame."""
        if hasattr(self._proto, "on_small_binary"):
            self._proto.on_small_binary = handler

    def reader_waiting(self) -> bool:
        """The app waits for its next message and none is queued: one handled where it is read
        (``intercept``) is then handled in order."""
        waiting = self._waiting  # ``uvicorn_ws.Inbox.waiting``
        return waiting is not None and waiting()

    def writable(self) -> bool:
        return self._proto.writable.is_set()  # type: ignore[no-any-return]

    def when_writable(self, callback: Callable[[], object]) -> None:
        if self._waiter is None:  # rare: the peer does not read, its buffers are full
            self._waiter = asyncio.get_running_loop().create_task(self._wait(callback))

    async def _wait(self, callback: Callable[[], object]) -> None:
        try:
            await self._proto.writable.wait()  # set again by resume_writing or connection_lost
        finally:
            self._waiter = None
        callback()

    def write(self, payload: bytes) -> None:
        proto = self._proto
        conn = self._conn
        if proto.close_sent or proto.disconnected or conn.state is not _WsState.OPEN:
            raise LinkClosed
        if conn.extensions:  # permessage-deflate: websockets compresses and frames it
            conn.send_text(payload)
            self._transport.write(b"".join(conn.data_to_send()))
        else:
            self._transport.write(text_frame(payload))

    def write_now(self, payload: bytes) -> bool:
        if not self._proto.writable.is_set():
            return False
        self.write(payload)
        return True

    def write_ping(self, payload: bytes) -> bool:
        frame = _framed.get(payload)
        if frame is None:
            frame = _framed[payload] = text_header(len(payload)) + payload
        proto = self._proto
        conn = self._conn
        if (
            proto.close_sent
            or proto.disconnected
            or conn.state is not _WsState.OPEN
            or conn.extensions  # permessage-deflate: compressed, through ``write``
            or not proto.writable.is_set()
        ):
            return False
        self._transport.write(frame)
        return True

    def write_binary(self, payloads: list[bytes]) -> None:
        proto = self._proto
        conn = self._conn
        if proto.close_sent or proto.disconnected or conn.state is not _WsState.OPEN:
            raise LinkClosed
        if conn.extensions:
            for payload in payloads:
                conn.send_binary(payload)
            self._transport.write(b"".join(conn.data_to_send()))
        elif len(payloads) == 1:
            payload = payloads[0]
            self._transport.write(text_header(len(payload), 0x2) + payload)
        else:
            parts: list[bytes] = []
            for payload in payloads:
                parts.append(text_header(len(payload), 0x2))
                parts.append(payload)
            self._transport.write(b"".join(parts))

    async def close(self, code: int, reason: str) -> None:
        waiter = self._waiter
        if waiter is not None:
            waiter.cancel()
        if self._ws.application_state == WebSocketState.CONNECTED:
            await self._ws.close(code, reason)


class AsgiLink:
    """Frames as ASGI ``websocket.send`` messages, one in flight at a time (in a task that
    lives only as long as that send)."""

    __slots__ = ("_callback", "_on_error", "_sending", "_ws", "receive")

    def __init__(self, ws: WebSocket, on_error: Callable[[], None]) -> None:
        self._ws = ws
        self._on_error = on_error
        self._sending: asyncio.Task[None] | None = None
        self._callback: Callable[[], object] | None = None
        self.receive: Callable[[], Awaitable[Mapping[str, Any]]] = ws.receive

    def writable(self) -> bool:
        return self._sending is None

    def when_writable(self, callback: Callable[[], object]) -> None:
        if self._sending is None:
            asyncio.get_running_loop().call_soon(callback)
        else:
            self._callback = callback

    def write_ping(self, payload: bytes) -> bool:
        return False  # an ASGI send like any other frame: queued with them

    def write_now(self, payload: bytes) -> bool:
        if self._sending is not None:
            return False
        self.write(payload)
        return True

    def write(self, payload: bytes) -> None:
        if self._sending is not None:
            raise LinkClosed("a frame is already in flight")
        message = {"type": "websocket.send", "text": payload.decode()}
        self._sending = asyncio.get_running_loop().create_task(self._send([message]))

    def write_binary(self, payloads: list[bytes]) -> None:
        if self._sending is not None:
            raise LinkClosed("a frame is already in flight")
        messages = [{"type": "websocket.send", "bytes": payload} for payload in payloads]
        self._sending = asyncio.get_running_loop().create_task(self._send(messages))

    async def _send(self, messages: list[dict[str, Any]]) -> None:
        try:
            for message in messages:
                await self._ws.send(message)
        except Exception:
            self._on_error()
            return
        finally:
            self._sending = None
            callback, self._callback = self._callback, None
        if callback is not None:
            callback()

    async def close(self, code: int, reason: str) -> None:
        sending = self._sending
        if sending is not None:
            await asyncio.wait([sending])
        if self._ws.application_state == WebSocketState.CONNECTED:
            await self._ws.close(code, reason)
