"""Lifecycle hooks on a real server, over real sockets: order, payloads, refusals, isolation."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import pycrdt
import pytest
import uvicorn
import websockets

import cowrite
from cowrite.server.app import create_app
from cowrite.server.auth import Identity
from cowrite.server.config import Settings
from cowrite.server.hooks import (
    AuthRequest,
    Callbacks,
    Change,
    Changes,
    Connect,
    Disconnect,
    DocumentCreated,
    Extension,
    LoadDocument,
    Refused,
    Stateless,
    Stored,
    Unload,
)
from cowrite.yjs import messages as m

from .conftest import RawClient, RunningServer
from .test_yjs_server import Hocus

RIGHTS = {"*": frozenset({"read", "write", "chat"})}


@asynccontextmanager
async def serve(settings: Settings, extensions: list[Extension]) -> AsyncIterator[RunningServer]:
    app = create_app(settings, extensions=extensions)
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
        yield RunningServer(f"http://127.0.0.1:{port}", app, server)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


class Recorder(Extension):
    """Records every hook it gets as (its name, hook, event); authenticates ``t-<user>``."""

    def __init__(self, name: str, log: list[tuple[str, str, Any]]) -> None:
        self.name = name
        self.log = log

    def _rec(self, hook: str, event: Any) -> None:
        self.log.append((self.name, hook, event))

    async def on_connect(self, event: Connect) -> None:
        self._rec("on_connect", event)

    async def on_authenticate(self, event: AuthRequest) -> Identity | None:
        self._rec("on_authenticate", event)
        token = event.token or ""
        if self.name != "first" or not token.startswith("t-"):
            return None  # the second decides nothing: the first one's answer stands
        return Identity(token[2:], name=token[2:].title(), docs=RIGHTS)

    async def on_load_document(self, event: LoadDocument) -> None:
        self._rec("on_load_document", event)

    async def on_create_document(self, event: DocumentCreated) -> None:
        self._rec("on_create_document", event)

    async def on_change(self, event: Change) -> None:
        self._rec("on_change", event)

    async def on_change_debounced(self, event: Changes) -> None:
        self._rec("on_change_debounced", event)

    async def on_store(self, event: Stored) -> None:
        self._rec("on_store", event)

    async def on_disconnect(self, event: Disconnect) -> None:
        self._rec("on_disconnect", event)

    async def on_unload(self, event: Unload) -> None:
        self._rec("on_unload", event)


@pytest.fixture
def quick(settings: Settings) -> Settings:
    return replace(
        settings,
        unload_after_s=0.2,
        change_debounce_s=0.05,
        change_max_wait_s=5.0,
        heartbeat_s=30,  # raw clients answer no pings
        heartbeat_timeout_s=90,
    )


def failures(metrics: str, hook: str, reason: str, extension: str = "callbacks") -> float:
    labels = f'extension="{extension}",hook="{hook}",reason="{reason}"'
    for line in metrics.splitlines():
        if line.startswith(f"cowrite_hook_failures_total{{{labels}}} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def hooks_of(log: list[tuple[str, str, Any]], hook: str) -> list[tuple[str, Any]]:
    return [(who, event) for who, h, event in log if h == hook]


async def test_every_hook_fires_in_registration_order_with_its_payload(quick: Settings) -> None:
    log: list[tuple[str, str, Any]] = []
    first, second = Recorder("first", log), Recorder("second", log)
    async with serve(quick, [first, second]) as server:
        a = await RawClient.connect(server.ws_url, "ca", token="t-ann")
        welcome_user = None
        await a.send({"type": "join", "doc": "notes", "create": True})
        joined = await a.expect("joined")
        welcome_user = joined.get("doc")
        op = {"type": "seq", "node": "text:body", "edit": ["hello"]}
        await a.send({"type": "edit", "doc": "notes", "edit_id": "e1", "version": 0, "ops": [op]})
        ack = await a.expect("ack")
        await until(lambda: len(hooks_of(log, "on_change_debounced")) == 2)
        await a.close()
        await until(lambda: len(hooks_of(log, "on_unload")) == 2)
        await until(lambda: len(hooks_of(log, "on_disconnect")) == 2)

    assert welcome_user == "notes"
    # each hook: the first extension, then the second, with the same event
    for hook in (
        "on_connect",
        "on_load_document",
        "on_create_document",
        "on_change",
        "on_change_debounced",
        "on_store",
        "on_disconnect",
        "on_unload",
    ):
        calls = hooks_of(log, hook)
        assert [who for who, _ in calls] == ["first", "second"], hook
        assert calls[0][1] is calls[1][1], hook
    # the first extension authenticated: the second was never asked
    assert [who for who, _ in hooks_of(log, "on_authenticate")] == ["first"]

    connect = hooks_of(log, "on_connect")[0][1]
    assert connect.endpoint == "ws" and connect.path == "/ws"
    assert connect.client.startswith("127.0.0.1:")
    auth = hooks_of(log, "on_authenticate")[0][1]
    assert (auth.token, auth.document, auth.endpoint) == ("t-ann", None, "ws")
    assert auth.session == connect.session
    load = hooks_of(log, "on_load_document")[0][1]
    assert (load.document, load.kind, load.created) == ("notes", "crdt", True)
    assert load.doc is not None and load.doc.to_json() == {}
    created = hooks_of(log, "on_create_document")[0][1]
    assert (created.document, created.kind, created.by) == ("notes", "crdt", None)
    change = hooks_of(log, "on_change")[0][1]
    assert (change.document, change.version, change.source) == ("notes", ack["version"], "thin")
    assert (change.author.user_id, change.author.name, change.author.client_id) == (
        "ann",
        "Ann",
        "ca",
    )
    assert change.summary.ops == 1 and change.summary.nodes == ("text:body",)
    assert (change.summary.inserted, change.summary.deleted) == (5, 0)
    assert change.seq is not None and change.summary.bytes > 0
    stored = hooks_of(log, "on_store")[0][1]
    assert stored.document == "notes" and change.seq in stored.seqs
    debounced = hooks_of(log, "on_change_debounced")[0][1]
    assert (debounced.document, debounced.version, debounced.changes) == (
        "notes",
        ack["version"],
        1,
    )
    assert debounced.authors == ("ann",)
    gone = hooks_of(log, "on_disconnect")[0][1]
    assert (gone.session, gone.endpoint, gone.user_id) == (connect.session, "ws", "ann")
    assert gone.documents == ("notes",)
    assert hooks_of(log, "on_unload")[0][1] == Unload("notes")
    # the lifecycle's order
    order = [h for who, h, _ in log if who == "first"]
    assert order.index("on_connect") < order.index("on_authenticate")
    assert order.index("on_authenticate") < order.index("on_load_document")
    assert order.index("on_load_document") < order.index("on_change")
    assert order.index("on_change") < order.index("on_change_debounced")
    assert order.index("on_change_debounced") < order.index("on_unload")


async def hello_refused(server: RunningServer, **hello: Any) -> tuple[dict[str, Any], int]:
    """Say hello; the error the server answers and the close code."""
    async with websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "hello", "client_id": "c", **hello}))
        error = json.loads(await asyncio.wait_for(ws.recv(), 10))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
        rcvd = closed.value.rcvd
        return error, rcvd.code if rcvd is not None else 1006


async def test_a_raising_on_connect_refuses_with_its_message(settings: Settings) -> None:
    def no_bots(event: Connect) -> None:
        if "bot" in event.headers.get("user-agent", ""):
            raise Refused("no bots here")

    async with serve(settings, [Callbacks(on_connect=no_bots)]) as server:
        async with websockets.connect(server.ws_url, user_agent_header="bot/1") as ws:
            error = json.loads(await asyncio.wait_for(ws.recv(), 10))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)
        assert error["type"] == "error" and error["code"] == "forbidden"
        assert error["message"] == "connection refused: no bots here"
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        # others are let in
        ok = await RawClient.connect(server.ws_url, "human")
        await ok.close()
        # a Yjs endpoint is refused the same way (close 4403 with the reason)
        hocus = await Hocus.connect(server)  # websockets' default user agent: no "bot"
        await hocus.close()
        url = server.url.replace("http://", "ws://") + "/yjs/doc"
        async with websockets.connect(url, user_agent_header="bot/2") as y:
            with pytest.raises(websockets.ConnectionClosed) as yclosed:
                await asyncio.wait_for(y.recv(), 10)
        assert yclosed.value.rcvd is not None
        assert (yclosed.value.rcvd.code, yclosed.value.rcvd.reason) == (
            4403,
            "connection refused: no bots here",
        )
        metrics = server.state.metrics.render().decode()
        assert failures(metrics, "on_connect", "refused") == 2


async def test_a_raising_on_authenticate_refuses_with_a_clear_error(settings: Settings) -> None:
    async def check(event: AuthRequest) -> Identity:
        if event.token != "good":
            raise Refused("unknown API key")
        return Identity("svc", docs=RIGHTS)

    async with serve(settings, [Callbacks(on_authenticate=check)]) as server:
        error, code = await hello_refused(server, token="bad")
        assert (error["type"], error["code"]) == ("error", "unauthorized")
        assert error["message"] == "unknown API key" and code == 1008
        error, code = await hello_refused(server)  # no token at all: the hook sees None
        assert error["message"] == "unknown API key"
        good = await RawClient.connect(server.ws_url, "c", token="good")
        await good.close()

        # Hocuspocus: the Auth message goes to the hook; PermissionDenied says why
        hocus = await Hocus.connect(server)
        await hocus.open("doc", token="bad")
        await until(lambda: bool(hocus.of(m.HPermissionDenied)))
        assert hocus.of(m.HPermissionDenied)[0].reason == "unauthorized: unknown API key"
        await hocus.open("doc2", token="good")
        await until(lambda: bool(hocus.of(m.HAuthenticated)))
        assert hocus.of(m.HAuthenticated)[0].address == "doc2"
        await hocus.close()
        # y-websocket: the token query parameter; refused with 4401
        url = server.url.replace("http://", "ws://") + "/yjs/doc?token=bad"
        async with websockets.connect(url) as y:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(y.recv(), 10)
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
            4401,
            "unauthorized: unknown API key",
        )


async def test_the_secret_still_works_through_the_builtin_jwt_hook(settings: Settings) -> None:
    async with serve(replace(settings, secret="k" * 32), []) as server:
        error, code = await hello_refused(server, token="forged")
        assert error["code"] == "unauthorized" and error["message"].startswith("invalid token")
        assert code == 1008


async def test_a_hanging_hook_does_not_stall_another_document(settings: Settings) -> None:
    """on_change hangs for one document (and on_load_document for another): a third document
    is loaded, edited, acknowledged and reported all the same."""
    never = asyncio.Event()
    changes: list[str] = []

    async def on_change(event: Change) -> None:
        if event.document == "stuck":
            await never.wait()
        changes.append(event.document)

    async def on_load_document(event: LoadDocument) -> None:
        if event.document == "loading-forever":
            await never.wait()

    ext = Callbacks(on_change=on_change, on_load_document=on_load_document)
    async with serve(replace(settings, hook_timeout_s=600), [ext]) as server:
        blocked = await cowrite.connect(server.ws_url, doc="stuck", name="a")
        blocked.text("body").insert(0, "one")
        await blocked.synced()

        async def join_loading() -> Any:
            return await cowrite.connect(
                server.ws_url,
                doc="loading-forever",
                name="b",
                reconnect=False,
                connect_timeout_s=600,
            )

        hanging_join = asyncio.create_task(join_loading())
        async with cowrite.connect(server.ws_url, doc="free", name="c") as free:
            free.text("body").insert(0, "two")
            await free.synced()
            await until(lambda: changes == ["free"])
        blocked.text("body").insert(0, "more ")  # the stuck document itself still edits
        await blocked.synced()
        assert not hanging_join.done()  # its load is still waiting for the hook
        hanging_join.cancel()
        await blocked.close()
        never.set()
        await until(lambda: changes.count("stuck") == 2)


async def test_a_hook_that_times_out_is_counted_and_the_next_events_still_come(
    settings: Settings,
) -> None:
    seen: list[int] = []
    release = asyncio.Event()

    async def on_change(event: Change) -> None:
        if not seen:
            seen.append(event.version)
            await release.wait()  # beyond hook_timeout_s: cancelled, counted
        else:
            seen.append(event.version)

    async with serve(replace(settings, hook_timeout_s=0.2), [Callbacks(on_change=on_change)]) as s:
        async with cowrite.connect(s.ws_url, doc="d", name="a") as d:
            d.text("t").insert(0, "x")
            await d.synced()
            await until(lambda: len(seen) == 1)
            d.text("t").insert(0, "y")
            await d.synced()
            await until(lambda: len(seen) == 2)
        metrics = s.state.metrics.render().decode()
        assert failures(metrics, "on_change", "timeout") == 1
    assert seen[1] > seen[0]


async def test_on_load_document_seeds_a_new_document(settings: Settings) -> None:
    storage = {"imported": "from the application's storage"}

    async def seed(event: LoadDocument) -> None:
        if event.created and event.doc is not None and event.document in storage:
            event.doc.text("body").insert(0, storage[event.document])
            event.doc.counter("loads").add(1)

    async with serve(settings, [Callbacks(on_load_document=seed)]) as server:
        async with cowrite.connect(server.ws_url, doc="imported", name="a") as d:
            assert str(d.text("body")) == storage["imported"]
        stored = await server.state.store.load("imported")
        assert stored is not None and len(stored.updates) == 1  # durable: the first update


async def test_a_failing_on_load_document_loads_the_document_without_its_seed(
    settings: Settings,
) -> None:
    async def broken(event: LoadDocument) -> None:
        assert event.doc is not None
        event.doc.text("body").insert(0, "half")
        raise RuntimeError("storage down")

    async with serve(settings, [Callbacks(on_load_document=broken)]) as server:
        async with cowrite.connect(server.ws_url, doc="d", name="a") as d:
            assert str(d.text("body")) == ""
            d.text("body").insert(0, "ok")
            await d.synced()
        metrics = server.state.metrics.render().decode()
        assert failures(metrics, "on_load_document", "error") == 1


async def test_on_stateless_gets_custom_messages_and_may_reply(settings: Settings) -> None:
    got: list[Stateless] = []
    changes: list[Change] = []

    def on_stateless(event: Stateless) -> None:
        got.append(event)
        event.reply(json.dumps({"echo": json.loads(event.payload)}))

    ext = Callbacks(on_stateless=on_stateless, on_change=changes.append)
    async with serve(settings, [ext]) as server:
        hocus = await Hocus.connect(server)
        ydoc = await hocus.open("room")
        await until(lambda: bool(hocus.of(m.HSyncStatus)))
        await hocus.ws.send(m.encode_hocuspocus(m.HStateless("room", '{"ping": 1}')))
        await until(lambda: any("echo" in f.payload for f in hocus.of(m.HStateless)))
        chat = {"type": "cowrite.chat.send", "text": "hi"}
        await hocus.ws.send(m.encode_hocuspocus(m.HStateless("room", json.dumps(chat))))
        await until(lambda: any('"cowrite.chat"' in f.payload for f in hocus.of(m.HStateless)))
        ydoc.get("t", type=pycrdt.Text).insert(0, "typed")
        await until(lambda: any(c.summary.bytes > 0 for c in changes))
        await hocus.close()
    assert [(e.document, e.payload) for e in got] == [("room", '{"ping": 1}')]  # not the chat
    assert got[0].user_id
    typed = [c for c in changes if c.summary.bytes > 0][-1]
    assert (typed.document, typed.source) == ("room", "yjs")
    assert typed.author is not None and typed.author.user_id == got[0].user_id


async def test_on_authenticate_also_decides_rest_requests(settings: Settings) -> None:
    import httpx

    async def check(event: AuthRequest) -> Identity:
        if event.token == "writer":
            return Identity("w", name="Writer", docs={"*": frozenset({"read", "write"})})
        if event.token == "reader":
            return Identity("r", docs={"*": frozenset({"read"})})
        raise Refused("unknown API key")

    async with (
        serve(settings, [Callbacks(on_authenticate=check)]) as server,
        httpx.AsyncClient(base_url=server.url) as http,
    ):
        assert (await http.get("/api/status")).status_code == 200  # public
        r = await http.get("/api/documents")
        assert r.status_code == 401 and r.json()["error"]["message"] == "unknown API key"
        writer = {"Authorization": "Bearer writer"}
        reader = {"Authorization": "Bearer reader"}
        r = await http.post("/api/documents", json={"id": "x"}, headers=reader)
        assert r.status_code == 403
        assert (await http.post("/api/documents", json={"id": "x"}, headers=writer)).is_success
        body = {"text": "t", "append": "hi"}
        r = await http.post("/api/documents/x/edits", json=body, headers=reader)
        assert r.status_code == 403
        r = await http.post("/api/documents/x/edits", json=body, headers={})
        assert r.status_code == 401
        r = await http.post("/api/documents/x/edits", json=body, headers=writer)
        assert r.status_code == 200
        assert (await http.get("/api/documents/x/text/t", headers=reader)).text == "hi"


async def test_on_load_document_seeds_a_new_yjs_document(settings: Settings) -> None:
    saved: pycrdt.Doc[Any] = pycrdt.Doc()
    saved.get("t", type=pycrdt.Text).insert(0, "from the app's storage")

    def seed(event: LoadDocument) -> None:
        if event.kind == "yjs" and event.created and event.yjs_updates is not None:
            event.yjs_updates.append(saved.get_update())

    async with serve(settings, [Callbacks(on_load_document=seed)]) as server:
        hocus = await Hocus.connect(server)
        ydoc = await hocus.open("yseed")
        await until(lambda: str(ydoc.get("t", type=pycrdt.Text)) == "from the app's storage")
        await hocus.close()
        stored = await server.state.store.load("yseed")
        assert stored is not None and stored.kind == "yjs" and len(stored.updates) >= 1
