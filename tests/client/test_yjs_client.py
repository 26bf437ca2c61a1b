"""The SDK's Yjs client (``cowrite.client.open_yjs``) against a real ``cowrite serve`` process:
concurrent edits of XmlFragment / Text / Map converge, ``saved()`` means durable (kill -9 loses
nothing), rights (read-only, forged token, native document) give typed errors, awareness comes and
goes, the session reconnects and resyncs after a restart, and a pycrdt client and a JS client
(``@hocuspocus/provider`` in node) converge on one document."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pycrdt
import pytest

import cowrite
from cowrite.client import (
    NotSynced,
    PermissionDenied,
    ReadOnlyError,
    SessionClosed,
    YjsSession,
    connect,
    hocuspocus_url,
    open_yjs,
)
from cowrite.server.auth import issue

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),
]

SECRET = "yjs-client-secret"
JS = Path(__file__).resolve().parents[1] / "yjs" / "js"
NODE = shutil.which("node")
NPM = shutil.which("npm")
ENV = {
    "COWRITE_SNAPSHOT_EVERY": "20",  # snapshots (and log compaction) happen mid-test
    "COWRITE_LOG_JSON": "true",
}


class Served:
    """One ``cowrite serve`` process on a SQLite file; ``restart`` keeps the port and the file."""

    def __init__(self, data: Path, log: Path, secret: str | None = None) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.data = data
        self.log_path = log
        self.secret = secret
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _spawn(self) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "cowrite.cli", "serve", "--port", str(self.port)]
        args += ["--data", str(self.data), "--log-level", "warning"]
        if self.secret:
            args += ["--secret", self.secret]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=log, env={**os.environ, **ENV})
        return self.proc

    def _exited(self, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is not None:
            raise AssertionError(
                f"the server exited with {proc.returncode}: " + self.log_path.read_text()[-2000:]
            )

    async def start(self) -> None:
        proc = self._spawn()
        async with httpx.AsyncClient() as http:
            for _ in range(1200):
                self._exited(proc)
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{self.http}/healthz")).is_success:
                        return
                await asyncio.sleep(0.05)
        raise AssertionError("the server did not come up")

    def start_blocking(self) -> None:
        """``start`` for fixtures outside the event loop."""
        proc = self._spawn()
        with httpx.Client() as http:
            for _ in range(1200):
                self._exited(proc)
                with contextlib.suppress(httpx.TransportError):
                    if http.get(f"{self.http}/healthz").is_success:
                        return
                time.sleep(0.05)
        raise AssertionError("the server did not come up")

    def kill(self) -> None:
        """kill -9."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()


@pytest.fixture
async def serve(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[Served]]]:
    started: list[Served] = []

    async def make(secret: str | None = None) -> Served:
        n = len(started)
        s = Served(tmp_path / f"cowrite{n}.db", tmp_path / f"server{n}.log", secret)
        started.append(s)
        await s.start()
        return s

    yield make
    for s in started:
        s.kill()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One server for the tests that never stop it (each uses documents of its own)."""
    tmp = tmp_path_factory.mktemp("shared")
    s = Served(tmp / "cowrite.db", tmp / "server.log")
    s.start_blocking()
    yield s
    s.kill()


def token(docs: dict[str, list[str]], user: str = "u") -> str:
    return issue(SECRET, user, docs=docs, name=user.title(), expires_at=int(time.time()) + 3600)


async def eventually(check: Callable[[], bool], what: str, timeout_s: float = 30.0) -> None:
    """Poll ``check`` until it holds (a failsafe deadline only: nothing here measures time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        if loop.time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)


def view(s: YjsSession) -> dict[str, Any]:
    doc = s.doc
    return {
        "text": str(doc.get("text", type=pycrdt.Text)),
        "map": doc.get("map", type=pycrdt.Map).to_py(),
        "xml": str(doc.get("default", type=pycrdt.XmlFragment)),
    }


def random_edits(s: YjsSession, rng: random.Random, tag: str, count: int) -> None:
    """Edits of the three kinds of roots a rich-text application uses, one transaction each."""
    doc = s.doc
    text = doc.get("text", type=pycrdt.Text)
    m = doc.get("map", type=pycrdt.Map)
    fragment = doc.get("default", type=pycrdt.XmlFragment)
    for i in range(count):
        r = rng.random()
        if r < 0.4:
            text.insert(rng.randint(0, len(str(text))), f"{tag}{i} ")
        elif r < 0.5 and str(text):
            at = rng.randrange(len(str(text)))  # ASCII only: pycrdt indexes UTF-8 bytes
            del text[at : min(at + 3, len(str(text)))]
        elif r < 0.75:
            m[f"k{rng.randrange(5)}"] = f"{tag}{i}"
        else:
            para = pycrdt.XmlElement("paragraph", None, [pycrdt.XmlText(f"{tag}{i}")])
            fragment.children.insert(rng.randint(0, len(fragment.children)), para)


# ------------------------------------------------------------------------------------- tests


def test_the_url_means_the_hocuspocus_endpoint() -> None:
    assert hocuspocus_url("ws://h:1") == "ws://h:1/hocuspocus"
    assert hocuspocus_url("http://h:1/") == "ws://h:1/hocuspocus"
    assert hocuspocus_url("https://h/ws") == "wss://h/hocuspocus"
    assert hocuspocus_url("ws://h/collab") == "ws://h/collab/hocuspocus"
    assert hocuspocus_url("ws://h/collab/hocuspocus") == "ws://h/collab/hocuspocus"
    assert hocuspocus_url("ws://h/yjs/") == "ws://h/hocuspocus"
    assert hocuspocus_url("wss://h/p/ws?x=1") == "wss://h/p/hocuspocus?x=1"
    assert cowrite.open_yjs is open_yjs


async def test_remote_updates_are_not_echoed_and_wait_for_the_servers_state() -> None:
    """The session's frame handling alone (no socket): updates that arrive before the server's
    sync step 2 wait for it; remote changes are never sent back; local transactions of one loop
    turn go out as one update, and ``saved`` follows the SyncStatus answers."""
    from cowrite.yjs import messages as m

    s = YjsSession("ws://unused", "d")
    s._loop = asyncio.get_running_loop()
    s._outbox = asyncio.Queue()
    server: pycrdt.Doc[Any] = pycrdt.Doc()
    text = server.get("t", type=pycrdt.Text)
    text += "base"
    step2 = server.get_update()
    before = server.get_state()
    text += " more"
    later = server.get_update(before)  # depends on step2's structs

    def frame(msg: m.SyncMessage) -> m.HSync:
        return m.HSync("d", msg)

    s._handle(frame(m.SyncUpdate(later)))  # before the server's state: held
    assert str(s.doc.get("t", type=pycrdt.Text)) == ""
    s._handle(frame(m.SyncStep1(b"\x00")))  # answered with our step 2 (nothing yet)
    s._handle(frame(m.SyncStep2(step2)))
    assert str(s.doc.get("t", type=pycrdt.Text)) == "base more"
    sent = [m.decode_hocuspocus(s._outbox.get_nowait()) for _ in range(s._outbox.qsize())]
    assert [type(f.sync) for f in sent if isinstance(f, m.HSync)] == [m.SyncStep2]  # no echo
    assert s.connected and s.is_saved  # nothing local to save
    s._handle(m.HSyncStatus("d", True))  # the acknowledgement of our (empty) step 2
    assert s.is_saved

    # a document handed in with content is unsaved until an upload of it is acknowledged
    assert not YjsSession("ws://unused", "d", document=server).is_saved
    assert YjsSession("ws://unused", "d", document=pycrdt.Doc()).is_saved

    t = s.doc.get("t", type=pycrdt.Text)
    t += "!"
    t += "?"
    assert not s.is_saved
    await asyncio.sleep(0)  # the loop turn ends: one update for both transactions
    (out,) = [m.decode_hocuspocus(s._outbox.get_nowait()) for _ in range(s._outbox.qsize())]
    assert isinstance(out, m.HSync) and isinstance(out.sync, m.SyncUpdate)
    server.apply_update(out.sync.update)
    assert str(server.get("t", type=pycrdt.Text)) == "base more!?"
    assert not s.is_saved  # sent, not acknowledged
    s._handle(m.HSyncStatus("d", True))
    assert s.is_saved
    s._handle(frame(m.SyncUpdate(server.get_update(s.doc.get_state()))))  # nothing new
    assert s._outbox.empty()


async def test_two_clients_edit_concurrently_and_converge(shared: Served) -> None:
    server = shared
    async with open_yjs(server.url, "rich") as a, open_yjs(server.url, "rich") as b:
        for round_ in range(5):
            random_edits(a, random.Random(round_), "a", 20)
            random_edits(b, random.Random(100 + round_), "b", 20)
            await asyncio.sleep(0)  # interleave: each side's updates go out while the other types
        await asyncio.gather(a.saved(), b.saved())
        await eventually(lambda: view(a) == view(b), "a and b converge")
        # both sides' edits are in it (paragraphs are never deleted by the random edits)
        assert "<paragraph>a" in view(a)["xml"] and "<paragraph>b" in view(a)["xml"]
        # and the server holds the same: a third client opening now gets it all
        async with open_yjs(server.url, "rich") as c:
            assert view(c) == view(a)


async def test_saved_means_durable_across_kill_9(serve: Any) -> None:
    server = await serve()
    async with open_yjs(server.url, "durable", backoff_max_s=0.5) as a:
        random_edits(a, random.Random(1), "x", 60)
        await a.saved()
        expected = view(a)
        server.kill()  # kill -9 right after saved(): nothing may be lost
        await eventually(lambda: not a.connected, "a notices")
        await server.start()
        async with open_yjs(server.url, "durable") as fresh:
            assert view(fresh) == expected
        await eventually(lambda: a.connected, "a reconnects")
        await a.saved()


async def test_offline_edits_are_uploaded_after_a_restart(serve: Any) -> None:
    server = await serve()
    statuses: list[str] = []
    async with open_yjs(server.url, "offline", backoff_max_s=0.5) as a:
        a.on("status", statuses.append)
        a.doc.get("map", type=pycrdt.Map)["before"] = "restart"
        await a.saved()
        server.kill()
        await eventually(lambda: not a.connected, "a notices")
        a.doc.get("map", type=pycrdt.Map)["during"] = "outage"  # offline
        assert not a.is_saved
        await server.start()
        await a.saved()  # reconnected, resynced, uploaded, durable
        async with open_yjs(server.url, "offline") as b:
            assert b.doc.get("map", type=pycrdt.Map).to_py() == {
                "before": "restart",
                "during": "outage",
            }
            # and live again both ways after the reconnect
            b.doc.get("map", type=pycrdt.Map)["after"] = "b"
            await b.saved()
            await eventually(lambda: "after" in a.doc.get("map", type=pycrdt.Map), "a sees b")
    assert statuses[:2] == ["disconnected", "connected"]


async def test_a_dropped_connection_resyncs_both_ways(shared: Served) -> None:
    server = shared
    async with (
        open_yjs(server.url, "drop", backoff_max_s=0.2) as a,
        open_yjs(server.url, "drop") as b,
    ):
        a.doc.get("text", type=pycrdt.Text).insert(0, "shared ")
        await a.saved()
        await eventually(lambda: str(b.doc.get("text", type=pycrdt.Text)) == "shared ", "b")
        assert a._ws is not None
        a._ws.transport.abort()  # the connection drops (no close handshake)
        await eventually(lambda: not a.connected, "a notices")
        a.doc.get("map", type=pycrdt.Map)["a"] = "while dropped"
        b.doc.get("map", type=pycrdt.Map)["b"] = "meanwhile"
        await b.saved()
        await a.saved()  # reconnected, resynced both ways
        await eventually(lambda: view(a) == view(b), "a and b converge")
        assert view(a)["map"] == {"a": "while dropped", "b": "meanwhile"}


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_edits_and_dropped_connections_converge(shared: Served, seed: int) -> None:
    """Three clients edit at random while their connections drop at random (no close
    handshake): once everyone is saved, all converge, and so does a client opening afterwards."""
    server, name = shared, f"storm{seed}"
    rng = random.Random(seed)
    sessions = [await open_yjs(server.url, name, backoff_max_s=0.1) for _ in range(3)]
    try:
        for round_ in range(8):
            for k, s in enumerate(sessions):
                random_edits(s, random.Random(seed * 1000 + round_ * 10 + k), f"c{k}r{round_}.", 8)
            victim = rng.choice(sessions)
            if victim._ws is not None and rng.random() < 0.7:
                victim._ws.transport.abort()
            await asyncio.sleep(rng.choice([0, 0, 0.01, 0.05]))
        await asyncio.gather(*(s.saved() for s in sessions))
        await eventually(
            lambda: all(view(s) == view(sessions[0]) for s in sessions), "all converge"
        )
        async with open_yjs(server.url, name) as late:
            assert view(late) == view(sessions[0])
        paragraphs = view(late)["xml"]
        assert all(f"<paragraph>c{k}r" in paragraphs for k in range(3))
    finally:
        for s in sessions:
            await s.close(flush=False)


async def test_leaving_with_unsaved_changes_raises_not_synced(serve: Any) -> None:
    server = await serve()
    s = await open_yjs(server.url, "ns", flush_timeout_s=0.5, backoff_max_s=0.2)
    quiet = await open_yjs(server.url, "ns", backoff_max_s=0.2)
    server.kill()
    await eventually(lambda: not s.connected and not quiet.connected, "both notice")
    await quiet.close()  # nothing local: nothing to wait for, nothing lost
    s.doc.get("map", type=pycrdt.Map)["x"] = "unsaved"
    with pytest.raises(NotSynced):
        await s.close()
    assert s.doc.get("map", type=pycrdt.Map).to_py() == {"x": "unsaved"}  # still in the doc


async def test_read_only_token_forged_token_and_native_document(serve: Any) -> None:
    server = await serve(secret=SECRET)
    writer = token({"doc": ["write"]}, "w")
    async with open_yjs(server.url, "doc", token=writer) as w:
        w.doc.get("text", type=pycrdt.Text).insert(0, "written")
        await w.saved()
        reader = token({"doc": ["read"]}, "r")
        r = await open_yjs(server.url, "doc", token=reader)
        try:
            assert r.read_only is True
            assert str(r.doc.get("text", type=pycrdt.Text)) == "written"
            await r.saved()  # nothing local: nothing to refuse
            r.doc.get("text", type=pycrdt.Text).insert(0, "nope ")
            with pytest.raises(ReadOnlyError):
                await r.saved()
            # the writer never sees it
            w.doc.get("text", type=pycrdt.Text).insert(7, "!")
            await w.saved()
            await eventually(
                lambda: "!" in str(r.doc.get("text", type=pycrdt.Text)), "r gets w's change"
            )
            assert str(w.doc.get("text", type=pycrdt.Text)) == "written!"
        finally:
            with pytest.raises(ReadOnlyError):
                await r.close()
    # a read-only client whose document already held changes it made offline: refused too
    offline = pycrdt.Doc()
    offline.get("text", type=pycrdt.Text).insert(0, "offline ")
    async with open_yjs(server.url, "doc", token=reader, document=offline) as r2:
        with pytest.raises(ReadOnlyError):
            await r2.saved()
        await r2.close(flush=False)
    forged = issue("not-the-secret", "x", docs={"doc": ["write"]}, expires_at=2**31)
    with pytest.raises(PermissionDenied):
        await open_yjs(server.url, "doc", token=forged)
    with pytest.raises(PermissionDenied):
        await open_yjs(server.url, "doc", token=token({"other": ["write"]}))
    with pytest.raises(PermissionDenied):
        await open_yjs(server.url, "doc")  # no token


async def test_a_native_document_is_refused(shared: Served) -> None:
    server = shared
    async with connect(server.url, doc="native") as native:
        native.text("body").insert(0, "crdt")
        await native.synced()
    with pytest.raises(PermissionDenied) as caught:
        await open_yjs(server.url, "native")
    assert "not a Yjs document" in caught.value.reason


async def test_a_deleted_document_ends_the_session_and_stays_deleted(shared: Served) -> None:
    server = shared
    async with open_yjs(server.url, "gone", backoff_max_s=0.2) as s:
        s.doc.get("text", type=pycrdt.Text).insert(0, "soon gone")
        await s.saved()
        async with httpx.AsyncClient(base_url=server.http) as http:
            assert (await http.delete("/api/documents/gone")).status_code == 204
            await eventually(lambda: not s.connected, "the server closes the session")
            with pytest.raises(SessionClosed, match="deleted"):
                await s.saved()  # the session ended instead of reconnecting...
            # ... which would have created the document again from its copy
            assert (await http.get("/api/documents/gone")).status_code == 404
        await s.close(flush=False)


async def test_awareness_appears_and_disappears(shared: Served) -> None:
    server = shared
    user_a = {"user": {"name": "Ada", "color": "#112233"}}
    async with open_yjs(server.url, "aw", awareness=user_a) as a:
        seen: list[dict[int, Any]] = []
        a.on("awareness", seen.append)
        b = await open_yjs(server.url, "aw")
        b.set_awareness({"user": {"name": "Bob", "color": "#445566"}})
        await eventually(lambda: a.awareness.get(b.client_id) is not None, "a sees b")
        assert a.awareness[b.client_id]["user"]["name"] == "Bob"
        await eventually(lambda: b.awareness.get(a.client_id) == user_a, "b sees a")
        assert a.client_id not in a.awareness  # others only
        b.set_awareness({"user": {"name": "Bob", "color": "#445566"}, "cursor": 3})
        await eventually(lambda: a.awareness.get(b.client_id, {}).get("cursor") == 3, "update")
        await b.close()
        await eventually(lambda: b.client_id not in a.awareness, "b's state goes with b")
        assert seen and seen[-1] == {}


async def test_chat_over_stateless_messages(shared: Served) -> None:
    server = shared
    async with open_yjs(server.url, "talk") as a, open_yjs(server.url, "talk") as b:
        heard: list[Any] = []
        errors: list[Exception] = []
        b.on("chat", heard.append)
        a.on("error", errors.append)
        a.send_chat("hello from Python", name="Ada")
        await eventually(lambda: len(heard) == 1, "b hears a")
        assert heard[0].text == "hello from Python" and heard[0].author_name == "Ada"
        await eventually(lambda: len(a.chat_messages) == 1, "a hears itself")
        a.send_chat("x" * 10_001)  # over the server's limit: refused, told to a only
        await eventually(lambda: len(errors) == 1, "a is told")
        assert "bad_message" in str(errors[0])
        with pytest.raises(ValueError):
            a.send_chat("")
    async with open_yjs(server.url, "talk") as late:  # the history comes on attach
        await eventually(lambda: len(late.chat_messages) == 1, "history")
        assert late.chat_messages[0].text == "hello from Python"
        assert not late.chat_has_more


@pytest.fixture(scope="module")
def js_dir() -> Path:
    if NODE is None or NPM is None:
        pytest.skip("node / npm are not installed")
    probe = subprocess.run(
        [
            NODE,
            "--experimental-websocket",
            "-e",
            "process.exit(typeof WebSocket === 'function' ? 0 : 1)",
        ],
        capture_output=True,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("this node has no built-in WebSocket (node >= 20.10 has one)")
    if not (JS / "node_modules" / "@hocuspocus" / "provider").is_dir():
        subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True
        )
    return JS


class JsPeer:
    """``sdk_peer.mjs``: a HocuspocusProvider in node, over a real WebSocket."""

    def __init__(self, js_dir: Path, url: str, name: str, token: str) -> None:
        assert NODE is not None
        self.proc = subprocess.Popen(
            [NODE, "--experimental-websocket", "--no-warnings", "sdk_peer.mjs", url, name, token],
            cwd=js_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    async def cmd(self, **kw: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self._cmd, kw)

    def _cmd(self, kw: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(kw) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the node peer exited"
        out: dict[str, Any] = json.loads(line)
        return out

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.write('{"cmd":"exit"}\n')
            self.proc.stdin.close()
        self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@pytest.fixture
def js_peers(js_dir: Path) -> Iterator[Callable[[str, str, str], JsPeer]]:
    peers: list[JsPeer] = []

    def make(url: str, name: str, token: str) -> JsPeer:
        peers.append(JsPeer(js_dir, url, name, token))
        return peers[-1]

    yield make
    for p in peers:
        p.close()


async def test_a_pycrdt_client_and_a_js_client_converge(shared: Served, js_peers: Any) -> None:
    server = shared
    js = js_peers(hocuspocus_url(server.url), "mixed", "x")
    async with open_yjs(server.url, "mixed") as py:
        first = await js.cmd(cmd="saved")
        assert first["scope"] == "read-write"
        for round_ in range(4):
            edits = js.cmd(cmd="edit", seed=round_, count=15)
            random_edits(py, random.Random(round_), "py", 15)
            await edits
        await py.saved()
        done = await js.cmd(cmd="saved")
        assert done["unsynced"] == 0

        async def js_view() -> dict[str, Any]:
            s = await js.cmd(cmd="state")
            return {"text": s["text"], "map": s["map"], "xml": s["xml"]}

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while (theirs := await js_view()) != view(py):
            assert loop.time() < deadline, f"no convergence: {theirs} != {view(py)}"
            await asyncio.sleep(0.05)
        # both sides' edits are in it (paragraphs are never deleted by the random edits)
        assert "<paragraph>js" in theirs["xml"] and "<paragraph>py" in theirs["xml"]
