"""A Yjs connection's documents as room members, and the close codes of the Yjs endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING

from cowrite.rooms.state import RoomError
from cowrite.server.auth import Identity
from cowrite.yjs.awareness import AwarenessEntry, claimed_name

if TYPE_CHECKING:
    from cowrite.server.yjs_connection import YjsConnection

CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_TOKEN_EXPIRED = 4001
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_UNKNOWN_DOCUMENT = 4404
CLOSE_OUTBOX_FULL = 4008
CLOSE_HEARTBEAT_TIMEOUT = 4000


class YjsMember:
    """One document of a Yjs connection, as the room's member (``Peer`` for the hub)."""

    __slots__ = ("address", "client_id", "conn", "docs", "document", "identity", "session")

    def __init__(self, conn: YjsConnection, address: str, document: str, identity: Identity):
        self.conn = conn
        self.address = address
        self.document = document
        self.identity = identity
        self.session = f"{conn.session}/{address}"
        self.client_id = ""
        self.docs: dict[str, str] = {}

    def send(self, data: bytes) -> None:
        self.conn.send(data)

    def name_from_awareness(
        self, entries: Iterable[AwarenessEntry], ours: Callable[[int], bool]
    ) -> None:
        """Without a verified token, take the name this client's awareness shows (``user.name``)
        as its name in version history and hooks, as the native hello's ``user`` is taken.
        ``entries`` are the accepted states of an awareness update from this member's
        connection, as its session decoded them; ``ours`` says whether a Yjs client id belongs
        to it (providers echo other clients' states)."""
        if self.identity.authenticated:
            return
        name = claimed_name(e for e in entries if ours(e.client_id))
        if name is not None and name != self.identity.name:
            self.identity = replace(self.identity, name=name)

    def close(self, code: int, reason: str) -> None:
        """The server drops this document (deleted, reloaded): the whole y-websocket socket,
        or this address of a Hocuspocus one."""
        self.conn.drop(self, code, reason)

    def entered(self, doc_id: str, mode: str) -> None:
        """(A Yjs member is in its one document from the start.)"""

    def left(self, doc_id: str) -> None:
        """(Its connection forgets it: ``YjsConnection.drop``.)"""

    def saving(self, doc_id: str, pending: bool) -> None:
        """Neither dialect can say "waiting for the store": acknowledgements just wait."""


def close_code_for(exc: RoomError) -> int:
    """The close code for a document that cannot be opened."""
    code = exc.code.value
    if code == "unknown_document":
        return CLOSE_UNKNOWN_DOCUMENT
    if code == "forbidden":
        return CLOSE_FORBIDDEN
    return CLOSE_POLICY


def owner_session(owner: object) -> object:
    """The session key of an awareness owner ``(session key, address)``; None for none."""
    return owner[0] if isinstance(owner, tuple) else None
