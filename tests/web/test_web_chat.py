"""Chat in the web editor, and user data (names, titles, messages) that tries to inject HTML."""

from __future__ import annotations

import json
from typing import Any

import pytest
import websockets
from web_harness import converged, eventually

pytestmark = pytest.mark.slow

EVIL_NAME = '<img src=x onerror="window.__xss=1">Mallory<script>window.__xss=2</script>'
EVIL_MESSAGES = [
    "<script>window.__xss = 3</script>",
    '<img src="x" onerror="window.__xss = 4">',
    "<b>bold?</b> & \"quotes\" & 'apostrophes' &amp; \u202eevil",
]
EVIL_TITLE = "<svg onload=window.__xss=5><img src=x onerror=window.__xss=6>"


async def no_injection(p: Any) -> None:
    """Nothing executed, and no element came out of user data."""
    assert await p.page.evaluate("typeof window.__xss") == "undefined"
    user_data = (
        "#chat-log img",
        "#chat-log script",
        "#people img",
        ".cm-content img:not(.cm-widgetBuffer)",
    )
    for selector in user_data:
        assert await p.page.locator(selector).count() == 0, selector
    assert await p.page.locator("#doc-view svg:not(.btn svg)").count() == 0


async def test_chat_history_live_messages_own_edits_and_deletes(server: Any, person: Any) -> None:
    await server.create("chat")
    ada = await person("Ada")
    await ada.open_doc(server.url, "chat")
    await ada.page.get_by_label("Message", exact=True).fill("Welcome, everyone")
    await ada.page.get_by_role("button", name="Send").click()
    await ada.page.locator("#chat-log li", has_text="Welcome, everyone").wait_for()

    # history on open
    grace = await person("Grace")
    await grace.open_doc(server.url, "chat")
    first = grace.page.locator("#chat-log li", has_text="Welcome, everyone")
    await first.wait_for()
    assert "Ada" in await first.inner_text()
    # only the author may edit or delete
    assert await first.get_by_role("button").count() == 0

    # live messages, both ways; Enter sends
    await grace.page.fill("#chat-input", "Hi Ada!")
    await grace.page.press("#chat-input", "Enter")
    await ada.page.locator("#chat-log li", has_text="Hi Ada!").wait_for()
    assert await grace.page.input_value("#chat-input") == ""

    # Grace edits her message, then deletes it
    mine = grace.page.locator("#chat-log li", has_text="Hi Ada!")
    await mine.get_by_role("button", name="Edit your message").click()
    box = grace.page.get_by_label("Edit message")
    await box.fill("Hi Ada! (edited)")
    await box.press("Enter")
    edited = ada.page.locator("#chat-log li", has_text="Hi Ada! (edited)")
    await edited.wait_for()
    assert "edited" in await edited.locator(".chat-time").inner_text()
    await (
        grace.page.locator("#chat-log li", has_text="(edited)")
        .get_by_role("button", name="Delete your message")
        .click()
    )
    await ada.page.locator("#chat-log li.deleted", has_text="Message deleted").wait_for()
    assert await ada.page.locator("#chat-log li", has_text="Hi Ada!").count() == 0
    texts = await ada.page.locator("#chat-log .chat-text").all_inner_texts()
    assert texts == ["Welcome, everyone", "Message deleted"]


async def test_names_titles_and_messages_are_shown_as_text_never_run(
    server: Any, person: Any
) -> None:
    await server.create("xss")
    ada = await person("Ada")
    mallory = await person(EVIL_NAME, color="red;background:url(http://127.0.0.1:9/steal)")
    for p in (ada, mallory):
        await p.open_doc(server.url, "xss")

    # the name, in the people list and on the caret flag
    await mallory.focus_editor()
    await mallory.type("<i>typed</i> <img src=x onerror=window.__xss=7>")
    await converged(server, "xss", [ada, mallory])
    assert await ada.text() == "<i>typed</i> <img src=x onerror=window.__xss=7>"
    person_row = ada.page.locator("#people li", has_text="Mallory")
    await person_row.wait_for()
    assert EVIL_NAME in await person_row.inner_text()
    flag = ada.page.locator(".cm-remote-label")
    await flag.wait_for()
    assert await flag.inner_text() == EVIL_NAME

    # messages
    for text in EVIL_MESSAGES:
        await mallory.page.fill("#chat-input", text)
        await mallory.page.press("#chat-input", "Enter")
    await eventually(lambda: _count(ada, "#chat-log .chat-text", len(EVIL_MESSAGES)))
    assert await ada.page.locator("#chat-log .chat-text").all_inner_texts() == EVIL_MESSAGES
    authors = await ada.page.locator("#chat-log .chat-author").all_inner_texts()
    assert authors == [EVIL_NAME] * len(EVIL_MESSAGES)

    # the title, live, and in the document list
    await mallory.page.fill("#doc-title", EVIL_TITLE)
    await eventually(lambda: _input(ada, "#doc-title", EVIL_TITLE))
    assert await ada.page.title() == f"{EVIL_TITLE} · cowrite"
    for p in (ada, mallory):
        await no_injection(p)

    await mallory.page.wait_for_timeout(1200)  # the list's title is saved after a pause
    await ada.page.get_by_role("link", name="All documents", exact=True).click()
    item = ada.page.locator("#doc-list li", has_text=EVIL_TITLE)
    await item.wait_for()
    assert await ada.page.locator("#doc-list img, #doc-list svg").count() == 0
    assert await ada.page.evaluate("typeof window.__xss") == "undefined"
    # an invalid color never reaches a style: Mallory gets a palette color
    swatch = await mallory.page.locator("#my-swatch").evaluate("e => e.getAttribute('style')")
    assert "url(" not in (swatch or "")


async def test_a_hostile_protocol_client_cannot_style_or_script_the_page(
    server: Any, person: Any
) -> None:
    """Names and colors straight from the protocol (no page to validate them)."""
    await server.create("raw")
    ada = await person("Ada")
    await ada.open_doc(server.url, "raw")
    await ada.focus_editor()
    await ada.type("some text here")
    await converged(server, "raw", [ada])
    evil_color = "red;background-image:url(http://127.0.0.1:9/track)"
    async with websockets.connect(server.ws_url) as ws:
        user = {"name": '"><img src=x onerror=window.__xss=8>', "color": evil_color}
        await ws.send(json.dumps({"type": "hello", "client_id": "raw-evil", "user": user}))
        await ws.send(json.dumps({"type": "join", "doc": "raw"}))
        version = server.room("raw").version
        cursor = {"node": "text:body", "anchor": 0, "head": 4, "version": version}
        await ws.send(json.dumps({"type": "presence", "doc": "raw", "cursor": cursor}))
        await ws.send(json.dumps({"type": "chat_send", "doc": "raw", "text": "<img src=x>"}))
        flag = ada.page.locator(".cm-remote-label")
        await flag.wait_for()
        assert await flag.inner_text() == user["name"]
        await ada.page.locator("#chat-log li", has_text="<img src=x>").wait_for()
        styles = await ada.page.evaluate(
            """() => [...document.querySelectorAll(
                    '.cm-remote-caret, .cm-remote-selection, .avatar'
                )].map(e => e.getAttribute('style'))"""
        )
        assert styles and all("url(" not in (s or "") for s in styles), styles
        await no_injection(ada)


async def _count(p: Any, selector: str, n: int) -> bool:
    return bool(await p.page.locator(selector).count() == n)


async def _input(p: Any, selector: str, want: str) -> bool:
    return bool(await p.page.input_value(selector) == want)
