"""The socket side of a session: one WebSocket at a time, reconnecting with backoff.

Why a module of its own: the reconnect loop, the handshake (``hello`` -> ``welcome``) and the one
writer task per connection are the only code in the SDK that owns a socket; keeping them apart from
the per-document logic (``connection.DocumentSession``) keeps each readable on its own.

Caller's contract: ``SessionTransport`` is a mixin for ``DocumentSession`` only. The session owns
the state it reads (declared below for the type checker) and supplies ``_handle`` (each server
message after ``welcome``), ``_emit``, ``_notify``, ``_check_open``, ``_progress_wait`` and
``_ids``. ``_run`` is the session's one runner task: it returns when the session closes or fails
(``_fail``), and calls ``_disconnected`` after every connection. ``_send`` queues on the current
connection's outbox and silently drops the message while disconnected (the core resends what
matters after the rejoin). The frame codec (``_decode``, ``_encode``) and ``websocket_url`` live
here too: they are what the socket speaks (``docs/protocol.md``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import urllib.parse
from collections import deque
from typing import TYPE_CHECKING, Any

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus, InvalidURI, WebSocketException

from cowrite import protocol as p
from cowrite.client.errors import ServerError, SessionClosed, refused_handshake

if TYPE_CHECKING:
    from collections.abc import Sequence

    from cowrite.client.replica import ReplicaDocState
    from cowrite.client.thin import ThinDocState

log = logging.getLogger("cowrite.client")

_frame_list = msgspec.json.Decoder(list[msgspec.Raw])


def silence_limit_s(heartbeat_s: float) -> float:
    """How long the server may stay silent before the connection counts as dead (half-open)
    and is reopened: the server pings every ``heartbeat_s`` (the welcome's, 30 s by default),
    so one heartbeat plus half of one (at least 10 s) for a late ping: 45 s at the default. The
    JavaScript client (``web/src/client.js``, ``silenceLimitMs``) uses the same rule."""
    return heartbeat_s + max(heartbeat_s / 2, 10.0)


class _Fatal(Exception):
    """Stop reconnecting: the session cannot work (bad credentials, no such document...)."""

    def __init__(self, error: ServerError) -> None:
        super().__init__(str(error))
        self.error = error


class _Retry(Exception):
    """Drop this connection and reconnect after a backoff."""


def _decode(frame: str | bytes) -> list[p.ServerMessage]:
    """A server frame: one message or a JSON array of them. Unknown messages are skipped."""
    data = frame.encode() if isinstance(frame, str) else frame
    raws = _frame_list.decode(data) if data.lstrip()[:1] == b"[" else [data]
    out: list[p.ServerMessage] = []
    for raw in raws:
        try:
            out.append(p.server_decoder.decode(raw))
        except msgspec.ValidationError as exc:
            log.warning("skipping a server message this client does not understand: %s", exc)
    return out


def _encode(msg: p.Message) -> str:
    return p.encoder.encode(msg).decode()


def websocket_url(url: str) -> str:
    """``url`` as the WebSocket endpoint: ``http(s)`` becomes ``ws(s)``, no path becomes ``/ws``.

    So ``ws://127.0.0.1:8000`` and ``http://127.0.0.1:8000`` both mean ``ws://127.0.0.1:8000/ws``.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path if parts.path not in ("", "/") else "/ws"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, parts.fragment))


class SessionTransport:
    """The connection loop of a ``DocumentSession`` (a mixin: see the module docstring)."""

    if TYPE_CHECKING:
        url: str
        client_id: str
        session_id: str | None
        user: p.User | None
        _token: str | None
        _key: str
        _hello_user: p.User
        _create: bool
        _reconnect: bool
        _backoff: tuple[float, float]
        _connect_timeout_s: float
        _max_message_bytes: int
        _rng: random.Random
        _state: ThinDocState | ReplicaDocState
        _outbox: asyncio.Queue[p.Message] | None
        _chat_pages: deque[asyncio.Future[p.ChatPage]]
        _loop: asyncio.AbstractEventLoop | None
        _ready: asyncio.Future[None] | None
        _tasks: set[asyncio.Task[Any]]
        _joining: bool
        _connected: bool
        _closed: bool
        _fatal: BaseException | None
        _last_error: BaseException | None
        _reconnect_after_s: float | None
        _heartbeat_s: float | None
        _attempt: int

        def _handle(self, msg: p.ServerMessage) -> None: ...
        def _features(self, names: Sequence[str]) -> None: ...
        def _emit(self, event: str, payload: Any) -> None: ...
        def _notify(self) -> None: ...
        def _check_open(self) -> None: ...
        async def _progress_wait(self) -> None: ...
        def _ids(self) -> dict[str, object]: ...

    # ------------------------------------------------------------ transport

    async def _run(self) -> None:
        while not self._closed:
            self._reconnect_after_s = None
            try:
                async with ws_connect(
                    self.url,
                    open_timeout=self._connect_timeout_s,
                    max_size=self._max_message_bytes,
                    # no WebSocket pings of our own (websockets' default: every 20 s): the
                    # server's heartbeat and ``silence_limit_s`` tell a dead link, and each
                    # ping would cost the server a frame through its parser and a pong
                    ping_interval=None,
                ) as ws:
                    await self._serve(ws)
            except _Fatal as exc:
                self._fail(exc.error)
                return
            except InvalidURI as exc:
                self._fail(exc)
                return
            except InvalidStatus as exc:
                r = exc.response
                refused = refused_handshake(
                    self.url, r.status_code, r.reason_phrase, bytes(r.body or b"")
                )
                if refused is not None and self._ready is not None and not self._ready.done():
                    self._fail(refused)  # never joined: this URL is wrong, retrying cannot help
                    return
                self._last_error = refused or exc
                log.info("connection to %s refused: %s", self.url, exc, extra=self._ids())
            except (OSError, TimeoutError, WebSocketException, _Retry) as exc:
                self._last_error = exc
                log.info("connection to %s lost: %r", self.url, exc, extra=self._ids())
            except Exception as exc:
                log.exception("client session failed", extra=self._ids())
                self._fail(exc)
                return
            finally:
                self._disconnected()
            if self._closed:
                return
            if not self._reconnect:
                self._fail(ConnectionError(f"connection to {self.url} lost"))
                return
            delay = self._reconnect_after_s
            if delay is None:
                base, cap = self._backoff
                delay = min(cap, base * 2**self._attempt) * self._rng.uniform(0.5, 1.0)
                self._attempt += 1
            await asyncio.sleep(delay)

    def _fail(self, exc: BaseException) -> None:
        self._fatal = exc
        self._connected = False
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(exc)
        self._fail_requests(SessionClosed(f"the session failed: {exc}"))
        self._notify()
        self._emit("status", "closed")

    def _disconnected(self) -> None:
        self._outbox = None
        self._joining = False
        self._state.on_disconnect()
        self._fail_requests(ConnectionError("the connection was lost"))
        if self._connected:
            self._connected = False
            self._emit("status", "disconnected")
        self._notify()

    def _fail_requests(self, exc: BaseException) -> None:
        while self._chat_pages:
            fut = self._chat_pages.popleft()
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # the caller may have given up already

    async def _serve(self, ws: ClientConnection) -> None:
        hello = p.Hello(
            client_id=self.client_id,
            token=self._token,
            user=self._hello_user,
            key=None if self._token else self._key,
        )
        await ws.send(_encode(hello))
        rest: list[p.ServerMessage] = []
        async with asyncio.timeout(self._connect_timeout_s):
            while True:
                msgs = _decode(await ws.recv())
                welcome = next((k for k, m in enumerate(msgs) if isinstance(m, p.Welcome)), None)
                for msg in msgs[: len(msgs) if welcome is None else welcome + 1]:
                    self._before_welcome(ws, msg)
                if welcome is not None:
                    rest = msgs[welcome + 1 :]
                    break
        outbox: asyncio.Queue[p.Message] = asyncio.Queue()
        self._outbox = outbox
        writer = asyncio.create_task(self._writer(ws, outbox))
        try:
            self._joining = True
            self._send(self._state.join_message(create=self._create))
            for msg in rest:
                self._handle(msg)
            while True:
                timeout = silence_limit_s(self._heartbeat_s) if self._heartbeat_s else None
                async with asyncio.timeout(timeout):
                    frame = await ws.recv()
                for msg in _decode(frame):
                    self._handle(msg)
                if self._reconnect_after_s is not None:
                    return
                if writer.done():
                    writer.result()
                    return
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, WebSocketException, OSError):
                await writer

    def _before_welcome(self, ws: ClientConnection, msg: p.ServerMessage) -> None:
        if isinstance(msg, p.Welcome):
            self.session_id = msg.session
            self.user = msg.user
            self._heartbeat_s = msg.heartbeat_s if msg.heartbeat_s > 0 else None
            self._features([])  # until its ``features`` message says more (an older server: none)
        elif isinstance(msg, p.Error):
            if msg.code in (p.ErrorCode.UNAUTHORIZED, p.ErrorCode.BAD_MESSAGE):
                raise _Fatal(ServerError(msg))
            raise _Retry(ServerError(msg))
        elif isinstance(msg, p.Ping):
            pong = asyncio.ensure_future(ws.send(_encode(p.Pong(nonce=msg.nonce))))
            self._tasks.add(pong)
            pong.add_done_callback(self._tasks.discard)
        elif isinstance(msg, p.Reconnect):
            self._reconnect_after_s = msg.after_ms / 1000
            raise _Retry("the server asked for a reconnect")

    async def _writer(self, ws: ClientConnection, outbox: asyncio.Queue[p.Message]) -> None:
        while True:
            msg = await outbox.get()
            await ws.send(_encode(msg))

    def _send(self, msg: p.Message) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(msg)

    async def _send_when_joined(self, msg: p.Message) -> None:
        while not self._connected:
            self._check_open()
            await self._progress_wait()
        self._send(msg)

    async def _request_chat_page(self, msg: p.ChatHistory, timeout_s: float) -> p.ChatPage:
        while not self._connected:
            self._check_open()
            await self._progress_wait()
        assert self._loop is not None
        fut: asyncio.Future[p.ChatPage] = self._loop.create_future()
        self._chat_pages.append(fut)
        self._send(msg)
        async with asyncio.timeout(timeout_s):
            return await fut
