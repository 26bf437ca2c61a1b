"""Binary fuzzing: thousands of random and mutated frames through both decoders and both session
machines. Only YjsProtocolError or well-formed actions come out, memory stays bounded, the shared
document only ever changes through complete updates, and a well-behaved client still works."""

from __future__ import annotations

import random
import resource
from typing import Any

import pycrdt

from cowrite.yjs import messages as m
from cowrite.yjs.awareness import AwarenessEntry, encode_update
from cowrite.yjs.lib0 import YjsProtocolError
from cowrite.yjs.session import (
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

ACTIONS = (Send, Persist, Broadcast, RelayAwareness, Authenticate, Join, Leave, StatelessReceived)


def _updates() -> list[bytes]:
    doc: pycrdt.Doc[Any] = pycrdt.Doc(client_id=31)
    out: list[bytes] = []
    doc.observe(lambda e: out.append(e.update))
    text = doc.get("t", type=pycrdt.Text)
    text.insert(0, "hello")
    text.insert(5, " world")
    del text[0:2]
    doc.get("m", type=pycrdt.Map)["k"] = "v"
    return out


def _corpus(address: str) -> tuple[list[bytes], list[bytes]]:
    ups = _updates()
    aw = encode_update([AwarenessEntry(4, 1, '{"a":1}'), AwarenessEntry(5, 2, "null")])
    syncs: list[m.SyncMessage] = [m.SyncStep1(b"\x01\x1f\x02"), m.SyncStep2(ups[0])]
    syncs += [m.SyncUpdate(u) for u in ups]
    y = [m.encode_ywebsocket(m.YSync(s)) for s in syncs]
    y += [m.encode_ywebsocket(m.YAwareness(aw)), m.encode_ywebsocket(m.YQueryAwareness())]
    h = [m.encode_hocuspocus(m.HAuthToken(address, "rw", "4.8.0"))]
    h += [m.encode_hocuspocus(m.HSync(address, s)) for s in syncs]
    h += [
        m.encode_hocuspocus(m.HAwareness(address, aw)),
        m.encode_hocuspocus(m.HQueryAwareness(address)),
        m.encode_hocuspocus(m.HStateless(address, "x")),
        m.encode_hocuspocus(m.HClose(address, "")),
        m.PING_FRAME,
        m.PONG_FRAME,
    ]
    return y, h


def mutate(frame: bytes, rnd: random.Random) -> bytes:
    b = bytearray(frame)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(6)
        if op == 0 and b:
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        elif op == 1 and b:
            del b[rnd.randrange(len(b)) :]
        elif op == 2:
            b.insert(rnd.randint(0, len(b)), rnd.randrange(256))
        elif op == 3 and b:
            # A lying length: a varint of 2**28 or so where a small count was.
            i = rnd.randrange(len(b))
            b[i : i + 1] = b"\xff\xff\xff\x7f"
        elif op == 4 and b:
            i = rnd.randrange(len(b))
            b[i] ^= 1 << rnd.randrange(8)
        else:
            b += rnd.randbytes(rnd.randint(1, 8))
    return bytes(b)


def frames(corpus: list[bytes], rnd: random.Random, n: int) -> list[bytes]:
    out = []
    for _ in range(n):
        r = rnd.random()
        if r < 0.15:
            out.append(rnd.choice(corpus))
        elif r < 0.85:
            out.append(mutate(rnd.choice(corpus), rnd))
        else:
            out.append(rnd.randbytes(rnd.randint(0, 48)))
    return out


def check_actions(actions: list[Action]) -> bool:
    """Every action is known; a Close, if any, is the last one. Returns whether it closed."""
    for i, a in enumerate(actions):
        if isinstance(a, Close):
            assert i == len(actions) - 1
            assert 1000 <= a.code < 5000 and a.reason
            return True
        assert isinstance(a, ACTIONS), a
        if isinstance(a, Send):
            assert isinstance(a.frame, bytes) and a.frame
    return False


def test_decoders_raise_only_protocol_errors() -> None:
    rnd = random.Random(2024)
    y, h = _corpus("doc")
    ok = bad = 0
    for frame in frames(y + h, rnd, 6000):
        try:
            ymsg = m.decode_ywebsocket(frame, 4096)
            # Whatever decodes re-encodes to a frame that decodes to the same message.
            assert m.decode_ywebsocket(m.encode_ywebsocket(ymsg)) == ymsg
            ok += 1
        except YjsProtocolError as exc:
            assert exc.code and exc.reason
            bad += 1
        try:
            hmsg = m.decode_hocuspocus(frame, 4096)
            assert m.decode_hocuspocus(m.encode_hocuspocus(hmsg)) == hmsg
            ok += 1
        except YjsProtocolError as exc:
            assert exc.code and exc.reason
            bad += 1
    assert ok > 500 and bad > 2000


def _snapshot(shared: SharedDoc) -> tuple[bytes, bytes]:
    return shared.doc.encode_snapshot(), shared.doc.state_vector()


def test_sessions_survive_fuzzing_and_still_serve_a_good_client() -> None:
    rnd = random.Random(99)
    y, h = _corpus("doc")
    shared = SharedDoc()
    limits = SessionLimits(max_frame_bytes=4096)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    closes = persisted = 0

    def auth(token: str, document: str) -> Rights | Denied:
        return Rights.READ_WRITE if token == "rw" else Denied()

    ys = YWebsocketSession("doc", Rights.READ_WRITE, shared, limits)
    hs = HocuspocusSession(auth, limits)
    for i, frame in enumerate(frames(y + h, rnd, 5000)):
        before = _snapshot(shared)
        session_out: list[Action]
        if i % 2:
            session_out = ys.receive(frame)
        else:
            session_out = hs.receive(frame)
            for a in session_out:
                if isinstance(a, Join):
                    session_out = session_out + hs.attach(a.address, shared)
                    break
        closed = check_actions(session_out)
        persists = [a for a in session_out if isinstance(a, Persist)]
        if not persists:
            # Without an accepted update the document does not change.
            assert _snapshot(shared) == before
        for p in persists:
            persisted += 1
            session = ys if i % 2 else hs
            check_actions(session.durable(p.ticket))
        if closed:
            closes += 1
            if i % 2:
                ys = YWebsocketSession("doc", Rights.READ_WRITE, shared, limits)
            else:
                hs = HocuspocusSession(auth, limits)
    assert closes > 100 and persisted > 0
    growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert growth_mb < 256

    # A well-behaved client, after all that: its edits are accepted and read back.
    client: pycrdt.Doc[Any] = pycrdt.Doc(client_id=777)
    client.apply_update(shared.doc.diff(client.get_state()))
    updates: list[bytes] = []
    client.observe(lambda e: updates.append(e.update))
    good = YWebsocketSession("doc", Rights.READ_WRITE, shared, limits)
    good.open()
    body = client.get("good", type=pycrdt.Text)
    body.insert(0, "still fine")
    for u in updates:
        out = good.receive(m.encode_ywebsocket(m.YSync(m.SyncUpdate(u))))
        assert [type(a) for a in out] == [Persist]
    assert shared.doc.text("good") == "still fine"
