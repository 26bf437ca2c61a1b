"""The web editor's end-to-end harness: a real cowrite server and Debian's Chromium via Playwright.

* ``WebServer``: ``create_app`` under uvicorn on 127.0.0.1, on a port it keeps across ``stop()`` and
  ``start()`` (same SQLite file), so a test can take the server away and bring it back.
* ``ensure_chromium``: Debian's ``/usr/bin/chromium``, installed by ``scripts/ensure-browser`` when
  missing (Playwright's own browser downloads are never used).
* ``Person``: one browser context (one user, with a name and a color) and its page; every console
  error and page error is collected and the test fails on any at teardown.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvicorn

from cowrite.server.app import create_app
from cowrite.server.config import Settings
from cowrite_dev.services import HttpEndpoint

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("COWRITE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
BODY = "text:body"


def ensure_chromium() -> str | None:
    """Install Debian's Chromium if it is missing; the reason it cannot be had, or None."""
    if CHROMIUM.exists():
        return None
    script = ROOT / "scripts" / "ensure-browser"
    try:
        done = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=900, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"scripts/ensure-browser failed: {exc}"
    if done.returncode != 0 or not CHROMIUM.exists():
        return f"scripts/ensure-browser failed ({done.returncode}): {done.stderr[-2000:]}"
    return None


class WebServer(HttpEndpoint):
    """A cowrite server in this event loop; ``stop()``/``start()`` keep its port and data."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.port = 0
        self.app: Any = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> Any:
        return self.app.state.cowrite

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self.app = create_app(self.settings)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, lifespan="on", ws_ping_interval=None)
        server = uvicorn.Server(config)
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            await asyncio.sleep(0.01)
            if self._task.done():
                self._task.result()

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await asyncio.wait_for(self._task, 20)
        self._server = None
        self._task = None

    def text(self, doc: str, name: str = "body") -> str:
        """The server's value of root ``name`` (``""`` when the document has no such root)."""
        value = self.room(doc).doc.to_json().get(name, "")
        return value if isinstance(value, str) else ""

    def room(self, doc: str) -> Any:
        return self.state.hub.rooms[doc].room

    async def create(self, doc: str, title: str | None = None) -> None:
        hub = self.state.hub
        await self.state.store.create_document(doc, title=title or doc, now_ms=hub.now_ms())


class Person:
    """One user: a browser context of their own (own storage, so own client id) and a page."""

    def __init__(self, name: str, context: Any, page: Any, *, allow: tuple[str, ...] = ()) -> None:
        self.name = name
        self.context = context
        self.page = page
        self.errors: list[str] = []
        self.allow = list(allow)
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"pageerror: {exc}"))

    def _console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        text = msg.text
        if any(pattern in text for pattern in self.allow):
            return
        self.errors.append(f"console.error: {text}")

    # ------------------------------------------------------------------ reading the page

    async def text(self) -> str:
        """The editor's text (what CodeMirror shows)."""
        result: str = await self.page.evaluate("window.cowriteApp.view.state.doc.toString()")
        return result

    async def model(self) -> dict[str, Any]:
        """The client's view: text, version, synced, and whether the editor matches the model."""
        result: dict[str, Any] = await self.page.evaluate(
            """() => {
                const s = window.cowriteApp.session;
                const v = window.cowriteApp.view;
                if (!s || !v) return null;
                const text = s.value("text:body") || "";
                return {text, editor: v.state.doc.toString(), version: s.version,
                        synced: s.synced, joined: s.joined,
                        status: window.cowriteApp.client.status};
            }"""
        )
        return result

    async def open_doc(self, base_url: str, doc: str) -> None:
        await self.page.goto(f"{base_url}/#/d/{doc}")
        await self.wait_editable()

    async def wait_editable(self) -> None:
        await self.page.wait_for_selector(".cm-content[contenteditable=true]", timeout=15_000)

    async def focus_editor(self) -> None:
        await self.page.click(".cm-content")

    async def set_selection(self, anchor: int, head: int | None = None) -> None:
        """Put the editor's selection at UTF-16 offsets (as a user click would), clamped to the
        text as it is when the page runs this (the other person may have deleted meanwhile)."""
        head = anchor if head is None else head
        await self.page.evaluate(
            """([a, h]) => { const v = window.cowriteApp.view; v.focus();
                const n = v.state.doc.length;
                v.dispatch({selection: {anchor: Math.min(a, n), head: Math.min(h, n)},
                            userEvent: 'select'}); }""",
            [anchor, head],
        )

    async def caret_to_code_point(self, index: int) -> None:
        """Put the caret before code point ``index % (length + 1)`` of the text as it is now."""
        await self.page.evaluate(
            """(i) => { const v = window.cowriteApp.view; v.focus();
                const t = v.state.doc.toString(); const stops = [0]; let u = 0;
                for (const ch of t) { u += ch.length; stops.push(u); }
                const anchor = stops[i % stops.length];
                v.dispatch({selection: {anchor}, userEvent: 'select'}); }""",
            index,
        )

    async def type(self, text: str, delay: float = 0) -> None:
        await self.page.keyboard.type(text, delay=delay)

    async def screenshot(self, name: str, *, full_page: bool = False) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / name
        await self.page.screenshot(path=str(path), full_page=full_page)
        return path


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 15.0, interval: float = 0.05
) -> None:
    """Poll ``check`` until it returns True; AssertionError after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if await check():
            return
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def converged(server: WebServer, doc: str, people: list[Person], timeout: float = 20) -> str:
    """Wait until every person is joined, synced and shows the server's text; return that text."""
    last: list[Any] = []

    async def check() -> bool:
        if doc not in server.state.hub.rooms:
            return False
        expected = server.text(doc)
        models = [await p.model() for p in people]
        last[:] = [expected, models]
        return all(
            m is not None
            and m["joined"]
            and m["synced"]
            and m["text"] == expected
            and m["editor"] == expected
            for m in models
        )

    try:
        await eventually(check, timeout)
    except AssertionError:
        raise AssertionError(
            "no convergence: " + json.dumps(last, ensure_ascii=False, indent=1)[:4000]
        ) from None
    return server.text(doc)
