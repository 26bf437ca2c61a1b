"""What one receiver of a broadcast costs the server: its Python, and its socket write.

``socket_cost`` measures a whole edit over real sockets; this splits the part per receiver:

* **python**: ``Connection.send`` of one payload to each of ``--receivers`` connections, then
  the per-tick flush (``Shared``) writing each one's frame through ``UvicornLink.write_now``,
  into a transport that does nothing: the interpreter's share, per receiver, CPU time.
* **write**: the same number of real loopback TCP sockets (a child process reads them all), one
  ``send`` of a ``--size``-byte frame to each per tick, a tick every ``--gap-ms`` (an edit
  every 4 ms is scenario (a)'s 250 edits/s): the kernel's share, per write, CPU time of the
  writing thread. On loopback a write runs the receiver's side of TCP too and wakes its reader:
  measured with the child reading every socket from one selector (a client process holding many
  connections: one wake-up per tick) and with a thread per socket (``socket_cost``'s clients,
  ``websockets.sync``: a wake-up per write).

Run it from each checkout to compare builds (its own ``src`` comes first)::

    .venv/bin/python -m benchmarks.fanout_cost [--receivers 49] [--size 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import selectors
import socket
import sys
import threading
import time
import types
from collections.abc import Sequence

from benchmarks import ROOT

sys.path.insert(0, str(ROOT / "src"))  # this checkout's cowrite, whatever is installed


class _NullTransport:
    __slots__ = ("writes",)

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1


async def _python(receivers: int, size: int, ticks: int) -> float:
    from websockets.protocol import State

    from cowrite.server import transport
    from cowrite.server.config import Settings
    from cowrite.server.connection import Connection
    from cowrite.server.metrics import Metrics
    from cowrite.server.shared import Shared

    settings, metrics = Settings(data=":memory:"), Metrics()
    try:
        shared = Shared(settings.heartbeat_s, metrics.outbox_depth)
    except TypeError:  # an older build's Shared
        shared = Shared(settings.heartbeat_s)
    hub = types.SimpleNamespace(clock=time.monotonic)
    conns = []
    for _ in range(receivers):
        conn = Connection(None, hub, settings, metrics)  # type: ignore[arg-type]
        writable = types.SimpleNamespace(is_set=lambda: True)
        ws_conn = types.SimpleNamespace(state=State.OPEN, extensions=[])
        proto = types.SimpleNamespace(
            queue=None, conn=ws_conn, transport=_NullTransport(), receive=None,
            writable=writable, close_sent=False, disconnected=False,
        )  # fmt: skip
        conn._link = transport.UvicornLink(None, proto)  # type: ignore[arg-type]
        conn._shared = shared
        conns.append(conn)
    payload = b"x" * size
    best = float("inf")
    for _ in range(5):
        t0 = time.process_time()
        for _ in range(ticks):
            data = bytes(payload)  # a new broadcast each tick (framed once for all)
            for conn in conns:
                conn.send(data)
            await asyncio.sleep(0)  # the tick ends: ``Shared`` flushes every receiver
        best = min(best, (time.process_time() - t0) / (ticks * receivers))
    return best * 1e6


def _drain(socks: list[socket.socket]) -> None:
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    open_ = len(socks)
    while open_:
        for key, _ in sel.select():
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            if not sock.recv(1 << 16):
                sel.unregister(sock)
                open_ -= 1


def _drain_threads(socks: list[socket.socket]) -> None:
    """One blocking reader thread per socket (as ``websockets.sync`` clients: every write wakes
    a thread of its own)."""

    def read(s: socket.socket) -> None:
        while s.recv(1 << 16):
            pass

    threads = [threading.Thread(target=read, args=(s,)) for s in socks]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _write(receivers: int, size: int, ticks: int, gap_ms: float, threads: bool) -> float:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    readers = [socket.create_connection(("127.0.0.1", port)) for _ in range(receivers)]
    writers = [listener.accept()[0] for _ in range(receivers)]
    for w in writers:
        w.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as uvloop's transports
    pid = os.fork()
    if pid == 0:  # the clients' process: reads everything until the server side closes
        for w in writers:
            w.close()
        try:
            (_drain_threads if threads else _drain)(readers)
        finally:
            os._exit(0)
    for r in readers:
        r.close()
    frame = b"\x81\x7e" + len(b"x" * size).to_bytes(2, "big") + b"x" * size
    spent = 0.0
    try:
        for _ in range(ticks):
            t0 = time.thread_time()
            for w in writers:
                w.send(frame)
            spent += time.thread_time() - t0
            time.sleep(gap_ms / 1000)
    finally:
        for w in writers:
            w.close()
        listener.close()
        os.waitpid(pid, 0)
    return spent / (ticks * receivers) * 1e6


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fanout_cost", description=__doc__)
    parser.add_argument("--receivers", type=int, default=49)
    parser.add_argument("--size", type=int, default=200, help="bytes of a broadcast")
    parser.add_argument("--ticks", type=int, default=2000, help="broadcasts per measurement")
    parser.add_argument("--gap-ms", type=float, default=4.0, help="between writes' ticks")
    args = parser.parse_args(argv)
    py = asyncio.run(_python(args.receivers, args.size, args.ticks))
    one = _write(args.receivers, args.size, args.ticks // 4, args.gap_ms, threads=False)
    many = _write(args.receivers, args.size, args.ticks // 4, args.gap_ms, threads=True)
    print(
        f"{args.receivers} receivers, {args.size} B: CPU µs per receiver: python {py:.2f} "
        f"(send + flush, best of 5); socket write {one:.2f} to readers in one process's "
        f"selector, {many:.2f} to a reader thread per socket (load average "
        f"{os.getloadavg()[0]:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
