"""Server CPU per Yjs update without sockets: y-websocket or Hocuspocus connections of the real
server, fed keystrokes in process (issue 11's per-update cost, measured steadily).

The Yjs server benchmark (``python -m benchmarks server --yjs --scenario b``) measures the whole
server on a shared machine, where one run differs from the next by a fifth and where the CPU per
delivery also depends on how late the server runs (a late server writes several frames per
socket write). This one runs the same per-update path from the frame in to the frames out:
``YjsConnection`` (its reader, its dialect session, the validation on the document's twin, the
room's frames), the room's pipeline, a real ``SQLiteStore`` (fsync) and the outboxes; only the
socket is replaced by a link that counts what it is given (``FakeLink``: no syscall, no
WebSocket framing, which are the same whatever the server does). ``--docs`` documents of
``--clients`` connections, paced like scenario (b): every client types ``--rate`` characters a
second (pre-encoded one-character updates of a 10-client history: what the generator's clients
send), spread evenly.

It prints CPU µs per update for the process, the event loop thread and the SQLite writer, and
per delivery (update, receiving connection), in CPU time. To compare two builds, run each
checkout's copy alternately (``PYTHONPATH=<checkout>/src``)::

    .venv/bin/python -m benchmarks.yjs_hub_cost [--dialect y-websocket|hocuspocus] [--seconds 10]

``--without store,validation,pipeline`` leaves parts out (the store's appends return at once;
an update is only applied, not validated; the room's frames are sent at once instead of going
through the pipeline, which then stores nothing): the difference with a full run is what the
part costs per update.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import pycrdt
from starlette.websockets import WebSocket

from benchmarks.hub_cost import cpu_per, thread_cpu, use_uvloop
from cowrite.adapters.store.sqlite import SQLiteStore
from cowrite.server import yjs_connection
from cowrite.server.config import Settings
from cowrite.server.hub import Hub
from cowrite.server.metrics import Metrics
from cowrite.server.pipeline import Pipeline
from cowrite.yjs import messages as m
from cowrite.yjs.document import YjsDocument

LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class FakeLink:
    """The socket of one connection: frames in from a queue, frames out only counted."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[Mapping[str, Any]] = asyncio.Queue()
        self.receive: Callable[[], Any] = self.inbox.get
        self.frames = 0

    def writable(self) -> bool:
        return True

    def when_writable(self, callback: Callable[[], None]) -> None:
        callback()

    def write(self, payload: bytes) -> None:
        self.frames += 1

    def write_binary(self, payloads: list[bytes]) -> None:
        self.frames += len(payloads)

    def write_ping(self, payload: bytes) -> bool:
        return True

    async def close(self, code: int, reason: str) -> None:
        await self.inbox.put({"type": "websocket.disconnect", "code": code})


def _socket(path: str) -> tuple[WebSocket, FakeLink]:
    """A Starlette WebSocket that accepts at once, and its link."""
    link = FakeLink()
    events: list[MutableMapping[str, Any]] = [{"type": "websocket.connect"}]

    async def receive() -> MutableMapping[str, Any]:
        return events.pop() if events else dict(await link.inbox.get())

    async def send(message: MutableMapping[str, Any]) -> None:
        pass

    scope = {"type": "websocket", "path": path, "query_string": b"", "headers": []}
    ws = WebSocket(scope, receive, send)
    ws.__dict__["bench_link"] = link
    return ws, link


def _open_link(ws: WebSocket, on_error: Callable[[], None]) -> Any:
    return ws.__dict__["bench_link"]


def keystrokes(clients: int, n: int, rng: random.Random) -> list[bytes]:
    """``n`` one-character updates typed by ``clients`` Yjs clients in turn, each after seeing
    the others' (the order the server gets them in)."""
    docs: list[pycrdt.Doc[Any]] = [pycrdt.Doc(client_id=1000 + c) for c in range(clients)]
    texts = [d.get("body", type=pycrdt.Text) for d in docs]
    out: list[bytes] = []
    for k in range(n):
        c = k % clients
        before = docs[c].get_state()
        texts[c].insert(rng.randrange(len(texts[c]) + 1), LETTERS[c % len(LETTERS)])
        update = docs[c].get_update(before)
        for i, d in enumerate(docs):
            if i != c:
                d.apply_update(update)
        out.append(update)
    return out


def update_frame(dialect: str, doc: str, update: bytes) -> bytes:
    if dialect == "hocuspocus":
        return m.encode_hocuspocus(m.HSync(doc, m.SyncUpdate(update)))
    return m.encode_ywebsocket(m.YSync(m.SyncUpdate(update)))


async def run(
    dialect: str, docs: int, clients: int, rate: float, seconds: float, path: str
) -> dict[str, float]:
    store = SQLiteStore(path)
    await store.open()
    settings = Settings(data=path)
    metrics = Metrics()
    hub = Hub(store, settings, metrics)
    await hub.start()
    rng = random.Random(1)
    per_doc = int(clients * rate * seconds) + 1
    names = [f"d{d}" for d in range(docs)]
    frames_in = {  # encoded before the clock starts: the clients' work, not the server's
        name: [_event(update_frame(dialect, name, u)) for u in keystrokes(clients, per_doc, rng)]
        for name in names
    }
    links: dict[str, list[FakeLink]] = {}
    tasks = []
    real_open_link = getattr(yjs_connection, "open_link")  # noqa: B009
    setattr(yjs_connection, "open_link", _open_link)  # the socket: a FakeLink  # noqa: B010
    try:
        for name in names:
            for _ in range(clients):
                path_ = f"/yjs/{name}" if dialect == "y-websocket" else "/hocuspocus"
                ws, link = _socket(path_)
                conn = yjs_connection.YjsConnection(
                    ws,
                    hub,
                    settings,
                    metrics,
                    "y-websocket" if dialect == "y-websocket" else "hocuspocus",
                    name if dialect == "y-websocket" else None,
                )
                tasks.append(asyncio.create_task(conn.run()))
                links.setdefault(name, []).append(link)
                if dialect == "hocuspocus":
                    await link.inbox.put(_event(m.encode_hocuspocus(m.HAuthToken(name, "t"))))
        await _settle(hub, 0.5)
        order = [(name, k) for k in range(per_doc) for name in names]
        total = min(len(order), int(docs * clients * rate * seconds))
        for ls in links.values():
            for link in ls:
                link.frames = 0
        tick = 0.01
        per_tick = docs * clients * rate * tick
        sent = 0
        owed = 0.0
        cpu0, main0 = time.process_time(), time.thread_time()
        writer0 = thread_cpu("cowrite-sqlite-writer")
        start = next_at = time.monotonic()
        while sent < total:
            owed += per_tick
            while owed >= 1 and sent < total:
                owed -= 1
                name, k = order[sent]
                sender = links[name][k % clients]
                sender.inbox.put_nowait(frames_in[name][k])
                sent += 1
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await _settle(hub, 0.2)
        cpu, main = time.process_time() - cpu0, time.thread_time() - main0
        writer = thread_cpu("cowrite-sqlite-writer") - writer0
        wall = time.monotonic() - start
        frames = sum(link.frames for ls in links.values() for link in ls)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        setattr(yjs_connection, "open_link", real_open_link)  # noqa: B010
        await hub.close()
        await store.close()
    return {
        "updates": sent,
        "deliveries": sent * (clients - 1),
        "frames": frames,
        "cpu": cpu,
        "main": main,
        "writer": writer,
        "wall": wall,
    }


def _event(frame: bytes) -> Mapping[str, Any]:
    return {"type": "websocket.receive", "bytes": frame}


async def _settle(hub: Hub, quiet_s: float) -> None:
    """Wait until every room's pipeline is empty, then ``quiet_s``."""
    await asyncio.sleep(0.05)
    while any(lr.inflight for lr in hub.rooms.values()):
        await asyncio.sleep(0.01)
    await asyncio.sleep(quiet_s)


def report(dialect: str, r: Mapping[str, float]) -> str:
    return (
        f"{dialect}: updates {int(r['updates'])}, deliveries {int(r['deliveries'])}"
        + (f" (frames out {int(r['frames'])})" if "frames" in r else "")
        + f"; {cpu_per(r, 'update')}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.yjs_hub_cost", description=__doc__)
    parser.add_argument("--dialect", default="y-websocket,hocuspocus", help="comma list")
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--clients", type=int, default=10, help="connections per document")
    parser.add_argument("--rate", type=float, default=1.0, help="keystrokes per second each")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--without",
        default="",
        help="comma list of parts left out, to see what each costs: store (appends return at "
        "once), validation (an update is only applied), pipeline (frames sent at once)",
    )
    args = parser.parse_args(argv)
    use_uvloop()
    without = [w for w in args.without.split(",") if w]
    for _ in range(args.repeat):
        for dialect in args.dialect.split(","):
            with tempfile.TemporaryDirectory() as tmp, _left_out(without):
                path = str(Path(tmp) / "bench.db")
                r = asyncio.run(
                    run(dialect, args.docs, args.clients, args.rate, args.seconds, path)
                )
            label = dialect + "".join(f" without {w}" for w in without)
            print(report(label, r), f"(load average {os.getloadavg()[0]:.2f})", flush=True)
    return 0


@contextlib.contextmanager
def _left_out(parts: Sequence[str]) -> Iterator[None]:
    """Replace the ``parts`` named (``--without``) by what costs nothing, for the duration."""
    seqs: dict[str, int] = {}

    async def appended(store: SQLiteStore, doc_id: str, *args: Any, **kwargs: Any) -> int:
        seqs[doc_id] = seq = seqs.get(doc_id, 0) + 1  # (each room's next version)
        return seq

    def applied(doc: YjsDocument, update: bytes) -> bytes:
        doc._fast.apply_update(update)
        return update

    def sent(hub: Any, lr: Any, outcome: Any, *args: Any, **kwargs: Any) -> None:
        for sink, frame in outcome.frames:
            sink.send(frame)

    stubs = {
        "store": (SQLiteStore, "append_update", appended),
        "validation": (YjsDocument, "apply_client_update", applied),
        "pipeline": (Pipeline, "submit", sent),
    }
    saved = [(stubs[p][0], stubs[p][1], getattr(stubs[p][0], stubs[p][1])) for p in parts]
    try:
        for p in parts:
            setattr(stubs[p][0], stubs[p][1], stubs[p][2])
        yield
    finally:
        for owner, name, value in saved:
            setattr(owner, name, value)


if __name__ == "__main__":
    raise SystemExit(main())
