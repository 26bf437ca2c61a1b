"""Per-connection protocol state machines for the y-websocket and Hocuspocus dialects (sans-I/O).

A session turns received frames into **actions** for the server shell to execute, in order:

- :class:`Send` a frame to this client;
- :class:`Persist` a validated update (already applied to the :class:`YjsDocument`): store it, then
  call ``session.durable(ticket)``, which returns the acknowledgement (Hocuspocus ``SyncStatus``)
  and the :class:`Broadcast` of the update to the document's other connections and instances;
- :class:`RelayAwareness` to the document's other connections (and instances);
- :class:`Authenticate` (Hocuspocus, when the authenticator answers :data:`PENDING`, and for a
  fresh token sent on an open document): call ``session.auth_result(address, result)`` later;
  :class:`Join`: load the document and call ``session.attach(address, shared)``;
  :class:`Leave`; :class:`StatelessReceived`;
- :class:`Close` the socket with a code and reason (always the last action).

**Ordering rule for the shell**: a ``Send`` must not go out before every ``Persist`` issued
earlier for the same document (by any session) is durable — the room's ordered pipeline does
exactly this — so that no client sees, in a sync step 2 or an acknowledgement, a change a crash
could undo.

Rights: a read-only Hocuspocus client gets ``SyncStatus(false)`` for its changes (``true`` for a
step 2 that adds nothing), exactly like the Hocuspocus server. The y-websocket dialect cannot say
"refused": a read-only client's changes are dropped, and the first time one carries something new
the client gets a y-protocols auth ``permission denied ("read-only")``, which providers log.
Closing instead would make the provider reconnect and resend the same step 2 forever.

Missing dependencies (an update referring to structs we lack): the update is refused and the
client is sent our sync step 1, so that it answers with a step 2 holding everything we lack; after
``max_resyncs`` such refusals in a row (or ``max_resyncs_total`` over the connection's life) the
connection is closed (1013: reconnect and resync). Updates refused while the client's answer to
our step 1 is on its way (typed while reconnecting) are expected: that step 2 carries what they
lack, so they neither count nor ask again (bounded by ``max_early_refusals``). A Hocuspocus client
gets
the ``SyncStatus(true)`` it is owed for the refused update once that step 2 is durable, so its
``unsyncedChanges`` count returns to zero.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from cowrite.yjs import messages as m
from cowrite.yjs.actions import (
    Action,
    Authenticate,
    Broadcast,
    Close,
    Join,
    Leave,
    Persist,
    RelayAwareness,
    Rights,
    Send,
    StatelessReceived,
)
from cowrite.yjs.awareness import AwarenessLimits, AwarenessTable, decode_update
from cowrite.yjs.document import MissingDependencies, YjsDocument
from cowrite.yjs.lib0 import YjsProtocolError

# Close codes (WebSocket standard ones, and Hocuspocus's 4xxx from @hocuspocus/common).
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_UNSUPPORTED: Final = 1003
CLOSE_POLICY: Final = 1008
CLOSE_TOO_BIG: Final = 1009
CLOSE_RESET: Final = 4205
CLOSE_OUT_OF_SYNC: Final = 1013
"""Reconnect and resync ("try again later"): not a 44xx code, which y-websocket 3 takes as final."""


@dataclass(frozen=True, slots=True)
class Denied:
    reason: str = "permission-denied"


class _Pending:
    """The authenticator's answer "I will tell you later" (see ``auth_result``)."""


PENDING: Final = _Pending()
AuthResult = Rights | Denied | _Pending
Authenticator = Callable[[str, str], AuthResult]


@dataclass(slots=True)
class SharedDoc:
    """What every connection to one document shares (the room's Yjs state)."""

    doc: YjsDocument = field(default_factory=YjsDocument)
    awareness: AwarenessTable = field(default_factory=AwarenessTable)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    max_frame_bytes: int = m.DEFAULT_MAX_FRAME_BYTES
    max_documents: int = 64
    max_held_messages: int = 256
    max_held_bytes: int = 4 * 1024 * 1024
    max_resyncs: int = 3  # missing-dependency refusals in a row
    # ...and over the connection's life: each refusal rebuilds the twin (O(document)).
    max_resyncs_total: int = 64
    # Refused updates that arrive while the client's answer to our step 1 is on its way (typed
    # while reconnecting: that step 2 carries what they lack), before the connection is closed.
    max_early_refusals: int = 256
    awareness: AwarenessLimits = field(default_factory=AwarenessLimits)


def _close_for(exc: YjsProtocolError) -> Close:
    if exc.code == "frame_too_large":
        return Close(CLOSE_TOO_BIG, exc.code)
    if exc.code == "limit":
        return Close(CLOSE_POLICY, f"limit: {exc.reason}"[:120])
    if exc.code == "unsupported_update":
        return Close(CLOSE_UNSUPPORTED, exc.reason[:120])
    return Close(CLOSE_PROTOCOL_ERROR, exc.code)


@dataclass(slots=True)
class _Stream:
    """Sync state of one (connection, document) pair, shared by both dialects."""

    document: str
    rights: Rights
    shared: SharedDoc
    resyncs: int = 0
    owed: int = 0  # SyncStatus(true) owed for updates refused for missing dependencies
    awaiting_step2: bool = False  # our step 1 is out: the client's step 2 will complete it
    early: int = 0  # refusals while awaiting_step2


@dataclass(slots=True)
class _Submitted:
    address: str
    update: bytes
    acks: int


class _Base:
    """Update, awareness and ticket handling common to both dialects."""

    def __init__(self, limits: SessionLimits | None, key: Hashable | None) -> None:
        self.limits = limits or SessionLimits()
        self.key: Hashable = key if key is not None else object()
        self._tickets = 0
        self._submitted: dict[int, _Submitted] = {}
        self._resyncs_total = 0
        self.closed = False

    def _ack(self, address: str, saved: bool) -> Send | None:
        return None

    def _sync_frame(self, address: str, msg: m.SyncMessage) -> bytes:
        raise NotImplementedError

    def _read_only_refusal(self, address: str, new: bool) -> list[Action]:
        raise NotImplementedError

    def _handle_sync(
        self, address: str, st: _Stream, msg: m.SyncMessage, reply: bool = False
    ) -> list[Action]:
        doc = st.shared.doc
        if isinstance(msg, m.SyncStep1):
            out: list[Action] = [
                Send(self._sync_frame(address, m.SyncStep2(doc.diff(msg.state_vector))))
            ]
            if not reply:
                out.append(Send(self._sync_frame(address, m.SyncStep1(doc.state_vector()))))
                st.awaiting_step2 = True
            return out
        awaited = st.awaiting_step2
        if isinstance(msg, m.SyncStep2):
            st.awaiting_step2 = False
            st.early = 0
        if st.rights is Rights.READ:
            covered = isinstance(msg, m.SyncStep2) and doc.covers(msg.update)
            return self._read_only_refusal(address, not covered)
        try:
            effective = doc.apply_client_update(msg.update)
        except MissingDependencies:
            if awaited and isinstance(msg, m.SyncUpdate):
                # typed while the connection came back: the step 2 on its way carries what it
                # lacks (and acknowledges it); asking again would only repeat that step 2
                st.early += 1
                self._resyncs_total += 1  # each rebuilds the twin: bounded over the life too
                if (
                    st.early > self.limits.max_early_refusals
                    or self._resyncs_total > self.limits.max_resyncs_total
                ):
                    return [Close(CLOSE_OUT_OF_SYNC, "missing_dependencies")]
                st.owed += 1
                return []
            st.resyncs += 1
            self._resyncs_total += 1
            if (
                st.resyncs > self.limits.max_resyncs
                or self._resyncs_total > self.limits.max_resyncs_total
            ):
                return [Close(CLOSE_OUT_OF_SYNC, "missing_dependencies")]
            st.owed += 1
            st.awaiting_step2 = True
            return [Send(self._sync_frame(address, m.SyncStep1(doc.state_vector())))]
        st.resyncs = 0
        acks, st.owed = 1 + st.owed, 0
        if effective is None:
            return [a for a in (self._ack(address, True),) * acks if a is not None]
        self._tickets += 1
        self._submitted[self._tickets] = _Submitted(address, effective, acks)
        return [Persist(self._tickets, st.document, effective)]

    def _handle_awareness(
        self, address: str, st: _Stream, update: bytes, now: float
    ) -> list[Action]:
        table = st.shared.awareness
        if table.ignores(update):  # (another client's renewal, echoed: nothing to do)
            return []
        entries = decode_update(update, table.limits)
        change = table.apply(entries, (self.key, address), now)
        if change.relay is None:
            return []
        return [RelayAwareness(st.document, change.relay, self.key, change.relayed)]

    def _leave_awareness(self, address: str, st: _Stream, now: float) -> list[Action]:
        removal = st.shared.awareness.remove_owner((self.key, address), now)
        return [] if removal is None else [RelayAwareness(st.document, removal, self.key)]

    def _stream_of(self, address: str) -> _Stream | None:
        raise NotImplementedError

    def durable(self, ticket: int) -> list[Action]:
        """The update of ``ticket`` is stored: acknowledge it and broadcast it."""
        sub = self._submitted.pop(ticket, None)
        if sub is None:
            return []
        st = self._stream_of(sub.address)
        document = st.document if st is not None else sub.address
        out: list[Action] = []
        if not self.closed:
            out += [a for a in (self._ack(sub.address, True),) * sub.acks if a is not None]
        out.append(Broadcast(document, sub.update, self.key))
        return out


# --- y-websocket ---------------------------------------------------------------------------------


class YWebsocketSession(_Base):
    """One y-websocket connection to one document, authenticated by the shell before it is made
    (the token is the ``token`` query parameter). Call :meth:`open` first."""

    def __init__(
        self,
        document: str,
        rights: Rights,
        shared: SharedDoc,
        limits: SessionLimits | None = None,
        key: Hashable | None = None,
    ) -> None:
        super().__init__(limits, key)
        self.document = document
        self._st = _Stream(document, rights, shared)
        self._warned_read_only = False

    def _stream_of(self, address: str) -> _Stream | None:
        return self._st

    def _sync_frame(self, address: str, msg: m.SyncMessage) -> bytes:
        return m.encode_ywebsocket(m.YSync(msg))

    def _read_only_refusal(self, address: str, new: bool) -> list[Action]:
        if not new or self._warned_read_only:
            return []
        self._warned_read_only = True
        return [Send(m.encode_ywebsocket(m.YPermissionDenied("read-only")))]

    def open(self) -> list[Action]:
        """The greeting: our sync step 1 and the awareness states we know."""
        out: list[Action] = [
            Send(self._sync_frame("", m.SyncStep1(self._st.shared.doc.state_vector())))
        ]
        self._st.awaiting_step2 = True
        full = self._st.shared.awareness.encode_full()
        if full is not None:
            out.append(Send(m.encode_ywebsocket(m.YAwareness(full))))
        return out

    def receive(self, frame: bytes, now: float = 0.0) -> list[Action]:
        """Handle one frame from the client."""
        if self.closed:
            return []
        try:
            msg = m.decode_ywebsocket(frame, self.limits.max_frame_bytes)
            if isinstance(msg, m.YSync):
                out = self._handle_sync("", self._st, msg.sync)
            elif isinstance(msg, m.YAwareness):
                out = self._handle_awareness("", self._st, msg.update, now)
            elif isinstance(msg, m.YQueryAwareness):
                full = self._st.shared.awareness.encode_full()
                out = [] if full is None else [Send(m.encode_ywebsocket(m.YAwareness(full)))]
            else:
                raise YjsProtocolError("unexpected_message", "auth messages go server -> client")
        except YjsProtocolError as exc:
            return self._fail(exc, now)
        if out and isinstance(out[-1], Close):
            out[-1:] = [*self._shutdown(now), out[-1]]
        return out

    def _fail(self, exc: YjsProtocolError, now: float) -> list[Action]:
        return [*self._shutdown(now), _close_for(exc)]

    def _shutdown(self, now: float) -> list[Action]:
        if self.closed:
            return []
        self.closed = True
        return self._leave_awareness("", self._st, now)

    def close(self, now: float = 0.0) -> list[Action]:
        """The socket closed: remove this connection's awareness states."""
        return self._shutdown(now)

    def update_frame(self, update: bytes) -> bytes:
        """The frame carrying another connection's (or instance's) update to this client."""
        return m.ywebsocket_update_frame(update)

    def awareness_frame(self, update: bytes) -> bytes:
        return m.encode_ywebsocket(m.YAwareness(update))


# --- Hocuspocus ----------------------------------------------------------------------------------


class _Phase(Enum):
    WAITING = 0  # no token yet: messages are held
    AUTHENTICATING = 1  # Authenticate action issued: held
    JOINING = 2  # Join action issued: held until attach()
    OPEN = 3


@dataclass(slots=True)
class _Address:
    document: str
    phase: _Phase = _Phase.WAITING
    rights: Rights = Rights.READ
    held: list[m.HocuspocusMessage] = field(default_factory=list)
    held_bytes: int = 0
    stream: _Stream | None = None


class HocuspocusSession(_Base):
    """One Hocuspocus connection, multiplexing documents by address (``name`` or
    ``name\\0sessionId``; replies use the address as received).

    Per address: the client's Auth token goes to ``authenticate(token, document)``; meanwhile its
    other messages are held (bounded over the connection: ``max_held_messages`` /
    ``max_held_bytes``, then the socket is closed 4205 as Hocuspocus does) and replayed, in
    order, by :meth:`attach` once the shell has loaded the document named by :class:`Join`.
    """

    def __init__(
        self,
        authenticate: Authenticator,
        limits: SessionLimits | None = None,
        key: Hashable | None = None,
    ) -> None:
        super().__init__(limits, key)
        self._authenticate = authenticate
        self._addresses: dict[str, _Address] = {}

    def _stream_of(self, address: str) -> _Stream | None:
        entry = self._addresses.get(address)
        return None if entry is None else entry.stream

    def _sync_frame(self, address: str, msg: m.SyncMessage) -> bytes:
        return m.encode_hocuspocus(m.HSync(address, msg))

    def _ack(self, address: str, saved: bool) -> Send | None:
        if address not in self._addresses:
            return None
        return Send(m.hocuspocus_sync_status_frame(address, saved))

    def _read_only_refusal(self, address: str, new: bool) -> list[Action]:
        ack = self._ack(address, not new)
        return [] if ack is None else [ack]

    def documents(self) -> dict[str, str]:
        """address -> document name, for the addresses this connection has opened."""
        return {a: e.document for a, e in self._addresses.items() if e.phase is _Phase.OPEN}

    # -- input ---------------------------------------------------------------------------------

    def receive(self, frame: bytes, now: float = 0.0) -> list[Action]:
        """Handle one frame from the client."""
        if self.closed:
            return []
        try:
            msg = m.decode_hocuspocus(frame, self.limits.max_frame_bytes)
            out = self._dispatch(msg, len(frame), now)
        except YjsProtocolError as exc:
            return [*self._shutdown(now), _close_for(exc)]
        if out and isinstance(out[-1], Close):
            out[-1:] = [*self._shutdown(now), out[-1]]
        return out

    def _dispatch(self, msg: m.HocuspocusMessage, size: int, now: float) -> list[Action]:
        if isinstance(msg, m.HPing):
            return [Send(m.PONG_FRAME)]
        if isinstance(msg, m.HPong):
            return []
        address = msg.address
        entry = self._addresses.get(address)
        if entry is None:
            if len(self._addresses) >= self.limits.max_documents:
                raise YjsProtocolError("limit", "too many documents on one connection")
            entry = self._addresses[address] = _Address(m.document_name(address))
        if isinstance(msg, m.HAuthToken):
            if entry.phase is _Phase.OPEN:  # a fresh token: the shell checks it (auth_result)
                return [Authenticate(address, entry.document, msg.token)]
            if entry.phase is not _Phase.WAITING:
                return []  # ignored while the first one is being checked
            return self._authenticate_address(address, entry, msg.token)
        if entry.phase is not _Phase.OPEN:
            held_bytes = sum(e.held_bytes for e in self._addresses.values())
            held = sum(len(e.held) for e in self._addresses.values())
            if (
                held + 1 > self.limits.max_held_messages
                or held_bytes + size > self.limits.max_held_bytes
            ):
                return [Close(CLOSE_RESET, "unauthenticated message queue limit exceeded")]
            entry.held.append(msg)
            entry.held_bytes += size
            return []
        return self._handle(address, entry, msg, now)

    def _authenticate_address(self, address: str, entry: _Address, token: str) -> list[Action]:
        result = self._authenticate(token, entry.document)
        if isinstance(result, _Pending):
            entry.phase = _Phase.AUTHENTICATING
            return [Authenticate(address, entry.document, token)]
        return self._settle(address, entry, result)

    def _settle(self, address: str, entry: _Address, result: Rights | Denied) -> list[Action]:
        if isinstance(result, Denied):
            # Forget everything about the address, so that a retry starts afresh.
            del self._addresses[address]
            return [Send(m.encode_hocuspocus(m.HPermissionDenied(address, result.reason)))]
        entry.phase = _Phase.JOINING
        entry.rights = result
        return [
            Send(m.encode_hocuspocus(m.HAuthenticated(address, result.value))),
            Join(address, entry.document, result),
        ]

    def auth_result(self, address: str, result: Rights | Denied) -> list[Action]:
        """The answer to an :class:`Authenticate` action. For an open document (a fresh token
        sent on it) the new rights apply from now on (``Authenticated`` with its scope), or,
        refused, the document is closed (``PermissionDenied``, then :class:`Leave`)."""
        entry = self._addresses.get(address)
        if self.closed or entry is None:
            return []
        if entry.phase is _Phase.OPEN:
            if isinstance(result, Denied):
                denied = Send(m.encode_hocuspocus(m.HPermissionDenied(address, result.reason)))
                return [denied, *self._leave(address, 0.0)]
            entry.rights = result
            if entry.stream is not None:
                entry.stream.rights = result
            return [Send(m.encode_hocuspocus(m.HAuthenticated(address, result.value)))]
        if entry.phase is not _Phase.AUTHENTICATING:
            return []
        return self._settle(address, entry, result)

    def join_failed(self, address: str, reason: str) -> list[Action]:
        """The document of a :class:`Join` cannot be opened (unknown, of another kind, full):
        the client is told ``PermissionDenied(reason)`` and the address is forgotten (its held
        messages dropped), so that a retry starts afresh."""
        entry = self._addresses.get(address)
        if self.closed or entry is None or entry.phase is not _Phase.JOINING:
            return []
        del self._addresses[address]
        return [Send(m.encode_hocuspocus(m.HPermissionDenied(address, reason)))]

    def attach(self, address: str, shared: SharedDoc, now: float = 0.0) -> list[Action]:
        """The document of a :class:`Join` is loaded: greet with the awareness states we know
        and replay the held messages."""
        entry = self._addresses.get(address)
        if self.closed or entry is None or entry.phase is not _Phase.JOINING:
            return []
        entry.phase = _Phase.OPEN
        entry.stream = _Stream(entry.document, entry.rights, shared)
        out: list[Action] = []
        full = shared.awareness.encode_full()
        if full is not None:
            out.append(Send(m.encode_hocuspocus(m.HAwareness(address, full))))
        held, entry.held, entry.held_bytes = entry.held, [], 0
        try:
            for msg in held:
                out += self._handle(address, entry, msg, now)
                if out and isinstance(out[-1], Close):
                    out[-1:] = [*self._shutdown(now), out[-1]]
                    return out
        except YjsProtocolError as exc:
            return [*out, *self._shutdown(now), _close_for(exc)]
        return out

    def _handle(
        self, address: str, entry: _Address, msg: m.HocuspocusMessage, now: float
    ) -> list[Action]:
        st = entry.stream
        assert st is not None
        if isinstance(msg, m.HSync):
            return self._handle_sync(address, st, msg.sync, reply=msg.reply)
        if isinstance(msg, m.HAwareness):
            return self._handle_awareness(address, st, msg.update, now)
        if isinstance(msg, m.HQueryAwareness):
            full = st.shared.awareness.encode_full()
            return [] if full is None else [Send(m.encode_hocuspocus(m.HAwareness(address, full)))]
        if isinstance(msg, m.HStateless) and not msg.broadcast:
            return [StatelessReceived(address, st.document, msg.payload)]
        if isinstance(msg, m.HClose):
            return self._leave(address, now)
        raise YjsProtocolError("unexpected_message", f"{type(msg).__name__} from a client")

    def _leave(self, address: str, now: float) -> list[Action]:
        entry = self._addresses.pop(address, None)
        if entry is None:
            return []
        if entry.stream is None:
            return []
        return [*self._leave_awareness(address, entry.stream, now), Leave(address, entry.document)]

    def detach(self, address: str, reason: str, now: float = 0.0) -> list[Action]:
        """The server closes one document of this connection (the socket stays open)."""
        if address not in self._addresses:
            return []
        close = Send(m.encode_hocuspocus(m.HClose(address, reason)))
        return [close, *self._leave(address, now)]

    def _shutdown(self, now: float) -> list[Action]:
        if self.closed:
            return []
        out: list[Action] = []
        for address in list(self._addresses):
            out += self._leave(address, now)
        self.closed = True
        return out

    def close(self, now: float = 0.0) -> list[Action]:
        """The socket closed: leave every document and remove this connection's awareness."""
        return self._shutdown(now)

    # -- output for other connections' events ---------------------------------------------------

    def update_frame(self, address: str, update: bytes) -> bytes:
        return m.hocuspocus_update_frame(address, update)

    def awareness_frame(self, address: str, update: bytes) -> bytes:
        return m.encode_hocuspocus(m.HAwareness(address, update))

    def stateless_frame(self, address: str, payload: str) -> bytes:
        return m.encode_hocuspocus(m.HStateless(address, payload))

    @staticmethod
    def ping_frame() -> bytes:
        return m.PING_FRAME


__all__ = [
    "CLOSE_OUT_OF_SYNC",
    "CLOSE_POLICY",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_RESET",
    "CLOSE_TOO_BIG",
    "CLOSE_UNSUPPORTED",
    "PENDING",
    "Action",
    "AuthResult",
    "Authenticate",
    "Authenticator",
    "Broadcast",
    "Close",
    "Denied",
    "HocuspocusSession",
    "Join",
    "Leave",
    "Persist",
    "RelayAwareness",
    "Rights",
    "Send",
    "SessionLimits",
    "SharedDoc",
    "StatelessReceived",
    "YWebsocketSession",
]
