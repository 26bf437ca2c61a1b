"""The Python thin client (``ThinDocState``) against the real ``Room``, not a model of it.

Two to four SDK cores talk to one ``Room`` through ``tests/vectors/room_link.py``: in-memory links
that never reorder but deliver only when Hypothesis says so, so local edits, sends, deliveries,
dropped links (losing frames both ways, acks included) and rejoins interleave freely; texts, a
list, a map and a counter are edited, and a frame is sometimes delivered twice. The room's
edit log is short (rejoins by version vector), it may change epoch (as another instance would)
and a client may create a nested node (after which rejoins get snapshots: three-way merges).

Checked at every step: each client's local view is server · in-flight · pending and its copy of
the server state is the room's document at the client's version. At the end, with every link up
and every message delivered: every client shows the room's document, every edit was applied once
(by edit id, and because every inserted character is unique: none twice, none lost).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vectors"))  # room_link.py

from room_link import DOC, Link, RoomHost, new_room

from cowrite import protocol as p
from cowrite.client.thin import ThinDocState
from cowrite.client.values import empty_value
from cowrite.rooms.wire import snapshot

TEXT = "text:body"
NOTES = "text:notes"
MAP = "map:meta"
LIST = "list:items"
COUNTER = "counter:clicks"


class Peer:
    """A client's shell: the SDK core and its current link. Like ``web/src/client.js`` (and
    unlike ``connection``, which also keeps one join outstanding itself) it sends a ``join``
    whenever the core asks, so the core's own rule (T6) is what is tested."""

    def __init__(self, client_id: str) -> None:
        self.state = ThinDocState(DOC, client_id, edit_id_prefix=client_id)
        self.link: Link | None = None
        self.merged = False  # a snapshot was merged three ways (deleted text may come back)

    @property
    def up(self) -> bool:
        return self.link is not None and self.link.open

    def join(self, host: RoomHost) -> None:
        if not self.up:
            self.link = host.connect(self.state.client_id)
        assert self.link is not None
        self.link.up.append(self.state.join_message(create=True))

    def send(self) -> None:
        if not self.up:
            return
        batch = self.state.take_batch()
        if batch is not None:
            assert self.link is not None
            self.link.up.append(batch)

    def read(self, host: RoomHost, *, twice: bool = False) -> None:
        """Deliver the next frame (``twice``: deliver it, then deliver it again)."""
        assert self.link is not None
        msg = self.link.down[0] if twice else self.link.down.popleft()
        state = self.state
        if isinstance(msg, p.Joined):
            if state.version is not None:
                self.merged |= msg.snapshot is not None
                how = "snapshot" if msg.snapshot is not None else "version"
                how = "version vector" if msg.ops is not None else how
                event(f"rejoin by {how}{' (acked)' if msg.acked else ''}")
            state.on_joined(msg)
        elif isinstance(msg, p.Remote):
            batch = state.inflight
            if (
                batch is not None
                and msg.edit_id == batch.edit_id
                and msg.client_id == state.client_id
            ):
                event("our batch came back in a catch-up")
            state.on_remote(msg)
        elif isinstance(msg, p.Ack):
            mine = state.inflight is not None and state.inflight.edit_id == msg.edit_id
            if mine and state.version is not None and msg.version <= state.version:
                event("ack of a batch the snapshot held")
            state.on_ack(msg)
        elif isinstance(msg, p.Error):
            state.on_error(msg)
        elif isinstance(msg, p.Resync):
            state.on_resync()
        if state.rejoin_needed:
            self.join(host)

    def drop(self, host: RoomHost) -> None:
        assert self.link is not None
        host.drop(self.link)
        self.state.on_disconnect()


def unique_chars() -> Iterator[str]:
    """Distinct characters, BMP and astral (emoji) alternating."""
    k = 0
    while True:
        yield chr(0x1F300 + k) if k % 2 else chr(0x4E00 + k)
        k += 1


class ThinRoomMachine(RuleBasedStateMachine):
    """SDK thin clients and a real Room over delayed links: converge, each edit exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.host = RoomHost(new_room(log_capacity=3))
        self.peers: list[Peer] = []
        self.chars = unique_chars()
        self.inserted: set[str] = set()
        self.deleted: set[str] = set()
        self.epochs = 0
        self.adds = 0

    @initialize(n=st.integers(2, 4))
    def start(self, n: int) -> None:
        self.peers = [Peer(f"c{i}") for i in range(n)]
        for peer in self.peers:
            peer.join(self.host)

    def peer(self, data: st.DataObject) -> Peer:
        return self.peers[data.draw(st.integers(0, len(self.peers) - 1), label="client")]

    @rule(data=st.data())
    def type_text(self, data: st.DataObject) -> None:
        peer = self.peer(data)
        node = data.draw(st.sampled_from([TEXT, NOTES]), label="node")
        text = peer.state.value(node, "text")
        pos = data.draw(st.integers(0, len(text)), label="pos")
        if text and data.draw(st.booleans(), label="delete"):
            pos = min(pos, len(text) - 1)
            n = data.draw(st.integers(1, min(3, len(text) - pos)), label="length")
            self.deleted.update(text[pos : pos + n])
            peer.state.local_edit(node, [pos, -n])
        else:
            s = "".join(next(self.chars) for _ in range(data.draw(st.integers(1, 3))))
            self.inserted.update(s)
            peer.state.local_edit(node, [pos, s])

    @rule(data=st.data())
    def edit_list(self, data: st.DataObject) -> None:
        peer = self.peer(data)
        items = peer.state.value(LIST, "list")
        pos = data.draw(st.integers(0, len(items)), label="pos")
        if items and pos < len(items) and data.draw(st.booleans(), label="delete"):
            peer.state.local_edit(LIST, [pos, -1])
        else:
            peer.state.local_edit(LIST, [pos, [data.draw(st.integers(0, 9))]])

    @rule(data=st.data(), amount=st.integers(-3, 3))
    def click(self, data: st.DataObject, amount: int) -> None:
        self.peer(data).state.local_add(COUNTER, amount)
        self.adds += amount

    @rule(data=st.data(), key=st.sampled_from(["x", "y"]), value=st.integers(0, 2))
    def set_key(self, data: st.DataObject, key: str, value: int) -> None:
        peer = self.peer(data)
        if value == 0:
            peer.state.local_delete(MAP, key)
        else:
            peer.state.local_set(MAP, key, value)

    @rule(data=st.data())
    def create_nested_node(self, data: st.DataObject) -> None:
        """From now on the room cannot say exact changes: rejoins get snapshots."""
        self.peer(data).state.local_set(MAP, "sub", {"$new": "text"})

    @rule(data=st.data())
    def send(self, data: st.DataObject) -> None:
        self.peer(data).send()

    @rule(data=st.data())
    def server_reads(self, data: st.DataObject) -> None:
        peer = self.peer(data)
        if peer.link is not None and peer.link.up:
            self.host.serve(peer.link)

    @rule(data=st.data())
    def client_reads(self, data: st.DataObject) -> None:
        peer = self.peer(data)
        if peer.link is not None and peer.link.down:
            peer.read(self.host)

    @rule(data=st.data())
    def client_reads_a_frame_twice(self, data: st.DataObject) -> None:
        """Not a fault of the links (they never duplicate); duplicates must be harmless anyway."""
        peer = self.peer(data)
        if peer.link is not None and peer.link.down:
            if isinstance(peer.link.down[0], p.Ack | p.Remote):
                peer.read(self.host, twice=True)
            peer.read(self.host)

    @rule(data=st.data())
    def everything_moves_for_one_client(self, data: st.DataObject) -> None:
        peer = self.peer(data)
        peer.send()
        while peer.link is not None and (peer.link.up or peer.link.down):
            if peer.link.up:
                self.host.serve(peer.link)
            else:
                peer.read(self.host)

    @rule(data=st.data(), rejoin=st.booleans())
    def drop_link(self, data: st.DataObject, rejoin: bool) -> None:
        peer = self.peer(data)
        if peer.up:
            peer.drop(self.host)
            if rejoin:
                peer.join(self.host)

    @rule(data=st.data(), rejoin=st.booleans())
    def drop_link_after_the_server_applied_a_batch(self, data: st.DataObject, rejoin: bool) -> None:
        peer = self.peer(data)
        if not peer.up:
            return
        peer.send()
        assert peer.link is not None
        while peer.link.up:
            self.host.serve(peer.link)
        peer.drop(self.host)  # the ack is lost
        if rejoin:
            peer.join(self.host)

    @rule(data=st.data())
    def reconnect(self, data: st.DataObject) -> None:
        peer = self.peer(data)
        if not peer.up:
            peer.join(self.host)

    @precondition(lambda self: self.epochs < 3)
    @rule()
    def new_epoch(self) -> None:
        """Versions are renumbered (another instance): rejoins go by version vector."""
        self.epochs += 1
        self.host.room.epoch = f"epoch-{self.epochs}"

    @invariant()
    def clients_hold_the_rooms_document_at_their_version(self) -> None:
        for peer in self.peers:
            state = peer.state
            state.check_invariants()
            if state.version is None:
                continue
            for node, value in self.host.values_at[state.version].items():
                kind = state.kind(node)
                assert state.server.get(node, empty_value(kind) if kind else None) == value

    @invariant()
    def no_edit_applied_twice(self) -> None:
        assert all(n == 1 for n in self.host.applied.values())

    def settle(self) -> None:
        for _ in range(10_000):
            moved = False
            for peer in self.peers:
                if not peer.up:
                    peer.join(self.host)
                peer.send()
                assert peer.link is not None
                if peer.link.up:
                    self.host.serve(peer.link)
                    moved = True
                if peer.link.down:
                    peer.read(self.host)
                    moved = True
            if not moved:
                return
        raise AssertionError("the clients and the room did not settle")

    def teardown(self) -> None:
        if not self.peers:
            return
        self.settle()
        room = self.host.room
        document = self.host.values()
        nodes, _ = snapshot(room.doc)
        for peer in self.peers:
            state = peer.state
            assert state.synced and state.joined and not state.rejoin_needed
            assert state.version == room.version
            for node, value in document.items():
                assert state.value(node) == value, (state.client_id, node)
            assert state.value(MAP) == nodes.get(MAP, {"value": {}})["value"]
            assert state.value(COUNTER) == self.adds
        self.no_edit_applied_twice()
        assert nodes.get(COUNTER, {"value": 0})["value"] == self.adds  # every add once
        text = document.get(TEXT, "") + document.get(NOTES, "")
        assert len(set(text)) == len(text), "a character was applied twice"
        assert self.inserted - self.deleted <= set(text), "an insert was lost"
        if not any(peer.merged for peer in self.peers):
            assert not (set(text) & self.deleted), "a deleted character came back"


ThinRoomMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_thin_clients_and_the_real_room_converge_exactly_once = ThinRoomMachine.TestCase
