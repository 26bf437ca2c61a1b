"""What the client SDK raises."""

from __future__ import annotations

from cowrite import protocol as p


class ClientError(Exception):
    """Base class of the SDK's errors."""


class ServerError(ClientError):
    """An ``error`` message from the server, with its stable ``code`` (``protocol.ErrorCode``)."""

    def __init__(self, msg: p.Error) -> None:
        super().__init__(f"{msg.code.value}: {msg.message}")
        self.code = msg.code
        self.message = msg.message
        self.doc = msg.doc
        self.edit_id = msg.edit_id


class SessionClosed(ClientError):
    """The session is closed (by ``close()`` or by a fatal error, its ``__cause__``)."""


class NotSynced(ClientError):
    """The session closed with local edits the server has not acknowledged (they are lost)."""


class PermissionDenied(ClientError):
    """The server refused access to a Yjs document (Hocuspocus ``PermissionDenied``): a missing,
    forged or expired token, a token without rights on it, an unknown document for a read-only
    token, or a document of the native kind (``reason`` is the server's, e.g. ``"not a Yjs
    document"``)."""

    def __init__(self, reason: str, doc: str) -> None:
        super().__init__(f"permission denied on {doc!r}: {reason}")
        self.reason = reason
        self.doc = doc


class ReadOnlyError(ClientError):
    """Local changes to a Yjs document cannot be saved: the token grants reading only, or the
    server refused them. They stay in the local document only."""


def refused_handshake(url: str, status: int, reason: str, body: bytes) -> ConnectionError | None:
    """The error for an HTTP answer to the WebSocket handshake that retrying cannot change (a
    wrong path, a proxy's refusal), or None when it may pass (408, 429, 5xx: retry)."""
    if not 400 <= status < 500 or status in (408, 429):
        return None
    said = " ".join(body.decode("utf-8", "replace").split())[:200]
    hint = " (the endpoint is /ws, e.g. ws://127.0.0.1:8000/ws)" if status in (403, 404) else ""
    return ConnectionError(
        f"{url} refused the WebSocket: HTTP {status} {reason}".rstrip()
        + (f": {said}" if said else "")
        + hint
    )
