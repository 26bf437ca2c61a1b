"""Replication: other instances' updates and presence merged into this one's rooms.

In a cluster (``cluster=True``: several instances on one Store and a shared Bus) every durable
update is published with its Store sequence number (``pipeline.py``); here the hub merges the other
instances' updates into its rooms as they arrive, reads from the Store whatever it missed
(catch-up), and keeps the presence of members on other instances. ``cluster.py`` calls the
``on_*`` listener methods.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from cowrite.adapters.store import Compacted, NotFound, Store, StoreError
from cowrite.rooms.room import Outcome, RoomError
from cowrite.server.cluster import ChatNote, Cluster, PresenceNote, QueryNote, UpdateNote
from cowrite.server.metrics import Metrics

if TYPE_CHECKING:
    from cowrite.server.pipeline import Peer
    from cowrite.server.registry import LoadedRoom

log = logging.getLogger("cowrite.hub")

GAP_GRACE_S = 0.3
"""How long a gap in the seqs may wait for a message still on its way before the store is read."""


class Replication:
    """The hub's cluster side (a part of ``Hub``: it declares what it uses of the others)."""

    store: Store
    metrics: Metrics
    now_ms: Callable[[], int]
    replica: int
    cluster: Cluster | None
    rooms: dict[str, LoadedRoom]

    if TYPE_CHECKING:

        def submit(
            self,
            lr: LoadedRoom,
            outcome: Outcome,
            sender: Peer | None,
            t0: float,
            *,
            joined: bool = False,
            remote: bool = False,
        ) -> None: ...

        def _yjs_on_query(self, doc_id: str, lr: LoadedRoom, note: QueryNote) -> bool: ...

        def _yjs_on_chat(self, lr: LoadedRoom, note: ChatNote) -> bool: ...

    def _merge(
        self, doc_id: str, lr: LoadedRoom, seq: int, data: bytes, *, stored: bool = False
    ) -> None:
        """Merge log entry ``seq`` (another instance's update) unless the room has it.
        ``stored``: read from the store (else from the bus)."""
        if seq in lr.seqs:
            return
        try:
            outcome = lr.room.merge_update(data)
        except RoomError as exc:
            if not stored:  # damaged on the way: the store has the real one
                log.warning("unreadable update %d: %s", seq, exc.message, extra={"doc": doc_id})
                self._catch_up(doc_id, lr, delay=GAP_GRACE_S)
                return
            log.error(
                "unreadable stored update %d skipped: %s", seq, exc.message, extra={"doc": doc_id}
            )
            outcome = Outcome()
        lr.seqs.add(seq)
        lr.since_snapshot += 1
        lr.log_bytes += len(data)
        if outcome.sends:
            self.submit(lr, outcome, None, time.monotonic(), remote=True)

    def _catch_up(self, doc_id: str, lr: LoadedRoom, delay: float = 0.0) -> None:
        """Read the log entries the room lacks from the store (in the background)."""
        if lr.catching_up is not None:
            lr.catch_again = True
            return
        lr.catching_up = asyncio.create_task(self._catching_up(doc_id, lr, delay))

    async def _catching_up(self, doc_id: str, lr: LoadedRoom, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            backoff = 0.1
            while self.rooms.get(doc_id) is lr:
                lr.catch_again = False
                try:
                    updates = await self.store.updates_since(doc_id, lr.seqs.upto)
                except Compacted:
                    await self._merge_snapshot(doc_id, lr)
                    continue
                except NotFound:
                    return
                except StoreError:
                    await asyncio.sleep(backoff)  # it retries until the store is back
                    backoff = min(backoff * 2, 2.0)
                    continue
                for seq, data in updates:
                    if self.rooms.get(doc_id) is not lr:
                        return
                    self._merge(doc_id, lr, seq, data, stored=True)
                if not lr.catch_again:
                    return
        except Exception:
            log.exception("catch-up failed", extra={"doc": doc_id})
        finally:
            if lr.catching_up is asyncio.current_task():
                lr.catching_up = None

    async def _merge_snapshot(self, doc_id: str, lr: LoadedRoom) -> None:
        """Entries the room lacks were folded into a snapshot: merge what it adds.

        A snapshot of a compacted document cannot always be expressed as a delta for this
        room; then the room is dropped and its connections told to reconnect (they rejoin a
        fresh load, with a snapshot and a three-way merge of their pending edits).
        """
        stored = await self.store.load(doc_id)
        if stored is None or self.rooms.get(doc_id) is not lr:
            return
        if stored.snapshot is not None:
            outcome = lr.room.merge_snapshot(stored.snapshot)
            if outcome is None:
                log.warning("room too far behind a snapshot: reloading", extra={"doc": doc_id})
                for peer in lr.membership.connections():
                    peer.close(1012, "document reloaded: reconnect")
                return
            lr.seqs.fill_to(stored.snapshot_seq)
            if outcome.sends:
                self.submit(lr, outcome, None, time.monotonic(), remote=True)
        for seq, data in stored.updates:
            self._merge(doc_id, lr, seq, data, stored=True)

    # Listener (cluster.py): called for every note another instance sends

    def on_update(self, doc_id: str, note: UpdateNote) -> None:
        lr = self.rooms.get(doc_id)
        if lr is None:
            return
        self._merge(doc_id, lr, note.seq, note.data)
        if lr.seqs.has_gap:  # maybe still on its way from another instance: look a bit later
            self._catch_up(doc_id, lr, delay=GAP_GRACE_S)

    def on_presence(self, doc_id: str, note: PresenceNote) -> None:
        lr = self.rooms.get(doc_id)
        if lr is not None:
            outcome = lr.room.merge_presence(note.instance, note.entries, note.left)
            if outcome.sends:
                self.submit(lr, outcome, None, time.monotonic(), remote=True)

    def on_query(self, doc_id: str, note: QueryNote) -> None:
        lr = self.rooms.get(doc_id)
        if lr is not None and self.cluster is not None:
            if self._yjs_on_query(doc_id, lr, note):
                return
            entries = lr.room.peer_entries()
            if entries:
                self.cluster.publish(doc_id, PresenceNote(self.replica, entries, []))

    def on_chat(self, doc_id: str, note: ChatNote) -> None:
        lr = self.rooms.get(doc_id)
        if lr is not None and not self._yjs_on_chat(lr, note):
            for peer in lr.membership.listeners():
                peer.send(note.message)

    def on_instance_gone(self, instance: int) -> None:
        self.metrics.instances_lost.inc()
        for doc_id, lr in list(self.rooms.items()):
            outcome = lr.room.drop_instance(instance)
            if outcome.sends:
                self.submit(lr, outcome, None, time.monotonic(), remote=True)
            self._catch_up(doc_id, lr)  # it may have stored updates it never published

    def on_bus_back(self) -> None:
        """The bus reconnected: catch up, and tell the others who is here again."""
        log.info("bus back: catching up from the store")
        for doc_id, lr in list(self.rooms.items()):
            self._catch_up(doc_id, lr)
            if self.cluster is not None:
                self.cluster.spawn(self._reannounce(doc_id, lr))

    async def _reannounce(self, doc_id: str, lr: LoadedRoom) -> None:
        assert self.cluster is not None
        entries = lr.room.peer_entries()
        if entries:
            await self.cluster.send(doc_id, PresenceNote(self.replica, entries, []))
        await self.cluster.send(doc_id, QueryNote(self.replica))

    async def _caught_up(self, doc_id: str, lr: LoadedRoom) -> None:
        """Return once the room has merged everything the store held when called (or was
        unloaded meanwhile)."""
        while True:
            task = lr.catching_up
            if task is None:
                self._catch_up(doc_id, lr)
                task = lr.catching_up
                if task is None:
                    return
                await asyncio.wait({task})
                return
            await asyncio.wait({task})  # an earlier catch-up may have missed what we need
