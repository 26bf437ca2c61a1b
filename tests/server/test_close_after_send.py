"""A message the server received is handled even when its socket closes right after (a tab that
sends its last change and closes): a replica's ``sync`` without ``edit_id`` and a Yjs update are
applied and stored, though nothing acknowledged them.

The interleaving that lost them, forced with real sockets: the client's last message and its
close frame arrive in one read, and in that same loop tick the server has queued something for
the client (any broadcast). The flush that follows finds the socket closing, closes the
connection (1006) and used to cancel the reader, which held the received message but had not
run yet: the message went with the cancelled task. ``RawSocket`` writes the message and the close
frame with one ``sendall``; ``_queue_for`` queues the broadcast in the tick that reads them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from typing import Any

import pycrdt

from cowrite import protocol as p
from cowrite.engine.document import Document
from cowrite.server.connection import MAX_STRIKES
from cowrite.yjs import messages as m

from .conftest import RunningServer
from .protocol_clients import running
from .test_yjs_server import stored_text, until


class RawSocket:
    """A WebSocket client on a blocking socket that frames by hand, so several frames (a
    message and the close frame) leave in one write. Reads block: run them in a thread."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    @staticmethod
    def frame(payload: bytes, opcode: int = 0x1) -> bytes:
        """One final, masked client frame (RFC 6455 5.2)."""
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            header = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return header + mask + masked

    @classmethod
    def close_frame(cls) -> bytes:
        return cls.frame(struct.pack("!H", 1000), 0x8)

    def send(self, *frames: bytes) -> None:
        self.sock.sendall(b"".join(frames))

    def recv(self) -> bytes:
        """The payload of the server's next data frame (unmasked, unfragmented)."""
        while True:
            if len(self.buf) >= 2:
                n, start = self.buf[1] & 0x7F, 2
                if n == 126:
                    n, start = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127:
                    n, start = struct.unpack("!Q", self.buf[2:10])[0], 10
                if len(self.buf) >= start + n:
                    payload, self.buf = self.buf[start : start + n], self.buf[start + n :]
                    return payload
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            self.buf += data

    def recv_until(self, type_: str) -> dict[str, Any]:
        while True:
            data = json.loads(self.recv())
            for msg in data if isinstance(data, list) else [data]:
                if msg["type"] == type_:
                    return dict(msg)


def _port(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _connection(server: RunningServer, session: str | None = None) -> Any:
    """The server's connection object of a client (the only one, or the one of ``session``)."""
    conns = [
        c
        for c in server.state.hub.permissions.connections
        if session is None or c.session == session
    ]
    assert len(conns) == 1, conns
    return conns[0]


def _queue_for(conn: Any, data: bytes) -> None:
    """Queue ``data`` for ``conn`` in the next loop tick, the one whose poll reads what the
    test just wrote: its flush comes after that read and before the reader's turn."""
    asyncio.get_running_loop().call_soon(conn.send, data)


def _disconnects(server: RunningServer, code: int) -> float:
    value: float = server.state.metrics.disconnects.labels(str(code))._value.get()
    return value


async def _replica_tab(server: Any, doc: str) -> tuple[RawSocket, Any, Any]:
    """A replica that joined ``doc`` on a ``RawSocket``: the socket, the server's connection and
    the room."""
    raw = await asyncio.to_thread(RawSocket, _port(server), "/ws")
    raw.send(raw.frame(json.dumps({"type": "hello", "client_id": f"tab-{doc}"}).encode()))
    session = (await asyncio.to_thread(raw.recv_until, "welcome"))["session"]
    join = {"type": "join", "doc": doc, "mode": "replica", "create": True}
    raw.send(raw.frame(json.dumps(join).encode()))
    await asyncio.to_thread(raw.recv_until, "joined")
    return raw, _connection(server, session), server.state.hub.rooms[doc]


def _syncs(doc: str, n: int, replica: int) -> list[bytes]:
    """``n`` sync frames without ``edit_id``, each setting one key of ``map:m``."""
    source = Document(replica)
    frames = []
    for k in range(n):
        seen = source.version
        source.map("m").set(f"k{k}", k)
        delta = base64.b64encode(source.delta_since(seen)).decode()
        sync = {"type": "sync", "doc": doc, "delta": delta}
        frames.append(RawSocket.frame(json.dumps(sync).encode()))
    return frames


def _saving(doc: str) -> bytes:
    return p.encoder.encode(p.Saving(doc=doc, pending=False))


async def test_a_replica_sync_sent_just_before_closing_is_applied_and_stored(
    server: RunningServer,
) -> None:
    raw, conn, lr = await _replica_tab(server, "last")
    store = server.state.hub.store
    stored_before = len((await store.load("last")).updates)
    gone = _disconnects(server, 1006)
    raw.send(*_syncs("last", 1, 77), raw.close_frame())
    _queue_for(conn, _saving("last"))
    await until(lambda: conn.closing is not None)

    await until(lambda: lr.room.doc.to_json().get("m") == {"k0": 0})
    await until(lambda: lr.unpersisted == 0 and lr.inflight == 0)
    assert len((await store.load("last")).updates) == stored_before + 1
    assert _disconnects(server, 1006) == gone + 1  # the interleaving happened: the flush failed
    raw.sock.close()


async def test_every_sync_received_before_the_disconnect_is_applied(server: RunningServer) -> None:
    """Several messages in the read that carries the close frame: all of them are handled."""
    raw, conn, lr = await _replica_tab(server, "many")
    raw.send(*_syncs("many", 5, 78), raw.close_frame())
    _queue_for(conn, _saving("many"))
    await until(lambda: conn.closing is not None)
    await until(lambda: len(lr.room.doc.to_json().get("m", {})) == 5)
    assert lr.room.doc.to_json()["m"] == {f"k{k}": k for k in range(5)}
    raw.sock.close()


async def test_a_gone_connections_backlog_keeps_the_rate_limit(make_settings: Any) -> None:
    async with running(make_settings(edits_per_second=1, edit_burst=3)) as server:
        server.state.hub.clock = lambda: 1000.0  # the rate limit's clock stands still
        raw, conn, lr = await _replica_tab(server, "rated")
        raw.send(*_syncs("rated", 8, 79), raw.close_frame())
        _queue_for(conn, _saving("rated"))
        await until(lambda: server.state.hub.permissions.connections == set())
        assert lr.room.doc.to_json()["m"] == {f"k{k}": k for k in range(3)}  # the burst only
        raw.sock.close()


async def test_a_gone_connections_garbage_backlog_ends_at_the_strike_limit(
    server: RunningServer,
) -> None:
    raw, conn, lr = await _replica_tab(server, "junk")
    garbage = [RawSocket.frame(f"not json {k}".encode()) for k in range(MAX_STRIKES + 50)]
    raw.send(*garbage, *_syncs("junk", 1, 80), raw.close_frame())
    _queue_for(conn, _saving("junk"))
    await until(lambda: server.state.hub.permissions.connections == set())
    assert "m" not in lr.room.doc.to_json()  # read no further than the limit
    assert conn._strikes == MAX_STRIKES
    raw.sock.close()


async def test_a_yjs_update_sent_just_before_closing_is_stored(server: RunningServer) -> None:
    raw = await asyncio.to_thread(RawSocket, _port(server), "/yjs/lastyjs")
    first = m.decode_ywebsocket(await asyncio.to_thread(raw.recv))  # the server's sync step 1
    assert isinstance(first, m.YSync) and isinstance(first.sync, m.SyncStep1)
    conn = _connection(server)

    ydoc: pycrdt.Doc[Any] = pycrdt.Doc()
    with ydoc.transaction():
        ydoc.get("t", type=pycrdt.Text).insert(0, "closing tab")
    update = m.encode_ywebsocket(m.YSync(m.SyncUpdate(ydoc.get_update())))
    gone = _disconnects(server, 1006)
    raw.send(raw.frame(update, 0x2), raw.close_frame())
    _queue_for(conn, m.encode_ywebsocket(m.YSync(m.SyncStep1(b"\x00"))))
    await until(lambda: conn.closing is not None)

    lr = server.state.hub.rooms["lastyjs"]
    await until(lambda: lr.unpersisted == 0 and lr.inflight == 0)
    assert await stored_text(server, "lastyjs") == "closing tab"
    assert _disconnects(server, 1006) == gone + 1
    raw.sock.close()
