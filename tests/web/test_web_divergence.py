"""The JavaScript client in a real browser finds out when its copy of the text differs from the
server's (a ``checksum`` after an edit), tells the server and resyncs; the editor ends up
showing exactly the server's text."""

from __future__ import annotations

from typing import Any

import pytest
from web_harness import converged, eventually

from cowrite.client import connect

pytestmark = pytest.mark.slow


async def test_a_corrupted_browser_copy_is_detected_reported_and_repaired(
    server: Any, person: Any
) -> None:
    await server.create("div")
    ada = await person("Ada")
    await ada.open_doc(server.url, "div")
    await ada.focus_editor()
    await ada.type("hello 😀 world")
    await converged(server, "div", [ada])
    await ada.page.evaluate(
        """() => { window.seenDiverged = [];
            window.cowriteApp.session.on("diverged", (d) => window.seenDiverged.push(d)); }"""
    )
    # the poke: a bug that garbled the client's copy of the server state (the view is intact,
    # so the editor still matches the model and only the checksum can tell)
    await ada.page.evaluate(
        """() => window.cowriteApp.session.state.server.set("text:body", "hellX 😀 world?")"""
    )

    metrics = server.state.metrics.registry

    def reported() -> float:
        return float(metrics.get_sample_value("cowrite_thin_divergences_total") or 0.0)

    assert reported() == 0
    async with connect(server.ws_url, doc="div", name="Robot") as robot:
        await robot.synced()
        robot.text("body").insert(0, ">> ")  # a remote edit: the browser gets it and a checksum
        await robot.synced()
        version = robot.version

        async def browser_noticed() -> bool:
            seen = await ada.page.evaluate("window.seenDiverged")
            return bool(seen == [{"node": "text:body", "version": version}])

        await eventually(browser_noticed)
        text = await converged(server, "div", [ada])
        assert text == ">> hello 😀 world"
        assert await ada.page.evaluate("window.cowriteApp.session.state.divergences") == 1

        async def server_counted() -> bool:
            return reported() == 1

        await eventually(server_counted)
        # the repaired client edits on normally
        await ada.page.keyboard.press("Control+End")
        await ada.type("!")
        assert await converged(server, "div", [ada]) == ">> hello 😀 world!"
        assert reported() == 1
