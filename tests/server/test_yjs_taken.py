"""Yjs frames handled where the socket read them (``YjsConnection._take``): a real server, raw
y-websocket and Hocuspocus clients. What is taken there must behave as through the reader:
stored before it is broadcast or acknowledged, in order, within the budgets, and garbage closes
the offender only."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from typing import Any

import pycrdt
import pytest
import websockets

from cowrite.server import yjs_connection
from cowrite.server.config import Settings
from cowrite.yjs import messages as m
from cowrite.yjs.awareness import AwarenessEntry, encode_update

from .conftest import RunningServer, start_server
from .test_yjs_server import Hocus, stored_text, text_of, until


class Taken:
    """Counts ``_take``'s answers on every connection of the server."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.taken = 0
        self.left = 0
        self.paid = 0
        take = yjs_connection.YjsConnection._take

        def spy(conn: yjs_connection.YjsConnection, frame: bytes) -> bool:
            done = take(conn, frame)
            if done:
                self.taken += 1
            else:
                self.left += 1
                self.paid += conn._budgets.paid is not None
            return done

        monkeypatch.setattr(yjs_connection.YjsConnection, "_take", spy)


_CLIENTS = itertools.count(1)


async def _ywebsocket(server: RunningServer, name: str) -> Any:
    url = server.url.replace("http://", "ws://") + f"/yjs/{name}"
    ws = await websockets.connect(url, compression=None)  # (as cowrite serve negotiates)
    first = m.decode_ywebsocket(await ws.recv())  # the server's sync step 1
    assert isinstance(first, m.YSync) and isinstance(first.sync, m.SyncStep1)
    await ws.send(m.encode_ywebsocket(m.YSync(m.SyncStep2(b"\x00\x00"))))
    # our own awareness comes back once the server handled everything before it
    update = encode_update([AwarenessEntry(next(_CLIENTS), 1, "{}")])
    await ws.send(m.encode_ywebsocket(m.YAwareness(update)))
    while not isinstance(m.decode_ywebsocket(await ws.recv()), m.YAwareness):
        pass
    return ws


async def _typing(ws: Any, n: int, *, pause: float) -> pycrdt.Doc[Any]:
    """``n`` keystrokes, one update frame each."""
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    text = doc.get("t", type=pycrdt.Text)
    for k in range(n):
        before = doc.get_state()
        text.insert(len(text), "abcdefghij"[k % 10])
        await ws.send(m.encode_ywebsocket(m.YSync(m.SyncUpdate(doc.get_update(before)))))
        await asyncio.sleep(pause)
    return doc


async def _reading(ws: Any, doc: pycrdt.Doc[Any], seen: list[str]) -> None:
    async for frame in ws:
        msg = m.decode_ywebsocket(frame)
        if isinstance(msg, m.YSync) and isinstance(msg.sync, m.SyncUpdate | m.SyncStep2):
            doc.apply_update(msg.sync.update)
            seen.append(text_of(doc))


def _readers_wait(server: RunningServer) -> bool:
    """Every Yjs connection's reader waits with nothing queued."""
    conns = [c for c in server.state.hub.permissions.connections if hasattr(c, "_take")]
    return bool(conns) and all(
        c._link is not None and c._link.reader_waiting() and c._session is not None for c in conns
    )


@pytest.fixture
async def recorded(settings: Settings) -> AsyncIterator[tuple[RunningServer, list[str]]]:
    running, task = await start_server(settings)
    events: list[str] = []
    store = running.state.store
    append = store.append_update

    async def stored(*args: Any, **kw: Any) -> int:
        seq = await append(*args, **kw)
        events.append("stored")
        return seq

    store.append_update = stored
    yield running, events
    running.server.should_exit = True
    await task


async def test_keystrokes_taken_at_the_socket_are_stored_first_and_arrive_in_order(
    recorded: tuple[RunningServer, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    server, events = recorded
    taken = Taken(monkeypatch)
    a, b = await _ywebsocket(server, "fast"), await _ywebsocket(server, "fast")
    bdoc: pycrdt.Doc[Any] = pycrdt.Doc()
    seen: list[str] = []
    reader = asyncio.create_task(_reading(b, bdoc, seen))
    seen_at: list[int] = []  # how many updates were stored when b saw each one
    adoc: pycrdt.Doc[Any] = pycrdt.Doc()
    atext = adoc.get("t", type=pycrdt.Text)
    text = ""
    for k in range(30):
        # one keystroke at a time: the server's reader waits when the next one comes
        before = adoc.get_state()
        atext.insert(k, "a" if k == 0 else "x")
        await a.send(m.encode_ywebsocket(m.YSync(m.SyncUpdate(adoc.get_update(before)))))
        text = str(atext)
        await until(lambda: text_of(bdoc) == text)  # noqa: B023
        seen_at.append(events.count("stored"))
    assert seen[-1] == text == "a" + "x" * 29
    assert all(stored >= k + 1 for k, stored in enumerate(seen_at))  # (b's step 2 stores none)
    assert taken.taken >= 20  # (the first frames may reach the server before its reader waits)
    assert await stored_text(server, "fast") == text
    reader.cancel()
    await a.close()
    await b.close()


async def test_a_burst_over_budget_is_paced_by_the_reader_and_nothing_is_lost(
    make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, task = await start_server(make_settings(edits_per_second=20.0, edit_burst=3.0))
    taken = Taken(monkeypatch)
    a, b = await _ywebsocket(server, "paced"), await _ywebsocket(server, "paced")
    bdoc: pycrdt.Doc[Any] = pycrdt.Doc()
    seen: list[str] = []
    reader = asyncio.create_task(_reading(b, bdoc, seen))
    adoc = await _typing(a, 12, pause=0.002)
    await until(lambda: text_of(bdoc) == text_of(adoc))
    assert text_of(bdoc) == "abcdefghijab"
    assert taken.paid >= 1  # charged at the socket, waited for by the reader
    assert await stored_text(server, "paced") == "abcdefghijab"
    reader.cancel()
    await a.close()
    await b.close()
    server.server.should_exit = True
    await task


@pytest.mark.parametrize(
    "frame",
    [
        b"\x00\x02\x05\x01\x02",  # an update claiming more bytes than it has
        b"\x00\x02\x03\xff\xff\xff",  # an update that does not decode
        b"\x00\x07\x01\x00",  # an unknown sync message
        b"\x01\x04\x01\x02\x03\x04",  # awareness that does not decode
        b"\x00\x02\x02\x00\x00\x00",  # trailing bytes after an update
    ],
)
async def test_garbage_taken_at_the_socket_closes_the_offender_only(
    server: RunningServer, frame: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = Taken(monkeypatch)
    good = await Hocus.connect(server)
    gdoc = await good.open("junk")
    await until(lambda: bool(good.of(m.HSyncStatus)))
    bad = await _ywebsocket(server, "junk")
    await until(lambda: _readers_wait(server))  # the next frame is taken at the socket
    before = taken.taken
    await bad.send(frame)
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(bad.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code in (1002, 1003)
    assert taken.taken == before + 1
    gdoc.get("t", type=pycrdt.Text).insert(0, "still fine")
    await until(lambda: len(good.of(m.HSyncStatus)) >= 2)
    assert await stored_text(server, "junk") == "still fine"
    await good.close()


def _masked(payload: bytes, mask: bytes = b"\x1f\x2e\x3d\x4c") -> bytes:
    """A client's binary frame (masked; lengths under 126 bytes)."""
    assert len(payload) < 126
    return (
        bytes((0x82, 0x80 | len(payload)))
        + mask
        + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    )


def _keystroke_frames(n: int) -> tuple[str, list[bytes]]:
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    text = doc.get("t", type=pycrdt.Text)
    frames = []
    for k in range(n):
        before = doc.get_state()
        text.insert(len(text), "klmnop"[k % 6])
        frames.append(m.encode_ywebsocket(m.YSync(m.SyncUpdate(doc.get_update(before)))))
    return str(text), frames


async def test_keystrokes_sharing_one_read_are_each_taken_at_the_socket_in_order(
    recorded: tuple[RunningServer, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sent several frames at once (or a server that read late): each whole
    frame of the read is taken where it was read, in order, and stored before it is sent."""
    server, events = recorded
    taken = Taken(monkeypatch)
    a, b = await _ywebsocket(server, "burst"), await _ywebsocket(server, "burst")
    bdoc: pycrdt.Doc[Any] = pycrdt.Doc()
    reader = asyncio.create_task(_reading(b, bdoc, []))
    await until(lambda: _readers_wait(server))
    before = (taken.taken, taken.left)
    text, frames = _keystroke_frames(6)
    a.transport.write(b"".join(_masked(f) for f in frames))
    await until(lambda: text_of(bdoc) == text)
    assert taken.taken >= before[0] + 6  # (through the parser, the reader gets them: none)
    assert events.count("stored") >= 6
    assert await stored_text(server, "burst") == text
    reader.cancel()
    await a.close()
    await b.close()


@pytest.mark.parametrize(
    "tail",
    [
        _masked(b"\x00\x02\x03\xff\xff\xff"),  # an update that does not decode
        b"\x82\xfe\x00\x05\x1f\x2e\x3d\x4c" + b"\0" * 5,  # a 16-bit length under 126
        bytes((0x82, 0x05)) + b"\0" * 5,  # unmasked
        _masked(b"\x00\x02\x02\x01\x00")[:-2],  # cut short: the rest never comes
    ],
    ids=["undecodable", "non-minimal", "unmasked", "partial"],
)
async def test_a_read_of_good_frames_then_garbage_keeps_the_good_ones_only(
    recorded: tuple[RunningServer, list[str]], monkeypatch: pytest.MonkeyPatch, tail: bytes
) -> None:
    """The whole frames before the garbage are handled (stored, sent); the garbage goes
    where it would alone: the parser refuses what is not a frame, the session what is not
    an update (the connection closes), and half a frame waits for the rest."""
    server, _ = recorded
    taken = Taken(monkeypatch)
    a, b = await _ywebsocket(server, "tail"), await _ywebsocket(server, "tail")
    bdoc: pycrdt.Doc[Any] = pycrdt.Doc()
    reader = asyncio.create_task(_reading(b, bdoc, []))
    await until(lambda: _readers_wait(server))
    before = (taken.taken, taken.left)
    text, frames = _keystroke_frames(3)
    a.transport.write(b"".join(_masked(f) for f in frames) + tail)
    await until(lambda: text_of(bdoc) == text)
    assert taken.taken >= before[0] + 3
    assert await stored_text(server, "tail") == text
    reader.cancel()
    await a.close()
    await b.close()
