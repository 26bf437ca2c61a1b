"""Hostile and broken clients: every bad frame gets its error code, the server stays up, and
well-behaved clients on the same document keep editing and converging throughout. Limits: frame
size, edit rate, connections per document, node length; a client that stops reading."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import random
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import websockets

from cowrite.engine.document import Document
from cowrite.engine.ops import NodeKind

sys.path.insert(0, str(Path(__file__).parent))  # protocol_clients.py, next to this file
from protocol_clients import Client, SilentSocket, ThinClient, running

Frame = str | bytes
Case = tuple[Frame, set[str]]  # a frame and the codes it may get ("ack": accepted)

BAD = {"bad_message"}


_ids = itertools.count()


def _edit(ops: Any, version: Any = 0, doc: str = "fuzz", edit_id: str | None = None) -> str:
    edit_id = f"e{next(_ids)}" if edit_id is None else edit_id
    return json.dumps(
        {"type": "edit", "doc": doc, "edit_id": edit_id, "version": version, "ops": ops}
    )


def _seq(edit: Any, node: str = "text:junk") -> list[dict[str, Any]]:
    return [{"type": "seq", "node": node, "edit": edit}]


def _engine_deltas() -> list[bytes]:
    """Valid deltas of a replica's document whose roots the well-behaved clients never use."""
    src = Document(424242)
    t = src.text("zz")
    t.insert(0, "hostile🙂 bytes")
    t.delete(3, 4)
    m = src.map("zm")
    m.set("k", {"a": [1, 2]})
    m.set_new("n", NodeKind.LIST)
    src.list("zl").insert(0, [1, "two", None])
    src.counter("zc").add(-7)
    src.register("zr").set("x")
    return [src.delta_since({}), src.delta_since({424242: 3})]


def _mutate(rng: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        k = rng.randrange(3 if rng.random() < 0.1 else 5, len(b))
        r = rng.random()
        if r < 0.5:
            b[k] = rng.randrange(256)
        elif r < 0.75:
            del b[k : k + rng.randint(1, 5)]
        else:
            b[k:k] = rng.randbytes(rng.randint(1, 5))
    return bytes(b)


def _deep(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def hostile_frames(rng: random.Random, version: Callable[[], int]) -> Iterator[Case]:
    """An endless mix of bad frames for a connection that has said hello and joined ``fuzz``."""
    deltas = _engine_deltas()
    n = 0
    while True:
        n += 1
        v = version()
        junk = "".join(rng.choice('{}[]":,01aé🙂\\ ') for _ in range(rng.randint(0, 40)))
        cases: list[Case] = [
            # not JSON at all
            (junk + "}", BAD),
            (rng.randbytes(rng.randint(1, 64)), BAD),  # a binary frame of garbage
            ("", BAD),
            ("\x00\x01\x02", BAD),
            # JSON, but not a message
            (json.dumps([{"type": "pong"}]), BAD),
            (json.dumps(rng.choice([1, "x", None, True, 3.5, []])), BAD),
            (json.dumps({"no": "type"}), BAD),
            (json.dumps({"type": f"nope{n}"}), BAD),
            (json.dumps({"type": 7}), BAD),
            # wrong types, missing and unknown fields
            (json.dumps({"type": "edit", "doc": 5, "edit_id": "x", "version": 0, "ops": []}), BAD),
            (_edit(_seq(["x"]), version="0"), BAD),
            (_edit(_seq(["x"]), version=-1), BAD),
            (_edit([]), BAD),
            (json.dumps({"type": "edit", "doc": "fuzz"}), BAD),
            (json.dumps({"type": "pong", "nonce": 1, "extra": True}), BAD),
            (json.dumps({"type": "join", "doc": "bad doc id!"}), BAD),
            (json.dumps({"type": "presence", "doc": "fuzz", "cursor": {"node": "text:x"}}), BAD),
            (_edit([{"type": "seq", "node": "text:x", "edit": ["a"], "more": 1}]), BAD),
            (_edit([{"type": "warp", "node": "text:x"}]), BAD),
            (_edit(_seq([True])), BAD),
            (_edit(_seq([1.5])), BAD),
            (_edit(_seq("abc")), BAD),
            (_edit([{"type": "add", "node": "counter:c", "amount": 1.5}]), BAD),
            (json.dumps({"type": "hello", "client_id": "again"}), BAD),
            # huge strings and numbers, deep nesting
            (json.dumps({"type": "chat_send", "doc": "fuzz", "text": "x" * 10_001}), BAD),
            (json.dumps({"type": "join", "doc": "d" * 129}), BAD),
            (_edit(_seq(["a"]), edit_id="e" * 65), BAD),
            (_edit([{"type": "set", "node": "map:m", "key": "k", "value": 1e400}]), BAD),
            ('{"type":"chat_history","doc":"fuzz","limit":' + "9" * 400 + "}", BAD),
            (
                _edit([{"type": "set", "node": "map:m", "key": "k", "value": 0}])[:-3]
                + _deep(100_000)
                + "}]}",
                BAD,
            ),
            (_deep(50_000), BAD),
            (
                _edit(
                    [{"type": "set", "node": "map:zm", "key": "k", "value": json.loads(_deep(80))}],
                    v,
                ),
                {"invalid_edit"},
            ),
            (
                _edit([{"type": "set", "node": "map:zm", "key": "k", "value": 10**30}], v),
                {"invalid_edit"},
            ),
            (_edit([{"type": "add", "node": "counter:zc", "amount": 10**30}], v), {"invalid_edit"}),
            (_edit(_seq(["x"]), version=10**40), {"bad_message"}),  # over 64 bits
            (_edit(_seq(["x"]), version=v + 100_000 + rng.randint(0, 1000)), {"future_version"}),
            # unknown documents and nodes, stale versions
            (_edit(_seq(["x"]), doc="not-joined"), {"not_joined"}),
            (json.dumps({"type": "chat_history", "doc": "not-joined"}), {"not_joined"}),
            (json.dumps({"type": "join", "doc": f"missing-{n}"}), {"unknown_document"}),
            (_edit(_seq(["x"], node="#999999.5"), v), {"unknown_node"}),
            (_edit(_seq(["x"], node="#abc"), v), {"unknown_node"}),
            (_edit(_seq(["x"], node="nokind"), v), {"unknown_node"}),
            (_edit(_seq(["x"], node="blob:x"), v), {"unknown_node"}),
            (_edit(_seq(["x"], node="text:"), v), {"unknown_node"}),
            (
                json.dumps(
                    {
                        "type": "presence",
                        "doc": "fuzz",
                        "cursor": {"node": f"text:nothing{n}", "anchor": 0, "head": 0},
                    }
                ),
                {"unknown_node"},
            ),
            (_edit(_seq(["x"], node="text:pair"), version=0), {"stale_version"}),
            # invalid OT ops and edits that do not fit
            (_edit(_seq([0]), v), {"invalid_edit"}),
            (_edit(_seq([""]), v), {"invalid_edit"}),
            (_edit(_seq([[]]), v), {"invalid_edit"}),
            (_edit(_seq(["a", ["b"]]), v), {"invalid_edit"}),
            (_edit(_seq([-(10**6)]), v), {"invalid_edit"}),
            (_edit(_seq([-1]), v), {"invalid_edit"}),
            (_edit(_seq([10**6, "x"]), v), {"invalid_edit"}),
            (_edit(_seq([["item"]]), v), {"invalid_edit"}),  # a list insert into a text
            (_edit(_seq(["txt"], node="list:zl"), v), {"invalid_edit"}),
            (_edit(_seq([[{"$node": "#1.1"}]], node="list:zl"), v), {"invalid_edit"}),
            (_edit(_seq([[{"$new": "blob"}]], node="list:zl"), v), {"invalid_edit"}),
            (_edit(_seq(["a"]) + _seq(["b"]), v), {"invalid_edit"}),
            (_edit([{"type": "add", "node": "map:zm", "amount": 1}], v), {"invalid_edit"}),
            (
                _edit([{"type": "set", "node": "counter:zc", "key": None, "value": 1}], v),
                {"invalid_edit"},
            ),
            (
                _edit(
                    [{"type": "set", "node": "register:zr", "key": None, "value": {"$new": "map"}}],
                    v,
                ),
                {"invalid_edit"},
            ),
            (_edit([{"type": "del", "node": "text:zz", "key": "k"}], v), {"invalid_edit"}),
            (_edit(_seq(["x"], node="map:zm"), v), {"invalid_edit"}),
            (_edit(_seq(["x"], node="text:zm"), v), {"invalid_edit"}),  # zm is a map root
            # replica deltas: not base64, not a delta, hostile bytes
            (json.dumps({"type": "sync", "doc": "fuzz", "delta": "!!not base64!!"}), BAD),
            (json.dumps({"type": "sync", "doc": "fuzz", "delta": "QUJD"}), BAD),
            (
                json.dumps(
                    {
                        "type": "sync",
                        "doc": "fuzz",
                        "delta": base64.b64encode(rng.randbytes(rng.randint(0, 80))).decode(),
                    }
                ),
                BAD,
            ),
            (
                json.dumps(
                    {
                        "type": "sync",
                        "doc": "fuzz",
                        "edit_id": f"h{n}",
                        "delta": base64.b64encode(_mutate(rng, rng.choice(deltas))).decode(),
                    }
                ),
                {"bad_message", "invalid_edit", "ack"},
            ),
            (
                json.dumps(
                    {
                        "type": "sync",
                        "doc": "fuzz",
                        "delta": base64.b64encode(b"CWS" + rng.randbytes(20)).decode(),
                    }
                ),
                BAD,
            ),
            # chat: someone else's message, a message that does not exist
            (
                json.dumps({"type": "chat_edit", "doc": "fuzz", "id": 10**9, "text": "x"}),
                {"not_found"},
            ),
            (json.dumps({"type": "chat_delete", "doc": "fuzz", "id": -5}), {"bad_message"}),
        ]
        rng.shuffle(cases)
        yield from cases


async def _first(client: Client) -> dict[str, Any]:
    found: list[dict[str, Any]] = []

    def check() -> bool:
        for i, m in enumerate(client.inbox):
            if m["type"] in ("error", "ack"):
                found.append(m)
                del client.inbox[: i + 1]
                return True
        return False

    await client.wait_for(check, 10.0)
    return found[0]


async def _pair_edits(pair: list[ThinClient], stop: asyncio.Event, seed: int) -> int:
    """Two well-behaved clients type into ``text:pair`` until told to stop."""
    rng = random.Random(seed)
    n = 0
    while not stop.is_set():
        c = rng.choice(pair)
        text = c.text("text:pair")
        if text and rng.random() < 0.3:
            pos = rng.randrange(len(text))
            c.delete("text:pair", pos, min(2, len(text) - pos))
        else:
            c.insert("text:pair", rng.randint(0, len(text)), rng.choice(["ab", "🙂", "x y", "é"]))
        await c.flush()
        n += 1
        await asyncio.sleep(rng.random() * 0.004)
    return n


async def test_hostile_frames_get_error_codes_while_others_converge(make_settings: Any) -> None:
    settings = make_settings(edits_per_second=1e6, edit_burst=10**6, edit_log_capacity=40)
    async with running(settings) as server:
        url = server.ws_url
        pair = [await ThinClient.connect(url, f"good{k}", "fuzz") for k in range(2)]
        stop = asyncio.Event()
        typing = asyncio.create_task(_pair_edits(pair, stop, 7))
        room = server.state.hub.rooms["fuzz"].room
        setup = Client(await websockets.connect(url), "setup")  # the roots the cases aim at
        await setup._start()
        await setup.send(json.dumps({"type": "join", "doc": "fuzz", "mode": "replica"}))
        await setup.expect("joined")
        delta = base64.b64encode(_engine_deltas()[0]).decode()
        sync = {"type": "sync", "doc": "fuzz", "delta": delta, "edit_id": "setup-1"}
        await setup.send(json.dumps(sync))
        await setup.expect("ack")  # the roots exist before any case aims at them
        await setup.close()
        while room.version <= settings.edit_log_capacity:  # so that version 0 is stale
            await asyncio.sleep(0.01)

        rng = random.Random(2024)
        frames = hostile_frames(rng, lambda: room.version)
        seen: dict[str, int] = {}
        sent = 0
        while sent < 3000:
            hostile = Client(await websockets.connect(url, max_size=None), f"hostile{sent}")
            # before hello: everything is refused
            for frame in (_edit(_seq(["x"])), '{"type":"join","doc":"fuzz"}', "garbage"):
                await hostile.send(frame)
            await hostile._start()
            for _ in range(3):
                assert (await hostile.expect("error"))["code"] == "bad_message"
            # after hello, before join
            await hostile.send(_edit(_seq(["x"], node="text:pair")))
            assert (await hostile.expect("error"))["code"] == "not_joined"
            await hostile.send(json.dumps({"type": "join", "doc": "fuzz"}))
            await hostile.expect("joined")
            for _ in range(150):  # fewer than the refused frames that close a connection
                frame, codes = next(frames)
                await hostile.send(frame)
                try:
                    answer = await _first(hostile)
                except AssertionError:
                    raise AssertionError(f"no answer to {frame[:300]!r}") from None
                code = answer["code"] if answer["type"] == "error" else "ack"
                assert code in codes, (frame[:300], answer)
                seen[code] = seen.get(code, 0) + 1
                sent += 1
            await hostile.close()
        stop.set()
        typed = await typing
        assert typed > 50
        assert seen["bad_message"] > 1000 and seen["invalid_edit"] > 200
        assert seen["stale_version"] and seen["unknown_node"] and seen["future_version"]

        # the server is up and the pair converged with it
        async with httpx.AsyncClient() as http:
            assert (await http.get(server.url + "/healthz")).status_code == 200
        for c in pair:
            await c.settle(0)
        for c in pair:
            await c.settle(room.version)
        expected = room.doc.to_json()["pair"]
        assert len(expected) > 20
        assert [c.text("text:pair") for c in pair] == [expected, expected]
        assert all(not c.errors for c in pair)
        room.doc.check_invariants()
        late = await ThinClient.connect(url, "late", "fuzz")
        assert late.text("text:pair") == expected
        for c in [*pair, late]:
            await c.close()


async def test_too_many_refused_frames_close_the_connection(server: Any) -> None:
    c = Client(await websockets.connect(server.ws_url), "spammer")
    await c._start()
    for _ in range(199):
        await c.send("not json")
    await c.send(json.dumps({"type": "join", "doc": "spam", "create": True}))
    await c.expect("joined")  # 199 refused frames: still open
    await c.send("not json")  # the 200th closes it (docs/protocol.md)
    await asyncio.wait_for(c.closed, 10)
    assert c.ws.close_code == 1008
    codes = {m["code"] for m in c.inbox if m["type"] == "error"}
    assert codes == {"bad_message"}


async def test_frames_over_the_size_limit_are_too_large(make_settings: Any) -> None:
    async with running(make_settings(max_message_bytes=1000)) as server:
        c = await ThinClient.connect(server.ws_url, "big", "sized")
        await c.send(_edit(_seq(["x" * 2000], node="text:t"), doc="sized"))
        assert (await c.expect("error"))["code"] == "too_large"
        # 400 emoji are 400 code points but 1600 bytes: the limit counts bytes
        await c.send(_edit(_seq(["🙂" * 400], node="text:t"), doc="sized"))
        assert (await c.expect("error"))["code"] == "too_large"
        await c.send(_edit(_seq(["x" * 2000], node="text:t"), doc="sized").encode())
        assert (await c.expect("error"))["code"] == "too_large"
        c.insert("text:t", 0, "fits")  # the connection is still usable
        await c.flush()
        await c.expect("ack")
        await c.close()


async def test_edits_over_the_rate_limit_are_refused(make_settings: Any) -> None:
    async with running(make_settings(edits_per_second=5, edit_burst=5)) as server:
        now = [1000.0]
        server.state.hub.clock = lambda: now[0]  # the rate limit's clock: stands still
        c = await ThinClient.connect(server.ws_url, "fast", "rated")
        for i in range(20):
            await c.send(_edit(_seq([f"{i},"], node="text:t"), doc="rated", edit_id=f"e{i}"))
        answers = [await _first(c) for _ in range(20)]
        acked = [m for m in answers if m["type"] == "ack"]
        limited = [m for m in answers if m["type"] == "error"]
        assert {m["code"] for m in limited} == {"rate_limited"}
        assert len(acked) == 5 and len(limited) == 15  # the burst, exactly: no time passed
        assert all(m["edit_id"] for m in limited)  # says which edit to resend
        await c.send(_edit(_seq(["still"], node="text:t"), doc="rated", edit_id="still"))
        assert (await _first(c))["code"] == "rate_limited"
        now[0] += 0.2  # one edit's worth of refill at 5/s
        await c.send(_edit(_seq(["again"], node="text:t"), doc="rated", edit_id="later"))
        assert (await _first(c))["type"] == "ack"
        await c.close()


async def test_connections_per_document_are_limited(make_settings: Any) -> None:
    async with running(make_settings(max_connections_per_document=2)) as server:
        a = await ThinClient.connect(server.ws_url, "a", "small")
        b = await ThinClient.connect(server.ws_url, "b", "small")
        c = Client(await websockets.connect(server.ws_url), "c")
        await c._start()
        await c.send(json.dumps({"type": "join", "doc": "small"}))
        error = await c.expect("error")
        assert error["code"] == "room_full" and error["doc"] == "small"
        await c.send(json.dumps({"type": "join", "doc": "other", "create": True}))
        await c.expect("joined")  # other documents are fine
        await b.close()
        await a.expect("presence_update", where=lambda m: bool(m.get("left", [])))
        await c.send(json.dumps({"type": "join", "doc": "small"}))
        await c.expect("joined", where=lambda m: m["doc"] == "small")
        await a.close()
        await c.close()


async def test_nodes_over_the_length_limit_are_refused(make_settings: Any) -> None:
    async with running(make_settings(max_node_length=100)) as server:
        c = await ThinClient.connect(server.ws_url, "long", "capped")
        c.insert("text:t", 0, "x" * 100)
        await c.flush()
        await c.expect("ack")
        await c.send(_edit(_seq(["y"], node="text:t"), c.version, "capped", "grow"))
        error = await c.expect("error")
        assert error["code"] == "document_too_large" and error["edit_id"] == "grow"
        await c.send(_edit(_seq([-10, "y"], node="text:t"), c.version, "capped", "swap"))
        assert (await c.expect("ack"))["edit_id"] == "swap"  # shrinking and growing back fits
        assert server.state.hub.rooms["capped"].room.doc.to_json()["t"] == "y" + "x" * 90
        await c.close()


# ------------------------------------------------------------------ a client that never reads


async def test_a_client_that_never_reads_is_dropped_without_stalling_others(
    make_settings: Any,
) -> None:
    settings = make_settings(outbox_messages=50, heartbeat_s=30, heartbeat_timeout_s=60)
    async with running(settings) as server:
        port = int(server.url.rsplit(":", 1)[1])
        a = await ThinClient.connect(server.ws_url, "a", "busy")
        b = await ThinClient.connect(server.ws_url, "b", "busy")
        silent = await asyncio.to_thread(SilentSocket, port)
        silent.send({"type": "hello", "client_id": "silent"})
        session = (await asyncio.to_thread(silent.recv_until, "welcome"))["session"]
        silent.send({"type": "join", "doc": "busy"})
        await asyncio.to_thread(silent.recv_until, "joined")
        # from now on ``silent`` reads nothing; a and b make lots of traffic
        left: list[str] = []
        big = "z" * 30_000
        for i in range(400):  # 30 kB per edit; the silent client's buffers fill up
            c = (a, b)[i % 2]
            c.delete("text:body", 0, len(c.text("text:body")))
            c.insert("text:body", 0, f"{i}{big}")
            await c.flush()
            await c.wait_for(lambda c=c: c.inflight is None)  # type: ignore[misc]
            left = [s for m in a.inbox if m["type"] == "presence_update" for s in m.get("left", [])]
            if session in left:
                break
        assert session in left, "the silent client was not disconnected"
        disconnects = server.state.metrics.disconnects.labels("4008")._value.get()
        assert disconnects == 1
        # and the others carried on
        for c in (a, b):
            c.insert("text:body", 0, "after")
            await c.flush()
            await c.expect("ack", where=lambda m: True)
        room = server.state.hub.rooms["busy"].room
        for c in (a, b):
            await c.settle(room.version)
            assert c.text("text:body") == room.doc.to_json()["body"]
        silent.sock.close()
        await a.close()
        await b.close()
