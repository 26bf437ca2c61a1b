"""``uvicorn_ws``: the slim queue and flag, the handshake released, the WebSocket route shortcut.

The server fixture (``conftest``) runs ``SlimWebSocketProtocol``, as ``cowrite serve`` does, so
the rest of tests/server exercises it too; here: what it changes, on real sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sys
from typing import Any

import pytest
import websockets
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.http11 import Request
from websockets.protocol import Protocol
from websockets.server import ServerProtocol

from cowrite.server.transport import UvicornLink
from cowrite.server.uvicorn_ws import SMALL_TEXT, Flag, Inbox, SlimWebSocketProtocol

from .conftest import RawClient, RunningServer, start_server

# ------------------------------------------------------------------------------ Inbox, Flag


async def test_the_inbox_hands_out_items_in_order_and_waits_when_empty() -> None:
    inbox = Inbox()
    assert inbox.empty() and inbox.qsize() == 0
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert inbox.qsize() == 2
    assert await inbox.get() == 1
    assert await inbox.get() == 2
    assert inbox.empty()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(3)
    assert await waiting == 3
    assert inbox.empty()


async def test_next_item_is_a_future_done_at_once_or_on_the_next_put() -> None:
    inbox = Inbox()
    inbox.put_nowait("a")
    ready = inbox.next_item()
    assert ready.done() and ready.result() == "a" and inbox.empty()
    pending = inbox.next_item()
    assert not pending.done()
    with pytest.raises(RuntimeError):
        inbox.next_item()  # one reader at a time
    inbox.put_nowait("b")
    assert await pending == "b"
    gave_up = inbox.next_item()
    gave_up.cancel()
    inbox.put_nowait("c")
    assert await inbox.next_item() == "c"


async def test_an_item_for_a_cancelled_reader_waits_for_the_next_one() -> None:
    inbox = Inbox()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    inbox.put_nowait("kept")
    assert await inbox.get() == "kept"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["put", "read", "cancel", "tick"]), max_size=60))
def test_the_inbox_loses_nothing_and_keeps_the_order_whatever_the_interleaving(
    steps: list[str],
) -> None:
    """Puts, reads (``next_item`` and ``get``, one at a time as uvicorn's one reader does),
    readers cancelled while waiting, loop ticks, in any order: every item is read exactly
    once, in the order it was put."""

    async def run() -> None:
        inbox = Inbox()
        put: list[int] = []
        got: list[int] = []
        reader: asyncio.Future[Any] | None = None
        for i, step in enumerate(steps):
            if step == "put":
                inbox.put_nowait(i)
                put.append(i)
            elif step == "read" and (reader is None or reader.done()):
                if reader is not None and not reader.cancelled():
                    got.append(reader.result())
                use_get = i % 2 == 0
                reader = asyncio.ensure_future(inbox.get()) if use_get else inbox.next_item()
            elif step == "cancel" and reader is not None and not reader.done():
                reader.cancel()
            await asyncio.sleep(0)
        if reader is not None:
            await asyncio.sleep(0)
            if reader.done() and not reader.cancelled():
                got.append(reader.result())
            else:
                reader.cancel()
                await asyncio.sleep(0)
        while not inbox.empty():
            got.append(await inbox.get())
        assert got == put

    asyncio.run(run())


async def test_an_item_that_reached_a_reader_cancelled_meanwhile_is_not_lost() -> None:
    inbox = Inbox()
    reader = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)  # waiting
    inbox.put_nowait("first")  # handed to its future...
    inbox.put_nowait("second")
    reader.cancel()  # ...and the reader is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await reader
    assert [await inbox.get(), await inbox.get()] == ["first", "second"]


async def test_the_flag_wakes_every_waiter_when_set() -> None:
    flag = Flag()
    assert not flag.is_set()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(w.done() for w in waiters)
    flag.set()
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert await flag.wait() is True  # set: no wait
    flag.clear()
    cancelled = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert flag._waiters is None  # a cancelled waiter leaves nothing behind
    flag.set()


# ------------------------------------------------------------------------------ real server


def _protocols(running: RunningServer) -> list[Any]:
    return [p for p in running.server.server_state.connections if hasattr(p, "conn")]


async def test_an_open_connection_keeps_no_handshake_request(server: RunningServer) -> None:
    client = await RawClient.connect(server.ws_url, "a")
    await client.send({"type": "join", "doc": "d", "create": True})
    await client.expect("joined")
    [proto] = _protocols(server)
    assert isinstance(proto, SlimWebSocketProtocol)
    assert proto.request is None and proto.response is None
    [conn] = server.state.connections
    assert conn.ws.scope["headers"] == [] and conn.ws.scope["query_string"] == b""
    assert proto.conn.parser.gi_code is Protocol.parse.__code__  # the frame parser alone
    gc.collect()
    requests = [o for o in gc.get_referrers(Request) if isinstance(o, Request)]
    holders = [h for r in requests for h in gc.get_referrers(r)]
    handshake = ServerProtocol.parse.__code__
    assert not [h for h in holders if getattr(h, "gi_code", None) is handshake]
    await client.close()


async def test_frames_sent_with_the_handshake_are_read_and_the_parser_still_moves_on(
    server: RunningServer,
) -> None:
    """A client that writes its first frames before the upgrade's response: the handshake
    parser is replaced once it waits between frames, and nothing is lost or read twice."""
    ws = await websockets.connect(server.ws_url, max_size=None)
    hello = json.dumps({"type": "hello", "client_id": "fast"})
    join = json.dumps({"type": "join", "doc": "d2", "create": True})
    await asyncio.gather(ws.send(hello), ws.send(join))
    client = RawClient(ws)
    await client.expect("welcome")
    await client.expect("joined")
    [proto] = _protocols(server)
    assert proto._parser_released
    await client.send({"type": "leave", "doc": "d2"})
    await client.send({"type": "join", "doc": "d2"})
    await client.expect("joined")
    await client.close()


@pytest.mark.parametrize(
    "garbage",
    [b"\xff\xfe\x00", b"\x00" * 70_000, "not json", "[" * 5000, json.dumps({"type": "x"})],
)
async def test_garbage_frames_are_refused_and_the_connection_carries_on(
    server: RunningServer, garbage: str | bytes
) -> None:
    client = await RawClient.connect(server.ws_url, "g")
    await client.send(garbage)
    await client.expect("error")
    await client.send({"type": "join", "doc": "g", "create": True})
    await client.expect("joined")
    await client.close()


async def test_garbage_bytes_instead_of_frames_close_the_socket(server: RunningServer) -> None:
    """Unmasked, reserved-bit or truncated frames after the handshake: the socket is closed."""
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101")
    writer.write(b"\xf1\x05hello")  # reserved bits set, not masked
    rest = await asyncio.wait_for(reader.read(), 10)  # the close frame, then EOF
    assert rest[:1] == b"\x88"
    writer.close()
    assert not _protocols(server) or all(p.disconnected for p in _protocols(server))


async def test_a_plain_http_request_to_the_socket_route_is_not_upgraded(
    server: RunningServer,
) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 404")  # a plain HTTP request: no route
    writer.close()


# ------------------------------------------------------------------------------ pongs


async def test_a_pong_is_taken_where_it_is_read_and_keeps_the_client_alive(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A greeted client's pong never becomes an ASGI event (the reader is not woken) and still
    counts as a sign of life: a client answering every ping outlives the heartbeat timeout."""
    client = await RawClient.connect(server.ws_url, "p")
    [conn] = server.state.connections
    [proto] = _protocols(server)
    assert proto.on_small_text is not None
    events = 0
    put = Inbox.put_nowait

    def counting(inbox: Inbox, item: Any) -> None:
        nonlocal events
        events += inbox is proto.queue
        put(inbox, item)

    monkeypatch.setattr(Inbox, "put_nowait", counting)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 2.5  # the fixture's heartbeat: every 0.5 s, timeout 1.5 s
    while loop.time() < deadline:
        ping = await client.expect("ping", timeout=2)
        seen = conn.last_seen
        await client.send({"type": "pong", "nonce": ping["nonce"]})
        while conn.last_seen == seen:
            await asyncio.sleep(0.01)
    assert events == 0 and conn.closing is None
    await client.send({"type": "join", "doc": "p", "create": True})  # the reader still reads
    await client.expect("joined")
    assert events == 1
    await client.close()


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"pong","nonce":"x"}',  # invalid: the reader refuses it
        '{"type":"pong"',  # malformed
        '{"type":"diverged","doc":"pong","version":1,"node":"text:b"}',  # not a pong
        "[" * 30 + '"pong"' + "]" * 30,
    ],
)
async def test_small_frames_that_are_not_valid_pongs_go_to_the_reader(
    server: RunningServer, frame: str
) -> None:
    client = await RawClient.connect(server.ws_url, "q")
    await client.send(frame)
    await client.expect("error")
    await client.close()


async def test_a_pong_before_hello_is_refused_as_before(server: RunningServer) -> None:
    ws = await websockets.connect(server.ws_url)
    client = RawClient(ws)
    await client.send({"type": "pong", "nonce": 1})
    error = await client.expect("error")
    assert "hello" in error["message"]
    await client.close()


# ------------------------------------------------------------------------------ the shortcut


class _Counting:
    """ASGI middleware that counts the WebSocket scopes it sees."""

    seen = 0

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            type(self).seen += 1
        await self.app(scope, receive, send)


async def test_added_middleware_still_sees_every_websocket(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The direct route to the socket endpoints is taken only while no middleware was added."""
    from cowrite.server import app as app_module

    real = app_module.create_app

    def with_middleware(*args: Any, **kw: Any) -> Any:
        app = real(*args, **kw)
        app.user_middleware.insert(0, Middleware(_Counting))
        return app

    monkeypatch.setattr(sys.modules[start_server.__module__], "create_app", with_middleware)
    _Counting.seen = 0
    running, task = await start_server(settings)
    try:
        client = await RawClient.connect(running.ws_url, "m")
        await client.close()
        yjs = await websockets.connect(running.ws_url.replace("/ws", "/yjs/doc-m"))
        await yjs.close()
        assert _Counting.seen == 2
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_unknown_socket_paths_still_get_the_routers_answer(server: RunningServer) -> None:
    with pytest.raises(websockets.InvalidStatus) as refused:
        await websockets.connect(server.ws_url + "x")
    assert refused.value.response.status_code == 403


# ------------------------------------------------------------------------------ the pong shortcut

MASK = b"\x1f\x2e\x3d\x4c"
PONG = b'{"type":"pong","nonce":0}'


def _frame(payload: bytes, first: int = 0x81, mask: bytes | None = MASK) -> bytes:
    """A client frame: ``first`` is FIN, RSV and opcode; masked with ``mask`` unless None."""
    n = len(payload)
    bit = 0 if mask is None else 0x80
    if n < 126:
        head = bytes((first, bit | n))
    elif n < 65536:
        head = bytes((first, bit | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((first, bit | 127)) + n.to_bytes(8, "big")
    if mask is None:
        return head + payload
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


@pytest.fixture
async def quiet(make_settings: Any) -> Any:
    """A server whose heartbeat stays out of the way (the tests send the pongs)."""
    running, task = await start_server(make_settings(heartbeat_s=30, heartbeat_timeout_s=90))
    yield running
    running.server.should_exit = True
    await asyncio.wait_for(task, 20)


class _Watch:
    """One connection's server side: how many reads reached ``websockets``' parser, how many
    ASGI events the reader got, how many pongs the hook took."""

    def __init__(self, running: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
        [self.conn] = running.state.connections
        [self.proto] = _protocols(running)
        self.parsed = self.events = self.pongs = 0
        receive_data = self.proto.conn.receive_data
        hook = self.proto.on_small_text
        assert hook is not None

        def parsing(data: bytes) -> None:
            self.parsed += 1
            receive_data(data)

        def taking(text: str) -> bool:
            taken = bool(hook(text))
            self.pongs += taken
            return taken

        put = Inbox.put_nowait

        def counting(inbox: Inbox, item: Any) -> None:
            self.events += inbox is self.proto.queue
            put(inbox, item)

        monkeypatch.setattr(self.proto.conn, "receive_data", parsing)
        monkeypatch.setattr(self.proto, "on_small_text", taking)
        monkeypatch.setattr(Inbox, "put_nowait", counting)


async def _settled(client: RawClient) -> None:
    """Everything written before was read and handled: an error reply came back after it."""
    await client.send({"type": "x"})
    await client.expect("error")


async def test_a_pong_read_alone_never_reaches_the_frame_parser(
    quiet: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = await RawClient.connect(quiet.ws_url, "s")
    watch = _Watch(quiet, monkeypatch)
    pongs = [PONG, b'{"type":"pong"}', b'{"type":"pong","nonce":12345}']
    for pong, mask in zip(pongs, [MASK, MASK, b"\0\0\0\0"], strict=True):  # zero: masked too
        seen = watch.conn.last_seen
        client.ws.transport.write(_frame(pong, mask=mask))
        async with asyncio.timeout(10):
            while watch.conn.last_seen == seen:
                await asyncio.sleep(0.005)
    assert (watch.parsed, watch.events, watch.pongs) == (0, 0, 3)
    await client.send({"type": "join", "doc": "s", "create": True})  # the parser still reads
    await client.expect("joined")
    assert watch.parsed >= 1 and watch.events == 1
    await client.close()


async def test_a_pong_split_across_reads_or_sharing_one_goes_through_the_parser(
    quiet: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fed to the protocol at every cut, and with other frames in the same read: every pong
    is still taken (no ASGI event), the frame between them still reaches the reader, nothing
    is read twice, and the parser is back at a frame boundary for the next whole pong."""
    client = await RawClient.connect(quiet.ws_url, "t")
    watch = _Watch(quiet, monkeypatch)
    other = _frame(b'{"type":"x"}')
    stream = _frame(PONG) + other + _frame(PONG)
    for cut in range(1, len(stream)):
        watch.proto.data_received(stream[:cut])
        watch.proto.data_received(stream[cut:])
    assert watch.pongs == 2 * (len(stream) - 1)
    assert watch.events == len(stream) - 1  # one per ``other``
    await _settled(client)
    parsed = watch.parsed
    watch.proto.data_received(_frame(PONG))
    assert watch.parsed == parsed and watch.pongs == 2 * len(stream) - 1
    await client.close()


@pytest.mark.parametrize(
    "frames",
    [
        _frame(PONG, first=0x82),  # binary
        [_frame(PONG, first=0x01), _frame(b"", first=0x80)],  # fragmented, in two reads
        _frame(b'{"type":"pong","nonce":0}' + b" " * SMALL_TEXT),  # larger than SMALL_TEXT
        [_frame(PONG)[:-1], _frame(PONG)[-1:]],  # its last byte in the next read
    ],
    ids=["binary", "fragmented", "large", "partial"],
)
async def test_other_pong_shaped_frames_are_read_as_before(
    quiet: RunningServer, monkeypatch: pytest.MonkeyPatch, frames: bytes | list[bytes]
) -> None:
    client = await RawClient.connect(quiet.ws_url, "u")
    watch = _Watch(quiet, monkeypatch)
    for read in frames if isinstance(frames, list) else [frames]:
        watch.proto.data_received(read)
    assert watch.parsed >= 1  # not taken past the parser (a partial pong is, once whole)
    await _settled(client)
    assert watch.proto.conn.state.name == "OPEN" and watch.conn.closing is None
    await client.send({"type": "join", "doc": "u", "create": True})
    await client.expect("joined")
    await client.close()


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([_frame(PONG, mask=None)], 1002),  # a client's frame must be masked
        ([_frame(PONG, first=0xC1)], 1002),  # RSV1 (compressed) without permessage-deflate
        ([_frame(PONG, first=0x01), _frame(PONG)], 1002),  # a message inside a fragmented one
        ([_frame(b'{"type":"pong","x":"\xff"}')], 1007),  # holds "pong", not UTF-8
        # a header announcing 31 bytes, then 31 that look like a pong frame: they are its
        # payload (and not UTF-8), not a frame of their own
        ([b"\x81\x9f\0\0\0\0", _frame(PONG)], 1007),
    ],
    ids=["unmasked", "rsv1", "interleaved", "not-utf8", "mid-frame"],
)
async def test_pong_shaped_protocol_errors_still_close_the_connection(
    quiet: RunningServer, frames: list[bytes], code: int
) -> None:
    """Each read as the socket would deliver it (the frames in separate reads)."""
    client = await RawClient.connect(quiet.ws_url, "v")
    [proto] = _protocols(quiet)
    for read in frames:
        proto.data_received(read)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(10):
            while True:
                await client.ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_a_pong_under_another_mask_is_not_a_pong(
    quiet: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The header's mask does not unmask the payload: garbage, which the reader refuses."""
    client = await RawClient.connect(quiet.ws_url, "w")
    watch = _Watch(quiet, monkeypatch)
    frame = bytearray(_frame(PONG))
    frame[2:6] = b"\x01\x02\x03\x04"
    client.ws.transport.write(bytes(frame))
    with contextlib.suppress(websockets.ConnectionClosed):  # not UTF-8: closed 1007
        await _settled(client)
    assert watch.pongs == 0 and watch.parsed >= 1


async def test_a_client_that_stops_answering_is_still_dropped(server: RunningServer) -> None:
    """The fixture's heartbeat: pings every 0.5 s, the constant frame; silence for 1.5 s
    closes the connection (4000)."""
    client = await RawClient.connect(server.ws_url, "y")
    ping = await client.expect("ping", timeout=5)
    assert ping == {"type": "ping", "nonce": 0}
    with pytest.raises(websockets.ConnectionClosed) as closed:
        async with asyncio.timeout(10):
            while True:
                await client.ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000


# ------------------------------------------------------------------ edits taken where they are read


def _edit_frame(edit_id: str, version: int, text: str, doc: str = "direct") -> bytes:
    op = {"type": "seq", "node": "text:t", "edit": [text]}
    msg = {"type": "edit", "doc": doc, "edit_id": edit_id, "version": version, "ops": [op]}
    return _frame(json.dumps(msg).encode())


async def _joined_with_one_edit(running: RunningServer) -> tuple[RawClient, int]:
    """A client in document ``direct`` whose first edit (the one a store lookup may follow:
    the reader's) is acknowledged; the version after it."""
    client = await RawClient.connect(running.ws_url, "d")
    await client.send({"type": "join", "doc": "direct", "create": True})
    joined = await client.expect("joined")
    client.ws.transport.write(_edit_frame("e0", joined["version"], "a"))
    ack = await client.expect("ack")
    return client, int(ack["version"])


async def test_an_edit_read_alone_is_handled_where_it_is_read(
    quiet: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the reader waits with nothing queued, a whole edit frame (a 7-bit length, and a
    16-bit one) is applied and acknowledged without ``websockets``' parser or an ASGI event."""
    client, version = await _joined_with_one_edit(quiet)
    watch = _Watch(quiet, monkeypatch)
    for i, text in enumerate(["b", "c" * 300]):
        frame = _edit_frame(f"e{i + 1}", version, text)
        assert (len(frame) < 131) == (i == 0)
        client.ws.transport.write(frame)
        ack = await client.expect("ack")
        assert ack["edit_id"] == f"e{i + 1}"
        version = int(ack["version"])
    assert (watch.parsed, watch.events, watch.pongs) == (0, 0, 2)
    await client.close()


async def test_an_edit_while_the_reader_is_busy_goes_to_the_reader(
    quiet: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not taken out of turn: when the reader still has a message to handle, the edit is
    queued behind it (an ASGI event) and handled by the reader."""
    client, version = await _joined_with_one_edit(quiet)
    watch = _Watch(quiet, monkeypatch)
    monkeypatch.setattr(UvicornLink, "reader_waiting", lambda self: False)
    client.ws.transport.write(_edit_frame("e1", version, "b"))
    ack = await client.expect("ack")
    assert ack["edit_id"] == "e1"
    assert watch.events == 1 and watch.pongs == 0
    await client.close()


async def test_edits_sharing_a_read_are_acknowledged_in_order(
    quiet: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several edit frames and a presence update in one read, cut anywhere: every one is
    handled once, in order (each edit's version after the one before)."""
    client, version = await _joined_with_one_edit(quiet)
    watch = _Watch(quiet, monkeypatch)
    cursor = {"type": "presence", "doc": "direct", "cursor": None}
    stream = (
        _edit_frame("e1", version, "x")
        + _frame(json.dumps(cursor).encode())
        + _edit_frame("e2", version, "y" * 200)
        + _edit_frame("e3", version, "z")
    )
    cut = len(stream) // 3
    watch.proto.data_received(stream[:cut])
    watch.proto.data_received(stream[cut:])
    acks = [await client.expect("ack") for _ in range(3)]
    assert [a["edit_id"] for a in acks] == ["e1", "e2", "e3"]
    assert [a["version"] for a in acks] == [version + 1, version + 2, version + 3]
    assert watch.events == 0 and watch.pongs == 4
    await _settled(client)
    await client.close()


@pytest.mark.parametrize(
    "frame",
    [
        b"\x81\xfe\x00\x05" + MASK + b"\0" * 5,  # a 16-bit length under 126: not minimal
        _frame(b'{"type":"pong"}')[:-1] + b"\xff",  # the payload is not UTF-8 once unmasked
        _frame(b"{" * 200),  # malformed JSON, 16-bit length
        _frame(b'{"type":"edit","doc":"direct"}'),  # an invalid edit
    ],
    ids=["non-minimal", "not-utf8", "malformed", "invalid"],
)
async def test_garbage_small_text_frames_are_left_to_the_parser_and_reader(
    quiet: RunningServer, monkeypatch: pytest.MonkeyPatch, frame: bytes
) -> None:
    """Nothing the hook cannot handle is consumed by it: the parser and the reader refuse
    it as before (an error, or the connection closed), and nothing is taken."""
    client, _ = await _joined_with_one_edit(quiet)
    watch = _Watch(quiet, monkeypatch)
    watch.proto.data_received(frame)
    with contextlib.suppress(websockets.ConnectionClosed):
        await _settled(client)
    assert watch.pongs == 0 and watch.parsed >= 1


async def test_a_replica_sync_is_left_to_the_reader(
    quiet: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``Hub.sync`` awaits: a ``sync`` is not decoded where it is read (only to be declined),
    it goes to the reader, which answers it (here: an error, the delta is not one)."""
    client, _ = await _joined_with_one_edit(quiet)
    watch = _Watch(quiet, monkeypatch)
    sync = {"type": "sync", "doc": "direct", "delta": "AAAA"}
    client.ws.transport.write(_frame(json.dumps(sync).encode()))
    await client.expect("error")
    assert watch.events == 1 and watch.pongs == 0
    await client.close()
