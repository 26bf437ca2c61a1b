"""Losing the server and getting it back: typing goes on, nothing is lost or doubled."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import pytest
from web_harness import converged, eventually

pytestmark = pytest.mark.slow

# Chromium itself logs failed WebSocket handshakes while the server is away: not page errors
NETWORK_NOISE = ("WebSocket connection to", "net::ERR_")


def occurrences(text: str, pieces: list[str]) -> dict[str, int]:
    return {piece: text.count(piece) for piece in pieces}


async def status(p: Any) -> str:
    result: str = await p.page.evaluate("window.cowriteApp.client.status")
    return result


async def wait_status(p: Any, want: str, timeout: float = 15) -> None:
    async def check() -> bool:
        return await status(p) == want

    await eventually(check, timeout)


async def test_offline_browser_keeps_typing_and_merges_on_reconnect(
    server: Any, person: Any
) -> None:
    await server.create("trip")
    ada = await person("Ada", allow_console=NETWORK_NOISE)
    grace = await person("Grace", allow_console=NETWORK_NOISE)
    for p in (ada, grace):
        await p.open_doc(server.url, "trip")
    await ada.focus_editor()
    await ada.type("Packing list.\n")
    await converged(server, "trip", [ada, grace])

    await grace.context.set_offline(True)
    await wait_status(grace, "offline")
    await grace.page.locator("#connection", has_text="Offline").wait_for()
    await grace.focus_editor()
    await grace.page.keyboard.press("Control+End")
    await grace.type("[tent] [stove] ")
    await grace.set_selection(0)
    await grace.type("[grace was offline] ")
    unsaved = grace.page.locator("#save-state[data-state=unsaved]")
    await unsaved.wait_for()
    assert "sync when you are back online" in await unsaved.inner_text()
    await grace.screenshot("editor-offline.png")

    await ada.page.keyboard.press("Control+End")
    await ada.type("[map] [boots] ")
    await converged(server, "trip", [ada])
    assert "[tent]" not in server.text("trip")

    await grace.context.set_offline(False)
    text = await converged(server, "trip", [ada, grace])
    pieces = ["Packing list.\n", "[tent]", "[stove]", "[grace was offline]", "[map]", "[boots]"]
    assert occurrences(text, pieces) == dict.fromkeys(pieces, 1), text
    assert text.startswith("[grace was offline] Packing list.\n")
    await grace.page.locator("#save-state", has_text="All changes saved").wait_for()
    await grace.page.locator("#connection", has_text="Connected").wait_for()


async def test_server_restart_everyone_keeps_typing_and_converges(server: Any, person: Any) -> None:
    await server.create("restart")
    ada = await person("Ada", allow_console=NETWORK_NOISE)
    grace = await person("Grace", allow_console=NETWORK_NOISE)
    for p in (ada, grace):
        await p.open_doc(server.url, "restart")
    await ada.focus_editor()
    await ada.type("line one\n")
    await converged(server, "restart", [ada, grace])

    await server.stop()
    for p in (ada, grace):
        await eventually(lambda p=p: _not_connected(p), 10)
    await ada.page.keyboard.press("Control+End")
    await ada.type("ada while down ")
    await grace.focus_editor()
    await grace.set_selection(0)
    await grace.type("grace while down ")
    await asyncio.sleep(0.5)
    await server.start()
    text = await converged(server, "restart", [ada, grace], timeout=30)
    pieces = ["line one\n", "ada while down ", "grace while down "]
    assert occurrences(text, pieces) == dict.fromkeys(pieces, 1), text
    assert Counter(text) == Counter("".join(pieces))


async def _not_connected(p: Any) -> bool:
    return await status(p) != "connected"


class AckDropper:
    """Routes a page's WebSocket through Playwright, dropping the server's acks while ``on``."""

    def __init__(self) -> None:
        self.on = False
        self.dropped = 0
        self.routes: list[Any] = []
        self.log: list[str] = []

    async def handle(self, ws: Any) -> None:
        self.routes.append(ws)
        upstream = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            self.log.append(f"S> {message!s:.400}")
            if self.on and isinstance(message, str):
                data = json.loads(message)
                msgs = data if isinstance(data, list) else [data]
                kept = [m for m in msgs if m.get("type") != "ack"]
                self.dropped += len(msgs) - len(kept)
                if not kept:
                    return
                message = json.dumps(kept if isinstance(data, list) else kept[0])
            ws.send(message)

        upstream.on_message(from_server)

        def from_page(message: str | bytes) -> None:
            self.log.append(f"C> {message!s:.400}")
            upstream.send(message)

        ws.on_message(from_page)

    async def cut(self) -> None:
        """Close the page's current connection (as a network failure would)."""
        await self.routes[-1].close(code=4000, reason="cut by the test")


async def test_lost_ack_is_recognised_in_the_catch_up(server: Any, person: Any) -> None:
    """The edit was applied but its ack never came: the rejoin's catch-up acknowledges it."""
    await server.create("ack")
    dropper = AckDropper()
    ada = await person("Ada", allow_console=NETWORK_NOISE)
    await ada.page.route_web_socket("**/ws", dropper.handle)
    await ada.open_doc(server.url, "ack")
    await ada.focus_editor()
    await ada.type("first ")
    await converged(server, "ack", [ada])

    dropper.on = True
    await ada.type("s")  # alone: how many keystrokes one batch takes is the browser's timing
    await eventually(lambda: _server_has(server, "ack", "first s"))
    await eventually(lambda: _dropped(dropper))
    await ada.type("econd ")  # waits behind the batch in flight, whose ack was dropped
    model = await ada.model()
    assert not model["synced"]  # the edit is applied, but Ada does not know it yet
    assert server.text("ack") != "first second "
    await ada.type("third ")

    dropper.on = False
    await dropper.cut()
    text = await converged(server, "ack", [ada])
    assert text == "first second third "


async def test_offline_longer_than_the_history_merges_with_a_snapshot(
    make_server: Any, person: Any
) -> None:
    """Grace's in-flight batch was applied (its ack lost), she went offline and kept typing while
    Ada made more edits than the server keeps: Grace rejoins from a snapshot, merges three ways,
    resends the batch (acknowledged as already applied) and nothing is lost or doubled."""
    server = make_server(edit_log_capacity=2)
    await server.start()
    try:
        await _snapshot_merge(server, person, restart=False)
    finally:
        await server.stop()


async def test_lost_ack_then_server_restart_applies_the_batch_once(
    server: Any, person: Any
) -> None:
    await _snapshot_merge(server, person, restart=True)


async def _snapshot_merge(server: Any, person: Any, *, restart: bool) -> None:
    await server.create("merge")
    dropper = AckDropper()
    ada = await person("Ada", allow_console=NETWORK_NOISE)
    grace = await person("Grace", allow_console=NETWORK_NOISE)
    await grace.page.route_web_socket("**/ws", dropper.handle)
    for p in (ada, grace):
        await p.open_doc(server.url, "merge")
    await ada.focus_editor()
    await ada.type("The middle.")
    await converged(server, "merge", [ada, grace])

    dropper.on = True
    await grace.focus_editor()
    await grace.page.keyboard.press("Control+End")
    await grace.type(" [grace in flight]")
    await eventually(lambda: _server_has(server, "merge", "The middle. "))
    await eventually(lambda: _dropped(dropper))
    await grace.context.set_offline(True)
    await wait_status(grace, "offline")
    await grace.type(" [grace offline]")

    await ada.page.keyboard.press("Control+Home")
    for word in ("[ada", " one]", " "):  # one version each at least: more than the server keeps
        await ada.type(word)
        await converged(server, "merge", [ada])
    if restart:
        await server.stop()
        await server.start()
    for word in ("[ada", " two]", " "):
        await ada.type(word)
        await converged(server, "merge", [ada], timeout=30)
    old = await grace.model()

    dropper.on = False
    await grace.context.set_offline(False)
    text = await converged(server, "merge", [ada, grace], timeout=30)
    pieces = ["[ada one] ", "[ada two] ", "The middle.", " [grace in flight]", " [grace offline]"]
    assert occurrences(text, pieces) == dict.fromkeys(pieces, 1), text
    assert text == "[ada one] [ada two] The middle. [grace in flight] [grace offline]"
    if not restart:
        joins = [m for m in dropper.log if m.startswith("S>") and '"snapshot"' in m]
        assert len(joins) == 2, "the rejoin did not take a snapshot"
        assert old["version"] < server.room("merge").log.oldest


async def _server_has(server: Any, doc: str, piece: str) -> bool:
    return doc in server.state.hub.rooms and piece in server.text(doc)


async def _dropped(dropper: AckDropper) -> bool:
    return dropper.dropped > 0
