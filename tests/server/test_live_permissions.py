"""Live permissions: ``reauth`` on an open connection, expiry, and an administrator's downgrade
or revocation applied on every instance (two in-process instances sharing a bus and a store)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import pytest

from cowrite.adapters.bus import LocalBus
from cowrite.rooms.yjs_history import state_of
from cowrite.server.auth import issue
from cowrite.server.config import Settings
from cowrite.yjs import messages as m

from .conftest import RawClient, RunningServer, start_server
from .test_yjs_cluster import SharedStore
from .test_yjs_server import Hocus, until

SECRET = "p" * 32


def token(user: str, rights: list[str], exp: float | None = None, doc: str = "*") -> str:
    return issue(
        SECRET,
        user,
        docs={doc: rights},
        name=user.title(),
        expires_at=int(exp or time.time() + 600),
    )


@pytest.fixture
async def secured(settings: Settings) -> AsyncIterator[RunningServer]:
    # raw clients answer no pings: a heartbeat longer than the test
    slow = replace(settings, secret=SECRET, heartbeat_s=30, heartbeat_timeout_s=90)
    running, task = await start_server(slow)
    yield running
    running.server.should_exit = True
    await asyncio.wait_for(task, 20)


async def edit(client: RawClient, doc: str, edit_id: str, text: str = "x") -> dict[str, Any]:
    """Send an edit; the ack or error it gets."""
    op = {"type": "seq", "node": "text:t", "edit": [text]}
    await client.send({"type": "edit", "doc": doc, "edit_id": edit_id, "version": 0, "ops": [op]})
    while True:
        for i, msg in enumerate(client.inbox):
            if msg["type"] in ("ack", "error") and msg.get("edit_id") == edit_id:
                del client.inbox[i]
                return msg
        await client._pull(10)


async def test_reauth_replaces_rights_and_expiry(secured: RunningServer) -> None:
    soon = math.ceil(time.time()) + 4  # room for a loaded machine before the reauth
    c = await RawClient.connect(secured.ws_url, "c", token=token("ann", ["write"], exp=soon))
    await c.send({"type": "join", "doc": "d", "create": True})
    await c.expect("joined")
    assert (await edit(c, "d", "e1"))["type"] == "ack"
    # a fresh token for someone else is refused, the session goes on
    await c.send({"type": "reauth", "token": token("bob", ["write"])})
    error = await c.expect("error")
    assert error["code"] == "unauthorized" and "another user" in error["message"]
    await c.send({"type": "reauth", "token": "forged"})
    error = await c.expect("error")
    assert error["code"] == "unauthorized" and error["message"].startswith("reauth refused:")
    # a read-only token: told, and the next edit is refused
    later = int(time.time() + 600)
    await c.send({"type": "reauth", "token": token("ann", ["read"], exp=later)})
    assert (await c.expect("reauthed"))["expires_at"] == later
    rights = await c.expect("rights")
    assert (rights["doc"], rights["rights"], rights["reason"]) == ("d", ["read"], "new token")
    refused = await edit(c, "d", "e2")
    assert (refused["type"], refused["code"]) == ("error", "forbidden")
    # write again; and the session outlives the first token's exp
    await c.send({"type": "reauth", "token": token("ann", ["write"], exp=later)})
    await c.expect("reauthed")
    assert (await c.expect("rights"))["rights"] == ["read", "write"]
    await until(lambda: time.time() > soon + 1.0)
    assert (await edit(c, "d", "e3"))["type"] == "ack"
    await c.close()


async def test_an_expired_token_ends_the_session_with_a_reason(secured: RunningServer) -> None:
    exp = math.ceil(time.time()) + 2  # valid at hello, even on a loaded machine
    c = await RawClient.connect(secured.ws_url, "c", token=token("ann", ["write"], exp))
    error = await c.expect("error", timeout=10)
    assert error["code"] == "unauthorized" and "token expired" in error["message"]
    with pytest.raises(Exception) as closed:
        await c._pull(10)
    assert getattr(closed.value, "rcvd", None) is not None and closed.value.rcvd.code == 4001


async def test_an_admin_downgrades_and_revokes_a_user_on_every_instance(
    settings: Settings,
) -> None:
    store, bus = SharedStore(), LocalBus()
    instances = []
    for _ in range(2):
        slow = replace(settings, secret=SECRET, heartbeat_s=30, heartbeat_timeout_s=90)
        running, task = await start_server_on(slow, store, bus)
        instances.append((running, task))
    a, b = instances[0][0], instances[1][0]
    try:
        # ann edits on instance b (native and Hocuspocus); bob is unaffected
        ann = await RawClient.connect(b.ws_url, "ann", token=token("ann", ["write", "chat"]))
        bob = await RawClient.connect(b.ws_url, "bob", token=token("bob", ["write"]))
        for c in (ann, bob):
            await c.send({"type": "join", "doc": "d", "create": True})
            await c.expect("joined")
        assert (await edit(ann, "d", "a1"))["type"] == "ack"
        hocus = await Hocus.connect(b)
        await hocus.open("y", token=token("ann", ["write"]))
        await until(lambda: bool(hocus.of(m.HAuthenticated)))
        await until(lambda: bool(hocus.of(m.HSyncStatus)))

        async with httpx.AsyncClient(base_url=a.url) as http:
            # only an admin of "*" may
            body = {"user": "ann", "docs": {"*": ["read"]}}
            writer = {"Authorization": f"Bearer {token('bob', ['write'])}"}
            r = await http.post("/api/admin/permissions", json=body, headers=writer)
            assert r.status_code == 403
            admin = {"Authorization": f"Bearer {token('root', ['admin'])}"}
            bad = {"user": "ann", "docs": {"*": ["fly"]}}
            r = await http.post("/api/admin/permissions", json=bad, headers=admin)
            assert r.status_code == 400 and "fly" in r.json()["error"]["message"]
            # downgrade ann to read-only, asked of instance a
            r = await http.post("/api/admin/permissions", json=body, headers=admin)
            assert r.status_code == 200 and r.json() == body

            told = await ann.expect("rights")
            assert (told["doc"], told["rights"]) == ("d", ["read"])
            refused = await edit(ann, "d", "a2")
            assert (refused["type"], refused["code"]) == ("error", "forbidden")
            assert (await edit(bob, "d", "b1"))["type"] == "ack"  # bob: untouched
            # the Hocuspocus document of ann is closed (her provider reconnects read-only)
            await until(lambda: any(f.address == "y" for f in hocus.of(m.HClose)))
            # REST with ann's token is read-only too, on either instance
            ann_rest = {"Authorization": f"Bearer {token('ann', ['write'])}"}
            r = await http.post(
                "/api/documents/d/edits", json={"text": "t", "append": "!"}, headers=ann_rest
            )
            assert r.status_code == 403
            # a new connection of ann on instance a gets the ceiling at once
            again = await RawClient.connect(a.ws_url, "ann2", token=token("ann", ["write"]))
            await again.send({"type": "join", "doc": "d"})
            await again.expect("joined")
            assert (await edit(again, "d", "a3"))["code"] == "forbidden"

            # revoke everything: she leaves the document
            r = await http.post(
                "/api/admin/permissions", json={"user": "ann", "docs": {"*": []}}, headers=admin
            )
            assert r.status_code == 200
            assert (await ann.expect("rights"))["rights"] == []
            gone = await edit(ann, "d", "a4")
            assert gone["code"] == "not_joined"
            await ann.send({"type": "join", "doc": "d"})
            assert (await ann.expect("error"))["code"] == "forbidden"

            # lifted: her token's rights again
            r = await http.post(
                "/api/admin/permissions", json={"user": "ann", "docs": None}, headers=admin
            )
            assert r.status_code == 200
            await ann.send({"type": "join", "doc": "d"})
            await ann.expect("joined")
            assert (await edit(ann, "d", "a5"))["type"] == "ack"
        for c in (ann, bob, again):
            await c.close()
        await hocus.close()
    finally:
        for running, task in instances:
            running.server.should_exit = True
            await asyncio.wait_for(task, 20)


async def start_server_on(
    settings: Settings, store: Any, bus: LocalBus
) -> tuple[RunningServer, asyncio.Task[None]]:
    import socket

    import uvicorn

    from cowrite.server.app import create_app

    app = create_app(
        replace(settings, data=":memory:", instance_heartbeat_s=0.2, instance_timeout_s=1.0),
        store=store,
        bus=bus,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_config=None, lifespan="on", ws_ping_interval=None)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    return RunningServer(f"http://127.0.0.1:{sock.getsockname()[1]}", app, server), task


async def test_the_sdk_reauths_before_its_token_expires(secured: RunningServer) -> None:
    import cowrite

    soon = math.ceil(time.time()) + 4
    async with cowrite.connect(
        secured.ws_url, doc="s", token=token("ann", ["write"], exp=soon)
    ) as doc:
        doc.text("t").insert(0, "a")
        await doc.synced()
        doc.reauth(token("ann", ["write"]))
        await until(lambda: time.time() > soon + 1.0)
        doc.text("t").insert(0, "b")
        await doc.synced()  # the old token's exp did not end the session
        assert str(doc.text("t")) == "ba"
        [conn] = [c for c in secured.state.connections if c.identity.user_id == "ann"]
        assert conn.identity.expires_at > soon + 60


async def test_a_fresh_hocuspocus_token_on_an_open_document(secured: RunningServer) -> None:
    import pycrdt

    soon = math.ceil(time.time()) + 4
    hocus = await Hocus.connect(secured)
    ydoc = await hocus.open("h", token=token("ann", ["write"], exp=soon))
    await until(lambda: bool(hocus.of(m.HSyncStatus)))
    text = ydoc.get("t", type=pycrdt.Text)

    def saved() -> list[bool]:
        return [f.saved for f in hocus.of(m.HSyncStatus)]

    fresh = m.HAuthToken("h", token("ann", ["write"]), "4.8.0")
    await hocus.ws.send(m.encode_hocuspocus(fresh))
    await until(lambda: len(hocus.of(m.HAuthenticated)) == 2)
    await until(lambda: time.time() > soon + 1.0)
    before = len(saved())
    text.insert(0, "still here")
    await until(lambda: len(saved()) > before)
    assert saved()[-1] is True and hocus.closed is None  # outlived the first token

    # read-only from now on: changes are answered SyncStatus(false)
    read_only = m.HAuthToken("h", token("ann", ["read"]), "4.8.0")
    await hocus.ws.send(m.encode_hocuspocus(read_only))
    await until(lambda: len(hocus.of(m.HAuthenticated)) == 3)
    assert hocus.of(m.HAuthenticated)[-1].scope == "readonly"
    before = len(saved())
    text.insert(0, "refused ")
    await until(lambda: len(saved()) > before)
    assert saved()[-1] is False
    # a refused token closes the document
    await hocus.ws.send(m.encode_hocuspocus(m.HAuthToken("h", "forged", "4.8.0")))
    await until(lambda: bool(hocus.of(m.HPermissionDenied)))
    assert hocus.of(m.HPermissionDenied)[-1].address == "h"
    await hocus.close()
    stored = await secured.state.store.load("h")
    assert stored is not None
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    snapshot = [state_of(stored.snapshot)] if stored.snapshot else []  # a history container
    for update in snapshot + [u for _, u in stored.updates]:
        doc.apply_update(update)
    assert str(doc.get("t", type=pycrdt.Text)) == "still here"


async def test_the_sdk_admin_call_downgrades_a_user(secured: RunningServer) -> None:
    from cowrite.client import Admin, AdminError

    ann = await RawClient.connect(secured.ws_url, "ann", token=token("ann", ["write"]))
    await ann.send({"type": "join", "doc": "sdk", "create": True})
    await ann.expect("joined")
    assert (await edit(ann, "sdk", "s1"))["type"] == "ack"
    with pytest.raises(AdminError) as refused:
        await Admin(secured.url, token=token("bob", ["write"])).restrict_user("ann", {"*": []})
    assert refused.value.status == 403 and refused.value.code == "forbidden"
    admin = Admin(secured.ws_url, token=token("root", ["admin"]))  # a ws:// URL works too
    await admin.restrict_user("ann", {"*": ["read"]})
    told = await ann.expect("rights")
    assert (told["doc"], told["rights"]) == ("sdk", ["read"])
    refused_edit = await edit(ann, "sdk", "s2")
    assert (refused_edit["type"], refused_edit["code"]) == ("error", "forbidden")
    await admin.lift_restriction("ann")
    await ann.close()


async def test_one_leaked_token_is_revoked_and_its_users_other_tokens_carry_on(
    secured: RunningServer,
) -> None:
    from cowrite.client import Admin

    leaked = token("ann", ["write"])
    fresh = token("ann", ["write"], exp=time.time() + 1200)  # another token of the same user
    assert leaked != fresh
    old = await RawClient.connect(secured.ws_url, "old", token=leaked)
    new = await RawClient.connect(secured.ws_url, "new", token=fresh)
    for c in (old, new):
        await c.send({"type": "join", "doc": "leak", "create": True})
        await c.expect("joined")
    hocus = await Hocus.connect(secured)
    await hocus.open("yleak", token=leaked)
    await until(lambda: bool(hocus.of(m.HSyncStatus)))
    admin = Admin(secured.url, token=token("root", ["admin"]))
    await admin.restrict_token(leaked, {"*": []})  # revoked
    told = await old.expect("rights")
    assert (told["doc"], told["rights"]) == ("leak", [])
    await until(lambda: bool(hocus.of(m.HClose)) or hocus.closed is not None)
    assert (await edit(new, "leak", "n1"))["type"] == "ack"  # ann's other token: untouched
    async with httpx.AsyncClient(base_url=secured.url) as http:
        gone = {"Authorization": f"Bearer {leaked}"}
        assert (await http.get("/api/documents/leak", headers=gone)).status_code == 403
        ok = {"Authorization": f"Bearer {fresh}"}
        assert (await http.get("/api/documents/leak", headers=ok)).status_code == 200
        both = {"user": "ann", "token": leaked, "docs": {}}
        admin_h = {"Authorization": f"Bearer {token('root', ['admin'])}"}
        r = await http.post("/api/admin/permissions", json=both, headers=admin_h)
        assert r.status_code == 400 and "exactly one" in r.json()["error"]["message"]
    for c in (old, new):
        await c.close()
    await hocus.close()
