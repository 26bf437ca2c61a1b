"""Connections without writer tasks: what one loop tick queues goes out as one frame, straight to
the socket under uvicorn (``UvicornLink``) or as ASGI messages elsewhere (``AsgiLink``); a full
outbox or a dead socket closes the connection; one timer pings every connection of a hub."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets
from starlette.websockets import WebSocketState

from cowrite import protocol as p
from cowrite.adapters.store.memory import MemoryStore
from cowrite.server.app import create_app
from cowrite.server.config import Settings
from cowrite.server.connection import (
    CLOSE_OUTBOX_FULL,
    CLOSE_TIMEOUT,
    MAX_BATCH,
    PING,
    Connection,
    Shared,
)
from cowrite.server.hub import Hub
from cowrite.server.metrics import Metrics
from cowrite.server.transport import (
    AsgiLink,
    LinkClosed,
    UvicornLink,
    forget_frames,
    text_frame,
    text_header,
)
from cowrite.server.uvicorn_ws import protocol_class

sys.path.insert(0, str(Path(__file__).parent))  # protocol_clients.py, next to this file
from protocol_clients import ThinClient

# ------------------------------------------------------------------------ a connection, no socket


class FakeLink:
    """Records frames; ``writable`` and ``broken`` are set by the test."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.writable_now = True
        self.broken = False
        self.resume: Callable[[], None] | None = None

    def writable(self) -> bool:
        return self.writable_now

    def when_writable(self, callback: Callable[[], None]) -> None:
        self.resume = callback

    def write(self, payload: bytes) -> None:
        if self.broken:
            raise LinkClosed
        self.frames.append(payload)

    def write_ping(self, payload: bytes) -> bool:
        return False  # queued like any message

    def write_now(self, payload: bytes) -> bool:
        if not self.writable_now:
            return False
        self.write(payload)
        return True

    async def receive(self) -> dict[str, Any]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def close(self, code: int, reason: str) -> None:
        pass

    def messages(self) -> list[Any]:
        out: list[Any] = []
        for frame in self.frames:
            data = json.loads(frame)
            out.extend(data if isinstance(data, list) else [data])
        return out


def _connection(**settings: Any) -> tuple[Connection, FakeLink, Metrics]:
    config = Settings(data=":memory:", **settings)
    metrics = Metrics()
    hub = Hub(MemoryStore(), config, metrics)
    conn = Connection(None, hub, config, metrics)  # type: ignore[arg-type]  # no socket
    link = FakeLink()
    conn._link = link
    conn._shared = Shared(config.heartbeat_s)
    return conn, link, metrics


def _msg(i: int) -> bytes:
    return json.dumps({"type": "ping", "nonce": i}).encode()


async def test_what_one_tick_queues_goes_out_as_one_frame() -> None:
    conn, link, _ = _connection()
    for i in range(3):
        conn.send(_msg(i))
    assert link.frames == []  # written at the end of the tick, not per message
    await asyncio.sleep(0)
    assert len(link.frames) == 1
    assert json.loads(link.frames[0]) == [{"type": "ping", "nonce": i} for i in range(3)]
    conn.send(_msg(3))  # a message alone is not wrapped in an array
    await asyncio.sleep(0)
    assert link.frames[1] == _msg(3)


async def test_one_message_flushes_are_counted_at_depth_zero_once_per_tick() -> None:
    """``Shared`` counts the flushes that wrote their one message at once (depth 0) in one
    call per tick; a flush that waits for the socket counts its backlog itself."""
    config = Settings(data=":memory:")
    metrics = Metrics()
    shared = Shared(config.heartbeat_s, metrics.outbox_depth)
    pairs = [_connection() for _ in range(3)]
    for conn, _, _ in pairs:
        conn._shared = shared
        conn.send(_msg(1))
    pairs[2][1].writable_now = False  # this one waits for its socket
    await asyncio.sleep(0)
    assert [len(link.frames) for _, link, _ in pairs] == [1, 1, 0]
    depth = metrics.outbox_depth
    assert depth._counts[0] == 2 and depth._sum == 0
    _, link, own = pairs[2]
    link.writable_now = True
    assert link.resume is not None
    link.resume()  # outside the tick's flush: its depth 0 is observed by the connection
    assert len(link.frames) == 1 and own.outbox_depth._counts[0] == 1
    assert depth._counts[0] == 2


async def test_a_long_backlog_goes_out_in_frames_of_at_most_max_batch() -> None:
    conn, link, _ = _connection()
    for i in range(2 * MAX_BATCH + 1):
        conn.send(_msg(i))
    await asyncio.sleep(0)
    sizes = [len(json.loads(f)) if f.startswith(b"[") else 1 for f in link.frames]
    assert sizes == [MAX_BATCH, MAX_BATCH, 1]
    assert [m["nonce"] for m in link.messages()] == list(range(2 * MAX_BATCH + 1))


async def test_a_socket_that_takes_nothing_keeps_the_backlog_until_it_does() -> None:
    conn, link, _ = _connection()
    link.writable_now = False
    for i in range(5):
        conn.send(_msg(i))
    await asyncio.sleep(0)
    assert link.frames == [] and link.resume is not None
    conn.send(_msg(5))  # queued behind the others, no second waiter
    link.writable_now = True
    link.resume()
    assert [m["nonce"] for m in link.messages()] == list(range(6))
    assert len(link.frames) == 1 and conn.outbox == []


async def test_a_full_outbox_closes_the_connection_4008_and_drops_the_rest() -> None:
    conn, link, metrics = _connection(outbox_messages=10)
    link.writable_now = False
    for i in range(12):
        conn.send(_msg(i))
    assert conn.closing is not None and conn.closing[0] == CLOSE_OUTBOX_FULL
    assert len(conn.outbox) == 10
    assert metrics.disconnects.labels(str(CLOSE_OUTBOX_FULL))._value.get() == 1


async def test_a_dead_socket_closes_the_connection_and_forgets_the_backlog() -> None:
    conn, link, _ = _connection()
    link.broken = True
    conn.send(_msg(1))
    await asyncio.sleep(0)
    assert conn.closing is not None and conn.closing[0] == 1006
    assert conn.outbox == []
    conn.send(_msg(2))  # closing: dropped
    assert conn.outbox == []


async def test_one_timer_pings_every_connection_and_drops_the_silent_ones() -> None:
    conns = [_connection(heartbeat_s=0.1, heartbeat_timeout_s=0.3) for _ in range(3)]
    shared = Shared(0.1)
    for conn, _, _ in conns:
        conn._shared = shared
        shared.add(conn)
    assert len(shared) == 3 and shared.slots == 4

    async def until(check: Callable[[], bool]) -> None:
        async with asyncio.timeout(10):
            while not check():
                await asyncio.sleep(0.01)

    def pinged(link: FakeLink) -> bool:
        return any(m["type"] == "ping" for m in link.messages())

    await until(lambda: all(pinged(link) for _, link, _ in conns))
    # the first one keeps talking, the others are silent: they are closed, it is not
    talker = conns[0][0]
    async with asyncio.timeout(10):
        while not all(c.closing is not None for c, _, _ in conns[1:]):
            talker.last_seen = time.monotonic()
            await asyncio.sleep(0.01)
    assert talker.closing is None
    assert all(c.closing is not None and c.closing[0] == CLOSE_TIMEOUT for c, _, _ in conns[1:])
    for conn, _, _ in conns:
        shared.discard(conn)
    assert len(shared) == 0 and shared._timer is None  # no timer without connections


# ----------------------------------------------------------------- the reader and its interruption


class FakeWebSocket:
    """Enough of Starlette's WebSocket for ``Connection.run`` over an ``AsgiLink``."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None
        self.application_state = WebSocketState.CONNECTED
        self.scope: dict[str, Any] = {"type": "websocket", "headers": [], "query_string": b""}

    async def accept(self) -> None:
        pass

    async def receive(self) -> dict[str, Any]:
        return await self.incoming.get()

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self.application_state = WebSocketState.DISCONNECTED


def _running_connection() -> tuple[Connection, FakeWebSocket, asyncio.Task[None]]:
    config = Settings(data=":memory:")
    metrics = Metrics()
    ws = FakeWebSocket()
    conn = Connection(ws, Hub(MemoryStore(), config, metrics), config, metrics)  # type: ignore[arg-type]
    ws.incoming.put_nowait(
        {"type": "websocket.receive", "text": '{"type":"hello","client_id":"x"}'}
    )
    return conn, ws, asyncio.create_task(conn.run())


async def test_close_interrupts_the_waiting_reader_and_sends_the_queued_messages_first() -> None:
    conn, ws, task = _running_connection()
    async with asyncio.timeout(10):
        while not ws.sent:  # the welcome
            await asyncio.sleep(0.01)
    assert isinstance(conn._link, AsgiLink)
    conn.send(_msg(7))
    conn.close(4321, "bye")
    async with asyncio.timeout(10):
        await task  # returns: the interruption is not a cancellation of the connection
    assert ws.closed == (4321, "bye")
    assert json.loads(ws.sent[-1]["text"]) == {"type": "ping", "nonce": 7}


async def test_cancelling_the_connection_from_outside_still_cancels_it() -> None:
    conn, ws, task = _running_connection()
    async with asyncio.timeout(10):
        while not ws.sent:
            await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert conn.closing is not None  # gone: nothing more is queued for it


# --------------------------------------------------------------------------- real servers, sockets


@contextlib.asynccontextmanager
async def serving(ws: Any = "auto") -> AsyncIterator[tuple[str, Any]]:
    app = create_app(Settings(data=":memory:", heartbeat_s=30, heartbeat_timeout_s=60))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, log_config=None, lifespan="on", ws_ping_interval=None, ws=ws)  # type: ignore[arg-type]
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    try:
        yield f"ws://127.0.0.1:{port}/ws", app.state.cowrite
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def _hello_join(ws: Any, client_id: str, doc: str) -> None:
    await ws.send(json.dumps({"type": "hello", "client_id": client_id}))
    await ws.send(json.dumps({"type": "join", "doc": doc, "create": True}))
    await _until(ws, "joined")


async def _until(ws: Any, type_: str) -> dict[str, Any]:
    async with asyncio.timeout(10):
        while True:
            data = json.loads(await ws.recv())
            for m in data if isinstance(data, list) else [data]:
                if m["type"] == type_:
                    return dict(m)


@pytest.mark.parametrize("compression", [None, "deflate"])
@pytest.mark.parametrize("ws", ["auto", "slim"])
async def test_frames_of_every_size_arrive_intact_straight_from_the_socket(
    compression: str | None, ws: str
) -> None:
    """Under uvicorn the server writes frames itself: small, 16-bit and 64-bit length headers,
    and through permessage-deflate when the client negotiated it (uvicorn's protocol and
    ``cowrite serve``'s slimmer one, ``uvicorn_ws``)."""
    async with serving(protocol_class() if ws == "slim" else ws) as (url, state):
        a = await websockets.connect(url, max_size=None, compression=compression)
        b = await websockets.connect(url, max_size=None, compression=compression)
        await _hello_join(a, "a", "sizes")
        await _hello_join(b, "b", "sizes")
        links = [c._link for c in state.connections]
        assert all(isinstance(link, UvicornLink) for link in links)
        assert all(bool(link._conn.extensions) == (compression is not None) for link in links)
        version = 0
        for i, size in enumerate((1, 125, 126, 65_535, 65_536, 200_000)):
            text = ("é🙂x" * size)[:size]
            op = {"type": "seq", "node": "text:body", "edit": [text]}
            edit = {"type": "edit", "doc": "sizes", "edit_id": f"e{i}", "version": version}
            await a.send(json.dumps({**edit, "ops": [op]}, ensure_ascii=False))
            version = (await _until(a, "ack"))["version"]
            remote = await _until(b, "remote")
            assert remote["ops"][0]["edit"] == [text]
        await a.close()
        await b.close()


@pytest.mark.parametrize("compression", [None, "deflate"])
async def test_the_heartbeats_ping_is_one_constant_frame_straight_to_the_socket(
    compression: str | None,
) -> None:
    """Uncompressed and writable: the pre-framed ping goes out as ``beat`` runs, ahead of
    what the tick queued; compressed, or while the socket takes no more, it is queued like
    any message (and still arrives, with the nonce clients echo)."""
    async with serving(protocol_class()) as (url, state):
        ws = await websockets.connect(url, max_size=None, compression=compression)
        await _hello_join(ws, "p", "pings")
        [conn] = state.connections
        link = conn._link
        assert isinstance(link, UvicornLink)
        proto = link._proto
        for writable in (True, False):
            if not writable:
                proto.writable.clear()
            conn.beat()
            assert bool(conn.outbox) == (compression is not None or not writable)
            proto.writable.set()
            async with asyncio.timeout(10):
                assert await ws.recv() == PING.decode()
        assert PING == b'{"type":"ping","nonce":0}'
        assert p.decode_client(b'{"type":"pong","nonce":0}', 100) == p.Pong()
        await ws.close()


async def test_one_broadcast_reaches_every_receiver_intact_whatever_its_socket() -> None:
    """A broadcast is framed once for every uncompressed receiver (``text_frame``); a receiver
    that negotiated permessage-deflate gets its own compressed frame; all read the same."""
    async with serving(protocol_class()) as (url, state):
        sender = await websockets.connect(url, max_size=None, compression=None)
        await _hello_join(sender, "s", "fan")
        receivers = []
        for i, compression in enumerate((None, None, "deflate", None)):
            ws = await websockets.connect(url, max_size=None, compression=compression)
            await _hello_join(ws, f"r{i}", "fan")
            receivers.append(ws)
        links = [c._link for c in state.connections]
        assert all(isinstance(link, UvicornLink) for link in links)
        assert sorted(bool(link._conn.extensions) for link in links) == [False] * 4 + [True]
        version = 0
        for i, size in enumerate((1, 125, 126, 3_000, 70_000)):
            text = ("ab🙂" * size)[:size]
            op = {"type": "seq", "node": "text:body", "edit": [text]}
            edit = {"type": "edit", "doc": "fan", "edit_id": f"e{i}", "version": version}
            await sender.send(json.dumps({**edit, "ops": [op]}, ensure_ascii=False))
            version = (await _until(sender, "ack"))["version"]
            for ws in receivers:
                remote = await _until(ws, "remote")
                assert (remote["edit_id"], remote["ops"][0]["edit"]) == (f"e{i}", [text])
        for ws in (sender, *receivers):
            await ws.close()


async def test_write_now_writes_only_what_the_socket_takes_now() -> None:
    """A receiver's usual flush (``UvicornLink.write_now``) on a real socket: nothing while
    flow control holds it back (False: the connection waits), the frame once it takes more,
    and LinkClosed once the peer is gone."""
    async with serving(protocol_class()) as (url, state):
        ws = await websockets.connect(url, max_size=None, compression=None)
        await _hello_join(ws, "w", "now")
        [conn] = state.connections
        link = conn._link
        assert isinstance(link, UvicornLink)
        proto = link._proto
        proto.writable.clear()
        assert link.write_now(b'{"type":"held"}') is False
        proto.writable.set()
        assert link.write_now(b'{"type":"sent"}') is True
        async with asyncio.timeout(10):
            assert await ws.recv() == '{"type":"sent"}'  # the held one was never written
        await ws.close()
        async with asyncio.timeout(10):
            while not proto.disconnected:
                await asyncio.sleep(0.01)
        with pytest.raises(LinkClosed):
            link.write_now(b'{"type":"late"}')


def test_a_frame_built_for_one_payload_is_never_another_payloads() -> None:
    """``text_frame`` hands out one frame per payload object until ``forget_frames``; an equal
    payload in another object, or a new object at a freed one's address, gets its own."""
    forget_frames()
    payload = b'{"type":"remote"}'
    frame = text_frame(payload)
    assert frame == text_header(len(payload)) + payload
    assert text_frame(payload) is frame
    for size in (0, 125, 126, 65_535, 65_536):
        other = bytes(size)
        assert text_frame(other) == text_header(size) + other
    for i in range(1_000):  # objects freed and allocated again (ids reused): never a stale frame
        data = f'{{"n":{i}}}'.encode()
        assert text_frame(data) == text_header(len(data)) + data
    forget_frames()
    again = text_frame(payload)
    assert again == frame and again is not frame


def test_text_frame_headers_follow_rfc_6455() -> None:
    assert text_header(0) == b"\x81\x00"
    assert text_header(125) == b"\x81\x7d"
    assert text_header(126) == b"\x81\x7e\x00\x7e"
    assert text_header(65_535) == b"\x81\x7e\xff\xff"
    assert text_header(65_536) == b"\x81\x7f" + (65_536).to_bytes(8, "big")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # websockets.legacy
@pytest.mark.filterwarnings("ignore::uvicorn.config.UvicornDeprecationWarning")
async def test_other_asgi_websocket_implementations_get_asgi_messages() -> None:
    """uvicorn's legacy ``websockets`` implementation: no direct writes, same protocol."""
    async with serving(ws="websockets") as (url, state):
        a = await ThinClient.connect(url, "a", "legacy")
        b = await ThinClient.connect(url, "b", "legacy")
        assert all(isinstance(c._link, AsgiLink) for c in state.connections)
        for i in range(20):
            a.insert("text:body", 0, f"{i} ")
            await a.flush()
        await a.settle(0)  # everything sent and acknowledged
        room = state.hub.rooms["legacy"].room
        await b.settle(room.version)
        assert b.text("text:body") == a.text("text:body") == room.doc.to_json()["body"]
        await a.close()
        await b.close()
