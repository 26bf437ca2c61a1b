"""CPU per received Yjs frame on the socket's side only: taken where it is read, or through the
parser and the reader (issue 11's receive path, measured alone).

One y-websocket connection of a real server (``cowrite serve``'s uvicorn protocol, in process);
its session's ``receive`` is replaced by a stub, so what is timed is only how a keystroke's
frame reaches the session: ``SlimWebSocketProtocol.data_received`` with ``on_small_binary``
(``YjsConnection._take``: peek, budget, session) or without it (``websockets``' frame parser,
the ASGI event, the inbox's future, the reader task's wake-up, its loop). Each round feeds
``--frames`` masked frames to the protocol, one per event loop turn, in each mode, alternately;
it prints the CPU µs per frame of each round and the medians.

    .venv/bin/python -m benchmarks.yjs_receive_cost [--frames 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from benchmarks.hub_cost import use_uvloop
from benchmarks.yjs_hub_cost import update_frame
from benchmarks.yjs_socket_cost import masked, serve_in_process
from cowrite.server.config import Settings


async def run(frames: int, rounds: int, path: str) -> dict[str, list[float]]:
    settings = Settings(data=path, edits_per_second=1e9, edit_burst=10**9)
    port, server, serving = await serve_in_process(settings)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET /yjs/bench HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await reader.readuntil(b"\r\n\r\n")
    await asyncio.sleep(0.3)  # the connection is open and its reader waits
    protos: list[Any] = [p for p in server.server_state.connections if hasattr(p, "conn")]
    [proto] = protos
    take = proto.on_small_binary
    conn = take.__self__
    conn._session.receive = lambda frame, now=0.0: []  # only the way to the session is timed
    frame = masked(update_frame("y-websocket", "bench", b"\x01\x01\xa8\x0f\x04\x84\x00\x01a\x00"))
    out: dict[str, list[float]] = {"taken": [], "reader": []}
    for _ in range(rounds):
        for mode in ("reader", "taken"):
            proto.on_small_binary = take if mode == "taken" else None
            t0 = time.thread_time()
            for _ in range(frames):
                proto.data_received(frame)
                await asyncio.sleep(0)
            out[mode].append(1e6 * (time.thread_time() - t0) / frames)
            await asyncio.sleep(0.05)
    writer.close()
    server.should_exit = True
    await serving
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.yjs_receive_cost", description=__doc__
    )
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    use_uvloop()
    with tempfile.TemporaryDirectory() as tmp:
        r: Any = asyncio.run(run(args.frames, args.rounds, tmp + "/b.db"))
    for mode, values in r.items():
        rounds = ", ".join(f"{v:.1f}" for v in values)
        print(f"{mode}: CPU µs per frame, median {statistics.median(values):.1f} ({rounds})")
    print(f"(load average {os.getloadavg()[0]:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
