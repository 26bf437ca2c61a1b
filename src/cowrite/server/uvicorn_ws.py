"""uvicorn's ``websockets-sansio`` protocol, holding less per idle connection (``cowrite serve``).

An idle connection is mostly what the WebSocket layer keeps for it. ``SlimWebSocketProtocol``
is uvicorn's protocol with the same behaviour and these changes:

* the receive queue and the flow-control flag are small slotted objects that allocate a waiter
  only while someone waits (``asyncio.Queue`` holds three deques, ``asyncio.Event`` one: about
  3 kB per connection, always);
* once the handshake is over, the handshake request and response go (uvicorn keeps them), and
  so does ``websockets``' handshake parser: its generator frame keeps the parsed request, with
  every header, alive for the life of the connection (about 2.5 kB); the frame parser it
  delegates to replaces it;
* ``receive`` returns a future: a waiting connection holds no coroutine frames for it;
* a message that goes straight to the waiting app does not pause reading (uvicorn pauses and
  resumes the socket around every message: two system calls per pong of every idle client);
  one that has to wait in the queue still does, so a slow app still pushes back;
* the app may take small text messages where they are read (``on_small_text``): the native
  connection answers its heartbeat's pongs there, and handles an edit (or a presence update)
  there while its reader waits with nothing queued, without an ASGI event or waking its task;
* a read that is exactly one complete, masked, uncompressed text frame of at most
  ``SMALL_TEXT`` bytes, arriving at a frame boundary (``data_received``), is unmasked and
  offered to ``on_small_text`` without ``websockets``' generator-based frame parser (1.2
  instead of ~4.4 µs of Python for a pong; an edit also skips the ASGI event, the reader's
  future and its task's wake-up). Any other read, or one the hook declines, goes through the
  parser as before: partial, fragmented, unmasked, binary, control or larger frames, several
  frames in one read, a read during a fragmented message or the closing handshake.

``server_config`` (``run.py``) passes it to uvicorn; the tests that start a real server do too.
``protocol_class()`` is None when uvicorn's module is not there (then uvicorn's default).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

SMALL_TEXT = 4096
"""Text messages of at most this many bytes are offered to ``on_small_text`` first (a
keystroke's edit is 150-300 bytes; a larger message is rare and costs its parse anyway)."""

try:  # uvicorn is a dependency, but its protocol module may change: then uvicorn's default
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import OPEN as _OPEN
    from websockets.protocol import Protocol as _WsProtocol
    from websockets.streams import StreamReader as _StreamReader

    try:  # websockets' C unmasking, else its pure-Python one
        from websockets.speedups import apply_mask
    except ImportError:  # pragma: no cover
        from websockets.utils import apply_mask
except ImportError:  # pragma: no cover
    WebSocketsSansIOProtocol = None  # type: ignore[assignment,misc]

_FIN_TEXT = 0x81  # FIN, no RSV bits (uncompressed), opcode 1 (text)
"""A frame that ``data_received`` may take past the parser starts with this byte..."""
_FIN_BINARY = 0x82
"""...or this one (opcode 2, binary: offered to ``on_small_binary``, the Yjs dialects)."""


class Inbox:
    """The ASGI events for the app, in order: the ``asyncio.Queue`` methods uvicorn uses
    (``put_nowait``, ``get``, ``empty``) for one consumer. Nothing is allocated while it is
    empty and nobody waits."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[Any] | None = None
        self._waiter: asyncio.Future[Any] | None = None

    def put_nowait(self, item: Any) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():  # else its reader was cancelled: keep the item
                waiter.set_result(item)
                return
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)

    def empty(self) -> bool:
        return not self._items

    def waiting(self) -> bool:
        """A reader waits: the next ``put_nowait`` goes straight to it."""
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def next_item(self) -> asyncio.Future[Any]:
        """The next item: a done future when there is one, else one the next ``put_nowait``
        completes (cancelling it gives up the wait; the item then stays for the next call).
        A task cancelled after the item reached its future loses the item with it: uvicorn's
        one reader is the app's, and cowrite's connections cancel theirs only to close."""
        future = asyncio.get_running_loop().create_future()
        items = self._items
        if items:
            future.set_result(items.pop(0))
            if not items:
                self._items = None
        else:
            waiter = self._waiter
            if waiter is not None and not waiter.done():
                raise RuntimeError("Inbox: another reader is already waiting")
            self._waiter = future
        return future

    async def get(self) -> Any:
        items = self._items
        if items:
            item = items.pop(0)
            if not items:
                self._items = None
            return item
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            raise RuntimeError("Inbox.get: another coroutine is already waiting")
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # it came as the reader was cancelled
                self._items = [waiter.result(), *(self._items or ())]
            raise
        finally:
            if self._waiter is waiter:
                self._waiter = None


class Flag:
    """``asyncio.Event``'s ``set``/``clear``/``is_set``/``wait``, with waiters allocated only
    while there are some (uvicorn's flow control: set while the socket takes more)."""

    __slots__ = ("_set", "_waiters")

    def __init__(self, value: bool = False) -> None:
        self._set = value
        self._waiters: list[asyncio.Future[bool]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        waiter: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = [waiter]
        else:
            self._waiters.append(waiter)
        try:
            return await waiter
        finally:
            waiters = self._waiters
            if waiters is not None and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    self._waiters = None


if WebSocketsSansIOProtocol is not None:

    class SlimWebSocketProtocol(WebSocketsSansIOProtocol):
        """uvicorn's sans-I/O WebSocket protocol with a slim queue and flag, and the handshake's
        objects released once it is over (see the module docstring)."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.queue = Inbox()  # type: ignore[assignment]
            self.writable = Flag(True)  # type: ignore[assignment]
            self._parser_released = False
            self._declined = False  # the hook declined the read being parsed: not offered again
            self.on_small_text: Callable[[str], bool] | None = None
            """Set by the app (``transport.UvicornLink.intercept``): offered every small text
            message first; True means handled (a pong, an edit), so no ASGI event. It is called
            where the socket was read: it must handle the message completely, or do nothing
            and return False (then the message reaches the app as usual)."""
            self.on_small_binary: Callable[[bytes], bool] | None = None
            """The same for small binary messages (``UvicornLink.intercept_binary``: a Yjs
            keystroke's update, an awareness renewal), read only from ``data_received``."""

        def data_received(self, data: bytes) -> None:
            """A read that is one small text (or binary) frame goes to ``on_small_text`` (or
            ``on_small_binary``) directly (see ``small_text``), and so does each whole small
            frame at the start of a read of several (a client that sent two frames at once,
            or a server that read late), in order, until one is not taken; everything else to
            uvicorn, through ``websockets``' parser."""
            if data and data[0] == _FIN_BINARY:
                hook: Callable[[Any], bool] | None = self.on_small_binary
            else:
                hook = self.on_small_text
            if hook is None:
                super().data_received(data)
                return
            taken = self.small_text(data, hook) if len(data) <= SMALL_TEXT + 8 else None
            if taken is None:  # not one whole small frame: maybe several
                rest = self._take_leading(data)
                if rest:
                    super().data_received(rest)
            elif not taken:
                self._parse_declined(data)

        def _take_leading(self, data: bytes) -> bytes:
            """Offer each whole small frame at the start of ``data`` (a read of several) to
            its hook, in order, while they are taken (a declined one goes to the parser
            alone); return what is left for the parser (b"": nothing)."""
            while data:
                hook = self.on_small_binary if data[0] == _FIN_BINARY else self.on_small_text
                end = None if hook is None else _small_frame_end(data)
                if hook is None or end is None or end > len(data):
                    return data  # not a small frame, or its rest is in the next read
                whole = end == len(data)
                frame = data if whole else data[:end]
                taken = self.small_text(frame, hook, end)
                if taken is None:
                    return data
                if not taken:
                    self._parse_declined(frame)
                if whole:
                    return b""
                data = data[end:]
            return data

        def _parse_declined(self, data: bytes) -> None:
            """A frame its hook was offered and declined: the parser's message goes straight
            to the app (``send_receive_event_to_app`` does not offer it again)."""
            self._declined = True
            try:
                super().data_received(data)
            finally:
                self._declined = False

        def small_text(
            self, data: bytes, hook: Callable[[Any], bool], end: int | None = None
        ) -> bool | None:
            """``hook``'s answer when ``data`` is exactly one final, uncompressed, masked text
            (or binary: then ``hook`` gets the bytes) frame of at most ``SMALL_TEXT`` bytes,
            read while the parser waits at a frame boundary of an open connection with no
            message in progress (True: it handled the message). None: not such a frame, or not
            valid UTF-8. Unless True, nothing was consumed: the parser reads ``data`` as
            usual."""
            if len(data) < 6 or data[0] not in (_FIN_TEXT, _FIN_BINARY):
                return None
            if end is None:  # (else read by ``_small_frame_end`` already)
                end = _small_frame_end(data)
            if end is None or len(data) != end:
                return None
            start = 6 if data[1] < 0xFE else 8
            n = end - start
            conn = self.conn
            if (
                self.close_sent
                or self.frames
                or conn.state is not _OPEN
                or conn.current_size is not None
                or not _at_frame_boundary(conn.parser)
                or (conn.max_message_size is not None and n > conn.max_message_size)
            ):
                return None
            payload = apply_mask(data[start:], data[start - 4 : start])
            if data[0] == _FIN_BINARY:
                return bool(hook(payload))
            try:
                text = payload.decode()
            except UnicodeDecodeError:
                return None  # uvicorn closes the connection (1007)
            return bool(hook(text))

        async def send(self, message: Any) -> None:
            await super().send(message)
            if not self._parser_released and self.handshake_complete:
                self.release_handshake()

        def send_receive_event_to_app(self) -> None:
            """uvicorn pauses reading after every message until the app took it, and resumes
            when it did (two system calls per message, idle pongs included). A message that
            goes straight to a waiting app needs no pause; one that has to be queued pauses
            reading as before."""
            hook = self.on_small_text
            frames = self.frames
            if (
                hook is not None
                and not self._declined
                and self.curr_msg_data_type == "text"
                and len(frames) == 1
                and len(frames[0]) <= SMALL_TEXT
                and not self.close_sent
            ):
                try:
                    text = bytes(frames[0]).decode()
                except UnicodeDecodeError:
                    pass  # uvicorn's code closes the connection (1007)
                else:
                    if hook(text):
                        self.frames = []
                        return
            inbox: Inbox = self.queue  # type: ignore[assignment]
            if self.read_paused or not inbox.waiting():
                super().send_receive_event_to_app()
                return
            self.read_paused = True  # uvicorn's code then leaves the socket alone...
            try:
                super().send_receive_event_to_app()
            finally:
                self.read_paused = False  # ...and it was never paused

        def receive(self) -> asyncio.Future[Any]:  # type: ignore[override]
            """The next ASGI event, as a future (no coroutine frames while an idle connection
            waits). uvicorn resumes reading once the app took the last queued event; here once
            the app comes back for the next one and none is queued (the same back-pressure)."""
            inbox: Inbox = self.queue  # type: ignore[assignment]
            if self.read_paused and inbox.empty():
                self.read_paused = False
                self.transport.resume_reading()
            if not self._parser_released and self.handshake_complete:
                self.release_handshake()  # a frame was on its way when it completed
            return inbox.next_item()

        def release_handshake(self) -> None:
            """Drop what only the handshake needed. The frame parser can take over from the
            handshake parser when it waits at a frame boundary (nothing of a frame read yet):
            else this is tried again after the next message."""
            self.request = None  # type: ignore[assignment]
            self.response = None  # type: ignore[assignment]
            conn = self.conn
            parser = conn.parser
            inner = getattr(parser, "gi_yieldfrom", None)  # ``yield from super().parse()``
            waiting = getattr(inner, "gi_yieldfrom", None)  # ``yield from reader.at_eof()``
            if (
                getattr(inner, "gi_code", None) is _WsProtocol.parse.__code__
                and getattr(waiting, "gi_code", None) is _StreamReader.at_eof.__code__
                and not conn.reader.buffer
            ):
                fresh = _WsProtocol.parse(conn)
                next(fresh)  # at ``reader.at_eof()``, as the one it replaces
                conn.parser = fresh
                self._parser_released = True
            elif getattr(inner, "gi_code", None) is not _WsProtocol.parse.__code__:
                self._parser_released = True  # not the shape we know: leave it alone

    def _at_frame_boundary(parser: Any) -> bool:
        """``websockets``' parser waits for the first byte of a frame (``reader.at_eof``,
        directly or under the handshake parser that has not been released yet): nothing of a
        frame was read, and its buffer is empty (``at_eof`` waits only while it is)."""
        inner = getattr(parser, "gi_yieldfrom", None)
        code = getattr(inner, "gi_code", None)
        if code is _WsProtocol.parse.__code__:
            inner = getattr(inner, "gi_yieldfrom", None)
            code = getattr(inner, "gi_code", None)
        return code is _StreamReader.at_eof.__code__

else:  # pragma: no cover
    SlimWebSocketProtocol = None  # type: ignore[assignment,misc]


def _small_frame_end(data: bytes) -> int | None:
    """Where the frame ``data`` starts with ends, when it is masked, at most ``SMALL_TEXT``
    bytes long and its length minimally encoded (None otherwise: the parser reads it)."""
    if len(data) < 6:
        return None
    length = data[1]
    if length < 0xFE:  # masked, length in 7 bits (at most 125)
        start = 6
        n = length - 0x80
    elif length == 0xFE and len(data) >= 8:  # masked, length in the next 16 bits
        start = 8
        n = int.from_bytes(data[2:4], "big")
        if n < 126:
            return None  # not the minimal encoding: the parser refuses it
    else:
        return None  # 64-bit length, or unmasked (the parser refuses it)
    if n < 0 or n > SMALL_TEXT:
        return None
    return start + n


def protocol_class() -> type[asyncio.Protocol] | None:
    """The protocol class for uvicorn's ``ws`` setting, or None for uvicorn's default."""
    return SlimWebSocketProtocol
