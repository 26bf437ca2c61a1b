"""The SDK's Yjs client: a Yjs document of a cowrite server as a live ``pycrdt.Doc``.

``open_yjs(url, doc)`` speaks the Hocuspocus dialect (``docs/yjs.md``) at ``/hocuspocus``, so a
Python program edits the same rich-text (or any Yjs) document as the Tiptap page and every other
Yjs editor::

    async with cowrite.client.open_yjs("ws://127.0.0.1:8000", "notes", token=t) as ydoc:
        body = ydoc.doc.get("default", type=pycrdt.XmlFragment)
        body.children.append(pycrdt.XmlElement("paragraph", None, [pycrdt.XmlText("Hi")]))
        await ydoc.saved()          # every local change so far is durable on the server

How it works: the session observes the ``pycrdt.Doc``'s transactions; each local transaction's
update goes out as a sync update (coalesced with the others of the same loop turn), remote updates
are applied under a guard so they are never sent back. The server answers each update (and each
sync step 2) with one SyncStatus once it is durable: ``saved()`` returns when every local change is
inside an upload the server acknowledged that way. After a lost connection the session reconnects
with backoff and resyncs by state vector (sync step 1 / 2 both ways), which also uploads whatever
was edited offline; remote updates that arrive before the server's step 2 are held until it has
been applied.

Errors (``cowrite.client.errors``): ``PermissionDenied`` (a refused token, a document of the
native kind, an unknown document for a read-only token) fails ``open`` or, later, ``saved()``;
``ReadOnlyError`` from ``saved()`` (and from leaving the ``async with`` block) when local changes
cannot be saved because the token grants reading only (local changes are kept locally but never
sent) or because the server refused them (``SyncStatus(false)``).

Awareness (presence): ``set_awareness(state)`` publishes this client's state (a JSON value; by
convention ``{"user": {"name": ..., "color": "#rrggbb"}}`` as Tiptap's carets read it), renewed
every 15 s like y-protocols; ``awareness`` holds the other clients' states by Yjs client id; the
``"awareness"`` event fires on each change. Events (``session.on(name, callback)``):
``"status"`` (``"connected"``, ``"disconnected"``, ``"closed"``), ``"awareness"`` (the dict),
``"chat"`` (a ``protocol.ChatMessage``: the document's chat rides on Stateless messages;
``send_chat(text)``, ``chat_messages``), ``"stateless"`` (any Stateless payload string),
``"error"`` (a ``ReadOnlyError`` for a refused change, a ``ClientError`` for a refused chat
message).

Caller's contract: every method runs on the event loop that opened the session; edit ``doc``
from that loop (pycrdt documents are not thread-safe). ``open`` returns once the server's state
is merged into ``doc`` (``ConnectionError`` after ``connect_timeout_s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import urllib.parse
from typing import Any, Literal, TypeAlias, get_args

import pycrdt
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from cowrite import protocol as p
from cowrite.client.errors import (
    ClientError,
    NotSynced,
    PermissionDenied,
    ReadOnlyError,
    SessionClosed,
)
from cowrite.client.session_events import Callback, SessionEvents
from cowrite.client.yjs_frames import YjsFrames, _Fatal
from cowrite.yjs import messages as m
from cowrite.yjs.awareness import (
    OUTDATED_TIMEOUT_S,
    AwarenessEntry,
    AwarenessTable,
    encode_update,
)
from cowrite.yjs.lib0 import YjsProtocolError

log = logging.getLogger("cowrite.client.yjs")

YjsEvent: TypeAlias = Literal["status", "awareness", "chat", "stateless", "error"]

AWARENESS_RENEW_S = 15.0
"""How often the local awareness state is renewed (y-protocols: peers drop it after 30 s)."""
# Close codes after which reconnecting would only repeat the failure: our frames are malformed
# or too large (1002, 1003, 1009); no valid token, no right, or a document of the other kind
# (4401, 4403), a token that expired (4001); the document was deleted (4404: reconnecting with
# the write right would create it again, from our copy).
_BROKEN_CLOSE_CODES = frozenset({1002, 1003, 1009})
_DENIED_CLOSE_CODES = frozenset({4001, 4401, 4403})
_GONE_CLOSE_CODES = frozenset({4404})


def hocuspocus_url(url: str) -> str:
    """``url`` as the Hocuspocus endpoint: ``http(s)`` becomes ``ws(s)``; a path not ending in
    ``/hocuspocus`` gets it appended (``/ws`` and ``/yjs``, the server's other endpoints, are
    replaced).

    So ``ws://127.0.0.1:8000``, ``http://127.0.0.1:8000/ws`` and a mount prefix such as
    ``ws://host/collab`` mean ``.../hocuspocus`` there.
    """
    parts = urllib.parse.urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    path = parts.path.rstrip("/")
    if not path.endswith("/hocuspocus"):
        for other in ("/ws", "/yjs"):
            path = path.removesuffix(other)
        path += "/hocuspocus"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, parts.fragment))


def _closed_for_good(exc: ConnectionClosed, name: str) -> BaseException | None:
    """The error to fail with when the server's close code says a reconnect cannot help."""
    code = exc.rcvd.code if exc.rcvd is not None else None
    reason = exc.rcvd.reason if exc.rcvd is not None else ""
    if code in _DENIED_CLOSE_CODES:
        return PermissionDenied(reason or f"closed with {code}", name)
    if code in _GONE_CLOSE_CODES:
        return SessionClosed(f"the server closed {name!r}: {reason or code}")
    if code in _BROKEN_CLOSE_CODES:
        return ConnectionError(
            f"the server refused what this client sent: close {code} {reason}".rstrip()
        )
    return None


class _Retry(Exception):
    """Drop this connection and reconnect after a backoff."""


class YjsSession(SessionEvents[YjsEvent], YjsFrames):
    """One Yjs document of a cowrite server, live in ``doc`` (see the module docstring).

    Made by ``open_yjs``; use it as ``async with open_yjs(...) as ydoc``.
    """

    _EVENTS = get_args(YjsEvent)

    def __init__(
        self,
        url: str,
        doc: str,
        *,
        token: str | None = None,
        document: pycrdt.Doc[Any] | None = None,
        awareness: Any = None,
        reconnect: bool = True,
        backoff_base_s: float = 0.25,
        backoff_max_s: float = 10.0,
        connect_timeout_s: float = 10.0,
        flush_timeout_s: float = 10.0,
        max_message_bytes: int = 64 * 1024 * 1024,
        rng: random.Random | None = None,
    ) -> None:
        self.url = hocuspocus_url(url)
        self.name = doc
        self.doc: pycrdt.Doc[Any] = document if document is not None else pycrdt.Doc()
        """The live document: read and edit it (remote changes are merged into it)."""
        self._token = token or ""
        self._reconnect = reconnect
        self._backoff = (backoff_base_s, backoff_max_s)
        self._connect_timeout_s = connect_timeout_s
        self._flush_timeout_s = flush_timeout_s
        self._max_message_bytes = max_message_bytes
        self._rng = rng or random.Random()
        self._listeners: dict[str, list[Callback]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: asyncio.Task[None] | None = None
        self._ready: asyncio.Future[None] | None = None
        self._progress = asyncio.Event()
        self._closed = False
        self._fatal: BaseException | None = None
        self._last_error: BaseException | None = None
        self._attempt = 0
        # --- per connection
        self._ws: ClientConnection | None = None
        self._outbox: asyncio.Queue[bytes] | None = None
        self._connected = False
        self._got_state = False  # the server's sync step 2 is applied
        self._uploaded = False  # our sync step 2 (everything the server lacked) is sent
        self._held: list[bytes] = []  # remote updates that came before the server's step 2
        self._outstanding = 0  # uploads sent, SyncStatus not received yet
        self._pending: list[bytes] = []  # local updates not sent yet
        self._flush_scheduled = False
        # Local changes exist that no acknowledged upload covers yet (a document handed in may
        # hold changes the server lacks).
        self._unsaved = document is not None and self.doc.get_state() != b"\x00"
        # --- rights
        self.read_only: bool | None = None
        """True when the token grants reading only (None until the server said)."""
        self._unsendable = False  # local changes made while read-only
        self._refused = 0  # SyncStatus(false) received
        # --- awareness
        self._aw_state: str | None = None if awareness is None else json.dumps(awareness)
        self._aw_clock = 0 if awareness is None else 1
        self._aw_table = AwarenessTable()
        # --- chat
        self.chat_messages: list[p.ChatMessage] = []
        """The document's chat, oldest first: the last 50 when a connection attaches, then
        every message sent (at most ``MAX_CHAT_KEPT``, the newest)."""
        self.chat_has_more = False
        """Older messages exist than the first of ``chat_messages`` (REST ``/chat`` has them)."""
        self._applying_remote = False
        self._sub = self.doc.observe(self._on_transaction)

    # ------------------------------------------------------------------ reading

    @property
    def client_id(self) -> int:
        """This document's Yjs client id (its key in everyone's awareness)."""
        return self.doc.client_id

    @property
    def connected(self) -> bool:
        """True while attached to the document over a live connection."""
        return self._connected

    @property
    def is_saved(self) -> bool:
        """Every local change so far is durable on the server (what ``saved()`` waits for)."""
        return not self._unsaved and not self._unsendable and not self._refused

    def _settled(self) -> bool:
        """Everything local is inside uploads of this connection, all acknowledged."""
        return self._connected and self._uploaded and not self._pending and self._outstanding == 0

    @property
    def awareness(self) -> dict[int, Any]:
        """The other clients' awareness states (JSON values) by Yjs client id."""
        return {
            c: json.loads(s) for c, s in self._aw_table.states().items() if c != self.doc.client_id
        }

    @property
    def local_awareness(self) -> Any:
        """This client's awareness state (None when unset)."""
        return None if self._aw_state is None else json.loads(self._aw_state)

    async def saved(self, timeout_s: float | None = None) -> None:
        """Wait until every local change made so far is durable on the server.

        Raises ``ReadOnlyError`` when some cannot be (read-only token, or refused by the server),
        ``PermissionDenied`` if the server stopped granting access, ``SessionClosed`` if the
        session closes first, TimeoutError after ``timeout_s``.
        """
        async with asyncio.timeout(timeout_s):
            while True:
                self._check_open()
                self._check_writable()
                if self.is_saved:
                    return
                await self._progress.wait()

    # ------------------------------------------------------------------ awareness, stateless

    def set_awareness(self, state: Any) -> None:
        """Publish this client's awareness state (any JSON value; None removes it)."""
        self._aw_state = None if state is None else json.dumps(state)
        self._aw_clock += 1
        self._send_awareness()

    def send_chat(self, text: str, name: str = "") -> None:
        """Post a chat message (the server needs the ``chat`` right; ``name`` is the author's
        display name when the token names nobody). It comes back as a ``"chat"`` event; a refusal
        as an ``"error"`` event. Dropped while disconnected."""
        if not text:
            raise ValueError("a chat message has text")
        self.send_stateless(json.dumps({"type": "cowrite.chat.send", "text": text, "name": name}))

    def send_stateless(self, payload: str) -> None:
        """Send a Hocuspocus Stateless message (dropped while disconnected)."""
        if self._connected:
            self._send(m.encode_hocuspocus(m.HStateless(self.name, payload)))

    def _awareness_frame(self) -> bytes:
        entry = AwarenessEntry(self.doc.client_id, self._aw_clock, self._aw_state)
        return m.encode_hocuspocus(m.HAwareness(self.name, encode_update([entry])))

    def _send_awareness(self) -> None:
        if self._outbox is not None and (self._aw_state is not None or self._aw_clock > 0):
            self._send(self._awareness_frame())

    # ------------------------------------------------------------------ events

    def _ids(self) -> dict[str, object]:
        return {"doc": self.name}

    def _notify(self) -> None:
        self._progress.set()
        self._progress = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> None:
        """Connect, authenticate and merge the server's state; returns once ``doc`` holds it."""
        if self._runner is not None:
            raise ClientError("the session is already open")
        self._loop = asyncio.get_running_loop()
        self._ready = self._loop.create_future()
        self._runner = asyncio.create_task(self._run(), name=f"cowrite-yjs:{self.name}")
        try:
            async with asyncio.timeout(self._connect_timeout_s):
                await asyncio.shield(self._ready)
        except TimeoutError:
            await self.close(flush=False)
            last = self._last_error
            raise ConnectionError(
                f"could not open {self.name!r} at {self.url} within {self._connect_timeout_s}s"
                + (f": {last}" if last is not None else ": the server did not answer")
            ) from last
        except BaseException:
            await self.close(flush=False)
            raise

    async def close(self, *, flush: bool = True) -> None:
        """Close the session. With ``flush``, first wait up to ``flush_timeout_s`` for local
        changes to be durable: raises ``ReadOnlyError`` if they cannot be, ``NotSynced`` if they
        are not (they stay in ``doc``, which can be handed to a new session)."""
        if self._closed:
            return
        error: ClientError | None = None
        if flush and self._runner is not None:
            if self._fatal is None and self._unsaved:
                with contextlib.suppress(
                    ReadOnlyError, TimeoutError, SessionClosed, PermissionDenied
                ):
                    await self.saved(self._flush_timeout_s)
            try:
                self._check_writable()
            except ReadOnlyError as exc:
                error = exc
            if error is None and self._unsaved:
                error = NotSynced(f"closed {self.name!r} with changes the server has not saved")
        ws = self._ws
        if ws is not None and self._connected and self._aw_state is not None:
            # Tell the others at once that we left (the server would after the close too).
            self._aw_clock += 1
            removal = AwarenessEntry(self.doc.client_id, self._aw_clock, None)
            frame = m.encode_hocuspocus(m.HAwareness(self.name, encode_update([removal])))
            with contextlib.suppress(WebSocketException, OSError):
                await ws.send(frame)
        self._closed = True
        self._notify()
        if ws is not None:
            with contextlib.suppress(WebSocketException, OSError):
                await ws.close()  # a clean close (1000); the runner then returns
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._tasks):
            task.cancel()
        with contextlib.suppress(ValueError):
            self.doc.unobserve(self._sub)
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(SessionClosed("closed before opening"))
            self._ready.exception()
        if self._fatal is None:
            self._emit("status", "closed")
        if error is not None:
            raise error

    def _check_open(self) -> None:
        fatal = self._fatal
        if isinstance(fatal, PermissionDenied):
            raise PermissionDenied(fatal.reason, self.name) from fatal
        if fatal is not None:
            raise SessionClosed(f"the session failed: {fatal}") from fatal
        if self._closed:
            raise SessionClosed("the session is closed")

    def _check_writable(self) -> None:
        if self._unsendable:
            raise ReadOnlyError(
                f"{self.name!r} is read-only for this token: local changes cannot be saved"
            )
        if self._refused:
            raise ReadOnlyError(f"the server refused {self._refused} change(s) to {self.name!r}")

    def _fail(self, exc: BaseException) -> None:
        self._fatal = exc
        self._connected = False
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(exc)
        self._notify()
        self._emit("status", "closed")

    # ------------------------------------------------------------------ the connection loop

    async def _run(self) -> None:
        while not self._closed:
            try:
                async with ws_connect(
                    self.url,
                    open_timeout=self._connect_timeout_s,
                    max_size=self._max_message_bytes,
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
                never_opened = self._ready is not None and not self._ready.done()
                if never_opened and 400 <= r.status_code < 500 and r.status_code not in (408, 429):
                    self._fail(  # this URL is wrong: retrying cannot help
                        ConnectionError(
                            f"{self.url} refused the WebSocket: HTTP {r.status_code} "
                            f"{r.reason_phrase} (the endpoint is /hocuspocus)"
                        )
                    )
                    return
                self._last_error = exc
                log.info("connection to %s refused: %s", self.url, exc)
            except ConnectionClosed as exc:
                self._last_error = exc
                fatal = _closed_for_good(exc, self.name)
                if fatal is not None:
                    self._fail(fatal)
                    return
                log.info("connection to %s closed: %r", self.url, exc)
            except (OSError, TimeoutError, WebSocketException, _Retry) as exc:
                self._last_error = exc
                log.info("connection to %s lost: %r", self.url, exc)
            except Exception as exc:
                log.exception("Yjs session failed")
                self._fail(exc)
                return
            finally:
                self._disconnected()
            if self._closed:
                return
            if not self._reconnect:
                self._fail(ConnectionError(f"connection to {self.url} lost"))
                return
            base, cap = self._backoff
            delay = min(cap, base * 2**self._attempt) * self._rng.uniform(0.5, 1.0)
            self._attempt += 1
            await asyncio.sleep(delay)

    def _disconnected(self) -> None:
        self._ws = None
        self._outbox = None
        self._got_state = self._uploaded = False
        self._held.clear()
        self._outstanding = 0
        self._pending.clear()  # the next sync step 2 carries them
        had_others = bool(self.awareness)
        self._aw_table = AwarenessTable()  # nobody will tell us who left meanwhile
        if self._connected:
            self._connected = False
            self._emit("status", "disconnected")
        if had_others:
            self._emit("awareness", {})
        self._notify()

    async def _serve(self, ws: ClientConnection) -> None:
        self._ws = ws
        outbox: asyncio.Queue[bytes] = asyncio.Queue()
        self._outbox = outbox
        # As the provider: the token, our state vector and our awareness, without waiting (the
        # server holds the others until the token is checked).
        self._send(m.encode_hocuspocus(m.HAuthToken(self.name, self._token)))
        self._send(m.encode_hocuspocus(m.HSync(self.name, m.SyncStep1(self.doc.get_state()))))
        self._send_awareness()
        writer = asyncio.create_task(self._writer(ws, outbox))
        renew = asyncio.create_task(self._renew_awareness())
        try:
            while True:
                frame = await ws.recv()
                if isinstance(frame, str):
                    log.warning("ignoring a text frame on the Hocuspocus endpoint")
                    continue
                try:
                    msg = m.decode_hocuspocus(frame, self._max_message_bytes)
                except YjsProtocolError as exc:
                    raise _Retry(f"undecodable frame from the server: {exc}") from None
                self._handle(msg)
                if writer.done():
                    writer.result()
                    return
        finally:
            for task in (writer, renew):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, WebSocketException, OSError):
                    await task

    async def _writer(self, ws: ClientConnection, outbox: asyncio.Queue[bytes]) -> None:
        while True:
            await ws.send(await outbox.get())

    async def _renew_awareness(self) -> None:
        assert self._loop is not None
        while True:
            await asyncio.sleep(AWARENESS_RENEW_S)
            if self._aw_state is not None:
                self._aw_clock += 1
                self._send_awareness()
            removal = self._aw_table.expire(self._loop.time(), OUTDATED_TIMEOUT_S)
            if removal is not None:
                self._emit("awareness", self.awareness)

    def _send(self, frame: bytes) -> None:
        if self._outbox is not None:
            self._outbox.put_nowait(frame)


__all__ = ["YjsSession", "hocuspocus_url"]
