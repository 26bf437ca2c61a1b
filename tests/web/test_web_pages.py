"""The document list (create, open, share, delete), keyboard use, narrow screens, screenshots."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from web_harness import converged, eventually

pytestmark = pytest.mark.slow


async def test_create_open_share_and_delete_documents(server: Any, person: Any) -> None:
    ada = await person("Ada")
    await ada.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = ada.page
    await page.goto(server.url + "/")
    await page.get_by_text("No documents yet").wait_for()

    # create with a title: the editor opens with that title
    await page.get_by_label("Title of the new document").fill("Launch plan 🚀")
    await page.get_by_role("button", name="Create document").click()
    await page.wait_for_url("**/#/d/launch-plan-*")
    await ada.wait_editable()
    doc_id = page.url.split("#/d/")[1]
    await eventually(lambda: _input(ada, "#doc-title", "Launch plan 🚀"))
    await ada.type("Ship it.")
    await converged(server, doc_id, [ada])
    assert server.room(doc_id).doc.to_json() == {"body": "Ship it.", "title": "Launch plan 🚀"}

    # the share link opens the same document for someone else
    await page.get_by_role("button", name="Copy link").click()
    await page.get_by_text("Link copied").wait_for()
    link = await page.evaluate("navigator.clipboard.readText()")
    assert link == f"{server.url}/#/d/{doc_id}"
    grace = await person("Grace")
    await grace.page.goto(link)
    await grace.wait_editable()
    await eventually(lambda: _text(grace, "Ship it."))

    # the list shows it; delete asks for confirmation, and the open editor is told
    await page.get_by_role("link", name="All documents", exact=True).click()
    item = page.locator("#doc-list li", has_text="Launch plan 🚀")
    await item.wait_for()
    await item.get_by_role("button", name="Delete Launch plan 🚀").click()
    await item.get_by_role("button", name="Cancel").click()
    assert await item.count() == 1
    await item.get_by_role("button", name="Delete Launch plan 🚀").click()
    await item.get_by_role("button", name="Confirm: delete Launch plan 🚀").click()
    await page.get_by_text("No documents yet").wait_for()
    await grace.page.get_by_text("This document was deleted").wait_for()
    await grace.page.wait_for_url(f"{server.url}/#/")
    async with httpx.AsyncClient() as http:
        listed = (await http.get(f"{server.url}/api/documents")).json()["documents"]
    assert listed == []

    # a link to a document that does not exist
    await grace.page.goto(f"{server.url}/#/d/no-such-doc")
    await grace.page.get_by_role("heading", name="Document not found").wait_for()


async def test_keyboard_only_use(server: Any, person: Any) -> None:
    await server.create("keys", "Keyboard")
    ada = await person("Ada")
    page = ada.page
    await page.goto(server.url + "/")
    link = page.get_by_role("link", name="Keyboard")
    await link.wait_for()
    # Tab order: skip link, brand, name, new title, its kind (Text / Rich text: one radio group),
    # create button, then the documents
    order = []
    for _ in range(8):
        await page.keyboard.press("Tab")
        order.append(
            await page.evaluate(
                "document.activeElement.getAttribute('aria-label') || "
                "document.activeElement.textContent.trim() || document.activeElement.id"
            )
        )
    assert order[:8] == [
        "Skip to content",
        "cowrite home",
        "my-name",
        "new-title",
        "kind-text",
        "Create document",
        "doc-search",
        "Keyboard",
    ], order
    await page.keyboard.press("Enter")  # opens the document
    await ada.wait_editable()
    # the editor has focus on open: type, undo with the keyboard
    await page.keyboard.type("typed with keys")
    await converged(server, "keys", [ada])
    # Tab leaves the editor (no focus trap) and reaches the collaboration panel
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.id") == "chat-input"
    await page.keyboard.type("hello by keyboard")
    await page.keyboard.press("Enter")
    await page.locator("#chat-log li", has_text="hello by keyboard").wait_for()
    # every control has an accessible name
    unnamed = await page.evaluate(
        """() => [...document.querySelectorAll('button, input, textarea, a[href]')]
            .filter(e => e.offsetParent !== null)
            .filter(e => !(e.getAttribute('aria-label') || e.labels?.length
                           || e.textContent.trim()))
            .map(e => e.outerHTML)"""
    )
    assert unnamed == []


async def test_screenshots_of_two_collaborators(server: Any, person: Any) -> None:
    """Pictures for people to look at (test-artifacts/, git-ignored)."""
    await server.create("tour", "Team notes")
    ada = await person("Ada Lovelace", color="#e5484d")
    grace = await person("Grace Hopper", color="#0090ff")
    for p in (ada, grace):
        await p.open_doc(server.url, "tour")
    await ada.page.fill("#doc-title", "Team notes")
    await ada.focus_editor()
    await ada.type(
        "Weekly sync 🗓️\n\nAgenda\n- Release 1.0 status\n- Offline editing demo ✈️\n"
        "- Questions\n\nNotes\n"
    )
    await converged(server, "tour", [ada, grace])
    await grace.focus_editor()
    await grace.page.keyboard.press("Control+End")
    await grace.type("Grace: the bundle is built and checked in CI 👍")
    await ada.set_selection(9, 23)
    for p, text in ((ada, "Can we demo offline mode?"), (grace, "Yes, I'll share my screen.")):
        await p.page.fill("#chat-input", text)
        await p.page.press("#chat-input", "Enter")
    await converged(server, "tour", [ada, grace])
    await grace.page.locator("#chat-log li", has_text="share my screen").wait_for()
    await ada.page.locator("#chat-log li", has_text="share my screen").wait_for()
    await grace.page.locator(".cm-remote-selection").first.wait_for()
    await ada.page.locator(".cm-remote-label", has_text="Grace Hopper").wait_for()
    await asyncio.sleep(0.3)
    await ada.screenshot("editor-ada.png")
    await grace.screenshot("editor-grace.png")

    narrow = await person("Katherine", viewport=(390, 844))
    await narrow.open_doc(server.url, "tour")
    await narrow.page.locator(".cm-remote-label").first.wait_for()
    await narrow.screenshot("editor-narrow.png", full_page=True)
    # nothing sticks out sideways on a phone
    overflow = await narrow.page.evaluate(
        "document.documentElement.scrollWidth > document.documentElement.clientWidth"
    )
    assert not overflow
    await narrow.page.goto(server.url + "/")
    await narrow.page.locator("#doc-list li").first.wait_for()
    await narrow.screenshot("home-narrow.png")
    await ada.page.goto(server.url + "/")
    await ada.page.locator("#doc-list li").first.wait_for()
    await ada.screenshot("home.png")


async def _input(p: Any, selector: str, want: str) -> bool:
    return bool(await p.page.input_value(selector) == want)


async def _text(p: Any, want: str) -> bool:
    return bool(await p.text() == want)
