"""The ASGI application: ``create_app()`` serves the WebSocket endpoint, REST API and metrics.

Mount it inside a FastAPI/Starlette app with ``parent.mount("/collab", create_app(...))``; its
lifespan opens and closes the store (Starlette runs a mounted app's lifespan only when told to:
use ``lifespan=cowrite_app.router.lifespan_context`` or call ``await cowrite.startup()``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket

from cowrite.adapters.store import MemoryStore, SQLiteStore, Store
from cowrite.server.config import Settings
from cowrite.server.connection import CLOSE_GOING_AWAY, Connection
from cowrite.server.hub import Hub
from cowrite.server.metrics import Metrics

log = logging.getLogger("cowrite.server")


class Cowrite:
    """Everything one server instance holds; ``app.state.cowrite``."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        if store is None:
            store = MemoryStore() if settings.data == ":memory:" else SQLiteStore(settings.data)
        self.store = store
        self.metrics = Metrics()
        self.hub = Hub(store, settings, self.metrics)
        self.connections: set[Connection] = set()
        self.ready = False
        self.shutting_down = False

    async def startup(self) -> None:
        await self.store.open()
        self.hub.start()
        self.ready = True
        if not self.settings.secret:
            log.warning(
                "NO AUTHENTICATION: no secret configured, so every client may read and edit every "
                "document. Set COWRITE_SECRET (or --secret) before exposing this server."
            )

    async def announce_shutdown(self, reconnect_after_ms: int = 1000) -> None:
        """Tell every client to reconnect elsewhere, then close their connections."""
        from cowrite import protocol as p

        self.shutting_down = True
        self.ready = False
        for conn in list(self.connections):
            conn.send_message(p.Reconnect(after_ms=reconnect_after_ms, reason="shutdown"))
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
        deadline = time.monotonic() + 5
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def shutdown(self) -> None:
        if self.connections:
            await self.announce_shutdown()
        await self.hub.close()
        await self.store.close()


def create_app(settings: Settings | None = None, store: Store | None = None) -> Starlette:
    from cowrite.server import rest

    settings = settings or Settings.from_env()
    state = Cowrite(settings, store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.startup()
        try:
            yield
        finally:
            await state.shutdown()

    async def ws_endpoint(ws: WebSocket) -> None:
        if state.shutting_down:
            await ws.close(CLOSE_GOING_AWAY, "server shutting down")
            return
        conn = Connection(ws, state.hub, settings, state.metrics)
        state.connections.add(conn)
        try:
            await conn.run()
        finally:
            state.connections.discard(conn)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        ok = state.ready and await state.store.health()
        return PlainTextResponse("ready" if ok else "not ready", status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    async def status(request: Request) -> Response:
        hub = state.hub
        uptime = time.monotonic() - hub.started
        body: dict[str, Any] = {
            "connections": len(state.connections),
            "documents_loaded": len(hub.rooms),
            "edits": hub.edits_applied,
            "edits_per_second": round(hub.edits_applied / uptime, 3) if uptime > 0 else 0.0,
            "uptime_s": round(uptime, 1),
            "auth": bool(settings.secret),
        }
        return JSONResponse(body)

    routes = [
        WebSocketRoute("/ws", ws_endpoint),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Route("/api/status", status),
        Mount("/api", routes=rest.routes(state)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.cowrite = state
    return app
