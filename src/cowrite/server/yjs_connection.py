"""One WebSocket of a Yjs client: ``/yjs/<name>`` (y-websocket) or ``/hocuspocus`` (Hocuspocus).

The connection runs the dialect's sans-I/O session (``cowrite.yjs.session``) and carries out what
it asks for through the hub, so a Yjs document goes through the same machinery as a native one:

* ``Persist`` (an update the session validated and applied to the room's document) becomes an
  ``Outcome`` of the room's ordered pipeline: stored first; then the acknowledgement
  (Hocuspocus ``SyncStatus``) and the update for every other connection go out, and other
  instances hear of it over the bus.
* every ``Send`` that concerns a document (a sync step 2, a ``SyncStatus``) goes through that same
  pipeline, after every update submitted before it: no client ever sees a change a crash could
  undo. Frames about no document yet (pong, authentication replies) go out at once.
* awareness is relayed to every connection of the document here and to the other instances.

(The outcomes of updates and awareness are built in ``yjs_outcomes.py``.)

Frames for the client wait in a bounded outbox (``outbox_messages`` / ``outbox_bytes``, then
4008) and are written once per loop tick (``shared.Shared.flush_soon``: one callback for
every connection of the hub). The heartbeat is the hub's one timer for every
connection (``shared.Shared``), not a timer per connection. Updates and awareness have
per-connection budgets (``yjs_budget.py``): a client over budget is simply read more slowly.
Authentication uses the server's tokens: the ``token`` query parameter (y-websocket) or the
Hocuspocus Auth message; its ``exp`` ends the connection (4001).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from typing import Any

from starlette.websockets import WebSocket

from cowrite.rooms.state import RoomError
from cowrite.rooms.yjs_room import Attachment, YjsRoom
from cowrite.server.config import Settings
from cowrite.server.connection import SEND_FAILED, Shared, gave_up, shared_of
from cowrite.server.hooks import Disconnect, connect_event
from cowrite.server.hub import Hub, LoadedRoom
from cowrite.server.metrics import Metrics
from cowrite.server.transport import (
    Link,
    LinkClosed,
    UvicornLink,
    open_link,
    release_request,
)
from cowrite.server.yjs_auth import YjsAuth, close_code_for_denial
from cowrite.server.yjs_budget import YjsBudgets
from cowrite.server.yjs_member import (
    CLOSE_FORBIDDEN,
    CLOSE_HEARTBEAT_TIMEOUT,
    CLOSE_OUTBOX_FULL,
    CLOSE_UNSUPPORTED,
    YjsMember,
    close_code_for,
)
from cowrite.server.yjs_outcomes import frames_outcome, persist, relay_awareness
from cowrite.server.yjs_wire import Dialect, peek
from cowrite.yjs import (
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
    StatelessReceived,
    YWebsocketSession,
)
from cowrite.yjs.awareness import OUTDATED_TIMEOUT_S

log = logging.getLogger("cowrite.connection")

DRAIN_TIMEOUT_S = 2.0
Y_WEBSOCKET_SILENCE_S = OUTDATED_TIMEOUT_S + 15.0
"""A y-websocket client renews its awareness every 15 s (y-protocols drops a state after 30 s
without one): silent for this long, it is gone."""


class YjsConnection:
    """A Yjs client's socket; ``document`` is the y-websocket URL's name (None: Hocuspocus)."""

    __slots__ = (
        "_auth",
        "_budgets",
        "_edits",
        "_flusher",
        "_flushing",
        "_link",
        "_members",
        "_receiving",
        "_renews",
        "_session",
        "_shared",
        "_task",
        "_waiting",
        "closing",
        "dialect",
        "document",
        "hub",
        "last_seen",
        "limits",
        "metrics",
        "outbox",
        "outbox_bytes",
        "session",
        "settings",
        "ws",
    )

    def __init__(
        self,
        ws: WebSocket,
        hub: Hub,
        settings: Settings,
        metrics: Metrics,
        dialect: Dialect,
        document: str | None = None,
    ) -> None:
        self.ws = ws
        self.hub = hub
        self.settings = settings
        self.metrics = metrics
        self.dialect = dialect
        self.document = document
        self.session = uuid.uuid4().hex
        self.outbox: list[bytes] = []
        self.outbox_bytes = 0
        self.closing: tuple[int, str] | None = None
        self._link: Link | None = None
        self._flushing = False
        self._flusher = shared_of(hub, settings)  # (its per-tick flush)
        self._task: asyncio.Task[None] | None = None
        self._receiving = False
        self._waiting: asyncio.Future[Any] | None = None  # what the reader waits on, if a future
        self._members: dict[str, YjsMember] = {}
        """By address ("" for y-websocket)."""
        self._auth = YjsAuth(self)
        self._edits = metrics.edits.labels("yjs")  # one label lookup per connection, not update
        self._shared: Shared | None = None  # the hub's heartbeat timer, while running
        self.last_seen = time.monotonic()
        self._renews = dialect == "hocuspocus"
        """The client shows it is alive on its own: a Hocuspocus provider answers our pings; a
        y-websocket one renews its awareness every 15 s (once it has sent some: a client
        without awareness, like pycrdt's provider, may stay silent and is never timed out)."""
        self._budgets = YjsBudgets(settings, hub.clock, dialect == "hocuspocus")
        self.limits = _limits(settings.max_yjs_frame_bytes)
        self._session: YWebsocketSession | HocuspocusSession | None = None

    # --------------------------------------------------------------- sending

    def send(self, data: bytes) -> None:
        if self.closing is not None:
            return
        outbox = self.outbox
        if len(outbox) >= self.settings.outbox_messages or (
            outbox and self.outbox_bytes - len(outbox[0]) + len(data) > self.settings.outbox_bytes
        ):
            log.warning("outbox full: disconnecting a slow Yjs client", extra=self._ids())
            self.close(CLOSE_OUTBOX_FULL, "outbox overflow: reconnect and resync")
            return
        outbox.append(data)
        self.outbox_bytes += len(data)
        if not self._flushing and self._link is not None:
            self._flushing = True
            self._flusher.flush_soon(self)  # one loop callback per tick for every connection

    def _flush(self) -> None:
        link = self._link
        if link is None:
            self._flushing = False
            return
        try:
            if self.outbox:
                if not link.writable():
                    link.when_writable(self._flush)
                    return
                batch, self.outbox, self.outbox_bytes = self.outbox, [], 0
                link.write_binary(batch)
        except (LinkClosed, OSError, RuntimeError):
            self.outbox.clear()
            self.outbox_bytes = 0
            self.close(*SEND_FAILED)
        self._flushing = False

    def close(self, code: int, reason: str) -> None:
        """Close after what is queued so far. A frame the reader already received is still
        handled (every one, when the peer is gone: ``connection.SEND_FAILED``)."""
        if self.closing is None:
            self.closing = (code, reason[:120])
            self.metrics.disconnects.labels(str(code)).inc()
            if self._receiving and self._task is not None:
                if self._waiting is not None:
                    self._waiting.cancel()  # no-op when a frame reached it: the reader has it
                else:
                    self._task.cancel()

    def drop(self, member: YjsMember, code: int, reason: str) -> None:
        session = self._session
        if isinstance(session, HocuspocusSession) and not session.closed:
            actions = session.detach(member.address, reason)
            self.hub.yjs_leave(member, member.document)
            self._members.pop(member.address, None)
            for a in actions:
                if isinstance(a, Send):
                    self.send(a.frame)
                elif isinstance(a, RelayAwareness):
                    self._relay_awareness(a)
        else:
            self.close(code, reason)

    def restrict(self, user_id: str, ceiling: dict[str, frozenset[str]] | None) -> None:
        """An administrator's ceiling for ``user_id`` (``permissions.py``): a document whose
        rights shrank is closed for this connection (4403; its provider reconnects with what
        is left); later Hocuspocus documents get the ceiling too."""
        limit = self.hub.permissions.limit
        identities = self._auth.identities
        for document, identity in list(identities.items()):
            if user_id in (identity.user_id, identity.token_key):
                identities[document] = limit(identity)
        for member in list(self._members.values()):
            if user_id not in (member.identity.user_id, member.identity.token_key):
                continue
            before = member.identity.rights(member.document)
            member.identity = limit(member.identity)
            if not before <= member.identity.rights(member.document):
                self.drop(member, CLOSE_FORBIDDEN, "permissions changed")

    def _ids(self) -> dict[str, object]:
        return {"session": self.session, "dialect": self.dialect, "docs": sorted(self._members)}

    # --------------------------------------------------------------- running

    async def run(self) -> None:
        ws = self.ws
        await ws.accept()
        self._task = asyncio.current_task()
        self._link = link = open_link(ws, lambda: self.close(*SEND_FAILED))
        if isinstance(link, UvicornLink):
            link.intercept_binary(self._take)
        self.metrics.connections.inc()
        self._shared = shared = shared_of(self.hub, self.settings)
        shared.add(self)
        hooks = self.hub.hooks
        self.hub.permissions.connections.add(self)
        try:
            try:
                if await self._connect_hooks() and await self._open():
                    release_request(ws)
                    await self._reader()
            except asyncio.CancelledError:
                if self.closing is None or self._uncancel() > 0:
                    raise
            except Exception:
                log.exception("Yjs connection failed", extra=self._ids())
                self.close(1011, "internal error")
        finally:
            self._receiving = False
            if self._shared is not None:
                self._shared.discard(self)
            self._auth.cancel()
            session = self._session
            if session is not None:
                with contextlib.suppress(Exception):
                    await self._carry_out(session.close(self._now()), None)
            self.hub.permissions.connections.discard(self)
            members = list(self._members.values())
            for member in members:
                self.hub.yjs_leave(member, member.document)
            self._members.clear()
            if hooks.wants("on_disconnect"):
                code, reason = self.closing or (1000, "")
                user = members[0].identity.user_id if members else ""
                docs = tuple(m.document for m in members)
                gone = Disconnect(self.session, self.dialect, user, docs, code, reason)
                hooks.notify("on_disconnect", gone, self.session)
            if self.closing is not None:
                with contextlib.suppress(asyncio.TimeoutError, Exception):
                    await asyncio.wait_for(self._drain_and_close(link), DRAIN_TIMEOUT_S)
            self.outbox.clear()
            self._link = None
            if self.closing is None:
                self.closing = (1006, "")
            self.metrics.connections.dec()

    async def _connect_hooks(self) -> bool:
        """``on_connect``; False (closing 4403 with the reason) when an extension refuses."""
        hooks = self.hub.hooks
        if not hooks.wants("on_connect"):
            return True
        try:
            await hooks.connect(connect_event(self.ws, self.session, self.dialect))
        except Exception as exc:
            self.close(CLOSE_FORBIDDEN, f"connection refused: {exc}")
            return False
        return True

    def _uncancel(self) -> int:
        task = self._task
        return task.uncancel() if task is not None else 0

    async def _drain_and_close(self, link: Link) -> None:
        while self.outbox:
            if link.writable():
                self._flushing = True
                self._flush()
            else:
                await asyncio.sleep(0.01)
        code, reason = self.closing or (1000, "")
        await link.close(code, reason)

    def _now(self) -> float:
        return self.hub.now_ms() / 1000

    async def _open(self) -> bool:
        """Set up the session: y-websocket authenticates from the URL and joins at once."""
        if self.dialect == "hocuspocus":
            self._session = HocuspocusSession(self._auth.check, self.limits, key=self.session)
            return True
        document = self.document or ""
        token = self.ws.query_params.get("token") or ""
        result = self._auth.check(token, document)
        if result is PENDING:
            result = await self._auth.check_with_hooks(token, document)
        if isinstance(result, Denied):
            self.close(close_code_for_denial(result.reason), result.reason)
            return False
        assert isinstance(result, Rights)
        member = YjsMember(self, "", document, self._auth.identities[document])
        try:
            room = await self.hub.yjs_open(member, document, write=result is Rights.READ_WRITE)
        except RoomError as exc:
            self.close(close_code_for(exc), exc.message)
            return False
        session = YWebsocketSession(document, result, room.shared, self.limits, key=self.session)
        self._session = session
        self._members[""] = member
        room.attach(
            Attachment(
                member.session,
                self,
                session.update_frame,
                session.awareness_frame,
                dialect_key=("y-websocket",),
            )
        )
        await self._carry_out(session.open(), "")
        return True

    async def _reader(self) -> None:
        link = self._link
        session = self._session
        if link is None or session is None:
            return
        receive = link.receive
        while self.closing is None or (self.closing == SEND_FAILED and not session.closed):
            self._receiving = True
            pending = receive()  # uvicorn's is a future: cancelling it (not us) loses no frame
            self._waiting = pending if isinstance(pending, asyncio.Future) else None
            try:
                event = await pending
            except RuntimeError:
                return
            except asyncio.CancelledError:
                if gave_up(pending):  # ``close`` stopped the wait
                    return
                raise
            finally:
                self._receiving = False
                self._waiting = None
            if event["type"] == "websocket.disconnect":
                return
            frame = event.get("bytes")
            del event
            if frame is None:
                self.close(CLOSE_UNSUPPORTED, "Yjs messages are binary frames")
                return
            self.last_seen = time.monotonic()
            kind, address = peek(frame, self.dialect)
            if kind == 1:
                self._renews = True
            delay = self._budgets.take_paid(kind, len(frame))  # (``_take`` may have charged it)
            if delay > 0:
                await asyncio.sleep(delay)
            await self._carry_out(session.receive(frame, self._now()), address)

    def _take(self, frame: bytes) -> bool:
        """A small binary frame, where the socket read it (``UvicornLink.intercept_binary``):
        True when it was handled here, without an ASGI event or waking the reader. Only while
        the reader waits with nothing queued (so in order), only a sync or awareness message or
        a ping or pong (all a session asks for them is done at once: no ``Join``, no token)
        and only within the budgets; anything else goes to the reader untouched (a frame over
        budget with its delay already charged: ``YjsBudgets.paid``)."""
        session = self._session
        link = self._link
        budgets = self._budgets
        if (
            self.closing is not None
            or session is None
            or session.closed
            or budgets.paid is not None
            or not isinstance(link, UvicornLink)
            or not link.reader_waiting()
        ):
            return False
        kind, address = peek(frame, self.dialect)
        if kind not in (0, 1) and not (kind is None and len(frame) == 1):  # (or a ping, a pong)
            return False
        self.last_seen = time.monotonic()
        if kind == 1:
            self._renews = True
        delay = budgets.pace(kind, len(frame))
        if delay > 0:
            budgets.paid = delay
            return False
        try:
            for a in session.receive(frame, self._now()):
                if not self._act(a, address):  # pragma: no cover - never asked for these kinds
                    log.error("unexpected Yjs action %r", a, extra=self._ids())
        except Exception:
            log.exception("Yjs connection failed", extra=self._ids())
            self.close(1011, "internal error")
        return True

    def beat(self) -> None:
        """Every ``heartbeat_s`` (the hub's one timer, ``connection.Shared``): drop a client
        silent for over ``heartbeat_timeout_s`` (its awareness goes with it: no ghost caret),
        else ping a Hocuspocus one."""
        if self.closing is not None:
            return
        timeout = self.settings.heartbeat_timeout_s
        if self.dialect == "y-websocket":  # it renews every 15 s, not at our pace
            timeout = max(timeout, Y_WEBSOCKET_SILENCE_S)
        if self._renews and time.monotonic() - self.last_seen > timeout:
            log.info("Yjs heartbeat timeout", extra=self._ids())
            self.close(CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout")
            return
        if self.dialect == "hocuspocus":
            self.send(HocuspocusSession.ping_frame())

    # --------------------------------------------------------------- actions

    async def _carry_out(self, actions: list[Action], address: str | None) -> None:
        """Execute a session's actions in order (see the module docstring)."""
        hub = self.hub
        for a in actions:
            if self._act(a, address):
                continue
            if isinstance(a, Join):
                await self._join(a)
            elif isinstance(a, Leave):
                member = self._members.pop(a.address, None)
                if member is not None:
                    hub.yjs_leave(member, a.document)
            elif isinstance(a, StatelessReceived):
                member = self._members.get(a.address)
                if member is not None:
                    await hub.yjs_stateless(member, a.document, a.payload)
            elif isinstance(a, Authenticate) and isinstance(self._session, HocuspocusSession):
                auth = self._auth
                result = auth.check(a.token, a.document)
                if result is PENDING:
                    result = await auth.check_with_hooks(a.token, a.document)
                assert isinstance(result, Rights | Denied)
                member = self._members.get(a.address)
                if member is not None and isinstance(result, Rights):  # a fresh token
                    member.identity = auth.identities[a.document]
                    auth.reschedule(m.identity for m in self._members.values())
                await self._carry_out(self._session.auth_result(a.address, result), None)
            elif isinstance(a, Authenticate | Broadcast):  # pragma: no cover - never asked
                log.error("unexpected Yjs action %r", a, extra=self._ids())

    def _act(self, a: Action, address: str | None) -> bool:
        """Carry out an action that needs no waiting (a frame, an update, awareness, a close);
        False for the others (``_carry_out``'s)."""
        if isinstance(a, Persist):
            self._persist(a)
        elif isinstance(a, Send):
            found = self._room(address)
            if found is None:
                self.send(a.frame)
            else:
                self.hub.submit(found[0], frames_outcome([(self, a.frame)]), None, time.monotonic())
        elif isinstance(a, RelayAwareness):
            self._relay_awareness(a)
        elif isinstance(a, Close):
            self.close(a.code, a.reason)
        else:
            return False
        return True

    def _room(self, address: str | None) -> tuple[LoadedRoom, YjsRoom] | None:
        if address is None:
            return None
        member = self._members.get(address)
        if member is None:
            return None
        return self.hub.yjs_room(member, member.document)

    def _member_of(self, document: str) -> YjsMember | None:
        return next((m for m in self._members.values() if m.document == document), None)

    def _persist(self, a: Persist) -> None:
        session = self._session
        if session is not None:
            persist(self.hub, self, session, self._members.values(), self._edits, a)

    def _relay_awareness(self, a: RelayAwareness) -> None:
        relay_awareness(self.hub, self._member_of(a.document), a)

    async def _join(self, a: Join) -> None:
        session = self._session
        assert isinstance(session, HocuspocusSession)
        identity = self._auth.identities[a.document]
        member = YjsMember(self, a.address, a.document, identity)
        if len(self._members) >= self.settings.max_documents_per_connection:
            await self._carry_out(session.join_failed(a.address, "too many documents"), None)
            return
        try:
            room = await self.hub.yjs_open(member, a.document, write=a.rights is Rights.READ_WRITE)
        except RoomError as exc:
            reason = "permission-denied" if exc.code.value == "unknown_document" else exc.message
            await self._carry_out(session.join_failed(a.address, reason), None)
            return
        if session.closed or self.closing is not None:
            self.hub.yjs_leave(member, a.document)
            return
        self._members[a.address] = member
        address = a.address
        room.attach(
            Attachment(
                member.session,
                self,
                lambda u: session.update_frame(address, u),
                lambda u: session.awareness_frame(address, u),
                lambda s: session.stateless_frame(address, s),
                dialect_key=("hocuspocus", address),
            )
        )
        await self.hub.yjs_chat_history(member, a.document)
        await self._carry_out(session.attach(a.address, room.shared, self._now()), a.address)


@functools.lru_cache(maxsize=8)
def _limits(max_frame_bytes: int) -> SessionLimits:
    """One (immutable) ``SessionLimits`` for every connection of a server."""
    return SessionLimits(max_frame_bytes=max_frame_bytes)
