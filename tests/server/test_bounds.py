"""One client cannot make the server hold or compute without bound (issue 9, item 3).

Replica deltas are validated like thin edits (node length, Unicode, JSON nesting), new replica
ids are capped per frame and per document, and a refused batch leaves nothing behind. Each test
talks the raw protocol to a real server and checks that the document stays usable for others.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from pathlib import Path
from typing import Any

import httpx

from cowrite.engine.document import Document
from cowrite.engine.ops import NodeKind

sys.path.insert(0, str(Path(__file__).parent))  # protocol_clients.py, next to this file
from protocol_clients import ReplicaClient, SilentSocket, ThinClient, running


def _sync(doc: str, delta: bytes, edit_id: str) -> dict[str, Any]:
    return {
        "type": "sync",
        "doc": doc,
        "delta": base64.b64encode(delta).decode(),
        "edit_id": edit_id,
    }


async def _refused(r: ReplicaClient, edit_id: str) -> dict[str, Any]:
    """The error answering ``edit_id`` (never an ack)."""
    msg = await r.expect("error", where=lambda m: m.get("edit_id") == edit_id)
    assert not any(m["type"] == "ack" and m.get("edit_id") == edit_id for m in r.inbox)
    return msg


async def _usable(server: Any, doc: str) -> dict[str, Any]:
    """A thin client can still join ``doc`` and edit it, and REST reads it."""
    t = await ThinClient.connect(server.ws_url, "after", doc, create=False)
    t.insert("text:ok", 0, "fine")
    await t.flush()
    await t.expect("ack")
    async with httpx.AsyncClient(base_url=server.url) as http:
        res = await http.get(f"/api/documents/{doc}/json")
        assert res.status_code == 200, res.text
    await t.close()
    body: dict[str, Any] = res.json()
    return body


async def test_replica_sync_cannot_exceed_the_node_length_limit(make_settings: Any) -> None:
    async with running(make_settings(max_node_length=100)) as server:
        r = await ReplicaClient.connect(server.ws_url, "rep", "long")
        before = r.doc.version
        r.doc.text("t").insert(0, "x" * 101)
        await r.send(_sync("long", r.doc.delta_since(before), "big"))
        assert (await _refused(r, "big"))["code"] == "document_too_large"
        room = server.state.hub.rooms["long"].room
        assert "t" not in room.doc.to_json() or room.doc.to_json()["t"] == ""
        # in several frames too: the limit is on the node, not on one frame
        src = Document(777)
        src.text("t").insert(0, "y" * 60)
        await r.send(_sync("long", src.delta_since({}), "first"))
        await r.expect("ack", where=lambda m: m.get("edit_id") == "first")
        v = src.version
        src.text("t").insert(60, "y" * 60)
        await r.send(_sync("long", src.delta_since(v), "second"))
        assert (await _refused(r, "second"))["code"] == "document_too_large"
        assert room.doc.to_json()["t"] == "y" * 60
        await _usable(server, "long")
        await r.close()


async def test_replica_values_with_lone_surrogates_are_refused(make_settings: Any) -> None:
    async with running(make_settings()) as server:
        r = await ReplicaClient.connect(server.ws_url, "rep", "poison")
        cases = {
            "map": lambda d: d.map("m").set("k", "bad\ud800"),
            "nested": lambda d: d.map("m").set("k", {"a": ["\udfff"]}),
            "key-in-value": lambda d: d.map("m").set("k", {"\ud800": 1}),
            "register": lambda d: d.register("r").set("\ud800"),
            "list": lambda d: d.list("l").insert(0, ["ok", "\ud800"]),
        }
        for name, make in cases.items():
            src = Document(1000 + len(name))
            make(src)
            await r.send(_sync("poison", src.delta_since({}), name))
            assert (await _refused(r, name))["code"] == "bad_message", name
        body = await _usable(server, "poison")
        assert body.get("ok") == "fine"
        assert set(body) == {"ok"}  # nothing of the refused deltas
        await r.close()
    # and nothing poisonous was stored: a restarted server loads it and serves joins
    async with running(make_settings()) as server:
        await _usable(server, "poison")


async def test_new_replica_ids_are_capped_per_frame(make_settings: Any) -> None:
    async with running(make_settings(max_new_replicas_per_sync=8)) as server:
        r = await ReplicaClient.connect(server.ws_url, "rep", "many")
        crowd = Document(5)
        for i in range(9):
            other = Document(100 + i)
            other.counter("c").add(1)
            crowd.merge(other.delta_since({}))
        await r.send(_sync("many", crowd.delta_since({}), "crowd"))
        assert (await _refused(r, "crowd"))["code"] == "too_many_replicas"
        doc = server.state.hub.rooms["many"].room.doc
        assert all(doc.known_client(100 + i) is None for i in range(9))
        few = Document(6)
        for i in range(7):
            other = Document(200 + i)
            other.counter("c").add(1)
            few.merge(other.delta_since({}))
        await r.send(_sync("many", few.delta_since({}), "few"))
        await r.expect("ack", where=lambda m: m.get("edit_id") == "few")
        await _usable(server, "many")
        await r.close()


async def test_new_replica_ids_are_capped_per_document(make_settings: Any) -> None:
    settings = make_settings(max_new_replicas_per_sync=8, max_replicas_per_document=12)
    async with running(settings) as server:
        r = await ReplicaClient.connect(server.ws_url, "rep", "crowded")
        for frame in range(3):
            crowd = Document(300 + frame)  # its own replica never writes: 5 new ids per frame
            for i in range(5):
                other = Document(1000 + 10 * frame + i)
                other.counter("c").add(1)
                crowd.merge(other.delta_since({}))
            await r.send(_sync("crowded", crowd.delta_since({}), f"f{frame}"))
            if frame < 2:
                await r.expect("ack", where=lambda m, f=frame: m.get("edit_id") == f"f{f}")
        assert (await _refused(r, "f2"))["code"] == "too_many_replicas"
        doc = server.state.hub.rooms["crowded"].room.doc
        assert doc.known_client(1020) is None
        # replicas the document knows may still write
        known = Document(1000)
        known.counter("c").add(1)
        await r.send(_sync("crowded", known.delta_since({}), "known"))
        await r.expect("ack", where=lambda m: m.get("edit_id") == "known")
        await r.close()


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth - 1):
        value = [value]
    return value


async def test_a_value_nested_65_levels_is_refused_and_the_batch_is_atomic(
    make_settings: Any,
) -> None:
    async with running(make_settings()) as server:
        t = await ThinClient.connect(server.ws_url, "deep", "nested")
        for op in (
            {"type": "set", "node": "map:m", "key": "bad", "value": _deep(65)},
            {"type": "seq", "node": "list:l", "edit": [[_deep(65)]]},
        ):
            edit = {
                "type": "edit",
                "doc": "nested",
                "edit_id": f"e-{op['type']}",
                "version": t.version,
                "ops": [
                    {"type": "set", "node": "map:m", "key": "first", "value": 1},
                    op,
                ],
            }
            await t.send(json.dumps(edit))
            error = await t.expect("error", where=lambda m, e=edit: m["edit_id"] == e["edit_id"])
            assert error["code"] == "invalid_edit", error
        room = server.state.hub.rooms["nested"].room
        assert room.doc.to_json().get("m", {}) == {}  # nothing of either batch was applied
        assert room.version == 0
        ok = {"type": "set", "node": "map:m", "key": "fits", "value": _deep(64)}
        await t.send(json.dumps({**edit, "edit_id": "fits", "ops": [ok]}))
        await t.expect("ack", where=lambda m: m["edit_id"] == "fits")
        await t.close()


# ------------------------------------------------------------------ the outbox, in bytes


async def test_the_outbox_is_bounded_in_bytes(make_settings: Any) -> None:
    """A client that asks for a large document again and again and never reads is dropped once
    its outbox holds ``outbox_bytes``, long before ``outbox_messages`` fills."""
    settings = make_settings(outbox_bytes=3_000_000, heartbeat_s=30, heartbeat_timeout_s=60)
    async with running(settings) as server:
        port = int(server.url.rsplit(":", 1)[1])
        writer = await ThinClient.connect(server.ws_url, "w", "big")
        writer.insert("text:body", 0, "x" * 900_000)
        await writer.flush()
        await writer.expect("ack")
        silent = await asyncio.to_thread(SilentSocket, port)
        silent.send({"type": "hello", "client_id": "silent"})
        await asyncio.to_thread(silent.recv_until, "welcome")
        silent.send({"type": "join", "doc": "big"})
        await asyncio.to_thread(silent.recv_until, "joined")  # from now on it reads nothing
        peers = server.state.hub.rooms["big"].membership.connections()
        conn = next(c for c in peers if c.client_id == "silent")
        peak = 0
        for _ in range(40):  # 40 joins of ~0.9 MB each: 36 MB if nothing bounded it
            silent.send({"type": "join", "doc": "big"})
            await asyncio.sleep(0.02)
            peak = max(peak, conn.outbox_bytes)
            if conn.closing is not None:
                break
        assert conn.closing is not None and conn.closing[0] == 4008
        # the bound counts bytes beyond the oldest message (one message alone always fits):
        # at most outbox_bytes plus one joined (~0.9 MB)
        assert peak <= 3_000_000 + 1_000_000
        assert server.state.metrics.disconnects.labels("4008")._value.get() == 1
        # the writer carries on
        writer.insert("text:body", 0, "still here")
        await writer.flush()
        await writer.expect("ack")
        silent.sock.close()
        await writer.close()


async def test_one_join_per_document_waits_in_the_pipeline(make_settings: Any) -> None:
    """Joins queued faster than the pipeline sends them (a store that never yields) each hold a
    snapshot: a connection may have one on its way per document; the others are refused."""
    settings = make_settings(data=":memory:", heartbeat_s=30, heartbeat_timeout_s=60)
    async with running(settings) as server:
        port = int(server.url.rsplit(":", 1)[1])
        writer = await ThinClient.connect(server.ws_url, "w", "big")
        writer.insert("text:body", 0, "x" * 100_000)
        await writer.flush()
        await writer.expect("ack")
        silent = await asyncio.to_thread(SilentSocket, port)
        silent.send({"type": "hello", "client_id": "silent"})
        await asyncio.to_thread(silent.recv_until, "welcome")
        for _ in range(40):
            silent.send({"type": "join", "doc": "big"})
        joined = refused = 0
        while joined + refused < 40:
            for m in await asyncio.to_thread(silent.recv):
                joined += m["type"] == "joined"
                refused += m["type"] == "error" and m["code"] == "rate_limited"
        assert refused > 0 and joined + refused == 40
        silent.sock.close()
        await writer.close()


# ------------------------------------------------------------------ presence


async def test_presence_is_rate_limited(make_settings: Any) -> None:
    settings = make_settings(presence_per_second=5, presence_burst=5)
    async with running(settings) as server:
        a = await ThinClient.connect(server.ws_url, "a", "here")
        b = await ThinClient.connect(server.ws_url, "b", "here")
        session = a.welcome["session"]
        for i in range(20):
            await a.send({"type": "presence", "doc": "here", "user": {"name": f"n{i}"}})
        errors = [await a.expect("error") for _ in range(13)]
        assert {e["code"] for e in errors} == {"rate_limited"}
        a.insert("text:t", 0, "edits have their own budget")
        await a.flush()
        await a.expect("ack")
        await b.wait_for(lambda: any(m["type"] == "remote" for m in b.inbox))
        names = [
            e["user"]["name"]
            for m in b.inbox
            if m["type"] == "presence_update"
            for e in m.get("entries", [])
            if e["session"] == session and e["user"]["name"].startswith("n")
        ]
        assert 5 <= len(names) <= 7
        await a.close()
        await b.close()


async def test_presence_fields_are_capped_in_bytes(make_settings: Any) -> None:
    async with running(make_settings(max_presence_bytes=2048)) as server:
        a = await ThinClient.connect(server.ws_url, "a", "here")
        b = await ThinClient.connect(server.ws_url, "b", "here")
        big = {"type": "presence", "doc": "here", "user": {"fields": {"blob": "x" * 5000}}}
        await a.send(big)
        assert (await a.expect("error"))["code"] == "too_large"
        small = {"type": "presence", "doc": "here", "user": {"fields": {"mood": "ok"}}}
        await a.send(small)
        update = await b.expect(
            "presence_update",
            where=lambda m: any(e["user"].get("fields") for e in m.get("entries", [])),
        )
        assert update["entries"][0]["user"]["fields"] == {"mood": "ok"}
        member = server.state.hub.rooms["here"].room.members[a.welcome["session"]]
        assert member.user.fields == {"mood": "ok"}
        await a.close()
        await b.close()


# ------------------------------------------------------------------ map keys and nested nodes


def _sets(doc: str, version: int, edit_id: str, keys: list[str], value: Any = 1) -> dict[str, Any]:
    ops = [{"type": "set", "node": "map:m", "key": k, "value": value} for k in keys]
    return {"type": "edit", "doc": doc, "edit_id": edit_id, "version": version, "ops": ops}


async def test_map_keys_and_new_nodes_are_capped(make_settings: Any) -> None:
    settings = make_settings(max_map_keys=50, max_nodes_per_document=20, max_key_length=100)
    async with running(settings) as server:
        t = await ThinClient.connect(server.ws_url, "t", "keys")
        room = server.state.hub.rooms["keys"].room

        async def answer(msg: dict[str, Any]) -> dict[str, Any]:
            await t.send(msg)
            return (
                await t.expect("error", where=lambda m: m.get("edit_id") == msg["edit_id"])
                if msg["edit_id"].startswith("no")
                else await t.expect("ack", where=lambda m: m["edit_id"] == msg["edit_id"])
            )

        many = [f"k{i}" for i in range(60)]
        err = await answer(_sets("keys", room.version, "no-many", many))
        assert err["code"] == "document_too_large"
        assert room.doc.to_json().get("m", {}) == {}
        await answer(_sets("keys", room.version, "ok-40", many[:40]))
        err = await answer(_sets("keys", room.version, "no-more", many[40:]))
        assert err["code"] == "document_too_large"
        await answer(_sets("keys", room.version, "ok-again", many[:40], 2))  # overwrites fit
        err = await answer(_sets("keys", room.version, "no-long", ["x" * 101]))
        assert err["code"] == "invalid_edit"
        new = {"$new": "map"}
        err = await answer(_sets("keys", room.version, "no-nodes", many[:25], new))
        assert err["code"] == "document_too_large"
        list_nodes = {
            "type": "edit",
            "doc": "keys",
            "edit_id": "no-list-nodes",
            "version": room.version,
            "ops": [{"type": "seq", "node": "list:l", "edit": [[new] * 25]}],
        }
        assert (await answer(list_nodes))["code"] == "document_too_large"
        await answer(_sets("keys", room.version, "ok-nodes", many[:5], new))
        assert len(room.doc.to_json()["m"]) == 40
        await t.close()


async def test_replica_map_keys_and_new_nodes_are_capped(make_settings: Any) -> None:
    settings = make_settings(max_map_keys=50, max_nodes_per_document=20, max_key_length=100)
    async with running(settings) as server:
        r = await ReplicaClient.connect(server.ws_url, "rep", "rkeys")
        src = Document(4242)
        for i in range(60):
            src.map("m").set(f"k{i}", i)
        await r.send(_sync("rkeys", src.delta_since({}), "keys"))
        assert (await _refused(r, "keys"))["code"] == "document_too_large"
        src = Document(4243)
        for i in range(25):
            src.map("m").set_new(f"n{i}", NodeKind.MAP)
        await r.send(_sync("rkeys", src.delta_since({}), "nodes"))
        assert (await _refused(r, "nodes"))["code"] == "document_too_large"
        src = Document(4244)
        src.map("m").set("y" * 101, 1)
        await r.send(_sync("rkeys", src.delta_since({}), "long"))
        assert (await _refused(r, "long"))["code"] == "bad_message"
        assert server.state.hub.rooms["rkeys"].room.doc.to_json().get("m", {}) == {}
        src = Document(4245)  # what fits: writes, deletes (a write of "absent"), nested nodes
        src.map("m").set("a", {"x": [1, None]})
        src.map("m").set("b", 2)
        src.map("m").delete("b")
        src.map("m").set_new("n", NodeKind.LIST)
        src.register("r").set("v")
        await r.send(_sync("rkeys", src.delta_since({}), "fits"))
        await r.expect("ack", where=lambda m: m.get("edit_id") == "fits")
        assert server.state.hub.rooms["rkeys"].room.doc.to_json()["m"]["a"] == {"x": [1, None]}
        await r.close()


async def test_big_batches_cost_more_of_the_edit_rate_limit(make_settings: Any) -> None:
    """A batch of n ops costs 1 + n // 10 edits of the budget: 1000-op batches cannot come
    at the rate of one-op edits."""
    async with running(make_settings(edits_per_second=1, edit_burst=200)) as server:
        t = await ThinClient.connect(server.ws_url, "t", "cost")
        keys = [f"k{i}" for i in range(1000)]
        answers = []
        for i in range(4):
            await t.send(_sets("cost", 0, f"b{i}", keys, i))
            answers.append(
                await t.expect(
                    "ack" if i < 1 else "error", where=lambda m, i=i: m["edit_id"] == f"b{i}"
                )
            )
        assert answers[0]["type"] == "ack"
        assert all(a["code"] == "rate_limited" for a in answers[2:])
        await t.close()


# ------------------------------------------------------------------ documents


async def _join(c: Any, doc: str) -> dict[str, Any]:
    """The answer to a join of ``doc``: ``joined`` or an ``error``."""
    await c.send({"type": "join", "doc": doc, "create": True})

    def answer() -> bool:
        return any(m.get("doc") == doc and m["type"] in ("joined", "error") for m in c.inbox)

    await c.wait_for(answer)
    msg = next(m for m in c.inbox if m.get("doc") == doc and m["type"] in ("joined", "error"))
    c.inbox.remove(msg)
    return msg


async def test_documents_per_connection_are_capped(make_settings: Any) -> None:
    async with running(make_settings(max_documents_per_connection=3)) as server:
        c = await ThinClient.connect(server.ws_url, "c", "d0")
        for doc in ("d1", "d2"):
            assert (await _join(c, doc))["type"] == "joined"
        refused = await _join(c, "d3")
        assert refused["type"] == "error" and refused["code"] == "too_many_documents"
        assert "d3" not in server.state.hub.rooms  # refused before anything was loaded
        assert (await _join(c, "d1"))["type"] == "joined"  # a rejoin is no new document
        await c.send({"type": "leave", "doc": "d2"})
        assert (await _join(c, "d3"))["type"] == "joined"
        await c.close()


async def test_loaded_documents_are_capped(make_settings: Any) -> None:
    settings = make_settings(max_loaded_documents=2, unload_after_s=0.2)
    async with running(settings) as server:
        a = await ThinClient.connect(server.ws_url, "a", "one")
        b = await ThinClient.connect(server.ws_url, "b", "two")
        refused = await _join(a, "three")
        assert refused["type"] == "error" and refused["code"] == "too_many_documents"
        async with httpx.AsyncClient(base_url=server.url) as http:
            res = await http.post("/api/documents", json={"id": "rest-made"})
            assert res.status_code == 201, res.text
            res = await http.get("/api/documents/rest-made/json")
            assert res.status_code == 503 and res.json()["error"]["code"] == "too_many_documents"
            await b.close()  # "two" unloads: room for another
            while "two" in server.state.hub.rooms:
                await asyncio.sleep(0.05)
            res = await http.get("/api/documents/rest-made/json")
            assert res.status_code == 200
        assert len(server.state.hub.rooms) <= 2
        await a.close()


async def test_joins_are_rate_limited(make_settings: Any) -> None:
    async with running(make_settings(joins_per_second=1, join_burst=3)) as server:
        c = await ThinClient.connect(server.ws_url, "c", "j0")  # one of the three
        answers = [await _join(c, f"j{i}") for i in range(1, 6)]
        assert [a["type"] for a in answers[:2]] == ["joined", "joined"]
        assert {a["code"] for a in answers[3:]} == {"rate_limited"}
        await c.close()


# ------------------------------------------------------------------ expensive reads


async def test_history_reads_over_rest_are_rate_limited(make_settings: Any) -> None:
    """Diffs and old versions are computed on the event loop in time proportional to the
    document's ops: a server-wide budget of ops (``history_ops_burst``, then
    ``history_ops_per_second``); requests beyond it are refused with 429 at once."""
    settings = make_settings(history_ops_per_second=0.01, history_ops_burst=100)
    async with running(settings) as server:
        t = await ThinClient.connect(server.ws_url, "t", "hist")
        for i in range(3):
            t.insert("text:body", 0, f"v{i} " * 5)
            await t.flush()
            await t.expect("ack")
        ops = sum(server.state.hub.rooms["hist"].room.doc.version.values())
        assert 10 < ops < 50
        async with httpx.AsyncClient(base_url=server.url) as http:
            paths = ["/api/documents/hist/diff?from=0"] * 8 + ["/api/documents/hist/versions/0"]
            answers = await asyncio.gather(*(http.get(path) for path in paths))
            codes = [a.status_code for a in answers]
            assert codes.count(200) == 100 // ops and codes.count(429) == 9 - 100 // ops, codes
            refused = next(a for a in answers if a.status_code == 429)
            assert refused.json()["error"]["code"] == "rate_limited"
            assert "retry-after" in refused.headers
            assert (await http.get("/api/documents/hist/json")).status_code == 200  # cheap
        await t.close()


async def test_joins_at_one_version_share_one_snapshot(
    make_settings: Any, monkeypatch: Any
) -> None:
    """The snapshot a thin join carries is computed once per version, not once per join."""
    import cowrite.rooms.room as room_module

    calls = []
    real = room_module.snapshot

    def counting(doc: Document, **options: Any) -> Any:  # (paced: in the loader's thread)
        calls.append(1)
        return real(doc, **options)

    monkeypatch.setattr(room_module, "snapshot", counting)
    async with running(make_settings()) as server:
        w = await ThinClient.connect(server.ws_url, "w", "shared")
        w.insert("list:items", 0, list(range(1000)))  # type: ignore[arg-type]
        await w.flush()
        await w.expect("ack")
        calls.clear()
        readers = [await ThinClient.connect(server.ws_url, f"r{i}", "shared") for i in range(10)]
        assert all(r.nodes["list:items"] == list(range(1000)) for r in readers)
        assert len(calls) == 1
        w.insert("list:items", 0, ["new"])  # type: ignore[list-item]
        await w.flush()
        await w.expect("ack")
        late = await ThinClient.connect(server.ws_url, "late", "shared")
        assert late.nodes["list:items"][0] == "new" and len(calls) == 2
        for c in [w, late, *readers]:
            await c.close()


async def test_a_document_nobody_joins_thin_drops_its_loaders_snapshot(
    make_settings: Any, monkeypatch: Any
) -> None:
    """The loader builds the first thin join's snapshot (a copy of the text); a document only
    replicas joined drops it at the hub's next tick once ``PREPARED_JOINS_KEPT_MS`` passed,
    and a thin client joining later still gets the right snapshot."""
    import cowrite.rooms.kind as kind_module

    monkeypatch.setattr(kind_module, "PREPARED_JOINS_KEPT_MS", 0)
    async with running(make_settings()) as server:
        r = await ReplicaClient.connect(server.ws_url, "r", "idle")
        room = server.state.hub.rooms["idle"].room
        for _ in range(100):  # the hub ticks once a second
            if room._snap is None:
                break
            await asyncio.sleep(0.05)
        assert room._snap is None and room.version == 0  # dropped, not replaced by an edit's
        r.doc.text("t").insert(0, "kept in the document")
        await r.push()
        late = await ThinClient.connect(server.ws_url, "late", "idle")
        await late.wait_for(lambda: late.nodes.get("text:t") == "kept in the document")
        for c in [r, late]:
            await c.close()


# ------------------------------------------------------------------ compaction


async def test_deleted_text_is_compacted_beyond_the_kept_history(make_settings: Any) -> None:
    """Insert and delete 500 random characters 20 times: the stored snapshot keeps the content
    of at most ``history_kept_ops`` ops of history, not all 10,000 deleted characters; the
    document reloads, serves thin and replica joins, and its recent history stays readable."""
    import random

    rng = random.Random(7)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    settings = make_settings(history_kept_ops=1000, unload_after_s=0.2)  # < snapshot_every updates
    async with running(settings) as server:
        t = await ThinClient.connect(server.ws_url, "t", "churn")
        for _ in range(20):
            t.insert("text:body", 0, "".join(rng.choice(alphabet) for _ in range(500)))
            await t.flush()
            await t.expect("ack")
            t.delete("text:body", 0, 500)
            await t.flush()
            await t.expect("ack")
        t.insert("text:body", 0, "kept")
        await t.flush()
        await t.expect("ack")
        await t.close()
        while "churn" in server.state.hub.rooms:  # unloading takes the snapshot
            await asyncio.sleep(0.05)
        stored = await server.state.store.load("churn")
        assert stored.snapshot and not stored.updates
        # 10,000 random characters are ~7.5 kB compressed: at most 1,000 of them are kept
        assert len(stored.snapshot) < 3000, len(stored.snapshot)
        loaded = Document.load(stored.snapshot)
        assert loaded.base and loaded.to_json() == {"body": "kept"}
    async with running(settings) as server:  # after a restart
        t = await ThinClient.connect(server.ws_url, "t2", "churn", create=False)
        assert t.text("text:body") == "kept"
        r = await ReplicaClient.connect(server.ws_url, "rep", "churn", create=False)
        assert r.doc.to_json() == {"body": "kept"}
        r.doc.text("body").insert(4, "!")
        await r.push()
        await t.expect("remote")
        assert t.text("text:body") == "kept!"
        async with httpx.AsyncClient(base_url=server.url) as http:
            listed = (await http.get("/api/documents/churn/versions?limit=1000")).json()
            recent = [v["id"] for v in listed["versions"] if v["available"]]
            assert recent and not listed["versions"][0]["available"]  # the oldest: compacted
            res = await http.get(f"/api/documents/churn/diff?from={recent[0]}")
            assert res.status_code == 200, res.text
            res = await http.get("/api/documents/churn/diff?from=0")  # the empty document
            assert res.status_code == 410, res.text
        await r.close()
        await t.close()


async def test_map_keys_are_capped_over_all_maps_of_a_document(make_settings: Any) -> None:
    """The cap is on the document, not on each map: many maps do not multiply it."""
    async with running(make_settings(max_map_keys=50)) as server:
        t = await ThinClient.connect(server.ws_url, "t", "maps")
        room = server.state.hub.rooms["maps"].room
        for i, name in enumerate(["a", "b"]):
            ops = [
                {"type": "set", "node": f"map:{name}", "key": f"k{k}", "value": 1}
                for k in range(30)
            ]
            await t.send(
                {
                    "type": "edit",
                    "doc": "maps",
                    "edit_id": f"e{i}",
                    "version": room.version,
                    "ops": ops,
                }
            )

        # (a refusal is sent at once, an ack once durable: in either order)
        def answer(edit_id: str) -> dict[str, Any] | None:
            kinds = ("ack", "error")
            got = [m for m in t.inbox if m["type"] in kinds and m.get("edit_id") == edit_id]
            return got[0] if got else None

        await t.wait_for(lambda: answer("e0") is not None and answer("e1") is not None)
        assert answer("e0")["type"] == "ack"  # type: ignore[index]
        assert answer("e1")["code"] == "document_too_large"  # type: ignore[index]
        r = await ReplicaClient.connect(server.ws_url, "rep", "maps")
        src = Document(5151)
        for k in range(30):
            src.map("c").set(f"k{k}", k)
        await r.send(_sync("maps", src.delta_since({}), "s"))
        assert (await _refused(r, "s"))["code"] == "document_too_large"
        ok = [{"type": "set", "node": "map:b", "key": f"k{k}", "value": 2} for k in range(20)]
        await t.send(
            {"type": "edit", "doc": "maps", "edit_id": "fits", "version": room.version, "ops": ok}
        )
        await t.expect("ack", where=lambda m: m["edit_id"] == "fits")
        assert {k: len(v) for k, v in room.doc.to_json().items()} == {"a": 30, "b": 20}
        await r.close()
        await t.close()


async def test_big_syncs_cost_more_of_the_edit_rate_limit(make_settings: Any) -> None:
    """A sync costs 1 + (its base64 bytes) // 10,000 edits: megabyte deltas cannot come at the
    rate of small ones."""
    settings = make_settings(edits_per_second=0.01, edit_burst=200)
    async with running(settings) as server:
        r = await ReplicaClient.connect(server.ws_url, "rep", "bigsync")
        rng = __import__("random").Random(1)
        answers = []
        for i in range(4):
            src = Document(7000 + i)
            src.text(f"t{i}").insert(
                0, "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(300_000))
            )
            delta = src.delta_since({})
            assert 800_000 < len(base64.b64encode(delta)) < 1_000_000
            await r.send(_sync("bigsync", delta, f"s{i}"))
            answers.append(
                await r.expect(
                    "ack" if i < 2 else "error", where=lambda m, i=i: m.get("edit_id") == f"s{i}"
                )
            )
        assert answers[2]["code"] == answers[3]["code"] == "rate_limited"  # 87 + 87 of 200
        await r.close()
