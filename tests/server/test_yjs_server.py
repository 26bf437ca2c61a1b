"""Yjs documents on a real server: ``/hocuspocus`` and ``/yjs/<name>`` over real WebSockets,
with Python clients built from pycrdt and cowrite's own codecs (the real JS providers are driven
in ``tests/yjs``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx
import pycrdt
import pytest
import websockets

from cowrite.rooms.yjs_history import state_of
from cowrite.server.auth import issue
from cowrite.server.config import Settings
from cowrite.yjs import messages as m
from cowrite.yjs.awareness import AwarenessEntry, decode_update, encode_update

from .conftest import RunningServer, start_server

SECRET = "s" * 32


class Hocus:
    """A minimal Hocuspocus provider: one pycrdt document per address."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.docs: dict[str, pycrdt.Doc[Any]] = {}
        self.frames: list[Any] = []
        self._remote = False
        self._reader = asyncio.create_task(self._read())
        self.closed: tuple[int, str] | None = None
        self.on_frame: Callable[[Any], None] | None = None

    @classmethod
    async def connect(cls, server: RunningServer) -> Hocus:
        url = server.url.replace("http://", "ws://") + "/hocuspocus"
        return cls(await websockets.connect(url, max_size=None))

    async def open(self, name: str, token: str = "x") -> pycrdt.Doc[Any]:
        doc: pycrdt.Doc[Any] = pycrdt.Doc()
        self.docs[name] = doc

        def local(event: pycrdt.TransactionEvent) -> None:
            if not self._remote:
                frame = m.encode_hocuspocus(m.HSync(name, m.SyncUpdate(event.update)))
                asyncio.get_running_loop().create_task(self.ws.send(frame))

        doc.observe(local)
        await self.ws.send(m.encode_hocuspocus(m.HAuthToken(name, token, "4.8.0")))
        await self.ws.send(m.encode_hocuspocus(m.HSync(name, m.SyncStep1(doc.get_state()))))
        return doc

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                assert isinstance(frame, bytes)
                msg = m.decode_hocuspocus(frame)
                self.frames.append(msg)
                if self.on_frame is not None:
                    self.on_frame(msg)
                if isinstance(msg, m.HSync):
                    doc = self.docs.get(msg.address)
                    if doc is None:
                        continue
                    if isinstance(msg.sync, m.SyncStep1):
                        reply = m.SyncStep2(doc.get_update(msg.sync.state_vector))
                        await self.ws.send(m.encode_hocuspocus(m.HSync(msg.address, reply)))
                    else:
                        self._remote = True
                        try:
                            doc.apply_update(msg.sync.update)
                        finally:
                            self._remote = False
        except websockets.ConnectionClosed as exc:
            rcvd = exc.rcvd
            self.closed = (rcvd.code, rcvd.reason) if rcvd is not None else (1006, "")

    def of(self, kind: type) -> list[Any]:
        return [f for f in self.frames if isinstance(f, kind)]

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.wait_for(self._reader, 5)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def text_of(doc: pycrdt.Doc[Any], name: str = "t") -> str:
    return str(doc.get(name, type=pycrdt.Text))


async def stored_text(server: RunningServer, doc_id: str) -> str:
    stored = await server.state.store.load(doc_id)
    assert stored is not None and stored.kind == "yjs"
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    snapshot = [state_of(stored.snapshot)] if stored.snapshot else []  # a history container
    for update in snapshot + [u for _, u in stored.updates]:
        doc.apply_update(update)
    return text_of(doc)


@pytest.fixture
async def secured(settings: Settings) -> AsyncIterator[RunningServer]:
    running, task = await start_server(replace(settings, secret=SECRET))
    yield running
    running.server.should_exit = True
    await asyncio.wait_for(task, 20)


def token(docs: dict[str, list[str]], exp: float | None = None) -> str:
    return issue(SECRET, "u1", docs=docs, name="Ann", expires_at=int(exp or time.time() + 600))


async def test_hocuspocus_sync_status_only_once_the_update_is_stored(server: RunningServer) -> None:
    a, b = await Hocus.connect(server), await Hocus.connect(server)
    da = await a.open("rich")
    db = await b.open("rich")
    await until(lambda: len(a.of(m.HAuthenticated)) == 1 and len(b.of(m.HAuthenticated)) == 1)
    assert a.of(m.HAuthenticated)[0].scope == "read-write"
    await until(lambda: bool(a.of(m.HSyncStatus)))  # its handshake's step 2, acknowledged
    events: list[str] = []  # one event loop: the order of these is the order things happened
    store = server.state.store
    append = store.append_update

    async def recorded(*args: Any, **kw: Any) -> int:
        seq = await append(*args, **kw)
        events.append("stored")
        return seq

    store.append_update = recorded
    a.on_frame = lambda msg: events.append("status") if isinstance(msg, m.HSyncStatus) else None
    da.get("t", type=pycrdt.Text).insert(0, "hello")
    await until(lambda: text_of(db) == "hello" and "status" in events)
    da.get("t", type=pycrdt.Text).insert(5, " world")
    await until(lambda: text_of(db) == "hello world" and events.count("status") == 2)
    assert events == ["stored", "status", "stored", "status"]
    assert await stored_text(server, "rich") == "hello world"
    assert all(f.saved for f in a.of(m.HSyncStatus))
    info = await server.state.store.get_document("rich")
    assert info is not None and info.kind == "yjs"
    await a.close()
    await b.close()


async def test_y_websocket_and_hocuspocus_clients_share_a_document(server: RunningServer) -> None:
    url = server.url.replace("http://", "ws://") + "/yjs/shared"
    y = await websockets.connect(url, max_size=None)
    first = m.decode_ywebsocket(await y.recv())  # the server's sync step 1
    assert isinstance(first, m.YSync) and isinstance(first.sync, m.SyncStep1)
    ydoc: pycrdt.Doc[Any] = pycrdt.Doc()
    with ydoc.transaction():
        ydoc.get("t", type=pycrdt.Text).insert(0, "from y-websocket")
    await y.send(m.encode_ywebsocket(m.YSync(m.SyncStep2(ydoc.get_update()))))
    h = await Hocus.connect(server)
    hdoc = await h.open("shared")
    await until(lambda: text_of(hdoc) == "from y-websocket")
    hdoc.get("t", type=pycrdt.Text).insert(0, ">")
    while text_of(ydoc) != ">from y-websocket":
        msg = m.decode_ywebsocket(await asyncio.wait_for(y.recv(), 10))
        if isinstance(msg, m.YSync) and isinstance(msg.sync, m.SyncUpdate | m.SyncStep2):
            ydoc.apply_update(msg.sync.update)
    assert await stored_text(server, "shared") == ">from y-websocket"
    await y.close()
    await h.close()


async def test_a_document_of_the_other_kind_is_refused(server: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.post("/api/documents", json={"id": "native"})
        assert r.status_code == 201 and r.json()["kind"] == "crdt"
        r = await http.post("/api/documents", json={"id": "made", "kind": "yjs"})
        assert r.status_code == 201 and r.json()["kind"] == "yjs"
        r = await http.post("/api/documents", json={"id": "odd", "kind": "automerge"})
        assert r.status_code == 400
    h = await Hocus.connect(server)
    await h.open("native")
    await until(lambda: bool(h.of(m.HPermissionDenied)))
    assert h.of(m.HPermissionDenied)[0].reason == "not a Yjs document"
    made = await h.open("made")  # the same socket goes on with another document
    await until(lambda: bool(h.of(m.HSyncStatus)))
    made.get("t", type=pycrdt.Text).insert(0, "x")
    await until(lambda: len(h.of(m.HSyncStatus)) == 2)
    url = server.url.replace("http://", "ws://") + "/yjs/native"
    async with websockets.connect(url) as y:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(y.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403
    async with httpx.AsyncClient(base_url=server.url) as http:
        page = (await http.get("/api/documents")).json()
    listed = {d["id"]: d["kind"] for d in page["documents"]}
    assert listed == {"native": "crdt", "made": "yjs"}
    async with httpx.AsyncClient(base_url=server.url) as http:
        made = (await http.get("/api/documents/made")).json()
    assert made["kind"] == "yjs" and made["value"] == {} and made["version"] >= 1
    await h.close()


async def test_read_only_and_refused_tokens(secured: RunningServer) -> None:
    writer = await Hocus.connect(secured)
    wdoc = await writer.open("doc", token({"doc": ["write"]}))
    reader = await Hocus.connect(secured)
    rdoc = await reader.open("doc", token({"doc": ["read"]}))
    await until(lambda: bool(reader.of(m.HAuthenticated)) and bool(writer.of(m.HAuthenticated)))
    assert reader.of(m.HAuthenticated)[0].scope == "readonly"
    wdoc.get("t", type=pycrdt.Text).insert(0, "ok")
    await until(lambda: text_of(rdoc) == "ok")
    rdoc.get("t", type=pycrdt.Text).insert(0, "nope ")
    await until(lambda: any(not s.saved for s in reader.of(m.HSyncStatus)))
    assert await stored_text(secured, "doc") == "ok"
    assert text_of(wdoc) == "ok"
    bad = await Hocus.connect(secured)
    await bad.open("doc", "forged")
    await bad.open("other", token({"doc": ["write"]}))  # a token for another document
    await bad.open("late", token({"*": ["write"]}, exp=time.time() - 60))
    await until(lambda: len(bad.of(m.HPermissionDenied)) == 3)
    url = secured.url.replace("http://", "ws://") + "/yjs/doc"
    async with websockets.connect(url) as y:  # no token
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(y.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    ok = token({"doc": ["read"]})
    async with websockets.connect(f"{url}?token={ok}") as y:  # read-only y-websocket
        await y.recv()
        ydoc: pycrdt.Doc[Any] = pycrdt.Doc()
        ydoc.get("t", type=pycrdt.Text).insert(0, "dropped")
        await y.send(m.encode_ywebsocket(m.YSync(m.SyncUpdate(ydoc.get_update()))))
        while True:
            msg = m.decode_ywebsocket(await asyncio.wait_for(y.recv(), 10))
            if isinstance(msg, m.YPermissionDenied):
                break
    assert await stored_text(secured, "doc") == "ok"
    for c in (writer, reader, bad):
        await c.close()


async def test_awareness_is_relayed_and_removed_when_its_connection_dies(
    server: RunningServer,
) -> None:
    a, b = await Hocus.connect(server), await Hocus.connect(server)
    await a.open("aw")
    await b.open("aw")
    await until(lambda: bool(a.of(m.HAuthenticated)) and bool(b.of(m.HAuthenticated)))
    state = json.dumps({"user": {"name": "Ann", "color": "#ff0000"}})
    update = encode_update([AwarenessEntry(77, 1, state)])
    await a.ws.send(m.encode_hocuspocus(m.HAwareness("aw", update)))

    def states_at_b() -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        for f in b.of(m.HAwareness):
            for e in decode_update(f.update):
                out[e.client_id] = e.state
        return out

    await until(lambda: states_at_b().get(77) == state)
    await a.ws.close()  # the connection dies: its states go with it
    await until(lambda: 77 in states_at_b() and states_at_b()[77] is None)
    await b.close()


async def test_chat_travels_in_stateless_messages(server: RunningServer) -> None:
    a, b = await Hocus.connect(server), await Hocus.connect(server)
    await a.open("talk")
    await until(lambda: bool(a.of(m.HAuthenticated)))
    send = {"type": "cowrite.chat.send", "text": "hi there", "name": "Ann"}
    await a.ws.send(m.encode_hocuspocus(m.HStateless("talk", json.dumps(send))))

    def payloads(c: Hocus) -> list[dict[str, Any]]:
        return [json.loads(f.payload) for f in c.of(m.HStateless)]

    await until(lambda: any(p["type"] == "cowrite.chat" for p in payloads(a)))
    await b.open("talk")
    await until(lambda: any(p["type"] == "cowrite.chat.history" for p in payloads(b)))
    history = next(p for p in payloads(b) if p["type"] == "cowrite.chat.history")
    assert [(x["author_name"], x["text"]) for x in history["messages"]] == [("Ann", "hi there")]
    await a.ws.send(m.encode_hocuspocus(m.HStateless("talk", "not json")))
    await until(lambda: any(p["type"] == "cowrite.error" for p in payloads(a)))
    await a.close()
    await b.close()


@pytest.mark.parametrize(
    ("path", "frame", "code"),
    [
        ("/hocuspocus", b"\x04talk\x00\x02\xff\xff", 1002),  # a lying length
        ("/hocuspocus", b"\x04talk\x63", 1002),  # an unknown type
        ("/yjs/garbage", b"\x00\x02\x05\x00", 1002),  # an update that does not decode
        ("/yjs/garbage", b"\x09", 1002),
    ],
)
async def test_garbage_closes_the_offender_only(
    server: RunningServer, path: str, frame: bytes, code: int
) -> None:
    good = await Hocus.connect(server)
    gdoc = await good.open("talk")
    await until(lambda: bool(good.of(m.HSyncStatus)))  # its handshake, acknowledged
    url = server.url.replace("http://", "ws://") + path
    async with websockets.connect(url) as bad:
        if path == "/hocuspocus":
            await bad.send(m.encode_hocuspocus(m.HAuthToken("talk", "x", "4.8.0")))
        await bad.send(frame)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(bad.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    gdoc.get("t", type=pycrdt.Text).insert(0, "still fine")
    await until(lambda: len(good.of(m.HSyncStatus)) == 2)
    assert await stored_text(server, "talk") == "still fine"
    async with websockets.connect(server.url.replace("http://", "ws://") + "/hocuspocus") as t:
        await t.send("a text frame")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(t.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003
    await good.close()


async def test_yjs_documents_survive_a_restart_and_unload(make_settings: Any) -> None:
    settings = make_settings(unload_after_s=0.2, snapshot_every=3)
    running, task = await start_server(settings)
    try:
        h = await Hocus.connect(running)
        doc = await h.open("keep")
        text = doc.get("t", type=pycrdt.Text)
        await until(lambda: bool(h.of(m.HSyncStatus)))
        for word in ["one ", "two ", "three ", "four "]:
            text.insert(len(text), word)
        await until(lambda: len(h.of(m.HSyncStatus)) == 5)
        await h.close()
        await until(lambda: "keep" not in running.state.hub.rooms)  # unloaded, snapshotted
        stored = await running.state.store.load("keep")
        assert stored is not None and stored.snapshot is not None and not stored.updates
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)
    running, task = await start_server(settings)
    try:
        h = await Hocus.connect(running)
        doc = await h.open("keep")
        await until(lambda: text_of(doc) == "one two three four ")
        await h.close()
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_silent_yjs_clients_time_out_but_quiet_ones_without_awareness_stay(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Hocuspocus client that stops answering pings, and a y-websocket one that stops
    renewing its awareness, are closed 4000 (their awareness goes with them); a y-websocket
    client that never had awareness (pycrdt's provider) is never timed out for its silence."""
    from cowrite.server import yjs_connection

    # (y-websocket clients renew every 15 s: their silence counts after 45 s, shortened here)
    monkeypatch.setattr(yjs_connection, "Y_WEBSOCKET_SILENCE_S", 0.8)
    running, task = await start_server(make_settings(heartbeat_s=0.2, heartbeat_timeout_s=0.8))
    try:
        base = running.url.replace("http://", "ws://")
        mute_h = await websockets.connect(base + "/hocuspocus")
        await mute_h.send(m.encode_hocuspocus(m.HAuthToken("beat", "x", "4.8.0")))
        mute_y = await websockets.connect(base + "/yjs/beat")
        aware = encode_update([AwarenessEntry(5, 1, json.dumps({"user": {"name": "m"}}))])
        await mute_y.send(m.encode_ywebsocket(m.YAwareness(aware)))
        quiet_y = await websockets.connect(base + "/yjs/beat")
        pings = 0
        for ws in (mute_h, mute_y):  # neither answers nor renews from now on
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    frame = await asyncio.wait_for(ws.recv(), 10)
                    pings += frame == m.PING_FRAME
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
        assert pings >= 1  # the Hocuspocus one was pinged before it was given up
        # still served after staying silent for longer than the timeout
        await quiet_y.send(m.encode_ywebsocket(m.YSync(m.SyncStep1(b"\x00"))))
        while True:
            reply = m.decode_ywebsocket(await asyncio.wait_for(quiet_y.recv(), 10))
            if isinstance(reply, m.YSync) and isinstance(reply.sync, m.SyncStep2):
                break
        await quiet_y.close()
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)
