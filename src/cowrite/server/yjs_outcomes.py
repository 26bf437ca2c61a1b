"""What a Yjs connection's session asks of its document's room, as ``Outcome``\\ s of the room's
ordered pipeline (``pipeline.py``): an update to store, then to acknowledge and send to the
other connections; awareness to relay. The connection (``yjs_connection.py``) owns the socket
and the session; this is the one place its actions reach the hub.

Caller's contract: called on the event loop, in the order the session issued the actions; a
member that left (or a room that unloaded meanwhile) drops the action silently (its socket is
closing). Each function builds the frames once per dialect (``YjsRoom.update_frames``) and
submits one ``Outcome``; nothing waits here.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from cowrite.rooms.state import FrameSink, Outcome
from cowrite.server.hooks import Author
from cowrite.server.hub import Hub
from cowrite.server.yjs_member import YjsMember, owner_session
from cowrite.yjs import (
    Broadcast,
    HocuspocusSession,
    Persist,
    RelayAwareness,
    Send,
    YWebsocketSession,
)


def persist(
    hub: Hub,
    sink: FrameSink,
    session: YWebsocketSession | HocuspocusSession,
    members: Iterable[YjsMember],
    edits: Any,
    a: Persist,
) -> None:
    """An update the session applied to the room's document: one ``Outcome`` stores it, then
    sends its acknowledgement (to ``sink``, the sender's connection) and the update to the
    other connections (every frame encoded once per dialect). ``edits``: the edit counter's
    child to count it on."""
    document = a.document
    member: YjsMember | None = None
    several = False
    for m in members:  # (one for y-websocket; a few for Hocuspocus)
        if m.document == document:
            if member is not None:
                several = True
                break
            member = m
    if member is None:
        return
    found = hub.yjs_room(member, document)
    if found is None:
        return
    lr, room = found
    who = member.identity
    outcome = room.persisted(a.update, (who.user_id, who.name), hub.now_ms())
    # Hocuspocus routing keys (``name\0sessionId``) let several providers of one document
    # share this socket, and a Persist does not say which of them sent it: then every one
    # of them gets the update (the sender applies its own update as a no-op).
    origin = None if several else member.session
    frames = outcome.frames
    for b in session.durable(a.ticket):
        if isinstance(b, Send):
            frames.append((sink, b.frame))
        elif isinstance(b, Broadcast):
            frames.extend(room.update_frames(b.update, origin))
    hub.edits_applied += 1
    edits.inc()
    tracing = hub.tracing
    trace = (
        tracing.start("cowrite.edit", doc=document, session=member.session)
        if tracing.enabled
        else None
    )
    author = Author(who.user_id, who.name) if hub.hooks.wants_changes else None
    hub.submit(lr, outcome, None, time.monotonic(), trace=trace, author=author)


def relay_awareness(hub: Hub, member: YjsMember | None, a: RelayAwareness) -> None:
    """Awareness from ``member``'s client (or its removal) for every connection of the
    document, the sender's too, and for the other instances; an anonymous member takes its
    name from its own state (``YjsMember.name_from_awareness``)."""
    found = None if member is None else hub.yjs_room(member, a.document)
    if found is None or member is None:
        return
    lr, room = found
    if a.entries and not member.identity.authenticated:
        table = room.shared.awareness
        ours = a.origin
        member.name_from_awareness(a.entries, lambda c: owner_session(table.owner(c)) == ours)
    hub.submit(lr, frames_outcome(room.awareness_frames(a.update)), None, time.monotonic())
    hub.yjs_awareness_out(a.document, a.update)


def frames_outcome(frames: list[tuple[FrameSink, bytes]]) -> Outcome:
    """Frames to send in the room's order (after every update submitted before them)."""
    return Outcome(frames=frames)
