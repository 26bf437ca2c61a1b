"""The per-document session (``DocumentSession``): the asyncio shell around one document's core.

The document logic lives in the sans-I/O cores (``thin.ThinDocState``, ``replica.ReplicaDocState``);
the session feeds them, and its socket side (``transport.SessionTransport``: one WebSocket at a
time, reconnecting with backoff) moves messages to and from the server (``docs/protocol.md``):

``hello`` -> ``welcome``, ``join`` -> ``joined``, then edits one batch at a time (the core decides
what to send; a writer task drains a per-connection outbox), ``pong`` for every ``ping``, a rejoin
on ``resync`` or a version gap, and a reconnect on ``reconnect``, on a dropped connection, or when
the server is silent for a heartbeat and a half (``transport.silence_limit_s``). Reconnects wait
``min(backoff_max_s, backoff_base_s * 2**attempt)`` scaled by a random factor in [0.5, 1) (jitter,
so a restarted server is not hit by every client at once). Local edits survive disconnects: the
client id is stable and every batch keeps its ``edit_id`` until acknowledged, so each is applied
exactly once.

Events (``session.on(name, callback)``; a callback may be a coroutine function, run as a task):

* ``"change"``: a ``ChangeEvent`` per op others made (or an undo of a refused local batch),
  in local coordinates; local edits do not raise events (the caller made them);
* ``"presence"``: the list of ``PresenceEntry`` (``session.presence``) after each update;
* ``"chat"``: a ``ChatMessage`` sent, edited or deleted;
* ``"status"``: ``"connected"`` (joined), ``"disconnected"``, ``"closed"``, and
  ``"saving_pending"``/``"saved"`` while/after the server cannot store edits (``saving_pending``);
* ``"error"``: a ``ServerError`` the session handled (a refused edit, a chat error...).
* ``"diverged"``: ``{"node", "version"}`` when a server ``checksum`` showed our copy differed
  (``divergences`` counts them); the session has told the server and resyncs by itself.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import random
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any, Literal, TypeAlias, get_args

import msgspec

from cowrite import protocol as p
from cowrite.client.chat import ChatChannel
from cowrite.client.errors import (
    ClientError,
    NotSynced,
    ServerError,
    SessionClosed,
)
from cowrite.client.events import ChangeEvent, Origin
from cowrite.client.handles import (
    HANDLES,
    CounterHandle,
    Handle,
    ListHandle,
    MapHandle,
    RegisterHandle,
    TextHandle,
)
from cowrite.client.replica import ReplicaDocState
from cowrite.client.session_events import Callback, EventName, SessionEvents
from cowrite.client.thin import ThinDocState
from cowrite.client.thin_undo import UndoManager
from cowrite.client.transport import (
    SessionTransport,
    _decode,
    _encode,
    _Fatal,
    _Retry,
    websocket_url,
)
from cowrite.client.values import Kind, root_node
from cowrite.engine import Document, InvalidOperation, ot

log = logging.getLogger("cowrite.client")

Mode: TypeAlias = Literal["thin", "replica"]

FATAL_JOIN_CODES = frozenset(
    {
        p.ErrorCode.UNAUTHORIZED,
        p.ErrorCode.FORBIDDEN,
        p.ErrorCode.UNKNOWN_DOCUMENT,
        p.ErrorCode.BAD_MESSAGE,  # the join itself is refused (an invalid document id)
    }
)
RETRY_EDIT_DELAY_S = 1.0


class DocumentSession(SessionEvents[EventName], SessionTransport):
    """A live document: handles to edit it, ``synced()``, events, presence and chat.

    Made by ``connect`` (use it as ``async with connect(...) as doc``). All methods must be called
    from the event loop that opened the session.
    """

    _EVENTS = get_args(EventName)

    def __init__(
        self,
        url: str,
        doc: str,
        *,
        token: str | None = None,
        name: str = "",
        user: p.User | None = None,
        mode: Mode = "thin",
        client_id: str | None = None,
        key: str | None = None,
        create: bool = True,
        document: Document | None = None,
        reconnect: bool = True,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        flush_timeout_s: float = 10.0,
        max_message_bytes: int = 64 * 1024 * 1024,
        rng: random.Random | None = None,
    ) -> None:
        if mode not in ("thin", "replica"):
            raise ValueError(f"mode must be 'thin' or 'replica', not {mode!r}")
        self.url = websocket_url(url)
        self.doc_id = doc
        self.mode: Mode = mode
        self.client_id = client_id or uuid.uuid4().hex
        self._token = token
        self._key = key or uuid.uuid4().hex  # without auth: makes us the author of our chat
        self._hello_user = user if user is not None else p.User(name=name)
        self._create = create
        self._reconnect = reconnect
        self._backoff = (backoff_base_s, backoff_max_s)
        self._connect_timeout_s = connect_timeout_s
        self._flush_timeout_s = flush_timeout_s
        self._max_message_bytes = max_message_bytes
        self._rng = rng or random.Random()
        self._state: ThinDocState | ReplicaDocState
        if mode == "thin":
            self._state = ThinDocState(doc, self.client_id)
        else:
            self._state = ReplicaDocState(doc, self.client_id, document)
        self.session_id: str | None = None
        """The server's id of the current connection (``PresenceEntry.session`` of ours)."""
        self.user: p.User | None = None
        """Who the server says we are (from ``welcome``)."""
        self.chat = ChatChannel(self)
        self._listeners: dict[str, list[Callback]] = {}
        self._presence: dict[str, p.PresenceEntry] = {}
        self._my_presence: p.SetPresence | None = None
        self._outbox: asyncio.Queue[p.Message] | None = None
        self._chat_pages: deque[asyncio.Future[p.ChatPage]] = deque()
        self._progress = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._pump_scheduled = False
        self._refused: ServerError | None = None
        """Why the server refused local edits this session cannot take back (a replica's delta
        over a limit): ``synced`` raises it instead of waiting forever."""
        self._joining = False
        self._saving_pending = False
        self._connected = False
        self._closed = False
        self._fatal: BaseException | None = None
        self._last_error: BaseException | None = None
        self._reconnect_after_s: float | None = None
        self._heartbeat_s: float | None = None
        self._attempt = 0
        self._undo: dict[str, UndoManager] = {}

    # ------------------------------------------------------------- editing

    def text(self, name: str) -> TextHandle:
        """The named root text ``name`` (node ``"text:<name>"``)."""
        return TextHandle(self._state, root_node("text", name), self._local_changed)

    def list(self, name: str) -> ListHandle:
        return ListHandle(self._state, root_node("list", name), self._local_changed)

    def map(self, name: str) -> MapHandle:
        return MapHandle(self._state, root_node("map", name), self._local_changed)

    def register(self, name: str) -> RegisterHandle:
        return RegisterHandle(self._state, root_node("register", name), self._local_changed)

    def counter(self, name: str) -> CounterHandle:
        return CounterHandle(self._state, root_node("counter", name), self._local_changed)

    def undo_manager(self, name: str = "body") -> UndoManager:
        """Undo/redo of this client's own edits of text ``name`` (``thin_undo``): ``undo()``,
        ``redo()`` never re-insert text another client deleted too or a restore brought back;
        ``adopt_restore(version, edits)`` makes a restore we asked for one undo step. Thin
        sessions only; one manager per text, made on first use."""
        state = self._state
        if not isinstance(state, ThinDocState):
            raise ClientError("undo managers follow thin sessions")
        node = root_node("text", name)
        manager = self._undo.get(node)
        if manager is None:

            def apply(op: ot.Op) -> None:
                state.local_edit(node, op)
                self._local_changed()

            manager = self._undo[node] = UndoManager(state, node, apply=apply)
        return manager

    def node(self, node_id: str, kind: Kind | None = None) -> Handle:
        """A handle on any node by wire id (a nested ``{"$node": id}`` value, for instance)."""
        known = self._state.kind(node_id) or kind
        if known is None:
            raise InvalidOperation(f"unknown node {node_id!r}: pass its kind")
        return HANDLES[known](self._state, node_id, self._local_changed)

    @property
    def version(self) -> int | None:
        """The last server version this session has seen."""
        return self._state.version

    @property
    def connected(self) -> bool:
        """True while joined over a live connection."""
        return self._connected

    @property
    def saving_pending(self) -> bool:
        """The server said it cannot store edits right now (they wait, unacknowledged)."""
        return self._saving_pending

    @property
    def divergences(self) -> int:
        """How many times our copy failed a server checksum (each time, we resynced)."""
        return self._state.divergences if isinstance(self._state, ThinDocState) else 0

    @property
    def is_synced(self) -> bool:
        return self._state.synced

    @property
    def state(self) -> ThinDocState | ReplicaDocState:
        """The sans-I/O core (read it, do not feed it: the session does)."""
        return self._state

    async def synced(self, timeout_s: float | None = None) -> None:
        """Wait until every local edit made so far is acknowledged, i.e. durable on the server.

        Raises TimeoutError after ``timeout_s``, SessionClosed if the session closes first, and
        ServerError when the server refused local edits that can never be acknowledged (a
        replica's changes over a limit such as ``document_too_large``: they stay in this
        replica but the server will not take them; a thin client's refused batch is undone
        instead, see the ``change`` events).
        """
        async with asyncio.timeout(timeout_s):
            while not self._state.synced:
                self._check_open()
                if self._refused is not None:
                    raise self._refused
                await self._progress_wait()
        self._refused = None

    # ------------------------------------------------------------ presence

    @property
    def presence(self) -> builtins.list[p.PresenceEntry]:
        """Everyone in the document (us included), cursors in local coordinates when known."""
        out = []
        state = self._state
        for entry in self._presence.values():
            cursor = entry.cursor
            if cursor is not None and isinstance(state, ThinDocState):
                mapped = state.cursor_to_local(cursor)
                if mapped is not None:
                    anchor, head = mapped
                    cursor = p.Cursor(node=cursor.node, anchor=anchor, head=head)
                entry = msgspec.structs.replace(entry, cursor=cursor)
            out.append(entry)
        return out

    async def set_presence(
        self,
        *,
        cursor: tuple[str | Handle, int, int] | p.Cursor | None = None,
        user: p.User | None = None,
        active: bool | None = None,
    ) -> None:
        """Publish our cursor (``(node, anchor, head)`` in local positions), user fields, activity.

        Remembered and published again after each rejoin.
        """
        wire: p.Cursor | None = None
        if cursor is not None:
            if isinstance(cursor, p.Cursor):
                node, anchor, head = cursor.node, cursor.anchor, cursor.head
            else:
                target, anchor, head = cursor
                node = target.node if isinstance(target, Handle) else target
            state = self._state
            if isinstance(state, ThinDocState):
                wire = state.cursor_to_server(node, anchor, head)
            else:
                wire = p.Cursor(node=node, anchor=anchor, head=head)
        prev = self._my_presence
        msg = p.SetPresence(
            doc=self.doc_id,
            user=user if user is not None else (prev.user if prev else None),
            cursor=wire if wire is not None else (prev.cursor if prev else None),
            active=active if active is not None else (prev.active if prev else None),
        )
        self._my_presence = msg
        if self._connected:
            self._send(p.SetPresence(doc=self.doc_id, user=user, cursor=wire, active=active))

    def reauth(self, token: str) -> None:
        """Present a fresh access token (same user) on the open connection: its rights and
        expiry replace the old token's (the session outlives the old ``exp``); it is also the
        token of later reconnects. A refusal arrives as an ``unauthorized`` error event."""
        self._token = token
        if self._connected:
            self._send(p.Reauth(token=token))

    # ------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect and join; returns once the document is loaded (or raises)."""
        if self._runner is not None:
            raise ClientError("the session is already open")
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        self._runner = asyncio.create_task(self._run(), name=f"cowrite-client:{self.doc_id}")
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await asyncio.shield(self._ready)
        except TimeoutError:
            await self.close(flush=False)
            last = self._last_error
            raise ConnectionError(
                f"could not join {self.doc_id!r} at {self.url} within {self._connect_timeout_s}s"
                + (f": {last}" if last is not None else ": the server did not answer the join")
            ) from last
        except BaseException:
            await self.close(flush=False)
            raise

    async def close(self, *, flush: bool = True) -> None:
        """Close the session.

        With ``flush``, first wait up to ``flush_timeout_s`` for unacknowledged edits and raise
        NotSynced if some remain (they are lost).
        """
        if self._closed:
            return
        if flush and self._fatal is None and self._runner is not None:
            with contextlib.suppress(TimeoutError, SessionClosed, ServerError):
                await self.synced(self._flush_timeout_s)
        lost = flush and self._runner is not None and not self._state.synced
        self._closed = True
        self._notify()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for task in list(self._tasks):
            task.cancel()
        self._fail_requests(SessionClosed("the session is closed"))
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(SessionClosed("closed before joining"))
            self._ready.exception()  # retrieved: nobody else may wait for it
        if self._fatal is None:
            self._emit("status", "closed")
        if lost:
            raise NotSynced(f"closed {self.doc_id!r} with edits the server has not acknowledged")

    def _check_open(self) -> None:
        if self._fatal is not None:
            raise SessionClosed(f"the session failed: {self._fatal}") from self._fatal
        if self._closed:
            raise SessionClosed("the session is closed")

    async def _progress_wait(self) -> None:
        await self._progress.wait()

    def _notify(self) -> None:
        """Wake everyone waiting for progress (acks, joins, disconnects, closing)."""
        self._progress.set()
        self._progress = asyncio.Event()

    def _ids(self) -> dict[str, object]:
        return {"doc": self.doc_id, "client": self.client_id, "session": self.session_id}

    # ------------------------------------------------------------ edits out

    def _local_changed(self) -> None:
        self._notify()
        if self._pump_scheduled or self._loop is None or self._closed:
            return
        self._pump_scheduled = True
        self._loop.call_soon(self._pump)

    def _pump(self) -> None:
        """Send what the core has for the server: a rejoin, or the next batch."""
        self._pump_scheduled = False
        if self._outbox is None:
            return
        state = self._state
        if state.rejoin_needed:
            if not self._joining:
                self._joining = True
                self._connected = False
                self._send(state.join_message(create=self._create))
            return
        msg = state.take_batch() if isinstance(state, ThinDocState) else state.take_sync()
        if msg is not None:
            self._send(msg)

    def _pump_later(self, delay_s: float) -> None:
        assert self._loop is not None
        timer: asyncio.TimerHandle | None = None

        def fire() -> None:
            if timer is not None:
                self._timers.discard(timer)
            self._pump()

        timer = self._loop.call_later(delay_s, fire)
        self._timers.add(timer)

    # ------------------------------------------------------------ messages in

    def _handle(self, msg: p.ServerMessage) -> None:
        state = self._state
        doc = getattr(msg, "doc", None)
        if doc is not None and doc != self.doc_id:
            return
        if isinstance(msg, p.Ping):
            self._send(p.Pong(nonce=msg.nonce))
        elif isinstance(msg, p.Remote):
            if isinstance(state, ThinDocState):
                self._changes(state.on_remote(msg), "remote")
                if state.pending:  # an undo manager's correction (thin_undo settle): send it
                    self._local_changed()
                else:
                    self._notify()  # our own batch may have come back as a catch-up remote
        elif isinstance(msg, p.RemoteSync):
            if isinstance(state, ReplicaDocState):
                self._changes(state.on_remote_sync(msg), "remote")
        elif isinstance(msg, p.Ack):
            if isinstance(state, ThinDocState):
                self._changes(state.on_ack(msg), "ack")
            else:
                state.on_ack(msg)
            self._notify()
        elif isinstance(msg, p.Presence):
            for entry in msg.entries:
                self._presence[entry.session] = entry
            for session in msg.left:
                self._presence.pop(session, None)
            self._emit("presence", self.presence)
        elif isinstance(msg, p.Chat):
            self.chat._learn([msg.message])
            self._emit("chat", msg.message)
        elif isinstance(msg, p.ChatPage):
            if self._chat_pages:
                fut = self._chat_pages.popleft()
                if not fut.done():
                    fut.set_result(msg)
        elif isinstance(msg, p.Joined):
            self._joined(msg)
        elif isinstance(msg, p.Error):
            self._error(msg)
        elif isinstance(msg, p.Resync):
            log.info("resync of %s: %s", self.doc_id, msg.reason, extra=self._ids())
            state.on_resync()
            self._connected = False
        elif isinstance(msg, p.Reconnect):
            self._reconnect_after_s = max(0, msg.after_ms) / 1000
        elif isinstance(msg, p.Checksum):
            if isinstance(state, ThinDocState):
                self._checksum(state, msg)
        elif isinstance(msg, p.Saving):
            self._saving_pending = msg.pending
            self._emit("status", "saving_pending" if msg.pending else "saved")
        elif isinstance(msg, p.Features):
            self._features(msg.features)
        self._pump()

    def _features(self, names: Sequence[str]) -> None:
        """What the server understands (``features``, right after ``welcome``): an undo/redo
        names what it brings back (T11 "Revivals") only to a server that knows ``revive`` (an
        older one refuses the field: its batches are plain inserts)."""
        if isinstance(self._state, ThinDocState):
            self._state.revive = "revive" in names

    def _checksum(self, state: ThinDocState, msg: p.Checksum) -> None:
        """Tell the server about each node that failed the checksum; the core then rejoins."""
        for node in state.on_checksum(msg):
            log.warning("%s diverged at version %d: resync", node, msg.version, extra=self._ids())
            self._send(p.Diverged(doc=self.doc_id, version=msg.version, node=node))
            self._connected = False
            self._emit("diverged", {"node": node, "version": msg.version})

    def _changes(self, ops: builtins.list[Any], origin: Origin) -> None:
        state = self._state
        for op in ops:
            wire = op if isinstance(state, ThinDocState) else state.change_to_wire(op)
            self._emit("change", ChangeEvent(self.doc_id, wire, origin))

    def _joined(self, msg: p.Joined) -> None:
        state = self._state
        self._changes(state.on_joined(msg), "snapshot")
        self._joining = False
        self._attempt = 0
        self._presence = {e.session: e for e in msg.presence}
        self.chat._learn(msg.chat)
        if state.rejoin_needed:
            return  # the core refused what it got (a version mismatch): _pump rejoins
        self._connected = True
        if self._my_presence is not None:
            self._send(self._my_presence)
        if self._ready is not None and not self._ready.done():
            self._ready.set_result(None)
        self._notify()
        self._emit("status", "connected")
        self._emit("presence", self.presence)

    def _error(self, msg: p.Error) -> None:
        err = ServerError(msg)
        log.info("server error: %s", err, extra=self._ids())
        if msg.code is p.ErrorCode.UNAUTHORIZED or (
            self._joining and msg.edit_id is None and msg.code in FATAL_JOIN_CODES
        ):
            raise _Fatal(err)
        if self._joining and msg.edit_id is None and msg.code is p.ErrorCode.ROOM_FULL:
            raise _Retry(err)
        if self._joining and msg.edit_id is None:
            self._joining = False  # the join was refused; the core decides whether to rejoin
        state = self._state
        action: str
        if isinstance(state, ThinDocState):
            outcome = state.on_error(msg)
            action = outcome.action
            self._changes(outcome.changes, "undo")
        else:
            action = state.on_error(msg)
            if action == "rejected":
                self._refused = err
        if action == "retry":
            self._pump_later(RETRY_EDIT_DELAY_S)
        elif action == "rejoin":
            self._connected = False
        self._notify()
        self._emit("error", err)


__all__ = [
    "ChangeEvent",
    "ChatChannel",
    "DocumentSession",
    "Mode",
    "_Retry",
    "_decode",
    "_encode",
    "websocket_url",
]
