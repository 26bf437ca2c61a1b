"""Server CPU per edit without sockets: thin clients' edits through the hub, the room pipeline and
the durable store, in one process (issue 12's per-edit cost, measured steadily).

The server benchmark (``python -m benchmarks server --scenario b``) measures the whole server,
sockets and WebSocket framing included, on a shared machine where one run differs from the next
by a third. This one drives the same per-edit path (``Hub.edit``: the room's rebase and apply,
its outcome queued in the room's pipeline, appended to a real `SQLiteStore` with fsync, then the
ack and the broadcasts handed to each member) from in-process peers, paced like scenario (b):
``--docs`` documents of ``--clients`` thin clients each, every client typing one character at a
random place ``--rate`` times a second, one edit in flight. A peer only appends what it is sent
(it decodes nothing until it types again, and that decoding is timed and subtracted).

It prints, per edit: the process's CPU (all threads), the event loop thread's (minus the
peers'), and the SQLite writer thread's, in microseconds, and per delivery (edit, receiving
member). CPU time, not wall time: other work on the machine changes these little. To compare
two builds, run each checkout's copy alternately (``PYTHONPATH=<checkout>/src``)::

    .venv/bin/python -m benchmarks.hub_cost [--docs 100] [--clients 10] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import msgspec

from cowrite import protocol as p
from cowrite.adapters.store.sqlite import SQLiteStore
from cowrite.server.auth import anonymous
from cowrite.server.config import Settings
from cowrite.server.hub import Hub
from cowrite.server.metrics import Metrics

NODE = "text:body"


class _Msg(msgspec.Struct, tag_field="type"):
    pass


class _Remote(_Msg, tag="remote"):
    version: int
    ops: list[dict[str, Any]]


class _Ack(_Msg, tag="ack"):
    edit_id: str
    version: int


class _Joined(_Msg, tag="joined"):
    version: int


class _Other(msgspec.Struct):
    type: str


_decode = msgspec.json.Decoder(_Remote | _Ack | _Joined)
_peek = msgspec.json.Decoder(_Other)


class BenchPeer:
    """A thin client of one document: what the hub sends it waits, undecoded, in ``inbox``."""

    def __init__(self, doc: str, index: int) -> None:
        self.session = f"s{doc}-{index}"
        self.client_id = f"c{doc}-{index}"
        self.identity = anonymous(f"u{doc}-{index}", f"user {index}")
        self.doc = doc
        self._docs: dict[str, str] = {}
        self.inbox: list[bytes] = []
        self.version = 0
        self.length = 0
        self.inflight: str | None = None
        self.seq = 0
        self.remotes = 0

    @property
    def docs(self) -> Mapping[str, str]:
        return self._docs

    def send(self, data: bytes) -> None:
        self.inbox.append(data)

    def close(self, code: int, reason: str) -> None:
        raise RuntimeError(f"the hub closed a bench peer: {code} {reason}")

    def entered(self, doc_id: str, mode: str) -> None:
        self._docs[doc_id] = mode

    def left(self, doc_id: str) -> None:
        self._docs.pop(doc_id, None)

    def saving(self, doc_id: str, pending: bool) -> None:
        pass

    def read(self) -> None:
        """Take in what was sent: versions, acks, the length of the text."""
        for data in self.inbox:
            for msg in _frames(data):
                if isinstance(msg, _Remote):
                    self.version = msg.version
                    self.remotes += 1
                    for op in msg.ops:
                        for c in op.get("edit", ()):
                            if isinstance(c, str):
                                self.length += len(c)
                elif isinstance(msg, _Ack):
                    if msg.edit_id == self.inflight:
                        self.inflight = None
                        self.version = max(self.version, msg.version)
                elif isinstance(msg, _Joined):
                    self.version = msg.version
        self.inbox.clear()

    def edit(self, rng: random.Random) -> p.Edit | None:
        """The next keystroke as an edit, or None while one is in flight."""
        if self.inflight is not None:
            return None
        self.seq += 1
        self.inflight = f"{self.seq}"
        pos = rng.randrange(self.length + 1)
        self.length += 1
        op: list[Any] = [pos, "x"] if pos else ["x"]
        return p.Edit(
            doc=self.doc,
            edit_id=self.inflight,
            version=self.version,
            ops=[p.SeqEdit(node=NODE, edit=op)],
        )


def _frames(data: bytes) -> list[Any]:
    kind = _peek.decode(data).type if not data.startswith(b"[") else "list"
    if kind in ("remote", "ack", "joined"):
        return [_decode.decode(data)]
    return []


def thread_cpu(name: str) -> float:
    """The CPU time of this process's thread ``name`` (0.0 when there is none)."""
    for t in threading.enumerate():
        if t.name == name and t.ident is not None:
            return time.clock_gettime(time.pthread_getcpuclockid(t.ident))
    return 0.0


async def run(docs: int, clients: int, rate: float, seconds: float, path: str) -> dict[str, float]:
    store = SQLiteStore(path)
    await store.open()
    hub = Hub(store, Settings(data=path), Metrics())
    await hub.start()
    rng = random.Random(1)
    peers = [BenchPeer(f"d{d}", i) for d in range(docs) for i in range(clients)]
    try:
        for peer in peers:
            await hub.join(peer, p.Join(doc=peer.doc, create=True))
        await _settle(hub)
        for peer in peers:
            peer.read()
        tick = 0.01
        per_tick = len(peers) * rate * tick
        edits = 0
        owed = 0.0
        reading = 0.0
        cpu0, main0 = time.process_time(), time.thread_time()
        writer0 = thread_cpu("cowrite-sqlite-writer")
        start = time.monotonic()
        next_at = start
        while (now := time.monotonic()) < start + seconds:
            owed += per_tick
            while owed >= 1:
                owed -= 1
                peer = rng.choice(peers)
                r0 = time.thread_time()
                peer.read()
                msg = peer.edit(rng)
                reading += time.thread_time() - r0
                if msg is not None:
                    edits += 1
                    await hub.edit(peer, msg)
            next_at += tick
            await asyncio.sleep(max(0.0, next_at - now))
        await _settle(hub)
        cpu, main = time.process_time() - cpu0, time.thread_time() - main0
        writer = thread_cpu("cowrite-sqlite-writer") - writer0
        r0 = time.thread_time()
        for peer in peers:
            peer.read()
        reading += time.thread_time() - r0
        deliveries = sum(peer.remotes for peer in peers)
    finally:
        await hub.close()
        await store.close()
    return {
        "edits": edits,
        "deliveries": deliveries,
        "cpu": cpu - reading,
        "main": main - reading,
        "writer": writer,
        "commits": store.stats.commits,
    }


async def _settle(hub: Hub) -> None:
    """Wait until every room's pipeline is empty."""
    while any(lr.inflight for lr in hub.rooms.values()):
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)


def use_uvloop() -> None:
    """Run the benchmark on uvloop, as ``cowrite serve`` does, when it is installed."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass


def cpu_per(r: Mapping[str, float], what: str) -> str:
    """CPU µs per ``what`` (``r[what + "s"]`` of them) and per delivery, from ``r``'s process,
    event loop and writer CPU seconds (``cpu``, ``main``, ``writer``)."""
    n, deliveries = r[what + "s"] or 1, r["deliveries"] or 1
    return (
        f"CPU µs per {what}: process {1e6 * r['cpu'] / n:.0f}, event loop "
        f"{1e6 * r['main'] / n:.0f}, sqlite writer {1e6 * r['writer'] / n:.0f}; "
        f"per delivery {1e6 * r['cpu'] / deliveries:.1f}"
    )


def _report(r: Mapping[str, float]) -> str:
    return (
        f"edits {int(r['edits'])}, deliveries {int(r['deliveries'])}, commits "
        f"{int(r['commits'])}; {cpu_per(r, 'edit')}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hub_cost", description=__doc__)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--clients", type=int, default=10, help="thin clients per document")
    parser.add_argument("--rate", type=float, default=1.0, help="keystrokes per second each")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    use_uvloop()
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            path = str(Path(tmp) / "bench.db")
            r = asyncio.run(run(args.docs, args.clients, args.rate, args.seconds, path))
        print(_report(r), f"(load average {os.getloadavg()[0]:.2f})", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
