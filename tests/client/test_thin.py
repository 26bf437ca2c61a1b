"""The thin client core (``ThinDocState``) against a real server made of engine pieces.

The simulated server is what ``rooms`` does for thin clients, built straight from the engine: an
``EditLog`` rebasing stale index edits (client op on the left at ties), a ``Document`` they are
applied to (``apply_index_edit``), catch-up from the log on rejoin or a snapshot when the log does
not reach back, and exactly-once acks (an ``edit_id`` seen before is acknowledged with its
original version, not applied again). Clients talk to it over FIFO links (a WebSocket), but each
side reads its inbox whenever Hypothesis decides, so edits cross in every possible way; links
drop (with messages in flight both ways), messages are delivered twice, clients reconnect.

Every inserted character is unique (CJK and non-BMP emoji alternating), so "applied exactly once"
is checked on the final text itself: no character twice, none a client inserted goes missing.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from cowrite import protocol as p
from cowrite.client.thin import ThinDocState
from cowrite.client.values import diff_seq, diff_text, position_before
from cowrite.engine import ot
from cowrite.engine.document import Document
from cowrite.engine.errors import InvalidOperation, ResyncNeeded
from cowrite.engine.ops import DELETED, NodeKind
from cowrite.engine.rebase import EditLog, apply_index_edit

TEXT = "text:body"
NOTES = "text:notes"
MAP = "map:meta"
COUNTER = "counter:clicks"
LIST = "list:items"
KINDS = {k.name.lower(): k for k in NodeKind}


class SimServer:
    """The thin-client half of a room, from engine pieces only."""

    def __init__(self, log_capacity: int = 10_000) -> None:
        self.doc = Document(1)
        self.log = EditLog(log_capacity)
        self.origins: dict[int, tuple[str, str, list[p.EditOp]]] = {}
        self.recent: dict[tuple[str, str], int] = {}
        self.applied: Counter[tuple[str, str]] = Counter()

    def node(self, wire: str) -> int:
        kind, _, name = wire.partition(":")
        return self.doc.root(KINDS[kind], name)

    @property
    def version(self) -> int:
        return self.log.version

    def values(self) -> dict[str, Any]:
        return {
            f"{kind.name.lower()}:{name}": self.doc.node_json(node)
            for node, (name, kind) in self.doc.roots.items()
        }

    def join(self, msg: p.Join) -> list[p.Message]:
        if msg.version is not None and self.log.oldest <= msg.version <= self.version:
            out: list[p.Message] = [
                p.Joined(doc=msg.doc, mode="thin", version=msg.version, rights=["write"])
            ]
            for v in range(msg.version + 1, self.version + 1):
                client, edit, ops = self.origins[v]
                out.append(
                    p.Remote(doc=msg.doc, version=v, ops=ops, client_id=client, edit_id=edit)
                )
            return out
        snapshot = {
            f"{kind.name.lower()}:{name}": {
                "kind": kind.name.lower(),
                "value": self.doc.node_json(node),
            }
            for node, (name, kind) in self.doc.roots.items()
        }
        return [
            p.Joined(
                doc=msg.doc, mode="thin", version=self.version, rights=["write"], snapshot=snapshot
            )
        ]

    def edit(self, client_id: str, msg: p.Edit) -> tuple[list[p.Message], p.Remote | None]:
        key = (client_id, msg.edit_id)
        done = self.recent.get(key)
        if done is not None:
            return [p.Ack(doc=msg.doc, edit_id=msg.edit_id, version=done)], None
        if msg.version > self.version:
            error = p.Error(code=p.ErrorCode.FUTURE_VERSION, message="", edit_id=msg.edit_id)
            return [error], None
        plan: list[tuple[int, p.EditOp, Any]] = []
        try:
            for op in msg.ops:
                node = self.node(op.node)
                if isinstance(op, p.SeqEdit):
                    plan.append((node, op, self.log.rebase(node, op.edit, msg.version)))
                else:
                    plan.append((node, op, None))
        except ResyncNeeded:
            error = p.Error(
                code=p.ErrorCode.STALE_VERSION, message="", doc=msg.doc, edit_id=msg.edit_id
            )
            return [error, p.Resync(doc=msg.doc, reason="stale")], None
        wire: list[p.EditOp] = []
        seq_changes: list[tuple[int, list[Any]]] = []
        for node, op, rebased in plan:
            if isinstance(op, p.SeqEdit):
                apply_index_edit(self.doc, node, rebased)
                seq_changes.append((node, rebased))
                wire.append(p.SeqEdit(node=op.node, edit=rebased))
            elif isinstance(op, p.SetKey):
                self.doc.set(node, op.key, op.value)
                wire.append(op)
            elif isinstance(op, p.DeleteKey):
                self.doc.set(node, op.key, DELETED)
                wire.append(op)
            else:
                self.doc.add(node, op.amount)
                wire.append(op)
        version = self.log.record(seq_changes)
        self.origins[version] = (client_id, msg.edit_id, wire)
        self.recent[key] = version
        self.applied[key] += 1
        ack = p.Ack(doc=msg.doc, edit_id=msg.edit_id, version=version)
        remote = p.Remote(
            doc=msg.doc, version=version, ops=wire, client_id=client_id, edit_id=msg.edit_id
        )
        return [ack], remote


class SimClient:
    """A client's shell: the core plus the two halves of its link, as ``connection`` drives it."""

    def __init__(self, name: str) -> None:
        self.state = ThinDocState("d", name)
        self.name = name
        self.up: deque[p.Message] = deque()  # client -> server
        self.down: deque[p.Message] = deque()  # server -> client
        self.connected = False
        self.member = False  # the server has processed our join on this link
        self.joining = False
        self.seen: list[p.EditOp] = []
        self.merged_snapshot = False  # a snapshot replaced a state we had: three-way merge

    def connect(self) -> None:
        self.connected = True
        self.joining = True
        self.up.append(self.state.join_message(create=True))

    def disconnect(self) -> None:
        self.connected = self.member = self.joining = False
        self.up.clear()
        self.down.clear()
        self.state.on_disconnect()

    def pump(self) -> None:
        if not self.connected:
            return
        state = self.state
        if state.rejoin_needed:
            if not self.joining:
                self.joining = True
                self.up.append(state.join_message(create=True))
            return
        batch = state.take_batch()
        if batch is not None:
            self.up.append(batch)

    def deliver(self, msg: p.Message) -> None:
        state = self.state
        if isinstance(msg, p.Joined):
            self.joining = False
            self.merged_snapshot |= msg.snapshot is not None and state.version is not None
            self.seen += state.on_joined(msg)
        elif isinstance(msg, p.Remote):
            self.seen += state.on_remote(msg)
        elif isinstance(msg, p.Ack):
            self.seen += state.on_ack(msg)
        elif isinstance(msg, p.Error):
            if msg.edit_id is None:
                self.joining = False
            self.seen += state.on_error(msg).changes
        elif isinstance(msg, p.Resync):
            state.on_resync()
        elif isinstance(msg, p.Checksum):
            assert state.on_checksum(msg) == [], f"{self.name} failed a checksum"
        self.pump()


class Net:
    """A server and its clients over FIFO links."""

    def __init__(self, n: int, log_capacity: int = 10_000) -> None:
        self.server = SimServer(log_capacity)
        self.clients = [SimClient(f"c{i}") for i in range(n)]

    def server_step(self, c: SimClient) -> None:
        msg = c.up.popleft()
        if isinstance(msg, p.Join):
            c.member = True
            c.down.extend(self.server.join(msg))
        elif isinstance(msg, p.Edit):
            replies, remote = self.server.edit(c.state.client_id, msg)
            c.down.extend(replies)
            if remote is not None:
                # every version is followed by the checksums of the texts (as a room may do)
                values = self.server.values().items()
                sums = {n: p.text_checksum(v) for n, v in values if isinstance(v, str)}
                check = p.Checksum(doc="d", version=self.server.version, sums=sums)
                c.down.append(check)
                for other in self.clients:
                    if other is not c and other.member:
                        other.down.extend([remote, check])

    def client_step(self, c: SimClient, *, duplicate: bool = False) -> None:
        msg = c.down[0]
        if not duplicate:
            c.down.popleft()
        c.deliver(msg)

    def settle(self, limit: int = 100_000) -> None:
        """Reconnect everyone and deliver everything until nothing moves."""
        for c in self.clients:
            if not c.connected:
                c.connect()
        for _ in range(limit):
            moved = False
            for c in self.clients:
                c.pump()
                if c.up:
                    self.server_step(c)
                    moved = True
                if c.down:
                    self.client_step(c)
                    moved = True
            if not moved:
                return
        raise AssertionError("the network did not settle")


def unique_chars() -> Iterator[str]:
    """Distinct characters, BMP and astral (emoji) alternating."""
    k = 0
    while True:
        yield chr(0x1F300 + k) if k % 2 else chr(0x4E00 + k)
        k += 1


def local_value(c: SimClient, node: str, default: Any) -> Any:
    value = c.state.value(node)
    return default if value is None else value


# ------------------------------------------------------------------ unit tests


def test_diff_text_keeps_common_prefix_and_suffix() -> None:
    assert diff_text("hello world", "hello brave world") == [6, "brave "]
    assert diff_text("abc", "abc") == []
    assert diff_text("abc", "") == [-3]
    assert diff_text("", "xy") == ["xy"]
    assert diff_text("a😀b", "a😀😀b") == [2, "😀"]


@given(st.text("ab😀x", max_size=12), st.text("ab😀y", max_size=12))
def test_diff_turns_a_into_b(a: str, b: str) -> None:
    assert ot.apply(a, diff_text(a, b)) == b
    assert ot.apply(list(a), diff_seq(list(a), list(b))) == list(b)


@given(st.text("abc😀", max_size=10), st.data())
def test_position_before_maps_back_into_the_base(s: str, data: st.DataObject) -> None:
    n = data.draw(st.integers(0, len(s)))
    delete = data.draw(st.integers(0, len(s) - n))
    op = ot.from_splice(n, delete, data.draw(st.text("xy", max_size=3)))
    after = ot.apply(s, op)
    pos = data.draw(st.integers(0, len(after)))
    back = position_before(pos, op)
    assert 0 <= back <= len(s)
    if pos < n:
        assert back == pos
    if pos >= n + len(after) - len(s) + delete:  # after the edit: shifted back by its size
        assert back == pos - (len(after) - len(s))


def joined_state(version: int = 0, text: str = "") -> ThinDocState:
    state = ThinDocState("d", "me", edit_id_prefix="e")
    snapshot = {TEXT: {"kind": "text", "value": text}}
    state.on_joined(
        p.Joined(doc="d", mode="thin", version=version, rights=["write"], snapshot=snapshot)
    )
    return state


def test_local_edits_batch_one_at_a_time_and_ack_moves_them_to_the_server_state() -> None:
    state = joined_state(text="abc")
    state.local_edit(TEXT, [3, "d"])
    state.local_edit(TEXT, [4, "e"])
    batch = state.take_batch()
    assert batch is not None and batch.version == 0
    assert batch.ops == [p.SeqEdit(node=TEXT, edit=[3, "de"])]
    state.local_edit(TEXT, ["X"])
    assert state.take_batch() is None  # one batch in flight
    assert state.on_ack(p.Ack(doc="d", edit_id=batch.edit_id, version=1)) == []
    assert state.version == 1 and state.server[TEXT] == "abcde"
    nxt = state.take_batch()
    assert nxt is not None and nxt.version == 1 and nxt.edit_id != batch.edit_id
    assert nxt.ops == [p.SeqEdit(node=TEXT, edit=["X"])]
    assert not state.synced
    state.on_ack(p.Ack(doc="d", edit_id=nxt.edit_id, version=2))
    assert state.synced and state.local[TEXT] == "Xabcde"
    state.check_invariants()


def test_remote_insert_at_our_position_lands_after_ours_like_the_server_puts_it() -> None:
    # the server rebases our op over the remote with ours on the left: ours first at a tie
    state = joined_state(text="ab")
    state.local_edit(TEXT, [1, "X"])
    batch = state.take_batch()
    assert batch is not None
    change = state.on_remote(
        p.Remote(doc="d", version=1, ops=[p.SeqEdit(node=TEXT, edit=[1, "Y"])])
    )
    assert change == [p.SeqEdit(node=TEXT, edit=[2, "Y"])]
    assert state.local[TEXT] == "aXYb"
    server = EditLog()
    server.record([(0, [1, "Y"])])
    assert ot.apply("aYb", server.rebase(0, [1, "X"], 0)) == "aXYb"
    state.on_ack(p.Ack(doc="d", edit_id=batch.edit_id, version=2))
    assert state.server[TEXT] == "aXYb"
    state.check_invariants()


def test_duplicate_and_out_of_order_remotes_are_ignored_or_trigger_a_rejoin() -> None:
    state = joined_state(text="ab")
    remote = p.Remote(doc="d", version=1, ops=[p.SeqEdit(node=TEXT, edit=["Z"])])
    assert state.on_remote(remote) == [p.SeqEdit(node=TEXT, edit=["Z"])]
    assert state.on_remote(remote) == []
    assert state.local[TEXT] == "Zab"
    assert not state.rejoin_needed
    state.on_remote(p.Remote(doc="d", version=3, ops=[p.SeqEdit(node=TEXT, edit=["Q"])]))
    assert state.rejoin_needed and state.local[TEXT] == "Zab"
    assert state.join_message().version == 1


def test_our_batch_coming_back_in_a_catch_up_counts_as_its_ack() -> None:
    state = joined_state(text="ab")
    state.local_edit(TEXT, [2, "!"])
    batch = state.take_batch()
    assert batch is not None
    state.on_disconnect()
    join = state.join_message()
    assert join.version == 0
    state.on_joined(p.Joined(doc="d", mode="thin", version=0, rights=["write"]))
    resent = state.take_batch()
    assert resent is not None and resent.edit_id == batch.edit_id
    mine = p.Remote(doc="d", version=1, ops=batch.ops, client_id="me", edit_id=batch.edit_id)
    assert state.on_remote(mine) == []
    assert state.synced and state.version == 1 and state.server[TEXT] == "ab!"
    # the server then acknowledges the resend as a duplicate: nothing happens
    assert state.on_ack(p.Ack(doc="d", edit_id=batch.edit_id, version=1)) == []
    assert state.local[TEXT] == "ab!"


def test_snapshot_rejoin_merges_three_ways_and_undoes_a_batch_applied_twice() -> None:
    state = joined_state(text="hello world")
    state.local_edit(TEXT, [5, ","])
    batch = state.take_batch()  # applied by the server, but the ack is lost
    assert batch is not None
    state.local_edit(TEXT, [12, "!"])  # pending: "hello, world!"
    state.on_disconnect()
    state.join_message()
    # meanwhile: our batch at 1, someone else's "big " at 2; the log no longer reaches back
    snapshot = {TEXT: {"kind": "text", "value": "hello, big world"}}
    changes = state.on_joined(
        p.Joined(doc="d", mode="thin", version=2, rights=["write"], snapshot=snapshot)
    )
    assert changes and state.version == 2
    state.check_invariants()
    resent = state.take_batch()
    assert resent is not None and resent.edit_id == batch.edit_id and resent.version == 2
    assert state.local[TEXT] == "hello,, big world!"  # optimistic: not yet known to be applied
    undo = state.on_ack(p.Ack(doc="d", edit_id=batch.edit_id, version=1))
    assert undo in ([p.SeqEdit(node=TEXT, edit=[5, -1])], [p.SeqEdit(node=TEXT, edit=[6, -1])])
    assert state.local[TEXT] == "hello, big world!"
    state.check_invariants()
    last = state.take_batch()
    assert last is not None and last.ops == [p.SeqEdit(node=TEXT, edit=[16, "!"])]


def test_refused_batch_is_undone_and_pending_edits_stay() -> None:
    state = joined_state(text="abc")
    state.local_edit(TEXT, [1, "X"])
    state.local_set(MAP, "k", 1)
    state.local_add(COUNTER, 5)
    batch = state.take_batch()
    assert batch is not None
    state.local_edit(TEXT, [4, "Y"])
    outcome = state.on_error(
        p.Error(code=p.ErrorCode.INVALID_EDIT, message="no", edit_id=batch.edit_id)
    )
    assert outcome.action == "rejected"
    assert state.local[TEXT] == "abcY"
    assert state.local[MAP] == {} and state.local[COUNTER] == 0
    assert state.inflight is None
    state.check_invariants()
    retry = state.on_error(p.Error(code=p.ErrorCode.RATE_LIMITED, message="", edit_id="nope"))
    assert retry.action == "ignore"


def test_rate_limited_batch_is_resent_with_the_same_edit_id() -> None:
    state = joined_state()
    state.local_edit(TEXT, ["a"])
    batch = state.take_batch()
    assert batch is not None and state.take_batch() is None
    outcome = state.on_error(
        p.Error(code=p.ErrorCode.RATE_LIMITED, message="", edit_id=batch.edit_id)
    )
    assert outcome.action == "retry"
    again = state.take_batch()
    assert again is not None and again.edit_id == batch.edit_id


def test_map_register_and_counter_writes_show_until_the_server_orders_them() -> None:
    state = joined_state()
    state.local_set(MAP, "title", "mine")
    state.local_set("register:r", None, 1)
    state.local_add(COUNTER, 2)
    batch = state.take_batch()
    assert batch is not None
    ops: list[p.EditOp] = [
        p.SetKey(node=MAP, key="title", value="theirs"),
        p.SetKey(node=MAP, key="other", value=1),
        p.CounterAdd(node=COUNTER, amount=10),
    ]
    changes = state.on_remote(p.Remote(doc="d", version=1, ops=ops))
    # our write of "title" is applied after theirs: the local view keeps ours
    assert changes == [
        p.SetKey(node=MAP, key="other", value=1),
        p.CounterAdd(node=COUNTER, amount=10),
    ]
    assert state.local[MAP] == {"title": "mine", "other": 1}
    assert state.local[COUNTER] == 12
    state.on_ack(p.Ack(doc="d", edit_id=batch.edit_id, version=2))
    assert state.server[MAP] == {"title": "mine", "other": 1}
    assert state.server["register:r"] == 1 and state.server[COUNTER] == 12
    state.local_delete(MAP, "other")
    assert state.local[MAP] == {"title": "mine"}
    state.check_invariants()


def test_nested_nodes_created_in_a_map_get_their_ids_from_the_ack() -> None:
    state = joined_state()
    state.local_set(MAP, "doc", {"$new": "text"})
    batch = state.take_batch()
    assert batch is not None
    state.on_ack(p.Ack(doc="d", edit_id=batch.edit_id, version=1, created=["#7.3"]))
    assert state.local[MAP] == {"doc": {"$node": "#7.3"}}
    assert state.kind("#7.3") == "text"
    state.local_edit("#7.3", ["nested"])
    assert state.value("#7.3") == "nested"
    with pytest.raises(InvalidOperation):
        state.local_edit(LIST, [[{"$new": "map"}]])


def test_edits_that_do_not_fit_are_refused_before_anything_changes() -> None:
    state = joined_state(text="ab")
    with pytest.raises(InvalidOperation):
        state.local_edit(TEXT, [5, "x"])
    with pytest.raises(InvalidOperation):
        state.local_edit(TEXT, [[1]])
    with pytest.raises(InvalidOperation):
        state.local_set(TEXT, "k", 1)
    assert state.synced and state.local[TEXT] == "ab"


def test_remote_cursors_follow_edits_made_since_their_version() -> None:
    state = joined_state(text="0123456789")
    state.on_remote(p.Remote(doc="d", version=1, ops=[p.SeqEdit(node=TEXT, edit=["ab"])]))
    state.local_edit(TEXT, [0, "Q"])
    # a cursor set at version 0 at "5": two chars inserted remotely, one locally before it
    assert state.cursor_to_local(p.Cursor(node=TEXT, anchor=5, head=7, version=0)) == (8, 10)
    assert state.cursor_to_local(p.Cursor(node=TEXT, anchor=5, head=5, version=1)) == (6, 6)
    # ours, sent to the server: without the pending "Q"
    assert state.cursor_to_server(TEXT, 6, 6) == p.Cursor(node=TEXT, anchor=5, head=5, version=1)


# ---------------------------------------------------------- the simulated network


def test_two_clients_converge_through_the_simulated_server() -> None:
    net = Net(2)
    a, b = net.clients
    for c in net.clients:
        c.connect()
    net.settle()
    a.state.local_edit(TEXT, ["hello"])
    b.state.local_edit(TEXT, ["world"])
    a.pump()
    b.pump()
    net.server_step(a)
    net.server_step(b)
    net.settle()
    assert a.state.local[TEXT] == b.state.local[TEXT] == net.server.values()[TEXT]
    assert sorted(a.state.local[TEXT]) == sorted("helloworld")


N_CLIENTS = 3


class ThinClientsMachine(RuleBasedStateMachine):
    """Thin clients, the simulated server, unreliable links: all must converge, exactly once."""

    def __init__(self) -> None:
        super().__init__()
        self.net = Net(N_CLIENTS, log_capacity=3)
        self.chars = unique_chars()
        self.inserted: set[str] = set()
        self.deleted: set[str] = set()
        self.adds = 0
        for c in self.net.clients:
            c.connect()

    def client(self, i: int) -> SimClient:
        return self.net.clients[i]

    @rule(i=st.integers(0, N_CLIENTS - 1), data=st.data())
    def type_text(self, i: int, data: st.DataObject) -> None:
        c = self.client(i)
        node = data.draw(st.sampled_from([TEXT, NOTES]))
        text = local_value(c, node, "")
        pos = data.draw(st.integers(0, len(text)))
        if text and data.draw(st.booleans()):
            n = data.draw(st.integers(1, min(3, len(text) - min(pos, len(text) - 1))))
            pos = min(pos, len(text) - n)
            self.deleted.update(text[pos : pos + n])
            c.state.local_edit(node, [pos, -n])
        else:
            s = "".join(next(self.chars) for _ in range(data.draw(st.integers(1, 3))))
            self.inserted.update(s)
            c.state.local_edit(node, [pos, s])

    @rule(i=st.integers(0, N_CLIENTS - 1), data=st.data())
    def edit_list(self, i: int, data: st.DataObject) -> None:
        c = self.client(i)
        items = local_value(c, LIST, [])
        pos = data.draw(st.integers(0, len(items)))
        if items and pos < len(items) and data.draw(st.booleans()):
            c.state.local_edit(LIST, [pos, -1])
        else:
            c.state.local_edit(LIST, [pos, [data.draw(st.integers(0, 9))]])

    @rule(i=st.integers(0, N_CLIENTS - 1), amount=st.integers(-3, 3))
    def click(self, i: int, amount: int) -> None:
        self.client(i).state.local_add(COUNTER, amount)
        self.adds += amount

    @rule(i=st.integers(0, N_CLIENTS - 1), key=st.sampled_from("xy"), value=st.integers(0, 3))
    def set_key(self, i: int, key: str, value: int) -> None:
        c = self.client(i)
        if value == 0:
            c.state.local_delete(MAP, key)
        else:
            c.state.local_set(MAP, key, value)

    @rule(i=st.integers(0, N_CLIENTS - 1))
    def send(self, i: int) -> None:
        self.client(i).pump()

    @rule(i=st.integers(0, N_CLIENTS - 1))
    def server_reads(self, i: int) -> None:
        c = self.client(i)
        if c.up:
            self.net.server_step(c)

    @rule(i=st.integers(0, N_CLIENTS - 1), duplicate=st.booleans())
    def client_reads(self, i: int, duplicate: bool) -> None:
        c = self.client(i)
        if c.down:
            dup = duplicate and isinstance(c.down[0], p.Ack | p.Remote)
            self.net.client_step(c, duplicate=dup)

    @rule(i=st.integers(0, N_CLIENTS - 1))
    def send_and_server_reads_all(self, i: int) -> None:
        c = self.client(i)
        c.pump()
        while c.up:
            self.net.server_step(c)

    @rule(i=st.integers(0, N_CLIENTS - 1))
    def drop_link(self, i: int) -> None:
        self.client(i).disconnect()

    @rule(i=st.integers(0, N_CLIENTS - 1))
    def drop_link_after_the_server_applied_an_edit(self, i: int) -> None:
        c = self.client(i)
        c.pump()
        if c.up and isinstance(c.up[-1], p.Edit):
            while c.up:
                self.net.server_step(c)
            c.disconnect()  # the ack is lost

    @precondition(lambda self: any(not c.connected for c in self.net.clients))
    @rule(i=st.integers(0, N_CLIENTS - 1))
    def reconnect(self, i: int) -> None:
        c = self.client(i)
        if not c.connected:
            c.connect()

    @invariant()
    def local_view_is_server_inflight_pending(self) -> None:
        for c in self.net.clients:
            c.state.check_invariants()

    def teardown(self) -> None:
        net = self.net
        net.settle()
        values = net.server.values()
        for c in net.clients:
            assert c.state.synced, c.name
            assert not c.state.rejoin_needed
            assert c.state.version == net.server.version
            for node, value in values.items():
                assert local_value(c, node, type(value)()) == value, (c.name, node)
        assert all(n == 1 for n in net.server.applied.values())
        assert values.get(COUNTER, 0) == self.adds  # every add applied exactly once
        text = values.get(TEXT, "") + values.get(NOTES, "")
        assert len(set(text)) == len(text), "a character was applied twice"
        assert self.inserted - self.deleted <= set(text), "an insert was lost"
        if not any(c.merged_snapshot for c in net.clients):
            assert not (set(text) & self.deleted), "a deleted character came back"


ThinClientsMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_thin_clients_converge_exactly_once = ThinClientsMachine.TestCase
