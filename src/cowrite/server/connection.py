"""One WebSocket connection: a reader loop, one writer task with a bounded outbox, a heartbeat.

The reader validates every frame (``protocol.decode_client``) and hands it to the hub; refusals
become ``error`` messages and the connection carries on. The writer drains the outbox, sending
what has accumulated as one frame (a JSON array), so a burst costs one send. A client that stops
reading fills its outbox and is disconnected: the room never waits for it. A client that stops
answering pings is disconnected after the heartbeat timeout, which removes its presence.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from cowrite import protocol as p
from cowrite.adapters.store import StoreError
from cowrite.rooms.room import RoomError
from cowrite.server.auth import AuthError, Identity, anonymous, verify
from cowrite.server.config import Settings
from cowrite.server.hub import Hub
from cowrite.server.metrics import Metrics

log = logging.getLogger("cowrite.connection")

CLOSE_OUTBOX_FULL = 4008
CLOSE_TIMEOUT = 4000
CLOSE_POLICY = 1008
CLOSE_GOING_AWAY = 1001
MAX_BATCH = 256
MAX_STRIKES = 200
"""Refused frames tolerated before a connection is judged hostile and closed."""


class Connection:
    def __init__(self, ws: WebSocket, hub: Hub, settings: Settings, metrics: Metrics) -> None:
        self.ws = ws
        self.hub = hub
        self.settings = settings
        self.metrics = metrics
        self.session = uuid.uuid4().hex
        self.client_id = ""
        self.identity: Identity = anonymous("")
        self.docs: dict[str, str] = {}
        self.outbox: asyncio.Queue[bytes] = asyncio.Queue(settings.outbox_messages)
        self.closing: tuple[int, str] | None = None
        self.last_seen = time.monotonic()
        self._tokens = float(settings.edit_burst)
        self._refill = time.monotonic()
        self._strikes = 0
        self._closed = asyncio.Event()

    # --------------------------------------------------------------- sending

    def send(self, data: bytes) -> None:
        if self.closing is not None:
            return
        try:
            self.outbox.put_nowait(data)
        except asyncio.QueueFull:
            log.warning("outbox full: disconnecting a slow client", extra=self._ids())
            self.close(CLOSE_OUTBOX_FULL, "outbox overflow: reconnect and resync")

    def send_message(self, msg: p.Message) -> None:
        self.send(p.encoder.encode(msg))

    def error(
        self, code: p.ErrorCode, message: str, *, doc: str | None = None, edit: str | None = None
    ) -> None:
        self.metrics.errors.labels(code.value).inc()
        self.send_message(p.Error(code=code, message=message, doc=doc, edit_id=edit))

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued so far (the writer sends it, then closes)."""
        if self.closing is None:
            self.closing = (code, reason)
            self.metrics.disconnects.labels(str(code)).inc()
            self._closed.set()

    def _ids(self) -> dict[str, object]:
        return {"session": self.session, "client": self.client_id, "docs": sorted(self.docs)}

    # --------------------------------------------------------------- running

    async def run(self) -> None:
        await self.ws.accept()
        self.metrics.connections.inc()
        writer = asyncio.create_task(self._writer())
        heartbeat = asyncio.create_task(self._heartbeat())
        reader = asyncio.create_task(self._reader())
        closed = asyncio.create_task(self._closed.wait())
        try:
            await asyncio.wait({reader, closed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for doc_id in list(self.docs):
                self.hub.leave(self, doc_id)
            for task in (reader, heartbeat, closed):
                task.cancel()
            if self.closing is not None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._drain_and_close(writer), 2.0)
            writer.cancel()
            for task in (reader, heartbeat, closed, writer):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self.metrics.connections.dec()

    async def _drain_and_close(self, writer: asyncio.Task[None]) -> None:
        while not self.outbox.empty() and not writer.done():
            await asyncio.sleep(0.01)
        code, reason = self.closing or (1000, "")
        with contextlib.suppress(Exception):
            if self.ws.application_state == WebSocketState.CONNECTED:
                await self.ws.close(code, reason)

    async def _writer(self) -> None:
        outbox = self.outbox
        ws = self.ws
        while True:
            first = await outbox.get()
            batch = [first]
            while len(batch) < MAX_BATCH and not outbox.empty():
                batch.append(outbox.get_nowait())
            self.metrics.outbox_depth.observe(outbox.qsize())
            payload = first if len(batch) == 1 else b"[" + b",".join(batch) + b"]"
            try:
                await ws.send_text(payload.decode())
            except Exception:
                self.close(1006, "send failed")
                return

    async def _heartbeat(self) -> None:
        nonce = 0
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            if time.monotonic() - self.last_seen > self.settings.heartbeat_timeout_s:
                log.info("heartbeat timeout", extra=self._ids())
                self.close(CLOSE_TIMEOUT, "heartbeat timeout")
                return
            nonce += 1
            self.send_message(p.Ping(nonce=nonce))

    async def _reader(self) -> None:
        hello = False
        while self.closing is None:
            try:
                event = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if event["type"] == "websocket.disconnect":
                return
            frame = event.get("text")
            if frame is None:
                frame = event.get("bytes") or b""
            self.last_seen = time.monotonic()
            limit = self.settings.max_message_bytes
            if isinstance(frame, str) and len(frame) > limit // 4:  # count bytes, not characters
                size = len(frame.encode("utf-8", "surrogatepass"))
                if size > limit:
                    self._strike(p.ErrorCode.TOO_LARGE, f"frame of {size} bytes exceeds {limit}")
                    continue
            try:
                msg = p.decode_client(frame, limit)
            except p.ProtocolError as exc:
                self._strike(exc.code, exc.message)
                continue
            except RecursionError:  # msgspec recurses into ``Any`` values (deep nesting)
                self._strike(p.ErrorCode.BAD_MESSAGE, "malformed JSON: nested too deeply")
                continue
            if not hello:
                if not isinstance(msg, p.Hello):
                    self._strike(p.ErrorCode.BAD_MESSAGE, "the first message must be hello")
                    continue
                if not self._hello(msg):
                    return
                hello = True
                continue
            await self._dispatch(msg)

    def _strike(self, code: p.ErrorCode, message: str) -> None:
        self.error(code, message)
        self._strikes += 1
        if self._strikes > MAX_STRIKES:
            self.close(CLOSE_POLICY, "too many invalid messages")

    def _hello(self, msg: p.Hello) -> bool:
        if msg.protocol != p.PROTOCOL_VERSION:
            self.error(p.ErrorCode.BAD_MESSAGE, f"protocol {msg.protocol} unsupported (speak 1)")
            self.close(CLOSE_POLICY, "unsupported protocol")
            return False
        self.client_id = msg.client_id
        secret = self.settings.secret
        if secret:
            try:
                self.identity = verify(msg.token, secret)
            except AuthError as exc:
                self.error(p.ErrorCode.UNAUTHORIZED, str(exc))
                self.close(CLOSE_POLICY, "unauthorized")
                return False
        else:
            name = msg.user.name if msg.user else ""
            self.identity = anonymous(msg.client_id, name)
        user = p.User(
            id=self.identity.user_id,
            name=(msg.user.name if msg.user and not secret else self.identity.name) or "Anonymous",
            color=(msg.user.color if msg.user else "") or self.identity.color,
        )
        self.identity = Identity(user.id, user.name, user.color, self.identity.docs)
        self.send_message(
            p.Welcome(
                session=self.session,
                user=user,
                heartbeat_s=self.settings.heartbeat_s,
                auth=bool(secret),
            )
        )
        return True

    def _rate_ok(self) -> bool:
        now = time.monotonic()
        self._tokens = min(
            float(self.settings.edit_burst),
            self._tokens + (now - self._refill) * self.settings.edits_per_second,
        )
        self._refill = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def _dispatch(self, msg: p.ClientMessage) -> None:
        hub = self.hub
        doc = getattr(msg, "doc", None)
        edit_id = getattr(msg, "edit_id", None)
        try:
            # one budget for everything that is written to the store
            writes = isinstance(msg, p.Edit | p.Sync | p.ChatSend | p.ChatEdit | p.ChatDelete)
            if writes and not self._rate_ok():
                self.error(
                    p.ErrorCode.RATE_LIMITED, "too many edits: slow down", doc=doc, edit=edit_id
                )
                return
            if isinstance(msg, p.Edit | p.Sync):
                if isinstance(msg, p.Edit):
                    await hub.edit(self, msg)
                else:
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
            elif isinstance(msg, p.Hello):
                self.error(p.ErrorCode.BAD_MESSAGE, "hello was already received")
            # Pong: nothing to do beyond last_seen
        except RoomError as exc:
            self.error(exc.code, exc.message, doc=doc, edit=edit_id)
            if exc.resync and doc is not None:
                self.send_message(p.Resync(doc=doc, reason=exc.message))
        except StoreError:
            log.exception("store unavailable", extra=self._ids())
            self.error(p.ErrorCode.UNAVAILABLE, "storage is unavailable", doc=doc, edit=edit_id)
        except Exception:
            log.exception("failed to handle a message", extra=self._ids())
            self.error(p.ErrorCode.INTERNAL, "internal error", doc=doc, edit=edit_id)
