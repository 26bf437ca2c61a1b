"""Binary fuzz of both Yjs endpoints of a real ``cowrite serve`` over real sockets.

Attacker connections (Python ``websockets``) send thousands of hostile frames to ``/yjs/<doc>``
and ``/hocuspocus`` (before and after authenticating): truncated frames, lying lengths, unknown
message types, random bytes, updates that do not decode or mutated ones, missing dependencies,
oversized frames and floods. Meanwhile two well-behaved clients (the real Hocuspocus and
y-websocket providers in node) keep typing into the same document, and every one of their edits
keeps being delivered to the other throughout. Checked: every attacker of a must-close kind gets a
close frame with a deliberate code (1002 / 1003 / 1007 / 1008 / 1009 / 4xxx: never 1011 or a
dropped TCP connection), the well-behaved clients are never disconnected, the server's memory
(VmRSS) stays bounded, and the stored document is not poisoned (a restart serves the same state).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pycrdt
import pytest
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))  # yjs_e2e.py
from yjs_e2e import YClients, YjsServer, content_diff, eventually, same_content

pytestmark = pytest.mark.slow

Node = Callable[..., Awaitable[YClients]]
Server = Callable[..., Awaitable[YjsServer]]

DOC = "fz"  # the document the well-behaved clients edit (structural garbage only)
EVIL = "fz-evil"  # mutated and dependency-less updates (which may be valid and change it)
CONNECTIONS = 900  # attacker connections; each sends 1-4 hostile frames
PARALLEL = 6
OVERSIZED = 4  # frames of 9 MB (over the server's 8 MB Yjs frame limit, max_yjs_frame_bytes)
ALLOWED_CLOSES = {1002, 1003, 1007, 1008, 1009}
CLOSE_TIMEOUT_S = 20.0


# --- lib0 encoding (written here, independent of cowrite.yjs) -----------------------------------


def var_uint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def var_bytes(b: bytes) -> bytes:
    return var_uint(len(b)) + b


def var_string(s: str) -> bytes:
    return var_bytes(s.encode())


def awareness_update(entries: list[tuple[int, int, str]]) -> bytes:
    out = var_uint(len(entries))
    for client, clock, state in entries:
        out += var_uint(client) + var_uint(clock) + var_string(state)
    return out


def sample_updates() -> dict[str, bytes]:
    """Real Yjs updates made with pycrdt: a plain one, and one whose structs depend on items the
    server does not have (``missing``)."""
    a: pycrdt.Doc[Any] = pycrdt.Doc(client_id=101)
    a["text"] = text = pycrdt.Text()
    text.insert(0, "hello fuzz")
    a["map"] = amap = pycrdt.Map()
    amap["k"] = "v"
    plain = a.get_update()
    b: pycrdt.Doc[Any] = pycrdt.Doc(client_id=202)
    b.apply_update(plain)
    sv = b.get_state()
    b.get("text", type=pycrdt.Text).insert(5, " there")
    missing = b.get_update(sv)
    return {"plain": plain, "missing": missing, "sv": pycrdt.Doc(client_id=7).get_state()}


# --- hostile frames ---------------------------------------------------------------------------


@dataclass
class Attack:
    endpoint: str  # "yjs" or "hocuspocus"
    kind: str
    frames: list[bytes]
    must_close: bool
    authenticate: bool = False  # Hocuspocus: send Auth first and wait for Authenticated
    doc: str = DOC


def y_frames(u: dict[str, bytes]) -> dict[str, bytes]:
    """Valid y-websocket frames to cut and bend."""
    aw = awareness_update([(9_000_001, 1, '{"user":{"name":"fuzz"}}')])
    return {
        "step1": var_uint(0) + var_uint(0) + var_bytes(u["sv"]),
        "step2": var_uint(0) + var_uint(1) + var_bytes(u["plain"]),
        "update": var_uint(0) + var_uint(2) + var_bytes(u["plain"]),
        "awareness": var_uint(1) + var_bytes(aw),
    }


def h_frames(doc: str, u: dict[str, bytes]) -> dict[str, bytes]:
    """Valid Hocuspocus frames (after the address) to cut and bend."""
    aw = awareness_update([(9_000_002, 1, '{"user":{"name":"fuzz"}}')])
    a = var_string(doc)
    return {
        "step1": a + var_uint(0) + var_uint(0) + var_bytes(u["sv"]),
        "update": a + var_uint(0) + var_uint(2) + var_bytes(u["plain"]),
        "awareness": a + var_uint(1) + var_bytes(aw),
        "stateless": a + var_uint(5) + var_string('{"type":"cowrite.chat.send","text":"x"}'),
    }


def lie(frame: bytes, rng: random.Random) -> bytes:
    """Replace the last length prefix's value by a lie (bigger than what follows, or huge)."""
    # the payload is at the end: rebuild with a lying varUint in front of it
    for cut in range(len(frame) - 1, 0, -1):
        head, tail = frame[:cut], frame[cut:]
        try:
            n, used = read_var_uint(tail)
        except ValueError:
            continue
        if n == len(tail) - used and n > 0:
            bigger = rng.choice([n + 1, n + rng.randint(2, 1000), 2**31, 2**53 - 1, 2**60])
            return head + var_uint(bigger) + tail[used:]
    return frame + var_uint(2**40)


def read_var_uint(b: bytes) -> tuple[int, int]:
    n = shift = 0
    for i, byte in enumerate(b[:10]):
        n |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return n, i + 1
    raise ValueError("not a varUint")


def truncate(frame: bytes, rng: random.Random) -> bytes:
    return frame[: rng.randint(1, len(frame) - 1)]


def attacks(rng: random.Random, u: dict[str, bytes]) -> list[Attack]:
    out: list[Attack] = []
    yf = y_frames(u)
    for k in range(CONNECTIONS):
        endpoint = "yjs" if k % 2 == 0 else "hocuspocus"
        roll = rng.random()
        if endpoint == "yjs":
            frames = yf
        else:
            frames = h_frames(DOC, u)
        name = rng.choice(sorted(frames))
        valid = frames[name]
        auth = endpoint == "hocuspocus" and rng.random() < 0.5
        if roll < 0.2:
            out.append(Attack(endpoint, f"truncated {name}", [truncate(valid, rng)], True, auth))
        elif roll < 0.4:
            # (Hocuspocus holds an unauthenticated address's messages undecoded: authenticate,
            # or a lie inside an awareness update would only be found once attached)
            out.append(
                Attack(
                    endpoint,
                    f"lying length {name}",
                    [lie(valid, rng)],
                    True,
                    auth or endpoint == "hocuspocus",
                )
            )
        elif roll < 0.55:
            if endpoint == "yjs":
                t = rng.choice([4, 5, 17, 127, 128, 300, 2**20])
                frame = var_uint(t) + rng.randbytes(rng.randint(0, 40))
            else:
                t = rng.choice([11, 12, 40, 127, 200, 2**20])
                frame = var_string(DOC) + var_uint(t) + rng.randbytes(rng.randint(0, 40))
            out.append(Attack(endpoint, "unknown type", [frame], True, auth))
        elif roll < 0.7:
            # random bytes; a first byte that no message starts with makes them surely invalid
            body = rng.randbytes(rng.randint(1, 300))
            if endpoint == "yjs":
                body = bytes([rng.choice([0x04, 0x7F, 0xFF])]) + body
            else:
                body = var_uint(2**40) + body  # an address longer than anything
            out.append(Attack(endpoint, "random bytes", [body], True, auth))
        elif roll < 0.8:
            # a sync update whose payload is no Yjs update
            junk = b"\xff\xff\xff\xff\x0f" + rng.randbytes(rng.randint(1, 200))  # 2^32 clients
            if endpoint == "yjs":
                frame = var_uint(0) + var_uint(2) + var_bytes(junk)
            else:
                frame = var_string(DOC) + var_uint(0) + var_uint(2) + var_bytes(junk)
            out.append(Attack(endpoint, "undecodable update", [frame], True, True))
        elif roll < 0.85:
            # a client message type the server never accepts from a client, or several garbage
            # frames in a row (only the first is needed to close)
            if endpoint == "yjs":
                frames_ = [var_uint(2) + var_uint(0) + var_string("nope")]
            else:
                frames_ = [var_string(DOC) + var_uint(8) + var_uint(1)]  # SyncStatus
            frames_ += [rng.randbytes(rng.randint(1, 50)) for _ in range(3)]
            out.append(Attack(endpoint, "server-only message", frames_, True, auth))
        elif roll < 0.93:
            # mutated real updates and updates with missing dependencies, to the other document:
            # may be valid (and change it), refused with a resync, or closed: never a crash
            upd = bytearray(u["plain"] if rng.random() < 0.7 else u["missing"])
            for _ in range(rng.randint(0, 3)):
                upd[rng.randrange(len(upd))] = rng.randrange(256)
            frames_ = []
            for _ in range(rng.randint(1, 5)):
                if endpoint == "yjs":
                    frames_.append(var_uint(0) + var_uint(2) + var_bytes(bytes(upd)))
                else:
                    frames_.append(
                        var_string(EVIL) + var_uint(0) + var_uint(2) + var_bytes(bytes(upd))
                    )
            out.append(Attack(endpoint, "mutated update", frames_, False, True, EVIL))
        else:
            # floods: the same frame many times, or awareness states of many client ids (the
            # well-behaved y-websocket provider echoes each of them back to the server, which
            # must not count them against its connection: see test_server_awareness.py)
            if endpoint == "yjs" and rng.random() < 0.5:
                flood = [
                    var_uint(1) + var_bytes(awareness_update([(rng.randrange(2**32), 1, "{}")]))
                    for _ in range(300)
                ]
                doc = DOC if rng.random() < 0.5 else EVIL
                out.append(Attack(endpoint, "flood awareness", flood, False, False, doc))
                continue
            if endpoint == "yjs":
                flood = [y_frames(u)["step1"]] * 300
            else:
                flood = [h_frames(DOC, u)["step1"]] * 300
            out.append(Attack(endpoint, "flood", flood, False, auth))
    big = b"\x00" * 9_000_000
    for k in range(OVERSIZED):
        endpoint = "yjs" if k % 2 == 0 else "hocuspocus"
        frame = var_uint(0) + var_uint(2) + var_bytes(big) if endpoint == "yjs" else big
        out.append(Attack(endpoint, "oversized", [frame], True, False))
    rng.shuffle(out)
    return out


# --- attackers --------------------------------------------------------------------------------


@dataclass
class Tally:
    connections: int = 0
    frames: int = 0
    closes: Counter[tuple[str, int | None]] = field(default_factory=Counter)
    bad: list[str] = field(default_factory=list)
    open_after: Counter[str] = field(default_factory=Counter)


async def attack(base: str, a: Attack, tally: Tally) -> None:
    url = f"{base}/yjs/{a.doc}" if a.endpoint == "yjs" else f"{base}/hocuspocus"
    try:
        ws = await websockets.connect(url, max_size=None, open_timeout=30, ping_interval=None)
    except Exception as exc:
        tally.bad.append(f"{a.kind}: cannot connect: {exc!r}")
        return
    tally.connections += 1
    try:
        if a.authenticate and a.endpoint == "hocuspocus":
            await ws.send(var_string(a.doc) + var_uint(2) + var_uint(0) + var_string("x"))
            await authenticated(ws, a.doc)
        for frame in a.frames:
            await ws.send(frame)
            tally.frames += 1
    except websockets.ConnectionClosed:
        pass
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT_S if a.must_close else 0.3):
            while True:
                await ws.recv()
    except websockets.ConnectionClosed:
        code = ws.close_code
        tally.closes[(a.kind.split()[0], code)] += 1
        if code not in ALLOWED_CLOSES and not (code is not None and 4000 <= code < 5000):
            tally.bad.append(f"{a.kind}: closed with {code} {ws.close_reason!r}")
    except TimeoutError:
        if a.must_close:
            tally.bad.append(f"{a.kind}: not closed: {a.frames[0][:40].hex()}")
        tally.open_after[a.kind.split()[0]] += 1
    finally:
        await ws.close()


async def authenticated(ws: Any, doc: str) -> None:
    """Read until the Authenticated reply to our Auth (address, type 2, subtype 2)."""
    prefix = var_string(doc) + var_uint(2) + var_uint(2)
    async with asyncio.timeout(30):
        while True:
            frame = await ws.recv()
            if isinstance(frame, bytes) and frame.startswith(prefix):
                return


# --- the test -----------------------------------------------------------------------------------


async def test_thousands_of_hostile_frames_while_well_behaved_clients_keep_editing(
    yjs_server: Server, node: Node
) -> None:
    server = await yjs_server()
    good = await node("good")
    await good.open("h", "hocuspocus", server.base, DOC, user={"name": "H"})
    await good.open("y", "ywebsocket", server.base, DOC, user={"name": "Y"})
    await good.open("e", "ywebsocket", server.base, EVIL)

    async def both(check: Callable[[dict[str, Any]], bool]) -> bool:
        states = await good.states()
        return check(states["h"]) and check(states["y"])

    await eventually(lambda: both(lambda s: s["synced"]), timeout=30, what="good clients sync")
    await good.call("edit", client="h", seed=1, n=50)
    await good.call("edit", client="e", seed=2, n=20)
    warm = Tally()
    for a in attacks(random.Random(7), sample_updates())[:40]:  # warm-up: allocations settle
        await attack(server.base, a, warm)
    await asyncio.sleep(1)
    rss_before = server.rss_kib()

    rng = random.Random(11)
    plan = attacks(rng, sample_updates())
    tally = Tally()
    queue: asyncio.Queue[Attack] = asyncio.Queue()
    for a in plan:
        queue.put_nowait(a)

    async def attacker() -> None:
        while not queue.empty():
            await attack(server.base, queue.get_nowait(), tally)

    fuzzing = asyncio.gather(*(attacker() for _ in range(PARALLEL)))
    delivered = 0
    start = time.monotonic()
    try:
        while not fuzzing.done():
            for writer, reader in (("h", "y"), ("y", "h")):
                marker = f"<{writer}{delivered}>"
                await good.call("type", client=writer, text=marker)

                async def arrived(reader: str = reader, marker: str = marker) -> bool:
                    state = await good.state(reader)
                    return marker in "".join(p["insert"] for p in state["content"]["text"])

                await eventually(arrived, timeout=60, what=f"{marker} reaches {reader} mid-fuzz")
                delivered += 1
            await asyncio.sleep(0.05)
        await fuzzing
    finally:
        fuzzing.cancel()
        with contextlib.suppress(BaseException):
            await fuzzing
    took = time.monotonic() - start
    print(
        f"{tally.connections} attacker connections, {tally.frames} hostile frames in {took:.1f} s; "
        f"{delivered} edits delivered meanwhile; closes {dict(tally.closes)}; "
        f"left open: {dict(tally.open_after)}"
    )
    assert not tally.bad, f"{len(tally.bad)} bad outcomes: {tally.bad[:10]}"
    assert tally.frames >= 2000 and tally.connections >= CONNECTIONS
    assert delivered >= 10  # the good clients' edits went through throughout the fuzz

    # the server carries on: the good clients were never disconnected and still agree with it
    states = await good.states()
    assert states["h"]["closes"] == [] and states["y"]["closes"] == [], states["y"]["closes"]
    await good.call("edit", client="y", seed=3, n=30)
    await eventually(
        lambda: both(lambda s: s["synced"] and s.get("unsynced") in (0, None)),
        timeout=60,
        what="good clients settle",
    )

    async def agree() -> bool:
        s = await good.states()
        return same_content([s["h"], s["y"]])

    await eventually(agree, timeout=60, what="the good clients agree after the fuzz")
    rss_after = server.rss_kib()
    print(f"VmRSS {rss_before} KiB before, {rss_after} KiB after")
    assert rss_after < rss_before + 200 * 1024, (rss_before, rss_after)

    expected = {d: (await good.state(c))["content"] for d, c in ((DOC, "h"), (EVIL, "e"))}
    await good.close()
    # nothing hostile poisoned the store: after a restart both documents load and serve the same
    server.terminate()
    await server.start()
    reader = await node("reader")
    for doc, want in expected.items():
        await reader.open(doc, "hocuspocus", server.base, doc)
        await eventually(
            lambda doc=doc: _synced(reader, doc), timeout=60, what=f"{doc} loads after a restart"
        )
        got = (await reader.state(doc))["content"]
        if doc == EVIL:  # the evil document may have changed after our client's last look
            continue
        assert got == want, content_diff(got, want)


async def _synced(clients: YClients, client: str) -> bool:
    state = await clients.state(client)
    return bool(state["synced"]) and state["unsynced"] == 0
