"""The real Yjs clients against a real ``cowrite serve`` (one instance, SQLite): the unchanged
``y-websocket`` 3.1 ``WebsocketProvider`` and ``@hocuspocus/provider`` 4.8 ``HocuspocusProvider``
in node (``js/yclients.mjs``, over the ``ws`` package), driven from here.

* random concurrent edits of Y.Text, Y.Map, Y.Array and Y.XmlFragment by clients of both dialects
  (one Hocuspocus socket multiplexing two documents), with offline periods, converge with each
  other, with a fresh client, with the REST read-out and after a restart;
* read-only tokens (Hocuspocus ``readonly`` scope, y-websocket's logged refusal): their edits reach
  nobody; forged, expired and wrong-document tokens are refused; a native document is refused;
* awareness appears at the others and disappears when a client's process is killed;
* kill -9 right after a Hocuspocus client saw its SyncStatus loses nothing;
* an update that splits an emoji (which Yrs cannot hold) is refused with 1003, never acknowledged;
* chat in Hocuspocus stateless messages (history on attach, relay, refusals).

Timeouts are generous and only end a hung test: nothing asserts how fast anything happens.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from cowrite.server.auth import issue

sys.path.insert(0, str(Path(__file__).resolve().parent))  # yjs_e2e.py
from yjs_e2e import YClients, YjsServer, content_diff, eventually, same_content

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]

Node = Callable[..., Awaitable[YClients]]
Server = Callable[..., Awaitable[YjsServer]]

SECRET = "e2e-secret-e2e-secret-e2e-secret!"


def token(docs: dict[str, list[str]], *, secret: str = SECRET, ttl: int = 3600) -> str:
    return issue(secret, "u", docs=docs, name="U", expires_at=int(time.time()) + ttl)


async def all_states(nodes: list[YClients]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for states in await asyncio.gather(*(n.states() for n in nodes)):
        out.update(states)
    return out


def settled(state: dict[str, Any]) -> bool:
    """Connected and synced; a Hocuspocus client also has every change acknowledged."""
    if not state["synced"]:
        return False
    return state["dialect"] != "hocuspocus" or state["unsynced"] == 0


async def converge(
    nodes: list[YClients], names: list[str], *, what: str, timeout: float = 60
) -> dict[str, Any]:
    """Wait until clients ``names`` are settled and agree; return the agreed state."""
    last: dict[str, dict[str, Any]] = {}

    async def agreed() -> bool:
        nonlocal last
        states = await all_states(nodes)
        last = {k: states[k] for k in names}
        return all(settled(s) for s in last.values()) and same_content(list(last.values()))

    try:
        await eventually(agreed, timeout=timeout, what=what, every=0.2)
    except AssertionError:
        first = last[names[0]]
        for k in names[1:]:
            if last[k]["content"] != first["content"] or last[k]["sv"] != first["sv"]:
                print(f"{k} vs {names[0]}: {content_diff(last[k]['content'], first['content'])}")
        print(
            {
                k: (s["status"], s["synced"], s.get("unsynced"), s["closes"][-3:])
                for k, s in last.items()
            }
        )
        raise
    return last[names[0]]


async def fresh_read(
    reader: YClients, server_base: str, doc: str, dialect: str, name: str, token: str | None = None
) -> dict[str, Any]:
    """What a new client ``name`` of ``dialect`` (in ``reader``) gets from the server."""
    await reader.open(name, dialect, server_base, doc, token=token)
    await converge([reader], [name], what=f"a fresh {dialect} client of {doc} syncs")
    state = await reader.state(name)
    await reader.call("destroy", client=name)
    return state


async def test_random_edits_of_both_dialects_converge_everywhere_and_after_a_restart(
    yjs_server: Server, node: Node
) -> None:
    server = await yjs_server()
    n1, n2 = await node("n1"), await node("n2")
    nodes = [n1, n2]
    base = server.base
    # document "rt": two Hocuspocus clients (h2 on a socket shared with document "rt2") and two
    # y-websocket clients, in two processes; document "rt2": h3 (same socket as h2) and y3.
    await n1.open("h1", "hocuspocus", base, "rt", user={"name": "H1"})
    await n2.open("h2", "hocuspocus", base, "rt", socket="shared")
    await n2.open("h3", "hocuspocus", base, "rt2", socket="shared")
    await n1.open("y1", "ywebsocket", base, "rt")
    await n2.open("y2", "ywebsocket", base, "rt", user={"name": "Y2"})
    await n1.open("y3", "ywebsocket", base, "rt2")
    owner = {"h1": n1, "y1": n1, "y3": n1, "h2": n2, "h3": n2, "y2": n2}
    rt, rt2 = ["h1", "h2", "y1", "y2"], ["h3", "y3"]
    await converge(nodes, rt + rt2, what="every client is connected and synced")

    seeds = iter(range(1000, 2000))
    for round_ in range(3):
        # one client of "rt" goes offline, edits there while the others edit, then comes back
        offline = rt[round_ % len(rt)] if round_ < 2 else "h2"
        if offline == "h2":  # a shared socket: both of its documents go offline
            await n2.call("socket_disconnect", socket="shared")
        else:
            await owner[offline].call("disconnect", client=offline)
        edits = [
            owner[c].call(
                "edit", client=c, seed=next(seeds), n=40, pause_ms=4, tag=f"{c}.{round_}:"
            )
            for c in rt + rt2
        ]
        await asyncio.gather(*edits)
        if offline == "h2":
            await n2.call("socket_connect", socket="shared")
        else:
            await owner[offline].call("connect", client=offline)

    final = await converge(nodes, rt, what="the clients of rt converge")
    final2 = await converge(nodes, rt2, what="the clients of rt2 (one socket with rt) converge")
    content, content2 = final["content"], final2["content"]
    assert content["text"] and content["map"] and content["array"] and content["xml"]
    assert content2["text"] and content != content2

    # the comparison can fail: one client's offline edit makes it differ
    await n1.call("disconnect", client="y1")
    await n1.call("edit", client="y1", seed=1, n=1, tag="only-here")
    states = await all_states(nodes)
    assert not same_content([states["y1"], states["h1"]])

    # the server agrees: a fresh client of each dialect, and the REST read-out
    reader = await node("reader")
    for dialect in ("hocuspocus", "ywebsocket"):
        fresh = await fresh_read(reader, base, "rt", dialect, f"fresh-{dialect}")
        assert fresh["content"] == content, content_diff(fresh["content"], content)
    decoded = await n2.decode(await server.yjs_state("rt"))
    assert decoded["content"] == content, content_diff(decoded["content"], content)

    # a clean restart on the same data file: same state
    await n1.close()
    await n2.close()
    server.terminate()
    await server.start()
    for dialect in ("ywebsocket", "hocuspocus"):
        fresh = await fresh_read(reader, base, "rt", dialect, f"after-restart-{dialect}")
        assert fresh["content"] == content, content_diff(fresh["content"], content)
    fresh = await fresh_read(reader, base, "rt2", "hocuspocus", "after-restart-rt2")
    assert fresh["content"] == content2, content_diff(fresh["content"], content2)


async def test_kill_9_right_after_sync_status_loses_nothing(yjs_server: Server, node: Node) -> None:
    server = await yjs_server()
    typed: list[str] = []
    reader = await node("reader")
    for k in range(2):
        writer = await node(f"writer{k}")
        await writer.open("h", "hocuspocus", server.base, "crash")
        await converge([writer], ["h"], what="the writer is synced")
        for j in range(5):
            marker = f"<{k}.{j}>"
            await writer.call("type", client="h", text=marker)
            typed.append(marker)
        await writer.call("edit", client="h", seed=k, n=30, kinds=["map", "array", "xml"])
        await eventually(
            lambda w=writer: _unsynced_is(w, "h", 0), timeout=30, what="SyncStatus for every edit"
        )
        saved = (await writer.state("h"))["content"]
        server.kill()  # at once: no clean shutdown
        writer.kill()  # and the client cannot send it again
        await server.start()
        after = await fresh_read(reader, server.base, "crash", "hocuspocus", f"reader{k}")
        assert after["content"] == saved, content_diff(after["content"], saved)
        text = "".join(part["insert"] for part in after["content"]["text"])
        assert text == "".join(typed)

    # clients that live through a crash: they edit while the server is down, reconnect by
    # themselves once it is back, and their offline edits are stored
    await reader.open("ys", "ywebsocket", server.base, "crash")
    await reader.open("hs", "hocuspocus", server.base, "crash")
    await converge([reader], ["ys", "hs"], what="the survivors sync")
    server.kill()
    await eventually(
        lambda: _all(reader, ["ys", "hs"], lambda s: not s["synced"]),
        timeout=30,
        what="the survivors notice",
    )
    await reader.call("edit", client="ys", seed=7, n=20, tag="ys-offline:")
    await reader.call("edit", client="hs", seed=8, n=20, tag="hs-offline:")
    await server.start()
    both = await converge([reader], ["ys", "hs"], what="the survivors reconnect and converge")
    assert "ys-offline" in json.dumps(both["content"]) and "hs-offline" in json.dumps(
        both["content"]
    )
    fresh = await fresh_read(reader, server.base, "crash", "ywebsocket", "after-crash")
    assert fresh["content"] == both["content"], content_diff(fresh["content"], both["content"])


async def _unsynced_is(clients: YClients, client: str, n: int) -> bool:
    state = await clients.state(client)
    return bool(state["synced"]) and state["unsynced"] == n


def _text(state: dict[str, Any]) -> str:
    return "".join(part["insert"] for part in state["content"]["text"])


async def test_read_only_clients_sync_but_their_edits_reach_nobody_and_bad_tokens_are_refused(
    yjs_server: Server, node: Node
) -> None:
    server = await yjs_server(secret=SECRET)
    n = await node("auth")
    rw, ro = token({"ro": ["read", "write"]}), token({"ro": ["read"]})
    await n.open("hw", "hocuspocus", server.base, "ro", token=rw)
    await n.open("yw", "ywebsocket", server.base, "ro", token=rw)
    await converge([n], ["hw", "yw"], what="the writers are synced")
    await n.call("type", client="hw", text="written. ")
    await converge([n], ["hw", "yw"], what="the writers agree")

    await n.open("hr", "hocuspocus", server.base, "ro", token=ro)
    await n.open("yr", "ywebsocket", server.base, "ro", token=ro)
    await eventually(
        lambda: _all(n, ["hr", "yr"], lambda s: s["synced"] and _text(s) == "written. "),
        timeout=30,
        what="the read-only clients sync",
    )
    hr = await n.state("hr")
    assert hr["authenticated"] and hr["scope"] == "readonly"

    # their edits, then an awareness change on the same connection (relayed after the edit was
    # handled: a frame order the server keeps)
    await n.call("type", client="hr", text="RO-H")
    await n.call("edit", client="hr", seed=3, n=10, kinds=["map", "xml"], tag="RO-H")
    await n.call("awareness", client="hr", field="user", value={"name": "after hr's edit"})
    await n.call("type", client="yr", text="RO-Y")
    await n.call("edit", client="yr", seed=4, n=10, kinds=["array"], tag="RO-Y")
    await n.call("awareness", client="yr", field="user", value={"name": "after yr's edit"})
    names = {"after hr's edit", "after yr's edit"}
    await eventually(
        lambda: _all(n, ["hw", "yw"], lambda s: names <= _names(s)),
        timeout=30,
        what="the writers see the read-only clients' awareness",
    )
    await eventually(
        lambda: _all(n, ["yr"], lambda s: bool(s["denied"])),
        timeout=30,
        what="y-websocket logs the permission-denied message",
    )
    assert "read-only" in (await n.state("yr"))["denied"][0]
    hr = await n.state("hr")
    assert hr["unsynced"] > 0  # SyncStatus(false): the provider knows nothing was saved

    # one Hocuspocus socket, two documents, two tokens: read-write on one, read-only on the other
    mux_rw = token({"mux-rw": ["read", "write"]})
    await n.open("mw", "hocuspocus", server.base, "mux-rw", token=mux_rw, socket="mux")
    await n.open("mr", "hocuspocus", server.base, "ro", token=ro, socket="mux")
    await eventually(
        lambda: _all(n, ["mw", "mr"], lambda s: s["synced"] and s["authenticated"]),
        timeout=30,
        what="both documents of the shared socket sync",
    )
    states = await n.states()
    assert states["mw"]["scope"] == "read-write" and states["mr"]["scope"] == "readonly"
    await n.call("type", client="mw", text="mux ok")
    await n.call("type", client="mr", text="RO-M")
    await n.call("awareness", client="mr", field="user", value={"name": "after mr's edit"})
    await eventually(
        lambda: _all(n, ["mw"], lambda s: s["unsynced"] == 0),
        timeout=30,
        what="the read-write document's edit is acknowledged",
    )
    await eventually(
        lambda: _all(n, ["hw"], lambda s: "after mr's edit" in _names(s)),
        timeout=30,
        what="the read-only document's awareness arrives (after its refused edit)",
    )
    assert (await n.state("mr"))["unsynced"] > 0

    await n.call("type", client="yw", text="more.")
    await converge([n], ["hw", "yw"], what="the writers agree again")
    hw = await n.state("hw")
    assert _text(hw) == "written. more."
    assert "RO" not in json.dumps(hw["content"])
    for dialect in ("ywebsocket", "hocuspocus"):
        fresh = await fresh_read(n, server.base, "ro", dialect, f"fresh-{dialect}", token=ro)
        assert fresh["content"] == hw["content"], content_diff(fresh["content"], hw["content"])

    # refused: forged, expired, for another document, and (read-only) a document that does not exist
    bad = {
        "forged": token({"ro": ["read", "write"]}, secret="not the server's secret, no no no"),
        "expired": token({"ro": ["read", "write"]}, ttl=-60),
        "elsewhere": token({"another": ["read", "write"]}),
        "garbage": "not.a.jwt",
    }
    for case, tok in bad.items():
        await n.open(f"bad-h-{case}", "hocuspocus", server.base, "ro", token=tok)
        await n.open(f"bad-y-{case}", "ywebsocket", server.base, "ro", token=tok)
    ro_missing = token({"nothing-here": ["read"]})
    await n.open("bad-h-missing", "hocuspocus", server.base, "nothing-here", token=ro_missing)
    await n.open("bad-y-missing", "ywebsocket", server.base, "nothing-here", token=ro_missing)
    cases = [*bad, "missing"]
    await eventually(
        lambda: _all(n, [f"bad-h-{c}" for c in cases], lambda s: bool(s["denied"])),
        timeout=30,
        what="every Hocuspocus client with a bad token gets authenticationFailed",
    )
    await eventually(
        lambda: _all(n, [f"bad-y-{c}" for c in cases], lambda s: bool(s["closes"])),
        timeout=30,
        what="every y-websocket connection with a bad token is closed",
    )
    states = await n.states()
    for c in cases:
        h, y = states[f"bad-h-{c}"], states[f"bad-y-{c}"]
        assert not h["authenticated"] and not h["syncedOnce"] and _text(h) == "", (c, h)
        assert not y["syncedOnce"] and _text(y) == "", (c, y)
        print(c, "hocuspocus:", h["denied"][:1], "y-websocket:", y["closes"][:2], y["terminal"])
    # an unknown document for a read-only client: 4404 (y-websocket stops reconnecting)
    assert states["bad-y-missing"]["closes"][0]["code"] == 4404, states["bad-y-missing"]["closes"]
    assert states["bad-y-missing"]["terminal"] is not None
    # y-websocket stops reconnecting on a refusal (4400-4499): exactly one attempt each
    for c in cases:
        assert len(states[f"bad-y-{c}"]["closes"]) == 1, (c, states[f"bad-y-{c}"]["closes"])


async def test_a_native_document_is_refused_to_yjs_clients(yjs_server: Server, node: Node) -> None:
    server = await yjs_server()
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{server.url}/api/documents", json={"id": "native", "title": "N"})
        assert r.status_code in (200, 201), r.text
        r = await http.get(f"{server.url}/api/documents/native")
        assert r.json().get("kind", "crdt") == "crdt"
    n = await node("native")
    await n.open("h", "hocuspocus", server.base, "native")
    await n.open("y", "ywebsocket", server.base, "native")
    await eventually(lambda: _all(n, ["h"], lambda s: bool(s["denied"])), timeout=30, what="denied")
    await eventually(lambda: _all(n, ["y"], lambda s: bool(s["closes"])), timeout=30, what="closed")
    states = await n.states()
    assert states["h"]["denied"][0] == "not a Yjs document"
    # (the contract says 4404; the server sends 4403 "forbidden": either stops y-websocket)
    assert states["y"]["closes"][0]["code"] in (4403, 4404), states["y"]["closes"]
    assert states["y"]["terminal"] is not None
    # and a Yjs client's first connect creates a document of kind yjs
    await n.open("h2", "hocuspocus", server.base, "rich")
    await converge([n], ["h2"], what="rich is created")
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(f"{server.url}/api/documents/rich")
        listed = await http.get(f"{server.url}/api/documents")
    assert r.status_code == 200 and r.json()["kind"] == "yjs", r.text
    kinds = {d["id"]: d["kind"] for d in listed.json()["documents"]}
    assert kinds == {"native": "crdt", "rich": "yjs"}, listed.text


async def test_awareness_appears_at_the_others_and_disappears_when_the_client_dies(
    yjs_server: Server, node: Node
) -> None:
    server = await yjs_server()
    watcher, hn, yn = await node("watcher"), await node("h"), await node("y")
    await watcher.open("w", "hocuspocus", server.base, "aw", user={"name": "Watcher"})
    await watcher.open("wy", "ywebsocket", server.base, "aw")
    await hn.open("h", "hocuspocus", server.base, "aw", user={"name": "H", "color": "#ff0000"})
    await yn.open("y", "ywebsocket", server.base, "aw", user={"name": "Y", "color": "#00ff00"})
    everyone = {"Watcher", "H", "Y"}
    await eventually(
        lambda: _all(watcher, ["w", "wy"], lambda s: everyone <= _names(s)),
        timeout=30,
        what="both watchers see every user",
    )
    for clients, c in ((hn, "h"), (yn, "y")):
        await eventually(
            lambda clients=clients, c=c: _all(clients, [c], lambda s: everyone <= _names(s)),
            timeout=30,
            what=f"{c} sees every user",
        )
    # a change of state travels too
    await hn.call("awareness", client="h", field="cursor", value={"anchor": 3, "head": 5})
    await eventually(
        lambda: _all(
            watcher,
            ["wy"],
            lambda s: any(
                v.get("cursor") == {"anchor": 3, "head": 5} for v in s["awareness"].values()
            ),
        ),
        timeout=30,
        what="the cursor arrives",
    )
    hn.kill()
    await eventually(
        lambda: _all(watcher, ["w", "wy"], lambda s: _names(s) == {"Watcher", "Y"}),
        timeout=30,
        what="H's state is removed once its process is killed",
    )
    yn.kill()
    await eventually(
        lambda: _all(watcher, ["w", "wy"], lambda s: _names(s) == {"Watcher"}),
        timeout=30,
        what="Y's state is removed once its process is killed",
    )


async def _all(n: YClients, names: list[str], check: Callable[[dict[str, Any]], bool]) -> bool:
    states = await n.states()
    return all(check(states[k]) for k in names)


def _names(state: dict[str, Any]) -> set[str]:
    return {
        s["user"]["name"] for s in state["awareness"].values() if isinstance(s.get("user"), dict)
    }


async def test_an_update_that_splits_an_emoji_is_refused_and_nothing_else_changes(
    yjs_server: Server, node: Node
) -> None:
    """Yjs lets a client insert between the two UTF-16 halves of an emoji, or delete one half
    (it then holds U+FFFD); pycrdt/Yrs cannot hold that (its copy diverged, and changed on
    reload, before the server refused such updates). Refused with close 1003, never
    acknowledged; the others and the stored document are untouched."""
    server = await yjs_server()
    n = await node("emoji")
    await n.open("a", "ywebsocket", server.base, "emoji")
    await n.open("b", "hocuspocus", server.base, "emoji")
    await n.open("c", "ywebsocket", server.base, "emoji")
    await converge([n], ["a", "b", "c"], what="synced")
    await n.call("type", client="a", text="a😀b😀c")
    await converge([n], ["a", "b", "c"], what="the emoji arrives")
    await n.call("type", client="b", text="X", at=2)  # between the surrogates
    await n.call("delete", client="c", at=5, n=1)  # half of the second emoji
    await eventually(
        lambda: _all(n, ["b", "c"], lambda s: any(c["code"] == 1003 for c in s["closes"])),
        timeout=30,
        what="both split updates are refused with 1003",
    )
    b = await n.state("b")
    assert b["unsynced"] > 0  # never acknowledged
    await n.call("destroy", client="b")  # (they would send the same again on every reconnect)
    await n.call("destroy", client="c")
    await n.call("edit", client="a", seed=5, n=20, kinds=["xml", "text", "map"])
    await converge([n], ["a"], what="a is settled")
    a = await n.state("a")
    assert a["closes"] == [] and "X" not in _text(a) and "\ufffd" not in _text(a)
    fresh = await fresh_read(n, server.base, "emoji", "hocuspocus", "fresh")
    assert fresh["content"] == a["content"], content_diff(fresh["content"], a["content"])
    await n.close()
    server.terminate()
    await server.start()
    fresh = await fresh_read(await node("reader"), server.base, "emoji", "ywebsocket", "fresh")
    assert fresh["content"] == a["content"], content_diff(fresh["content"], a["content"])


def _stateless(state: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    out = [json.loads(p) for p in state["stateless"]]
    return [m for m in out if m.get("type") == kind]


async def test_chat_in_hocuspocus_stateless_messages(yjs_server: Server, node: Node) -> None:
    server = await yjs_server()
    n = await node("chat")
    await n.open("a", "hocuspocus", server.base, "chat")
    await n.open("b", "hocuspocus", server.base, "chat")
    await converge([n], ["a", "b"], what="synced")
    await eventually(
        lambda: _all(n, ["a", "b"], lambda s: bool(_stateless(s, "cowrite.chat.history"))),
        timeout=30,
        what="each connection gets the chat history when it attaches",
    )
    history = _stateless(await n.state("a"), "cowrite.chat.history")[0]
    assert history["messages"] == [] and history["has_more"] is False
    send = {"type": "cowrite.chat.send", "text": "hello 👋", "name": "Ann"}
    await n.call("stateless", client="a", payload=json.dumps(send))
    await eventually(
        lambda: _all(n, ["a", "b"], lambda s: bool(_stateless(s, "cowrite.chat"))),
        timeout=30,
        what="the message reaches every connection of the document, its sender's too",
    )
    message = _stateless(await n.state("b"), "cowrite.chat")[0]["message"]
    assert message["text"] == "hello 👋" and message["author_name"] == "Ann"
    # (the contract lists "edited_ms" and "deleted" in every message; the server omits them at
    # their defaults, null and false)
    assert not message.get("deleted", False) and message.get("edited_ms") is None
    await n.call("stateless", client="b", payload=json.dumps({**send, "text": ""}))
    await n.call("stateless", client="b", payload="not json")
    await eventually(
        lambda: _all(n, ["b"], lambda s: len(_stateless(s, "cowrite.error")) == 2),
        timeout=30,
        what="refused chat messages get cowrite.error",
    )
    assert len(_stateless(await n.state("a"), "cowrite.chat")) == 1  # nothing else was relayed
    await n.open("c", "hocuspocus", server.base, "chat")
    await eventually(
        lambda: _all(n, ["c"], lambda s: bool(_stateless(s, "cowrite.chat.history"))),
        timeout=30,
        what="a later connection gets the history",
    )
    later = _stateless(await n.state("c"), "cowrite.chat.history")[0]
    assert [m["text"] for m in later["messages"]] == ["hello 👋"]


async def test_an_expired_token_ends_the_session(yjs_server: Server, node: Node) -> None:
    server = await yjs_server(secret=SECRET)
    n = await node("expiry")
    await n.open("w", "hocuspocus", server.base, "exp", token=token({"exp": ["write"]}))
    await converge([n], ["w"], what="the long-lived writer syncs")
    short = token({"exp": ["read", "write"]}, ttl=3)
    await n.open("h", "hocuspocus", server.base, "exp", token=short)
    await n.open("y", "ywebsocket", server.base, "exp", token=short)
    await converge([n], ["w", "h", "y"], what="the short-lived clients sync")
    await eventually(
        lambda: _all(n, ["h", "y"], lambda s: bool(s["closes"])),
        timeout=60,
        what="the sessions end when the token expires",
    )
    await eventually(
        lambda: _all(n, ["h", "y"], lambda s: bool(s["denied"]) or s.get("terminal") is not None),
        timeout=60,
        what="the expired token is refused when they reconnect",
    )
    states = await n.states()
    print("closes:", states["h"]["closes"][:2], states["y"]["closes"][:2], states["y"]["terminal"])
    await n.call("type", client="h", text="too late H")
    await n.call("type", client="y", text="too late Y")
    await n.call("type", client="w", text="still here")
    await converge([n], ["w"], what="the writer is acknowledged")
    fresh = await fresh_read(
        n, server.base, "exp", "hocuspocus", "fresh", token=token({"exp": ["read"]})
    )
    assert _text(fresh) == "still here"


async def test_a_document_over_the_frame_limit_syncs_to_fresh_clients_and_after_a_restart(
    yjs_server: Server, node: Node
) -> None:
    """Typed in pieces below the 1 MB message limit, a document grows past it: the server's sync
    step 2 to a new client (one frame of the whole document) and a reload still work."""
    server = await yjs_server()
    n = await node("big")
    await n.open("h", "hocuspocus", server.base, "big")
    await converge([n], ["h"], what="synced")
    piece = "0123456789abcdef" * 1024  # 16 KiB
    for k in range(80):  # 1.25 MiB
        await n.call("type", client="h", text=f"<{k}>{piece}")
    await converge([n], ["h"], what="every piece is acknowledged")
    want = _text(await n.state("h"))
    assert len(want) > 1_300_000
    for dialect in ("ywebsocket", "hocuspocus"):
        fresh = await fresh_read(n, server.base, "big", dialect, f"fresh-{dialect}")
        assert _text(fresh) == want
    await n.close()
    server.terminate()
    await server.start()
    fresh = await fresh_read(await node("reader"), server.base, "big", "ywebsocket", "after")
    assert _text(fresh) == want


async def test_two_providers_of_one_document_on_one_socket_with_session_routing_keys(
    yjs_server: Server, node: Node
) -> None:
    """Hocuspocus 4.x ``sessionAwareness``: two providers of the same document share a socket,
    each addressed as ``name\\0sessionId``; both sync, edit and see each other."""
    server = await yjs_server()
    n = await node("routing")
    for c in ("p", "q"):
        await n.open(
            c,
            "hocuspocus",
            server.base,
            "routed",
            socket="one",
            session_awareness=True,
            user={"name": c},
        )
    await n.open("y", "ywebsocket", server.base, "routed", user={"name": "y"})
    await converge([n], ["p", "q", "y"], what="all three sync")
    await n.call("edit", client="p", seed=1, n=20, tag="p:")
    await n.call("edit", client="q", seed=2, n=20, tag="q:")
    await n.call("edit", client="y", seed=3, n=20, tag="y:")
    await converge([n], ["p", "q", "y"], what="all three converge")
    await eventually(
        lambda: _all(n, ["p", "q", "y"], lambda s: _names(s) == {"p", "q", "y"}),
        timeout=30,
        what="each sees the others' awareness",
    )
    # one provider leaves the shared socket (Hocuspocus CLOSE): its state goes, the other stays
    await n.call("destroy", client="q")
    await eventually(
        lambda: _all(n, ["p", "y"], lambda s: _names(s) == {"p", "y"}),
        timeout=30,
        what="q's awareness is removed when it leaves",
    )
    await n.call("edit", client="p", seed=4, n=10, tag="p'")
    await n.call("edit", client="y", seed=5, n=10, tag="y'")
    await converge([n], ["p", "y"], what="p and y go on")


async def test_clients_typing_through_a_server_crash_reconnect_and_converge(
    yjs_server: Server, node: Node
) -> None:
    """A user keeps typing while the server dies and comes back: the providers reconnect by
    themselves, send what the server lacks, and everything converges."""
    server = await yjs_server()
    n = await node("typing")
    await n.open("h", "hocuspocus", server.base, "through")
    await n.open("y", "ywebsocket", server.base, "through")
    await converge([n], ["h", "y"], what="synced")
    # (only the Hocuspocus client types on: a y-websocket client typing while it reconnects
    # can be closed for good, see test_typing_on_while_the_connection_comes_back)
    await n.call("edit", client="y", seed=9, n=30, tag="y:")
    typing = [
        asyncio.create_task(
            n.call("edit", client="h", seed=1, n=120, pause_ms=10, tag="h:", timeout=120)
        )
    ]
    await asyncio.sleep(0.5)
    server.kill()
    await asyncio.sleep(0.5)
    await server.start()
    await asyncio.gather(*typing)
    try:
        final = await converge([n], ["h", "y"], what="both reconnect and converge")
    finally:
        states = await n.states()
        print({c: (s["status"], s["closes"], s.get("terminal")) for c, s in states.items()})
    fresh = await fresh_read(n, server.base, "through", "hocuspocus", "fresh")
    assert fresh["content"] == final["content"], content_diff(fresh["content"], final["content"])


@pytest.mark.parametrize(
    "dialect",
    [
        "ywebsocket",
        "hocuspocus",
    ],
)
async def test_typing_on_while_the_connection_comes_back(
    yjs_server: Server, node: Node, dialect: str
) -> None:
    """A user edits offline, the connection comes back and they type on at once: the updates
    typed before the sync handshake is through depend on the offline edits the server does not
    have yet. The provider must end up connected and in sync, not closed for good."""
    server = await yjs_server()
    n = await node("comeback")
    await n.open("w", "hocuspocus", server.base, "comeback")
    await n.open("c", dialect, server.base, "comeback")
    await converge([n], ["w", "c"], what="synced")
    await n.call("disconnect", client="c")
    await n.call("edit", client="c", seed=1, n=10, kinds=["text"], tag="offline:")
    await n.call("connect_and_type", client="c", n=8, char="!")

    async def settled_or_given_up() -> bool:
        states = await n.states()
        given_up = states["c"].get("terminal") is not None
        return given_up or (all(map(settled, states.values())) and same_content([*states.values()]))

    await eventually(settled_or_given_up, timeout=60, what="the returning client settles")
    c = await n.state("c")
    assert c.get("terminal") is None, f"{dialect} gave up: {c['closes']}"
    await converge([n], ["w", "c"], what="the returning client converges")
