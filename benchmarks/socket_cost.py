"""Server CPU per edit over real sockets, one edit at a time: the send path measured steadily.

The server benchmark (``python -m benchmarks server``) lets a thousand clients type at once: on a
shared machine its batches grow and shrink with the machine's load (a loaded server coalesces
more edits per commit and per frame), so its CPU per delivery moves by ±15 % from one run to the
next. Here a ``cowrite serve`` process (``--data``: ``:memory:`` by default, or a SQLite file)
gets ``--docs`` documents of ``--clients`` thin clients each, and exactly one edit is in flight
at any time: a client sends a keystroke, the benchmark reads its ``ack`` and the ``remote`` at
every other client of the document, then the next client of the next document types. So every
edit costs the server the same work (one frame read, one room edit, one append, one frame
written to each member) whatever the machine does, and its threads' CPU time (from
``/proc/<pid>/task``) divided by the edits is the per-edit cost. Run it with two client
counts to split it into the fixed part per edit and the part per receiver::

    .venv/bin/python -m benchmarks.socket_cost [--docs 10] [--clients 10] [--edits 4000]

A client sends at most ``edits / (docs * clients)`` of the edits: keep that under the server's
per-connection edit rate (50/s) at the speed edits go, or the run stops with the refusal
(``--docs 50 --clients 2``, not ``--docs 10 --clients 2``).

To compare two builds, run each checkout's copy alternately (the server runs from the checkout
the benchmark file is in).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from benchmarks import child_env

TICKS = os.sysconf("SC_CLK_TCK")
PONG = '{"type":"pong","nonce":0}'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _threads(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of ``pid``."""
    out: dict[int, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            raw = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
            fields = raw[raw.rindex(")") + 2 :].split()
            out[int(tid)] = (int(fields[11]) + int(fields[12])) / TICKS
    return out


def _messages(ws: ClientConnection) -> list[dict[str, Any]]:
    data = json.loads(ws.recv(timeout=30))
    return data if isinstance(data, list) else [data]


def _until(ws: ClientConnection, type_: str, edit_id: str | None = None) -> dict[str, Any]:
    while True:
        for m in _messages(ws):
            if m.get("type") == type_ and (edit_id is None or m.get("edit_id") == edit_id):
                return m
            if m.get("type") == "ping":  # the server's heartbeat: a silent client is dropped
                ws.send(PONG)
            elif m.get("type") == "error":  # (a client over its edit rate: fewer per client)
                raise RuntimeError(f"the server refused an edit: {m}")


def run(docs: int, clients: int, edits: int, data: str) -> dict[str, float]:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="cowrite-socket-cost-") as tmp:
        store = ":memory:" if data == "memory" else str(Path(tmp) / "cowrite.db")
        cmd = [sys.executable, "-m", "cowrite.cli", "serve", "--port", str(port)]
        cmd += ["--data", store, "--log-level", "warning"]
        quiet = subprocess.DEVNULL
        server = subprocess.Popen(cmd, env=child_env(), cwd=tmp, stdout=quiet, stderr=quiet)
        try:
            sockets = contextlib.ExitStack()
            deadline = time.monotonic() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError("the server did not start") from None
                    time.sleep(0.1)
            rooms: list[list[ClientConnection]] = []
            url = f"ws://127.0.0.1:{port}/ws"
            for d in range(docs):
                room = []
                for c in range(clients):
                    ws = sockets.enter_context(connect(url, compression=None, max_size=None))
                    ws.send(json.dumps({"type": "hello", "client_id": f"c{d}-{c}"}))
                    ws.send(json.dumps({"type": "join", "doc": f"doc{d}", "create": True}))
                    _until(ws, "joined")
                    room.append(ws)
                rooms.append(room)
            versions = [0] * docs

            def edit(i: int) -> None:
                d = i % docs
                room = rooms[d]
                sender = room[(i // docs) % clients]
                edit_id = f"e{i}"
                op = {"type": "seq", "node": "text:body", "edit": ["x"]}
                msg = {"type": "edit", "doc": f"doc{d}", "edit_id": edit_id}
                sender.send(json.dumps({**msg, "version": versions[d], "ops": [op]}))
                versions[d] = _until(sender, "ack", edit_id)["version"]
                for ws in room:
                    if ws is not sender:
                        _until(ws, "remote", edit_id)

            for i in range(min(500, edits)):  # warm up (and the presence of every join settles)
                edit(i)
            time.sleep(0.5)
            before = _threads(server.pid)
            t0 = time.monotonic()
            for i in range(edits):
                edit(500 + i)
            wall = time.monotonic() - t0
            after = _threads(server.pid)
            sockets.close()
        finally:
            server.terminate()
            server.wait(30)
    used = {tid: after.get(tid, 0.0) - cpu for tid, cpu in before.items()}
    loop = used.pop(server.pid, 0.0)
    return {
        "edits": edits,
        "receivers": clients - 1,
        "loop_us": loop / edits * 1e6,
        "other_us": sum(used.values()) / edits * 1e6,
        "edits_per_s": edits / wall,
        "load": os.getloadavg()[0],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.socket_cost", description=__doc__)
    parser.add_argument("--docs", type=int, default=10)
    parser.add_argument("--clients", type=int, default=10, help="thin clients per document")
    parser.add_argument("--edits", type=int, default=4000)
    parser.add_argument("--data", choices=("memory", "sqlite"), default="memory")
    args = parser.parse_args(argv)
    r = run(args.docs, args.clients, args.edits, args.data)
    print(
        f"{r['edits']} edits, {r['receivers']} receivers each ({args.data}): server CPU µs per "
        f"edit: event loop {r['loop_us']:.1f}, other threads {r['other_us']:.1f}; "
        f"{r['edits_per_s']:.0f} edits/s (load average {r['load']:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
