"""What the Yjs endpoints read of a frame before its session does: its message type (for the
budgets) and its Hocuspocus address (for the room its replies go through)."""

from __future__ import annotations

from typing import Literal

from cowrite.yjs.lib0 import Decoder, YjsProtocolError

Dialect = Literal["y-websocket", "hocuspocus"]


def peek(frame: bytes, dialect: Dialect) -> tuple[int | None, str | None]:
    """The frame's message type (0 sync, 1 awareness, 2 auth...; None when unreadable) and the
    Hocuspocus address it names ("" for y-websocket; None for a ping or pong, or when
    unreadable: the session refuses it). One read of the header for every frame."""
    if dialect == "y-websocket":
        if frame and frame[0] < 0x80:
            return frame[0], ""  # a one-byte varUint, read without a decoder
        return message_type(frame, dialect), ""
    if len(frame) == 1:
        return None, None  # ping / pong
    n = frame[0] if frame else 0x80
    if n < 0x80 and len(frame) > n + 1 and frame[n + 1] < 0x80:  # one-byte length and type
        try:
            return frame[n + 1], frame[1 : n + 1].decode()
        except UnicodeDecodeError:
            return None, None
    dec = Decoder(frame)
    try:
        address = dec.read_var_string(1024)
    except YjsProtocolError:
        return None, None
    try:
        return dec.read_var_uint(), address
    except YjsProtocolError:
        return None, address


def message_type(frame: bytes, dialect: Dialect) -> int | None:
    """The frame's message type (0 sync, 1 awareness, 2 auth...); None when unreadable."""
    if dialect == "y-websocket" and frame and frame[0] < 0x80:
        return frame[0]  # a one-byte varUint, read without a decoder (every frame comes here)
    try:
        dec = Decoder(frame)
        if dialect == "hocuspocus":
            if len(frame) == 1:
                return None  # ping / pong
            dec.read_var_string(1024)
        return dec.read_var_uint()
    except YjsProtocolError:
        return None


def address_of(frame: bytes, dialect: Dialect) -> str | None:
    """The Hocuspocus address the frame names ("" for y-websocket); None for a ping or pong,
    or when unreadable (the session refuses it)."""
    return peek(frame, dialect)[1]
