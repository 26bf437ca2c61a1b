"""The sans-I/O Room without sockets: random schedules of joins, edits, syncs, presence and
reconnects across sessions converge; duplicate edit ids apply once; bad inputs get their error
codes and leave the room unchanged; the persisted updates replay to the same document."""

from __future__ import annotations

import base64
from collections import deque
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from cowrite import protocol as p
from cowrite.client.values import diff_text
from cowrite.engine import ot
from cowrite.engine.document import Document
from cowrite.engine.encoding import encode_ops
from cowrite.engine.ops import AddOp
from cowrite.rooms.room import Member, Outcome, Room, RoomError, RoomLimits

DOC = "d"
ALL = frozenset({"read", "write", "chat"})
Msg = dict[str, Any]


def member(
    session: str,
    client_id: str = "",
    mode: str = "thin",
    rights: frozenset[str] = ALL,
    now: int = 0,
) -> Member:
    return Member(session, client_id or session, p.User(id=client_id or session), mode, rights, now)


def edit(ops: list[Msg], version: int, edit_id: str = "e") -> p.Edit:
    return msgspec.convert(
        {"type": "edit", "doc": DOC, "edit_id": edit_id, "version": version, "ops": ops}, p.Edit
    )


def seq(node: str, op: list[Any]) -> Msg:
    return {"type": "seq", "node": node, "edit": op}


def builtins(msg: p.Message) -> Msg:
    out: Msg = msgspec.to_builtins(msg)
    return out


# ------------------------------------------------------------------ simulated clients


class SimThin:
    """The thin-client algorithm of docs/protocol.md, synchronously."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id
        self.session = ""
        self.joined = False
        self.version = 0
        self.nodes: dict[str, Any] = {}
        self.inflight: tuple[str, list[Msg]] | None = None
        self.seq_inflight: dict[str, list[Any]] = {}
        self.seq_buffer: dict[str, list[Any]] = {}
        self.buffer: list[Msg] = []
        self.keys_pending: dict[tuple[str, str | None], int] = {}
        self.edits = 0
        self.last_acked: tuple[p.Edit, int] | None = None
        self.sent: dict[str, p.Edit] = {}
        self.vv: dict[str, int] | None = None  # the version vector of the server state
        self.checks = 0  # ``checksum`` entries verified (text with nothing of ours outstanding)
        self.server_text = ""  # "text:t" as the server has it at ``version`` (for merges)

    # local edits
    def text(self) -> str:
        value = self.nodes.get("text:t", "")
        assert isinstance(value, str)
        return value

    def splice(self, pos: int, delete: int, insert: str) -> None:
        text = self.text()
        pos = min(pos, len(text))
        delete = min(delete, len(text) - pos)
        if not delete and not insert:
            return
        op = ot.from_splice(pos, delete, insert)
        self.nodes["text:t"] = ot.apply(text, op)
        self.seq_buffer["text:t"] = ot.compose(self.seq_buffer.get("text:t", []), op)

    def set_key(self, node: str, key: str | None, value: Any) -> None:
        if key is None:
            self.nodes[node] = value
        else:
            self.nodes.setdefault(node, {})[key] = value
        self.keys_pending[node, key] = self.keys_pending.get((node, key), 0) + 1
        self.buffer.append({"type": "set", "node": node, "key": key, "value": value})

    def add(self, amount: int) -> None:
        self.nodes["counter:n"] = self.nodes.get("counter:n", 0) + amount
        self.buffer.append({"type": "add", "node": "counter:n", "amount": amount})

    def take_batch(self) -> p.Edit | None:
        if self.inflight is not None or not self.joined:
            return None
        ops = [seq(n, e) for n, e in self.seq_buffer.items() if e] + self.buffer
        if not ops:
            return None
        self.edits += 1
        edit_id = f"{self.client_id}.{self.edits}"
        self.inflight = (edit_id, ops)
        self.seq_inflight, self.seq_buffer, self.buffer = self.seq_buffer, {}, []
        self.sent[edit_id] = edit(ops, self.version, edit_id)
        return self.sent[edit_id]

    @property
    def idle(self) -> bool:
        return self.inflight is None and not self.buffer and not any(self.seq_buffer.values())

    # incoming
    def on(self, msg: Msg) -> None:
        kind = msg["type"]
        if kind == "joined":
            self.joined = True
            if msg.get("ops") is not None:  # the exact changes since our state
                if self.inflight is not None and msg.get("acked") == self.inflight[0]:
                    self._acked(None)  # applied already: ``ops`` come after it
                for op in msg["ops"]:
                    self._apply_remote(op)
                self.version = msg["version"]
                self.vv = dict(msg["state"])
                return
            self.version = msg["version"]
            if msg.get("state") is not None:
                self.vv = dict(msg["state"])
            if msg.get("snapshot") is not None:
                values = {n: e["value"] for n, e in msg["snapshot"].items()}
                if self.inflight is not None and msg.get("acked") == self.inflight[0]:
                    self._acked(None)  # the snapshot holds it
                if self.idle:
                    self.nodes, self.server_text = values, values.get("text:t", "")
                    return
                # three-way merge: text rebased like a remote, our writes and adds kept on top
                assert self.inflight is None, "the snapshot answers a join whose batch it holds"
                diff = diff_text(self.server_text, values.get("text:t", ""))
                self._apply_remote(seq("text:t", diff))
                old, self.nodes = self.nodes, {**values, "text:t": self.nodes.get("text:t", "")}
                for node, key in self.keys_pending:
                    if key is None:
                        self.nodes[node] = old.get(node)
                    else:
                        self.nodes[node] = {**self.nodes.get(node, {}), key: old[node][key]}
                for op in self.buffer:
                    if op["type"] == "add":
                        self.nodes[op["node"]] = self.nodes.get(op["node"], 0) + op["amount"]
        elif kind == "ack":
            if self.inflight is not None and msg["edit_id"] == self.inflight[0]:
                self._acked(msg["version"])
                self._track(msg)
        elif kind == "remote":
            mine = self.inflight is not None and (msg.get("client_id"), msg.get("edit_id")) == (
                self.client_id,
                self.inflight[0],
            )
            if mine:  # our own edit in a catch-up: it is acknowledged
                self._acked(msg["version"])
                self._track(msg)
                return
            for op in msg["ops"]:
                self._apply_remote(op)
            self.version = msg["version"]
            self._track(msg)
        elif kind == "checksum" and msg["version"] == self.version:
            for node, expected in msg["sums"].items():
                if not self.seq_inflight.get(node) and not self.seq_buffer.get(node):
                    self.checks += 1
                    assert p.text_checksum(self.nodes.get(node, "")) == expected, "diverged"

    def _track(self, msg: Msg) -> None:
        if self.vv is not None:
            self.vv.update(msg.get("vv", {}))

    def _acked(self, version: int | None) -> None:
        assert self.inflight is not None
        if version is not None:
            self.last_acked = (self.sent[self.inflight[0]], version)
        for op in self.inflight[1]:
            if op["type"] in ("set", "del"):
                ref = (op["node"], op.get("key"))
                self.keys_pending[ref] -= 1
                if not self.keys_pending[ref]:
                    del self.keys_pending[ref]
        mine = self.seq_inflight.get("text:t")
        if mine:
            self.server_text = ot.apply(self.server_text, mine)
        self.inflight = None
        self.seq_inflight = {}
        if version is not None:
            self.version = version

    def _apply_remote(self, op: Msg) -> None:
        node = op["node"]
        if op["type"] == "seq":
            e = op["edit"]
            if node == "text:t":
                self.server_text = ot.apply(self.server_text, e)
            for pending in (self.seq_inflight, self.seq_buffer):
                mine = pending.get(node)
                if mine:
                    e, pending[node] = ot.transform(e, mine, "right"), ot.transform(mine, e, "left")
            self.nodes[node] = ot.apply(self.nodes.get(node, ""), e)
        elif op["type"] in ("set", "del"):
            key = op.get("key")
            if (node, key) in self.keys_pending:
                return
            if key is None:
                self.nodes[node] = op["value"]
            elif op["type"] == "del":
                self.nodes.setdefault(node, {}).pop(key, None)
            else:
                self.nodes.setdefault(node, {})[key] = op["value"]
        elif op["type"] == "add":
            self.nodes[node] = self.nodes.get(node, 0) + op["amount"]

    def value(self) -> dict[str, Any]:
        # like the SDK's handle, a counter the client never heard of reads 0 (a rejoin's
        # changes carry nothing for a counter whose only add was 0)
        return {"n": 0} | {n.partition(":")[2]: v for n, v in self.nodes.items()}


class SimReplica:
    def __init__(self, client_id: str, replica: int) -> None:
        self.client_id = client_id
        self.session = ""
        self.doc = Document(replica, now_ms=lambda: 0)
        self.sent: dict[int, int] = {}
        self.joined = False
        self.syncs = 0

    def on(self, msg: Msg) -> None:
        if msg["type"] == "joined":
            self.joined = True
            self.doc.merge(base64.b64decode(msg["delta"]))
            self.sent = {int(r): n for r, n in msg["state"].items()}
        elif msg["type"] == "remote_sync":
            self.doc.merge(base64.b64decode(msg["delta"]))

    def take_sync(self) -> p.Sync | None:
        if not self.joined or self.doc.version == self.sent:
            return None
        delta = self.doc.delta_since(self.sent)
        self.sent = self.doc.version
        self.syncs += 1
        b64 = base64.b64encode(delta).decode()
        return p.Sync(doc=DOC, delta=b64, edit_id=f"{self.client_id}.s{self.syncs}")

    @property
    def idle(self) -> bool:
        return self.doc.version == self.sent


Sim = SimThin | SimReplica


# ------------------------------------------------------------------ the network


class World:
    """A room, its clients and the messages on their way to each (in the shell's order)."""

    def __init__(self, log_capacity: int = 10_000) -> None:
        self.room = Room(
            DOC,
            Document(1, now_ms=lambda: 0),
            limits=RoomLimits(edit_log_capacity=log_capacity, idle_after_ms=50),
        )
        self.room.checks.min_versions = 1  # a checksum at every version that changes a text
        self.clients: dict[str, Sim] = {}  # by session
        self.queues: dict[str, deque[Msg]] = {}
        self.persisted: list[bytes] = []
        self.now = 0
        self._sessions = 0

    def carry(self, outcome: Outcome, sender: str | None) -> None:
        """What the hub does with an outcome: persist, reply, broadcast to the others."""
        if outcome.persist is not None:
            self.store(outcome)
        if sender is not None:
            self.queues[sender].extend(builtins(m) for m in outcome.reply)
        for msg, audience in outcome.broadcast:
            data = builtins(msg)
            for session, m in self.room.members.items():
                if session != sender and audience in ("all", m.mode):
                    self.queues[session].append(data)

    def store(self, outcome: Outcome) -> None:
        assert outcome.persist is not None
        self.persisted.append(outcome.persist)
        assert outcome.version == len(self.persisted)

    def join(self, client: Sim, *, version: int | None = None, rights: frozenset[str] = ALL) -> str:
        self._sessions += 1
        session = f"s{self._sessions}"
        mode = "replica" if isinstance(client, SimReplica) else "thin"
        client.session, client.joined = session, False
        self.clients[session] = client
        self.queues[session] = deque()
        state = None
        if isinstance(client, SimReplica):
            state = {str(r): n for r, n in client.doc.version.items()}
        elif version is not None:
            state = client.vv
        inflight = None
        if isinstance(client, SimThin) and state is not None and client.inflight is not None:
            inflight = client.inflight[0]
        msg = p.Join(  # type: ignore[arg-type]
            doc=DOC, mode=mode, version=version, state=state, inflight=inflight
        )
        self.carry(
            self.room.join(member(session, client.client_id, mode, rights, self.now), msg, []),
            session,
        )
        while self.deliver(session):  # ``joined`` and the catch-up: all there is for it yet
            pass
        return session

    def leave(self, session: str) -> None:
        self.clients.pop(session)
        self.queues.pop(session)
        self.carry(self.room.leave(session), None)

    def deliver(self, session: str) -> bool:
        queue = self.queues[session]
        if not queue:
            return False
        self.clients[session].on(queue.popleft())
        return True

    def send(self, session: str) -> None:
        client = self.clients[session]
        if isinstance(client, SimThin):
            batch = client.take_batch()
            if batch is not None:
                self.carry(self.room.edit(session, batch, self.now), session)
        else:
            sync = client.take_sync()
            if sync is not None:
                self.carry(self.room.sync(session, sync, self.now), session)

    def settle(self) -> None:
        for _ in range(10_000):
            busy = False
            for session in list(self.clients):
                while self.deliver(session):
                    busy = True
                client = self.clients[session]
                if not client.idle:
                    self.send(session)
                    busy = True
            if not busy:
                return
        raise AssertionError("the clients never settled")

    def check_converged(self) -> None:
        expected = self.room.doc.to_json()
        for client in self.clients.values():
            if isinstance(client, SimThin):
                assert client.version == self.room.version
                got = client.value()
                empty = {str: "", int: 0, dict: {}, list: []}  # a root a diff never mentioned
                assert {k: got.get(k, empty.get(type(v))) for k, v in expected.items()} == expected
                assert all(k in expected for k, v in got.items() if v not in ("", 0, {}, None))
            else:
                assert client.doc.to_json() == expected

    def replayed(self) -> Room:
        """A room loaded from the persisted updates, like the hub does after a restart."""
        room = Room(DOC, Document(2, now_ms=lambda: 0))
        for k, data in enumerate(self.persisted, 1):
            room.load_update(k, data)
        return room


# ------------------------------------------------------------------ the state machine

WORDS = st.sampled_from(["a", "bc", "🙂", "déf", "👍🏽x", " "])


class Schedules(RuleBasedStateMachine):
    thin = Bundle("thin")
    replicas = Bundle("replicas")

    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.names = 0

    def _name(self) -> str:
        self.names += 1
        return f"c{self.names}"

    @initialize(target=thin)
    def first(self) -> Any:
        c = SimThin(self._name())
        self.world.join(c)
        return c

    @rule(target=thin)
    def join_thin(self) -> Any:
        c = SimThin(self._name())
        self.world.join(c)
        return c

    @rule(target=replicas)
    def join_replica(self) -> Any:
        name = self._name()
        c = SimReplica(name, 1000 + self.names)  # replica ids are unique per replica
        self.world.join(c)
        return c

    @rule(c=thin, pos=st.integers(0, 30), delete=st.integers(0, 3), text=WORDS, send=st.booleans())
    def type_thin(self, c: SimThin, pos: int, delete: int, text: str, send: bool) -> None:
        if c.session in self.world.clients and c.joined:  # editing starts at ``joined``
            c.splice(pos, delete, text)
            if send:
                self.world.send(c.session)

    @rule(c=thin, value=st.integers(0, 5), which=st.sampled_from(["map", "register", "add"]))
    def write_thin(self, c: SimThin, value: int, which: str) -> None:
        if c.session not in self.world.clients or not c.joined:
            return
        if which == "map":
            c.set_key("map:m", "k", f"{c.client_id}:{value}")
        elif which == "register":
            c.set_key("register:r", None, [c.client_id, value])
        else:
            c.add(value - 2)

    @rule(
        c=replicas,
        pos=st.integers(0, 30),
        delete=st.integers(0, 3),
        text=WORDS,
        value=st.integers(0, 5),
    )
    def type_replica(self, c: SimReplica, pos: int, delete: int, text: str, value: int) -> None:
        t = c.doc.text("t")
        pos = min(pos, len(t))
        if delete and pos < len(t):
            t.delete(pos, min(delete, len(t) - pos))
        t.insert(pos, text)
        if value == 0:
            c.doc.map("m").set("k", f"{c.client_id}:{pos}")
        elif value == 1:
            c.doc.counter("n").add(pos - 3)

    @rule(c=st.one_of(thin, replicas))
    def send(self, c: Sim) -> None:
        if c.session in self.world.clients:
            self.world.send(c.session)

    @rule(c=st.one_of(thin, replicas), n=st.integers(1, 5))
    def deliver(self, c: Sim, n: int) -> None:
        if c.session in self.world.clients:
            for _ in range(n // 2 + 1):
                self.world.deliver(c.session)

    @rule(c=thin)
    def resend_acked(self, c: SimThin) -> None:
        """A duplicate of an acknowledged edit is acknowledged again, never applied twice."""
        if c.session not in self.world.clients or c.last_acked is None:
            return
        sent, version = c.last_acked
        before = (self.world.room.version, self.world.room.doc.to_json())
        out = self.world.room.edit(c.session, sent, self.world.now)
        assert out.persist is None and not out.broadcast
        (ack,) = [builtins(m) for m in out.reply]
        ack.pop("vv", None)
        assert ack == {"type": "ack", "doc": DOC, "edit_id": sent.edit_id, "version": version}
        assert (self.world.room.version, self.world.room.doc.to_json()) == before

    @rule(c=thin, catch_up=st.booleans())
    def reconnect(self, c: SimThin, catch_up: bool) -> None:
        """The connection drops (undelivered messages are lost) and the client rejoins."""
        if c.session not in self.world.clients or (not catch_up and not c.idle):
            return  # (a snapshot join with pending edits needs a three-way merge)
        self.world.leave(c.session)
        if not catch_up:
            self.world.join(c)
            return
        event(f"catch-up reconnect, {'with' if c.inflight else 'without'} an edit in flight")
        self.world.join(c, version=c.version)  # its edit in flight comes back in the catch-up
        if c.inflight is not None:  # not in the catch-up: resend it (same id)
            self.world.carry(
                self.world.room.edit(c.session, c.sent[c.inflight[0]], self.world.now), c.session
            )

    @rule(c=thin, anchor=st.integers(0, 40), head=st.integers(0, 40))
    def cursor(self, c: SimThin, anchor: int, head: int) -> None:
        if c.session not in self.world.clients:
            return
        cursor = p.Cursor(node="text:t", anchor=anchor, head=head, version=c.version)
        try:
            out = self.world.room.presence(c.session, p.SetPresence(doc=DOC, cursor=cursor), 0)
        except RoomError as exc:
            assert exc.code is p.ErrorCode.UNKNOWN_NODE  # nobody typed yet
            return
        self.world.carry(out, c.session)

    @rule(c=thin, kind=st.sampled_from(["range", "future", "node", "kind", "ot", "json"]))
    def bad_edit(self, c: SimThin, kind: str) -> None:
        """A refused edit raises its code and leaves no trace."""
        if c.session not in self.world.clients:
            return
        room = self.world.room
        ops, code = {
            "range": ([seq("text:t", [10**6, "x"])], p.ErrorCode.INVALID_EDIT),
            "future": ([seq("text:t", ["x"])], p.ErrorCode.FUTURE_VERSION),
            "node": ([seq("#77.3", ["x"])], p.ErrorCode.UNKNOWN_NODE),
            "kind": (
                [seq("text:fresh", ["ok"]), seq("counter:n", ["x"])],
                p.ErrorCode.INVALID_EDIT,
            ),
            "ot": ([seq("text:other", ["a", 0])], p.ErrorCode.INVALID_EDIT),
            "json": (
                [{"type": "set", "node": "map:new", "key": "k", "value": 2**64}],
                p.ErrorCode.INVALID_EDIT,
            ),
        }[kind]
        version = room.version + 5 if kind == "future" else room.version
        before = (room.version, room.doc.to_json(), set(room.doc.roots))
        with pytest.raises(RoomError) as err:
            room.edit(c.session, edit(ops, version, f"bad.{kind}"), 0)
        assert err.value.code is code
        assert (room.version, room.doc.to_json(), set(room.doc.roots)) == before

    @rule(ms=st.integers(0, 200))
    def tick(self, ms: int) -> None:
        self.world.now += ms
        self.world.carry(self.world.room.tick(self.world.now), None)

    @invariant()
    def presence_is_consistent(self) -> None:
        room = self.world.room
        length = len(room.doc.to_json().get("t", ""))
        entries = room.entries()
        assert {e.session for e in entries} == set(self.world.clients)
        for e in entries:
            if e.cursor is not None:
                assert 0 <= e.cursor.anchor <= length and 0 <= e.cursor.head <= length

    @precondition(lambda self: self.world.clients)
    @rule()
    def settle_and_compare(self) -> None:
        self.world.settle()
        self.world.check_converged()

    def teardown(self) -> None:
        world = self.world
        world.settle()
        world.check_converged()
        world.room.doc.check_invariants()
        replayed = world.replayed()
        assert replayed.version == world.room.version
        assert replayed.doc.to_json() == world.room.doc.to_json()
        # the replayed room still knows which edit made each version (catch-up, exactly-once)
        live = world.room.join(member("probe"), p.Join(doc=DOC, version=0), [])
        again = replayed.join(member("probe"), p.Join(doc=DOC, version=0), [])

        def origins(out: Outcome) -> list[tuple[int, str, str]]:
            return [
                (m.version, m.client_id, m.edit_id) for m in out.reply if isinstance(m, p.Remote)
            ]

        assert origins(again) == origins(live)
        for key, (version, digest) in world.room._recent.items():
            assert replayed._recent[key] == (version, digest)  # the digest survives a replay


Schedules.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
test_random_schedules_converge = Schedules.TestCase


# ------------------------------------------------------------------ examples


def _room(**limits: Any) -> Room:
    return Room(DOC, Document(1, now_ms=lambda: 0), limits=RoomLimits(**limits))


def _joined(
    room: Room, session: str = "s", mode: str = "thin", rights: frozenset[str] = ALL
) -> None:
    room.join(member(session, mode=mode, rights=rights), p.Join(doc=DOC, mode=mode), [])  # type: ignore[arg-type]


def test_edit_before_join_and_without_write_access() -> None:
    room = _room()
    with pytest.raises(RoomError) as err:
        room.edit("s", edit([seq("text:t", ["x"])], 0), 0)
    assert err.value.code is p.ErrorCode.NOT_JOINED
    _joined(room, "reader", rights=frozenset({"read"}))
    with pytest.raises(RoomError) as err:
        room.edit("reader", edit([seq("text:t", ["x"])], 0), 0)
    assert err.value.code is p.ErrorCode.FORBIDDEN
    with pytest.raises(RoomError) as err:
        room.presence("nobody", p.SetPresence(doc=DOC, active=False), 0)
    assert err.value.code is p.ErrorCode.NOT_JOINED


def test_stale_versions_need_a_resync() -> None:
    room = _room(edit_log_capacity=3)
    _joined(room)
    for i in range(5):
        room.edit("s", edit([seq("text:t", [i, "x"] if i else ["x"])], i, f"e{i}"), 0)
    with pytest.raises(RoomError) as err:
        room.edit("s", edit([seq("text:t", ["y"])], 1, "old"), 0)
    assert err.value.code is p.ErrorCode.STALE_VERSION and err.value.resync
    # a thin rejoin from a version the log no longer has gets a snapshot
    out = room.join(member("late"), p.Join(doc=DOC, version=1), [])
    joined = out.reply[0]
    assert isinstance(joined, p.Joined) and joined.snapshot is not None and len(out.reply) == 1
    out = room.join(member("recent"), p.Join(doc=DOC, version=3), [])
    assert [type(m) for m in out.reply] == [p.Joined, p.Remote, p.Remote]


def test_nodes_have_a_length_limit() -> None:
    room = _room(max_node_length=5)
    _joined(room)
    with pytest.raises(RoomError) as err:
        room.edit("s", edit([seq("text:t", ["123456"])], 0), 0)
    assert err.value.code is p.ErrorCode.DOCUMENT_TOO_LARGE
    assert room.doc.roots == {}  # the root the edit named is not left behind


def test_a_batch_is_all_or_nothing() -> None:
    room = _room()
    _joined(room)
    ops = [
        {"type": "set", "node": "map:m", "key": "k", "value": 1},
        {"type": "add", "node": "counter:c", "amount": 2},
        seq("list:l", ["text into a list"]),
    ]
    with pytest.raises(RoomError) as err:
        room.edit("s", edit(ops, 0), 0)
    assert err.value.code is p.ErrorCode.INVALID_EDIT
    assert room.version == 0 and room.doc.to_json() == {}
    with pytest.raises(RoomError) as err:
        room.edit("s", edit([{"type": "add", "node": "counter:c", "amount": 2**63}], 0), 0)
    assert err.value.code is p.ErrorCode.INVALID_EDIT
    assert room.doc.to_json() == {}


def test_new_nested_nodes_in_lists_are_sent_as_node_ids() -> None:
    room = _room()
    _joined(room)
    _joined(room, "other")
    out = room.edit("s", edit([seq("list:l", [[1, {"$new": "text"}, {"$new": "map"}]])], 0), 0)
    ack = out.reply[0]
    assert isinstance(ack, p.Ack) and len(ack.created) == 2
    remote = builtins(out.broadcast[0][0])
    assert remote["ops"][0]["edit"] == [[1, {"$node": ack.created[0]}, {"$node": ack.created[1]}]]
    out = room.edit("s", edit([seq(ack.created[0], ["inside"])], 1, "e2"), 0)
    assert room.doc.to_json() == {"l": [1, "inside", {}]}
    p.encoder.encode(out.broadcast[0][0])  # every broadcast encodes


def test_a_failed_replica_join_adds_no_member() -> None:
    room = _room()
    with pytest.raises(RoomError) as err:
        room.join(
            member("r", mode="replica"), p.Join(doc=DOC, mode="replica", state={"zero": 1}), []
        )
    assert err.value.code is p.ErrorCode.BAD_MESSAGE
    assert room.members == {}


@pytest.mark.parametrize("state", [{"zero": 1}, {"-3": 1}, {"7": -1}])
def test_a_thin_rejoin_with_a_malformed_state_adds_no_member(state: dict[str, int]) -> None:
    room = _room()
    join = p.Join(doc=DOC, mode="thin", version=0, epoch="elsewhere", state=state)
    with pytest.raises(RoomError) as err:
        room.join(member("t"), join, [])
    assert err.value.code is p.ErrorCode.BAD_MESSAGE
    assert room.members == {}


def test_bad_deltas_are_refused_whole() -> None:
    room = _room()
    _joined(room, "r", mode="replica")
    for delta, code in [
        ("***", p.ErrorCode.BAD_MESSAGE),
        (base64.b64encode(b"garbage!").decode(), p.ErrorCode.BAD_MESSAGE),
        (base64.b64encode(b"CWS\x01snapshot").decode(), p.ErrorCode.BAD_MESSAGE),
    ]:
        with pytest.raises(RoomError) as err:
            room.sync("r", p.Sync(doc=DOC, delta=delta), 0)
        assert err.value.code is code
    src = Document(99)
    src.text("t").insert(0, "x\ud800y")  # a lone surrogate: JSON cannot carry it
    with pytest.raises(RoomError) as err:
        room.sync("r", p.Sync(doc=DOC, delta=base64.b64encode(src.delta_since({})).decode()), 0)
    assert err.value.code is p.ErrorCode.BAD_MESSAGE
    assert room.version == 0 and room.doc.to_json() == {} and room.doc.roots == {}


def test_a_delta_refused_part_way_keeps_and_records_the_applied_part() -> None:
    room = _room()
    _joined(room, "r", mode="replica")
    _joined(room, "t")
    src = Document(7)
    src.text("t").insert(0, "hi")
    src.counter("c").add(1)
    insert, add = src.ops_since({})
    bad = AddOp(add.id, insert.node, 5)  # an add aimed at the text
    data = base64.b64encode(encode_ops(src, [insert, bad])).decode()
    out = room.sync("r", p.Sync(doc=DOC, delta=data, edit_id="x"), 0)
    assert [m.code for m in out.reply if isinstance(m, p.Error)] == [p.ErrorCode.INVALID_EDIT]
    assert out.version == 1 and out.edit_keys == []  # not acknowledged: may be resent
    remote = next(m for m, audience in out.broadcast if audience == "thin")
    assert builtins(remote)["ops"] == [seq("text:t", ["hi"])]
    assert room.doc.to_json() == {"t": "hi"}
    replay = Room(DOC, Document(2))
    assert out.persist is not None
    replay.load_update(1, out.persist)
    assert replay.doc.to_json() == {"t": "hi"}


def test_an_edit_wakes_an_idle_member_for_everyone() -> None:
    room = _room(idle_after_ms=100)
    _joined(room)
    _joined(room, "other")
    out = room.tick(150)
    assert [e.active for m, _ in out.broadcast for e in m.entries] == [False, False]  # type: ignore[attr-defined]
    out = room.edit("s", edit([seq("text:t", ["x"])], 0), 200)
    woke = [m for m, _ in out.broadcast if isinstance(m, p.Presence)]
    assert [(e.session, e.active) for e in woke[0].entries] == [("s", True)]
    out = room.leave("s")
    assert builtins(out.broadcast[0][0])["left"] == ["s"]


def test_cursors_are_rebased_from_their_version() -> None:
    room = _room()
    _joined(room)
    room.edit("s", edit([seq("text:t", ["hello world"])], 0, "a"), 0)
    room.edit("s", edit([seq("text:t", ["🙂🙂 "])], 1, "b"), 0)  # before the cursor
    out = room.presence(
        "s", p.SetPresence(doc=DOC, cursor=p.Cursor("text:t", anchor=6, head=11, version=1)), 0
    )
    cursor = builtins(out.broadcast[0][0])["entries"][0]["cursor"]
    assert cursor == {"node": "text:t", "anchor": 9, "head": 14, "version": 2}
    room.edit("s", edit([seq("text:t", [3, "ab"])], 2, "c"), 0)
    (entry,) = [e for e in room.entries() if e.session == "s"]
    assert entry.cursor is not None and entry.cursor.anchor == 11
    with pytest.raises(RoomError) as err:
        room.presence(
            "s", p.SetPresence(doc=DOC, cursor=p.Cursor("text:t", anchor=0, head=0, version=9)), 0
        )
    assert err.value.code is p.ErrorCode.FUTURE_VERSION


def test_an_engine_failure_part_way_keeps_the_room_consistent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    room = _room()
    _joined(room)

    def broken(node: int, amount: int) -> None:
        raise RuntimeError("engine bug")

    first = room.edit("s", edit([{"type": "add", "node": "counter:c", "amount": 1}], 0, "one"), 0)
    monkeypatch.setattr(room.doc, "add", broken)
    with pytest.raises(RuntimeError):  # nothing applied yet: raised, and no trace left
        room.edit("s", edit([{"type": "add", "node": "counter:new", "amount": 1}], 1), 0)
    assert room.version == 1 and room.doc.to_json() == {"c": 1}
    ops = [
        {"type": "set", "node": "map:m", "key": "k", "value": 1},
        {"type": "add", "node": "counter:c", "amount": 1},
        {"type": "set", "node": "register:later", "value": 1},
    ]
    out = room.edit("s", edit(ops, 1, "half"), 0)
    assert isinstance(out.fault, RuntimeError) and out.version == 2 and out.edit_keys == []
    assert [type(m) for m in out.reply] == [p.Error, p.Resync]
    assert [(type(m), a) for m, a in out.broadcast] == [
        (p.Resync, "thin"),
        (p.RemoteSync, "replica"),
    ]
    assert room.seen("s", "half") is None  # not that edit: a resend is applied (or refused) anew
    assert room.doc.to_json() == {"c": 1, "m": {"k": 1}}
    replay = Room(DOC, Document(2))
    assert first.persist is not None and out.persist is not None
    replay.load_update(1, first.persist)
    replay.load_update(2, out.persist)
    assert replay.doc.to_json() == room.doc.to_json()


def test_a_server_edit_adds_no_member_and_records_its_author() -> None:
    room = _room()
    _joined(room)
    ops = msgspec.convert([seq("text:t", ["hi"])], list[p.EditOp])
    author = p.User(id="alice", name="Alice")
    outcome = room.apply_server_edit(ops, 0, client_id="server", edit_id="r1", author=author)
    assert set(room.members) == {"s"}  # nobody joined, nobody in presence
    assert [e.session for e in room.entries()] == ["s"]
    assert outcome.persist is not None and [e for _, e in outcome.edit_keys] == ["r1"]
    remote = next(m for m, _ in outcome.broadcast if isinstance(m, p.Remote))
    assert remote.client_id == "server" and remote.version == outcome.version
    assert room._origins[outcome.version].user == "alice"
    again = room.apply_server_edit(ops, 0, client_id="server", edit_id="r1", author=author)
    assert again.persist is None  # the same key: acknowledged, not applied again


def test_chat_is_a_room_input_for_members_with_the_chat_right() -> None:
    room = _room()
    _joined(room, "talker")
    _joined(room, "reader", rights=frozenset({"read"}))
    msg = p.Chat(
        doc=DOC,
        message=p.ChatMessage(id=1, author_id="talker", author_name="", text="hi", created_ms=0),
    )
    outcome = room.chat("talker", msg)
    assert outcome.persist is None and outcome.reply == [msg]
    assert outcome.broadcast == [(msg, "all")]
    with pytest.raises(RoomError) as err:
        room.chat("reader", msg)
    assert err.value.code is p.ErrorCode.FORBIDDEN
    with pytest.raises(RoomError) as err:
        room.chat("nobody", msg)
    assert err.value.code is p.ErrorCode.NOT_JOINED
