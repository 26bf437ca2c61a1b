"""Real providers in node, over an in-memory fake WebSocket, talk to the session machines:
``@hocuspocus/provider`` 4.8 to ``HocuspocusSession`` (authentication, initial sync,
``unsyncedChanges`` back to zero only once the SyncStatus of a durable update arrives, remote
updates, awareness, read-only scope, denial) and ``y-websocket`` 3.1's ``WebsocketProvider`` to
``YWebsocketSession`` (token in the URL, sync, updates, read-only refusal it logs)."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pycrdt
import pytest

from cowrite.yjs import messages as m
from cowrite.yjs.document import YjsDocument
from cowrite.yjs.session import (
    Action,
    Broadcast,
    Denied,
    HocuspocusSession,
    Join,
    Persist,
    RelayAwareness,
    Rights,
    Send,
    SharedDoc,
    YWebsocketSession,
)

NODE = shutil.which("node")  # the js_dir fixture skips when node is missing


class Peer:
    def __init__(self, js_dir: Path, dialect: str, name: str, token: str) -> None:
        assert NODE is not None
        self.proc = subprocess.Popen(
            [NODE, "peer.mjs", dialect, name, token],
            cwd=js_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def cmd(self, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the node peer exited"
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write('{"cmd":"exit"}\n')
        self.proc.stdin.close()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def peer_factory(js_dir: Path) -> Iterator[Any]:
    peers: list[Peer] = []

    def make(name: str, token: str, dialect: str = "hocuspocus") -> Peer:
        peers.append(Peer(js_dir, dialect, name, token))
        return peers[-1]

    yield make
    for p in peers:
        p.close()


def auth(token: str, document: str) -> Rights | Denied:
    return {"rw": Rights.READ_WRITE, "ro": Rights.READ}.get(token, Denied("who are you"))


class Server:
    """The shell's part, minimal: executes actions; durability is under the test's control."""

    def __init__(self, shared: SharedDoc) -> None:
        self.shared = shared
        self.session = HocuspocusSession(auth, key="peer")
        self.stored: list[Persist] = []
        self.broadcasts: list[Broadcast] = []

    def feed(self, frames: list[str]) -> list[str]:
        out: list[str] = []
        for f in frames:
            self._run(self.session.receive(bytes.fromhex(f)), out)
        return out

    def _run(self, actions: list[Action], out: list[str]) -> None:
        for a in actions:
            if isinstance(a, Send):
                out.append(a.frame.hex())
            elif isinstance(a, Join):
                self._run(self.session.attach(a.address, self.shared), out)
            elif isinstance(a, Persist):
                self.stored.append(a)
            elif isinstance(a, Broadcast):
                self.broadcasts.append(a)

    def make_durable(self) -> list[str]:
        out: list[str] = []
        while self.stored:
            self._run(self.session.durable(self.stored.pop(0).ticket), out)
        return out


def initial_doc(text: str) -> SharedDoc:
    src: pycrdt.Doc[Any] = pycrdt.Doc(client_id=5)
    src["text"] = pycrdt.Text(text)
    return SharedDoc(doc=YjsDocument.load(src.get_update()))


def test_provider_syncs_edits_and_is_acknowledged_only_when_durable(peer_factory: Any) -> None:
    server = Server(initial_doc("server says hi. "))
    peer = peer_factory("notes", "rw")
    state = peer.cmd(cmd="open")
    replies = server.feed(state["sent"])  # Auth + SyncStep1 + awareness, sent without waiting
    assert m.decode_hocuspocus(bytes.fromhex(replies[0])) == m.HAuthenticated("notes", "read-write")
    state = peer.cmd(cmd="deliver", frames=replies)
    assert state["authenticated"] and state["scope"] == "read-write"
    assert state["synced"] and state["text"] == "server says hi. "
    # The provider answered our step 1 with its step 2; it waits for that SyncStatus.
    assert state["unsynced"] == 1
    state = peer.cmd(cmd="deliver", frames=server.feed(state["sent"]))
    assert state["unsynced"] == 0

    state = peer.cmd(cmd="type", text="typed in node")
    assert state["unsynced"] == 1
    assert server.feed(state["sent"]) == []  # stored, not yet durable: no SyncStatus
    assert server.shared.doc.text("text") == "server says hi. typed in node"
    state = peer.cmd(cmd="deliver", frames=[])
    assert state["unsynced"] == 1
    acks = server.make_durable()
    assert [m.decode_hocuspocus(bytes.fromhex(a)) for a in acks] == [m.HSyncStatus("notes", True)]
    assert len(server.broadcasts) == 1
    state = peer.cmd(cmd="deliver", frames=acks)
    assert state["unsynced"] == 0

    # Someone else's update, broadcast to this connection.
    other: pycrdt.Doc[Any] = pycrdt.Doc(client_id=9)
    other.apply_update(server.shared.doc.encode_snapshot())
    updates: list[bytes] = []
    other.observe(lambda e: updates.append(e.update))
    other.get("text", type=pycrdt.Text).insert(0, ">> ")
    frame = server.session.update_frame("notes", updates[0])
    state = peer.cmd(cmd="deliver", frames=[frame.hex()])
    assert state["text"] == ">> server says hi. typed in node"

    # Awareness from the provider lands in the table.
    state = peer.cmd(cmd="awareness", user={"name": "Node"})
    server.feed(state["sent"])
    states = [json.loads(s) for s in server.shared.awareness.states().values()]
    assert {"user": {"name": "Node"}} in states


def test_provider_read_only_and_denied(peer_factory: Any) -> None:
    server = Server(initial_doc("read me"))
    peer = peer_factory("ro-doc", "ro")
    state = peer.cmd(cmd="open")
    state = peer.cmd(cmd="deliver", frames=server.feed(state["sent"]))
    assert state["scope"] == "readonly" and state["text"] == "read me"
    state = peer.cmd(cmd="deliver", frames=server.feed(state["sent"]))
    assert state["unsynced"] == 0  # its empty step 2 adds nothing: SyncStatus(true)
    state = peer.cmd(cmd="type", text="!")
    replies = server.feed(state["sent"])
    assert [m.decode_hocuspocus(bytes.fromhex(r)) for r in replies] == [
        m.HSyncStatus("ro-doc", False)
    ]
    state = peer.cmd(cmd="deliver", frames=replies)
    assert state["unsynced"] == 1  # the provider knows the change was not saved
    assert server.shared.doc.text("text") == "read me" and server.stored == []

    denied = Server(initial_doc("secret"))
    peer2 = peer_factory("secret-doc", "nope")
    state = peer2.cmd(cmd="open")
    state = peer2.cmd(cmd="deliver", frames=denied.feed(state["sent"]))
    assert state["denied"] == "who are you" and not state["authenticated"]
    assert state["text"] == ""


def _frames(actions: list[Action]) -> list[str]:
    return [a.frame.hex() for a in actions if isinstance(a, Send)]


def test_y_websocket_provider(peer_factory: Any) -> None:
    shared = initial_doc("hello from the server. ")
    peer = peer_factory("notes", "rw", dialect="ywebsocket")
    state = peer.cmd(cmd="open")
    url = urllib.parse.urlsplit(state["url"])
    assert url.path == "/yjs/notes"
    token = urllib.parse.parse_qs(url.query)["token"][0]
    rights = auth(token, "notes")
    assert rights is Rights.READ_WRITE
    session = YWebsocketSession("notes", rights, shared, key="yws")
    replies = _frames(session.open())
    for f in state["sent"]:  # its step 1 and its awareness
        replies += _frames(session.receive(bytes.fromhex(f)))
    state = peer.cmd(cmd="deliver", frames=replies)
    assert state["synced"] and state["text"] == "hello from the server. "
    for f in state["sent"]:  # its step 2, answering ours: nothing new
        assert session.receive(bytes.fromhex(f)) == []

    state = peer.cmd(cmd="type", text="typed")
    actions = [a for f in state["sent"] for a in session.receive(bytes.fromhex(f))]
    persists = [a for a in actions if isinstance(a, Persist)]
    assert len(persists) == 1 and shared.doc.text("text") == "hello from the server. typed"
    assert session.durable(persists[0].ticket) == [Broadcast("notes", persists[0].update, "yws")]

    other: pycrdt.Doc[Any] = pycrdt.Doc(client_id=9)
    other.apply_update(shared.doc.encode_snapshot())
    updates: list[bytes] = []
    other.observe(lambda e: updates.append(e.update))
    other.get("text", type=pycrdt.Text).insert(0, "> ")
    state = peer.cmd(cmd="deliver", frames=[session.update_frame(updates[0]).hex()])
    assert state["text"] == "> hello from the server. typed"

    state = peer.cmd(cmd="awareness", user={"name": "y"})
    relays = [a for f in state["sent"] for a in session.receive(bytes.fromhex(f))]
    assert any(isinstance(a, RelayAwareness) for a in relays)


def test_y_websocket_provider_read_only(peer_factory: Any) -> None:
    shared = initial_doc("look, don't touch")
    peer = peer_factory("notes", "ro", dialect="ywebsocket")
    state = peer.cmd(cmd="open")
    session = YWebsocketSession("notes", Rights.READ, shared)
    replies = _frames(session.open())
    for f in state["sent"]:
        replies += _frames(session.receive(bytes.fromhex(f)))
    state = peer.cmd(cmd="deliver", frames=replies)
    assert state["synced"] and state["text"] == "look, don't touch"
    state = peer.cmd(cmd="type", text="!")
    replies = [f for x in state["sent"] for f in _frames(session.receive(bytes.fromhex(x)))]
    state = peer.cmd(cmd="deliver", frames=replies)
    assert state["denied"] == "read-only"  # the provider logged the refusal
    assert shared.doc.text("text") == "look, don't touch" and not session.closed
