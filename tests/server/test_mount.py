"""cowrite mounted under /collab inside a parent Starlette (and FastAPI, if installed) app."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from cowrite.server.app import create_app
from cowrite.server.config import Settings


@contextlib.asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_config=None, lifespan="on", ws_ping_interval=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


def starlette_parent(collab: Starlette) -> Any:
    """Exactly as the app.py docstring says."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with collab.router.lifespan_context(collab):
            yield

    async def home(request: Request) -> PlainTextResponse:
        return PlainTextResponse("parent")

    return Starlette(routes=[Route("/", home), Mount("/collab", app=collab)], lifespan=lifespan)


def fastapi_parent(collab: Starlette) -> Any:
    fastapi = pytest.importorskip("fastapi")

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with collab.router.lifespan_context(collab):
            yield

    parent = fastapi.FastAPI(lifespan=lifespan)

    async def home() -> str:
        return "parent"

    parent.add_api_route("/", home, response_class=PlainTextResponse)
    parent.mount("/collab", collab)
    return parent


@pytest.mark.parametrize("make_parent", [starlette_parent, fastapi_parent])
async def test_mounted_app_serves_websocket_and_rest(
    make_settings: Callable[..., Settings], raw: Any, make_parent: Callable[[Starlette], Any]
) -> None:
    collab = create_app(make_settings())
    parent = make_parent(collab)
    async with serve(parent) as url, httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/")).text == "parent"
        assert (await http.get("/collab/healthz")).text == "ok"
        assert (await http.get("/collab/readyz")).status_code == 200
        r = await http.post("/collab/api/documents", json={"id": "d", "title": "Mounted"})
        assert r.status_code == 201
        ws_url = url.replace("http://", "ws://") + "/collab/ws"
        a = await raw(ws_url, "a")
        b = await raw(ws_url, "b")
        for c in (a, b):
            await c.send({"type": "join", "doc": "d"})
            await c.expect("joined")
        op = {"type": "seq", "node": "text:body", "edit": ["from a socket"]}
        await a.send({"type": "edit", "doc": "d", "edit_id": "1", "version": 0, "ops": [op]})
        await a.expect("ack")
        assert (await b.expect("remote"))["ops"] == [op]
        assert (await http.get("/collab/api/documents/d/text/body")).text == "from a socket"
        versions = (await http.get("/collab/api/documents/d/versions")).json()["versions"]
        assert len(versions) == 1
        spec = (await http.get("/collab/api/openapi.json")).json()
        assert spec["servers"] == [{"url": "/collab"}]
        r = await http.get("/collab/api/nothing")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        assert "cowrite_edits_total" in (await http.get("/collab/metrics")).text
        assert collab.state.cowrite.hub.edits_applied == 1
        assert "d" in collab.state.cowrite.hub.rooms
        await a.close()
        await b.close()
    assert not collab.state.cowrite.hub.rooms  # the parent's shutdown ran cowrite's
