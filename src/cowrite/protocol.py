"""The WebSocket wire protocol, version 1: typed messages, validated on entry.

Every client frame is one JSON object with a ``type`` tag; a server frame is one such object or
a JSON array of them (messages batched per tick, in order). The types below are the single source of
truth: ``docs/protocol.md`` explains them and ``docs/protocol.schema.json`` is generated from them
(``cowrite schema``). Decoding rejects unknown types, unknown fields, wrong types and oversize
values with an ``Error`` carrying a stable ``code`` (``ErrorCode``).

Positions count Unicode code points. Node ids are strings: ``"<kind>:<name>"`` for named roots
(``"text:body"``), ``"#<replica>.<seq>"`` for nested nodes.
"""

from __future__ import annotations

import re
import zlib
from enum import StrEnum
from typing import Annotated, Any, Literal

import msgspec

PROTOCOL_VERSION = 1

DocId = Annotated[
    str, msgspec.Meta(min_length=1, max_length=128, pattern=r"^(?!\.\.?$)[A-Za-z0-9._~-]+$")
]
"""1-128 of ``[A-Za-z0-9._~-]``, but not ``.`` or ``..`` (which mean something in paths)."""
NodeId = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
EditId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
ClientId = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^\x00]+$")]
"""Edit and client ids name stored edit keys: no NUL, which PostgreSQL text cannot hold."""
MAX_INT64 = 2**63 - 1
"""Every integer a client sends that can reach the store (versions, chat ids) is at most this:
stores keep signed 64-bit integers, and a larger one is refused here as ``bad_message``."""
Version = Annotated[int, msgspec.Meta(ge=0, le=MAX_INT64)]
ChatId = Annotated[int, msgspec.Meta(ge=1, le=MAX_INT64)]
Epoch = Annotated[str, msgspec.Meta(max_length=64)]
"""Names a numbering of versions: a thin client's version means something only with the
``epoch`` of the ``joined`` it came with (instances of a cluster number versions apart)."""
Text = Annotated[str, msgspec.Meta(max_length=10_000)]
Name = Annotated[str, msgspec.Meta(max_length=100)]
Fields = Annotated[dict[str, Any], msgspec.Meta(max_length=32)]


class ErrorCode(StrEnum):
    BAD_MESSAGE = "bad_message"  # not JSON, unknown type, missing/unknown field, wrong type
    TOO_LARGE = "too_large"  # frame over the size limit
    RATE_LIMITED = "rate_limited"  # too many edits per second
    UNAUTHORIZED = "unauthorized"  # missing, forged or expired token
    FORBIDDEN = "forbidden"  # the token does not grant that right on that document
    UNKNOWN_DOCUMENT = "unknown_document"
    UNKNOWN_NODE = "unknown_node"
    NOT_JOINED = "not_joined"  # a document message before join
    INVALID_EDIT = "invalid_edit"  # the edit does not fit the document
    STALE_VERSION = "stale_version"  # older than the retained history: rejoin (resync)
    FUTURE_VERSION = "future_version"  # a version the server never issued
    DOCUMENT_TOO_LARGE = "document_too_large"
    TOO_MANY_REPLICAS = "too_many_replicas"  # new replica ids in one sync or one document
    ROOM_FULL = "room_full"  # connections per document
    TOO_MANY_DOCUMENTS = "too_many_documents"  # joined by one connection, or loaded at once
    NOT_FOUND = "not_found"  # chat message
    EDIT_ID_REUSED = "edit_id_reused"  # an edit id already used for an edit with other content
    UNAVAILABLE = "unavailable"  # storage down: edits are not acknowledged
    INTERNAL = "internal"


class Message(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, omit_defaults=True):
    """Base of every message."""


# ------------------------------------------------------------------ edits


class SeqEdit(msgspec.Struct, tag="seq", tag_field="type", forbid_unknown_fields=True):
    """An index edit of a text or list node: retain n (>0), delete (-n), insert str or list."""

    node: NodeId
    edit: list[int | str | list[Any]]


class SetKey(msgspec.Struct, tag="set", tag_field="type", forbid_unknown_fields=True):
    """Write a map key (or a register when ``key`` is null). ``{"$new": kind}`` creates a node."""

    node: NodeId
    value: Any
    key: str | None = None


class DeleteKey(msgspec.Struct, tag="del", tag_field="type", forbid_unknown_fields=True):
    node: NodeId
    key: str


class CounterAdd(msgspec.Struct, tag="add", tag_field="type", forbid_unknown_fields=True):
    node: NodeId
    amount: int


EditOp = SeqEdit | SetKey | DeleteKey | CounterAdd


class Cursor(msgspec.Struct, forbid_unknown_fields=True):
    """A caret or selection in a text/list node: ``anchor``..``head`` as of edit ``version``."""

    node: NodeId
    anchor: Version
    head: Version
    version: Version | None = None


class User(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    id: str = ""
    name: Name = ""
    color: Name = ""
    fields: Fields = {}


class ChatMessage(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    id: int
    author_id: str
    author_name: str
    text: str
    created_ms: int
    edited_ms: int | None = None
    deleted: bool = False


class PresenceEntry(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    session: str
    user: User
    active: bool = True
    cursor: Cursor | None = None


# --------------------------------------------------------- client -> server


class Hello(Message, tag="hello"):
    """First message. ``client_id`` is stable across reconnects of one client (exactly-once)."""

    client_id: ClientId
    protocol: int = PROTOCOL_VERSION
    token: str | None = None
    user: User | None = None
    key: Annotated[str, msgspec.Meta(min_length=16, max_length=128)] | None = None
    """Without auth: a secret only this client knows (kept across reloads); the user id is a
    digest of it, so only its holder may edit or delete its chat messages. Without a key the
    user id lasts one connection."""


class Join(Message, tag="join"):
    """Open a document. Thin clients give the last ``version`` they saw (None: send a snapshot)
    and may give ``state``, the version vector of that version (built from ``joined.state`` and
    each ``remote``/``ack``'s ``vv``): a server that cannot catch them up by version (another
    epoch, history too old) then sends the exact changes since that state (``joined.ops``).
    Replicas give their version vector (``state``: replica id as a decimal string -> count)."""

    doc: DocId
    mode: Literal["thin", "replica"] = "thin"
    version: Version | None = None
    epoch: Epoch = ""
    """The ``epoch`` of the ``joined`` that ``version`` came with."""
    inflight: EditId | None = None
    """Thin: the ``edit_id`` of the batch sent and not acknowledged (it may have been applied)."""
    state: dict[str, Version] | None = None
    create: bool = False


class Leave(Message, tag="leave"):
    doc: DocId


class Revive(msgspec.Struct, forbid_unknown_fields=True):
    """Code points ``at..at+n`` that ``node``'s op inserts (counted in the order it inserts
    them) bring back code points ``of..of+n`` of those the sender's batch ``edit`` deleted of that
    node: as the server applied it, or, for this edit itself, as sent (``docs/protocol.md``, T11
    "Revivals"). The server inserts a revival at most once, and not after a restore."""

    node: NodeId
    at: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT64)]
    n: Annotated[int, msgspec.Meta(ge=1, le=10_000_000)]
    edit: EditId
    of: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT64)]


class Dropped(msgspec.Struct, forbid_unknown_fields=True):
    """Code points ``at..at+n`` that ``node``'s op inserts (as in ``Revive``) the server left
    out: their revival was not the sender's to make any more."""

    node: NodeId
    at: int
    n: int


class Edit(Message, tag="edit"):
    """A batch of edits made at ``version`` (thin clients hold one batch in flight)."""

    doc: DocId
    edit_id: EditId
    version: Version
    ops: Annotated[list[EditOp], msgspec.Meta(min_length=1, max_length=1000)]
    revive: Annotated[list[Revive], msgspec.Meta(max_length=100_000)] | None = None
    """What the batch's inserts bring back (an undo/redo; T11 "Revivals"); the ack says in
    ``dropped`` what was left out."""
    withdraw: Annotated[list[Dropped], msgspec.Meta(max_length=100_000)] | None = None
    """Inserted code points (as in ``Revive``) the sender takes back at a resend: its correction
    of them is queued behind (T11 "Revivals"); left out, and named in ``dropped``."""


class Sync(Message, tag="sync"):
    """A replica's CRDT delta (base64 of the engine's binary format)."""

    doc: DocId
    delta: str
    edit_id: EditId | None = None


class SetPresence(Message, tag="presence"):
    doc: DocId
    user: User | None = None
    cursor: Cursor | None = None
    active: bool | None = None


class ChatSend(Message, tag="chat_send"):
    doc: DocId
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]


class ChatEdit(Message, tag="chat_edit"):
    doc: DocId
    id: ChatId
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=10_000)]


class ChatDelete(Message, tag="chat_delete"):
    doc: DocId
    id: ChatId


class ChatHistory(Message, tag="chat_history"):
    doc: DocId
    before: ChatId | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50


class Pong(Message, tag="pong"):
    nonce: int = 0


class Diverged(Message, tag="diverged"):
    """The client's copy of ``node`` at ``version`` failed a ``checksum``: it resyncs (rejoins
    for a snapshot). The server only counts and logs it."""

    doc: DocId
    version: Version
    node: NodeId


class Reauth(Message, tag="reauth"):
    """A fresh token for this connection (same user): its rights replace the old token's on
    every joined document, and its ``exp`` ends the session from now on (``reauthed`` answers;
    a refused one is ``error unauthorized`` and the old token stays)."""

    token: str


ClientMessage = (
    Hello
    | Join
    | Leave
    | Edit
    | Sync
    | SetPresence
    | ChatSend
    | ChatEdit
    | ChatDelete
    | ChatHistory
    | Pong
    | Diverged
    | Reauth
)


# --------------------------------------------------------- server -> client


class Welcome(Message, tag="welcome"):
    session: str
    user: User
    protocol: int = PROTOCOL_VERSION
    heartbeat_s: float = 15.0
    auth: bool = False


class Features(Message, tag="features"):
    """What this server understands beyond the base protocol, sent right after ``welcome`` (a
    message of its own: a client older than a field of ``welcome`` would not read it). A client
    uses an optional part only when it is named here (``revive``: T11 "Revivals")."""

    features: list[str]


FEATURES = ("revive",)
"""The optional parts of the protocol this server understands (``Features``)."""


class Joined(Message, tag="joined"):
    """The document's state: thin clients get ``snapshot`` (node id -> value) at ``version``,
    replicas get ``delta`` (what they lack) and ``state`` (the server's version vector)."""

    doc: DocId
    mode: str
    version: Version
    rights: list[str]
    epoch: Epoch = ""
    """What numbers ``version``: a rejoin sends it back; another epoch's version gets a snapshot."""
    ops: list[EditOp] | None = None
    """Thin rejoin by ``state``: the changes from that state to ``version``, to be applied (and
    rebased over the client's unacknowledged edits) like a ``remote``."""
    acked: EditId | None = None
    """The client's in-flight batch (``join.inflight``) was applied and ``snapshot`` holds it:
    count it acknowledged (nothing to resend). Earlier servers sent it with ``ops`` (the changes
    since that state plus that batch)."""
    snapshot: dict[str, Any] | None = None
    roots: dict[str, str] | None = None
    delta: str | None = None
    state: dict[str, int] | None = None
    presence: list[PresenceEntry] = []
    chat: list[ChatMessage] = []


class Ack(Message, tag="ack"):
    """The edit is applied and durable. ``created``: ids of nodes its ``{"$new": kind}`` made."""

    doc: DocId
    edit_id: EditId
    version: Version
    created: list[str] = []
    vv: dict[str, int] = {}
    """Version vector entries this version changed (thin clients track their state's vector)."""
    dropped: list[Dropped] = []
    """What the server left out of the edit's revivals (``edit.revive``): the op it applied
    (and broadcast) is the edit without those inserted code points."""


class Remote(Message, tag="remote"):
    """Edits by others (or catch-up), rebased to apply at ``version - 1``; ``version`` is after."""

    doc: DocId
    version: Version
    ops: list[EditOp]
    client_id: str = ""
    edit_id: str = ""
    vv: dict[str, int] = {}
    """Version vector entries this version changed."""


class RemoteSync(Message, tag="remote_sync"):
    doc: DocId
    delta: str
    version: Version


class Presence(Message, tag="presence_update"):
    doc: DocId
    entries: list[PresenceEntry] = []
    left: list[str] = []


class Chat(Message, tag="chat"):
    doc: DocId
    message: ChatMessage


class ChatPage(Message, tag="chat_page"):
    doc: DocId
    messages: list[ChatMessage]
    has_more: bool


class Error(Message, tag="error"):
    code: ErrorCode
    message: str
    doc: str | None = None
    edit_id: str | None = None


class Resync(Message, tag="resync"):
    """The client must rejoin ``doc`` (its outbox overflowed or its version is too old)."""

    doc: DocId
    reason: str


class Saving(Message, tag="saving"):
    """Storage state of ``doc``: ``pending`` while edits cannot be made durable (the store is
    unavailable: nothing is acknowledged meanwhile), then ``pending: false`` once they are."""

    doc: DocId
    pending: bool


class Checksum(Message, tag="checksum"):
    """``sums``: text node id -> ``text_checksum`` of its value right after ``version`` (sent
    after that version's ``ack``/``remote`` now and then, not with every version)."""

    doc: DocId
    version: Version
    sums: dict[str, int]


class Ping(Message, tag="ping"):
    nonce: int = 0


class Reconnect(Message, tag="reconnect"):
    """The server is going away: reconnect after ``after_ms`` (to this or another instance)."""

    after_ms: int = 0
    reason: str = "shutdown"


class Reauthed(Message, tag="reauthed"):
    """The ``reauth`` token is accepted; ``expires_at`` (seconds since the epoch) ends the
    session now."""

    expires_at: float | None = None


class Rights(Message, tag="rights"):
    """This connection's rights on ``doc`` changed (a ``reauth``, or an administrator's
    downgrade): from now on edits (and chat) beyond ``rights`` are refused. Losing ``read``
    removes the connection from the document (it gets no more of its messages)."""

    doc: DocId
    rights: list[str]
    reason: str = ""


ServerMessage = (
    Welcome
    | Features
    | Joined
    | Ack
    | Remote
    | RemoteSync
    | Presence
    | Chat
    | ChatPage
    | Error
    | Resync
    | Saving
    | Checksum
    | Ping
    | Reconnect
    | Reauthed
    | Rights
)

client_decoder = msgspec.json.Decoder(ClientMessage)
server_decoder = msgspec.json.Decoder(ServerMessage)
encoder = msgspec.json.Encoder()


class ProtocolError(Exception):
    """A frame that cannot be accepted; ``code`` says why."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode_client(frame: bytes | str, max_bytes: int) -> ClientMessage:
    """Parse and validate one client frame; raises ProtocolError with the precise reason."""
    if len(frame) > max_bytes:
        raise ProtocolError(ErrorCode.TOO_LARGE, f"frame of {len(frame)} bytes exceeds {max_bytes}")
    try:
        message: ClientMessage = client_decoder.decode(frame)
    except msgspec.ValidationError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise ProtocolError(ErrorCode.BAD_MESSAGE, f"malformed JSON: {exc}") from None
    return message


_SURROGATE = re.compile("[\ud800-\udfff]")


def text_checksum(text: str) -> int:
    """The ``checksum`` of a text: CRC-32 (zlib's) of its UTF-8 bytes, a lone surrogate counting
    as U+FFFD (what JavaScript's ``TextEncoder`` does). Defined on code points, so a JavaScript
    string (UTF-16) and a Python ``str`` of the same text agree."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:  # never in a document (the server refuses lone surrogates)
        data = _SURROGATE.sub("\ufffd", text).encode("utf-8")
    return zlib.crc32(data)


def json_schema() -> dict[str, Any]:
    """JSON Schema of both directions, generated from the types above."""
    (client, server), defs = msgspec.json.schema_components([ClientMessage, ServerMessage])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": f"cowrite wire protocol v{PROTOCOL_VERSION}",
        "$defs": defs,
        "properties": {"client_to_server": client, "server_to_client": server},
    }
