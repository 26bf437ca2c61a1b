"""Half-sent HTTP requests are closed after ``http_request_timeout_s`` (slowloris); complete
requests, keep-alive connections between requests and upgraded WebSockets are not affected."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import websockets

from cowrite.server.app import create_app
from cowrite.server.config import Settings
from cowrite.server.run import server_config


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[int]:
    """The app under ``cowrite serve``'s own uvicorn configuration, on a free port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(create_app(settings), settings))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def _closed_by_server(reader: asyncio.StreamReader) -> bool:
    """True once the server closes the connection (EOF or reset), waiting at most 20 s."""
    try:
        while await asyncio.wait_for(reader.read(4096), 20):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


async def test_half_sent_requests_are_closed(tmp_path: Path) -> None:
    settings = replace(
        Settings(data=str(tmp_path / "db"), heartbeat_s=5, heartbeat_timeout_s=15),
        http_request_timeout_s=0.5,
    )
    async with serving(settings) as port:
        partial = [
            b"",  # connects, sends nothing
            b"GET /api/status HT",  # half a request line
            b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # half the headers
            b"POST /api/documents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"id":',  # half a body
        ]
        conns: list[Any] = []
        for data in partial * 25:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(data)
            conns.append((reader, writer))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/ws")
            closed = await asyncio.gather(*(_closed_by_server(r) for r, _ in conns))
            assert all(closed), f"{closed.count(False)} of {len(closed)} still open"
            # meanwhile complete requests are served, on a connection kept alive across the
            # deadline, and the WebSocket opened before is still there
            assert (await http.get("/api/status")).status_code == 200
            await asyncio.sleep(1.0)
            assert (await http.get("/api/status")).status_code == 200
            await ws.send('{"type":"hello","client_id":"ws"}')
            assert "welcome" in await asyncio.wait_for(ws.recv(), 5)
            await ws.close()
        for _, writer in conns:
            writer.close()
