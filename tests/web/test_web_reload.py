"""A reload does not lose unacknowledged edits: they wait in IndexedDB and are resent, exactly
once, when the server is reachable again."""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_web_offline import NETWORK_NOISE, occurrences, wait_status
from web_harness import Person, converged, eventually

pytestmark = pytest.mark.slow


class Gate:
    """A page's WebSocket, routed through Playwright: while ``blocked`` the server is unreachable
    (the connection is closed at once, nothing reaches the server); while ``drop_acks`` the
    server's acks are lost on the way."""

    def __init__(self) -> None:
        self.blocked = False
        self.drop_acks = False
        self.dropped = 0

    async def handle(self, ws: Any) -> None:
        if self.blocked:
            await ws.close(code=4000, reason="unreachable (test)")
            return
        upstream = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            if self.drop_acks and isinstance(message, str):
                data = json.loads(message)
                msgs = data if isinstance(data, list) else [data]
                kept = [m for m in msgs if m.get("type") != "ack"]
                self.dropped += len(msgs) - len(kept)
                if not kept:
                    return
                message = json.dumps(kept if isinstance(data, list) else kept[0])
            ws.send(message)

        upstream.on_message(from_server)
        ws.on_message(upstream.send)


async def test_edits_made_offline_survive_a_reload_and_arrive_once(
    server: Any, person: Any
) -> None:
    await _reload_while_away(server, person, others_type=False)


async def test_a_reload_after_more_edits_than_the_server_keeps(
    make_server: Any, person: Any
) -> None:
    """While Grace is away Ada makes more edits than the server's history holds: the restored
    state rejoins by its version vector (or a snapshot), and still nothing is lost or doubled."""
    server = make_server(edit_log_capacity=2)
    await server.start()
    try:
        await _reload_while_away(server, person, others_type=True)
    finally:
        await server.stop()


async def _reload_while_away(server: Any, person: Any, *, others_type: bool) -> None:
    await server.create("keep")
    gate = Gate()
    ada = await person("Ada")
    grace = await person("Grace", allow_console=NETWORK_NOISE)
    await grace.page.route_web_socket("**/ws", gate.handle)
    for p in (ada, grace):
        await p.open_doc(server.url, "keep")
    await ada.focus_editor()
    await ada.type("Hello.")
    await converged(server, "keep", [ada, grace])

    # a batch the server applies but whose ack is lost, then edits made offline
    gate.drop_acks = True
    await grace.focus_editor()
    await grace.page.keyboard.press("Control+End")
    await grace.type(" [in flight]")
    # (the first batch holds as many keystrokes as the browser's timing puts in it; the rest
    # waits behind it, pending)
    await eventually(lambda: _dropped(gate))
    assert server.text("keep").startswith("Hello. ")  # applied, and Grace does not know it
    await grace.context.set_offline(True)
    await wait_status(grace, "offline")
    await grace.type(" [offline]")
    await grace.page.evaluate("window.cowriteApp.persisted?.()")

    if others_type:
        await ada.page.keyboard.press("Control+Home")
        for word in ("[ada", " one]", " "):  # a version each at least: more than the server keeps
            await ada.type(word)
            await converged(server, "keep", [ada])

    seen = (await grace.model())["version"]  # the last version Grace had from the server

    # reload while the server is still out of reach: the edits are there, typing goes on
    gate.blocked = True
    gate.drop_acks = False
    await grace.context.set_offline(False)
    await grace.page.reload()
    await eventually(lambda: _editor_shows(grace, "Hello. [in flight] [offline]"))
    await grace.focus_editor()
    await grace.page.keyboard.press("Control+End")
    await grace.type(" [after reload]")
    assert "[offline]" not in server.text("keep")

    # back: everything arrives, each piece once, and Ada sees it
    gate.blocked = False
    await grace.page.evaluate("window.cowriteApp.client.reconnectNow()")
    text = await converged(server, "keep", [ada, grace], timeout=30)
    pieces = ["Hello.", " [in flight]", " [offline]", " [after reload]"]
    assert occurrences(text, pieces) == dict.fromkeys(pieces, 1), text
    ada_part = "[ada one] " if others_type else ""
    assert text == ada_part + "Hello. [in flight] [offline] [after reload]"
    if others_type:
        assert seen < server.room("keep").log.oldest  # no longer in the server's history
    # once everything is acknowledged nothing is kept
    await grace.page.evaluate("window.cowriteApp.persisted?.()")
    await grace.page.reload()
    await grace.wait_editable()
    assert (await grace.model())["synced"] is True
    await converged(server, "keep", [ada, grace])


async def _dropped(gate: Gate) -> bool:
    return gate.dropped > 0


async def _editor_shows(p: Any, text: str) -> bool:
    shown: str | None = await p.page.evaluate("window.cowriteApp.view?.state.doc.toString()")
    return shown == text


async def test_edits_of_a_closed_tab_are_taken_over_by_the_next_one(
    server: Any, person: Any
) -> None:
    """Typed offline, tab closed: the next tab of that browser to open the document sends them."""
    await server.create("tabs")
    grace = await person("Grace", allow_console=NETWORK_NOISE)
    await grace.open_doc(server.url, "tabs")
    await grace.focus_editor()
    await grace.type("Hello.")
    await converged(server, "tabs", [grace])
    await grace.context.set_offline(True)
    await wait_status(grace, "offline")
    await grace.type(" [offline]")
    await grace.page.evaluate("window.cowriteApp.persisted?.()")
    later = Person("Grace again", grace.context, await grace.context.new_page())
    await grace.page.close()
    await grace.context.set_offline(False)
    await later.open_doc(server.url, "tabs")
    text = await converged(server, "tabs", [later], timeout=30)
    assert text == "Hello. [offline]"
    assert await later.text() == text
    assert [e for e in later.errors if not any(n in e for n in NETWORK_NOISE)] == []
