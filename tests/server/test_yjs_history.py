"""Version history of Yjs documents over a real server: versions listed with author and time,
values and diffs at versions, restore broadcast to a connected Yjs client and durable across a
restart, named versions surviving folding and retention, garbage input. Clients are real: the
SDK's ``open_yjs`` (Hocuspocus over a WebSocket) and the pycrdt Hocuspocus peer of
``test_yjs_server``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pycrdt
import pytest

import cowrite
from cowrite.client import History, HistoryError
from cowrite.server.config import Settings

from .conftest import RunningServer, start_server
from .test_history import SECRET, client, listed, token, until

DOC = "rich"


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(secret=SECRET, unload_after_s=0.2, snapshot_every=2)


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with client(server) as c:
        yield c


def text(ydoc: Any) -> pycrdt.Text:
    t: pycrdt.Text = ydoc.doc.get("t", type=pycrdt.Text)
    return t


async def edit(ydoc: Any, change: Callable[[], None]) -> None:
    """One local transaction, saved on the server."""
    with ydoc.doc.transaction():
        change()
    await ydoc.saved(timeout_s=20)


async def newest(http: httpx.AsyncClient, doc: str = DOC) -> dict[str, Any]:
    return (await listed(http, doc))[-1]


async def at(http: httpx.AsyncClient, version: int, doc: str = DOC) -> dict[str, Any]:
    r = await http.get(f"/api/documents/{doc}/versions/{version}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def write_history(server: RunningServer, http: httpx.AsyncClient) -> dict[int, str]:
    """Ann writes, Bob appends, Ann deletes and retypes: the text at each version."""
    url = server.url
    texts: dict[int, str] = {}
    async with (
        cowrite.open_yjs(url, DOC, token=token("ann")) as ann,
        cowrite.open_yjs(url, DOC, token=token("bob")) as bob,
    ):
        await edit(ann, lambda: text(ann).insert(0, "hello"))
        texts[(await newest(http))["id"]] = "hello"
        await until(_now(lambda: str(text(bob)) == "hello"), "bob has ann's text")
        await edit(bob, lambda: text(bob).insert(5, " world"))
        texts[(await newest(http))["id"]] = "hello world"
        await until(_now(lambda: str(text(ann)) == "hello world"), "ann has bob's text")
        await edit(ann, lambda: text(ann).__delitem__(slice(0, 6)))
        texts[(await newest(http))["id"]] = "world"
        await edit(ann, lambda: text(ann).insert(5, "!"))
        texts[(await newest(http))["id"]] = "world!"
    return texts


def _now(check: Callable[[], bool]) -> Callable[[], Any]:
    async def run() -> bool:
        return check()

    return run


def _unloaded(server: RunningServer, doc: str = DOC) -> Callable[[], Any]:
    return _now(lambda: doc not in server.state.hub.rooms)


async def test_versions_values_and_diffs_with_authors_survive_a_restart(
    settings: Settings,
) -> None:
    server, task = await start_server(settings)
    before_ms = int(time.time()) * 1000  # times are stored to the second (rounded down)
    try:
        async with client(server) as http:
            texts = await write_history(server, http)
            versions = {v["id"]: v for v in await listed(http, DOC)}
            # the newest two, then the ones before them (the history panel's order)
            newest = sorted(versions)
            r = await http.get(
                f"/api/documents/{DOC}/versions", params={"before": 2**63 - 1, "limit": 2}
            )
            assert [v["id"] for v in r.json()["versions"]] == newest[-2:]
            assert r.json()["older"] == newest[-2] and r.json()["next"] is None
            r = await http.get(
                f"/api/documents/{DOC}/versions", params={"before": newest[-2], "limit": 2}
            )
            assert [v["id"] for v in r.json()["versions"]] == newest[-4:-2]
            assert [versions[v]["authors"][0]["id"] for v in sorted(texts)] == [
                "ann",
                "bob",
                "ann",
                "ann",
            ]
            for v in texts:
                assert versions[v]["time_ms"] >= before_ms and versions[v]["how"] == "typed"
                assert versions[v]["available"] and versions[v]["size"] > 0
            for v, want in texts.items():
                body = await at(http, v)
                assert body["value"]["t"] == want and body["types"] == {"t": "text"}
            assert (await at(http, 0))["value"] == {}
            _, first, _, last = sorted(texts)  # from "hello world" to "world!"
            r = await http.get(f"/api/documents/{DOC}/diff", params={"from": first})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["from"] == first and body["to"] == last
            [change] = body["changes"]
            assert change["node"] == "text:t" and change["path"] == ["t"]
            assert change["delta"] == [-6, 5, "!"]
            spans = [
                (s["op"], s["text"], s["authors"][0]["id"])
                for s in change["spans"]
                if s["op"] != "retain"
            ]
            assert spans == [("delete", "hello ", "ann"), ("insert", "!", "ann")]
            await until(_unloaded(server), "the document unloads (snapshot with its history)")
            stored = await server.state.store.load(DOC)
            assert stored is not None and stored.snapshot is not None
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)
        server, task = await start_server(settings)
        async with client(server) as http:
            assert {v["id"] for v in await listed(http, DOC)} >= set(texts)
            for v, want in texts.items():
                assert (await at(http, v))["value"]["t"] == want
            r = await http.get(f"/api/documents/{DOC}/diff", params={"from": first, "to": last})
            assert r.json()["changes"][0]["delta"] == [-6, 5, "!"]
    finally:
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_restore_reaches_a_connected_client_and_is_durable(settings: Settings) -> None:
    server, task = await start_server(settings)
    try:
        async with client(server, "bob") as http:
            texts = await write_history(server, http)
            first = min(texts)
            async with cowrite.open_yjs(server.url, DOC, token=token("cy")) as watcher:
                assert str(text(watcher)) == "world!"
                r = await http.post(f"/api/documents/{DOC}/restore", json={"version": first})
                assert r.status_code == 200, r.text
                out = r.json()
                assert out["restored"] == first and out["edits"] == 1
                # durable before the answer, then broadcast to the connected Yjs client
                await until(_now(lambda: str(text(watcher)) == "hello"), "the client sees it")
                latest = await newest(http)
                assert latest["id"] == out["version"] and latest["how"] == "restored"
                assert latest["restored_from"] == first
                assert latest["authors"] == [{"id": "bob", "name": "Bob"}]
                # restoring the version before it undoes the restore, as one step
                r = await http.post(
                    f"/api/documents/{DOC}/restore", json={"version": out["version"] - 1}
                )
                assert r.status_code == 200 and r.json()["edits"] == 1
                await until(_now(lambda: str(text(watcher)) == "world!"), "undone live")
                r = await http.post(f"/api/documents/{DOC}/restore", json={"version": first})
                assert r.status_code == 200
                # restoring the current value changes nothing
                r = await http.post(f"/api/documents/{DOC}/restore", json={"version": first})
                assert r.status_code == 200 and r.json()["edits"] == 0
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)
        server, task = await start_server(settings)
        async with client(server) as http:
            r = await http.get(f"/api/documents/{DOC}/yjs/roots/t", params={"as": "text"})
            assert r.text == "hello"
    finally:
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_named_versions_survive_folding_and_retention(
    make_settings: Callable[..., Settings],
) -> None:
    # every version is older than the window at once: the snapshot folds the whole log
    settings = make_settings(
        secret=SECRET, unload_after_s=0.2, snapshot_every=1, history_keep_all_s=0.0
    )
    server, task = await start_server(settings)
    try:
        async with client(server) as http:
            texts = await write_history(server, http)
            one, two, three, four = sorted(texts)
            r = await http.post(
                f"/api/documents/{DOC}/versions", json={"name": "v2", "version": two}
            )
            assert r.status_code == 200 and r.json()["name"] == "v2" and r.json()["available"]
            await until(_unloaded(server), "the document unloads (snapshot folds its log)")

            async def folded() -> bool:
                rows = {v["id"]: v for v in await listed(http, DOC)}
                return one not in rows or not rows[one]["available"]

            await until(folded, "the log folds and retention thins the list")
            rows = {v["id"]: v for v in await listed(http, DOC)}
            assert rows[two]["name"] == "v2" and rows[two]["available"]
            assert (await at(http, two))["value"]["t"] == texts[two]
            for gone in (one, three):
                r = await http.get(f"/api/documents/{DOC}/versions/{gone}")
                assert r.status_code == 410, r.text
                assert r.json()["error"]["code"] == "history_unavailable"
            r = await http.patch(f"/api/documents/{DOC}/versions/{one}", json={"name": "late"})
            assert r.status_code == 410
            r = await http.post(f"/api/documents/{DOC}/restore", json={"version": two})
            assert r.status_code == 200 and r.json()["edits"] == 1
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)
        server, task = await start_server(settings)
        async with client(server) as http:
            assert (await at(http, two))["value"]["t"] == texts[two]
            r = await http.get(f"/api/documents/{DOC}/yjs/roots/t", params={"as": "text"})
            assert r.text == texts[two]
            _ = four
    finally:
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_the_sdk_history_reads_and_restores_a_yjs_document(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    texts = await write_history(server, http)
    history = History(server.url, DOC, token=token("ann"))
    versions = [v async for v in history.all_versions()]
    assert {v.id for v in versions} >= set(texts)
    first = min(texts)
    value = await history.value_at(first)
    assert value.value == {"t": "hello"} and value.types == {"t": "text"}
    changes = (await history.diff(sorted(texts)[1])).changes
    assert changes[0].delta == [-6, 5, "!"]
    named = await history.name("draft", first)
    assert named.name == "draft"
    out = await history.restore(first)
    assert out.edits == 1
    assert (await history.value_at(out.version)).value == {"t": "hello"}
    with pytest.raises(HistoryError) as info:
        await history.value_at(10_000)
    assert info.value.status == 404 and info.value.code == "unknown_version"


async def test_maps_and_xml_fragments_have_values_diffs_and_restores(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    async with cowrite.open_yjs(server.url, DOC, token=token("ann")) as ydoc:
        body = ydoc.doc.get("default", type=pycrdt.XmlFragment)
        meta = ydoc.doc.get("meta", type=pycrdt.Map)

        def first() -> None:
            body.children.append(pycrdt.XmlElement("paragraph", None, [pycrdt.XmlText("One")]))
            meta["state"] = "draft"

        await edit(ydoc, first)
        v1 = (await newest(http))["id"]

        def second() -> None:
            body.children.append(pycrdt.XmlElement("paragraph", None, [pycrdt.XmlText("Two")]))
            meta["state"] = "final"

        await edit(ydoc, second)
        value = await at(http, v1)
        assert value["value"] == {
            "default": "<paragraph>One</paragraph>",
            "meta": {"state": "draft"},
        }
        assert value["types"] == {"default": "xml", "meta": "map"}
        r = await http.get(f"/api/documents/{DOC}/diff", params={"from": v1})
        changes = {c["node"]: c for c in r.json()["changes"]}
        assert changes["xml:default"]["delta"] == [26, "<paragraph>Two</paragraph>"]
        assert changes["map:meta"]["path"] == ["meta", "state"]
        assert (changes["map:meta"]["before"], changes["map:meta"]["after"]) == ("draft", "final")
        assert changes["map:meta"]["spans"][0]["authors"][0]["id"] == "ann"
        r = await http.post(f"/api/documents/{DOC}/restore", json={"version": v1})
        assert r.status_code == 200, r.text
        await until(_now(lambda: meta.get("state") == "draft"), "the map is restored live")
        assert str(body) == "<paragraph>One</paragraph>"


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", f"/api/documents/{DOC}/versions/99", {}, 404, "unknown_version"),
        ("GET", f"/api/documents/{DOC}/versions/x", {}, 400, "bad_request"),
        ("GET", f"/api/documents/{DOC}/versions", {"params": {"limit": "0"}}, 400, "bad_request"),
        ("GET", f"/api/documents/{DOC}/versions", {"params": {"before": "0"}}, 400, "bad_request"),
        ("GET", f"/api/documents/{DOC}/diff", {}, 400, "bad_request"),
        ("GET", f"/api/documents/{DOC}/diff", {"params": {"from": "x"}}, 400, "bad_request"),
        ("GET", f"/api/documents/{DOC}/diff", {"params": {"from": 99}}, 404, "unknown_version"),
        (
            "POST",
            f"/api/documents/{DOC}/restore",
            {"json": {"version": 99}},
            404,
            "unknown_version",
        ),
        ("POST", f"/api/documents/{DOC}/restore", {"json": {"version": -1}}, 400, "bad_request"),
        ("POST", f"/api/documents/{DOC}/restore", {"content": b"\xff"}, 400, "bad_request"),
        ("POST", f"/api/documents/{DOC}/versions", {"json": {"name": ""}}, 400, "bad_request"),
        (
            "POST",
            f"/api/documents/{DOC}/versions",
            {"json": {"name": "n", "version": 99}},
            404,
            "unknown_version",
        ),
        (
            "PATCH",
            f"/api/documents/{DOC}/versions/0",
            {"json": {"name": "n"}},
            404,
            "unknown_version",
        ),
    ],
)
async def test_bad_requests_get_clear_errors_and_change_nothing(
    server: RunningServer,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    r = await http.post("/api/documents", json={"id": DOC, "kind": "yjs"})
    assert r.status_code == 201, r.text
    async with cowrite.open_yjs(server.url, DOC, token=token("ann")) as ydoc:
        await edit(ydoc, lambda: text(ydoc).insert(0, "kept"))
    before = await listed(http, DOC)
    r = await http.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]
    assert await listed(http, DOC) == before
    r = await http.get(f"/api/documents/{DOC}/yjs/roots/t", params={"as": "text"})
    assert r.text == "kept"


async def test_restoring_a_deleted_document_is_unknown(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    await write_history(server, http)
    assert (await http.delete(f"/api/documents/{DOC}")).status_code in (200, 204)
    for r in (
        await http.post(f"/api/documents/{DOC}/restore", json={"version": 1}),
        await http.get(f"/api/documents/{DOC}/versions/1"),
        await http.get(f"/api/documents/{DOC}/diff", params={"from": 1}),
    ):
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_document"
    # and a restore did not bring it back
    assert (await http.get(f"/api/documents/{DOC}")).status_code == 404


async def test_without_auth_authors_take_the_name_their_awareness_shows(
    make_settings: Callable[..., Settings],
) -> None:
    """No secret: a Yjs client's ``user.name`` in its awareness (what Tiptap's caret shows) names
    its versions, as a native client's hello does; a name that is no string is ignored."""
    server, task = await start_server(make_settings())
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as http:
            async with (
                cowrite.open_yjs(server.url, "anon", awareness={"user": {"name": " Zoë "}}) as zoe,
                cowrite.open_yjs(server.url, "anon", awareness={"user": {"name": 42}}) as odd,
            ):
                await until(_now(lambda: len(zoe.awareness) == 1), "zoe sees the other caret")
                await edit(zoe, lambda: text(zoe).insert(0, "mine"))
                await edit(odd, lambda: text(odd).insert(0, "theirs "))
            versions = await listed(http, "anon")
            names = [v["authors"][0]["name"] for v in versions if v["authors"]]
            assert names[-2] == "Zoë"
            assert names[-1] != "42" and "Zoë" not in names[-1]
    finally:
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)
