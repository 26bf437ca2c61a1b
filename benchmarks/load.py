"""Load generator for the server benchmark: many WebSocket clients in one process.

A *worker* process runs the clients of one benchmark run and talks to the coordinator
(``benchmarks.server``) in JSON lines: it reads its spec and commands on stdin and writes
events on stdout, each line prefixed with ``EVENT_PREFIX``.

::

    coordinator                           worker
    {spec}                         ->
                                   <-     {"event": "ready", ...}     (every client joined)
    {"cmd": "go", start_ns, end_ns} ->                                (edit scenarios)
                                   <-     {"event": "sent", "per_doc": {doc: keystrokes}}
    {"cmd": "expect", "per_doc"}   ->     (wait until every client holds that many characters)
                                   <-     {"event": "result", ...}
    {"cmd": "stop"}                ->                                 (idle scenario, instead)
                                   <-     {"event": "result", ...}

Times are ``time.monotonic_ns()``: CLOCK_MONOTONIC is one clock for the whole machine, so send
times recorded in one worker and receive times recorded in another are comparable. Every edit
has a *key* that both its sender and its receivers can compute (cowrite: its ``edit_id``; Yjs:
``clientID:clock`` of the inserted item); each worker reports, per key, the send and ack time (if
it sent it) and how many of its clients received it and when the last of them did. The
coordinator merges the workers' reports: edit->visible-at-every-other-client is the latest
receive time minus the send time.

The cowrite client (``CowriteClient``) is a real thin client: one batch in flight, local edits
typed meanwhile composed into a buffer, incoming remotes rebased over both with
``cowrite.engine.ot.transform`` (Jupiter). Its text is a ``bytearray`` (the generator inserts
ASCII only, so byte and code-point positions agree) so that applying the ~1,000 remote edits
per second each client receives in the 200-client scenario costs a ``memmove``, not a copy.

Other clients (pycrdt, ``benchmarks/peers/pycrdt_load.py``) implement ``LoadClient`` and reuse
``run_worker``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import string
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TextIO

import msgspec

from benchmarks.wsclient import FastWebSocket
from cowrite import protocol as p
from cowrite.engine import ot

EVENT_PREFIX = "@@bench "
NODE = "text:body"
LETTERS = string.ascii_letters + string.digits


# --------------------------------------------------------------------------------- spec


@dataclass
class WorkerSpec:
    """What one worker process runs (the first line on its stdin, as JSON)."""

    kind: str
    """Client implementation: ``cowrite`` here, ``pycrdt`` in ``benchmarks/peers``."""
    url: str
    """cowrite: the ``ws://host:port/ws`` endpoint; Yjs servers: ``ws://host:port`` (rooms by
    path)."""
    proc: int
    run_id: str
    clients: list[tuple[int, str]]
    """(global client index, document name) of every client this worker runs."""
    interval_ms: float = 200.0
    mode: str = "edit"
    """``edit``: type on command; ``idle``: connect, answer heartbeats, do nothing."""
    connect_concurrency: int = 64
    seed: int = 1
    drain_timeout_s: float = 30.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerSpec:
        data = dict(data)
        data["clients"] = [(int(i), str(d)) for i, d in data["clients"]]
        return cls(**data)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "url": self.url,
            "proc": self.proc,
            "run_id": self.run_id,
            "clients": [[i, d] for i, d in self.clients],
            "interval_ms": self.interval_ms,
            "mode": self.mode,
            "connect_concurrency": self.connect_concurrency,
            "seed": self.seed,
            "drain_timeout_s": self.drain_timeout_s,
        }


# ----------------------------------------------------------------------------- recorder


class Recorder:
    """Send/ack/receive times of every edit key seen by one worker (all its clients)."""

    def __init__(self) -> None:
        self.sends: dict[str, list[Any]] = {}
        """key -> [doc, t_send_ns, t_ack_ns (or -1), characters]"""
        self.recv: dict[str, list[int]] = {}
        """key -> [receivers in this worker, latest receive time (ns)]"""

    def sent(self, key: str, doc: str, t_ns: int, chars: int = 1) -> None:
        self.sends[key] = [doc, t_ns, -1, chars]

    def acked(self, key: str, t_ns: int) -> None:
        entry = self.sends.get(key)
        if entry is not None and entry[2] < 0:
            entry[2] = t_ns

    def received(self, key: str, t_ns: int, count: int = 1) -> None:
        """``count`` more receivers of ``key``, the last of them at ``t_ns``."""
        entry = self.recv.get(key)
        if entry is None:
            self.recv[key] = [count, t_ns]
        else:
            entry[0] += count
            entry[1] = max(entry[1], t_ns)

    def add_sends(self, rows: Iterable[Sequence[Any]]) -> None:
        """Take in a report's ``sends`` rows (``send_rows``)."""
        for key, doc, t_send, t_ack, chars in rows:
            self.sends[key] = [doc, t_send, t_ack, chars]

    def add_receipts(self, rows: Iterable[Sequence[Any]]) -> None:
        """Take in a report's ``recv`` rows (``receipt_rows``): receivers add up, the latest
        time wins."""
        for key, count, t_max in rows:
            self.received(key, t_max, count)

    def send_rows(self) -> list[list[Any]]:
        """``[key, doc, t_send_ns, t_ack_ns, characters]`` per edit, for a report."""
        return [[k, *v] for k, v in self.sends.items()]

    def receipt_rows(self) -> list[list[Any]]:
        """``[key, receivers, latest receive time]`` per edit, for a report."""
        return [[k, *v] for k, v in self.recv.items()]


# ------------------------------------------------------------------------------ clients


class LoadClient(Protocol):
    """One simulated user."""

    index: int
    doc: str
    keystrokes: int
    errors: list[str]

    async def connect(self) -> None:
        """Connect, join the document and wait until its state is known."""

    async def type_char(self, t_ns: int) -> None:
        """Insert one character at a random position now (``t_ns``: monotonic ns)."""

    def text_length(self) -> int:
        """Characters in this client's copy of the text."""

    def settled(self) -> bool:
        """Nothing of this client's own is waiting for the server."""

    def text_digest(self) -> str:
        """SHA-1 of this client's text (UTF-8), for the convergence check."""

    def connected(self) -> bool: ...

    async def close(self) -> None: ...


def apply_to_bytes(buf: bytearray, op: Sequence[Any]) -> None:
    """Apply a text OT op (retain n, delete -n, insert str) to ASCII text held as bytes."""
    if len(op) == 2:  # the common case: [pos, "x"]
        pos, ins = op
        if type(pos) is int and type(ins) is str and 0 < pos <= len(buf):
            buf[pos:pos] = ins.encode("ascii")
            return
    pos = 0
    for c in op:
        if isinstance(c, bool):
            raise ValueError(f"bad component {c!r}")
        if isinstance(c, int):
            if c > 0:
                pos += c
            else:
                if pos - c > len(buf):
                    raise ValueError("delete past the end of the text")
                del buf[pos : pos - c]
        elif isinstance(c, str):
            data = c.encode("ascii")  # the generator only types ASCII
            if pos > len(buf):
                raise ValueError("insert past the end of the text")
            buf[pos:pos] = data
            pos += len(data)
        else:
            raise ValueError("a list insert in a text node")
    if pos > len(buf):
        raise ValueError("retain past the end of the text")


def _inserts(op: list[Any]) -> list[tuple[int, str]] | None:
    """(base position, text) of each insert if ``op`` only retains and inserts text, else None."""
    out: list[tuple[int, str]] = []
    pos = 0
    for c in op:
        kind = type(c)
        if kind is int:
            if c < 0:
                return None
            pos += c
        elif kind is str:
            if out and out[-1][0] == pos:
                out[-1] = (pos, out[-1][1] + c)
            else:
                out.append((pos, c))
        else:
            return None
    return out


def transform(a: list[Any], b: list[Any], side: ot.Side) -> list[Any]:
    """``ot.transform``, with a fast path (~5x) for ops that only insert text: all the generator
    ever types. In an overloaded run every client rebases every remote edit over a pending
    batch of several characters, so this is the generator's hot loop."""
    ai = _inserts(a)
    bi = _inserts(b)
    if ai is None or bi is None:
        return ot.transform(a, b, side)
    out: list[Any] = []
    j = shift = last = 0
    nb = len(bi)
    for pos, text in ai:
        while j < nb and (bi[j][0] < pos or (bi[j][0] == pos and side == "right")):
            shift += len(bi[j][1])
            j += 1
        at = pos + shift
        if at > last:
            out.append(at - last)
            last = at
            out.append(text)
        elif out and type(out[-1]) is str:
            out[-1] += text
        else:
            out.append(text)
    return out


class _Op(msgspec.Struct):
    """The part of a wire edit op the generator reads (unknown fields are ignored)."""

    node: str = ""
    edit: list[Any] = []


class _Msg(msgspec.Struct):
    """Every server message the generator reads, flattened: decoding one struct type is about
    twice as fast as matching the protocol's tagged union, and this runs ~10^5 times a second.
    """

    type: str
    doc: str = ""
    version: int = 0
    ops: list[_Op] = []
    edit_id: str | None = None
    nonce: int = 0
    snapshot: dict[str, Any] | None = None
    code: str = ""
    message: str = ""
    reason: str = ""


_frame_decoder = msgspec.json.Decoder(list[_Msg] | _Msg)


class CowriteClient:
    """A thin cowrite client (one batch in flight, Jupiter rebasing) driven by the benchmark.

    Messages are handled synchronously as frames arrive (``FastWebSocket``); sending an edit
    or a pong is a ``transport.write``.
    """

    def __init__(self, index: int, doc: str, spec: WorkerSpec, rec: Recorder) -> None:
        self.index = index
        self.doc = doc
        self.url = spec.url
        self.rec = rec
        self.client_id = f"bench-{spec.run_id}-{index}"
        self.char = LETTERS[index % len(LETTERS)]
        self.rng = random.Random(spec.seed * 1_000_003 + index)
        self.text = bytearray()
        self.version = 0
        self.inflight: list[Any] | None = None
        self.inflight_id = ""
        self.buffer: list[Any] | None = None
        self.buffer_t = 0
        self.buffer_chars = 0
        self.seq = 0
        self.keystrokes = 0
        self.errors: list[str] = []
        self.remotes = 0
        self._ws: FastWebSocket | None = None
        self._welcome: asyncio.Future[None] | None = None
        self._joined: asyncio.Future[None] | None = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self._welcome = loop.create_future()
        self._joined = loop.create_future()
        ws = await FastWebSocket.connect(self.url, self._on_frame)
        self._ws = ws
        ws.closed.add_done_callback(self._on_closed)
        hello = p.Hello(client_id=self.client_id, user=p.User(name=f"bench {self.index}"))
        ws.send_text(p.encoder.encode(hello))
        await asyncio.wait_for(self._welcome, 120)
        ws.send_text(p.encoder.encode(p.Join(doc=self.doc, create=True)))
        await asyncio.wait_for(self._joined, 120)

    def connected(self) -> bool:
        return self._ws is not None and not self._closed

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()

    def _on_closed(self, fut: asyncio.Future[str]) -> None:
        if not self._closed:
            self._closed = True
            self.errors.append(fut.result())
        for waiter in (self._welcome, self._joined):
            if waiter is not None and not waiter.done():
                waiter.set_exception(ConnectionError("connection closed before joining"))

    # ------------------------------------------------------------------- messages

    def _on_frame(self, frame: bytes, is_text: bool) -> None:
        t = time.monotonic_ns()
        try:
            decoded = _frame_decoder.decode(frame)
            if isinstance(decoded, list):
                for msg in decoded:
                    self._on_message(msg, t)
            else:
                self._on_message(decoded, t)
        except Exception as exc:  # a bug here must not kill the connection silently
            self.errors.append(f"client: {type(exc).__name__}: {exc}")

    def _on_message(self, msg: _Msg, t: int) -> None:
        kind = msg.type
        if kind == "remote":
            if msg.doc != self.doc:
                return
            pending = self.inflight is not None or self.buffer is not None
            for op in msg.ops:
                if op.node == NODE:
                    apply_to_bytes(self.text, self._rebase(op.edit) if pending else op.edit)
            self.version = msg.version
            self.remotes += 1
            key = msg.edit_id
            if key:
                entry = self.rec.recv.get(key)
                if entry is None:
                    self.rec.recv[key] = [1, t]
                else:
                    entry[0] += 1
                    entry[1] = max(entry[1], t)
        elif kind == "ack":
            if msg.edit_id != self.inflight_id or self.inflight is None:
                return
            self.rec.acked(self.inflight_id, t)
            self.version = msg.version
            self.inflight = None
            buffered = self.buffer
            if buffered is not None:
                t0, chars = self.buffer_t, self.buffer_chars
                self.buffer, self.buffer_t, self.buffer_chars = None, 0, 0
                self._send(buffered, t0, chars)
        elif kind == "ping":
            self._write(p.encoder.encode(p.Pong(nonce=msg.nonce)))
        elif kind == "welcome":
            if self._welcome is not None and not self._welcome.done():
                self._welcome.set_result(None)
        elif kind == "joined":
            if msg.doc != self.doc:
                return
            self.version = msg.version
            node = (msg.snapshot or {}).get(NODE)
            value = node.get("value", "") if isinstance(node, dict) else ""
            self.text = bytearray(str(value).encode("ascii"))
            if self._joined is not None and not self._joined.done():
                self._joined.set_result(None)
        elif kind == "error":
            self.errors.append(f"error {msg.code}: {msg.message}")
            if self._joined is not None and not self._joined.done() and msg.edit_id is None:
                self._joined.set_exception(ConnectionError(f"{msg.code}: {msg.message}"))
        elif kind == "resync":
            self.errors.append(f"resync: {msg.reason}")
        # presence, chat, reconnect: not part of the measurement

    def _rebase(self, edit: list[Any]) -> list[Any]:
        """Transform a remote edit over the pending ones (in flight, then buffered)."""
        if self.inflight is not None:
            edit, self.inflight = (
                transform(edit, self.inflight, "right"),
                transform(self.inflight, edit, "left"),
            )
        if self.buffer is not None:
            edit, self.buffer = (
                transform(edit, self.buffer, "right"),
                transform(self.buffer, edit, "left"),
            )
        return edit

    # ---------------------------------------------------------------------- edits

    async def type_char(self, t_ns: int) -> None:
        if self._closed:
            return
        pos = self.rng.randrange(len(self.text) + 1)
        op: list[Any] = [pos, self.char] if pos else [self.char]
        apply_to_bytes(self.text, op)
        self.keystrokes += 1
        if self.inflight is None:
            self._send(op, t_ns, 1)
        else:
            self.buffer = op if self.buffer is None else ot.compose(self.buffer, op)
            if not self.buffer_t:
                self.buffer_t = t_ns
            self.buffer_chars += 1

    def _send(self, op: list[Any], t_ns: int, chars: int) -> None:
        self.seq += 1
        edit_id = f"{self.index}.{self.seq}"
        self.inflight = op
        self.inflight_id = edit_id
        self.rec.sent(edit_id, self.doc, t_ns, chars)
        msg = p.Edit(
            doc=self.doc,
            edit_id=edit_id,
            version=self.version,
            ops=[p.SeqEdit(node=NODE, edit=op)],
        )
        self._write(p.encoder.encode(msg))

    def _write(self, data: bytes) -> None:
        try:
            assert self._ws is not None
            self._ws.send_text(data)
        except Exception as exc:
            self.errors.append(f"send: {type(exc).__name__}: {exc}")
            self._closed = True

    def text_length(self) -> int:
        return len(self.text)

    def settled(self) -> bool:
        return self.inflight is None and self.buffer is None

    def text_digest(self) -> str:
        return hashlib.sha1(bytes(self.text)).hexdigest()


# ------------------------------------------------------------------------------- worker


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def emit(event: dict[str, Any], out: TextIO | None = None) -> None:
    stream = out or sys.stdout
    stream.write(EVENT_PREFIX + json.dumps(event, separators=(",", ":")) + "\n")
    stream.flush()


async def read_command() -> dict[str, Any]:
    line = await asyncio.to_thread(sys.stdin.readline)
    if not line:
        return {"cmd": "stop"}
    data = json.loads(line)
    if not isinstance(data, dict):
        raise ValueError("a command must be a JSON object")
    return data


ClientFactory = Callable[[int, str, WorkerSpec, Recorder], LoadClient]


async def run_worker(spec: WorkerSpec, factory: ClientFactory) -> None:
    """Run one worker: connect every client, then follow the coordinator's commands."""
    rec = Recorder()
    clients = [factory(index, doc, spec, rec) for index, doc in spec.clients]
    outcome = await follow_commands(spec, clients)
    # the result before closing: the coordinator reads the server's memory on receipt
    emit(result_event(spec, rec, clients, outcome))
    for c in clients:
        await c.close()


@dataclass
class Outcome:
    """How a worker's clients fared (``follow_commands``), for its ``result`` event."""

    failures: list[str]
    """Clients that could not connect (why)."""
    lags: list[int] = field(default_factory=list)
    """Keystrokes typed late: how late (ns)."""
    skipped: int = 0
    drained: bool = True


async def follow_commands(spec: WorkerSpec, clients: Sequence[LoadClient]) -> Outcome:
    """Connect ``clients`` (``ready``), then type and wait for delivery as the coordinator says
    (``go``, ``sent``, ``expect``), or do nothing (``stop``). The ``result`` event is left to the
    caller (``result_event``)."""
    t0 = time.monotonic()
    outcome = Outcome(await _connect(clients, spec.connect_concurrency))
    emit(
        {
            "event": "ready",
            "clients": len(clients),
            "failed": len(outcome.failures),
            "failures": outcome.failures[:5],
            "connect_s": round(time.monotonic() - t0, 3),
        }
    )
    live = [c for c in clients if c.connected()]
    cmd = await read_command()
    if cmd.get("cmd") == "go":
        start_ns, end_ns = int(cmd["start_ns"]), int(cmd["end_ns"])
        outcome.skipped = await _type(live, spec, start_ns, end_ns, outcome.lags)
        per_doc: dict[str, int] = {}
        for c in clients:
            per_doc[c.doc] = per_doc.get(c.doc, 0) + c.keystrokes
        emit({"event": "sent", "per_doc": per_doc})
        cmd = await read_command()
        expected: dict[str, int] = cmd.get("per_doc", {})
        timeout = float(cmd.get("timeout_s", spec.drain_timeout_s))
        outcome.drained = await _drain(live, expected, timeout)
    return outcome


async def _connect(clients: Sequence[LoadClient], concurrency: int) -> list[str]:
    """Connect every client; return why those that failed did."""
    sem = asyncio.Semaphore(concurrency)
    failures: list[str] = []

    async def connect(c: LoadClient) -> None:
        async with sem:
            try:
                await c.connect()
            except Exception as exc:
                failures.append(f"client {c.index}: {type(exc).__name__}: {exc}")

    # The first client of each document connects alone, then the others: pycrdt-websocket
    # fails every connection but one when several open a new room at the same moment.
    firsts: dict[str, LoadClient] = {}
    for c in clients:
        firsts.setdefault(c.doc, c)
    await asyncio.gather(*(connect(c) for c in firsts.values()))
    chosen = {id(c) for c in firsts.values()}
    await asyncio.gather(*(connect(c) for c in clients if id(c) not in chosen))
    return failures


async def _type(
    clients: list[LoadClient], spec: WorkerSpec, start_ns: int, end_ns: int, lags: list[int]
) -> int:
    """Type on schedule until ``end_ns``; return the keystrokes skipped because the generator
    was so far behind that their time came after the end (a saturated generator)."""
    interval = int(spec.interval_ms * 1_000_000)
    rng = random.Random(spec.seed + 7919 * spec.proc)
    skipped = 0

    async def typist(c: LoadClient, phase: int) -> None:
        nonlocal skipped
        k = 0
        while True:
            due = start_ns + phase + k * interval
            if due >= end_ns:
                return
            now = time.monotonic_ns()
            if due > now:
                await asyncio.sleep((due - now) / 1e9)
                now = time.monotonic_ns()
            if now >= end_ns:
                skipped += -(-(end_ns - due) // interval)
                return
            lags.append(now - due)
            await c.type_char(now)
            k += 1

    await asyncio.gather(*(typist(c, rng.randrange(interval)) for c in clients))
    return skipped


async def _drain(clients: list[LoadClient], expected: dict[str, int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        done = all(
            (c.text_length() == expected.get(c.doc, 0) and c.settled()) or not c.connected()
            for c in clients
        )
        if done:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


def result_event(
    spec: WorkerSpec, rec: Recorder, clients: Sequence[LoadClient], outcome: Outcome
) -> dict[str, Any]:
    """The ``result`` event: every send and receipt in ``rec``, each client's text, lags, errors."""
    errors: dict[str, int] = {}
    for c in clients:
        for e in c.errors:
            head = e[:120]
            errors[head] = errors.get(head, 0) + 1
    lags = outcome.lags
    return {
        "event": "result",
        "proc": spec.proc,
        "drained": outcome.drained,
        "connect_failures": len(outcome.failures),
        "still_connected": sum(1 for c in clients if c.connected()),
        "sends": rec.send_rows(),
        "recv": rec.receipt_rows(),
        "clients": [
            [c.index, c.doc, c.text_length(), c.text_digest(), c.keystrokes, c.settled()]
            for c in clients
        ],
        "lag_ms": {
            "p50": percentile(lags, 50) / 1e6 if lags else None,
            "p99": percentile(lags, 99) / 1e6 if lags else None,
            "max": max(lags) / 1e6 if lags else None,
        },
        "errors": errors,
        "skipped": outcome.skipped,
    }


def install_fast_loop() -> str:
    """Use uvloop when it is installed; return the loop's name."""
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


def worker_main(factories: dict[str, ClientFactory], argv: Sequence[str] | None = None) -> int:
    """Entry point of a worker process: spec on the first stdin line."""
    del argv
    line = sys.stdin.readline()
    spec = WorkerSpec.from_json(json.loads(line))
    factory = factories.get(spec.kind)
    if factory is None:
        raise SystemExit(f"unknown client kind {spec.kind!r} (have {sorted(factories)})")
    install_fast_loop()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(spec, factory))
    return 0


def _cowrite_factory(index: int, doc: str, spec: WorkerSpec, rec: Recorder) -> LoadClient:
    return CowriteClient(index, doc, spec, rec)


FACTORIES: dict[str, ClientFactory] = {"cowrite": _cowrite_factory}


# ------------------------------------------------------------------------------ helpers


_protocol_decoder = msgspec.json.Decoder(list[p.ServerMessage] | p.ServerMessage)


async def fetch_text(url: str, doc: str, timeout: float = 30.0) -> str:
    """Join ``doc`` as a fresh thin client and return its text (the server's state)."""
    from websockets.asyncio.client import connect

    async def run() -> str:
        async with connect(url, max_size=None, compression=None, ping_interval=None) as ws:
            await ws.send(p.encoder.encode(p.Hello(client_id=f"bench-check-{doc}")).decode())
            await ws.send(p.encoder.encode(p.Join(doc=doc)).decode())
            while True:
                decoded = _protocol_decoder.decode(await ws.recv())
                for msg in decoded if isinstance(decoded, list) else [decoded]:
                    if isinstance(msg, p.Joined):
                        node = (msg.snapshot or {}).get(NODE)
                        return str(node.get("value", "")) if isinstance(node, dict) else ""
                    if isinstance(msg, p.Error):
                        raise RuntimeError(f"{msg.code.value}: {msg.message}")

    return await asyncio.wait_for(run(), timeout)


def text_digest(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


if __name__ == "__main__":
    sys.exit(worker_main(FACTORIES))
