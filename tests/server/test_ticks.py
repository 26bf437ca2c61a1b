"""The hub's tick visits only the rooms with a timer due (``server/ticks.py``), and the rooms'
timers still fire: an idle member turns inactive, a quiet room's checksum goes out."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from cowrite import protocol as p
from cowrite.adapters.store.memory import MemoryStore
from cowrite.rooms.room import Room
from cowrite.server.auth import Identity, anonymous
from cowrite.server.config import Settings
from cowrite.server.hub import Hub
from cowrite.server.metrics import Metrics
from cowrite.server.ticks import NEXT_TICK, TickSchedule

# ------------------------------------------------------------------------------ the schedule


def test_a_key_is_due_at_its_earliest_time_and_once() -> None:
    s = TickSchedule()
    s.at("a", 500)
    s.at("a", 300)  # earlier: stands
    s.at("a", 900)  # later: ignored
    s.at("b", 400)
    assert s.pop_due(299) == []
    assert s.pop_due(450) == ["a", "b"]
    assert s.pop_due(10_000) == []  # a's stale entry at 500 is dropped
    assert len(s) == 0


def test_wake_makes_a_key_due_at_the_next_tick_and_discard_forgets_it() -> None:
    s = TickSchedule()
    s.at("a", 60_000)
    s.wake("a")
    assert s.due_at("a") == NEXT_TICK
    s.wake("b")
    s.discard("b")
    assert s.pop_due(1) == ["a"]
    assert s.pop_due(100_000) == []


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["at", "wake", "discard", "pop"]), st.integers(0, 5), st.integers(0, 50)
        ),
        max_size=200,
    )
)
def test_the_schedule_matches_a_plain_model(ops: list[tuple[str, int, int]]) -> None:
    """Against a dict of key -> earliest due time: the same keys come due, none twice, and the
    heap's stale entries stay bounded."""
    s, model = TickSchedule(), {}
    for op, k, t in ops:
        key = f"k{k}"
        if op == "at":
            s.at(key, t)
            model[key] = min(model.get(key, t), t)
        elif op == "wake":
            s.wake(key)
            model[key] = NEXT_TICK
        elif op == "discard":
            s.discard(key)
            model.pop(key, None)
        else:
            due = s.pop_due(t)
            expected = sorted((w, key) for key, w in model.items() if w <= t)
            assert sorted(due) == sorted(key for _, key in expected)
            assert [model[key] for key in due] == sorted(model[key] for key in due)
            for key in due:
                del model[key]
        assert len(s) == len(model)
        assert len(s._heap) <= 2 * len(model) + 65


# --------------------------------------------------------------------------------- the hub


class Peer:
    """A connection that keeps what it is sent."""

    def __init__(self, session: str) -> None:
        self.session = session
        self.client_id = session
        self.identity: Identity = anonymous(session)
        self._docs: dict[str, str] = {}
        self.got: list[p.Message] = []

    @property
    def docs(self) -> Mapping[str, str]:
        return self._docs

    def send(self, data: bytes) -> None:
        self.got.append(p.server_decoder.decode(data))

    def close(self, code: int, reason: str) -> None:
        pass

    def entered(self, doc_id: str, mode: str) -> None:
        self._docs[doc_id] = mode

    def left(self, doc_id: str) -> None:
        self._docs.pop(doc_id, None)

    def saving(self, doc_id: str, pending: bool) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.ms = 1_000_000_000

    def __call__(self) -> int:
        return self.ms


def _counted(hub: Hub, doc_id: str, visits: list[str]) -> None:
    room = hub.rooms[doc_id].room
    tick = room.tick

    def counted(now_ms: int) -> Any:
        visits.append(doc_id)
        return tick(now_ms)

    room.tick = counted  # type: ignore[method-assign]


async def _drain(hub: Hub) -> None:
    for lr in list(hub.rooms.values()):
        await asyncio.wait_for(lr.queue.join(), 5)


async def test_the_tick_visits_a_room_only_when_a_timer_is_due() -> None:
    """A joined member's idle time is the room's only timer: after the tick that follows the
    join, the room is visited again when the member turns idle, not every second; a room with
    nobody in it is visited after its load, and once more when the join snapshot its loader
    built goes unused (``PREPARED_JOINS_KEPT_MS``)."""
    store = MemoryStore()
    await store.open()
    clock = Clock()
    hub = Hub(store, Settings(data=":memory:", idle_after_s=60), Metrics(), now_ms=clock)
    try:
        peer = Peer("s1")
        await hub.join(peer, p.Join(doc="a", create=True))
        await hub.open_room("b", create=True)
        await _drain(hub)
        visits: list[str] = []
        _counted(hub, "a", visits)
        _counted(hub, "b", visits)
        hub._tick_rooms(clock.ms)  # the tick after the loads and the join
        assert sorted(visits) == ["a", "b"]
        visits.clear()
        for _ in range(59):  # a minute of ticks: only b's unused join snapshot, dropped
            clock.ms += 1000
            hub._tick_rooms(clock.ms)
        assert visits == ["b"] and hub.rooms["b"].room._snap is None  # type: ignore[attr-defined]
        visits.clear()
        clock.ms += 1000
        hub._tick_rooms(clock.ms)
        assert visits == ["a"]
        await _drain(hub)
        room = hub.rooms["a"].room
        assert isinstance(room, Room) and not room.members["s1"].active
        for _ in range(120):  # nobody active: nothing due until the next input
            clock.ms += 1000
            hub._tick_rooms(clock.ms)
        assert visits == ["a"] and not hub._ticks
    finally:
        await hub.close()


async def test_an_edit_wakes_the_room_and_its_quiet_checksum_goes_out() -> None:
    """An edit makes the room due at the next tick; the checksum that waits for a quiet room
    is sent by a later tick, with no input in between."""
    store = MemoryStore()
    await store.open()
    clock = Clock()
    hub = Hub(store, Settings(data=":memory:"), Metrics(), now_ms=clock)
    try:
        writer, reader = Peer("w"), Peer("r")
        await hub.join(writer, p.Join(doc="a", create=True))
        await hub.join(reader, p.Join(doc="a"))
        await _drain(hub)
        hub._tick_rooms(clock.ms)
        ops = msgspec.convert(
            [{"type": "seq", "node": "text:t", "edit": ["hello"]}], list[p.EditOp]
        )
        await hub.edit(writer, p.Edit(doc="a", edit_id="e1", version=0, ops=ops))
        assert hub._ticks.due_at("a") == NEXT_TICK
        await _drain(hub)
        before = len(reader.got)
        for _ in range(5):
            clock.ms += 1000
            hub._tick_rooms(clock.ms)
        await _drain(hub)
        assert any(isinstance(m, p.Checksum) for m in reader.got[before:])
    finally:
        await hub.close()
