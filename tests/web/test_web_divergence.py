"""The JavaScript client in a real browser finds out when its copy of the text differs from the
server's, tells the server and resyncs; the editor ends up showing exactly the server's text.
The server's default schedule is used: after one small edit, the checksum comes once the room
is quiet (``rooms/checksum.py``). (The page logs a divergence as a console error, so every other
browser test fails on one.)"""

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
    ada = await person("Ada", allow_console=("differed from the server",))
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
        robot.text("body").insert(0, ">> ")  # a remote edit, then (room quiet) a checksum
        await robot.synced()
        version = robot.version
        assert version is not None

        async def browser_noticed() -> bool:
            # at the checksum after the robot's edit (or, on a slow machine, at the one that
            # followed Ada's own typing if that came after the poke)
            seen = await ada.page.evaluate("window.seenDiverged")
            return len(seen) == 1 and seen[0]["node"] == "text:body"

        await eventually(browser_noticed)
        assert (await ada.page.evaluate("window.seenDiverged"))[0]["version"] <= version
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
