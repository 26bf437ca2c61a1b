"""Yjs documents (sans-I/O): the lib0 codec, the y-websocket and Hocuspocus wire dialects, the
awareness table, ``YjsDocument`` (a pycrdt document that validates client updates) and the
per-connection protocol state machines. Nothing here does I/O; the server integration drives it
(see docs/yjs.md for the contract)."""

from cowrite.yjs.awareness import AwarenessLimits, AwarenessTable
from cowrite.yjs.document import DocumentLimits, MissingDependencies, YjsDocument, compact
from cowrite.yjs.lib0 import YjsProtocolError
from cowrite.yjs.session import (
    PENDING,
    Action,
    Authenticate,
    Broadcast,
    Close,
    Denied,
    HocuspocusSession,
    Join,
    Leave,
    Persist,
    RelayAwareness,
    Rights,
    Send,
    SessionLimits,
    SharedDoc,
    StatelessReceived,
    YWebsocketSession,
)

__all__ = [
    "PENDING",
    "Action",
    "Authenticate",
    "AwarenessLimits",
    "AwarenessTable",
    "Broadcast",
    "Close",
    "Denied",
    "DocumentLimits",
    "HocuspocusSession",
    "Join",
    "Leave",
    "MissingDependencies",
    "Persist",
    "RelayAwareness",
    "Rights",
    "Send",
    "SessionLimits",
    "SharedDoc",
    "StatelessReceived",
    "YWebsocketSession",
    "YjsDocument",
    "YjsProtocolError",
    "compact",
]
