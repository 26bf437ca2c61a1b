"""Yjs documents (sans-I/O): the lib0 codec, the y-websocket and Hocuspocus wire dialects, the
awareness table, ``YjsDocument`` (a pycrdt document with validation) and per-connection protocol
state machines. Nothing here does I/O; the server integration drives it (see docs/yjs.md)."""

from cowrite.yjs.lib0 import YjsProtocolError

__all__ = ["YjsProtocolError"]
