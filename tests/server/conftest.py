"""A real server on 127.0.0.1 (port 0) in the test's event loop, and a raw protocol client."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import uvicorn
import websockets

from cowrite.server.app import create_app
from cowrite.server.config import Settings
from cowrite.server.uvicorn_ws import protocol_class


class RunningServer:
    def __init__(self, url: str, app: Any, server: uvicorn.Server) -> None:
        self.url = url
        self.ws_url = url.replace("http://", "ws://") + "/ws"
        self.app = app
        self.server = server

    @property
    def state(self) -> Any:
        return self.app.state.cowrite


async def start_server(settings: Settings) -> tuple[RunningServer, asyncio.Task[None]]:
    app = create_app(settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        log_config=None,
        lifespan="on",
        ws_ping_interval=None,
        ws=protocol_class() or "auto",  # what ``cowrite serve`` runs (``run.server_config``)
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    return RunningServer(f"http://127.0.0.1:{port}", app, server), task


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data=str(tmp_path / "cowrite.db"), heartbeat_s=0.5, heartbeat_timeout_s=1.5)


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[RunningServer]:
    running, task = await start_server(settings)
    yield running
    running.server.should_exit = True
    await asyncio.wait_for(task, 20)


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**kw: Any) -> Settings:
        base = Settings(data=str(tmp_path / "cowrite.db"), heartbeat_s=0.5, heartbeat_timeout_s=1.5)
        return replace(base, **kw)

    return make


class RawClient:
    """A protocol client with no smarts: send dicts, wait for messages by type."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.inbox: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, url: str, client_id: str = "c", **hello: Any) -> RawClient:
        ws = await websockets.connect(url, max_size=None)
        client = cls(ws)
        await client.send({"type": "hello", "client_id": client_id, **hello})
        await client.expect("welcome")
        return client

    async def send(self, msg: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(msg if isinstance(msg, str | bytes) else json.dumps(msg))

    async def _pull(self, timeout: float) -> None:
        frame = await asyncio.wait_for(self.ws.recv(), timeout)
        data = json.loads(frame)
        self.inbox.extend(data if isinstance(data, list) else [data])

    async def expect(
        self,
        type_: str,
        timeout: float = 5.0,
        where: Callable[[dict[str, Any]], bool] = lambda m: True,
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for i, m in enumerate(self.inbox):
                if m["type"] == type_ and where(m):
                    del self.inbox[: i + 1]
                    return m
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(
                    f"no {type_!r} within {timeout}s; got {[m['type'] for m in self.inbox]}"
                )
            await self._pull(remaining)

    async def close(self) -> None:
        await self.ws.close()


@pytest.fixture
def raw() -> Callable[..., Any]:
    return RawClient.connect
