"""The server-side document API: in-process (``Cowrite.document``) and REST
(``POST /api/documents/{id}/edits``), against a real server with live SDK clients."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest

import cowrite
from cowrite.engine import InvalidOperation
from cowrite.rooms.room import RoomError
from cowrite.server.auth import issue
from cowrite.server.config import Settings

from .conftest import RunningServer, start_server

SECRET = "e" * 32


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        yield client


# ------------------------------------------------------------------------- in-process


async def test_a_server_block_is_one_durable_edit_seen_live(server: RunningServer) -> None:
    state = server.state
    async with cowrite.connect(server.ws_url, doc="doc", name="watcher") as watcher:
        watcher.text("body").insert(0, "live ")
        await watcher.synced()
        async with state.document("doc", user="importer", name="Importer") as doc:
            assert str(doc.text("body")) == "live "
            doc.text("body").insert(5, "and server")
            doc.text("body").delete(0, 1)  # composed with the insert: one index edit
            doc.map("meta").set("source", "import")
            doc.counter("views").add(2)
            doc.counter("views").add(1)
            assert doc.text("body").to_json() == "ive and server"
            assert doc.version is None
        assert doc.version is not None
        stored = await state.store.load("doc")
        assert stored is not None and stored.updates[-1][0] == doc.version  # durable already
        await until(lambda: str(watcher.text("body")) == "ive and server")
        await until(lambda: watcher.counter("views").value == 3)
        assert watcher.map("meta").to_dict() == {"source": "import"}
    lr = state.hub.rooms["doc"]
    assert lr.crdt.version == doc.version  # one version for the whole block


async def test_an_exception_in_the_block_discards_its_edits(server: RunningServer) -> None:
    state = server.state
    with pytest.raises(RuntimeError):
        async with state.document("d", create=True) as doc:
            doc.text("t").insert(0, "never")
            raise RuntimeError("changed my mind")
    async with state.document("d") as doc:
        assert str(doc.text("t")) == ""
    with pytest.raises(InvalidOperation):
        async with state.document("d") as doc:
            doc.text("t").delete(0, 5)  # past the end: refused at once
    with pytest.raises(RoomError) as missing:
        async with state.document("nope"):
            pass
    assert missing.value.code.value == "unknown_document"


async def test_edits_in_a_block_rebase_over_what_members_did_meanwhile(
    server: RunningServer,
) -> None:
    state = server.state
    async with cowrite.connect(server.ws_url, doc="r", name="typist") as typist:
        typist.text("t").insert(0, "world")
        await typist.synced()
        async with state.document("r", user="bot") as doc:
            doc.text("t").insert(5, "!")  # at the end of what the block saw
            typist.text("t").insert(0, "hello ")  # meanwhile, live
            await typist.synced()
        await until(lambda: str(typist.text("t")) == "hello world!")
    async with state.document("r") as doc:
        assert str(doc.text("t")) == "hello world!"


async def test_the_author_is_recorded_for_on_change(settings: Settings) -> None:
    from cowrite.server.hooks import Callbacks, Change

    from .test_hooks import serve

    seen: list[Change] = []
    async with serve(settings, [Callbacks(on_change=seen.append)]) as server:
        async with server.state.document("a", user="importer", create=True) as doc:
            doc.text("t").insert(0, "x")
        await until(lambda: len(seen) == 1)
    change = seen[0]
    assert change.source == "server" and change.author is not None
    assert (change.author.user_id, change.author.client_id) == ("importer", "server")
    assert change.summary.inserted == 1


# ------------------------------------------------------------------------------- REST


async def test_rest_edits_of_every_kind(server: RunningServer, http: httpx.AsyncClient) -> None:
    assert (await http.post("/api/documents", json={"id": "p"})).status_code == 201
    url = "/api/documents/p/edits"
    r = await http.post(url, json={"text": "body", "at": 0, "insert": "Hello world"})
    assert r.status_code == 200 and r.json()["ops"] == 1
    first = r.json()["version"]
    r = await http.post(
        url,
        json={
            "edits": [
                {"text": "body", "ops": [{"retain": 6}, {"delete": 5}, {"insert": "there"}]},
                {"text": "body", "append": "!"},
                {"map": "meta", "set": {"title": "Notes", "n": 1}, "unset": ["gone"]},
                {"counter": "views", "add": 3},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] > first
    assert (await http.get("/api/documents/p/text/body")).text == "Hello there!"
    r = await http.post(url, json={"text": "body", "replace": "new text"})
    assert r.status_code == 200
    r = await http.post(url, json={"text": "body", "at": 0, "delete": 4})
    assert r.status_code == 200
    value = (await http.get("/api/documents/p/json")).json()
    assert value["body"] == "text" and value["views"] == 3
    assert value["meta"] == {"title": "Notes", "n": 1}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([1, 2], "Expected `object`, got `array`"),
        ({"text": "b"}, "edit: nothing to do"),
        ({"text": "b", "map": "m", "set": {}}, "edit: name exactly one node"),
        ({"edits": [{"text": "b", "append": "x"}, {"counter": "c"}]}, "edits[1]: nothing to do"),
        ({"text": "b", "insert": "x"}, "edit: insert/delete need at"),
        ({"text": "b", "at": 0}, "edit: at needs insert and/or delete"),
        ({"text": "b", "at": -1, "insert": "x"}, "edit.at: a position is >= 0"),
        ({"text": "b", "append": "x", "replace": "y"}, "edit: give one of ops"),
        ({"text": "b", "ops": [{"retain": 1, "insert": "x"}]}, "edit.ops[0]: exactly one of"),
        ({"text": "b", "ops": [{"retain": 0}]}, "edit.ops[0].retain: a positive count"),
        ({"text": "b", "ops": [{"keep": 1}]}, "unknown field `keep` - at `$.ops[0]`"),
        ({"text": "b", "at": "0", "insert": "x"}, "Expected `int | null`, got `str` - at `$.at`"),
        ({"map": "m", "add": 1}, "edit.add: not an edit of a map"),
        ({"counter": "c", "add": 1.5}, "Expected `int | null`, got `float` - at `$.add`"),
        ({"edits": []}, "edits: at least one edit"),
        ({"text": "", "append": "x"}, "edit.text: a node name has 1-100 characters"),
    ],
)
async def test_garbage_bodies_get_400_with_a_precise_message(
    server: RunningServer, http: httpx.AsyncClient, body: Any, message: str
) -> None:
    await http.post("/api/documents", json={"id": "g"})
    r = await http.post("/api/documents/g/edits", json=body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "bad_request"
    assert message in r.json()["error"]["message"], r.json()["error"]["message"]


async def test_rest_edits_that_do_not_fit(server: RunningServer, http: httpx.AsyncClient) -> None:
    await http.post("/api/documents", json={"id": "f"})
    r = await http.post("/api/documents/f/edits", json={"text": "b", "at": 3, "insert": "x"})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_edit"
    assert r.json()["error"]["message"].startswith("edit: ")
    r = await http.post("/api/documents/f/edits", content=b"{not json")
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    r = await http.post("/api/documents/none/edits", json={"text": "b", "append": "x"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_document"
    await http.post("/api/documents", json={"id": "y", "kind": "yjs"})
    r = await http.post("/api/documents/y/edits", json={"counter": "c", "add": 1})
    assert r.status_code == 409 and r.json()["error"]["code"] == "wrong_kind"
    # nothing of the refused edits was applied
    assert (await http.get("/api/documents/f/json")).json() == {}


async def test_rest_edits_need_the_write_right(settings: Settings) -> None:
    running, task = await start_server(replace(settings, secret=SECRET))
    exp = int(time.time()) + 600
    writer = issue(SECRET, "w", docs={"*": ["write"]}, name="Writer", expires_at=exp)
    reader = issue(SECRET, "r", docs={"*": ["read"]}, expires_at=exp)
    try:
        async with httpx.AsyncClient(base_url=running.url) as http:
            auth = {"Authorization": f"Bearer {writer}"}
            await http.post("/api/documents", json={"id": "s"}, headers=auth)
            body = {"text": "b", "append": "x"}
            r = await http.post("/api/documents/s/edits", json=body)
            assert r.status_code == 401
            r = await http.post(
                "/api/documents/s/edits", json=body, headers={"Authorization": f"Bearer {reader}"}
            )
            assert r.status_code == 403 and "'write'" in r.json()["error"]["message"]
            r = await http.post("/api/documents/s/edits", json=body, headers=auth)
            assert r.status_code == 200
            log = running.state.hub.rooms["s"].crdt
            assert log.version == r.json()["version"]
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_rest_writes_and_two_typing_clients_converge(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    rng = random.Random(7)
    await http.post("/api/documents", json={"id": "c"})
    a = await cowrite.connect(server.ws_url, doc="c", name="a")
    b = await cowrite.connect(server.ws_url, doc="c", name="b")
    try:
        inserted: list[str] = []

        async def type_into(client: Any, tag: str) -> None:
            for i in range(30):
                text = client.text("body")
                text.insert(rng.randint(0, len(text)), f"<{tag}{i}>")
                inserted.append(f"<{tag}{i}>")
                if i % 5 == 0:
                    await client.synced()
                await asyncio.sleep(0)

        async def rest_writes() -> None:
            for i in range(15):
                got = await http.get("/api/documents/c/text/body")
                current = got.text if got.status_code == 200 else ""  # 404: no text yet
                at = rng.randint(0, len(current))
                edits = {"edits": [{"text": "body", "at": at, "insert": f"[r{i}]"}]}
                r = await http.post("/api/documents/c/edits", json=edits)
                assert r.status_code == 200, r.text  # nothing shrinks: always in range
                inserted.append(f"[r{i}]")

        await asyncio.gather(type_into(a, "a"), type_into(b, "b"), rest_writes())
        await a.synced()
        await b.synced()
        final = (await http.get("/api/documents/c/text/body")).text
        await until(lambda: str(a.text("body")) == final and str(b.text("body")) == final)
        # every character typed or posted is there exactly once (interleaved anywhere)
        assert sorted(final) == sorted("".join(inserted))
        assert len(inserted) == 75
    finally:
        await a.close()
        await b.close()


async def test_rest_edits_of_a_yjs_document_reach_its_clients(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    """Positions in code points, whatever the text holds (pycrdt counts UTF-8 bytes)."""
    import pycrdt

    from cowrite.yjs import messages as m

    from .test_yjs_server import Hocus, stored_text

    await http.post("/api/documents", json={"id": "rich", "kind": "yjs"})
    hocus = await Hocus.connect(server)
    ydoc = await hocus.open("rich")
    await until(lambda: bool(hocus.of(m.HSyncStatus)))
    ydoc.get("t", type=pycrdt.Text).insert(0, "héllo 😀 wörld")
    await until(lambda: "rich" in server.state.hub.rooms)
    url = "/api/documents/rich/edits"
    await until(lambda: server.state.hub.rooms["rich"].room.shared.doc.text("t") != "")
    r = await http.post(
        url,
        json={
            "edits": [
                {"text": "t", "ops": [{"retain": 6}, {"delete": 1}, {"insert": "🎉"}]},
                {"text": "t", "at": 1, "delete": 1, "insert": "e"},
                {"text": "t", "append": "!"},
                {"map": "meta", "set": {"title": "Rich", "n": 2}},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["version"] is not None
    expected = "hello 🎉 wörld!"
    await until(lambda: str(ydoc.get("t", type=pycrdt.Text)) == expected)
    await until(lambda: ydoc.get("meta", type=pycrdt.Map).to_py() == {"title": "Rich", "n": 2})
    assert await stored_text(server, "rich") == expected
    r = await http.post(url, json={"text": "t", "at": 100, "insert": "x"})
    assert r.status_code == 422 and r.json()["error"]["message"].startswith("edit: ")
    await hocus.close()
