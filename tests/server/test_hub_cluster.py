"""Several instances in one process: one Store and one Bus shared, each its own hub and port.

The cluster logic (hub.py, cluster.py) is the same whatever carries the notes; these tests run
it over the in-process bus and store with real WebSocket clients, fast enough to cover many
cases. ``test_cluster*.py`` runs separate processes on PostgreSQL and Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # protocol_clients.py
from protocol_clients import ThinClient, running

import cowrite
from cowrite.adapters.bus import LocalBus
from cowrite.adapters.store import MemoryStore, StoredEdit, StoreUnavailable
from cowrite.server.cluster import UpdateNote, decode_note
from cowrite.server.config import Settings


class Shared:
    """A store shared by several in-process instances: only the test opens and closes it."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass


class SharedBus(LocalBus):
    """The in-process bus, left open by the instances; ``drop`` loses matching messages."""

    def __init__(self) -> None:
        super().__init__()
        self.drop: Any = None

    async def close(self) -> None:
        pass

    async def publish(self, channel: str, message: bytes) -> None:
        if self.drop is not None and self.drop(channel, message):
            return
        await super().publish(channel, message)


class FlakyStore(Shared):
    """Appends fail while ``down`` (a database outage, which only this test can time)."""

    down = False

    async def append_update(self, *args: Any, **kwargs: Any) -> int:
        if self.down:
            raise StoreUnavailable("database unreachable (test)")
        result: int = await self._store.append_update(*args, **kwargs)
        return result

    async def find_edit(self, *args: Any, **kwargs: Any) -> int | None:
        if self.down:
            raise StoreUnavailable("database unreachable (test)")
        result: int | None = await self._store.find_edit(*args, **kwargs)
        return result

    async def lookup_edit(self, *args: Any, **kwargs: Any) -> StoredEdit | None:
        if self.down:
            raise StoreUnavailable("database unreachable (test)")
        result: StoredEdit | None = await self._store.lookup_edit(*args, **kwargs)
        return result


def settings(**kw: Any) -> Settings:
    return Settings(
        data=":memory:",
        heartbeat_s=0.5,
        heartbeat_timeout_s=1.5,
        instance_heartbeat_s=0.2,
        instance_timeout_s=1.0,
        **kw,
    )


@contextlib.asynccontextmanager
async def cluster(n: int, store: Any = None) -> AsyncIterator[tuple[list[Any], Any, SharedBus]]:
    base = MemoryStore()
    await base.open()
    shared = store if store is not None else Shared(base)
    if store is not None:
        store._store = base
    bus = SharedBus()
    await bus.open()
    async with contextlib.AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(running(settings(), shared, bus)) for _ in range(n)
        ]
        yield servers, base, bus
    await LocalBus.close(bus)


async def until(check: Any, timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_edits_on_different_instances_converge() -> None:
    rng = random.Random(5)
    async with cluster(3) as (servers, store, _bus), contextlib.AsyncExitStack() as stack:
        docs = []
        for i in range(6):
            mode = "replica" if i % 3 == 2 else "thin"
            url = servers[i % 3].url
            session = cowrite.connect(url, doc="shared", name=f"u{i}", mode=mode)
            docs.append(await stack.enter_async_context(session))
        for _ in range(8):
            for d in docs:
                text = d.text("body")
                n = len(text)
                if n and rng.random() < 0.3:
                    text.delete(rng.randrange(n), 1)
                else:
                    text.insert(rng.randint(0, n), rng.choice("abcdef"))
                d.counter("hits").add(1)
                d.map("meta").set(f"k{rng.randrange(3)}", rng.randrange(100))
            await asyncio.sleep(rng.random() * 0.05)
        for d in docs:
            await d.synced(timeout_s=20)
        await until(lambda: len({str(d.text("body")) for d in docs}) == 1)
        await until(lambda: {d.counter("hits").to_json() for d in docs} == {6 * 8})
        await until(lambda: len({repr(sorted(d.map("meta").to_dict().items())) for d in docs}) == 1)
        final = str(docs[0].text("body"))
        async with httpx.AsyncClient() as http:
            status = (await http.get(f"{servers[0].url}/api/status")).json()
        assert status["cluster_peers"] == 2  # it hears the two others
        assert status["instance"] == f"{servers[0].state.hub.replica:x}"
        # the store holds the same document: a fresh instance loads it
        async with (
            running(settings(), Shared(store), LocalBus()) as fresh,
            cowrite.connect(fresh.url, doc="shared") as reader,
        ):
            assert str(reader.text("body")) == final
            assert reader.counter("hits").to_json() == 48


async def test_a_lost_bus_message_is_read_from_the_store() -> None:
    async with cluster(2) as (servers, _store, bus):
        a = await ThinClient.connect(servers[0].ws_url, "a", "gap")
        b = await ThinClient.connect(servers[1].ws_url, "b", "gap")
        lost: list[int] = []

        def drop_first_update(channel: str, message: bytes) -> bool:
            note = decode_note(message)
            if isinstance(note, UpdateNote) and not lost:
                lost.append(note.seq)
                return True
            return False

        bus.drop = drop_first_update
        a.insert("text:t", 0, "one ")
        await a.flush()
        await a.settle(1)
        bus.drop = None
        a.insert("text:t", 4, "two")
        await a.flush()
        # b sees seq 2 without seq 1: the gap sends it to the store for seq 1
        await b.wait_for(lambda: b.text("text:t") == "one two")
        assert lost == [1]
        await a.close()
        await b.close()


async def test_a_client_moving_to_another_instance_is_applied_once(raw: Any) -> None:
    async with cluster(2) as (servers, _store, _bus):
        a = await ThinClient.connect(servers[0].ws_url, "mover", "move")
        a.insert("text:t", 0, "hello")
        await a.flush()
        await a.settle(1)
        joined_epoch = a.joined["epoch"]
        version = a.version
        op = {"type": "seq", "node": "text:t", "edit": [5, " world"]}
        await a.send(
            {"type": "edit", "doc": "move", "edit_id": "e2", "version": version, "ops": [op]}
        )
        await a.expect("ack", where=lambda m: m["edit_id"] == "e2")
        await a.close()  # the ack was "lost": the client resends e2 to the other instance
        b = await raw(servers[1].ws_url, "mover")
        await b.send({"type": "join", "doc": "move", "version": version, "epoch": joined_epoch})
        joined = await b.expect("joined")
        assert joined["epoch"] != joined_epoch  # another numbering: a snapshot, not a catch-up
        assert joined.get("snapshot") is not None
        v = joined["version"]
        await b.send({"type": "edit", "doc": "move", "edit_id": "e2", "version": v, "ops": [op]})
        await b.expect("ack", where=lambda m: m["edit_id"] == "e2")
        c = await ThinClient.connect(servers[1].ws_url, "reader", "move")
        assert c.text("text:t") == "hello world"
        await b.close()
        await c.close()


async def test_presence_and_chat_cross_instances() -> None:
    async with cluster(2) as (servers, _store, _bus):
        async with (
            cowrite.connect(servers[0].url, doc="room", name="Ann") as ann,
            cowrite.connect(servers[1].url, doc="room", name="Bob") as bob,
        ):
            ann.text("body").insert(0, "hello world")
            await ann.synced()
            await until(lambda: str(bob.text("body")) == "hello world")
            await until(lambda: {e.user.name for e in bob.presence} == {"Ann", "Bob"})
            await until(lambda: {e.user.name for e in ann.presence} == {"Ann", "Bob"})
            await ann.set_presence(cursor=("text:body", 6, 11))

            def ann_cursor() -> Any:
                entry = next((e for e in bob.presence if e.user.name == "Ann"), None)
                return None if entry is None else entry.cursor

            await until(lambda: ann_cursor() is not None)
            assert (ann_cursor().anchor, ann_cursor().head) == (6, 11)
            await ann.chat.send("hi from A")
            await until(lambda: [m.text for m in bob.chat.messages] == ["hi from A"])
        # Ann left: Bob's instance heard it (Bob is gone too; a new client checks the list)
        async with cowrite.connect(servers[1].url, doc="room", name="Cid") as cid:
            await until(lambda: {e.user.name for e in cid.presence} == {"Cid"})


async def test_members_of_a_stopped_instance_leave_everyone_s_presence() -> None:
    async with (
        cluster(1) as (servers, store, bus),
        running(settings(), Shared(store), bus) as doomed,
    ):
        if True:
            ghost = await ThinClient.connect(doomed.ws_url, "ghost", "haunt")
            async with cowrite.connect(servers[0].url, doc="haunt", name="live") as live:
                await until(lambda: len(live.presence) == 2)
                hub = doomed.state.hub
                assert hub.cluster is not None
                # the instance falls silent (no bye, no leave): as if killed
                hub.cluster._heartbeat.cancel()
                for sub in list(hub.cluster._subs.values()):
                    await sub.close()
                hub.cluster._subs.clear()
                bus.drop = lambda _c, m: decode_note(m).instance == hub.replica
                await until(lambda: len(live.presence) == 1, timeout=10)
                assert [e.user.name for e in live.presence] == ["live"]
                bus.drop = None
            await ghost.close()


async def test_store_outage_holds_acks_and_says_saving_pending() -> None:
    flaky = FlakyStore(None)
    async with cluster(2, flaky) as (servers, _store, _bus):
        a = await ThinClient.connect(servers[0].ws_url, "a", "outage")
        b = await ThinClient.connect(servers[1].ws_url, "b", "outage")
        c = await ThinClient.connect(servers[1].ws_url, "c", "outage")
        flaky.down = True
        a.insert("text:t", 0, "kept")
        await a.flush()
        # c's first edit since it joined is looked up in the store (a resend?): it waits too
        c.insert("text:t", 0, "also ")
        await c.flush()
        assert (await c.expect("saving"))["pending"] is True
        saving = await a.expect("saving")
        assert saving == {"type": "saving", "doc": "outage", "pending": True}
        await asyncio.sleep(0.5)
        assert not any(m["type"] == "ack" for m in a.inbox)
        assert b.text("text:t") == ""  # not durable: nobody else sees it
        flaky.down = False
        assert (await a.expect("saving"))["pending"] is False  # then the held edit's ack
        await a.expect("ack")
        await c.expect("ack")
        assert not c.errors
        # concurrent inserts at one place: their order is the CRDT's (by replica id)
        await b.wait_for(lambda: b.text("text:t") in ("also kept", "keptalso "))
        await a.close()
        await b.close()
        await c.close()


@pytest.mark.parametrize("instances", [2])
async def test_replicas_on_different_instances_converge(instances: int) -> None:
    async with (
        cluster(instances) as (servers, _store, _bus),
        cowrite.connect(servers[0].url, doc="r", mode="replica") as x,
        cowrite.connect(servers[1].url, doc="r", mode="replica") as y,
    ):
        if True:
            for i in range(20):
                x.text("t").insert(0, "x")
                y.text("t").insert(i, "y")
            await x.synced()
            await y.synced()
            await until(lambda: str(x.text("t")) == str(y.text("t")))
            assert sorted(str(x.text("t"))) == ["x"] * 20 + ["y"] * 20


async def test_garbage_on_the_bus_is_ignored_and_the_cluster_carries_on() -> None:
    from cowrite.server.cluster import INSTANCES, UpdateNote, doc_channel, encode_note

    async with cluster(2) as (servers, _store, bus):
        a = await ThinClient.connect(servers[0].ws_url, "a", "noise")
        b = await ThinClient.connect(servers[1].ws_url, "b", "noise")
        for channel in (doc_channel("noise"), INSTANCES):
            await bus.publish(channel, b"\xff not msgpack")
            await bus.publish(channel, encode_note(UpdateNote(7, 1, b"\x00corrupt update")))
        await bus.publish(doc_channel("noise"), encode_note(UpdateNote(7, 99, b"CWU\x01\xff")))
        a.insert("text:t", 0, "still fine")
        await a.flush()
        await a.settle(1)
        await b.wait_for(lambda: b.text("text:t") == "still fine")
        await a.close()
        await b.close()


def test_seq_sets_track_what_a_room_holds() -> None:
    from cowrite.server.cluster import SeqSet

    seqs = SeqSet(2)
    assert seqs.add(4) and seqs.has_gap and 3 not in seqs
    assert not seqs.add(4) and not seqs.add(1)
    assert seqs.add(3) and (seqs.upto, seqs.has_gap) == (4, False)
    seqs.add(9)
    seqs.add(7)
    seqs.fill_to(6)  # a snapshot covering 1..6 was merged
    assert (seqs.upto, seqs.ahead) == (7, {9})


def test_bus_notes_name_themselves() -> None:
    """What travels on the bus is readable where people look at it (``redis-cli monitor``)."""
    from cowrite.server.cluster import (
        AliveNote,
        ByeNote,
        ChatNote,
        PresenceNote,
        QueryNote,
        encode_note,
    )

    notes = [
        UpdateNote(1, 2, b"x"),
        PresenceNote(1, [], ["s"]),
        QueryNote(1),
        ChatNote(1, b"{}"),
        AliveNote(1),
        ByeNote(1),
    ]
    tags = [msgspec.msgpack.decode(encode_note(n))[0] for n in notes]
    assert tags == ["update", "presence", "query", "chat", "alive", "bye"]
    assert [decode_note(encode_note(n)) for n in notes] == notes
