"""The replica client core (``ReplicaDocState``) against a simulated server replica.

The server is an engine ``Document`` doing what a room does for replicas: ``join`` answers with
the delta the client lacks and the server's version vector, ``sync`` merges a delta (exactly-once
acks per ``edit_id``) and fans it out as ``remote_sync``. Replicas edit offline, links drop with
messages in flight, messages are delivered twice; at the end every replica holds the server's
document and every counter add counts once.
"""

from __future__ import annotations

import base64
from collections import deque
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from cowrite import protocol as p
from cowrite.client.replica import ReplicaDocState
from cowrite.engine.document import Document

TEXT = "text:body"
MAP = "map:meta"
COUNTER = "counter:clicks"
LIST = "list:items"


class SimReplicaServer:
    def __init__(self) -> None:
        self.doc = Document(1)
        self.version = 0
        self.recent: dict[tuple[str, str], int] = {}

    def join(self, msg: p.Join) -> p.Joined:
        theirs = {int(k): v for k, v in (msg.state or {}).items()}
        return p.Joined(
            doc=msg.doc,
            mode="replica",
            version=self.version,
            rights=["write"],
            delta=base64.b64encode(self.doc.delta_since(theirs)).decode(),
            state={str(r): n for r, n in self.doc.version.items()},
        )

    def sync(self, client_id: str, msg: p.Sync) -> tuple[p.Ack | None, p.RemoteSync | None]:
        key = (client_id, msg.edit_id or "")
        if msg.edit_id is not None and key in self.recent:
            return p.Ack(doc=msg.doc, edit_id=msg.edit_id, version=self.recent[key]), None
        before = self.doc.version
        self.doc.merge(base64.b64decode(msg.delta))
        remote = None
        if self.doc.version != before:
            self.version += 1
            remote = p.RemoteSync(doc=msg.doc, delta=msg.delta, version=self.version)
        if msg.edit_id is None:
            return None, remote
        if remote is not None:
            self.recent[key] = self.version
        return p.Ack(doc=msg.doc, edit_id=msg.edit_id, version=self.version), remote


class SimReplica:
    def __init__(self, k: int) -> None:
        self.state = ReplicaDocState("d", f"r{k}", Document(100 + k))
        self.up: deque[p.Message] = deque()
        self.down: deque[p.Message] = deque()
        self.connected = False
        self.member = False
        self.joining = False

    def connect(self) -> None:
        self.connected = self.joining = True
        self.up.append(self.state.join_message(create=True))

    def disconnect(self) -> None:
        self.connected = self.member = self.joining = False
        self.up.clear()
        self.down.clear()
        self.state.on_disconnect()

    def pump(self) -> None:
        if not self.connected:
            return
        if self.state.rejoin_needed:
            if not self.joining:
                self.joining = True
                self.up.append(self.state.join_message())
            return
        msg = self.state.take_sync()
        if msg is not None:
            self.up.append(msg)

    def deliver(self, msg: p.Message) -> None:
        if isinstance(msg, p.Joined):
            self.joining = False
            self.state.on_joined(msg)
        elif isinstance(msg, p.RemoteSync):
            self.state.on_remote_sync(msg)
        elif isinstance(msg, p.Ack):
            self.state.on_ack(msg)
        self.pump()


class ReplicaNet:
    def __init__(self, n: int) -> None:
        self.server = SimReplicaServer()
        self.replicas = [SimReplica(k) for k in range(n)]

    def server_step(self, r: SimReplica) -> None:
        msg = r.up.popleft()
        if isinstance(msg, p.Join):
            r.member = True
            r.down.append(self.server.join(msg))
        elif isinstance(msg, p.Sync):
            ack, remote = self.server.sync(r.state.client_id, msg)
            if ack is not None:
                r.down.append(ack)
            if remote is not None:
                for other in self.replicas:
                    if other is not r and other.member:
                        other.down.append(remote)

    def settle(self, limit: int = 100_000) -> None:
        for r in self.replicas:
            if not r.connected:
                r.connect()
        for _ in range(limit):
            moved = False
            for r in self.replicas:
                r.pump()
                if r.up:
                    self.server_step(r)
                    moved = True
                if r.down:
                    r.deliver(r.down.popleft())
                    moved = True
            if not moved:
                return
        raise AssertionError("the network did not settle")


def test_offline_edits_reach_the_server_on_reconnect() -> None:
    net = ReplicaNet(2)
    a, b = net.replicas
    net.settle()
    a.disconnect()
    a.state.local_edit(TEXT, ["offline 😀"])
    a.state.local_add(COUNTER, 2)
    b.state.local_edit(TEXT, ["online "])
    net.settle()
    assert a.state.synced and b.state.synced
    assert net.server.doc.to_json() == a.state.document.to_json() == b.state.document.to_json()
    assert a.state.value(COUNTER) == 2
    assert sorted(a.state.value(TEXT)) == sorted("offline 😀online ")


def test_a_sync_is_resent_after_a_lost_ack_and_applied_once() -> None:
    net = ReplicaNet(1)
    (r,) = net.replicas
    net.settle()
    r.state.local_add(COUNTER, 5)
    r.pump()
    net.server_step(r)  # applied, ack in flight
    r.disconnect()
    assert not r.state.synced
    net.settle()
    assert r.state.synced and net.server.doc.node_json(net.server.doc.counter("clicks").id) == 5


def test_values_and_change_events_use_wire_ids() -> None:
    state = ReplicaDocState("d", "me", Document(5))
    state.local_set(MAP, "child", {"$new": "text"})
    child = state.value(MAP)["child"]
    assert isinstance(child, dict) and child["$node"].startswith("#5.")
    state.local_edit(child["$node"], ["hi"])
    assert state.value(child["$node"]) == "hi"
    assert state.kind(child["$node"]) == "text"
    other = Document(6)
    changes = other.merge(state.document.delta_since({}))
    wire = ReplicaDocState("d", "o", other)
    ops = [wire.change_to_wire(c) for c in changes]
    assert p.SetKey(node=MAP, key="child", value={"$node": child["$node"]}) in ops
    assert p.SeqEdit(node=child["$node"], edit=["hi"]) in ops


N_REPLICAS = 3


class ReplicaClientsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.net = ReplicaNet(N_REPLICAS)
        self.adds = 0
        for r in self.net.replicas:
            r.connect()

    def replica(self, i: int) -> SimReplica:
        return self.net.replicas[i]

    @rule(i=st.integers(0, N_REPLICAS - 1), data=st.data())
    def type_text(self, i: int, data: st.DataObject) -> None:
        state = self.replica(i).state
        text: str = state.value(TEXT)
        pos = data.draw(st.integers(0, len(text)))
        if text and pos < len(text) and data.draw(st.booleans()):
            state.local_edit(TEXT, [pos, -1])
        else:
            state.local_edit(TEXT, [pos, data.draw(st.sampled_from(["a", "😀", "ß", "xyz"]))])

    @rule(i=st.integers(0, N_REPLICAS - 1), data=st.data())
    def edit_list(self, i: int, data: st.DataObject) -> None:
        state = self.replica(i).state
        items: list[Any] = state.value(LIST)
        pos = data.draw(st.integers(0, len(items)))
        state.local_edit(LIST, [pos, [data.draw(st.integers(0, 9))]])

    @rule(i=st.integers(0, N_REPLICAS - 1), amount=st.integers(-3, 3))
    def click(self, i: int, amount: int) -> None:
        self.replica(i).state.local_add(COUNTER, amount)
        self.adds += amount

    @rule(i=st.integers(0, N_REPLICAS - 1), key=st.sampled_from("xy"), value=st.integers(0, 3))
    def set_key(self, i: int, key: str, value: int) -> None:
        state = self.replica(i).state
        if value:
            state.local_set(MAP, key, value)
        else:
            state.local_delete(MAP, key)

    @rule(i=st.integers(0, N_REPLICAS - 1))
    def send(self, i: int) -> None:
        self.replica(i).pump()

    @rule(i=st.integers(0, N_REPLICAS - 1))
    def server_reads(self, i: int) -> None:
        r = self.replica(i)
        if r.up:
            self.net.server_step(r)

    @rule(i=st.integers(0, N_REPLICAS - 1), duplicate=st.booleans())
    def replica_reads(self, i: int, duplicate: bool) -> None:
        r = self.replica(i)
        if r.down:
            msg = r.down[0] if duplicate else r.down.popleft()
            r.deliver(msg)

    @rule(i=st.integers(0, N_REPLICAS - 1))
    def drop_link(self, i: int) -> None:
        self.replica(i).disconnect()

    @rule(i=st.integers(0, N_REPLICAS - 1))
    def reconnect(self, i: int) -> None:
        r = self.replica(i)
        if not r.connected:
            r.connect()

    @invariant()
    def replicas_are_sound(self) -> None:
        for r in self.net.replicas:
            r.state.document.check_invariants()
            known = r.state.server_known
            server = self.net.server.doc.version
            assert all(server.get(k, 0) >= n for k, n in known.items()), "server_known overshoots"

    def teardown(self) -> None:
        net = self.net
        net.settle()
        expected = net.server.doc.to_json()
        for r in net.replicas:
            assert r.state.synced
            assert r.state.document.to_json() == expected
            assert r.state.document.version == net.server.doc.version
        assert expected.get("clicks", 0) == self.adds


ReplicaClientsMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_replicas_converge_exactly_once = ReplicaClientsMachine.TestCase
