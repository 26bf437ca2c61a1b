"""The Python SDK: ``async with cowrite.client.connect(url, doc="notes") as doc: ...``.

``connect`` opens one document over the WebSocket protocol (``docs/protocol.md``) as a thin
client (``mode="thin"``: plain values, OT rebasing, ``thin.ThinDocState``) or a full CRDT
replica (``mode="replica"``: works offline, ``replica.ReplicaDocState``). The cores are sans-I/O
and usable on their own; ``connection`` is the asyncio shell.

Modules, outside in:

* ``api``: ``connect``, the entry point (its keyword arguments are the documented surface);
* ``connection``: ``DocumentSession``, one open document (handles, events, presence, lifecycle);
* ``transport``: the session's socket side (reconnect loop, handshake, writer task, frame codec);
* ``chat``: ``ChatChannel`` (``session.chat``); ``events``: ``ChangeEvent``;
* ``history``: ``History``, a document's version history over REST (list, read, diff, name,
  restore), no session needed;
* ``handles``: ``TextHandle``, ``MapHandle``... (edit one node through a core);
* ``thin``: ``ThinDocState``, the thin client core (``docs/protocol.md`` T1-T10), with
  ``thin_merge`` (rejoin, snapshot merge), ``thin_cursors`` and ``thin_slots`` (queue vocabulary);
* ``replica``: ``ReplicaDocState``, the CRDT replica core;
* ``yjs``: ``open_yjs`` / ``YjsSession``, a Yjs document of the server as a live ``pycrdt.Doc``
  (the Hocuspocus dialect, ``docs/yjs.md``);
* ``values``: plain values and index-op helpers (kinds, node ids, ``diff_text``); ``checksum``:
  checking a thin copy against the server's ``checksum`` messages; ``errors``: the exceptions.
"""

from __future__ import annotations

from cowrite.client.admin import Admin, AdminError
from cowrite.client.api import connect
from cowrite.client.chat import ChatChannel
from cowrite.client.connection import DocumentSession
from cowrite.client.errors import (
    ClientError,
    NotSynced,
    PermissionDenied,
    ReadOnlyError,
    ServerError,
    SessionClosed,
)
from cowrite.client.events import ChangeEvent
from cowrite.client.handles import (
    CounterHandle,
    Handle,
    ListHandle,
    MapHandle,
    RegisterHandle,
    TextHandle,
)
from cowrite.client.history import History, HistoryError
from cowrite.client.replica import ReplicaDocState
from cowrite.client.thin import ThinDocState
from cowrite.client.values import diff_text
from cowrite.client.yjs import YjsSession, hocuspocus_url
from cowrite.client.yjs_open import open_yjs

__all__ = [
    "ChangeEvent",
    "ChatChannel",
    "ClientError",
    "CounterHandle",
    "DocumentSession",
    "Handle",
    "Admin",
    "AdminError",
    "History",
    "HistoryError",
    "ListHandle",
    "MapHandle",
    "NotSynced",
    "PermissionDenied",
    "ReadOnlyError",
    "RegisterHandle",
    "ReplicaDocState",
    "ServerError",
    "SessionClosed",
    "TextHandle",
    "ThinDocState",
    "YjsSession",
    "connect",
    "diff_text",
    "hocuspocus_url",
    "open_yjs",
]
