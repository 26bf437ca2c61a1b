"""What a Yjs session asks the server to do (``session.py``): its actions, and a client's
rights. The server shell carries them out in order (docs/yjs.md, "Sessions")."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from enum import Enum

from cowrite.yjs.awareness import AwarenessEntry


class Rights(Enum):
    READ = "readonly"
    READ_WRITE = "read-write"


@dataclass(frozen=True, slots=True)
class Send:
    frame: bytes


@dataclass(frozen=True, slots=True)
class Persist:
    ticket: int
    document: str
    update: bytes


@dataclass(frozen=True, slots=True)
class Broadcast:
    """Send ``update`` to the document's other connections (``other.update_frame``) and
    instances; ``origin`` is the session it came from."""

    document: str
    update: bytes
    origin: Hashable


@dataclass(frozen=True, slots=True)
class RelayAwareness:
    document: str
    update: bytes
    origin: Hashable
    entries: tuple[AwarenessEntry, ...] = ()
    """What ``update`` holds, when the client sent it (decoded already: not for removals)."""


@dataclass(frozen=True, slots=True)
class Authenticate:
    address: str
    document: str
    token: str


@dataclass(frozen=True, slots=True)
class Join:
    address: str
    document: str
    rights: Rights


@dataclass(frozen=True, slots=True)
class Leave:
    address: str
    document: str


@dataclass(frozen=True, slots=True)
class StatelessReceived:
    address: str
    document: str
    payload: str


@dataclass(frozen=True, slots=True)
class Close:
    code: int
    reason: str


Action = (
    Send
    | Persist
    | Broadcast
    | RelayAwareness
    | Authenticate
    | Join
    | Leave
    | StatelessReceived
    | Close
)
