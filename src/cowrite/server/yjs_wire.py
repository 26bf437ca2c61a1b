"""What the Yjs endpoints read of a frame before its session does: its message type (for the
budgets) and its Hocuspocus address (for the room its replies go through)."""

from __future__ import annotations

from typing import Literal

from cowrite.yjs.lib0 import Decoder, YjsProtocolError

Dialect = Literal["y-websocket", "hocuspocus"]


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
    if dialect != "hocuspocus":
        return ""
    if len(frame) == 1:
        return None
    try:
        return Decoder(frame).read_var_string(1024)
    except YjsProtocolError:
        return None
