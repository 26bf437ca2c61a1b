"""The per-connection state machines: handshakes, durable acknowledgement, rights, held messages,
missing dependencies, awareness, refusals."""

from __future__ import annotations

from typing import Any

import pycrdt

from cowrite.yjs import messages as m
from cowrite.yjs.awareness import AwarenessEntry, decode_update, encode_update
from cowrite.yjs.session import (
    CLOSE_OUT_OF_SYNC,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_RESET,
    PENDING,
    Action,
    Authenticate,
    Broadcast,
    Close,
    Denied,
    HocuspocusSession,
    Join,
    Leave,
    Persist,
    RelayAwareness,
    Rights,
    Send,
    SessionLimits,
    SharedDoc,
    StatelessReceived,
    YWebsocketSession,
)


def editor(client_id: int = 9) -> tuple[pycrdt.Doc[Any], list[bytes]]:
    doc: pycrdt.Doc[Any] = pycrdt.Doc(client_id=client_id)
    updates: list[bytes] = []
    doc.observe(lambda e: updates.append(e.update))
    return doc, updates


def sent(actions: list[Action]) -> list[bytes]:
    return [a.frame for a in actions if isinstance(a, Send)]


def y_sent(actions: list[Action]) -> list[m.YWebsocketMessage]:
    return [m.decode_ywebsocket(f) for f in sent(actions)]


def h_sent(actions: list[Action]) -> list[m.HocuspocusMessage]:
    return [m.decode_hocuspocus(f) for f in sent(actions)]


# --- y-websocket ---------------------------------------------------------------------------------


def test_ywebsocket_handshake_update_durable_broadcast() -> None:
    shared = SharedDoc()
    s = YWebsocketSession("notes", Rights.READ_WRITE, shared, key="c1")
    assert y_sent(s.open()) == [m.YSync(m.SyncStep1(shared.doc.state_vector()))]
    client, updates = editor()
    client.get("t", type=pycrdt.Text).insert(0, "hi")
    # The client's step 1 is answered with a step 2, and our step 1 follows.
    out = s.receive(m.encode_ywebsocket(m.YSync(m.SyncStep1(client.get_state()))))
    assert isinstance(y_sent(out)[0], m.YSync)
    # Its update is applied and submitted; nothing is broadcast before it is durable.
    out = s.receive(m.encode_ywebsocket(m.YSync(m.SyncUpdate(updates[0]))))
    assert len(out) == 1 and isinstance(out[0], Persist)
    assert shared.doc.text("t") == "hi"
    done = s.durable(out[0].ticket)
    assert done == [Broadcast("notes", out[0].update, "c1")]
    assert s.durable(out[0].ticket) == []  # a ticket is acknowledged once
    # A duplicate brings nothing: nothing to store.
    assert s.receive(m.encode_ywebsocket(m.YSync(m.SyncUpdate(updates[0])))) == []
    frame = s.update_frame(b"\x00\x00")
    assert m.decode_ywebsocket(frame) == m.YSync(m.SyncUpdate(b"\x00\x00"))


def test_ywebsocket_read_only_drops_changes_and_says_so_once() -> None:
    shared = SharedDoc()
    s = YWebsocketSession("notes", Rights.READ, shared)
    s.open()
    client, updates = editor()
    client.get("t", type=pycrdt.Text).insert(0, "x")
    # An empty step 2 (nothing new) is fine and silent.
    assert s.receive(m.encode_ywebsocket(m.YSync(m.SyncStep2(b"\x00\x00")))) == []
    out = s.receive(m.encode_ywebsocket(m.YSync(m.SyncUpdate(updates[0]))))
    assert y_sent(out) == [m.YPermissionDenied("read-only")]
    assert s.receive(m.encode_ywebsocket(m.YSync(m.SyncStep2(updates[0])))) == []
    assert shared.doc.text("t") == ""
    assert not s.closed


def test_ywebsocket_missing_dependencies_resync_then_close() -> None:
    shared = SharedDoc()
    limits = SessionLimits(max_resyncs=2, max_early_refusals=3)
    s = YWebsocketSession("notes", Rights.READ_WRITE, shared, limits)
    s.open()  # our step 1 is out
    client, updates = editor()
    text = client.get("t", type=pycrdt.Text)
    text.insert(0, "a")
    text.insert(1, "b")
    # typed while reconnecting: refused quietly, the client's step 2 (on its way) carries "a"
    assert s.receive(m.encode_ywebsocket(m.YSync(m.SyncUpdate(updates[1])))) == []
    step2 = client.get_update(shared.doc.state_vector())
    out = s.receive(m.encode_ywebsocket(m.YSync(m.SyncStep2(step2))))
    assert isinstance(out[0], Persist) and shared.doc.text("t") == "ab"
    orphan = m.encode_ywebsocket(m.YSync(m.SyncUpdate(b"\x01\x01\x63\x05\x84\x63\x04\x01\x78\x00")))
    # Refused, and our step 1 asks the client for what we lack.
    assert y_sent(s.receive(orphan)) == [m.YSync(m.SyncStep1(shared.doc.state_vector()))]
    for _ in range(3):  # a client that never answers: bounded
        assert s.receive(orphan) == []
    out = s.receive(orphan)
    assert out[-1] == Close(CLOSE_OUT_OF_SYNC, "missing_dependencies")
    assert CLOSE_OUT_OF_SYNC == 1013  # not 44xx: y-websocket 3 reconnects (and resyncs)


def test_resyncs_are_bounded_over_the_connection_life() -> None:
    shared = SharedDoc()
    limits = SessionLimits(max_resyncs=3, max_resyncs_total=4)
    s = YWebsocketSession("notes", Rights.READ_WRITE, shared, limits)
    client, updates = editor()
    text = client.get("t", type=pycrdt.Text)
    for i in range(6):
        text.insert(i, "x")
    orphan = m.encode_ywebsocket(m.YSync(m.SyncUpdate(updates[5])))
    nothing = m.encode_ywebsocket(m.YSync(m.SyncStep2(b"\x00\x00")))
    refusals = 0
    for u in updates[:5]:
        out = s.receive(orphan)  # refused: our step 1 asks for what we lack
        if isinstance(out[-1], Close):
            assert out[-1] == Close(CLOSE_OUT_OF_SYNC, "missing_dependencies")
            break
        refusals += 1
        assert isinstance(out[0], Send)
        s.receive(nothing)  # the client answers (with nothing that helps)
        good = s.receive(m.encode_ywebsocket(m.YSync(m.SyncUpdate(u))))  # a good one between
        assert isinstance(good[0], Persist)
    # Never three in a row, yet the fifth refusal over the connection's life closes it.
    assert refusals == 4


def test_ywebsocket_awareness_relay_query_and_removal_on_close() -> None:
    shared = SharedDoc()
    a = YWebsocketSession("d", Rights.READ, shared, key="a")
    b = YWebsocketSession("d", Rights.READ_WRITE, shared, key="b")
    state = encode_update([AwarenessEntry(5, 1, '{"user":"ann"}')])
    out = a.receive(m.encode_ywebsocket(m.YAwareness(state)))
    # read-only clients still have cursors; the decoded entries go along (no second decode)
    assert out == [RelayAwareness("d", state, "a", (AwarenessEntry(5, 1, '{"user":"ann"}'),))]
    assert y_sent(b.open())[1] == m.YAwareness(state)
    assert y_sent(b.receive(m.encode_ywebsocket(m.YQueryAwareness()))) == [m.YAwareness(state)]
    out = a.close()
    assert isinstance(out[0], RelayAwareness)
    assert decode_update(out[0].update) == [AwarenessEntry(5, 1, None)]
    assert a.receive(m.encode_ywebsocket(m.YQueryAwareness())) == []  # closed


def test_ywebsocket_garbage_closes_with_protocol_error() -> None:
    shared = SharedDoc()
    s = YWebsocketSession("d", Rights.READ_WRITE, shared)
    s.receive(m.encode_ywebsocket(m.YAwareness(encode_update([AwarenessEntry(1, 1, "1")]))))
    out = s.receive(b"\x00\x02\x03\xff\xff\xff")
    assert out[-1] == Close(CLOSE_PROTOCOL_ERROR, "invalid_update")
    assert isinstance(out[0], RelayAwareness)  # its awareness is removed on the way out
    assert s.closed and shared.doc.encode_snapshot() == b"\x00\x00"


# --- Hocuspocus ----------------------------------------------------------------------------------


def rights_for(token: str, document: str) -> Rights | Denied:
    if token == "rw":
        return Rights.READ_WRITE
    if token == "ro":
        return Rights.READ
    return Denied("bad token")


def provider_open(address: str, token: str, client: pycrdt.Doc[Any]) -> list[bytes]:
    """What HocuspocusProvider sends on open, without waiting: Auth, SyncStep1, awareness."""
    aw = encode_update([AwarenessEntry(client.client_id, 0, '{"name":"n"}')])
    return [
        m.encode_hocuspocus(m.HAuthToken(address, token, "4.8.0")),
        m.encode_hocuspocus(m.HSync(address, m.SyncStep1(client.get_state()))),
        m.encode_hocuspocus(m.HAwareness(address, aw)),
    ]


def test_hocuspocus_auth_holds_messages_then_replays_them() -> None:
    s = HocuspocusSession(rights_for, key="conn")
    shared = SharedDoc()
    client, _updates = editor()
    frames = provider_open("doc", "rw", client)
    out = s.receive(frames[0])
    assert h_sent(out) == [m.HAuthenticated("doc", "read-write")]
    assert out[-1] == Join("doc", "doc", Rights.READ_WRITE)
    assert s.receive(frames[1]) == [] and s.receive(frames[2]) == []  # held until attached
    out = s.attach("doc", shared)
    msgs = h_sent(out)
    assert m.HSync("doc", m.SyncStep2(shared.doc.diff(client.get_state()))) in msgs
    assert m.HSync("doc", m.SyncStep1(shared.doc.state_vector())) in msgs
    assert any(isinstance(a, RelayAwareness) for a in out)
    assert s.documents() == {"doc": "doc"}


def test_hocuspocus_sync_status_only_after_durable() -> None:
    s = HocuspocusSession(rights_for, key="conn")
    shared = SharedDoc()
    s.receive(m.encode_hocuspocus(m.HAuthToken("doc", "rw")))
    s.attach("doc", shared)
    client, updates = editor()
    client.get("t", type=pycrdt.Text).insert(0, "saved")
    out = s.receive(m.encode_hocuspocus(m.HSync("doc", m.SyncUpdate(updates[0]))))
    assert [type(a) for a in out] == [Persist]  # no SyncStatus yet
    p = out[0]
    assert isinstance(p, Persist)
    done = s.durable(p.ticket)
    assert h_sent(done) == [m.HSyncStatus("doc", True)]
    assert done[-1] == Broadcast("doc", p.update, "conn")
    # The provider's answer to our step 1 (nothing new) is acknowledged at once.
    out = s.receive(
        m.encode_hocuspocus(
            m.HSync("doc", m.SyncStep2(client.get_update(shared.doc.state_vector())))
        )
    )
    assert h_sent(out) == [m.HSyncStatus("doc", True)]


def test_hocuspocus_owed_acknowledgement_after_resync() -> None:
    s = HocuspocusSession(rights_for)
    shared = SharedDoc()
    s.receive(m.encode_hocuspocus(m.HAuthToken("doc", "rw")))
    s.attach("doc", shared)
    client, updates = editor()
    text = client.get("t", type=pycrdt.Text)
    text.insert(0, "a")
    text.insert(1, "b")
    out = s.receive(m.encode_hocuspocus(m.HSync("doc", m.SyncUpdate(updates[1]))))
    assert h_sent(out) == [m.HSync("doc", m.SyncStep1(shared.doc.state_vector()))]
    out = s.receive(
        m.encode_hocuspocus(
            m.HSync("doc", m.SyncStep2(client.get_update(shared.doc.state_vector())))
        )
    )
    p = out[0]
    assert isinstance(p, Persist)
    # One SyncStatus for the step 2, one owed for the refused update.
    assert h_sent(s.durable(p.ticket)) == [m.HSyncStatus("doc", True)] * 2


def test_hocuspocus_read_only_scope() -> None:
    s = HocuspocusSession(rights_for)
    shared = SharedDoc()
    out = s.receive(m.encode_hocuspocus(m.HAuthToken("doc", "ro")))
    assert h_sent(out) == [m.HAuthenticated("doc", "readonly")]
    s.attach("doc", shared)
    client, updates = editor()
    client.get("t", type=pycrdt.Text).insert(0, "nope")
    out = s.receive(m.encode_hocuspocus(m.HSync("doc", m.SyncUpdate(updates[0]))))
    assert h_sent(out) == [m.HSyncStatus("doc", False)]
    out = s.receive(m.encode_hocuspocus(m.HSync("doc", m.SyncStep2(updates[0]))))
    assert h_sent(out) == [m.HSyncStatus("doc", False)]
    out = s.receive(m.encode_hocuspocus(m.HSync("doc", m.SyncStep2(b"\x00\x00"))))
    assert h_sent(out) == [m.HSyncStatus("doc", True)]
    assert shared.doc.text("t") == ""


def test_hocuspocus_denied_then_retry() -> None:
    s = HocuspocusSession(rights_for)
    s.receive(m.encode_hocuspocus(m.HQueryAwareness("doc")))  # held
    out = s.receive(m.encode_hocuspocus(m.HAuthToken("doc", "wrong")))
    assert h_sent(out) == [m.HPermissionDenied("doc", "bad token")]
    assert not s.closed  # the socket stays; the address starts afresh
    out = s.receive(m.encode_hocuspocus(m.HAuthToken("doc", "rw")))
    assert isinstance(out[-1], Join)
    assert s.attach("doc", SharedDoc()) == []  # the held query was dropped with the denial


def test_hocuspocus_pending_authentication() -> None:
    s = HocuspocusSession(lambda token, doc: PENDING)
    out = s.receive(m.encode_hocuspocus(m.HAuthToken("a\0sess", "t")))
    assert out == [Authenticate("a\0sess", "a", "t")]
    assert s.receive(m.encode_hocuspocus(m.HAuthToken("a\0sess", "t"))) == []
    out = s.auth_result("a\0sess", Rights.READ_WRITE)
    assert h_sent(out) == [m.HAuthenticated("a\0sess", "read-write")]
    assert out[-1] == Join("a\0sess", "a", Rights.READ_WRITE)
    assert s.auth_result("a\0sess", Rights.READ) == []  # answered once


def test_hocuspocus_held_queue_is_bounded() -> None:
    s = HocuspocusSession(lambda token, doc: PENDING, SessionLimits(max_held_messages=3))
    frame = m.encode_hocuspocus(m.HQueryAwareness("doc"))
    for _ in range(3):
        assert s.receive(frame) == []
    assert s.receive(frame)[-1].__class__ is Close
    assert s.closed
    s2 = HocuspocusSession(lambda token, doc: PENDING, SessionLimits(max_documents=2))
    s2.receive(m.encode_hocuspocus(m.HQueryAwareness("a")))
    s2.receive(m.encode_hocuspocus(m.HQueryAwareness("b")))
    assert isinstance(s2.receive(m.encode_hocuspocus(m.HQueryAwareness("c")))[-1], Close)
    s3 = HocuspocusSession(lambda token, doc: PENDING, SessionLimits(max_held_bytes=20))
    out = s3.receive(m.encode_hocuspocus(m.HStateless("doc", "x" * 30)))
    assert out[-1] == Close(CLOSE_RESET, "unauthenticated message queue limit exceeded")


def test_hocuspocus_multiplexing_stateless_close_ping() -> None:
    s = HocuspocusSession(rights_for, key="k")
    one, two = SharedDoc(), SharedDoc()
    for name, shared in (("one", one), ("two", two)):
        s.receive(m.encode_hocuspocus(m.HAuthToken(name, "rw")))
        s.attach(name, shared)
    aw = encode_update([AwarenessEntry(3, 1, "{}")])
    s.receive(m.encode_hocuspocus(m.HAwareness("two", aw)))
    out = s.receive(m.encode_hocuspocus(m.HStateless("one", "hello")))
    assert out == [StatelessReceived("one", "one", "hello")]
    assert s.receive(m.PING_FRAME) == [Send(m.PONG_FRAME)]
    assert s.receive(m.PONG_FRAME) == []
    out = s.receive(m.encode_hocuspocus(m.HClose("two", "")))
    assert out[-1] == Leave("two", "two") and isinstance(out[0], RelayAwareness)
    assert s.documents() == {"one": "one"}
    out = s.detach("one", "document deleted")
    assert h_sent(out[:1]) == [m.HClose("one", "document deleted")]
    assert s.documents() == {}
    # A client never sends BroadcastStateless or server -> client types.
    s.receive(m.encode_hocuspocus(m.HAuthToken("one", "rw")))
    s.attach("one", one)
    out = s.receive(m.encode_hocuspocus(m.HStateless("one", "x", broadcast=True)))
    assert out[-1] == Close(CLOSE_PROTOCOL_ERROR, "unexpected_message")


def test_hocuspocus_close_leaves_every_document() -> None:
    s = HocuspocusSession(rights_for, key="k")
    shared = SharedDoc()
    s.receive(m.encode_hocuspocus(m.HAuthToken("a", "rw")))
    s.attach("a", shared)
    s.receive(m.encode_hocuspocus(m.HAwareness("a", encode_update([AwarenessEntry(8, 2, "{}")]))))
    s.receive(m.encode_hocuspocus(m.HAuthToken("b", "rw")))
    out = s.close()
    assert Leave("a", "a") in out and len(shared.awareness) == 0
    assert s.close() == [] and s.receive(m.PING_FRAME) == []
