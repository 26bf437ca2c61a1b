"""A minimal WebSocket client for the load generator: frames parsed in ``data_received``.

The generator's clients receive up to ~200,000 messages a second in total (scenario a with
200 clients), so the per-frame cost of the client decides whether the generator or the server
is measured. The ``websockets`` library hands each frame to a coroutine through a future
(~15-20 µs a frame here); this protocol parses frames as bytes arrive and calls the handler
synchronously, and sends with ``transport.write`` (no await).

Scope: RFC 6455 client over plain TCP (``ws://``), no extensions, text and binary messages,
fragmented messages, ping -> pong, close handshake. Client frames must be masked; the mask key
here is zero, which the RFC allows (a key's value is up to the client) and which leaves the
payload unchanged: masking costs nothing. That key is predictable, which matters only for
intermediaries on the open web, not for a benchmark on the loopback interface.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import struct
from collections.abc import Callable
from typing import cast
from urllib.parse import urlsplit

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_ZERO_MASK = b"\x00\x00\x00\x00"

MessageHandler = Callable[[bytes, bool], None]
"""Called with (payload, is_text) for every complete message."""


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """A final, masked (zero key) client frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + _ZERO_MASK + payload


class WebSocketError(Exception):
    pass


class FastWebSocket(asyncio.Protocol):
    """One client connection; create it with ``await FastWebSocket.connect(url, handler)``."""

    def __init__(self, handler: MessageHandler, key: str, host: str, path: str) -> None:
        self.handler = handler
        self.transport: asyncio.Transport | None = None
        self._key = key
        self._host = host
        self._path = path
        self._buf = bytearray()
        self._handshaken = False
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._frag_op = 0
        self._frag: list[bytes] = []
        self._closing = False

    @classmethod
    async def connect(
        cls, url: str, handler: MessageHandler, timeout: float = 120.0
    ) -> FastWebSocket:
        parts = urlsplit(url)
        if parts.scheme != "ws":
            raise ValueError(f"only ws:// URLs are supported, not {url!r}")
        host = parts.hostname or "127.0.0.1"
        port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        key = base64.b64encode(os.urandom(16)).decode()
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(lambda: cls(handler, key, f"{host}:{port}", path), host, port),
            timeout,
        )
        await asyncio.wait_for(asyncio.shield(proto._opened), timeout)
        return proto

    # ------------------------------------------------------------------ asyncio protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        request = (
            f"GET {self._path} HTTP/1.1\r\n"
            f"Host: {self._host}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self._key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            "\r\n"
        )
        self.transport.write(request.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f"connection lost: {exc}" if exc else "connection closed"
        if not self._opened.done():
            self._opened.set_exception(WebSocketError(reason))
        if not self.closed.done():
            self.closed.set_result(reason)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        if not self._handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[:end]).decode("latin-1")
            del buf[: end + 4]
            status = head.split("\r\n", 1)[0]
            if " 101 " not in status + " ":
                self._fail(f"handshake refused: {status}")
                return
            self._handshaken = True
            self._opened.set_result(None)
        self._parse()

    def _parse(self) -> None:
        buf = self._buf
        pos = 0
        size = len(buf)
        while size - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            p = pos + 2
            if n == 126:
                if size - p < 2:
                    break
                n = (buf[p] << 8) | buf[p + 1]
                p += 2
            elif n == 127:
                if size - p < 8:
                    break
                n = int.from_bytes(buf[p : p + 8], "big")
                p += 8
            if b1 & 0x80:  # servers never mask; tolerate it anyway
                if size - p < 4:
                    break
                mask = bytes(buf[p : p + 4])
                p += 4
            else:
                mask = b""
            if size - p < n:
                break
            payload = bytes(buf[p : p + n])
            pos = p + n
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            self._frame(b0 & 0x80 != 0, b0 & 0x0F, payload)
            if self.transport is None:
                return
        if pos:
            del buf[:pos]

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY):
            if fin:
                self.handler(payload, opcode == OP_TEXT)
            else:
                self._frag_op, self._frag = opcode, [payload]
        elif opcode == OP_CONT:
            self._frag.append(payload)
            if fin:
                data = b"".join(self._frag)
                self._frag = []
                self.handler(data, self._frag_op == OP_TEXT)
        elif opcode == OP_PING:
            self._write(encode_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            if not self._closing:
                self._write(encode_frame(OP_CLOSE, payload[:2]))
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self._fail(f"closed by the server ({code} {payload[2:].decode(errors='replace')})")

    def _fail(self, reason: str) -> None:
        if not self._opened.done():
            self._opened.set_exception(WebSocketError(reason))
        if not self.closed.done():
            self.closed.set_result(reason)
        if self.transport is not None:
            self.transport.close()
            self.transport = None

    # ------------------------------------------------------------------------ sending

    def _write(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.closed.done()

    def send_text(self, data: str | bytes) -> None:
        payload = data.encode() if isinstance(data, str) else data
        if not self.open:
            raise WebSocketError("the connection is closed")
        self._write(encode_frame(OP_TEXT, payload))

    def send_binary(self, data: bytes) -> None:
        if not self.open:
            raise WebSocketError("the connection is closed")
        self._write(encode_frame(OP_BINARY, data))

    async def close(self, timeout: float = 5.0) -> None:
        if self.transport is None:
            return
        self._closing = True
        self._write(encode_frame(OP_CLOSE, struct.pack("!H", 1000)))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.closed), timeout)
        if self.transport is not None:
            self.transport.close()
            self.transport = None
        if not self.closed.done():
            self.closed.set_result("closed by the client")
