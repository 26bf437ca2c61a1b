"""Authentication and rights with a secret: WebSocket hello/join/edit/chat, and the REST API."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import websockets

from cowrite.server.auth import issue
from cowrite.server.config import Settings

SECRET = "s3cret"

# PyJWT warns (on issue and on verify) about HMAC keys under 32 bytes; this suite uses a short one
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


def token(
    docs: dict[str, list[str]], *, secret: str = SECRET, ttl: int = 3600, user: str = "u"
) -> str:
    return issue(secret, user, docs=docs, name=user.title(), expires_at=int(time.time()) + ttl)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """Overrides conftest's: the ``server`` fixture then runs with a secret."""
    return make_settings(secret=SECRET)


@pytest.fixture
def secured(server: Any) -> Any:
    return server


@pytest.fixture
async def http(secured: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=secured.url, timeout=10) as client:
        yield client


async def refused_hello(url: str, hello: dict[str, Any]) -> tuple[list[dict[str, Any]], int | None]:
    """Send hello; collect messages until the server closes. Returns them and the close code."""
    ws = await websockets.connect(url)
    await ws.send(json.dumps({"type": "hello", "client_id": "intruder", **hello}))
    got: list[dict[str, Any]] = []
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            data = json.loads(await asyncio.wait_for(ws.recv(), 5))
            got.extend(data if isinstance(data, list) else [data])
    return got, ws.close_code


BAD_HELLOS: dict[str, Callable[[], dict[str, Any]]] = {
    "missing": lambda: {},
    "empty": lambda: {"token": ""},
    "garbage": lambda: {"token": "not.a.jwt"},
    "forged": lambda: {"token": token({"*": ["read", "write"]}, secret="wrong secret")},
    "expired": lambda: {"token": token({"*": ["read", "write"]}, ttl=-60)},
}


@pytest.mark.parametrize("case", sorted(BAD_HELLOS))
async def test_bad_tokens_are_refused_and_closed(secured: Any, case: str) -> None:
    got, code = await refused_hello(secured.ws_url, BAD_HELLOS[case]())
    assert [m["type"] for m in got] == ["error"]
    assert got[0]["code"] == "unauthorized"
    assert code == 1008


async def test_read_only_member_watches_but_cannot_edit_or_chat(secured: Any, raw: Any) -> None:
    writer = await raw(
        secured.ws_url, "w", token=token({"d": ["read", "write", "chat"]}, user="writer")
    )
    reader = await raw(secured.ws_url, "r", token=token({"d": ["read"]}, user="reader"))
    await writer.send({"type": "join", "doc": "d", "create": True})
    await writer.expect("joined")
    await reader.send({"type": "join", "doc": "d"})
    joined = await reader.expect("joined")
    assert joined["rights"] == ["read"]
    assert {e["user"]["name"] for e in joined["presence"]} == {"Writer", "Reader"}
    # the reader sees edits and presence
    op = {"type": "seq", "node": "text:t", "edit": ["hi"]}
    await writer.send({"type": "edit", "doc": "d", "edit_id": "1", "version": 0, "ops": [op]})
    await writer.expect("ack")
    assert (await reader.expect("remote"))["ops"] == [op]
    cursor = {"node": "text:t", "anchor": 1, "head": 2}
    await writer.send({"type": "presence", "doc": "d", "cursor": cursor})
    update = await reader.expect("presence_update")
    assert update["entries"][0]["cursor"]["anchor"] == 1
    # ... but its edits are refused and change nothing
    await reader.send(
        {"type": "edit", "doc": "d", "edit_id": "x", "version": 1, "ops": [dict(op, edit=[-2])]}
    )
    err = await reader.expect("error")
    assert err["code"] == "forbidden" and err["edit_id"] == "x"
    assert secured.state.hub.rooms["d"].room.doc.to_json() == {"t": "hi"}
    assert secured.state.hub.rooms["d"].room.version == 1
    # chat needs the chat right
    await reader.send({"type": "chat_send", "doc": "d", "text": "let me in"})
    assert (await reader.expect("error"))["code"] == "forbidden"
    await writer.send({"type": "chat_send", "doc": "d", "text": "hello reader"})
    chat = await reader.expect("chat")
    assert chat["message"]["text"] == "hello reader"
    assert chat["message"]["author_name"] == "Writer"
    history = await secured.state.store.chat_history("d")
    assert [m.text for m in history] == ["hello reader"]


async def test_rights_are_per_document(secured: Any, raw: Any) -> None:
    c = await raw(secured.ws_url, "c", token=token({"mine": ["read", "write"]}))
    await c.send({"type": "join", "doc": "other", "create": True})
    assert (await c.expect("error"))["code"] == "forbidden"
    await c.send({"type": "join", "doc": "mine", "create": True})
    await c.expect("joined")
    reader = await raw(secured.ws_url, "r", token=token({"*": ["read"]}))
    await reader.send({"type": "join", "doc": "new-doc", "create": True})
    assert (await reader.expect("error"))["code"] == "forbidden"  # creating needs write


# ------------------------------------------------------------------------------------ REST


def bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


async def test_rest_needs_a_valid_token(http: httpx.AsyncClient) -> None:
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwdw=="},
        {"Authorization": "Bearer"},
        bearer("garbage"),
        bearer(token({"*": ["read"]}, secret="wrong")),
        bearer(token({"*": ["read"]}, ttl=-5)),
    ):
        for path in ("/api/documents", "/api/documents/d", "/api/documents/d/versions"):
            r = await http.get(path, headers=headers)
            assert r.status_code == 401, (headers, path)
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
    # public
    assert (await http.get("/api/status")).json()["auth"] is True
    assert (await http.get("/api/openapi.json")).status_code == 200


async def test_rest_rights(secured: Any, raw: Any, http: httpx.AsyncClient) -> None:
    clock = [1_800_000_000_000]
    secured.state.hub.now_ms = lambda: clock[0]
    admin = bearer(token({"*": ["read", "write", "admin"]}))
    writer = bearer(token({"d": ["read", "write"]}, user="writer"))
    reader = bearer(token({"d": ["read"]}))
    stranger = bearer(token({"elsewhere": ["read"]}))
    assert (await http.post("/api/documents", json={"id": "d"}, headers=reader)).status_code == 403
    assert (await http.post("/api/documents", json={"id": "d"}, headers=writer)).status_code == 201
    assert (await http.post("/api/documents", json={"id": "e"}, headers=admin)).status_code == 201
    # the list shows what the token may read
    listed = (await http.get("/api/documents", headers=reader)).json()["documents"]
    assert [d["id"] for d in listed] == ["d"]
    listed = (await http.get("/api/documents", headers=admin)).json()["documents"]
    assert [d["id"] for d in listed] == ["d", "e"]
    assert (await http.get("/api/documents", headers=stranger)).json()["documents"] == []

    c = await raw(secured.ws_url, "c", token=token({"d": ["read", "write"]}))
    await c.send({"type": "join", "doc": "d"})
    await c.expect("joined")
    op = {"type": "seq", "node": "text:t", "edit": ["x"]}
    await c.send({"type": "edit", "doc": "d", "edit_id": "1", "version": 0, "ops": [op]})
    await c.expect("ack")
    clock[0] += 5_000  # a later version of its own (versions merge bursts within a second)
    await c.send({"type": "edit", "doc": "d", "edit_id": "2", "version": 1, "ops": [op]})
    await c.expect("ack", where=lambda m: m["edit_id"] == "2")

    for path in ("/api/documents/d", "/api/documents/d/json", "/api/documents/d/versions"):
        assert (await http.get(path, headers=reader)).status_code == 200
        r = await http.get(path, headers=stranger)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    restore = {"version": 0}
    r = await http.post("/api/documents/d/restore", json=restore, headers=reader)
    assert r.status_code == 403
    r = await http.post("/api/documents/d/restore", json=restore, headers=writer)
    assert r.status_code == 200 and r.json()["edits"] >= 1, r.text
    # the restore is the writer's edit, not an anonymous server's
    origin = secured.state.hub.rooms["d"].room._origins[r.json()["version"]]
    assert origin.client == "server" and origin.user == "writer"
    rename = {"title": "T"}
    assert (await http.patch("/api/documents/d", json=rename, headers=reader)).status_code == 403
    assert (await http.patch("/api/documents/d", json=rename, headers=writer)).status_code == 200
    assert (await http.delete("/api/documents/d", headers=writer)).status_code == 403
    assert (await http.delete("/api/documents/d", headers=admin)).status_code == 204


# ------------------------------------------------------------------------- the session


async def test_session_ends_when_the_token_expires(secured: Any, raw: Any) -> None:
    """Rights end at ``exp``, not at the next hello: the server says so and closes (4001)."""
    expires = int(time.time()) + 2
    tok = issue(SECRET, "u", docs={"d": ["read", "write"]}, name="U", expires_at=expires)
    c = await raw(secured.ws_url, "c", token=tok)
    await c.send({"type": "join", "doc": "d", "create": True})
    await c.expect("joined")
    got: list[dict[str, Any]] = []
    with pytest.raises(websockets.ConnectionClosed):
        while time.time() < expires + 10:  # answer pings (a short heartbeat timeout here)
            data = json.loads(await asyncio.wait_for(c.ws.recv(), 10))
            for m in data if isinstance(data, list) else [data]:
                got.append(m)
                if m["type"] == "ping":
                    await c.send({"type": "pong", "nonce": m["nonce"]})
    errors = [m for m in got if m["type"] == "error"]
    assert [e["code"] for e in errors] == ["unauthorized"] and "expired" in errors[0]["message"]
    assert time.time() >= expires
    assert c.ws.close_code == 4001 and c.ws.close_reason == "token expired"
    assert not secured.state.hub.rooms["d"].membership  # it left the document


async def test_presence_and_chat_names_come_from_the_token(secured: Any, raw: Any) -> None:
    """With auth, a client cannot rename itself (in presence or chat) to look like someone else."""
    alice = await raw(
        secured.ws_url, "a", token=token({"d": ["read", "write", "chat"]}, user="alice")
    )
    mallory = await raw(
        secured.ws_url,
        "m",
        token=token({"d": ["read", "write", "chat"]}, user="mallory"),
        user={"name": "Alice"},
    )
    await alice.send({"type": "join", "doc": "d", "create": True})
    await alice.expect("joined")
    await mallory.send({"type": "join", "doc": "d"})
    joined = await mallory.expect("joined")
    assert sorted(e["user"]["name"] for e in joined["presence"]) == ["Alice", "Mallory"]
    await mallory.send({"type": "presence", "doc": "d", "user": {"name": "Alice", "color": "#123"}})
    update = await alice.expect("presence_update", where=lambda m: bool(m["entries"]))
    assert update["entries"][0]["user"]["name"] == "Mallory"
    assert update["entries"][0]["user"]["id"] == "mallory"
    await mallory.send({"type": "chat_send", "doc": "d", "text": "it's me, Alice"})
    chat = (await alice.expect("chat"))["message"]
    assert (chat["author_name"], chat["author_id"]) == ("Mallory", "mallory")


async def test_a_chat_right_alone_joins_to_read_and_chat(secured: Any, raw: Any) -> None:
    """``chat`` implies ``read`` (like ``write``): the document, presence and chat are shown."""
    writer = await raw(secured.ws_url, "w", token=token({"d": ["write", "chat"]}, user="writer"))
    await writer.send({"type": "join", "doc": "d", "create": True})
    await writer.expect("joined")
    chatter = await raw(secured.ws_url, "c", token=token({"d": ["chat"]}, user="chatter"))
    await chatter.send({"type": "join", "doc": "d"})
    joined = await chatter.expect("joined")
    assert joined["rights"] == ["chat", "read"]
    await chatter.send({"type": "chat_send", "doc": "d", "text": "hi"})
    assert (await writer.expect("chat"))["message"]["author_name"] == "Chatter"
    op = {"type": "seq", "node": "text:t", "edit": ["x"]}
    await chatter.send({"type": "edit", "doc": "d", "edit_id": "1", "version": 0, "ops": [op]})
    assert (await chatter.expect("error"))["code"] == "forbidden"
