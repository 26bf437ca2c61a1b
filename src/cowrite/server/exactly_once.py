"""Exactly-once in the hub: the store decides what memory cannot vouch for.

A room remembers recent edit keys; this module asks the store about the others (a thin client's
``join.inflight``, its first edit after a join, an edit older than what the room still holds),
undoes the second copy of an edit two instances both applied (the store refused its key), and
prunes keys past the horizon. The why of each: docs/architecture.md, "Exactly-once and its
horizon".
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from typing import TYPE_CHECKING

from cowrite import protocol as p
from cowrite.adapters.store import StoreError
from cowrite.rooms.duplicates import undo_ops
from cowrite.rooms.edit_keys import key_client
from cowrite.rooms.room import Outcome

if TYPE_CHECKING:
    from cowrite.server.hub import Hub, LoadedRoom, Peer

log = logging.getLogger("cowrite.hub")


def peer_key_client(peer: Peer) -> str:
    """The client part of ``peer``'s edit keys: its client id scoped by its user (with auth)."""
    return key_client(peer.identity.key_owner or peer.client_id, peer.client_id)


class ExactlyOnce:
    """The hub's side of exactly-once acknowledgements (one per hub)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def must_ask_store(self, lr: LoadedRoom, peer: Peer, msg: p.Edit, first: bool) -> bool:
        """Whether the store may know ``msg``'s key although the room does not.

        The room knows every edit it applied at a version after both its load and
        ``forgotten_upto``, and an edit made at version V is applied after V. A client's
        ``first`` edit after a join may be a resend rebased to a newer version: asked too.
        """
        room = lr.crdt
        if room.seen(peer_key_client(peer), msg.edit_id) is not None:
            return False
        return first or msg.version < lr.loaded_version or msg.version <= room.forgotten_upto

    async def recognise(
        self, peer: Peer, doc_id: str, edit_id: str, *, joining: bool = False
    ) -> None:
        """If the store holds this edit of ``peer``'s, make the room remember it (so that it is
        acknowledged, not applied again). Raises StoreError while the store cannot tell.

        In a cluster, a stored edit this instance merged without its key (from a snapshot) gets
        the room's version for its acks, or, ``joining``, version 0: a version whose changes the
        room cannot name, so the ``joined`` is a snapshot (never a diff built on another
        version's ops)."""
        hub = self.hub
        client = peer_key_client(peer)
        lr = hub.rooms.get(doc_id)
        if lr is None or lr.crdt.seen(client, edit_id) is not None:
            return
        stored = await hub.store.lookup_edit(doc_id, client, edit_id)
        lr = hub.joined(peer, doc_id)  # still there after the await
        room = lr.crdt
        if stored is None or room.seen(client, edit_id) is not None:
            return
        if hub.cluster is None:
            room.remember((client, edit_id), stored.seq, stored.digest)
            return
        # merge it here first: the ack names this instance's version of it
        await hub._caught_up(doc_id, lr)
        room = hub.joined(peer, doc_id).crdt
        if room.seen(client, edit_id) is None:
            room.remember((client, edit_id), 0 if joining else room.version, stored.digest)

    async def recognise_inflight(self, peer: Peer, msg: p.Join) -> None:
        """Before a thin client's ``joined``: is the batch it names in ``inflight`` stored?

        If so the room remembers it, and the ``joined`` says it was applied (``acked``, or a
        snapshot and an ack of the resend naming a version the client has) instead of handing
        the client changes that contain it, to be applied twice. With the store down the
        client's first edit is checked again later (``check_store``)."""
        if msg.inflight is not None and msg.mode == "thin":
            with contextlib.suppress(StoreError):
                await self.recognise(peer, msg.doc, msg.inflight, joining=True)

    def undo_duplicate(self, doc_id: str, lr: LoadedRoom, outcome: Outcome) -> None:
        """Queue an edit undoing ``outcome``'s effect (`rooms.duplicates`), stored after it:
        another instance stored the same edit first."""
        hub = self.hub
        try:
            ops = undo_ops(lr.crdt.doc, outcome.persist or b"")
            if not ops:
                return
            undo = lr.crdt.apply_server_edit(
                ops, hub.now_ms(), client_id="", edit_id=f"undo-{secrets.token_hex(8)}"
            )
        except Exception:  # RoomError, or an engine error: the copy stays (logged, not lost)
            log.exception("could not undo a duplicate edit", extra={"doc": doc_id})
            return
        hub.submit(lr, undo, None, time.monotonic())

    async def prune(self, doc_id: str) -> None:
        """Forget the document's edit keys older than ``edit_key_ttl_s`` (the horizon)."""
        hub = self.hub
        horizon = hub.now_ms() - int(hub.settings.edit_key_ttl_s * 1000)
        try:
            pruned = await hub.store.prune_edit_keys(doc_id, horizon)
        except (StoreError, ValueError):
            log.warning("pruning edit keys failed", exc_info=True, extra={"doc": doc_id})
            return
        if pruned:
            log.info("edit keys pruned", extra={"doc": doc_id, "pruned": pruned})
