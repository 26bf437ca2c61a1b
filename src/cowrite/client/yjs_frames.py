"""The frames of a Yjs session (``yjs.py``): what the server sends, and the local changes that
go out (a part of ``YjsSession``; it declares what it uses of the rest).

Kept apart from the connection's life (open, reconnect, close, ``saved``), which is ``yjs.py``:
this is the Hocuspocus dialect as the SDK speaks it, one frame at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import msgspec
import pycrdt

from cowrite import protocol as p
from cowrite.client.errors import ClientError, PermissionDenied, ReadOnlyError, SessionClosed
from cowrite.yjs import messages as m
from cowrite.yjs.awareness import AwarenessTable, decode_update
from cowrite.yjs.lib0 import YjsProtocolError

log = logging.getLogger("cowrite.client.yjs")

MAX_CHAT_KEPT = 1000
"""Chat messages ``chat_messages`` keeps (the newest)."""


class _Fatal(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class YjsFrames:
    """Frame handling of ``YjsSession`` (see the module docstring)."""

    name: str
    doc: pycrdt.Doc[Any]
    read_only: bool | None
    chat_messages: list[p.ChatMessage]
    chat_has_more: bool
    _token: str
    _loop: asyncio.AbstractEventLoop | None
    _ready: asyncio.Future[None] | None
    _outbox: asyncio.Queue[bytes] | None
    _attempt: int
    _connected: bool
    _got_state: bool
    _uploaded: bool
    _held: list[bytes]
    _outstanding: int
    _pending: list[bytes]
    _flush_scheduled: bool
    _unsaved: bool
    _unsendable: bool
    _refused: int
    _closed: bool
    _applying_remote: bool
    _aw_table: AwarenessTable

    def _send(self, frame: bytes) -> None:
        raise NotImplementedError

    def _settled(self) -> bool:
        raise NotImplementedError

    def _emit(self, event: str, payload: Any) -> None:
        raise NotImplementedError

    def _notify(self) -> None:
        raise NotImplementedError

    def _send_awareness(self) -> None:
        raise NotImplementedError

    @property
    def awareness(self) -> dict[int, Any]:
        raise NotImplementedError

    # ------------------------------------------------------------------ frames in

    def _handle(self, msg: m.HocuspocusMessage) -> None:
        if isinstance(msg, m.HPing):
            self._send(m.PONG_FRAME)
            return
        if isinstance(msg, m.HPong) or msg.address != self.name:
            return
        if isinstance(msg, m.HSync):
            self._sync(msg.sync)
        elif isinstance(msg, m.HSyncStatus):
            self._outstanding = max(0, self._outstanding - 1)
            if msg.saved and self._settled() and not self._refused:
                self._unsaved = False
            if not msg.saved:
                self._refused += 1
                self._emit("error", ReadOnlyError(f"the server refused a change to {self.name!r}"))
            self._notify()
        elif isinstance(msg, m.HAwareness):
            self._awareness(msg.update)
        elif isinstance(msg, m.HQueryAwareness):
            self._send_awareness()
        elif isinstance(msg, m.HAuthenticated):
            self.read_only = msg.scope == "readonly"
            if self.read_only and self._pending:
                self._pending.clear()
                self._unsendable = True
        elif isinstance(msg, m.HPermissionDenied):
            raise _Fatal(PermissionDenied(msg.reason, self.name))
        elif isinstance(msg, m.HAuthTokenRequest):
            self._send(m.encode_hocuspocus(m.HAuthToken(self.name, self._token)))
        elif isinstance(msg, m.HStateless):
            self._emit("stateless", msg.payload)
            self._chat(msg.payload)
        elif isinstance(msg, m.HClose):
            raise _Fatal(SessionClosed(f"the server closed {self.name!r}: {msg.reason}"))

    def _sync(self, sync: m.SyncMessage) -> None:
        if isinstance(sync, m.SyncStep1):
            # Everything the server lacks, including what was edited offline and local changes
            # not sent yet (so those are dropped from the queue).
            self._send(
                m.encode_hocuspocus(
                    m.HSync(self.name, m.SyncStep2(self.doc.get_update(sync.state_vector)))
                )
            )
            self._pending.clear()
            self._uploaded = True
            self._outstanding += 1
            self._notify()
            return
        if isinstance(sync, m.SyncUpdate) and not self._got_state:
            self._held.append(sync.update)
            return
        self._apply_remote(sync.update)
        if isinstance(sync, m.SyncStep2) and not self._got_state:
            self._got_state = True
            held, self._held = self._held, []
            for update in held:
                self._apply_remote(update)
            self._attempt = 0
            self._connected = True
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
            self._notify()
            self._emit("status", "connected")

    def _chat(self, payload: str) -> None:
        """The cowrite chat carried in stateless payloads (``docs/yjs.md``)."""
        try:
            msg = json.loads(payload)
            kind = msg.get("type") if isinstance(msg, dict) else None
            if kind == "cowrite.chat":
                message = msgspec.convert(msg["message"], p.ChatMessage)
                self.chat_messages = [
                    *(c for c in self.chat_messages[-MAX_CHAT_KEPT + 1 :] if c.id != message.id),
                    message,
                ]
                self._emit("chat", message)
            elif kind == "cowrite.chat.history":
                self.chat_messages = msgspec.convert(msg["messages"], list[p.ChatMessage])
                self.chat_has_more = bool(msg.get("has_more"))
            elif kind == "cowrite.error":
                self._emit("error", ClientError(f"{msg.get('code')}: {msg.get('message')}"))
        except (ValueError, KeyError, msgspec.ValidationError) as exc:
            log.warning("ignoring a stateless message: %s", exc)

    def _apply_remote(self, update: bytes) -> None:
        self._applying_remote = True
        try:
            self.doc.apply_update(update)
        finally:
            self._applying_remote = False

    def _awareness(self, update: bytes) -> None:
        try:
            entries = decode_update(update, self._aw_table.limits)
        except YjsProtocolError as exc:
            log.warning("ignoring a bad awareness update: %s", exc)
            return
        mine = [e for e in entries if e.client_id != self.doc.client_id]
        assert self._loop is not None
        try:
            change = self._aw_table.apply(mine, None, self._loop.time())
        except YjsProtocolError as exc:
            log.warning("ignoring an awareness update: %s", exc)
            return
        if change.added or change.updated or change.removed:
            self._emit("awareness", self.awareness)

    # ------------------------------------------------------------------ local changes out

    def _on_transaction(self, event: pycrdt.TransactionEvent) -> None:
        if self._applying_remote or self._closed:
            return
        update = event.update
        if update == b"\x00\x00":
            return  # a transaction that changed nothing
        self._unsaved = True
        if self.read_only:
            self._unsendable = True
            self._notify()
            return
        if not self._uploaded:
            return  # the sync step 2 of the next (re)connection carries it
        self._pending.append(update)
        self._notify()
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Send the local updates of this loop turn as one sync update."""
        self._flush_scheduled = False
        if not self._pending or self._outbox is None:
            return
        pending, self._pending = self._pending, []
        update = pending[0] if len(pending) == 1 else pycrdt.merge_updates(*pending)
        self._send(m.encode_hocuspocus(m.HSync(self.name, m.SyncUpdate(update))))
        self._outstanding += 1
