"""Awareness over raw y-websocket sockets against a real ``cowrite serve``: what the real
``WebsocketProvider`` does that the server must survive.

y-websocket 3.1 sends back every awareness change it applies, remote ones included (its
``_awarenessUpdateHandler`` does not look at the origin), with the clock it received. Such an echo
can reach the server after the client it describes has left; it must not bring that client's
state back (a ghost caret) nor count as a client of the echoing connection (which was closed
1008 "more than 16 awareness clients" once 17 clients had come and gone, before main's fix).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))  # yjs_e2e.py
from yjs_e2e import YjsServer

pytestmark = pytest.mark.slow

Server = Callable[..., Awaitable[YjsServer]]
AWARENESS, QUERY_AWARENESS = 1, 3


def var_uint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def var_bytes(b: bytes) -> bytes:
    return var_uint(len(b)) + b


def awareness_frame(entries: list[tuple[int, int, Any]]) -> bytes:
    body = var_uint(len(entries))
    for client, clock, state in entries:
        body += var_uint(client) + var_uint(clock) + var_bytes(json.dumps(state).encode())
    return var_uint(AWARENESS) + var_bytes(body)


def read_var_uint(b: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        byte = b[i]
        n |= (byte & 0x7F) << shift
        shift += 7
        i += 1
        if byte < 0x80:
            return n, i


def awareness_entries(frame: bytes) -> dict[int, tuple[int, Any]]:
    """clientID -> (clock, state) of an awareness frame (empty for other frames)."""
    if not frame or frame[0] != AWARENESS:
        return {}
    _, i = read_var_uint(frame, 1)
    count, i = read_var_uint(frame, i)
    out: dict[int, tuple[int, Any]] = {}
    for _ in range(count):
        client, i = read_var_uint(frame, i)
        clock, i = read_var_uint(frame, i)
        size, i = read_var_uint(frame, i)
        out[client] = (clock, json.loads(frame[i : i + size]))
        i += size
    return out


async def until(ws: Any, check: Callable[[bytes], bool], timeout: float = 30) -> bytes:
    async with asyncio.timeout(timeout):
        while True:
            frame = await ws.recv()
            if isinstance(frame, bytes) and check(frame):
                return frame


async def table(url: str) -> dict[int, tuple[int, Any]]:
    """The awareness states a new connection is told about (query awareness)."""
    async with websockets.connect(url) as ws:
        await ws.send(var_uint(QUERY_AWARENESS))
        states: dict[int, tuple[int, Any]] = {}
        try:
            async with asyncio.timeout(2):
                while True:
                    states.update(awareness_entries(await ws.recv()))  # type: ignore[arg-type]
        except TimeoutError:
            pass
        return {c: s for c, s in states.items() if s[1] is not None}


async def come_and_go(url: str, client: int, watcher: Any) -> bytes:
    """A client sets its state and leaves; the watcher saw both. Returns the state frame (what
    the watcher's provider sends back)."""
    frame = awareness_frame([(client, 1, {"user": {"name": f"c{client}"}})])
    async with websockets.connect(url) as ws:
        await ws.send(frame)
        await until(watcher, lambda f: awareness_entries(f).get(client, (0, None))[1] is not None)
    await until(
        watcher,
        lambda f: client in awareness_entries(f) and awareness_entries(f)[client][1] is None,
    )
    return frame


async def test_a_late_echo_does_not_bring_a_departed_client_back(yjs_server: Server) -> None:
    server = await yjs_server()
    url = f"{server.base}/yjs/echo"
    async with websockets.connect(url) as watcher:
        # the provider announces its own state on open (its initial local state is {})
        await watcher.send(awareness_frame([(1, 1, {})]))
        echo = await come_and_go(url, 777, watcher)
        await watcher.send(echo)  # what y-websocket sends on applying 777's state, late
        await asyncio.sleep(0.5)  # (nothing to wait for: the server is expected to ignore it)
        assert 777 not in await table(url)
        # while the departed client itself, reconnecting with its unchanged state, is back at once
        async with websockets.connect(url) as again:
            await again.send(echo)
            await until(watcher, lambda f: awareness_entries(f).get(777, (0, None))[1] is not None)
            assert 777 in await table(url)


async def test_a_y_websocket_client_is_not_closed_for_echoing_clients_that_came_and_went(
    yjs_server: Server,
) -> None:
    server = await yjs_server()
    url = f"{server.base}/yjs/echo17"
    async with websockets.connect(url) as watcher:
        await watcher.send(awareness_frame([(1, 1, {"user": {"name": "watcher"}})]))
        for client in range(100, 120):
            echo = await come_and_go(url, client, watcher)
            await watcher.send(echo)
        await watcher.send(var_uint(QUERY_AWARENESS))
        got = await until(watcher, lambda f: 1 in awareness_entries(f), timeout=10)
        assert got  # still connected and served
        assert set(await table(url)) == {1}
