"""Several editors, on both dialects, edit one document through their sessions and a simulated
room that follows the integration contract (actions executed in order; a Send waits for every
earlier Persist; durability arrives at random moments; frames to a client arrive in order but
late). Whatever the schedule, every editor ends with the server's document, and every Hocuspocus
editor's updates are acknowledged exactly once."""

from __future__ import annotations

import random
from collections import deque
from typing import Any

import pycrdt
from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite.yjs import messages as m
from cowrite.yjs.session import (
    Action,
    Broadcast,
    Close,
    HocuspocusSession,
    Join,
    Persist,
    Rights,
    Send,
    SharedDoc,
    YWebsocketSession,
)

Session = YWebsocketSession | HocuspocusSession


class Editor:
    """A provider's behaviour, reduced to what matters here."""

    def __init__(self, i: int, hocuspocus: bool) -> None:
        self.doc: pycrdt.Doc[Any] = pycrdt.Doc(client_id=100 + i)
        self.text = self.doc.get("text", type=pycrdt.Text)
        self.hocuspocus = hocuspocus
        self.inbox: deque[bytes] = deque()
        self.outgoing: list[bytes] = []
        self.unsynced = 0
        self._remote = False
        self.doc.observe(self._on_update)

    def _frame(self, msg: m.SyncMessage) -> bytes:
        if self.hocuspocus:
            return m.encode_hocuspocus(m.HSync("doc", msg))
        return m.encode_ywebsocket(m.YSync(msg))

    def _on_update(self, event: pycrdt.TransactionEvent) -> None:
        if not self._remote:
            self.unsynced += 1
            self.outgoing.append(self._frame(m.SyncUpdate(event.update)))

    def hello(self) -> None:
        if self.hocuspocus:
            self.outgoing.append(m.encode_hocuspocus(m.HAuthToken("doc", "t", "4.8.0")))
            self.unsynced = 1  # resetUnsyncedChanges: its step 2 will be acknowledged
        self.outgoing.append(self._frame(m.SyncStep1(self.doc.get_state())))

    def edit(self, a: int, s: str) -> None:
        n = len(self.text)
        if a % 3 == 0 and n:
            del self.text[a % n]
        else:
            self.text.insert(a % (n + 1), s)

    def receive_one(self) -> None:
        frame = self.inbox.popleft()
        msg: Any = m.decode_hocuspocus(frame) if self.hocuspocus else m.decode_ywebsocket(frame)
        if isinstance(msg, m.HSyncStatus):
            assert msg.saved and self.unsynced > 0
            self.unsynced -= 1
            return
        sync = getattr(msg, "sync", None)
        if isinstance(sync, m.SyncStep1):
            self.outgoing.append(self._frame(m.SyncStep2(self.doc.get_update(sync.state_vector))))
        elif isinstance(sync, m.SyncStep2 | m.SyncUpdate):
            self._remote = True
            try:
                self.doc.apply_update(sync.update)
            finally:
                self._remote = False


class Room:
    def __init__(self) -> None:
        self.shared = SharedDoc()
        self.queue: deque[tuple[Session, Action]] = deque()
        self.members: list[tuple[Session, Editor]] = []

    def join(self, editor: Editor) -> None:
        session: Session
        if editor.hocuspocus:
            session = HocuspocusSession(lambda token, doc: Rights.READ_WRITE)
        else:
            session = YWebsocketSession("doc", Rights.READ_WRITE, self.shared)
            self.enqueue(session, session.open())
        self.members.append((session, editor))
        editor.hello()

    def enqueue(self, session: Session, actions: list[Action]) -> None:
        for a in actions:
            assert not isinstance(a, Close), a
            if isinstance(a, Join):
                assert isinstance(session, HocuspocusSession)
                self.enqueue(session, session.attach(a.address, self.shared))
            else:
                self.queue.append((session, a))

    def upload(self, editor_index: int) -> None:
        session, editor = self.members[editor_index]
        frames, editor.outgoing = editor.outgoing, []
        for f in frames:
            self.enqueue(session, session.receive(f))

    def tick(self) -> None:
        """The room's pipeline: the next action in order (a Persist becomes durable here)."""
        session, action = self.queue.popleft()
        if isinstance(action, Persist):
            for a in session.durable(action.ticket):
                self._execute(session, a)
        else:
            self._execute(session, action)

    def _execute(self, session: Session, action: Action) -> None:
        if isinstance(action, Send):
            self._editor(session).inbox.append(action.frame)
        elif isinstance(action, Broadcast):
            for other, editor in self.members:
                if other is not session:
                    if isinstance(other, HocuspocusSession):
                        editor.inbox.append(other.update_frame("doc", action.update))
                    else:
                        editor.inbox.append(other.update_frame(action.update))

    def _editor(self, session: Session) -> Editor:
        return next(e for s, e in self.members if s is session)


@settings(deadline=None, max_examples=40)
@given(
    st.lists(st.booleans(), min_size=2, max_size=4),
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 4), st.integers(0, 30)), max_size=60),
    st.randoms(use_true_random=False),
)
def test_any_schedule_converges(dialects: list[bool], steps: list[Any], rnd: random.Random) -> None:
    room = Room()
    editors = [Editor(i, hocuspocus) for i, hocuspocus in enumerate(dialects)]
    for e in editors:
        room.join(e)
    for who, what, a in steps:
        i = who % len(editors)
        e = editors[i]
        if what == 0:
            e.edit(a, rnd.choice(["a", "b", "xy"]))
        elif what == 1:
            room.upload(i)
        elif what == 2 and room.queue:
            for _ in range(1 + a % 3):
                if room.queue:
                    room.tick()
        elif what == 3 and e.inbox:
            e.receive_one()
    # Quiesce: everything uploaded, stored, delivered.
    while any(e.outgoing or e.inbox for e in editors) or room.queue:
        for i in range(len(editors)):
            room.upload(i)
        while room.queue:
            room.tick()
        for e in editors:
            while e.inbox:
                e.receive_one()
    expected = room.shared.doc.text("text")
    for e in editors:
        assert str(e.text) == expected
        if e.hocuspocus:
            assert e.unsynced == 0  # every update acknowledged, once
