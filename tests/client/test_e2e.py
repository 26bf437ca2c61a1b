"""The SDK against the real server: uvicorn on 127.0.0.1 (port 0), real WebSockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("cowrite.server.app")
uvicorn = pytest.importorskip("uvicorn")

from cowrite import protocol as p  # noqa: E402
from cowrite.client import (  # noqa: E402
    ChangeEvent,
    DocumentSession,
    NotSynced,
    ServerError,
    connect,
    transport,
)
from cowrite.client.connection import _Retry  # noqa: E402
from cowrite.server.app import create_app  # noqa: E402
from cowrite.server.config import Settings  # noqa: E402

pytestmark = pytest.mark.slow


class Server:
    """A server that can be stopped and started again on the same port and database."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self.app: Any = None
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        self.app = create_app(self.settings)
        config = uvicorn.Config(self.app, log_config=None, lifespan="on", ws_ping_interval=None)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            await asyncio.sleep(0.01)
            if self._task.done():
                self._task.result()

    def drop(self, client_id: str) -> None:
        """Close the connections of ``client_id`` from the server side."""
        for conn in list(self.app.state.cowrite.connections):
            if conn.client_id == client_id:
                conn.close(4000, "test: dropped")

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 20)
            self._task = None


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    settings = Settings(data=str(tmp_path / "cowrite.db"), heartbeat_s=0.5, heartbeat_timeout_s=1.5)
    running = Server(settings)
    await running.start()
    yield running
    await running.stop()


async def eventually(check: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.01)


FAST: dict[str, Any] = {"backoff_base_s": 0.05, "backoff_max_s": 0.5, "flush_timeout_s": 5.0}


async def test_two_thin_clients_edit_one_document(server: Server) -> None:
    async with (
        connect(server.url, doc="notes", name="alice", **FAST) as a,
        connect(server.url, doc="notes", name="bob", **FAST) as b,
    ):
        seen: list[ChangeEvent] = []
        b.on("change", seen.append)
        a.text("body").insert(0, "Hello ")
        a.text("body").insert(6, "world 🌍")
        b.text("body").insert(0, ">> ")
        b.map("meta").set("title", "Notes")
        b.counter("n").add(2)
        a.counter("n").add(1)
        b.list("items").insert(0, [1, {"x": True}])
        await a.synced()
        await b.synced()
        await eventually(lambda: str(a.text("body")) == str(b.text("body")))
        await eventually(lambda: a.counter("n").value == b.counter("n").value == 3)
        assert sorted(str(a.text("body"))) == sorted(">> Hello world 🌍")
        await eventually(lambda: a.map("meta").get("title") == "Notes")
        assert a.list("items").to_list() == [1, {"x": True}]
        assert any(e.node == "text:body" and e.origin == "remote" for e in seen)
        assert a.user is not None and a.user.name == "alice"


async def test_replica_and_thin_clients_see_each_other(server: Server) -> None:
    async with (
        connect(server.url, doc="mixed", mode="replica", **FAST) as r,
        connect(server.url, doc="mixed", **FAST) as t,
    ):
        r.text("body").insert(0, "from the replica. ")
        r.map("meta").set("by", "replica")
        await r.synced()
        await eventually(lambda: str(t.text("body")) == "from the replica. ")
        t.text("body").insert(len(t.text("body")), "from thin 😀")
        t.counter("c").add(5)
        await t.synced()
        await eventually(lambda: str(r.text("body")) == "from the replica. from thin 😀")
        await eventually(lambda: r.counter("c").value == 5)
        assert t.map("meta").to_dict() == {"by": "replica"}


async def test_edits_made_while_the_server_is_down_are_applied_once(server: Server) -> None:
    async with connect(server.url, doc="offline", **FAST) as a:
        a.text("body").insert(0, "before. ")
        await a.synced()
        await server.stop()
        await eventually(lambda: not a.connected)
        a.text("body").insert(8, "during. ")
        for _ in range(5):
            a.counter("n").add(1)
        assert not a.is_synced
        await server.start()
        await a.synced(timeout_s=10)
        async with connect(server.url, doc="offline", **FAST) as b:
            assert str(b.text("body")) == "before. during. "
            assert b.counter("n").value == 5


async def test_leaving_with_unacknowledged_edits_raises_not_synced(server: Server) -> None:
    options = {**FAST, "flush_timeout_s": 0.3}
    with pytest.raises(NotSynced):
        async with connect(server.url, doc="unsynced", **options) as a:
            await server.stop()
            await eventually(lambda: not a.connected)
            a.text("body").insert(0, "never acknowledged")


async def test_a_lost_ack_is_recovered_on_reconnect_without_applying_twice(
    server: Server,
) -> None:
    async with connect(server.url, doc="lost", **FAST) as a:
        original = a._handle
        dropped: list[p.Ack] = []

        def drop_first_ack(msg: p.ServerMessage) -> None:
            if isinstance(msg, p.Ack) and not dropped:
                dropped.append(msg)
                raise _Retry("test: the connection dies with the ack")
            original(msg)

        a._handle = drop_first_ack  # type: ignore[method-assign]
        session_before = a.session_id
        a.counter("n").add(7)
        a.text("body").insert(0, "once")
        await a.synced(timeout_s=10)
        assert dropped and a.session_id != session_before
        async with connect(server.url, doc="lost", **FAST) as b:
            assert b.counter("n").value == 7
            assert str(b.text("body")) == "once"


async def test_a_client_behind_the_retained_history_merges_its_work_into_a_snapshot(
    tmp_path: Path,
) -> None:
    settings = Settings(data=str(tmp_path / "small.db"), edit_log_capacity=2)
    running = Server(settings)
    await running.start()
    try:
        async with (
            connect(running.url, doc="merge", **FAST) as a,
            connect(running.url, doc="merge", **FAST) as b,
        ):
            a.text("body").insert(0, "hello world")
            await a.synced()
            await eventually(lambda: str(b.text("body")) == "hello world")
            events: list[ChangeEvent] = []
            a.on("change", events.append)
            a._backoff = (1.5, 1.5)  # stay away long enough for b's edits to leave the log
            running.drop(a.client_id)
            await eventually(lambda: not a.connected)
            a.text("body").insert(5, ",")
            a.text("body").insert(12, "!")
            for word in ("big ", "wide ", "round "):
                b.text("body").insert(6, word)
                await b.synced()
            await a.synced(timeout_s=10)
            await b.synced()
            await eventually(lambda: str(a.text("body")) == str(b.text("body")))
            assert str(a.text("body")) == "hello, round wide big world!"
            assert events and all(e.origin == "snapshot" for e in events)  # not a catch-up
    finally:
        await running.stop()


async def test_pings_keep_an_idle_session_alive(server: Server) -> None:
    async with connect(server.url, doc="idle", **FAST) as a:
        session = a.session_id
        await asyncio.sleep(2.5)  # heartbeat timeout is 1.5 s: pongs must have been sent
        assert a.connected and a.session_id == session


@pytest.mark.parametrize(("heartbeat_s", "limit_s"), [(30, 45), (15, 25), (0.5, 10.5), (100, 150)])
def test_a_silent_server_is_given_a_heartbeat_and_a_half_at_least_10_s_more(
    heartbeat_s: float, limit_s: float
) -> None:
    assert transport.silence_limit_s(heartbeat_s) == limit_s


async def test_a_server_gone_silent_is_left_and_the_session_reconnects(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Half-open: the server stops sending (here: it stops pinging this one connection) without
    closing. The session waits ``silence_limit_s`` (shortened here), reconnects and rejoins."""
    monkeypatch.setattr(transport, "silence_limit_s", lambda heartbeat_s: 3 * heartbeat_s)
    statuses: list[str] = []
    async with connect(server.url, doc="quiet", **FAST) as a:
        a.on("status", statuses.append)
        first = a.session_id
        conn = next(c for c in server.app.state.cowrite.connections if c.session == first)
        conn._shared.discard(conn)  # no more pings: the server is silent to this client
        await eventually(lambda: a.session_id != first and a.connected, timeout_s=20)
        assert "disconnected" in statuses
        a.text("body").insert(0, "still here")
        await a.synced()


async def test_presence_and_chat(server: Server) -> None:
    async with (
        connect(server.url, doc="talk", name="alice", **FAST) as a,
        connect(server.url, doc="talk", name="bob", **FAST) as b,
    ):
        a.text("body").insert(0, "0123456789")
        await a.synced()
        await eventually(lambda: len(b.text("body")) == 10)
        chats: list[p.ChatMessage] = []
        b.on("chat", chats.append)
        await a.set_presence(cursor=(a.text("body"), 3, 5))

        def cursor_of(session: DocumentSession, other: DocumentSession) -> p.Cursor | None:
            for entry in session.presence:
                if entry.session == other.session_id:
                    return entry.cursor
            return None

        await eventually(lambda: cursor_of(b, a) is not None)
        cursor = cursor_of(b, a)
        assert cursor is not None and (cursor.anchor, cursor.head) == (3, 5)
        b.text("body").insert(0, "ab")  # the cursor follows local edits before it
        cursor = cursor_of(b, a)
        assert cursor is not None and (cursor.anchor, cursor.head) == (5, 7)
        await a.chat.send("hi bob")
        await eventually(lambda: any(m.text == "hi bob" for m in chats))
        page = await b.chat.history(limit=10)
        assert [m.text for m in page.messages] == ["hi bob"]
        message = chats[0]
        await a.chat.edit(message.id, "hi Bob")
        await eventually(lambda: any(m.text == "hi Bob" for m in b.chat.messages))


async def test_a_bare_server_address_means_its_websocket_endpoint(server: Server) -> None:
    bare = f"http://127.0.0.1:{server.port}"
    async with connect(bare, doc="bare", **FAST) as a:
        assert a.url == server.url
        a.register("title").set("ok")
        await a.synced()
        assert a.register("title").value == "ok"


async def test_joining_a_missing_document_without_create_fails(server: Server) -> None:
    with pytest.raises(ServerError) as info:
        async with connect(server.url, doc="nope", create=False, **FAST):
            pass
    assert info.value.code is p.ErrorCode.UNKNOWN_DOCUMENT


async def test_connect_gives_up_after_its_timeout_when_nobody_listens() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    with pytest.raises(ConnectionError):
        await connect(f"ws://127.0.0.1:{port}/ws", doc="x", connect_timeout_s=0.5, **FAST)


async def test_a_replica_whose_changes_the_server_refuses_is_told_not_left_waiting(
    tmp_path: Path,
) -> None:
    """A replica's delta over a server limit is refused for good (the same delta would be
    refused again): ``synced`` raises the server's error instead of waiting forever, and what
    the server does hold is unchanged."""
    settings = Settings(data=str(tmp_path / "small.db"), max_node_length=100)
    running = Server(settings)
    await running.start()
    try:
        options = {**FAST, "flush_timeout_s": 0.3}
        with pytest.raises(NotSynced):  # leaving with edits the server never took says so
            async with connect(running.url, doc="limit", mode="replica", **options) as a:
                a.text("t").insert(0, "x" * 60)
                await a.synced(timeout_s=10)
                a.text("t").insert(60, "y" * 60)  # 120 > 100
                with pytest.raises(ServerError) as refused:
                    await a.synced(timeout_s=10)
                assert refused.value.code is p.ErrorCode.DOCUMENT_TOO_LARGE
                room = running.app.state.cowrite.hub.rooms["limit"].room
                assert room.doc.to_json()["t"] == "x" * 60
    finally:
        await running.stop()
