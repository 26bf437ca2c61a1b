"""``uvicorn_ws``: the slim queue and flag, the handshake released, the WebSocket route shortcut.

The server fixture (``conftest``) runs ``SlimWebSocketProtocol``, as ``cowrite serve`` does, so
the rest of tests/server exercises it too; here: what it changes, on real sockets.
"""

from __future__ import annotations

import asyncio
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

from cowrite.server.uvicorn_ws import Flag, Inbox, SlimWebSocketProtocol

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
