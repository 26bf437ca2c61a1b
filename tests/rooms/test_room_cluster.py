"""Rooms of several instances: each has its own document replica and its own clients; the
updates each one stores go to a shared log and reach the other rooms (``merge_update``) late, in
any order, duplicated. Once everything is delivered, every room holds the same document and every
client agrees with its room. Presence crosses instances as anchors."""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from hypothesis.stateful import Bundle, RuleBasedStateMachine, initialize, invariant, rule

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test_room.py
from test_room import DOC, SimReplica, SimThin, World

from cowrite import protocol as p
from cowrite.engine.document import Document
from cowrite.rooms.room import Outcome, Room, RoomLimits

WORDS = st.sampled_from(["a", "bc", "🙂", "déf", " "])


def _event(value: str) -> None:
    if currently_in_test_context():  # (the explicit schedules below run outside hypothesis)
        event(value)


def _inserted(op: list[Any], text: str) -> list[tuple[int, str]]:
    """The inserts of a pending index edit as (position, string) in the text it produced,
    each checked to be there."""
    out: list[tuple[int, str]] = []
    pos = 0
    for c in op:
        if isinstance(c, str):
            assert text[pos : pos + len(c)] == c
            out.append((pos, c))
            pos += len(c)
        elif c > 0:
            pos += c
    return out


class Instance(World):
    """One instance's room and clients; stored updates go to the shared ``log``."""

    def __init__(self, index: int, log: list[bytes]) -> None:
        super().__init__()
        self.index = index
        self.room = Room(
            DOC,
            Document(100 + index, now_ms=lambda: 0),
            limits=RoomLimits(idle_after_ms=50),
        )
        self.room.epoch = f"i{index}"
        self.log = log
        self.merged: set[int] = set()
        self._sessions = 1000 * index  # session ids are unique across instances (uuids)

    def store(self, outcome: Outcome) -> None:
        assert outcome.persist is not None
        self.log.append(outcome.persist)
        self.merged.add(len(self.log))

    def merge(self, seq: int) -> None:
        """The bus (or a catch-up) brings log entry ``seq``; duplicates change nothing."""
        outcome = self.room.merge_update(self.log[seq - 1])
        if seq in self.merged:
            assert not outcome.broadcast, "a duplicate must change nothing"
        self.merged.add(seq)
        self.carry(outcome, None)


class ClusterSchedules(RuleBasedStateMachine):
    thin = Bundle("thin")
    replicas = Bundle("replicas")

    def __init__(self) -> None:
        super().__init__()
        self.log: list[bytes] = []
        self.instances = [Instance(i, self.log) for i in range(3)]
        self.where: dict[str, int] = {}  # client id -> the instance it is connected to
        self.names = 0

    def _join(self, client: SimThin | SimReplica, where: int) -> None:
        self.where[client.client_id] = where
        self.instances[where].join(client)

    def _at(self, client: SimThin | SimReplica) -> Instance:
        return self.instances[self.where[client.client_id]]

    def _name(self) -> str:
        self.names += 1
        return f"c{self.names}"

    @initialize(target=thin)
    def first(self) -> SimThin:
        c = SimThin(self._name())
        self._join(c, 0)
        return c

    @rule(target=thin, where=st.integers(0, 2))
    def join_thin(self, where: int) -> SimThin:
        c = SimThin(self._name())
        self._join(c, where)
        return c

    @rule(target=replicas, where=st.integers(0, 2))
    def join_replica(self, where: int) -> SimReplica:
        c = SimReplica(self._name(), 1000 + self.names)
        self._join(c, where)
        return c

    @rule(c=thin, pos=st.integers(0, 30), delete=st.integers(0, 3), text=WORDS)
    def type_thin(self, c: SimThin, pos: int, delete: int, text: str) -> None:
        c.splice(pos, delete, text)
        self._at(c).send(c.session)

    @rule(c=thin, value=st.integers(0, 5), which=st.sampled_from(["map", "register", "add"]))
    def write_thin(self, c: SimThin, value: int, which: str) -> None:
        if which == "map":
            c.set_key("map:m", "k", value)
        elif which == "register":
            c.set_key("register:r", None, value)
        else:
            c.add(value)
        self._at(c).send(c.session)

    @rule(c=replicas, pos=st.integers(0, 30), text=WORDS, value=st.integers(0, 5))
    def type_replica(self, c: SimReplica, pos: int, text: str, value: int) -> None:
        t = c.doc.text("t")
        t.insert(min(pos, len(t)), text)
        c.doc.map("m").set("k", value)
        c.doc.counter("n").add(1)
        self._at(c).send(c.session)

    @rule(c=st.one_of(thin, replicas), n=st.integers(1, 5))
    def deliver(self, c: SimThin | SimReplica, n: int) -> None:
        for _ in range(n):
            self._at(c).deliver(c.session)

    @rule(where=st.integers(0, 2), pick=st.randoms(use_true_random=False))
    def bus(self, where: int, pick: random.Random) -> None:
        """One log entry reaches an instance: any entry (late, reordered, or a duplicate)."""
        if self.log:
            self.instances[where].merge(pick.randint(1, len(self.log)))

    @rule(c=thin, to=st.integers(0, 2), by_state=st.booleans())
    def move(self, c: SimThin, to: int, by_state: bool) -> None:
        """A thin client reconnects to another instance, where its version means nothing
        (another epoch). With its state's version vector it gets the exact changes since and
        rebases its unsent edits over them; without, a snapshot (only when it has none)."""
        old = self._at(c)
        if old is self.instances[to] or not (by_state or c.idle):
            return
        lost = old.queues[c.session]  # what was on its way to it is lost with the connection
        old.leave(c.session)
        new = self.instances[to]
        self.where[c.client_id] = to
        if not by_state:
            c.vv = None
            c.nodes = {}
        unsent = _inserted(c.seq_buffer.get("text:t", []), c.text())
        for seq in range(1, len(self.log) + 1):  # the hub catches up from the store first
            if seq not in new.merged:
                new.merge(seq)
        new.join(c, version=c.version)
        if by_state:
            assert c.vv is not None
        _event(f"moved by {'state' if by_state else 'snapshot'}, {len(lost)} messages lost")
        assert c.inflight is None  # its batch was applied (and stored) there: now acknowledged
        if by_state:  # its own unsent text is all still there, in order (others' may be gone)
            after = _inserted(c.seq_buffer.get("text:t", []), c.text())
            assert "".join(s for _, s in after) == "".join(s for _, s in unsent)

    @invariant()
    def rooms_are_sound(self) -> None:
        for inst in self.instances:
            inst.room.doc.check_invariants()

    def teardown(self) -> None:
        # deliver everything everywhere, then let every client settle with its room
        for _ in range(3):
            for inst in self.instances:
                for seq in range(1, len(self.log) + 1):
                    if seq not in inst.merged:
                        inst.merge(seq)
                inst.settle()
        states = [inst.room.doc.to_json() for inst in self.instances]
        assert states[0] == states[1] == states[2]
        for inst in self.instances:
            inst.check_converged()


TestClusterSchedules = ClusterSchedules.TestCase
TestClusterSchedules.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# ------------------------------------------------------------------ schedules it found
# (explicit, so they run with an empty example database too)


class Pick(random.Random):
    """The bus delivers log entry ``seq`` (the ``pick`` of the ``bus`` rule)."""

    def __init__(self, seq: int) -> None:
        super().__init__(0)
        self.seq = seq

    def randint(self, a: int, b: int) -> int:
        assert a <= self.seq <= b
        return self.seq


def test_move_by_state_after_a_batch_rebased_over_a_delete_beside_it() -> None:
    """c2 types "bc" after the "a" it knows; the server applies it after a change c2 has not
    seen (that "a" replaced by another) and puts "bc" before the deleted "a", where c2 has it
    after. The changes since c2's state plus its batch must not count on that order."""
    state = ClusterSchedules()
    c1 = state.first()
    state.move(by_state=False, c=c1, to=1)
    state.type_thin(c=c1, delete=0, pos=0, text="a")
    state.deliver(c=c1, n=1)
    state.type_thin(c=c1, delete=1, pos=0, text="a")  # the "a" replaced by another
    c2: SimThin = state.join_thin(where=0)  # type: ignore[assignment]
    state.bus(pick=Pick(1), where=0)
    state.bus(pick=Pick(2), where=0)
    state.deliver(c=c2, n=1)  # c2 sees the first "a" only
    state.type_thin(c=c2, delete=0, pos=1, text="bc")
    state.join_thin(where=0)
    state.move(by_state=True, c=c2, to=1)  # the ack of "bc" is lost: named as in flight
    assert c2.text() == "abc" == state.instances[1].room.doc.to_json()["t"]
    state.teardown()


def test_move_by_state_keeps_unsent_text_when_others_deleted_the_batch_in_flight() -> None:
    """c2's in-flight "bc" is deleted by c1 before c2 moves: c2's unsent "a" stays, the
    deleted text goes (the text gets shorter, nothing of c2's unsent work is lost)."""
    state = ClusterSchedules()
    c1 = state.first()
    c2: SimThin = state.join_thin(where=1)  # type: ignore[assignment]
    state.type_thin(c=c2, delete=0, pos=0, text="bc")
    state.bus(pick=Pick(1), where=0)
    state.deliver(c=c1, n=1)
    state.type_thin(c=c2, delete=0, pos=0, text="a")  # unsent: "bc" is in flight
    state.type_thin(c=c1, delete=2, pos=0, text="a")  # c1 replaces "bc" by "a"
    state.move(by_state=True, c=c2, to=0)
    assert c2.text() == "aa"
    state.teardown()


def test_remote_presence_shows_cursors_on_the_right_characters() -> None:
    log: list[bytes] = []
    a, b = Instance(0, log), Instance(1, log)
    ann = SimThin("ann")
    sa = a.join(ann)
    ann.splice(0, 0, "hello world")
    a.send(sa)
    a.settle()
    outcome = a.room.presence(
        sa, p.SetPresence(doc=DOC, cursor=p.Cursor(node="text:t", anchor=6, head=11)), 0
    )
    entries = a.room.peer_entries([e.session for e in outcome.broadcast[0][0].entries])  # type: ignore[attr-defined]
    # b has not merged the text yet: the entry shows, without a cursor
    shown = b.room.merge_presence(0, entries, [])
    (entry,) = shown.broadcast[0][0].entries  # type: ignore[attr-defined]
    assert entry.cursor is None
    b.merge(1)
    # b's own user types before the selection: the cursor still covers "world"
    bob = SimThin("bob")
    sb = b.join(bob)
    bob.splice(0, 0, ">> ")
    b.send(sb)
    b.settle()
    (entry,) = [e for e in b.room.entries() if e.session == sa]
    assert entry.cursor is not None
    assert (entry.cursor.anchor, entry.cursor.head) == (9, 14)
    assert b.room.doc.to_json()["t"][9:14] == "world"
    left = b.room.drop_instance(0)
    assert left.broadcast[0][0].left == [sa]  # type: ignore[attr-defined]
    assert all(e.session != sa for e in b.room.entries())
