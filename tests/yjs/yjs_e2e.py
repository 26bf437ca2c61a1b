"""Helpers of the end-to-end Yjs tests (``test_server_*.py``, ``test_cluster_*.py``): real Yjs
clients in node (``js/yclients.mjs``) driven from asyncio, and ``cowrite serve`` processes.

The fixtures (``node``, ``yjs_server``) are in ``conftest.py``; tests import this module by path::

    sys.path.insert(0, str(Path(__file__).parent))
    from yjs_e2e import YClients, eventually, same_content
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))  # services.py
from services import CowriteInstance

NODE = shutil.which("node")
JS = Path(__file__).resolve().parent / "js"

E2E_ENV = {
    "COWRITE_EDITS_PER_SECOND": "100000",
    "COWRITE_EDIT_BURST": "100000",
    "COWRITE_JOINS_PER_SECOND": "1000",
    "COWRITE_JOIN_BURST": "1000",
    "COWRITE_PRESENCE_PER_SECOND": "1000",
    "COWRITE_PRESENCE_BURST": "1000",
    "COWRITE_HEARTBEAT_S": "1",
    "COWRITE_HEARTBEAT_TIMEOUT_S": "4",
    "COWRITE_LOG_JSON": "true",
    "COWRITE_SNAPSHOT_EVERY": "40",
    "COWRITE_UNLOAD_AFTER_S": "1",
}
"""Settings of the servers the end-to-end tests start: no edit/join/presence rate limits (random
edits send hundreds of updates a second), short heartbeats; snapshots (compacting the log) every
40 updates and documents unloaded a second after their last client left, so that the tests go
through snapshots, log replays and reloads, not only through the in-memory document."""


async def eventually(
    check: Callable[[], Awaitable[bool] | bool], *, timeout: float, what: str, every: float = 0.05
) -> None:
    """Poll ``check`` until it holds (AssertionError naming ``what`` after ``timeout`` s). Never a
    timed assertion: the timeouts are generous, only to end a test that hangs."""
    end = time.monotonic() + timeout
    while True:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(every)


class YClients:
    """One node process (``js/yclients.mjs``) holding any number of real Yjs clients, each with
    its own ``Y.Doc`` and an unchanged ``WebsocketProvider`` (y-websocket) or
    ``HocuspocusProvider`` over ``ws``. ``kill()`` is kill -9: every socket of it dies at once."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read(), name=f"yclients {name}")
        self.stderr: list[str] = []
        self._errs = asyncio.create_task(self._read_stderr())

    @classmethod
    async def start(cls, js_dir: Path, name: str = "node") -> YClients:
        assert NODE is not None
        proc = await asyncio.create_subprocess_exec(
            NODE,
            "yclients.mjs",
            cwd=js_dir,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )
        return cls(proc, name)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            answer = json.loads(line)
            future = self._waiting.pop(answer.pop("id"), None)
            if future is not None and not future.done():
                future.set_result(answer)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(AssertionError(f"node {self.name} exited: {self.stderr[-5:]}"))

    async def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.stderr.append(line.decode(errors="replace").rstrip())
            del self.stderr[:-200]

    async def call(self, cmd: str, timeout: float = 60, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        rid = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[rid] = future
        self.proc.stdin.write((json.dumps({"id": rid, "cmd": cmd, **kw}) + "\n").encode())
        await self.proc.stdin.drain()
        answer = await asyncio.wait_for(future, timeout)
        if not answer.pop("ok"):
            raise AssertionError(f"node {self.name}: {cmd} failed: {answer.get('error')}")
        return answer

    async def open(
        self,
        client: str,
        dialect: str,
        base: str,
        name: str,
        *,
        token: str | None = None,
        socket: str | None = None,
        user: dict[str, Any] | None = None,
        session_awareness: bool = False,
    ) -> dict[str, Any]:
        """``base``: ``ws://HOST:PORT`` of a server or of nginx."""
        url = f"{base}/hocuspocus" if dialect == "hocuspocus" else f"{base}/yjs"
        kw: dict[str, Any] = {"client": client, "dialect": dialect, "url": url, "name": name}
        if token is not None:
            kw["token"] = token
        if socket is not None:
            kw["socket"] = socket
        if user is not None:
            kw["user"] = user
        if session_awareness:
            kw["session_awareness"] = True
        return await self.call("open", **kw)

    async def state(self, client: str) -> dict[str, Any]:
        return await self.call("state", client=client)

    async def states(self) -> dict[str, dict[str, Any]]:
        states: dict[str, dict[str, Any]] = (await self.call("states"))["states"]
        return states

    async def decode(self, update: bytes) -> dict[str, Any]:
        """The content of a Yjs update read into a fresh ``Y.Doc`` (``content``, ``sv``)."""
        return await self.call("decode", update=update.hex())

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def close(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(Exception):
                await self.call("exit", timeout=10)
        self.kill()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.proc.wait(), 10)
        for task in (self._reader, self._errs):
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def rest_yjs_state(base_url: str, doc: str) -> bytes:
    """``GET /api/documents/{doc}/yjs`` at ``base_url``: the state as a Yjs update v1."""
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(f"{base_url}/api/documents/{doc}/yjs")
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert r.headers["content-type"] == "application/octet-stream", r.headers
    return r.content


class YjsServer(CowriteInstance):
    """One ``cowrite serve`` on a SQLite file (``--secret`` via ``COWRITE_SECRET``)."""

    @property
    def base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS")

    async def yjs_state(self, doc: str) -> bytes:
        """``GET /api/documents/{doc}/yjs``: the state as a Yjs update v1."""
        return await rest_yjs_state(self.url, doc)


def same_content(states: list[dict[str, Any]]) -> bool:
    """Every state has the same content and the same state vector."""
    first = states[0]
    return all(s["content"] == first["content"] and s["sv"] == first["sv"] for s in states[1:])


def content_diff(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Which roots of two contents differ (for failure messages)."""
    roots = sorted(set(a) | set(b))
    return "; ".join(
        f"{r}: {json.dumps(a.get(r))[:200]} != {json.dumps(b.get(r))[:200]}"
        for r in roots
        if a.get(r) != b.get(r)
    )
