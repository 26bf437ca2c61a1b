"""Who is in one loaded room: the only owner of a room's connections.

A connection is in a room from the moment its join holds a place (so the room stays loaded while
the join awaits the store) until it leaves, is dropped or its join fails. It *listens* (gets the
room's broadcasts) only once its ``joined`` has been sent: a broadcast queued before that is
already in the snapshot the ``joined`` carries, and must not reach it twice. At most one join per
connection waits in the pipeline (a join can be megabytes).

The hub, the pipeline, replication and REST read a room's connections through this class and
change them only through its methods; the connection learns which documents it is in through
``Peer.entered``/``Peer.left`` (its own bookkeeping, never written by the hub). The room itself
keeps each member's presence (``rooms.room.Member``): that is session state, not who gets what.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cowrite.server.pipeline import Peer

ALL = "all"
"""The audience of a broadcast every listener gets (others name a mode: ``thin``, ``replica``)."""


@dataclass(frozen=True, slots=True)
class Hold:
    """A place held for a join in progress: ``Membership.release`` undoes it if the join fails."""

    peer: Peer
    rejoin: bool
    """The connection was in the room already (a rejoin keeps its place whatever happens)."""
    was_listening: bool


class Membership:
    """One room's connections, their modes, who listens and whose join is on its way."""

    __slots__ = ("_by_mode", "_joining", "_listening", "_modes", "_peers")

    def __init__(self) -> None:
        self._peers: dict[str, Peer] = {}
        self._modes: dict[str, str] = {}
        self._listening: dict[str, Peer] = {}
        self._by_mode: dict[str, dict[str, Peer]] = {}
        """The listeners again, by mode: a broadcast to one mode reads one dict (hot path)."""
        self._joining: set[str] = set()

    def __len__(self) -> int:
        return len(self._peers)

    def __bool__(self) -> bool:
        return bool(self._peers)

    def has(self, peer: Peer) -> bool:
        """Whether this very connection (not only its session id) is in the room."""
        return self._peers.get(peer.session) is peer

    def connections(self) -> list[Peer]:
        """Every connection in the room (a copy: callers may make them leave while iterating)."""
        return list(self._peers.values())

    def listeners(self, audience: str = ALL) -> list[Peer]:
        """The connections that get a broadcast to ``audience`` (``ALL`` or a mode), a copy."""
        if audience == ALL:
            return list(self._listening.values())
        listening = self._by_mode.get(audience)
        return [] if listening is None else list(listening.values())

    # ------------------------------------------------------------ joins (thin and replica)

    def hold(self, peer: Peer) -> Hold:
        """Hold ``peer``'s place while its join awaits the store; it stops listening until its
        new ``joined`` is sent (``listen``)."""
        rejoin = self.has(peer)
        self._peers[peer.session] = peer
        was_listening = self._unlisten(peer.session)
        return Hold(peer, rejoin, was_listening)

    def release(self, hold: Hold) -> bool:
        """The held join failed: put things back as they were. True when the connection is no
        longer in the room (the caller may unload it)."""
        peer = hold.peer
        if hold.rejoin:
            if hold.was_listening:
                self.listen(peer)
            return False
        if self.has(peer):
            self._drop(peer.session)
            return True
        return False

    def admit(self, peer: Peer, mode: str) -> None:
        """The join succeeded: ``peer`` is in with ``mode`` and its ``joined`` is queued."""
        self._unlisten(peer.session)  # (a rejoin may change its mode: it listens again later)
        self._modes[peer.session] = mode
        self._joining.add(peer.session)

    def is_joining(self, session: str) -> bool:
        """Whether a ``joined`` for ``session`` waits in the pipeline."""
        return session in self._joining

    def listen(self, peer: Peer) -> None:
        """Its ``joined`` was sent: ``peer`` gets the broadcasts that follow (if still in)."""
        if self.has(peer):
            self._listening[peer.session] = peer
            mode = self._modes.get(peer.session)
            if mode is not None:
                self._by_mode.setdefault(mode, {})[peer.session] = peer

    def join_done(self, session: str) -> None:
        """The pipeline is done with ``session``'s join (sent or failed)."""
        self._joining.discard(session)

    # ------------------------------------------------------------ any kind

    def add(self, peer: Peer) -> None:
        """A connection of a kind whose room addresses it directly (Yjs): in, never listening."""
        self._peers[peer.session] = peer

    def remove(self, peer: Peer) -> bool:
        """``peer`` leaves. False when it was not in the room (or another connection has its
        session now)."""
        if not self.has(peer):
            return False
        self._drop(peer.session)
        return True

    def _drop(self, session: str) -> None:
        self._unlisten(session)
        del self._peers[session]
        self._modes.pop(session, None)

    def _unlisten(self, session: str) -> bool:
        """``session`` gets no broadcasts (from now until ``listen``); whether it got them."""
        if self._listening.pop(session, None) is None:
            return False
        mode = self._modes.get(session)
        if mode is not None:
            self._by_mode[mode].pop(session, None)
        return True
