"""Emoji and other non-BMP text (code points on the wire, UTF-16 in the browser), and a Python
client editing the same document as a browser."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
import websockets
from web_harness import converged, eventually

pytestmark = pytest.mark.slow

EMOJI = ["👍🏽", "👨‍👩‍👧", "🇫🇷", "𝔘𝔫𝔦", "😀", "ß", "é", "中文", "🏳️‍🌈", "🧑🏿‍🚀"]


async def test_emoji_heavy_editing_converges(server: Any, person: Any) -> None:
    await server.create("emoji")
    ada = await person("Ada")
    grace = await person("Grace")
    for p in (ada, grace):
        await p.open_doc(server.url, "emoji")
        await p.focus_editor()
    await ada.type("😀😀😀 start 🇫🇷 ")
    await converged(server, "emoji", [ada, grace])

    async def session(p: Any, words: list[str]) -> None:
        for i, word in enumerate(words):
            await p.caret_to_code_point(i * 7)  # between two code points, as a click would be
            await p.type(word)
            if i % 3 == 2:
                await p.page.keyboard.press("Backspace")  # deletes a whole emoji/cluster
            if i % 4 == 3:
                await p.page.keyboard.press("Delete")

    await asyncio.gather(session(ada, EMOJI[:6]), session(grace, [*EMOJI[4:], "x🎉y"]))
    text = await converged(server, "emoji", [ada, grace])
    # the browsers and the server agree code point for code point
    lengths = await ada.page.evaluate("[...window.cowriteApp.view.state.doc.toString()].length")
    assert lengths == len(text)
    assert "\ud83d" not in text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")

    # a remote caret after emoji lands on the right character
    await ada.set_selection(0)
    await ada.page.keyboard.press("Control+End")
    await ada.type("🐙")
    text = await converged(server, "emoji", [ada, grace])
    assert text.endswith("🐙")
    want = len(text.encode("utf-16-le")) // 2  # UTF-16 length: where the caret is in the browser

    async def caret_at_end() -> bool:
        pos = await grace.page.evaluate(
            "window.cowriteApp.view.posAtDOM(document.querySelector('.cm-remote-caret'))"
        )
        return bool(pos == want)

    await eventually(caret_at_end, 10)


async def test_a_python_client_and_a_browser_edit_together(server: Any, person: Any) -> None:
    await server.create("mixed")
    ada = await person("Ada")
    await ada.open_doc(server.url, "mixed")
    await ada.focus_editor()
    await ada.type("from the browser 🌍 ")
    await converged(server, "mixed", [ada])

    try:
        from cowrite.client import connect
    except ImportError:  # pragma: no cover - the SDK is optional here
        connect = None

    if connect is not None:
        async with connect(server.ws_url, doc="mixed", name="Robot") as doc:
            await doc.synced()
            await ada.page.locator("#people li", has_text="Robot").wait_for()
            body = doc.text("body")
            typing = asyncio.create_task(ada.type("and more from the browser ✨ "))
            for i in range(10):
                body.insert(0 if i % 2 else len(str(body)), f"<py{i}🐍>")
                await asyncio.sleep(0.03)
            await typing
            body.insert(len(str(body)), "windows\r\nline")  # "\r" is one character everywhere
            await doc.synced()
            text = await converged(server, "mixed", [ada])

            async def python_caught_up() -> bool:
                return str(doc.text("body")) == server.text("mixed")

            await eventually(python_caught_up)
    else:
        text = await _raw_python_client(server, ada)
    for i in range(10):
        assert text.count(f"<py{i}🐍>") == 1
    assert text.count("from the browser 🌍 ") == 1
    assert text.count("and more from the browser ✨ ") == 1
    assert text.count("windows\r\nline") == 1


async def _raw_python_client(server: Any, ada: Any) -> str:
    """A bare protocol client (one edit in flight, the server rebases it): a stand-in for the
    Python SDK when it is not importable."""
    async with websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "hello", "client_id": "py", "user": {"name": "Robot"}}))
        await ws.send(json.dumps({"type": "join", "doc": "mixed"}))
        version = None
        inbox: list[dict[str, Any]] = []

        async def expect(kind: str) -> dict[str, Any]:
            nonlocal version
            while True:
                while inbox:
                    msg = inbox.pop(0)
                    if msg["type"] in ("remote", "ack", "joined"):
                        version = msg["version"]
                    if msg["type"] == "ping":
                        await ws.send(json.dumps({"type": "pong", "nonce": msg["nonce"]}))
                    if msg["type"] == kind:
                        return msg
                data = json.loads(await ws.recv())
                inbox.extend(data if isinstance(data, list) else [data])

        await expect("joined")
        await ada.page.locator("#people li", has_text="Robot").wait_for()
        typing = asyncio.create_task(ada.type("and more from the browser ✨ "))
        for i in range(10):
            edit = [f"<py{i}🐍>"]
            op = {"type": "seq", "node": "text:body", "edit": edit}
            msg = {"type": "edit", "doc": "mixed", "edit_id": f"e{i}", "version": version}
            await ws.send(json.dumps({**msg, "ops": [op]}))
            await expect("ack")
        await typing
        op = {"type": "seq", "node": "text:body", "edit": ["windows\r\nline"]}
        msg = {"type": "edit", "doc": "mixed", "edit_id": "crlf", "version": version}
        await ws.send(json.dumps({**msg, "ops": [op]}))
        await expect("ack")
        return await converged(server, "mixed", [ada])
