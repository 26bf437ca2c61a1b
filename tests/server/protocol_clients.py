"""Protocol clients for server tests: a thin (OT) client, a replica (CRDT) client, a socket
that stops reading, and ``running(settings)`` (a server with non-default settings).

Tests import this module by path (``--import-mode=importlib`` puts no test directory on
``sys.path``): ``sys.path.insert(0, str(Path(__file__).parent))`` first.

Both read in a background task (answering pings, so they survive short heartbeat timeouts) and
keep every other message in ``inbox`` for the test to inspect.

The thin client is the algorithm of docs/protocol.md: one batch in flight; local edits made
meanwhile wait in a buffer (composed per node); an incoming ``remote`` is rebased over the
in-flight batch and then the buffer with ``transform(remote, pending, "right")`` while they are
rebased over it with ``"left"``. Map keys and registers: a pending local write hides remote
writes of the same key (the server applies it after them, so it wins). Counters add.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import secrets
import socket
import struct
import types
from collections.abc import AsyncIterator, Callable
from typing import Any

import uvicorn
import websockets

from cowrite import protocol as p
from cowrite.adapters.bus import Bus
from cowrite.adapters.store import Store
from cowrite.engine import ot
from cowrite.engine.document import Document
from cowrite.server.app import create_app
from cowrite.server.config import Settings
from cowrite.server.uvicorn_ws import protocol_class

Msg = dict[str, Any]
KeyRef = tuple[str, str | None]  # (node, key) of a map key or register (key None)


class Client:
    """The connection, the background reader and the inbox."""

    def __init__(self, ws: Any, client_id: str) -> None:
        self.ws = ws
        self.client_id = client_id
        self.inbox: list[Msg] = []
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._changed = asyncio.Event()
        self._reader: asyncio.Task[None] | None = None
        self.welcome: Msg = {}

    async def _start(self, **hello: Any) -> None:
        await self.send({"type": "hello", "client_id": self.client_id, **hello})
        self._reader = asyncio.create_task(self._read())
        await self.wait_for(lambda: any(m["type"] == "welcome" for m in self.inbox))
        self.welcome = next(m for m in self.inbox if m["type"] == "welcome")
        self.inbox.remove(self.welcome)  # what came before it stays

    async def send(self, msg: Msg | str | bytes) -> None:
        await self.ws.send(msg if isinstance(msg, str | bytes) else json.dumps(msg))

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                data = json.loads(frame)
                for msg in data if isinstance(data, list) else [data]:
                    if msg["type"] == "ping":
                        await self.send({"type": "pong", "nonce": msg["nonce"]})
                        continue
                    self.handle(msg)
                    self.inbox.append(msg)
                self._changed.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            if not self.closed.done():
                self.closed.set_result(None)
            self._changed.set()

    def handle(self, msg: Msg) -> None:
        """Subclasses react to messages here (before they reach the inbox)."""

    async def wait_for(self, check: Callable[[], bool], timeout: float = 10.0) -> None:
        """Wait until ``check()`` holds (re-checked after every frame)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not check():
            if self.closed.done() and not check():
                raise AssertionError(f"{self.client_id}: connection closed while waiting")
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"{self.client_id}: condition not met within {timeout}s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    async def expect(
        self, type_: str, timeout: float = 10.0, where: Callable[[Msg], bool] = lambda m: True
    ) -> Msg:
        """The first message of ``type_`` (matching ``where``) in the inbox; it and everything
        before it are removed."""
        found: list[Msg] = []

        def check() -> bool:
            for i, m in enumerate(self.inbox):
                if m["type"] == type_ and where(m):
                    found.append(m)
                    del self.inbox[: i + 1]
                    return True
            return False

        try:
            await self.wait_for(check, timeout)
        except AssertionError:
            raise AssertionError(
                f"{self.client_id}: no {type_!r} within {timeout}s; "
                f"got {[m['type'] for m in self.inbox][-20:]}"
            ) from None
        return found[0]

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            await self._reader


class ThinClient(Client):
    """A thin client of one document, holding the document's value as JSON by node id."""

    def __init__(self, ws: Any, client_id: str, doc: str) -> None:
        super().__init__(ws, client_id)
        self.doc = doc
        self.version = 0
        self.nodes: dict[str, Any] = {}  # node id -> value (text str, list, map dict, ...)
        self.kinds: dict[str, str] = {}
        self.roots: dict[str, str] = {}
        self.inflight: tuple[str, list[Msg]] | None = None
        self.buffer: list[Msg] = []
        self.seq_inflight: dict[str, list[Any]] = {}
        self.seq_buffer: dict[str, list[Any]] = {}
        self.keys_pending: dict[KeyRef, int] = {}  # writes not yet acknowledged, per key
        self.errors: list[Msg] = []
        self.acked: list[tuple[str, int]] = []
        self.rebased = 0  # remote seq edits that were concurrent with pending local ones
        self.checks = 0  # ``checksum`` entries verified (nodes with nothing of ours outstanding)
        self.diverged: list[tuple[int, str]] = []  # (version, node) whose checksum failed
        self.joined: Msg = {}
        self.sent: dict[str, Msg] = {}  # edit id -> the edit message, as sent
        self._edits = 0
        self._sending = False

    @classmethod
    async def connect(
        cls, url: str, client_id: str, doc: str, *, create: bool = True, **hello: Any
    ) -> ThinClient:
        ws = await websockets.connect(url, max_size=None)
        client = cls(ws, client_id, doc)
        await client._start(**hello)
        await client.send({"type": "join", "doc": doc, "create": create})
        client.joined = await client.expect("joined")  # (``handle`` applied it)
        return client

    # ------------------------------------------------------------ local edits

    def _seq(self, node: str, op: list[Any]) -> None:
        value = self.nodes.get(node, "" if node.startswith("text:") else [])
        self.nodes[node] = ot.apply(value, op)
        self._root(node)
        self.seq_buffer[node] = ot.compose(self.seq_buffer.get(node, []), op)

    def _root(self, node: str) -> None:
        kind, _, name = node.partition(":")
        if not node.startswith("#") and name not in self.roots:
            self.roots[name] = node
            self.kinds[node] = kind

    def insert(self, node: str, pos: int, text: str) -> None:
        self._seq(node, ot.from_splice(pos, 0, text))

    def delete(self, node: str, pos: int, count: int) -> None:
        self._seq(node, ot.from_splice(pos, count, ""))

    def text(self, node: str) -> str:
        value = self.nodes.get(node, "")
        assert isinstance(value, str)
        return value

    def set_key(self, node: str, key: str | None, value: Any) -> None:
        if key is None:
            self.nodes[node] = value
        else:
            self.nodes.setdefault(node, {})[key] = value
        self._root(node)
        self.keys_pending[node, key] = self.keys_pending.get((node, key), 0) + 1
        self.buffer.append({"type": "set", "node": node, "key": key, "value": value})

    def add(self, node: str, amount: int) -> None:
        self.nodes[node] = self.nodes.get(node, 0) + amount
        self._root(node)
        self.buffer.append({"type": "add", "node": node, "amount": amount})

    async def flush(self) -> None:
        """Send the buffer as one batch if nothing is in flight."""
        if self.inflight is not None or self._sending:
            return
        ops = [{"type": "seq", "node": n, "edit": e} for n, e in self.seq_buffer.items() if e]
        ops += self.buffer
        if not ops:
            return
        self._edits += 1
        edit_id = f"{self.client_id}-{self._edits}"
        self.inflight = (edit_id, ops)
        self.seq_inflight, self.seq_buffer, self.buffer = self.seq_buffer, {}, []
        msg = {"type": "edit", "doc": self.doc, "edit_id": edit_id, "version": self.version}
        self._sending = True
        self.sent[edit_id] = {**msg, "ops": ops}
        try:
            await self.send(self.sent[edit_id])
        finally:
            self._sending = False

    @property
    def idle(self) -> bool:
        return self.inflight is None and not self.buffer and not any(self.seq_buffer.values())

    async def settle(self, version: int, timeout: float = 20.0) -> None:
        """Flush until everything is acknowledged and ``version`` has been reached."""
        while not self.idle:
            await self.flush()
            await self.wait_for(lambda: self.inflight is None, timeout)
        await self.wait_for(lambda: self.version >= version, timeout)

    # --------------------------------------------------------------- incoming

    def handle(self, msg: Msg) -> None:
        if msg.get("doc") not in (None, self.doc):
            return
        kind = msg["type"]
        if kind == "joined":  # here, not later: remotes may follow in the same frame
            self.version = msg["version"]
            for node, entry in (msg.get("snapshot") or {}).items():
                self.nodes[node] = entry["value"]
                self.kinds[node] = entry["kind"]
            self.roots.update(msg.get("roots") or {})
        elif kind == "ack" and self.inflight is not None and msg["edit_id"] == self.inflight[0]:
            for op in self.inflight[1]:
                if op["type"] in ("set", "del"):
                    ref = (op["node"], op.get("key"))
                    self.keys_pending[ref] -= 1
                    if not self.keys_pending[ref]:
                        del self.keys_pending[ref]
            self.acked.append((msg["edit_id"], msg["version"]))
            self.inflight = None
            self.seq_inflight = {}
            self.version = msg["version"]
        elif kind == "remote":
            for op in msg["ops"]:
                self._apply_remote(op)
            self.version = msg["version"]
        elif kind == "checksum" and msg["version"] == self.version:
            for node, expected in msg["sums"].items():
                if not self.seq_inflight.get(node) and not self.seq_buffer.get(node):
                    self.checks += 1
                    if p.text_checksum(self.text(node)) != expected:
                        self.diverged.append((msg["version"], node))
        elif kind == "error":
            self.errors.append(msg)

    def _apply_remote(self, op: Msg) -> None:
        node = op["node"]
        self._root(node)
        if op["type"] == "seq":
            edit = op["edit"]
            for pending in (self.seq_inflight, self.seq_buffer):
                mine = pending.get(node)
                if mine:
                    self.rebased += 1
                    edit, pending[node] = (
                        ot.transform(edit, mine, "right"),
                        ot.transform(mine, edit, "left"),
                    )
            value = self.nodes.get(node, "" if node.startswith("text:") else [])
            self.nodes[node] = ot.apply(value, edit)
        elif op["type"] in ("set", "del"):
            key = op.get("key")
            if (node, key) in self.keys_pending:
                return  # our later write wins
            if key is None:
                self.nodes[node] = op["value"]
            elif op["type"] == "del":
                self.nodes.setdefault(node, {}).pop(key, None)
            else:
                self.nodes.setdefault(node, {})[key] = op["value"]
        elif op["type"] == "add":
            self.nodes[node] = self.nodes.get(node, 0) + op["amount"]

    def value(self) -> dict[str, Any]:
        """The document as ``Document.to_json()`` shows it (named roots by name)."""
        out: dict[str, Any] = {}
        for name, node in self.roots.items():
            kind = self.kinds.get(node) or node.partition(":")[0]
            default: Any = {"text": "", "list": [], "map": {}, "register": None, "counter": 0}
            out[name] = self.nodes.get(node, default[kind])
        return out


class ReplicaClient(Client):
    """A replica: a full engine ``Document`` synced with ``sync``/``remote_sync``."""

    def __init__(self, ws: Any, client_id: str, doc: str) -> None:
        super().__init__(ws, client_id)
        self.doc_id = doc
        self.doc = Document(secrets.randbits(62) + 1)
        self.sent: dict[int, int] = {}
        self.version = 0
        self.unacked: set[str] = set()
        self.errors: list[Msg] = []
        self._syncs = 0

    @classmethod
    async def connect(cls, url: str, client_id: str, doc: str, *, create: bool = True) -> Any:
        ws = await websockets.connect(url, max_size=None)
        client = cls(ws, client_id, doc)
        await client._start()
        state = {str(r): n for r, n in client.doc.version.items()}
        await client.send(
            {"type": "join", "doc": doc, "mode": "replica", "state": state, "create": create}
        )
        joined = await client.expect("joined")
        client.doc.merge(base64.b64decode(joined["delta"]))
        client.version = joined["version"]
        client.sent = {int(r): n for r, n in joined["state"].items()}
        return client

    async def push(self) -> None:
        """Send what the server has not seen from us."""
        delta = self.doc.delta_since(self.sent)
        self.sent = self.doc.version
        self._syncs += 1
        edit_id = f"{self.client_id}-s{self._syncs}"
        self.unacked.add(edit_id)
        b64 = base64.b64encode(delta).decode()
        await self.send({"type": "sync", "doc": self.doc_id, "delta": b64, "edit_id": edit_id})

    def handle(self, msg: Msg) -> None:
        if msg["type"] == "remote_sync":
            self.doc.merge(base64.b64decode(msg["delta"]))
            self.version = max(self.version, msg["version"])
        elif msg["type"] == "ack":
            self.unacked.discard(msg["edit_id"])
            self.version = max(self.version, msg["version"])
        elif msg["type"] == "error":
            self.errors.append(msg)

    async def settle(self, version: int, timeout: float = 20.0) -> None:
        await self.wait_for(lambda: not self.unacked and self.version >= version, timeout)


@contextlib.asynccontextmanager
async def running(
    settings: Settings, store: Store | None = None, bus: Bus | None = None
) -> AsyncIterator[Any]:
    """A server with these settings on 127.0.0.1 (port 0), stopped at the end (like the
    ``server`` fixture); yields an object with ``url``, ``ws_url`` and ``state``. ``store`` and
    ``bus``: see ``create_app``."""
    app = create_app(settings, store, bus)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_config=None,
            lifespan="on",
            ws_ping_interval=None,
            ws=protocol_class() or "auto",
        )
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
        if task.done():
            task.result()
    url = f"http://127.0.0.1:{port}"
    try:
        yield types.SimpleNamespace(
            url=url, ws_url=f"ws://127.0.0.1:{port}/ws", state=app.state.cowrite, server=server
        )
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)


class SilentSocket:
    """A WebSocket client on a bare socket with a tiny receive buffer, that can stop reading
    (and never answers pings): blocking calls, run them with ``asyncio.to_thread``."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(10)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self.buf += self.sock.recv(4096)
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head

    def send(self, msg: Msg) -> None:
        payload = json.dumps(msg).encode()
        mask = os.urandom(4)
        n = len(payload)
        header = bytes([0x81]) + (
            bytes([0x80 | n]) if n < 126 else bytes([0x80 | 126]) + struct.pack("!H", n)
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def recv(self) -> list[Msg]:
        """One server frame (text, unmasked) as a list of messages."""
        while True:
            if len(self.buf) >= 2:
                n = self.buf[1] & 0x7F
                start = 2
                if n == 126:
                    n, start = struct.unpack("!H", self.buf[2:4])[0], 4
                elif n == 127:
                    n, start = struct.unpack("!Q", self.buf[2:10])[0], 10
                if len(self.buf) >= start + n:
                    payload, self.buf = self.buf[start : start + n], self.buf[start + n :]
                    data = json.loads(payload)
                    return data if isinstance(data, list) else [data]
            self.buf += self.sock.recv(4096)

    def recv_until(self, type_: str) -> Msg:
        while True:
            for m in self.recv():
                if m["type"] == type_:
                    return m
