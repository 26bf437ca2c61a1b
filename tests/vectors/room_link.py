"""A real ``Room`` behind in-memory links: the hub's routing, without sockets or a store.

Each client connection is a ``Link`` with two FIFO queues (``up``: client -> server, ``down``:
server -> client); nothing is reordered, but nothing moves until the caller says so, so every
interleaving of sends and deliveries can be produced. ``RoomHost.serve`` makes the room read one
frame from a link and routes the outcome like ``server/hub.py`` does: the reply to the sender,
broadcasts to the other joined members of the right audience, a ``RoomError`` as ``error`` (and
``resync`` when the room asks for one). Dropping a link loses whatever was queued on it.

Imported by ``tests/vectors/generate.py`` and ``tests/client/test_thin_room.py`` (put this folder
on ``sys.path`` first).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from cowrite import protocol as p
from cowrite.engine.document import Document
from cowrite.engine.ops import NodeKind
from cowrite.rooms.room import Member, Outcome, Room, RoomError, RoomLimits

DOC = "d"
RIGHTS = frozenset({"read", "write", "chat"})
SEQ = (NodeKind.TEXT, NodeKind.LIST)


@dataclass
class Link:
    """One connection: ``up`` frames wait for the server, ``down`` frames for the client."""

    client_id: str
    session: str
    up: deque[p.Message] = field(default_factory=deque)
    down: deque[p.Message] = field(default_factory=deque)
    open: bool = True


def fixed_clock() -> int:
    """A constant wall clock: hybrid logical clocks then tick by their counter alone, so a
    scenario gives the same bytes (and version vectors) every run."""
    return 1_700_000_000_000


def new_room(*, log_capacity: int = 10_000, replica: int = 1) -> Room:
    limits = RoomLimits(edit_log_capacity=log_capacity)
    return Room(DOC, Document(replica, now_ms=fixed_clock), limits=limits)


def builtins(msg: Any) -> Any:
    """A message or op as the JSON the wire carries (defaults left out where it omits them)."""
    return msgspec.to_builtins(msg)


class RoomHost:
    """The hub's part for one room: joined links get broadcasts, each edit is counted."""

    def __init__(self, room: Room) -> None:
        self.room = room
        self.links: dict[str, Link] = {}
        self.joined: set[str] = set()
        self.applied: Counter[tuple[str, str]] = Counter()
        """How many times each (client_id, edit_id) was applied (must stay at most 1)."""
        self.values_at: dict[int, dict[str, Any]] = {room.version: self.values()}
        """The room's root values after each version (what a client at that version holds)."""
        self._sessions = 0

    def values(self) -> dict[str, Any]:
        """The room's text and list roots (``{"text:body": "..."}``)."""
        doc = self.room.doc
        return {
            f"{kind.name.lower()}:{name}": doc.node_json(node)
            for node, (name, kind) in sorted(doc.roots.items(), key=lambda r: r[1])
            if kind in SEQ
        }

    def connect(self, client_id: str) -> Link:
        self._sessions += 1
        link = Link(client_id, f"s{self._sessions}")
        self.links[link.session] = link
        return link

    def drop(self, link: Link) -> None:
        """The connection is gone: frames queued either way are lost; the member leaves."""
        link.open = False
        link.up.clear()
        link.down.clear()
        self.links.pop(link.session, None)
        self.joined.discard(link.session)
        self._route(self.room.leave(link.session), link)

    def serve(self, link: Link) -> None:
        """The server reads the next frame ``link`` sent."""
        msg = link.up.popleft()
        if isinstance(msg, p.Join):
            member = Member(
                link.session, link.client_id, p.User(id=link.client_id), "thin", RIGHTS, 0
            )
            try:
                outcome = self.room.join(member, msg, [])
            except RoomError as exc:
                link.down.append(p.Error(code=exc.code, message=exc.message, doc=DOC))
                return
            self.joined.add(link.session)
            self._route(outcome, link)
        elif isinstance(msg, p.Edit):
            self.edit(link, msg)
        else:  # pragma: no cover - the tests send nothing else
            raise AssertionError(f"unexpected frame {msg!r}")

    def edit(self, link: Link, msg: p.Edit) -> None:
        try:
            outcome = self.room.edit(link.session, msg, 0)
        except RoomError as exc:
            link.down.append(
                p.Error(code=exc.code, message=exc.message, doc=DOC, edit_id=msg.edit_id)
            )
            if exc.resync:
                link.down.append(p.Resync(doc=DOC, reason=exc.message))
            return
        for key in outcome.edit_keys:
            self.applied[key] += 1
        self._route(outcome, link)

    def other_edit(self, client_id: str, ops: list[dict[str, Any]], edit_id: str) -> int:
        """A client nobody watches edits at the room's current version; returns that version."""
        link = next((x for x in self.links.values() if x.client_id == client_id), None)
        if link is None:
            link = self.connect(client_id)
            link.up.append(p.Join(doc=DOC))
            self.serve(link)
        msg = msgspec.convert(
            {
                "type": "edit",
                "doc": DOC,
                "edit_id": edit_id,
                "version": self.room.version,
                "ops": ops,
            },
            p.Edit,
        )
        self.edit(link, msg)
        link.down.clear()  # nobody reads this client's messages
        return self.room.version

    def _route(self, outcome: Outcome, sender: Link) -> None:
        if outcome.persist is not None:
            self.values_at[self.room.version] = self.values()
        sender.down.extend(outcome.reply)
        for msg, audience in outcome.broadcast:
            if isinstance(msg, p.Presence) or audience == "replica":
                continue  # presence is not the thin-client algorithm's business
            for session in sorted(self.joined):
                link = self.links[session]
                if link is not sender:
                    link.down.append(msg)
