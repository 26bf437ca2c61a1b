"""The document-kind seam (``rooms/kind.py``): a second kind, defined here, runs on the server's
machinery unchanged (registry, pipeline, store, bus, replication).

``LogKind`` is an append-only log of entries (its updates are ``origin:lamport:text`` bytes): loaded
from a snapshot and the log's tail, fed through the real pipeline (durable in the store before the
future completes), snapshotted and reloaded, and replicated between two hubs on one store over a
``LocalBus``, with catch-up from the store after lost messages, from the log and from a snapshot.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pytest

from cowrite import protocol as p
from cowrite.adapters.bus import LocalBus
from cowrite.adapters.store import MemoryStore, SQLiteStore, Store
from cowrite.rooms.kind import CRDT, KINDS, DocumentKind, DocumentRoom, kind_named, register_kind
from cowrite.rooms.peers import PeerEntry
from cowrite.rooms.room import Outcome, RoomError, RoomLimits
from cowrite.server.config import Settings
from cowrite.server.hub import Hub
from cowrite.server.metrics import Metrics
from cowrite.server.registry import LoadedRoom


class LogRoom:
    """An append-only log document: a set of entries named (Lamport time, origin), read in
    name order (so every replica reads the same log)."""

    def __init__(self, doc_id: str, origin: int) -> None:
        self.doc_id = doc_id
        self.epoch = ""
        self.origin = origin
        self.entries: dict[str, str] = {}
        self._version = 0
        self._clock = 0
        self.snapshots_merged = 0
        self.remote: Mapping[str, object] = {}

    @property
    def version(self) -> int:
        return self._version

    def lines(self) -> list[str]:
        return [self.entries[k] for k in sorted(self.entries)]

    def _add(self, data: bytes) -> bool:
        try:
            origin, n, text = data.decode().split(":", 2)
            key = f"{int(n):08d}:{int(origin):020d}"
        except ValueError:
            raise RoomError(p.ErrorCode.BAD_MESSAGE, "not a log entry") from None
        if key in self.entries:
            return False
        self.entries[key] = text
        self._clock = max(self._clock, int(n))
        self._version += 1
        return True

    # the kind's own dialect: a client input -> outcome (persisted, then acknowledged)
    def append(self, text: str) -> Outcome:
        data = f"{self.origin}:{self._clock + 1}:{text}".encode()
        self._add(data)
        return Outcome(persist=data, version=self.version)

    # DocumentRoom
    def load_update(self, seq: int, data: bytes) -> None:
        self._add(data)

    def merge_update(self, data: bytes) -> Outcome:
        self._add(data)
        return Outcome()

    def merge_snapshot(self, snapshot: bytes) -> Outcome | None:
        self.snapshots_merged += 1
        for key, text in json.loads(snapshot):
            if key not in self.entries:
                self.entries[key] = text
                self._clock = max(self._clock, int(key.split(":")[0]))
                self._version += 1
        return Outcome()

    def encode_snapshot(self, history_kept_ops: int) -> bytes:
        return json.dumps(sorted(self.entries.items())).encode()

    def compaction_due(self, history_kept_ops: int) -> bool:
        return False

    def tick(self, now_ms: int) -> Outcome:
        return Outcome()

    def peer_entries(self, sessions: list[str] | None = None) -> list[PeerEntry]:
        return []

    def merge_presence(self, instance: int, entries: list[PeerEntry], left: list[str]) -> Outcome:
        return Outcome()

    def drop_instance(self, instance: int) -> Outcome:
        return Outcome()


class LogKind:
    name = "log"

    def load(
        self,
        doc_id: str,
        snapshot: bytes | None,
        snapshot_seq: int,
        updates: Sequence[tuple[int, bytes]],
        limits: RoomLimits,
        *,
        replica: int,
        now_ms: Callable[[], int],
    ) -> LogRoom:
        room = LogRoom(doc_id, replica)
        if snapshot:
            room.merge_snapshot(snapshot)
        for seq, data in updates:
            room.load_update(seq, data)
        return room


def _kinds() -> tuple[DocumentKind, DocumentRoom]:
    """Both protocols are met (checked by mypy)."""
    return LogKind(), LogRoom("x", 1)


def test_kinds_are_registered_by_name() -> None:
    assert kind_named("crdt") is CRDT
    log = LogKind()
    register_kind(log)
    try:
        assert kind_named("log") is log
        register_kind(log)  # the same kind again: nothing changes
        with pytest.raises(ValueError):
            register_kind(LogKind())
    finally:
        del KINDS["log"]
    with pytest.raises(KeyError):
        kind_named("log")


def _log(lr: LoadedRoom) -> LogRoom:
    assert isinstance(lr.room, LogRoom)
    return lr.room


class AppLogKind(LogKind):
    """The kind the hub tests store their documents as (registered for the whole module)."""

    name = "applog"


APPLOG = AppLogKind()


def _hub(store: Store, bus: LocalBus | None = None, *, snapshot_every: int = 1_000) -> Hub:
    if KINDS.get(APPLOG.name) is not APPLOG:
        register_kind(APPLOG)
    settings = Settings(data=":memory:", snapshot_every=snapshot_every)
    return Hub(store, settings, Metrics(), bus=bus, cluster=bus is not None)


async def _append(hub: Hub, lr: LoadedRoom, text: str) -> int:
    """Append through the real pipeline; the entry's store seq once durable."""
    durable = await asyncio.wait_for(
        hub.submit_durable(lr, _log(lr).append(text), time.monotonic()), 5
    )
    assert durable.seq is not None
    return durable.seq


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_second_kind_is_stored_snapshotted_and_reloaded(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    await store.open()
    try:
        hub = _hub(store, snapshot_every=3)
        await hub.start()
        try:
            lr = await hub.open_room("log", create=True, kind="applog")
            for n, text in enumerate(["a", "b", "c", "d"], 1):
                seq = await _append(hub, lr, text)
                stored = await store.load("log")  # durable before the future completed
                assert stored is not None and stored.last_seq == seq == n
                assert stored.updates[-1] == (seq, f"{hub.replica}:{n}:{text}".encode())
            assert lr.room.version == 4
        finally:
            await hub.close()  # unloads: 4 >= snapshot_every, so a snapshot is written
        stored = await store.load("log")
        assert stored is not None and stored.snapshot is not None and stored.snapshot_seq == 4
        assert stored.updates == []

        hub = _hub(store, snapshot_every=3)
        await hub.start()
        try:
            lr = await hub.open_room("log", create=False)
            assert _log(lr).lines() == ["a", "b", "c", "d"]
            await _append(hub, lr, "e")
        finally:
            await hub.close()  # below snapshot_every: the tail stays in the log
        stored = await store.load("log")
        assert stored is not None and stored.snapshot_seq == 4 and len(stored.updates) == 1

        hub = _hub(store)
        await hub.start()
        try:  # loaded from the snapshot and the log's tail
            lr = await hub.open_room("log", create=False)
            assert _log(lr).lines() == ["a", "b", "c", "d", "e"]
        finally:
            await hub.close()
    finally:
        await store.close()


async def test_a_second_kind_replicates_between_instances_with_catch_up() -> None:
    store = MemoryStore()
    await store.open()
    bus = LocalBus()
    await bus.open()
    a, b = _hub(store, bus), _hub(store, bus)
    await a.start()
    await b.start()
    try:
        la = await a.open_room("log", create=True, kind="applog")
        await _append(a, la, "before b")
        lb = await b.open_room("log", create=False)  # loaded from the store
        assert _log(lb).lines() == ["before b"]

        await _append(a, la, "over the bus")
        await _until(lambda: _log(lb).lines() == ["before b", "over the bus"])
        await _append(b, lb, "from b")
        await _until(lambda: len(_log(la).lines()) == 3)
        assert _log(la).lines() == _log(lb).lines()

        # a message lost on the bus: the next one shows a gap, read from the store's log
        publish = bus.publish
        lost = [True]

        async def lossy(channel: str, message: bytes) -> None:
            if lost[0] and channel.startswith("doc"):
                lost[0] = False
                return
            await publish(channel, message)

        bus.publish = lossy  # type: ignore[method-assign]
        await _append(a, la, "lost")
        await _append(a, la, "after the gap")
        await _until(lambda: len(_log(lb).lines()) == 5)
        assert not lost[0] and _log(la).lines() == _log(lb).lines()
        assert _log(lb).snapshots_merged == 0

        # lost again, and folded into a snapshot meanwhile: merged from the snapshot
        lost[0] = True
        await _append(a, la, "lost, then snapshotted")
        await a._snapshot("log", la)
        stored = await store.load("log")
        assert stored is not None and stored.updates == [] and stored.snapshot is not None
        await _append(a, la, "after the snapshot")
        await _until(lambda: len(_log(lb).lines()) == 7)
        assert _log(la).lines() == _log(lb).lines()
        assert not lost[0] and "lost, then snapshotted" in _log(lb).lines()
        assert _log(lb).snapshots_merged == 1
    finally:
        await a.close()
        await b.close()
        await bus.close()
        await store.close()
