"""The ASGI application: ``create_app()`` serves the WebSocket endpoint, REST API and metrics.

Routes (relative to where the app is served): ``/ws`` (WebSocket protocol), ``/yjs/<name>``
(y-websocket) and ``/hocuspocus`` (Hocuspocus) for Yjs clients, ``/api/...`` (REST,
described by ``/api/openapi.json``), ``/metrics`` (Prometheus), ``/healthz``, ``/readyz``.

Mounting inside another Starlette or FastAPI app
------------------------------------------------
A mounted app's lifespan is NOT run by the parent (ASGI sends lifespan events to the top-level
app only), and cowrite's lifespan opens the store and starts the hub: without it every request
fails. So enter it from the parent's lifespan::

    import contextlib
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from cowrite.server.app import create_app
    from cowrite.server.config import Settings

    collab = create_app(Settings(data="collab.db", secret="..."))

    @contextlib.asynccontextmanager
    async def lifespan(app):
        async with collab.router.lifespan_context(collab):
            yield

    parent = Starlette(routes=[Mount("/collab", app=collab)], lifespan=lifespan)
    # FastAPI: app = FastAPI(lifespan=lifespan); app.mount("/collab", collab)

Clients then connect to ``ws://host/collab/ws`` and call ``http://host/collab/api/...``; the
OpenAPI description names ``/collab`` as its server. ``collab.state.cowrite`` is the `Cowrite`
instance (store, hub, metrics) for the parent's own handlers.

Extending: ``create_app(settings, extensions=[...])`` runs the application's lifecycle hooks
(``hooks.py``; webhooks are one, added from the settings), and
``async with app.state.cowrite.document("id") as doc:`` edits a document in-process
(``documents.py``). See ``docs/extending.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Sequence

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Mount, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from cowrite.adapters.bus import Bus, open_bus
from cowrite.adapters.store import Store, open_store
from cowrite.server.auth import token_key
from cowrite.server.config import Settings
from cowrite.server.connection import CLOSE_GOING_AWAY, Connection
from cowrite.server.documents import ServerDocument, open_document
from cowrite.server.hooks import Extension, Hooks
from cowrite.server.hub import Hub
from cowrite.server.ip_throttle import IpThrottle
from cowrite.server.metrics import Metrics
from cowrite.server.tracing import Tracing, TracingMiddleware
from cowrite.server.transport import asgi_websocket
from cowrite.server.yjs_connection import YjsConnection

log = logging.getLogger("cowrite.server")

CLOSE_TRY_AGAIN = 1013


class Cowrite:
    """Everything one server instance holds; ``app.state.cowrite``."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        bus: Bus | None = None,
        extensions: Sequence[Extension] = (),
        tracing: Tracing | None = None,
    ) -> None:
        self.settings = settings
        if store is None:
            store = open_store(settings.database or settings.data)
        self.store = store
        self.metrics = Metrics()
        # a bus shared with other instances (Redis, or one given by the caller) makes a cluster
        clustered = bool(settings.redis) or bus is not None
        self.bus: Bus = bus if bus is not None else open_bus(settings.redis)
        from cowrite.server.webhooks import Webhooks

        webhooks = Webhooks.from_settings(settings, self.metrics.registry)
        self.hooks = Hooks(
            [*extensions, *([webhooks] if webhooks is not None else [])],
            self.metrics.registry,
            timeout_s=settings.hook_timeout_s,
            debounce_s=settings.change_debounce_s,
            max_wait_s=settings.change_max_wait_s,
            secret=settings.secret,
        )
        self.hub = Hub(
            store, settings, self.metrics, bus=self.bus, cluster=clustered, hooks=self.hooks
        )
        self.tracing = self.hub.tracing = tracing or Tracing.from_settings(settings.otel)
        self.connections: set[Connection | YjsConnection] = set()
        self.throttle = IpThrottle(
            settings.ip_connections_per_second,
            settings.ip_connection_burst,
            settings.ip_max_connections,
            loopback=settings.ip_throttle_loopback,
        )
        """Connections per client address (``ip_throttle.py``)."""
        self.ready = False
        self.shutting_down = False
        self.startup_error: Exception | None = None
        """Why ``startup`` failed (``cowrite serve`` says it in one line)."""

    async def startup(self) -> None:
        try:
            await self.store.open()
            await self.bus.open()
            await self.hub.start()
            await self.hub.permissions.start()
            await self.hooks.lifecycle("on_startup")
        except Exception as exc:
            self.startup_error = exc
            raise
        self.ready = True
        if self.settings.secret and len(self.settings.secret.encode()) < 32:
            log.warning("weak secret: HS256 tokens want a secret of at least 32 bytes")
        if not self.hooks.authenticates:
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
            if isinstance(conn, Connection):
                conn.send_message(p.Reconnect(after_ms=reconnect_after_ms, reason="shutdown"))
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
        deadline = time.monotonic() + 5
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    async def shutdown(self) -> None:
        if self.connections:
            await self.announce_shutdown()
        await self.hub.close()
        await self.hooks.close()
        await self.hub.permissions.close()
        await self.store.close()
        await self.bus.close()
        self.tracing.shutdown()

    async def restrict_user(self, user: str, docs: dict[str, list[str]] | None) -> None:
        """At most ``docs`` rights (document or "*" -> rights) for ``user``, on every instance,
        from now on, open connections included; None lifts it (``permissions.py``)."""
        await self.hub.permissions.restrict(user, docs)

    async def restrict_token(self, token: str, docs: dict[str, list[str]] | None) -> None:
        """As ``restrict_user``, for the sessions of one token only (a leaked one); its user's
        other tokens keep their rights."""
        await self.hub.permissions.restrict(token_key(token), docs)

    def document(
        self, document: str, *, user: str = "server", name: str = "", create: bool = False
    ) -> contextlib.AbstractAsyncContextManager[ServerDocument]:
        """Edit ``document`` in-process: ``async with cowrite.document("id") as doc:``; the
        block's edits become one durable room input, by ``user``, when it ends
        (``documents.py``)."""
        return open_document(self.hub, document, user=user, name=name, create=create)


class CowriteApp(Starlette):
    """Starlette, except that a WebSocket of cowrite's own routes goes straight to its endpoint.

    Starlette's stack (error and exception middleware, router, route) holds a coroutine frame
    each, an extra ``WebSocket`` and closures for as long as the connection lasts; they do
    nothing for these endpoints, which handle their own errors. So while no middleware was
    added (``add_middleware``: then everything goes through it, as usual), ``__call__`` matches
    ``socket_routes`` itself, as the router would (first match, path parameters, mounting).
    """

    socket_routes: tuple[WebSocketRoute, ...] = ()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not self.user_middleware:
            for route in self.socket_routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope["app"] = self
                    scope.setdefault("router", self.router)
                    scope.update(child)
                    await route.app(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def web_routes() -> list[Mount]:
    """The web editor's built assets (``cowrite/server/static``), served at ``/`` when present."""
    from pathlib import Path

    from starlette.staticfiles import StaticFiles

    static = Path(__file__).with_name("static")
    if not (static / "index.html").is_file():
        return []
    return [Mount("/", app=StaticFiles(directory=static, html=True), name="web")]


def create_app(
    settings: Settings | None = None,
    store: Store | None = None,
    bus: Bus | None = None,
    extensions: Sequence[Extension] = (),
    *,
    tracing: Tracing | None = None,
) -> Starlette:
    """The app. ``store``/``bus``: use these instead of the ones the settings name (a ``bus``
    shared with other instances makes this one a member of their cluster). ``extensions``:
    lifecycle hooks, run in this order (``hooks.py``, docs/extending.md); ``tracing``: spans
    through this (else as the settings and ``OTEL_*`` variables say: ``tracing.py``)."""
    from cowrite.server import rest

    settings = settings or Settings.from_env()
    state = Cowrite(settings, store, bus, extensions, tracing=tracing)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.startup()
        try:
            yield
        finally:
            await state.shutdown()

    async def serve(ws: WebSocket, conn: Connection | YjsConnection) -> None:
        if state.shutting_down:
            await ws.close(CLOSE_GOING_AWAY, "server shutting down")
            return
        address = ws.client.host if ws.client is not None else None
        refused = state.throttle.admit(address)
        if refused is not None:  # accepted, to say why (a refused handshake is a bare 403)
            state.metrics.refused.labels("address").inc()
            await ws.accept()
            await ws.close(CLOSE_TRY_AGAIN, refused[:120])
            return
        state.connections.add(conn)
        try:
            if state.tracing.enabled:
                with state.tracing.span("cowrite.connection", session=conn.session):
                    await conn.run()
            else:  # no context manager held for the life of the connection
                await conn.run()
        finally:
            state.connections.discard(conn)
            state.throttle.release(address)

    # routed as plain ASGI apps, and plain functions returning ``serve``'s coroutine: fewer
    # frames held per connection
    @asgi_websocket
    def ws_endpoint(ws: WebSocket) -> Awaitable[None]:
        return serve(ws, Connection(ws, state.hub, settings, state.metrics))

    @asgi_websocket
    def ywebsocket_endpoint(ws: WebSocket) -> Awaitable[None]:
        name = ws.path_params["name"]
        return serve(ws, YjsConnection(ws, state.hub, settings, state.metrics, "y-websocket", name))

    @asgi_websocket
    def hocuspocus_endpoint(ws: WebSocket) -> Awaitable[None]:
        return serve(ws, YjsConnection(ws, state.hub, settings, state.metrics, "hocuspocus"))

    async def healthz(request: Request) -> Response:
        # liveness: unhealthy only when restarting the process is the cure (the store's writer
        # died and cannot be restarted); a database that is down for now is /readyz's business
        if not await state.store.alive():
            return PlainTextResponse("store writer dead", status_code=503)
        return PlainTextResponse("ok")

    async def readyz(request: Request) -> Response:
        ok = state.ready and await state.store.health()
        return PlainTextResponse("ready" if ok else "not ready", status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    sockets = (
        WebSocketRoute("/ws", ws_endpoint),
        WebSocketRoute("/yjs/{name:path}", ywebsocket_endpoint),
        WebSocketRoute("/hocuspocus", hocuspocus_endpoint),
    )
    routes = [
        *sockets,
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        Mount("/api", routes=rest.routes(state)),
    ]
    routes.extend(web_routes())
    app = CowriteApp(routes=routes, lifespan=lifespan)
    app.socket_routes = sockets  # first in ``routes``: the router would match them first too
    if state.tracing.enabled:
        app.add_middleware(TracingMiddleware, tracing=state.tracing)
    app.state.cowrite = state
    return app
