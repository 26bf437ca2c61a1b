"""One WebSocket connection: a reader loop, an outbox flushed once per loop tick, a heartbeat.

The reader validates every frame (``protocol.decode_client``) and hands it to the hub; refusals
become ``error`` messages and the connection carries on. Messages for the client go into its
outbox; the first one of a loop tick schedules a flush, which sends everything queued in that
tick as one frame (a JSON array), written straight to the socket when the server allows it
(``transport``). So a burst costs one frame and one write, and there is no writer task: an idle
connection holds one task (its reader, the ASGI call itself) and no timer of its own (the hub's
connections share one heartbeat timer, ``Shared``; with auth, one timer ends the session at the
token's ``exp``).

A client that stops reading stops taking frames; its outbox fills (``outbox_messages`` messages or
``outbox_bytes`` bytes, whichever comes first) and it is disconnected (4008):
the room never waits for it. A client that stops answering pings is disconnected after the
heartbeat timeout (4000), which removes its presence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from typing import Any

from starlette.websockets import WebSocket

from cowrite import protocol as p
from cowrite.adapters.store import StoreError
from cowrite.rooms.room import RoomError
from cowrite.server.auth import Identity, anonymous
from cowrite.server.budgets import Budgets
from cowrite.server.config import Settings
from cowrite.server.greeting import CLOSE_POLICY, greet
from cowrite.server.hooks import Disconnect, connect_event
from cowrite.server.hub import Hub
from cowrite.server.metrics import Metrics
from cowrite.server.reauth import reauth, rights_changed
from cowrite.server.shared import Beating, Shared, shared_of
from cowrite.server.transport import Link, LinkClosed, UvicornLink, open_link, release_request

__all__ = ["Beating", "Connection", "Shared", "shared_of"]  # (the last three: ``shared.py``)

log = logging.getLogger("cowrite.connection")

CLOSE_OUTBOX_FULL = 4008
CLOSE_TOKEN_EXPIRED = 4001
CLOSE_TIMEOUT = 4000
CLOSE_GOING_AWAY = 1001
MAX_BATCH = 256
"""Messages per frame at most (a longer backlog goes out as several frames)."""
MAX_STRIKES = 200
"""Refused frames tolerated before a connection is judged hostile and closed."""
PING = b'{"type":"ping","nonce":0}'
"""The heartbeat's ping: constant (the nonce stays for clients that echo it), framed once."""
PONGS = frozenset(('{"type":"pong","nonce":0}', '{"type":"pong"}', '{"type": "pong", "nonce": 0}'))
"""Its answers from the JS client, the Python SDK and ``json.dumps``: known without decoding."""
DRAIN_TIMEOUT_S = 2.0
"""How long a closing connection may take to send what was queued before its close frame."""
SEND_FAILED = (1006, "send failed")
"""``closing`` once the socket stopped taking frames: the peer is gone, but what it sent first
is still handled (the reader goes on up to its disconnect event, which is queued by then)."""


class Connection:
    __slots__ = (
        "_budgets",
        "_expiry",
        "_flushing",
        "_greeted",
        "_interrupted",
        "_link",
        "_receiving",
        "_shared",
        "_strikes",
        "_task",
        "_waiting",
        "client_id",
        "closing",
        "docs",
        "hub",
        "identity",
        "last_seen",
        "metrics",
        "outbox",
        "outbox_bytes",
        "session",
        "settings",
        "ws",
    )

    def __init__(self, ws: WebSocket, hub: Hub, settings: Settings, metrics: Metrics) -> None:
        self.ws = ws
        self.hub = hub
        self.settings = settings
        self.metrics = metrics
        self.session = uuid.uuid4().hex
        self.client_id = ""
        self.identity: Identity = anonymous("")
        self.docs: dict[str, str] = {}
        self.outbox: list[bytes] = []  # encoded messages not yet written (bounded)
        self.outbox_bytes = 0  # their total size (bounded too: one join can be megabytes)
        self.closing: tuple[int, str] | None = None
        self.last_seen = time.monotonic()
        self._strikes = 0
        self._budgets = Budgets(settings, hub.clock)
        self._link: Link | None = None
        self._flushing = False  # a flush is scheduled (or waits for the socket)
        self._task: asyncio.Task[Any] | None = None  # the reader's (``run``)
        self._receiving = False  # the reader waits for a frame: ``close`` may interrupt it
        self._waiting: asyncio.Future[Any] | None = None  # what it waits on, when a future
        self._interrupted = False
        self._shared: Shared | None = None
        self._greeted = False  # ``hello`` received
        self._expiry: asyncio.TimerHandle | None = None  # ends the session at the token's exp

    # --------------------------------------------------------------- sending

    def send(self, data: bytes) -> None:
        if self.closing is not None:
            return
        outbox = self.outbox
        if outbox:
            # bytes beyond the oldest message: one message alone always fits (a large
            # document's ``joined`` may exceed the limit), and so do the few that follow it
            # while it is written
            settings = self.settings
            if (
                len(outbox) >= settings.outbox_messages
                or self.outbox_bytes - len(outbox[0]) + len(data) > settings.outbox_bytes
            ):
                log.warning("outbox full: disconnecting a slow client", extra=self._ids())
                self.close(CLOSE_OUTBOX_FULL, "outbox overflow: reconnect and resync")
                return
        outbox.append(data)
        self.outbox_bytes += len(data)
        if not self._flushing:
            shared = self._shared
            if shared is not None:
                self._flushing = True
                dirty = shared.dirty  # ``shared.flush_soon(self)``, inlined
                dirty.append(self)
                if len(dirty) == 1:
                    shared.schedule()

    def send_message(self, msg: p.Message) -> None:
        self.send(p.encoder.encode(msg))

    def saving(self, doc_id: str, pending: bool) -> None:
        self.send_message(p.Saving(doc=doc_id, pending=pending))

    def entered(self, doc_id: str, mode: str) -> None:
        self.docs[doc_id] = mode

    def left(self, doc_id: str) -> None:
        self.docs.pop(doc_id, None)

    def error(
        self, code: p.ErrorCode, message: str, *, doc: str | None = None, edit: str | None = None
    ) -> None:
        self.metrics.errors.labels(code.value).inc()
        self.send_message(p.Error(code=code, message=message, doc=doc, edit_id=edit))

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued so far (flushed, then the close frame). A frame the
        reader already received is still handled (every one, when the peer is gone)."""
        if self.closing is None:
            self.closing = (code, reason)
            self.metrics.disconnects.labels(str(code)).inc()
            if self._receiving and self._task is not None:
                if self._waiting is not None:  # the reader stops waiting (``_reader``)...
                    self._waiting.cancel()  # ...a no-op when a frame reached it: it has it
                else:
                    self._interrupted = True  # wake the reader: ``run`` closes
                    self._task.cancel()

    def _ids(self) -> dict[str, object]:
        return {"session": self.session, "client": self.client_id, "docs": sorted(self.docs)}

    def _flush(self) -> bool:
        """Write what the outbox holds: one frame per ``MAX_BATCH`` messages, while the socket
        takes them (if not, again once it does). True: one message, written at once (the
        caller, ``Shared``, counts its outbox depth of 0)."""
        link = self._link
        outbox = self.outbox
        if link is None:
            self._flushing = False
            return False
        try:
            if len(outbox) == 1 and link.write_now(outbox[0]):  # the usual tick: one frame
                outbox.clear()
                self.outbox_bytes = 0
                self._flushing = False
                return True
            while outbox:
                if not link.writable():
                    link.when_writable(self._flush_counted)  # still ``_flushing``
                    return False
                if len(outbox) <= MAX_BATCH:
                    batch = outbox[:]
                    outbox.clear()
                    self.outbox_bytes = 0
                else:
                    batch = outbox[:MAX_BATCH]
                    del outbox[:MAX_BATCH]
                    self.outbox_bytes -= sum(map(len, batch))
                self.metrics.outbox_depth.observe(len(outbox))
                link.write(batch[0] if len(batch) == 1 else b"[" + b",".join(batch) + b"]")
        except (LinkClosed, OSError, RuntimeError):
            self._failed()
        self._flushing = False
        return False

    def _flush_counted(self) -> None:
        """``_flush`` outside ``Shared``'s per-tick flush: it counts its own depth 0."""
        if self._flush():
            self.metrics.outbox_depth.observe(0)

    def _failed(self) -> None:
        """The socket cannot take frames any more: nothing queued can be delivered."""
        self.outbox.clear()
        self.outbox_bytes = 0
        self.close(*SEND_FAILED)

    # --------------------------------------------------------------- running

    async def run(self) -> None:
        await self.ws.accept()
        self._task = asyncio.current_task()
        self._link = link = open_link(self.ws, self._failed)
        if isinstance(link, UvicornLink):
            link.intercept(self._take)
        self.metrics.connections.inc()
        self._shared = shared = shared_of(self.hub, self.settings)
        shared.add(self)
        self.hub.permissions.connections.add(self)
        if self.outbox:
            self._flushing = True
            shared.flush_soon(self)
        hooks = self.hub.hooks
        try:
            try:
                if hooks.wants("on_connect"):
                    await self._connect_hooks()
                release_request(self.ws)
                await self._reader()
            except asyncio.CancelledError:
                # ``close`` interrupted the reader; any other cancellation goes on
                if not self._interrupted or self._uncancel() > 0:
                    raise
            except Exception:
                log.exception("connection failed", extra=self._ids())
        finally:
            self._receiving = False
            if self._expiry is not None:
                self._expiry.cancel()
            if self._shared is not None:
                self._shared.discard(self)
            self.hub.permissions.connections.discard(self)
            docs = tuple(self.docs)
            for doc_id in docs:
                self.hub.leave(self, doc_id)
            if self._greeted and hooks.wants("on_disconnect"):
                code, reason = self.closing or (1000, "")
                gone = Disconnect(self.session, "ws", self.identity.user_id, docs, code, reason)
                hooks.notify("on_disconnect", gone, self.session)
            if self.closing is not None:
                with contextlib.suppress(asyncio.TimeoutError, Exception):
                    await asyncio.wait_for(self._drain_and_close(link), DRAIN_TIMEOUT_S)
            self.outbox.clear()
            self.outbox_bytes = 0
            self._link = None
            self._task = None
            if self.closing is None:  # gone: whatever is still sent to it is dropped
                self.closing = (1006, "")
            self.metrics.connections.dec()

    async def _connect_hooks(self) -> None:
        """``on_connect``: a refusal (any exception) is told and closes the connection."""
        try:
            await self.hub.hooks.connect(connect_event(self.ws, self.session, "ws"))
        except Exception as exc:
            self.error(p.ErrorCode.FORBIDDEN, f"connection refused: {exc}")
            self.close(CLOSE_POLICY, "connection refused")

    def _uncancel(self) -> int:
        task = self._task
        return task.uncancel() if task is not None else 0

    async def _drain_and_close(self, link: Link) -> None:
        """Send the queued messages, then the close frame."""
        while self.outbox:
            if link.writable():
                self._flushing = True
                self._flush_counted()
            else:
                await asyncio.sleep(0.01)
        code, reason = self.closing or (1000, "")
        await link.close(code, reason)

    def beat(self) -> None:
        """Every ``heartbeat_s`` (``Shared``): drop a client silent for longer than the
        timeout, else ping it."""
        if self.closing is not None:
            return
        if time.monotonic() - self.last_seen > self.settings.heartbeat_timeout_s:
            log.info("heartbeat timeout", extra=self._ids())
            self.close(CLOSE_TIMEOUT, "heartbeat timeout")
            return
        link = self._link
        if link is None or not link.write_ping(PING):  # else straight to the socket
            self.send(PING)

    async def _reader(self) -> None:
        link = self._link
        if link is None:
            return
        receive = link.receive
        while self.closing is None or (self.closing == SEND_FAILED and self._strikes < MAX_STRIKES):
            self._receiving = True
            pending = receive()  # uvicorn's is a future: cancelling it (not us) loses no frame
            self._waiting = pending if isinstance(pending, asyncio.Future) else None
            try:
                event = await pending
            except RuntimeError:  # receive after the disconnect
                return
            except asyncio.CancelledError:
                if gave_up(pending):
                    return
                raise
            finally:
                self._receiving = False
                self._waiting = None
            if event["type"] == "websocket.disconnect":
                return
            self.last_seen = time.monotonic()
            msg = self._on_frame(event.get("text"), event.get("bytes"))
            del event  # nothing of this frame stays alive while waiting for the next one
            if msg is not None:
                if isinstance(msg, p.Hello) and not self._greeted:
                    self._greeted = await greet(self, msg)  # if not, it is closing
                else:
                    await self._dispatch(msg)
                del msg

    def _take(self, text: str) -> bool:
        """A small text message, where the socket read it (``UvicornLink.intercept``): True
        when it was handled here, without waking the reader. A valid ``pong`` of a greeted
        connection always (it only moves ``last_seen``, in any order); while the reader waits
        with nothing queued (so in order), a message ``_handle_now`` takes: an edit, a presence
        update... Anything else, untouched, goes to the reader as usual (which says what is
        wrong with a malformed message)."""
        if not self._greeted or self.closing is not None:
            return False
        if text in PONGS:
            self.last_seen = time.monotonic()
            return True
        link = self._link
        in_order = (
            isinstance(link, UvicornLink)
            and link.reader_waiting()
            and '"sync"' not in text  # a replica's delta: the reader's (not decoded twice)
        )
        if not in_order and '"pong"' not in text:
            return False
        if len(text) > self.settings.max_message_bytes // 4:  # the reader counts its bytes
            return False
        try:
            msg = p.decode_client(text, self.settings.max_message_bytes)
        except (p.ProtocolError, RecursionError):
            return False  # the reader says why
        if type(msg) is p.Pong:
            self.last_seen = time.monotonic()
            return True
        if not in_order:
            return False
        if type(msg) is p.Edit:  # nearly every read: nothing checked twice
            return self._edit_now(msg)
        if not self._handle_now(msg):
            return False
        self.last_seen = time.monotonic()
        return True

    def _on_frame(self, text: str | None, data: bytes | None) -> p.ClientMessage | None:
        """Decode one frame: the message to dispatch, or None when there is nothing more to do
        (refused, ``hello``, ``pong``; a refused ``hello`` closes the connection)."""
        frame: str | bytes = text if text is not None else data or b""
        limit = self.settings.max_message_bytes
        if isinstance(frame, str) and len(frame) > limit // 4:  # count bytes, not characters
            size = len(frame.encode("utf-8", "surrogatepass"))
            if size > limit:
                self._strike(p.ErrorCode.TOO_LARGE, f"frame of {size} bytes exceeds {limit}")
                return None
        try:
            msg = p.decode_client(frame, limit)
        except p.ProtocolError as exc:
            self._strike(exc.code, exc.message)
            return None
        except RecursionError:  # msgspec recurses into ``Any`` values (deep nesting)
            self._strike(p.ErrorCode.BAD_MESSAGE, "malformed JSON: nested too deeply")
            return None
        if not self._greeted:
            if not isinstance(msg, p.Hello):
                self._strike(p.ErrorCode.BAD_MESSAGE, "the first message must be hello")
                return None
            return msg  # the reader awaits ``greet``
        if type(msg) is p.Pong:  # every heartbeat of every client: nothing beyond last_seen
            return None
        return msg

    def _strike(self, code: p.ErrorCode, message: str) -> None:
        self.error(code, message)
        self._strikes += 1
        if self._strikes >= MAX_STRIKES:
            self.close(CLOSE_POLICY, "too many invalid messages")

    def expire_at(self, at: float | None) -> None:
        """Rights last until the token's ``exp``, no longer (a ``reauth`` moves it)."""
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        if at is not None:
            delay = max(0.0, at - time.time())
            self._expiry = asyncio.get_running_loop().call_later(delay, self._token_expired)

    def restrict(self, user_id: str, ceiling: dict[str, frozenset[str]] | None) -> None:
        """An administrator's ceiling for ``user_id`` (``permissions.py``)."""
        identity = self.identity
        if not self._greeted or self.closing is not None:
            return
        if user_id not in (identity.user_id, identity.token_key):
            return
        self.identity = self.hub.permissions.limit(identity)
        rights_changed(self, "rights changed by an administrator")

    def _token_expired(self) -> None:
        self._expiry = None
        log.info("token expired", extra=self._ids())
        self.error(p.ErrorCode.UNAUTHORIZED, "token expired: reconnect with a fresh token")
        self.close(CLOSE_TOKEN_EXPIRED, "token expired")

    def _handle_now(self, msg: p.ClientMessage) -> bool:
        """Handle ``msg`` without awaiting anything when it can be (an edit that needs no store
        lookup, a presence update, a leave, a divergence report): True, it was (or refused:
        the client is told). False: nothing was done, ``_dispatch`` awaits it."""
        if isinstance(msg, p.Edit):
            return self._edit_now(msg)
        if not isinstance(msg, p.SetPresence | p.Leave | p.Diverged):
            return False
        doc = msg.doc
        try:
            if not self._admit(msg, doc, None):
                return True
            if isinstance(msg, p.SetPresence):
                self.hub.presence(self, msg)
            elif isinstance(msg, p.Leave):
                self.hub.leave(self, msg.doc)
            else:
                self._diverged(msg)
        except Exception as exc:
            self._failure(exc, doc, None)
        return True

    def _edit_now(self, msg: p.Edit) -> bool:
        """``_handle_now`` of an edit: True when it was handled (or refused: the client is
        told), False when ``Hub.edit`` must await it (a store lookup, or not joined: the
        reader's ``_dispatch`` says why)."""
        hub = self.hub
        try:
            lr = hub.edit_ready(self, msg)
        except Exception:  # the reader's ``_dispatch`` meets it again, and says so
            return False
        if lr is None:
            return False
        self.last_seen = time.monotonic()
        if not self._admit(msg, msg.doc, msg.edit_id):
            return True  # over its budget: the client was told
        try:
            hub.edit_now(self, msg, lr)
        except Exception as exc:
            self._failure(exc, msg.doc, msg.edit_id)
        return True

    def _admit(self, msg: p.ClientMessage, doc: str | None, edit_id: str | None) -> bool:
        """The rate limits (``budgets``): False when ``msg`` is over its budget (the client
        is told)."""
        refused = self._budgets.refusal(msg)
        if refused is None:
            return True
        self.error(p.ErrorCode.RATE_LIMITED, refused, doc=doc, edit=edit_id)
        return False

    async def _dispatch(self, msg: p.ClientMessage) -> None:
        if self._handle_now(msg):
            return
        hub = self.hub
        doc = getattr(msg, "doc", None)
        edit_id = getattr(msg, "edit_id", None)
        try:
            if not self._admit(msg, doc, edit_id):
                return
            if isinstance(msg, p.Edit):
                await hub.edit(self, msg)
            elif isinstance(msg, p.Sync):
                await hub.sync(self, msg)
            elif isinstance(msg, p.Join):
                await hub.join(self, msg)
            elif isinstance(msg, p.Leave):
                hub.leave(self, msg.doc)
            elif isinstance(msg, p.SetPresence):
                hub.presence(self, msg)
            elif isinstance(msg, p.ChatSend):
                await hub.chat_send(self, msg)
            elif isinstance(msg, p.ChatEdit):
                await hub.chat_edit(self, msg)
            elif isinstance(msg, p.ChatDelete):
                await hub.chat_delete(self, msg)
            elif isinstance(msg, p.ChatHistory):
                await hub.chat_history(self, msg)
            elif isinstance(msg, p.Diverged):
                self._diverged(msg)
            elif isinstance(msg, p.Reauth):
                await reauth(self, msg)
            elif isinstance(msg, p.Hello):
                self.error(p.ErrorCode.BAD_MESSAGE, "hello was already received")
            # Pong: nothing to do beyond last_seen
        except Exception as exc:
            self._failure(exc, doc, edit_id)

    def _failure(self, exc: Exception, doc: str | None, edit_id: str | None) -> None:
        """What the client is told when handling its message raised ``exc``."""
        if isinstance(exc, RoomError):
            self.error(exc.code, exc.message, doc=doc, edit=edit_id)
            if exc.resync and doc is not None:
                self.send_message(p.Resync(doc=doc, reason=exc.message))
        elif isinstance(exc, StoreError):
            log.error("store unavailable", exc_info=exc, extra=self._ids())
            self.error(p.ErrorCode.UNAVAILABLE, "storage is unavailable", doc=doc, edit=edit_id)
        else:
            log.error("failed to handle a message", exc_info=exc, extra=self._ids())
            self.error(p.ErrorCode.INTERNAL, "internal error", doc=doc, edit=edit_id)

    def _diverged(self, msg: p.Diverged) -> None:
        """A thin client's copy failed a checksum (it resyncs by itself): count it, log it."""
        if msg.doc not in self.docs:
            self.error(p.ErrorCode.NOT_JOINED, f"join {msg.doc} first", doc=msg.doc)
            return
        if not self._budgets.edit():
            return  # the edit budget bounds the log lines a client can cause
        self.metrics.divergences.inc()
        extra = {**self._ids(), "doc": msg.doc, "version": msg.version, "node": msg.node}
        log.warning("thin client diverged from the server: it resyncs", extra=extra)


def gave_up(pending: object) -> bool:
    """The reader's receive future was cancelled by ``close`` (not its task: that is a
    cancellation for the caller)."""
    task = asyncio.current_task()
    cancelled = isinstance(pending, asyncio.Future) and pending.cancelled()
    return cancelled and (task is None or task.cancelling() == 0)
