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
