"""Undo in the page (web/src/undo.js): a restore never makes Ctrl+Z duplicate the document, a
restore made from the page is one undo step, and ordinary typing still undoes and redoes."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from web_harness import converged, eventually

pytestmark = pytest.mark.slow


async def rest(server: Any, method: str, path: str, body: Any = None) -> Any:
    async with httpx.AsyncClient(base_url=f"{server.url}/api", timeout=10) as http:
        res = await http.request(method, path, json=body)
        res.raise_for_status()
        if res.headers.get("content-type", "").startswith("application/json"):
            return res.json()
        return res.text


async def latest_version(server: Any, doc: str) -> int:
    page = await rest(server, "GET", f"/documents/{doc}/versions")
    return int(page["versions"][-1]["id"])


async def server_text(server: Any, doc: str) -> str:
    """The document's text through REST (what any reader gets)."""
    text: str = await rest(server, "GET", f"/documents/{doc}/text/body")
    return text


async def settle(server: Any, doc: str, people: list[Any]) -> str:
    text = await converged(server, doc, people)
    assert await server_text(server, doc) == text
    return text


async def test_undo_after_a_rest_restore_never_duplicates(server: Any, person: Any) -> None:
    await server.create("undo-restore")
    ada = await person("Ada")
    grace = await person("Grace")
    for p in (ada, grace):
        await p.open_doc(server.url, "undo-restore")
    await ada.focus_editor()
    await ada.type("The quick brown fox. ")
    await settle(server, "undo-restore", [ada, grace])
    good = await latest_version(server, "undo-restore")

    # select all, delete; someone restores the older version through REST
    await ada.page.keyboard.press("Control+a")
    await ada.page.keyboard.press("Backspace")
    assert await settle(server, "undo-restore", [ada, grace]) == ""
    out = await rest(server, "POST", "/documents/undo-restore/restore", {"version": good})
    assert out["edits"] == 1
    assert await settle(server, "undo-restore", [ada, grace]) == "The quick brown fox. "

    # Ctrl+Z would re-insert the deleted text (a copy of what the restore brought back): no
    await ada.focus_editor()
    await ada.page.keyboard.press("Control+z")
    await asyncio.sleep(0.3)
    assert await settle(server, "undo-restore", [ada, grace]) == "The quick brown fox. "
    await ada.page.click("#undo-btn")
    await asyncio.sleep(0.3)
    assert await settle(server, "undo-restore", [ada, grace]) == "The quick brown fox. "

    # ordinary typing still undoes and redoes
    await ada.page.keyboard.press("Control+End")
    await ada.type("Jumps.")
    assert await settle(server, "undo-restore", [ada, grace]) == "The quick brown fox. Jumps."
    await ada.page.keyboard.press("Control+z")
    assert await settle(server, "undo-restore", [ada, grace]) == "The quick brown fox. "
    await ada.page.keyboard.press("Control+Shift+Z")
    assert await settle(server, "undo-restore", [ada, grace]) == "The quick brown fox. Jumps."
    await ada.page.keyboard.press("Control+z")
    await ada.page.keyboard.press("Control+y")
    assert await settle(server, "undo-restore", [ada, grace]) == "The quick brown fox. Jumps."
    assert not ada.errors and not grace.errors


async def test_a_restore_from_the_page_is_one_undo_step(server: Any, person: Any) -> None:
    await server.create("undo-own-restore")
    ada = await person("Ada")
    grace = await person("Grace")
    for p in (ada, grace):
        await p.open_doc(server.url, "undo-own-restore")
    await ada.focus_editor()
    await ada.type("first draft")
    await settle(server, "undo-own-restore", [ada, grace])
    draft = await latest_version(server, "undo-own-restore")
    await ada.page.keyboard.press("Control+a")
    await ada.type("second")
    await settle(server, "undo-own-restore", [ada, grace])

    out = await ada.page.evaluate(f"window.cowriteApp.restore({draft})")
    assert out["edits"] == 1
    assert await settle(server, "undo-own-restore", [ada, grace]) == "first draft"

    async def undo_reached(want: str, key: str) -> None:
        await ada.page.keyboard.press(key)
        assert await settle(server, "undo-own-restore", [ada, grace]) == want

    await ada.focus_editor()
    await undo_reached("second", "Control+z")  # the restore, as one step, for everyone
    await undo_reached("first draft", "Control+Shift+Z")
    await undo_reached("second", "Control+z")
    await undo_reached("first draft", "Control+z")  # then Ada's own typing, as she typed it

    async def no_duplicate() -> bool:
        text = await server_text(server, "undo-own-restore")
        return text.count("first draft") <= 1 and text.count("second") <= 1

    await eventually(no_duplicate, 5)
    assert not ada.errors and not grace.errors


async def test_a_restore_from_the_history_panel_is_one_undo_step(server: Any, person: Any) -> None:
    await server.create("undo-panel")
    ada = await person("Ada")
    await ada.open_doc(server.url, "undo-panel")
    await ada.focus_editor()
    await ada.type("first draft")
    await settle(server, "undo-panel", [ada])
    draft = await latest_version(server, "undo-panel")
    await ada.page.keyboard.press("Control+a")
    await ada.type("second")
    await settle(server, "undo-panel", [ada])

    await ada.page.click("#history-btn")
    await ada.page.click(f"#history-v-{draft}")
    await ada.page.click("#history-restore")
    assert await settle(server, "undo-panel", [ada]) == "first draft"
    await ada.page.focus("#history-list")
    await ada.page.keyboard.press("Escape")
    await ada.page.wait_for_selector("#history", state="hidden")

    await ada.focus_editor()
    await ada.page.keyboard.press("Control+z")  # the restore, as one step
    assert await settle(server, "undo-panel", [ada]) == "second"
    await ada.page.keyboard.press("Control+Shift+Z")
    assert await settle(server, "undo-panel", [ada]) == "first draft"
    assert not ada.errors
