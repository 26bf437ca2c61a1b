"""Server CPU per Yjs update through real sockets: ``yjs_hub_cost`` with the WebSocket layer.

``python -m benchmarks.yjs_hub_cost`` replaces the socket (its ``FakeLink``); this runs the whole
server as ``cowrite serve`` does (uvicorn with ``server/uvicorn_ws.py``'s protocol, the app, the
hub, a real ``SQLiteStore``) on 127.0.0.1, and drives it from one client thread of the same
process over raw TCP sockets: the same pre-encoded keystrokes of the same paced schedule
(``--docs`` documents of ``--clients`` connections, ``--rate`` keystrokes a second each), masked
frames written with one ``send`` each; the client thread only counts the bytes that come back
(until none came for 2 s), so that it holds the interpreter lock as little as it can. With
``--awareness S`` every client also renews its awareness state every ``S`` seconds (the
providers' 15 s) and every other client of its document sends that renewal back, as the
y-websocket and Hocuspocus providers do with every awareness change they apply: the awareness
traffic of the Node benchmark's scenario (b), where it is most of the awareness messages. The
server's CPU is the process's minus the client thread's (each measured on its own CPU clock), so
the clients cost nothing here, unlike in the Node benchmark; the kernel's share of a socket write
(on loopback it delivers to the reader too) is the server's, as there.

    .venv/bin/python -m benchmarks.yjs_socket_cost [--dialect y-websocket|hocuspocus] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import selectors
import socket
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

import uvicorn

from benchmarks.hub_cost import thread_cpu, use_uvloop
from benchmarks.yjs_hub_cost import keystrokes, report, update_frame
from cowrite.server.app import create_app
from cowrite.server.config import Settings
from cowrite.server.run import server_config
from cowrite.yjs import messages as m
from cowrite.yjs.awareness import AwarenessEntry, encode_update

MASK = b"\x11\x22\x33\x44"


def masked(payload: bytes) -> bytes:
    """A client's final binary frame (RFC 6455: clients mask)."""
    n = len(payload)
    head = bytes((0x82, 0x80 | n)) if n < 126 else bytes((0x82, 0xFE)) + n.to_bytes(2, "big")
    body = bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))
    return head + MASK + body


class Clients(threading.Thread):
    """Every client socket: connects, sends the schedule when told, counts the bytes back."""

    def __init__(self, port: int, dialect: str, docs: int, clients: int, rate: float) -> None:
        super().__init__(name="bench-clients", daemon=True)
        self.port, self.dialect, self.docs, self.clients, self.rate = (
            port,
            dialect,
            docs,
            clients,
            rate,
        )
        self.ready = threading.Event()
        self.go = threading.Event()
        self.done = threading.Event()
        self.total = 0
        self.received = 0
        self.cpu = 0.0
        self.schedule: list[tuple[int, bytes, bool]] = []
        """(client, frame, is a keystroke: keystrokes are paced, awareness goes with them)"""
        self.error: BaseException | None = None

    def _connect(self, name: str) -> socket.socket:
        s = socket.create_connection(("127.0.0.1", self.port))
        path = f"/yjs/{name}" if self.dialect == "y-websocket" else "/hocuspocus"
        key = base64.b64encode(os.urandom(16)).decode()
        s.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            reply += chunk
        if not reply.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(reply.split(b"\r\n")[0].decode())
        if self.dialect == "hocuspocus":
            s.sendall(masked(m.encode_hocuspocus(m.HAuthToken(name, "t"))))
        s.setblocking(False)
        return s

    def run(self) -> None:
        try:
            self._run()
        except BaseException as exc:  # reported by the caller
            self.error = exc
            self.ready.set()
            self.done.set()

    def _run(self) -> None:
        sel = selectors.DefaultSelector()
        socks: list[socket.socket] = []
        for d in range(self.docs):
            for _ in range(self.clients):
                s = self._connect(f"d{d}")
                socks.append(s)
                sel.register(s, selectors.EVENT_READ)
        self.ready.set()
        self.go.wait()
        c0 = time.thread_time()
        self.received = 0
        tick = 0.01
        per_tick = self.docs * self.clients * self.rate * tick
        sent, owed = 0, 0.0
        next_at = time.monotonic()
        quiet_until = None
        while True:
            now = time.monotonic()
            if sent < len(self.schedule) and now >= next_at:
                owed += per_tick
                while owed >= 1 and sent < len(self.schedule):
                    index, frame, keystroke = self.schedule[sent]
                    socks[index].send(frame)
                    sent += 1
                    owed -= keystroke
                next_at += tick
            for key, _ in sel.select(max(0.0, next_at - time.monotonic())):
                self.received += len(key.fileobj.recv(1 << 16))  # type: ignore[union-attr]
            if sent >= len(self.schedule):
                if quiet_until is None or self.received != self.total:
                    self.total = self.received
                    quiet_until = time.monotonic() + 2.0
                elif time.monotonic() > quiet_until:
                    break
        self.cpu = time.thread_time() - c0
        self.done.set()
        for s in socks:
            s.close()


def awareness_frames(dialect: str, doc: int, clients: int, renewal: int) -> list[tuple[int, bytes]]:
    """Client ``renewal % clients`` of document ``doc`` renews its state (clock
    ``renewal // clients + 1``), then every other client of the document sends it back."""
    k = renewal % clients
    update = encode_update([AwarenessEntry(1000 + doc * clients + k, renewal // clients + 1, "{}")])
    if dialect == "y-websocket":
        frame = masked(m.encode_ywebsocket(m.YAwareness(update)))
    else:
        frame = masked(m.encode_hocuspocus(m.HAwareness(f"d{doc}", update)))
    return [(doc * clients + (k + j) % clients, frame) for j in range(clients)]


async def serve_in_process(
    settings: Settings,
) -> tuple[int, uvicorn.Server, asyncio.Task[None]]:
    """``cowrite serve``'s server in this process on a free port of 127.0.0.1, once it accepts:
    (port, server, its task); stop it with ``server.should_exit = True`` and await the task."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(server_config(create_app(settings), settings))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    return sock.getsockname()[1], server, serving


async def run(
    dialect: str,
    docs: int,
    clients: int,
    rate: float,
    seconds: float,
    path: str,
    awareness: float = 0.0,
) -> dict[str, float]:
    port, server, serving = await serve_in_process(Settings(data=path))
    rng = random.Random(1)
    per_doc = int(clients * rate * seconds) + 1
    crowd = Clients(port, dialect, docs, clients, rate)
    strokes = {d: keystrokes(clients, per_doc, rng) for d in range(docs)}
    total = min(per_doc * docs, int(docs * clients * rate * seconds))
    order = [(d, k) for k in range(per_doc) for d in range(docs)][:total]
    crowd.schedule = []
    renewals = 0.0  # owed per keystroke: a client's renewals per its keystrokes
    per_stroke = 1 / (awareness * rate) if awareness > 0 else 0.0
    done: dict[int, int] = {}
    for d, k in order:
        frame = masked(update_frame(dialect, f"d{d}", strokes[d][k]))
        crowd.schedule.append((d * clients + k % clients, frame, True))
        renewals += per_stroke
        while renewals >= 1:
            renewals -= 1
            n = done[d] = done.get(d, -1) + 1
            crowd.schedule += [(i, f, False) for i, f in awareness_frames(dialect, d, clients, n)]
    crowd.start()
    while not crowd.ready.is_set():
        await asyncio.sleep(0.05)
    await asyncio.sleep(1.0)  # every greeting handled
    cpu0, main0 = time.process_time(), time.thread_time()
    writer0 = thread_cpu("cowrite-sqlite-writer")
    start = time.monotonic()
    crowd.go.set()
    while not crowd.done.is_set():
        await asyncio.sleep(0.05)
    cpu, main = time.process_time() - cpu0, time.thread_time() - main0
    writer = thread_cpu("cowrite-sqlite-writer") - writer0
    wall = time.monotonic() - start
    server.should_exit = True
    await serving
    if crowd.error is not None:
        raise crowd.error
    return {
        "updates": total,
        "deliveries": total * (clients - 1),
        "received": crowd.received,
        "cpu": cpu - crowd.cpu,
        "main": main,
        "writer": writer,
        "wall": wall,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.yjs_socket_cost", description=__doc__
    )
    parser.add_argument("--dialect", default="y-websocket,hocuspocus", help="comma list")
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--clients", type=int, default=10, help="connections per document")
    parser.add_argument("--rate", type=float, default=1.0, help="keystrokes per second each")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--awareness", type=float, default=0.0, help="seconds between a client's renewals"
    )
    args = parser.parse_args(argv)
    use_uvloop()
    for _ in range(args.repeat):
        for dialect in args.dialect.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                r: Any = asyncio.run(
                    run(
                        dialect,
                        args.docs,
                        args.clients,
                        args.rate,
                        args.seconds,
                        tmp + "/b.db",
                        args.awareness,
                    )
                )
            print(
                report(dialect, r),
                f"(bytes in {r['received']}; load average {os.getloadavg()[0]:.2f})",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
