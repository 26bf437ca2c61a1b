"""Typed messages of the two Yjs wire dialects, with strict decoders and encoders.

*y-websocket* (one socket per document): ``varUint(type) • body`` with 0 sync, 1 awareness,
2 auth (permission denied, server -> client), 3 query awareness.

*Hocuspocus* (several documents per socket): ``varString(address) • varUint(type) • body``; the
address is the document name, optionally followed by ``"\\0" + sessionId`` (a routing key, echoed
back unchanged). Types (``@hocuspocus/provider`` 4.8 ``MessageType``; 4 and 6 from the server's):
0 Sync, 1 Awareness, 2 Auth, 3 QueryAwareness, 4 SyncReply, 5 Stateless, 6 BroadcastStateless,
7 CLOSE, 8 SyncStatus. Ping (9) and Pong (10) are connection-level: a frame of exactly one byte,
no address.

Caller's contract: ``decode_*`` raise only :class:`YjsProtocolError` (unknown types included),
reject frames over ``max_frame_bytes`` before reading them, and reject trailing bytes;
``encode_*`` produce exactly what the JavaScript peers write.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from enum import IntEnum

from cowrite.yjs.lib0 import Decoder, Encoder, YjsProtocolError, encode_var_uint

DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024


class SyncType(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


class YMessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class HMessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3
    SYNC_REPLY = 4
    STATELESS = 5
    BROADCAST_STATELESS = 6
    CLOSE = 7
    SYNC_STATUS = 8
    PING = 9
    PONG = 10


class AuthType(IntEnum):
    TOKEN = 0
    PERMISSION_DENIED = 1
    AUTHENTICATED = 2


# --- the sync sub-protocol (y-protocols sync.js), shared by both dialects ------------------------


@dataclass(frozen=True, slots=True)
class SyncStep1:
    """The sender's state vector; the answer is a :class:`SyncStep2` with what it lacks."""

    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    """An update with everything the receiver lacked (the answer to a step 1)."""

    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    """An incremental update."""

    update: bytes


SyncMessage = SyncStep1 | SyncStep2 | SyncUpdate


def _read_sync(dec: Decoder) -> SyncMessage:
    kind = dec.read_var_uint()
    payload = dec.read_var_bytes()
    if kind == SyncType.STEP1:
        return SyncStep1(payload)
    if kind == SyncType.STEP2:
        return SyncStep2(payload)
    if kind == SyncType.UPDATE:
        return SyncUpdate(payload)
    raise YjsProtocolError("unknown_type", f"unknown sync message type {kind}")


def _write_sync(enc: Encoder, msg: SyncMessage) -> None:
    if isinstance(msg, SyncStep1):
        enc.write_var_uint(SyncType.STEP1).write_var_bytes(msg.state_vector)
    elif isinstance(msg, SyncStep2):
        enc.write_var_uint(SyncType.STEP2).write_var_bytes(msg.update)
    else:
        enc.write_var_uint(SyncType.UPDATE).write_var_bytes(msg.update)


# --- y-websocket -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class YSync:
    sync: SyncMessage


@dataclass(frozen=True, slots=True)
class YAwareness:
    """A raw awareness update (decode it with :func:`cowrite.yjs.awareness.decode_update`)."""

    update: bytes


@dataclass(frozen=True, slots=True)
class YQueryAwareness:
    pass


@dataclass(frozen=True, slots=True)
class YPermissionDenied:
    """y-protocols auth.js: the provider logs the reason (server -> client only)."""

    reason: str


YWebsocketMessage = YSync | YAwareness | YQueryAwareness | YPermissionDenied


def _check_size(frame: bytes, max_frame_bytes: int) -> None:
    if len(frame) > max_frame_bytes:
        raise YjsProtocolError(
            "frame_too_large", f"frame of {len(frame)} bytes (limit {max_frame_bytes})"
        )
    if not frame:
        raise YjsProtocolError("truncated", "empty frame")


def decode_ywebsocket(
    frame: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES
) -> YWebsocketMessage:
    """Decode one y-websocket frame (one message per frame, no trailing bytes)."""
    _check_size(frame, max_frame_bytes)
    fast = _ywebsocket_update(frame)
    if fast is not None:
        return fast
    dec = Decoder(frame)
    kind = dec.read_var_uint()
    msg: YWebsocketMessage
    if kind == YMessageType.SYNC:
        msg = YSync(_read_sync(dec))
    elif kind == YMessageType.AWARENESS:
        msg = YAwareness(dec.read_var_bytes())
    elif kind == YMessageType.QUERY_AWARENESS:
        msg = YQueryAwareness()
    elif kind == YMessageType.AUTH:
        sub = dec.read_var_uint()
        if sub != 0:
            raise YjsProtocolError("unknown_type", f"unknown auth message type {sub}")
        msg = YPermissionDenied(dec.read_var_string())
    else:
        raise YjsProtocolError("unknown_type", f"unknown y-websocket message type {kind}")
    dec.expect_end("y-websocket message")
    return msg


def _ywebsocket_update(frame: bytes) -> YSync | YAwareness | None:
    """A sync update frame of an update of < 128 bytes (every keystroke), or an awareness
    frame of < 128 bytes (every renewal and its echoes), read without a decoder; None for any
    other frame (the decoder reads it)."""
    if len(frame) > 1 and frame[0] == 1:  # awareness
        n = frame[1]
        return YAwareness(frame[2:]) if n < 0x80 and len(frame) == 2 + n else None
    n = frame[2] if len(frame) > 3 and frame[0] == 0 and frame[1] == 2 else 0x80  # sync, update
    if n < 0x80 and len(frame) == 3 + n:
        return YSync(SyncUpdate(frame[3:]))
    return None


def encode_ywebsocket(msg: YWebsocketMessage) -> bytes:
    enc = Encoder()
    if isinstance(msg, YSync):
        enc.write_var_uint(YMessageType.SYNC)
        _write_sync(enc, msg.sync)
    elif isinstance(msg, YAwareness):
        enc.write_var_uint(YMessageType.AWARENESS).write_var_bytes(msg.update)
    elif isinstance(msg, YQueryAwareness):
        enc.write_var_uint(YMessageType.QUERY_AWARENESS)
    else:
        enc.write_var_uint(YMessageType.AUTH).write_var_uint(0).write_var_string(msg.reason)
    return enc.to_bytes()


# --- Hocuspocus --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HSync:
    """Sync (type 0), or SyncReply (type 4) when ``reply``: a step 1 that must not be answered
    with another step 1."""

    address: str
    sync: SyncMessage
    reply: bool = False


@dataclass(frozen=True, slots=True)
class HAwareness:
    address: str
    update: bytes


@dataclass(frozen=True, slots=True)
class HAuthToken:
    """Client -> server: the token (``provider_version`` follows in 4.x providers)."""

    address: str
    token: str
    provider_version: str | None = None


@dataclass(frozen=True, slots=True)
class HAuthTokenRequest:
    """Server -> client: "send your token again" (Auth/Token with no body)."""

    address: str


@dataclass(frozen=True, slots=True)
class HPermissionDenied:
    address: str
    reason: str


@dataclass(frozen=True, slots=True)
class HAuthenticated:
    """``scope`` is ``"read-write"`` or ``"readonly"``."""

    address: str
    scope: str


@dataclass(frozen=True, slots=True)
class HQueryAwareness:
    address: str


@dataclass(frozen=True, slots=True)
class HStateless:
    """Application-defined payload; ``broadcast`` is type 6 (server-internal, never from a
    client)."""

    address: str
    payload: str
    broadcast: bool = False


@dataclass(frozen=True, slots=True)
class HClose:
    address: str
    reason: str


@dataclass(frozen=True, slots=True)
class HSyncStatus:
    """Server -> client: the answer to one update, ``saved`` once it is durable."""

    address: str
    saved: bool


@dataclass(frozen=True, slots=True)
class HPing:
    pass


@dataclass(frozen=True, slots=True)
class HPong:
    pass


HocuspocusMessage = (
    HSync
    | HAwareness
    | HAuthToken
    | HAuthTokenRequest
    | HPermissionDenied
    | HAuthenticated
    | HQueryAwareness
    | HStateless
    | HClose
    | HSyncStatus
    | HPing
    | HPong
)

PING_FRAME = bytes([HMessageType.PING])
PONG_FRAME = bytes([HMessageType.PONG])


def document_name(address: str) -> str:
    """The document of a Hocuspocus address (``name`` or ``name\\0sessionId``)."""
    return address.split("\0", 1)[0]


def _read_auth(dec: Decoder, address: str, max_string: int) -> HocuspocusMessage:
    sub = dec.read_var_uint()
    if sub == AuthType.TOKEN:
        if dec.at_end():
            return HAuthTokenRequest(address)
        token = dec.read_var_string(max_string)
        version = dec.read_var_string(256) if not dec.at_end() else None
        return HAuthToken(address, token, version)
    if sub == AuthType.PERMISSION_DENIED:
        return HPermissionDenied(address, dec.read_var_string(max_string))
    if sub == AuthType.AUTHENTICATED:
        return HAuthenticated(address, dec.read_var_string(max_string))
    raise YjsProtocolError("unknown_type", f"unknown auth message type {sub}")


def decode_hocuspocus(
    frame: bytes, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, max_address_bytes: int = 1024
) -> HocuspocusMessage:
    """Decode one Hocuspocus frame (either direction); see the module contract."""
    _check_size(frame, max_frame_bytes)
    if len(frame) == 1 and frame[0] in (HMessageType.PING, HMessageType.PONG):
        return HPing() if frame[0] == HMessageType.PING else HPong()
    fast = _hocuspocus_update(frame, max_address_bytes)
    if fast is not None:
        return fast
    dec = Decoder(frame)
    address = dec.read_var_string(max_address_bytes)
    kind = dec.read_var_uint()
    msg: HocuspocusMessage
    if kind in (HMessageType.SYNC, HMessageType.SYNC_REPLY):
        msg = HSync(address, _read_sync(dec), reply=kind == HMessageType.SYNC_REPLY)
    elif kind == HMessageType.AWARENESS:
        msg = HAwareness(address, dec.read_var_bytes())
    elif kind == HMessageType.AUTH:
        msg = _read_auth(dec, address, max_frame_bytes)
    elif kind == HMessageType.QUERY_AWARENESS:
        msg = HQueryAwareness(address)
    elif kind in (HMessageType.STATELESS, HMessageType.BROADCAST_STATELESS):
        msg = HStateless(
            address, dec.read_var_string(), broadcast=kind == HMessageType.BROADCAST_STATELESS
        )
    elif kind == HMessageType.CLOSE:
        # The provider's CloseMessage carries no reason; the server's does.
        msg = HClose(address, dec.read_var_string() if not dec.at_end() else "")
    elif kind == HMessageType.SYNC_STATUS:
        status = dec.read_var_uint()
        if status > 1:
            raise YjsProtocolError("invalid_message", f"sync status {status}")
        msg = HSyncStatus(address, status == 1)
    else:
        raise YjsProtocolError("unknown_type", f"unknown Hocuspocus message type {kind}")
    dec.expect_end("Hocuspocus message")
    return msg


def _hocuspocus_update(frame: bytes, max_address_bytes: int) -> HSync | HAwareness | None:
    """A sync update frame with an address and an update of < 128 bytes each (every
    keystroke), or an awareness frame with an address and an update of < 128 bytes each
    (every renewal and its echoes), read without a decoder; None for any other frame (the
    decoder reads it)."""
    n = frame[0]
    if n >= 0x80 or n > max_address_bytes or len(frame) < n + 3:
        return None
    if frame[n + 1] == 1:  # awareness
        size = frame[n + 2]
        if size >= 0x80 or len(frame) != n + 3 + size:
            return None
        try:
            return HAwareness(frame[1 : n + 1].decode(), frame[n + 3 :])
        except UnicodeDecodeError:
            return None
    if len(frame) < n + 5:
        return None
    if frame[n + 1] != 0 or frame[n + 2] != 2 or frame[n + 3] >= 0x80:  # sync, update
        return None
    if len(frame) != n + 4 + frame[n + 3] or frame[n + 3] == 0:
        return None
    try:
        address = frame[1 : n + 1].decode()
    except UnicodeDecodeError:
        return None
    return HSync(address, SyncUpdate(frame[n + 4 :]))


def encode_hocuspocus(msg: HocuspocusMessage) -> bytes:
    """Encode one frame, byte for byte as the Hocuspocus server / provider write it."""
    if isinstance(msg, HPing):
        return PING_FRAME
    if isinstance(msg, HPong):
        return PONG_FRAME
    enc = Encoder().write_var_string(msg.address)
    if isinstance(msg, HSync):
        enc.write_var_uint(HMessageType.SYNC_REPLY if msg.reply else HMessageType.SYNC)
        _write_sync(enc, msg.sync)
    elif isinstance(msg, HAwareness):
        enc.write_var_uint(HMessageType.AWARENESS).write_var_bytes(msg.update)
    elif isinstance(msg, HAuthToken):
        enc.write_var_uint(HMessageType.AUTH).write_var_uint(AuthType.TOKEN)
        enc.write_var_string(msg.token)
        if msg.provider_version is not None:
            enc.write_var_string(msg.provider_version)
    elif isinstance(msg, HAuthTokenRequest):
        enc.write_var_uint(HMessageType.AUTH).write_var_uint(AuthType.TOKEN)
    elif isinstance(msg, HPermissionDenied):
        enc.write_var_uint(HMessageType.AUTH).write_var_uint(AuthType.PERMISSION_DENIED)
        enc.write_var_string(msg.reason)
    elif isinstance(msg, HAuthenticated):
        enc.write_var_uint(HMessageType.AUTH).write_var_uint(AuthType.AUTHENTICATED)
        enc.write_var_string(msg.scope)
    elif isinstance(msg, HQueryAwareness):
        enc.write_var_uint(HMessageType.QUERY_AWARENESS)
    elif isinstance(msg, HStateless):
        kind = HMessageType.BROADCAST_STATELESS if msg.broadcast else HMessageType.STATELESS
        enc.write_var_uint(kind).write_var_string(msg.payload)
    elif isinstance(msg, HClose):
        enc.write_var_uint(HMessageType.CLOSE).write_var_string(msg.reason)
    else:
        enc.write_var_uint(HMessageType.SYNC_STATUS).write_var_uint(1 if msg.saved else 0)
    return enc.to_bytes()


# --- the frames sent for every update (byte for byte the encoders' output, built directly) ---

_UPDATE_HEADER = bytes([YMessageType.SYNC, SyncType.UPDATE])  # Hocuspocus' SYNC is 0 too


def _var_uint(n: int) -> bytes:
    return bytes((n,)) if n < 0x80 else encode_var_uint(n)


def ywebsocket_update_frame(update: bytes) -> bytes:
    """``encode_ywebsocket(YSync(SyncUpdate(update)))`` without building the message: the
    server encodes one per update (for all its y-websocket receivers)."""
    return _UPDATE_HEADER + _var_uint(len(update)) + update


@functools.lru_cache(maxsize=4096)
def _address_prefix(address: str) -> bytes:
    return Encoder().write_var_string(address).to_bytes()


def hocuspocus_update_frame(address: str, update: bytes) -> bytes:
    """``encode_hocuspocus(HSync(address, SyncUpdate(update)))``, built directly."""
    return _address_prefix(address) + _UPDATE_HEADER + _var_uint(len(update)) + update


@functools.lru_cache(maxsize=4096)
def hocuspocus_sync_status_frame(address: str, saved: bool) -> bytes:
    """``encode_hocuspocus(HSyncStatus(address, saved))``: the same bytes for every update of
    an address, so encoded once (addresses are document names, or ``name\0session``)."""
    return encode_hocuspocus(HSyncStatus(address, saved))
