"""Durable version history over a real server: versions keep their time and authors across
unload, restart and compaction; named versions survive every compaction; retention; bad input."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pycrdt
import pytest

from cowrite.server.auth import issue
from cowrite.server.config import Settings

from .conftest import RawClient, RunningServer, start_server

SECRET = "history-secret"


def token(user: str) -> str:
    rights = ["read", "write", "admin"]
    return issue(
        SECRET, user, docs={"*": rights}, name=user.title(), expires_at=int(time.time()) + 3600
    )


class Typist:
    """A thin client with a token, one edit in flight at a time."""

    def __init__(self, client: RawClient, doc: str) -> None:
        self.c = client
        self.doc = doc
        self.version = 0
        self.n = 0

    @classmethod
    async def join(cls, server: RunningServer, user: str, doc: str = "d") -> Typist:
        c = await RawClient.connect(server.ws_url, f"c-{user}", token=token(user))
        await c.send({"type": "join", "doc": doc, "create": True})
        t = cls(c, doc)
        t.version = (await c.expect("joined"))["version"]
        return t

    async def edit(self, *edit: Any) -> int:
        self.n += 1
        await self.c.send(
            {
                "type": "edit",
                "doc": self.doc,
                "edit_id": f"e{self.n}",
                "version": self.version,
                "ops": [{"type": "seq", "node": "text:t", "edit": list(edit)}],
            }
        )
        self.version = (
            await self.c.expect("ack", where=lambda m: m.get("edit_id") == f"e{self.n}")
        )["version"]
        return self.version


async def until(check: Callable[[], Awaitable[bool]], what: str, bound_s: float = 20.0) -> None:
    """Wait (bounded, polling) until ``check`` holds: the server works in the background."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)


def client(server: RunningServer, user: str = "ann") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=server.url, timeout=20, headers={"Authorization": f"Bearer {token(user)}"}
    )


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(secret=SECRET, unload_after_s=0.2, snapshot_every=2)


@pytest.fixture
async def http(server: RunningServer) -> AsyncIterator[httpx.AsyncClient]:
    async with client(server) as c:
        yield c


async def listed(http: httpx.AsyncClient, doc: str = "d", **params: Any) -> list[dict[str, Any]]:
    r = await http.get(f"/api/documents/{doc}/versions", params=params)
    assert r.status_code == 200, r.text
    versions: list[dict[str, Any]] = r.json()["versions"]
    return versions


async def value(http: httpx.AsyncClient, version: int, doc: str = "d") -> Any:
    r = await http.get(f"/api/documents/{doc}/versions/{version}")
    assert r.status_code == 200, r.text
    return r.json()["value"]["t"]


async def type_history(server: RunningServer) -> dict[int, str]:
    """Ann and Bob write; returns the text at each version."""
    ann = await Typist.join(server, "ann")
    bob = await Typist.join(server, "bob")
    texts: dict[int, str] = {}
    texts[await ann.edit("hello")] = "hello"
    bob.version = ann.version
    texts[await bob.edit(5, " world")] = "hello world"
    ann.version = bob.version
    texts[await ann.edit(-6)] = "world"
    texts[await ann.edit(5, "!")] = "world!"
    for t in (ann, bob):
        await t.c.close()
    return texts


async def test_versions_keep_time_and_authors_across_unload_and_restart(
    settings: Settings,
) -> None:
    server, task = await start_server(settings)
    before_ms = int(time.time() * 1000) // 1000 * 1000  # times are kept to the second
    async with client(server) as http:
        texts = await type_history(server)
        first = await listed(http)
        assert [v["id"] for v in first] == sorted(texts)
        assert [v["authors"] for v in first] == [
            [{"id": u, "name": u.title()}] for u in ("ann", "bob", "ann", "ann")
        ]
        assert all(v["time_ms"] >= before_ms and v["how"] == "typed" for v in first)
        # unload: nobody in it for unload_after_s
        await until(lambda: _unloaded(server, "d"), "the document unloads")
        assert await listed(http) == first
        for version, text in texts.items():
            assert await value(http, version) == text
    server.server.should_exit = True
    await asyncio.wait_for(task, 20)

    server, task = await start_server(settings)  # the same database
    try:
        async with client(server) as http:
            assert await listed(http) == first
            for version, text in texts.items():
                assert await value(http, version) == text
            r = await http.get("/api/documents/d/diff", params={"from": 1, "to": 3})
            [change] = r.json()["changes"]  # "hello" -> "world"
            assert change["spans"] == [
                {"op": "delete", "count": 5, "text": "hello", "by": 3, "authors": [_ann()]},
                {"op": "insert", "count": 5, "text": "world", "by": 2, "authors": [_bob()]},
            ]
    finally:
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_the_first_history_read_of_a_loaded_document_builds_off_the_event_loop(
    server: RunningServer, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete index is built once, in a worker thread, however many reads wait for it."""
    from cowrite.engine import IndexBuild

    texts = await type_history(server)
    await until(lambda: _unloaded(server, "d"), "the document unloads")
    threads: list[threading.Thread] = []
    run = IndexBuild.run

    def recorded(build: IndexBuild) -> None:
        threads.append(threading.current_thread())
        run(build)

    monkeypatch.setattr(IndexBuild, "run", recorded)
    values = await asyncio.gather(*(value(http, v) for v in texts))  # (loads it, then reads)
    assert values == list(texts.values())
    assert len(threads) == 1 and threads[0] is not threading.current_thread()
    assert await listed(http) and len(threads) == 1  # built: later reads need no pass


def _ann() -> dict[str, str]:
    return {"id": "ann", "name": "Ann"}


def _bob() -> dict[str, str]:
    return {"id": "bob", "name": "Bob"}


async def _unloaded(server: RunningServer, doc: str) -> bool:
    return doc not in server.state.hub.rooms


async def test_diff_names_who_inserted_and_deleted_what(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    await type_history(server)
    r = await http.get("/api/documents/d/diff", params={"from": 0})
    [change] = r.json()["changes"]
    assert [(s["op"], s.get("text"), s.get("by")) for s in change["spans"]] == [
        ("insert", "world", 2),
        ("insert", "!", 4),
    ]
    assert change["spans"][0]["authors"] == [_bob()]
    r = await http.get("/api/documents/d/diff", params={"from": 2, "to": 3})
    [change] = r.json()["changes"]
    deleted = [s for s in change["spans"] if s["op"] == "delete"]
    assert "".join(s["text"] for s in deleted) == "hello "
    assert all(s["by"] == 3 and s["authors"] == [_ann()] for s in deleted)


async def test_named_versions_survive_compaction_and_old_ones_say_so(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        secret=SECRET, unload_after_s=0.2, snapshot_every=2, history_kept_ops=8
    )
    server, task = await start_server(settings)
    try:
        async with client(server) as http:
            ann = await Typist.join(server, "ann")
            await ann.edit("alpha ")
            await ann.edit(6, "beta ")
            await ann.edit(11, "gamma ")
            r = await http.post("/api/documents/d/versions", json={"name": "Draft sent to legal"})
            assert r.status_code == 200, r.text
            named = r.json()
            assert named["id"] == 3 and named["name"] == "Draft sent to legal"
            draft = await value(http, 3)
            assert draft == "alpha beta gamma "
            for _ in range(6):  # much more history than kept: delete and retype
                await ann.edit(-4, "ALPH")
            await ann.c.close()
            await until(lambda: _unloaded(server, "d"), "the document unloads (snapshot)")
            await until(lambda: _compacted(http), "old history is compacted away")
            versions = {v["id"]: v for v in await listed(http)}
            assert versions[3]["available"] and versions[3]["name"] == "Draft sent to legal"
            assert not versions[1]["available"]
            r = await http.get("/api/documents/d/versions/1")
            assert r.status_code == 410 and r.json()["error"]["code"] == "history_unavailable"
            assert await value(http, 3) == draft  # the named one: readable
            r = await http.post("/api/documents/d/restore", json={"version": 1})
            assert r.status_code == 410  # nothing changed
            current = (await http.get("/api/documents/d/text/t")).text
            r = await http.post("/api/documents/d/restore", json={"version": 3})
            assert r.status_code == 200, r.text
            assert (await http.get("/api/documents/d/text/t")).text == draft != current
            named_list = await listed(http, named="true")
            assert [v["id"] for v in named_list] == [3]
            # a restart changes none of it
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)
        server, task = await start_server(settings)
        async with client(server) as http:
            assert await value(http, 3) == draft
            r = await http.patch("/api/documents/d/versions/3", json={"name": "Signed"})
            assert r.status_code == 200 and r.json()["name"] == "Signed"
            r = await http.patch("/api/documents/d/versions/1", json={"name": "Too late"})
            assert r.status_code == 410
    finally:
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def _compacted(http: httpx.AsyncClient) -> bool:
    return not (await listed(http))[0]["available"]


async def test_retention_merges_old_sessions_and_keeps_named_versions(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(
        secret=SECRET, unload_after_s=0.2, snapshot_every=1, history_keep_all_s=0.0
    )
    server, task = await start_server(settings)
    try:
        async with client(server) as http:
            texts = await type_history(server)
            r = await http.post("/api/documents/d/versions", json={"name": "mid", "version": 2})
            assert r.status_code == 200
            await until(lambda: _unloaded(server, "d"), "the document unloads (snapshot)")
            await until(lambda: _thinned(http), "retention merges the session")
            versions = await listed(http)
            assert [v["id"] for v in versions] == [2, 4]
            assert versions[0]["name"] == "mid" and versions[0]["merged"] == 2
            assert versions[1]["merged"] == 2 and versions[1]["authors"] == [_ann()]
            assert versions[1]["size"] == 6 + 1  # the deletion and the "!"
            assert await value(http, 4) == texts[4]
            r = await http.get("/api/documents/d/versions/3")  # merged into 4
            assert r.status_code == 410 and r.json()["error"]["code"] == "history_unavailable"
    finally:
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def _thinned(http: httpx.AsyncClient) -> bool:
    return len(await listed(http)) == 2


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "code"),
    [
        ("GET", "/api/documents/d/versions", {"params": {"limit": "5000"}}, 400, "bad_request"),
        ("GET", "/api/documents/d/versions", {"params": {"limit": "0"}}, 400, "bad_request"),
        ("GET", "/api/documents/d/versions", {"params": {"after": "-1"}}, 400, "bad_request"),
        ("GET", "/api/documents/d/versions/99", {}, 404, "unknown_version"),
        ("GET", "/api/documents/d/versions/x", {}, 400, "bad_request"),
        ("GET", "/api/documents/d/versions/99999999999999999999", {}, 400, "bad_request"),
        ("GET", "/api/documents/d/diff", {"params": {"from": 1, "to": 99}}, 404, "unknown_version"),
        ("POST", "/api/documents/d/restore", {"json": {"version": 99}}, 404, "unknown_version"),
        ("POST", "/api/documents/d/versions", {"json": {"name": ""}}, 400, "bad_request"),
        ("POST", "/api/documents/d/versions", {"json": {"name": None}}, 400, "bad_request"),
        ("POST", "/api/documents/d/versions", {"json": {"name": "x" * 201}}, 400, "bad_request"),
        (
            "POST",
            "/api/documents/d/versions",
            {"json": {"name": "n", "version": 99}},
            404,
            "unknown_version",
        ),
        ("PATCH", "/api/documents/d/versions/99", {"json": {"name": "n"}}, 404, "unknown_version"),
        ("PATCH", "/api/documents/d/versions/0", {"json": {"name": "n"}}, 404, "unknown_version"),
        ("GET", "/api/documents/gone/versions", {}, 404, "unknown_document"),
        ("GET", "/api/documents/d/versions", {"params": {"before": 0}}, 400, "bad_request"),
        ("GET", "/api/documents/d/versions", {"params": {"before": "x"}}, 400, "bad_request"),
        ("GET", "/api/documents/d/versions", {"params": {"before": 2**63}}, 400, "bad_request"),
        ("POST", "/api/documents/gone/restore", {"json": {"version": 1}}, 404, "unknown_document"),
    ],
)
async def test_bad_history_requests_get_clear_errors_and_change_nothing(
    server: RunningServer,
    http: httpx.AsyncClient,
    method: str,
    path: str,
    kwargs: dict[str, Any],
    status: int,
    code: str,
) -> None:
    await type_history(server)
    r = await http.post("/api/documents", json={"id": "gone"})
    assert r.status_code == 201
    assert (await http.delete("/api/documents/gone")).status_code == 204
    before = await listed(http)
    text = (await http.get("/api/documents/d/text/t")).text
    r = await http.request(method, path, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and r.json()["error"]["message"]
    assert await listed(http) == before
    assert (await http.get("/api/documents/d/text/t")).text == text


async def test_a_page_of_versions_says_the_session_gap_viewers_group_by(
    make_settings: Callable[..., Settings],
) -> None:
    """The web page's history panel groups versions into the sessions retention keeps."""
    settings = make_settings(secret=SECRET, history_session_gap_s=42.5)
    server, task = await start_server(settings)
    try:
        async with client(server) as http:
            await type_history(server)
            r = await http.get("/api/documents/d/versions", params={"limit": 2})
            assert r.status_code == 200, r.text
            assert r.json()["session_gap_s"] == 42.5 and r.json()["next"] is not None
            r = await http.get("/api/documents/d/versions", params={"named": "true"})
            assert r.json() == {
                "versions": [],
                "next": None,
                "session_gap_s": 42.5,
                "older": None,
            }
            # from the newest: the last two, then the two before them (the panel's order)
            r = await http.get(
                "/api/documents/d/versions", params={"before": 2**63 - 1, "limit": 2}
            )
            assert [v["id"] for v in r.json()["versions"]] == [3, 4]
            assert r.json()["older"] == 3 and r.json()["next"] is None
            r = await http.get("/api/documents/d/versions", params={"before": 3, "limit": 2})
            assert [v["id"] for v in r.json()["versions"]] == [1, 2]
            assert r.json()["older"] is None and r.json()["next"] == 2
    finally:
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_reading_history_needs_the_read_right(server: RunningServer) -> None:
    await type_history(server)
    nobody = issue(SECRET, "eve", docs={"other": ["read"]}, expires_at=int(time.time()) + 60)
    async with httpx.AsyncClient(
        base_url=server.url, headers={"Authorization": f"Bearer {nobody}"}
    ) as http:
        for path in ("/api/documents/d/versions", "/api/documents/d/versions/1"):
            assert (await http.get(path)).status_code == 403
        r = await http.post("/api/documents/d/versions", json={"name": "x"})
        assert r.status_code == 403


async def test_every_stored_yjs_update_is_a_version(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    from cowrite.yjs import messages as m

    from .test_yjs_server import Hocus

    editor = await Hocus.connect(server)
    doc = await editor.open("rich", token("ann"))
    await until(_async(lambda: bool(editor.of(m.HSyncStatus))), "the handshake is stored")
    before = len(await listed(http, "rich"))
    doc.get("t", type=pycrdt.Text).insert(0, "hello")
    await until(_async(lambda: len(editor.of(m.HSyncStatus)) >= 2), "the update is stored")
    versions = await listed(http, "rich")
    assert len(versions) == before + 1
    last = versions[-1]
    assert last["authors"] == [_ann()] and last["how"] == "typed" and last["size"] > 0
    assert last["available"]  # its value is replayed from the stored log (test_yjs_history)
    await editor.close()


def _async(check: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def run() -> bool:
        return check()

    return run


async def test_a_replica_clients_sync_is_a_version_by_its_user(
    server: RunningServer, http: httpx.AsyncClient
) -> None:
    import cowrite

    async with cowrite.connect(server.ws_url, doc="d", token=token("bob"), mode="replica") as s:
        s.text("t").insert(0, "offline-capable")
        await s.synced()
    [version] = await listed(http)
    assert version["authors"] == [_bob()] and version["how"] == "typed"
    assert version["size"] == len("offline-capable")
    assert await value(http, version["id"]) == "offline-capable"


async def test_a_thin_reconnect_builds_the_history_index_off_the_event_loop(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thin client that comes back to a reloaded document gets the exact changes since its
    state (a history diff): the delete index that diff reads is built in a worker thread, and
    the reply is the one a room with the index ready gives."""
    from cowrite.engine import IndexBuild

    ann = await Typist.join(server, "ann")
    await ann.edit("hello there")
    seen = await RawClient.connect(server.ws_url, "c-seen", token=token("cid"))
    await seen.send({"type": "join", "doc": "d"})
    joined = await seen.expect("joined")
    await seen.close()
    await ann.edit(-6)  # "there"
    await ann.edit(5, " world")  # "there world"
    await ann.c.close()
    await until(lambda: _unloaded(server, "d"), "the document unloads")
    threads: list[threading.Thread] = []
    run = IndexBuild.run

    def recorded(build: IndexBuild) -> None:
        threads.append(threading.current_thread())
        run(build)

    monkeypatch.setattr(IndexBuild, "run", recorded)
    replies = []
    for k in range(2):  # (the second finds the index built)
        back = await RawClient.connect(server.ws_url, f"c-back{k}", token=token("cid"))
        await back.send(
            {
                "type": "join",
                "doc": "d",
                "version": joined["version"],
                "epoch": "gone",  # another epoch's numbering: the changes since the state
                "state": joined["state"],
            }
        )
        replies.append(await back.expect("joined"))
        await back.close()
    assert len(threads) == 1 and threads[0] is not threading.current_thread()
    first, second = replies
    assert first["ops"] == second["ops"]
    assert first["ops"] == [{"type": "seq", "node": "text:t", "edit": [-6, 5, " world"]}]
