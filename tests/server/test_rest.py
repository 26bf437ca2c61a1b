"""The REST API over a real server: documents, values, versions, diffs, restore (live), chat."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from cowrite.adapters.store import StoreUnavailable
from cowrite.engine import history, ot
from cowrite.engine.ops import NodeKind
from cowrite.rooms.wire import node_to_wire
from cowrite.server import rest, rest_history
from cowrite.server.auth import anonymous_id
from cowrite.server.openapi import spec


class Clock:
    """A document clock the test moves on, so that each edit is its own listed version."""

    def __init__(self) -> None:
        self.t = time.time_ns() // 1_000_000

    def __call__(self) -> int:
        return self.t

    def step(self) -> None:
        self.t += 10_000


@pytest.fixture
async def http(server: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        yield client


def error_of(response: httpx.Response) -> str:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    code: str = body["error"]["code"]
    return code


async def joined(server: Any, raw: Any, doc: str, client_id: str, **join: Any) -> Any:
    c = await raw(server.ws_url, client_id)
    await c.send({"type": "join", "doc": doc, **join})
    c.joined = await c.expect("joined")
    return c


def clocked(server: Any, doc: str) -> Clock:
    clock = Clock()
    server.state.hub.rooms[doc].room.doc.now_ms = clock
    return clock


class Editor:
    """A thin client that keeps its version and sends one edit at a time."""

    def __init__(self, client: Any, doc: str) -> None:
        self.c = client
        self.doc = doc
        self.version = client.joined["version"]
        self.n = 0

    async def edit(self, *ops: dict[str, Any]) -> dict[str, Any]:
        self.n += 1
        await self.c.send(
            {
                "type": "edit",
                "doc": self.doc,
                "edit_id": f"e{self.n}",
                "version": self.version,
                "ops": list(ops),
            }
        )
        ack: dict[str, Any] = await self.c.expect("ack")
        self.version = ack["version"]
        return ack


def seq(node: str, *edit: Any) -> dict[str, Any]:
    return {"type": "seq", "node": node, "edit": list(edit)}


# ------------------------------------------------------------------------------ documents


async def test_create_list_get_rename_delete(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/documents", json={"id": "notes", "title": "My notes"})
    assert r.status_code == 201
    assert r.json()["id"] == "notes" and r.json()["title"] == "My notes"
    r = await http.post("/api/documents", json={"id": "untitled"})
    assert r.status_code == 201 and r.json()["title"] == "untitled"
    r = await http.post("/api/documents", json={"id": "notes"})
    assert r.status_code == 409 and error_of(r) == "exists"

    r = await http.get("/api/documents/notes")
    body = r.json()
    assert r.status_code == 200
    assert body["title"] == "My notes" and body["version"] == 0 and body["value"] == {}

    r = await http.patch("/api/documents/notes", json={"title": "Renamed"})
    assert r.status_code == 200 and r.json()["title"] == "Renamed"
    assert (await http.get("/api/documents/notes")).json()["title"] == "Renamed"

    r = await http.delete("/api/documents/notes")
    assert r.status_code == 204
    for method in ("GET", "DELETE"):
        r = await http.request(method, "/api/documents/notes")
        assert r.status_code == 404 and error_of(r) == "unknown_document"
    r = await http.patch("/api/documents/notes", json={"title": "x"})
    assert r.status_code == 404 and error_of(r) == "unknown_document"


async def test_list_is_paginated_by_id(http: httpx.AsyncClient) -> None:
    for i in (3, 1, 5, 2, 4):
        assert (await http.post("/api/documents", json={"id": f"d{i}"})).status_code == 201
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        params = {"limit": "2"} | ({"after": after} if after else {})
        body = (await http.get("/api/documents", params=params)).json()
        seen += [d["id"] for d in body["documents"]]
        pages += 1
        after = body["next"]
        if after is None:
            break
    assert seen == ["d1", "d2", "d3", "d4", "d5"] and pages == 3
    body = (await http.get("/api/documents")).json()
    assert [d["id"] for d in body["documents"]] == seen and body["next"] is None
    body = (await http.get("/api/documents", params={"limit": 5})).json()
    assert len(body["documents"]) == 5 and body["next"] is None


async def _all_pages(http: httpx.AsyncClient, **params: str) -> tuple[list[str], int]:
    seen: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        body = (
            await http.get("/api/documents", params=params | ({"after": after} if after else {}))
        ).json()
        seen += [d["id"] for d in body["documents"]]
        pages += 1
        after = body["next"]
        if after is None:
            return seen, pages


async def test_list_searches_titles_and_ids(
    http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = {
        "a1": "Weekly notes",
        "b2": "Budget 2027",
        "c3": "weekly REVIEW",
        "d4": "Plan",
        "wk": "",
    }
    for doc_id, title in docs.items():
        assert (
            await http.post("/api/documents", json={"id": doc_id, "title": title})
        ).status_code == 201
    found = (await http.get("/api/documents", params={"q": "WEEKLY"})).json()
    assert [d["id"] for d in found["documents"]] == ["a1", "c3"] and found["next"] is None
    assert (await _all_pages(http, q="weekly", limit="1")) == (["a1", "c3"], 2)
    assert (await _all_pages(http, q="b2"))[0] == ["b2"]  # ids match too
    assert (await _all_pages(http, q="zzz"))[0] == []
    # a search reads a bounded number of documents per request; ``next`` goes on from there
    monkeypatch.setattr(rest, "SEARCH_SCAN", 2)
    first = (await http.get("/api/documents", params={"q": "plan"})).json()
    assert first == {"documents": [], "next": "b2"}
    assert (await _all_pages(http, q="plan")) == (["d4"], 3)
    r = await http.get("/api/documents", params={"q": "x" * 201})
    assert r.status_code == 400 and error_of(r) == "bad_request"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/api/documents", {"params": {"limit": "x"}}, 400, "bad_request"),
        ("GET", "/api/documents", {"params": {"limit": "0"}}, 400, "bad_request"),
        ("GET", "/api/documents", {"params": {"limit": "5000"}}, 400, "bad_request"),
        ("GET", "/api/documents", {"params": {"after": "a b"}}, 400, "bad_request"),
        ("POST", "/api/documents", {"content": b"{nope"}, 400, "bad_request"),
        ("POST", "/api/documents", {"json": []}, 400, "bad_request"),
        ("POST", "/api/documents", {"json": {"title": "no id"}}, 400, "bad_request"),
        ("POST", "/api/documents", {"json": {"id": "bad id!"}}, 400, "bad_request"),
        ("POST", "/api/documents", {"json": {"id": "x" * 129}}, 400, "bad_request"),
        ("POST", "/api/documents", {"json": {"id": "a", "title": 3}}, 400, "bad_request"),
        ("POST", "/api/documents", {"json": {"id": "a", "extra": 1}}, 400, "bad_request"),
        ("POST", "/api/documents", {"json": {"id": "a", "title": "t" * 1001}}, 400, "bad_request"),
        ("POST", "/api/documents", {"content": b" " * 70_000}, 413, "too_large"),
        ("PATCH", "/api/documents/a", {"json": {}}, 400, "bad_request"),
        ("GET", "/api/documents/bad%20id", {}, 400, "bad_request"),
        ("GET", "/api/documents/missing", {}, 404, "unknown_document"),
        ("GET", "/api/documents/missing/json", {}, 404, "unknown_document"),
        ("GET", "/api/documents/missing/versions", {}, 404, "unknown_document"),
        ("GET", "/api/documents/missing/chat", {}, 404, "unknown_document"),
        (
            "POST",
            "/api/documents/missing/restore",
            {"json": {"version": 0}},
            404,
            "unknown_document",
        ),
        ("GET", "/api/nothing/here", {}, 404, "not_found"),
        ("PUT", "/api/documents", {}, 405, "method_not_allowed"),
        ("POST", "/api/documents/a/json", {}, 405, "method_not_allowed"),
    ],
)
async def test_invalid_requests_get_json_errors(
    http: httpx.AsyncClient, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    r = await http.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert error_of(r) == code
    if status == 405:
        assert r.headers["allow"]


async def test_status(http: httpx.AsyncClient) -> None:
    body = (await http.get("/api/status")).json()
    assert body["connections"] == 0 and body["auth"] is False and "uptime_s" in body


# ---------------------------------------------------------------------------------- values


async def test_json_and_text_of_a_document(server: Any, raw: Any, http: httpx.AsyncClient) -> None:
    a = Editor(await joined(server, raw, "d", "a", create=True), "d")
    await a.edit(seq("text:body", "héllo 👋"), {"type": "add", "node": "counter:n", "amount": 2})
    r = await http.get("/api/documents/d/json")
    assert r.status_code == 200 and r.json() == {"body": "héllo 👋", "n": 2}
    r = await http.get("/api/documents/d/text/body")
    assert r.status_code == 200 and r.text == "héllo 👋"
    assert r.headers["content-type"].startswith("text/plain")
    r = await http.get("/api/documents/d/text/n")  # a counter, not a text
    assert r.status_code == 404 and error_of(r) == "unknown_node"
    r = await http.get("/api/documents/d/text/nothing")
    assert r.status_code == 404 and error_of(r) == "unknown_node"
    r = await http.get(f"/api/documents/d/text/{'x' * 101}")
    assert r.status_code == 400


# -------------------------------------------------------------------------------- history


async def make_history(server: Any, raw: Any) -> tuple[Editor, list[str]]:
    """Document "d" with versions 0..3 of text:t; returns the texts at each version."""
    a = Editor(await joined(server, raw, "d", "a", create=True), "d")
    clock = clocked(server, "d")
    texts: list[str] = []
    steps: list[list[Any]] = [["hello"], [5, " world"], [-6], [5, "!"]]
    for ops in steps:
        await a.edit(seq("text:t", *ops))
        clock.step()
        texts.append(ot.apply(texts[-1] if texts else "", ops))
    assert texts == ["hello", "hello world", "world", "world!"]
    return a, texts


async def test_versions_listed_paginated_and_readable(
    server: Any, raw: Any, http: httpx.AsyncClient
) -> None:
    _, texts = await make_history(server, raw)
    body = (await http.get("/api/documents/d/versions")).json()
    listed = body["versions"]
    assert [v["id"] for v in listed] == [1, 2, 3, 4] and body["next"] is None
    [author] = listed[0]["authors"]  # the connection's user (no key: an id of its own)
    assert author["id"] and all(v["authors"] == [author] for v in listed)
    assert all(v["how"] == "typed" and v["available"] and v["name"] is None for v in listed)
    assert [v["size"] for v in listed] == [5, 6, 6, 1]  # characters inserted, deletions
    times = [v["time_ms"] for v in listed]
    assert times == sorted(times) and all(isinstance(t, int) for t in times)

    page1 = (await http.get("/api/documents/d/versions", params={"limit": 3})).json()
    assert [v["id"] for v in page1["versions"]] == [1, 2, 3] and page1["next"] == 3
    page2 = (await http.get("/api/documents/d/versions", params={"after": 3})).json()
    assert [v["id"] for v in page2["versions"]] == [4] and page2["next"] is None

    for i, text in enumerate(texts, 1):
        r = await http.get(f"/api/documents/d/versions/{i}")
        assert r.status_code == 200
        assert r.json()["value"] == {"t": text} and r.json()["id"] == i
        assert r.json()["version"]["id"] == i
    empty = (await http.get("/api/documents/d/versions/0")).json()
    assert empty == {"id": 0, "version": None, "value": {"t": ""}}
    r = await http.get("/api/documents/d/versions/5")
    assert r.status_code == 404 and error_of(r) == "unknown_version"
    r = await http.get("/api/documents/d/versions/-1")
    assert r.status_code == 400 and error_of(r) == "bad_request"
    r = await http.get("/api/documents/d/versions", params={"after": "x"})
    assert r.status_code == 400


async def test_diff_between_versions(server: Any, raw: Any, http: httpx.AsyncClient) -> None:
    _, texts = await make_history(server, raw)
    body = (await http.get("/api/documents/d/diff", params={"from": 1, "to": 3})).json()
    assert body["from"] == 1 and body["to"] == 3
    [change] = body["changes"]
    assert change["node"] == "text:t" and change["kind"] == "text" and change["path"] == ["t"]
    assert ot.apply(texts[0], change["delta"]) == texts[2]
    # "to" defaults to the latest
    body = (await http.get("/api/documents/d/diff", params={"from": 2})).json()
    assert body["to"] == 4 and ot.apply(texts[1], body["changes"][0]["delta"]) == texts[3]
    body = (await http.get("/api/documents/d/diff", params={"from": 3, "to": 3})).json()
    assert body["changes"] == []
    cases: list[tuple[dict[str, Any], int]] = [
        ({}, 400),
        ({"from": "a"}, 400),
        ({"from": 1, "to": "b"}, 400),
        ({"from": 9}, 404),
        ({"from": 1, "to": 9}, 404),
    ]
    for params, status in cases:
        r = await http.get("/api/documents/d/diff", params=params)
        assert r.status_code == status, params


async def test_diff_of_maps_counters_and_nested_nodes(
    server: Any, raw: Any, http: httpx.AsyncClient
) -> None:
    a = Editor(await joined(server, raw, "d", "a", create=True), "d")
    clock = clocked(server, "d")
    ack = await a.edit({"type": "set", "node": "map:m", "key": "body", "value": {"$new": "text"}})
    body_id = ack["created"][0]
    clock.step()
    await a.edit(
        seq(body_id, "inner"),
        {"type": "set", "node": "map:m", "key": "k", "value": 1},
        {"type": "add", "node": "counter:c", "amount": 4},
    )
    r = await http.get("/api/documents/d/diff", params={"from": 1, "to": 2})
    changes = {tuple(c["path"]): c for c in r.json()["changes"]}
    assert changes[("m", "body")]["node"] == body_id
    assert changes[("m", "body")]["delta"] == ["inner"]
    [span] = changes[("m", "body")]["spans"]
    assert span["op"] == "insert" and span["text"] == "inner" and span["by"] == 2
    assert changes[("m", "k")] | {"delta": []} == {
        "node": "map:m",
        "kind": "map",
        "path": ["m", "k"],
        "delta": [],
        "before": None,
        "after": 1,
        "spans": None,  # (text and list nodes only)
    }
    assert changes[("c",)]["before"] == 0 and changes[("c",)]["after"] == 4


# -------------------------------------------------------------------------------- restore


async def test_restore_is_live_for_connected_clients(
    server: Any, raw: Any, http: httpx.AsyncClient
) -> None:
    a, texts = await make_history(server, raw)
    b = await joined(server, raw, "d", "b")
    text_b = b.joined["snapshot"]["text:t"]["value"]
    assert text_b == texts[-1]
    r = await http.post("/api/documents/d/restore", json={"version": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["restored"] == 2 and body["edits"] == 1 and body["version"] == a.version + 1
    remote = await b.expect("remote")
    assert remote["client_id"] == "server" and remote["version"] == body["version"]
    for op in remote["ops"]:
        text_b = ot.apply(text_b, op["edit"])
    assert text_b == texts[1] == "hello world"
    stored = await server.state.store.load("d")
    assert stored.last_seq == body["version"]  # durable before the response
    remote_a = await a.c.expect("remote")
    assert remote_a["version"] == body["version"]
    assert (await http.get("/api/documents/d/text/t")).text == texts[1]
    # a restore is new history: the latest version is now the restored value
    versions = (await http.get("/api/documents/d/versions")).json()["versions"]
    last = (await http.get(f"/api/documents/d/versions/{versions[-1]['id']}")).json()
    assert last["value"] == {"t": texts[1]}
    assert versions[-1]["how"] == "restored" and versions[-1]["restored_from"] == 2
    assert versions[-1]["authors"] == [{"id": "anonymous", "name": ""}]  # (no auth: no name)
    # the old versions are all still there
    for i, text in enumerate(texts, 1):
        assert (await http.get(f"/api/documents/d/versions/{i}")).json()["value"] == {"t": text}
    # a stale client edit made before the restore is rebased over it
    await a.edit(seq("text:t", 5, ","))
    # (inserted after "world" of "world!", which is now "hello world")
    assert server.state.hub.rooms["d"].room.doc.to_json()["t"] == "hello world,"


async def test_restore_of_the_current_value_changes_nothing(
    server: Any, raw: Any, http: httpx.AsyncClient
) -> None:
    a, _ = await make_history(server, raw)
    r = await http.post("/api/documents/d/restore", json={"version": 4})
    assert r.json() == {"restored": 4, "version": a.version, "edits": 0}


@pytest.mark.parametrize(
    ("headers", "author"),
    [
        (
            {"X-Cowrite-Key": "k" * 32, "X-Cowrite-Name": "Zo%C3%AB%20%F0%9F%98%80"},
            {"id": anonymous_id("k" * 32, ""), "name": "Zoë 😀"},
        ),
        ({"X-Cowrite-Key": "k" * 32}, {"id": anonymous_id("k" * 32, ""), "name": ""}),
        # garbage: too short or long a key, a name that is not UTF-8, too long, or a control
        ({"X-Cowrite-Key": "short", "X-Cowrite-Name": "Ada"}, {"id": "anonymous", "name": ""}),
        ({"X-Cowrite-Key": "k" * 129}, {"id": "anonymous", "name": ""}),
        (
            {"X-Cowrite-Key": "k" * 16, "X-Cowrite-Name": "%FF%FE"},
            {"id": anonymous_id("k" * 16, ""), "name": ""},
        ),
        (
            {"X-Cowrite-Key": "k" * 16, "X-Cowrite-Name": "x" * 101},
            {"id": anonymous_id("k" * 16, ""), "name": ""},
        ),
        (
            {"X-Cowrite-Key": "k" * 16, "X-Cowrite-Name": "a%0Ab"},
            {"id": anonymous_id("k" * 16, ""), "name": ""},
        ),
    ],
)
async def test_without_auth_a_restore_is_by_whoever_the_caller_says(
    server: Any, raw: Any, http: httpx.AsyncClient, headers: dict[str, str], author: Any
) -> None:
    """The web page names its user as its WebSocket hello does (key and name), so that the
    version history shows who restored: the same user id as their typed versions."""
    await make_history(server, raw)
    r = await http.post("/api/documents/d/restore", json={"version": 2}, headers=headers)
    assert r.status_code == 200, r.text
    versions = (await http.get("/api/documents/d/versions")).json()["versions"]
    assert versions[-1]["how"] == "restored" and versions[-1]["authors"] == [author]


async def test_restore_answers_503_unless_durable(
    server: Any, raw: Any, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_history(server, raw)
    store = server.state.store
    real_append = store.append_update

    async def broken(*args: Any, **kwargs: Any) -> int:
        raise RuntimeError("disk on fire")

    async def down(*args: Any, **kwargs: Any) -> int:
        raise StoreUnavailable("database restarting")

    monkeypatch.setattr(store, "append_update", broken)  # refused: never durable
    r = await http.post("/api/documents/d/restore", json={"version": 1})
    assert r.status_code == 503 and error_of(r) == "unavailable"
    stored_before = (await store.load("d")).last_seq
    monkeypatch.setattr(store, "append_update", down)  # retried: not durable in time
    monkeypatch.setattr(rest_history, "RESTORE_TIMEOUT_S", 0.3)
    r = await http.post("/api/documents/d/restore", json={"version": 2})
    assert r.status_code == 503 and error_of(r) == "unavailable"
    monkeypatch.setattr(store, "append_update", real_append)  # back: the retry goes through
    await server.state.hub.rooms["d"].queue.join()
    assert (await store.load("d")).last_seq == stored_before + 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"version": 99}, 404, "unknown_version"),
        ({"version": -1}, 400, "bad_request"),
        ({"version": "1"}, 400, "bad_request"),
        ({}, 400, "bad_request"),
        ({"version": 1, "to": 2}, 400, "bad_request"),
    ],
)
async def test_restore_rejects_bad_requests(
    server: Any, raw: Any, http: httpx.AsyncClient, body: Any, status: int, code: str
) -> None:
    await make_history(server, raw)
    r = await http.post("/api/documents/d/restore", json=body)
    assert r.status_code == status and error_of(r) == code


async def test_restore_rebuilds_maps_lists_registers_counters_and_nested_nodes(
    server: Any, raw: Any, http: httpx.AsyncClient
) -> None:
    a = Editor(await joined(server, raw, "d", "a", create=True), "d")
    clock = clocked(server, "d")
    room = server.state.hub.rooms["d"].room
    doc = room.doc
    ack = await a.edit(
        {"type": "set", "node": "map:m", "key": "title", "value": "A"},
        {"type": "set", "node": "map:m", "key": "body", "value": {"$new": "text"}},
        {"type": "set", "node": "map:m", "key": "gone", "value": [1, 2]},
        seq("list:items", [{"$new": "map"}, 7, {"$new": "list"}]),
        {"type": "add", "node": "counter:c", "amount": 5},
        {"type": "set", "node": "register:r", "value": {"x": 1}},
    )
    body_id = ack["created"][0]
    items = doc.sequence(doc.root(NodeKind.LIST, "items"))
    item_map = node_to_wire(doc, items.id_at(0))
    item_list = node_to_wire(doc, items.id_at(2))
    clock.step()
    ack = await a.edit(
        seq(body_id, "nested text"),
        {"type": "set", "node": item_map, "key": "deep", "value": {"$new": "counter"}},
        seq(item_list, ["a", {"$new": "text"}]),
    )
    deep = node_to_wire(doc, doc.state_of(items.id_at(0)).entries["deep"].value.id)
    inner_text = node_to_wire(doc, doc.sequence(items.id_at(2)).id_at(1))
    clock.step()
    await a.edit(
        {"type": "add", "node": deep, "amount": 3},
        seq(inner_text, "deepest"),
        {"type": "del", "node": "map:m", "key": "gone"},
    )
    clock.step()
    target = history.versions(doc)[-1]
    target_id = a.version
    expected = doc.to_json()
    assert expected == {
        "c": 5,
        "items": [{"deep": 3}, 7, ["a", "deepest"]],
        "m": {"body": "nested text", "title": "A"},
        "r": {"x": 1},
    }
    # now wreck it
    await a.edit(
        {"type": "set", "node": "map:m", "key": "title", "value": "B"},
        {"type": "set", "node": "map:m", "key": "body", "value": "plain now"},
        {"type": "set", "node": "map:m", "key": "new", "value": True},
        seq("list:items", -1, 1, -1, [{"x": 1}]),
        {"type": "add", "node": "counter:c", "amount": -12},
        {"type": "set", "node": "register:r", "value": 2},
    )
    clock.step()
    await a.edit(seq("text:fresh", "a root created later"))
    assert doc.to_json() != expected
    observer = await joined(server, raw, "d", "observer")
    snapshot = observer.joined["snapshot"]
    r = await http.post("/api/documents/d/restore", json={"version": target_id})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["edits"] >= 2  # nested nodes are filled in a second batch
    got = doc.to_json()
    assert got == {**expected, "fresh": ""}
    assert got == history.value_at(doc, target.version) | {"fresh": ""}
    # every batch reached the observer, in order
    versions = [(await observer.expect("remote"))["version"] for _ in range(body["edits"])]
    assert versions == list(range(body["version"] - body["edits"] + 1, body["version"] + 1))
    assert snapshot  # the observer had the pre-restore state before the remotes


# -------------------------------------------------------------------------------- delete


async def test_delete_removes_connected_members(
    server: Any, raw: Any, http: httpx.AsyncClient
) -> None:
    a = Editor(await joined(server, raw, "d", "a", create=True), "d")
    await a.edit(seq("text:t", "doomed"))
    b = await joined(server, raw, "d", "b")
    other = await joined(server, raw, "keep", "b2", create=True)  # another document
    r = await http.delete("/api/documents/d")
    assert r.status_code == 204
    for c in (a.c, b):
        err = await c.expect("error")
        assert err["code"] == "unknown_document" and err["doc"] == "d"
    assert "d" not in server.state.hub.rooms
    await a.c.send(
        {
            "type": "edit",
            "doc": "d",
            "edit_id": "x",
            "version": a.version,
            "ops": [seq("text:t", "?")],
        }
    )
    assert (await a.c.expect("error"))["code"] == "not_joined"
    await a.c.send({"type": "join", "doc": "d"})
    assert (await a.c.expect("error"))["code"] == "unknown_document"
    assert (await http.get("/api/documents/d")).status_code == 404
    assert (await http.get("/api/documents/keep")).status_code == 200
    keep = Editor(other, "keep")
    assert (await keep.edit(seq("text:t", "still here")))["version"] == 1


# ----------------------------------------------------------------------------------- chat


async def test_chat_history_is_paginated(server: Any, raw: Any, http: httpx.AsyncClient) -> None:
    a = await joined(server, raw, "d", "a", create=True)
    for i in range(3):
        await a.send({"type": "chat_send", "doc": "d", "text": f"m{i}"})
        await a.expect("chat")
    body = (await http.get("/api/documents/d/chat", params={"limit": 2})).json()
    assert [m["text"] for m in body["messages"]] == ["m2", "m1"] and body["has_more"] is True
    before = body["messages"][-1]["id"]
    body = (await http.get("/api/documents/d/chat", params={"before": before})).json()
    assert [m["text"] for m in body["messages"]] == ["m0"] and body["has_more"] is False
    body = (await http.get("/api/documents/d/chat")).json()
    assert len(body["messages"]) == 3
    assert set(body["messages"][0]) >= {"id", "author_id", "author_name", "text", "created_ms"}
    for params in ({"limit": 0}, {"limit": 201}, {"before": 0}, {"before": "x"}):
        r = await http.get("/api/documents/d/chat", params=params)
        assert r.status_code == 400 and error_of(r) == "bad_request"


# -------------------------------------------------------------------------------- openapi


async def test_openapi_is_valid_and_served(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/openapi.json")
    assert r.status_code == 200
    document = r.json()
    assert document["openapi"].startswith("3.1") and document["servers"] == [{"url": "/"}]
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)


def test_every_route_is_in_the_openapi_spec_and_vice_versa(server: Any) -> None:
    routes = rest.routes(server.state)
    described = {
        (path, method.upper())
        for path, operations in spec()["paths"].items()
        for method in operations
    }
    served = {
        ("/api" + route.path, method)
        for route in routes
        if route.name != rest.FALLBACK
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert served == described
    assert routes[-1].name == rest.FALLBACK
