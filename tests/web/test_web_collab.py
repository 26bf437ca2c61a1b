"""Two (or three) people in real browsers editing one document through the web editor."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from typing import Any

import pytest
from web_harness import converged, eventually

pytestmark = pytest.mark.slow


async def test_typing_at_once_even_at_one_position_converges(server: Any, person: Any) -> None:
    await server.create("race")
    ada = await person("Ada")
    grace = await person("Grace")
    for p in (ada, grace):
        await p.open_doc(server.url, "race")
        await p.focus_editor()
    # both carets at 0 of an empty document: every keystroke races for the same position
    a_text, g_text = "alpha beta gamma delta ", "one two three four five "
    await asyncio.gather(ada.type(a_text), grace.type(g_text))
    text = await converged(server, "race", [ada, grace])
    assert Counter(text) == Counter(a_text + g_text)  # nothing lost, nothing doubled

    # more rounds: each types and deletes at random places while the other does the same
    rng = random.Random(7)
    for _ in range(3):

        async def burst(p: Any, words: list[str]) -> None:
            for word in words:
                length = len(await p.text())
                await p.set_selection(rng.randint(0, length))
                await p.type(word)
                if rng.random() < 0.5:
                    await p.page.keyboard.press("Backspace")

        await asyncio.gather(
            burst(ada, ["[a1]", "[a2]", "[a3]"]), burst(grace, ["(g1)", "(g2)", "(g3)"])
        )
        await converged(server, "race", [ada, grace])


async def test_remote_cursor_appears_moves_and_stays_on_its_characters(
    server: Any, person: Any
) -> None:
    await server.create("cursors")
    ada = await person("Ada", color="#e5484d")
    grace = await person("Grace", color="#0090ff")
    for p in (ada, grace):
        await p.open_doc(server.url, "cursors")
    await ada.focus_editor()
    await ada.type("Hello world")
    await converged(server, "cursors", [ada, grace])

    label = grace.page.locator(".cm-remote-label", has_text="Ada")
    await label.wait_for()

    async def caret_at(p: Any, name: str) -> int:
        pos: int = await p.page.evaluate(
            """(name) => {
                const v = window.cowriteApp.view;
                for (const el of document.querySelectorAll('.cm-remote-caret')) {
                    if (el.querySelector('.cm-remote-label').textContent === name)
                        return v.posAtDOM(el);
                }
                return -1;
            }""",
            name,
        )
        return pos

    async def wait_caret(p: Any, name: str, want: int) -> None:
        async def check() -> bool:
            return await caret_at(p, name) == want

        try:
            await eventually(check, 10)
        except AssertionError:
            raise AssertionError(
                f"{name}'s caret at {await caret_at(p, name)}, not {want}"
            ) from None

    await wait_caret(grace, "Ada", 11)
    # the flag is in Ada's color
    color = await label.evaluate("el => getComputedStyle(el).backgroundColor")
    assert color == "rgb(229, 72, 77)"

    await ada.page.keyboard.press("Home")
    await wait_caret(grace, "Ada", 0)
    await ada.page.keyboard.press("End")
    await wait_caret(grace, "Ada", 11)

    # Grace types before Ada's caret: it must stay after "world", in both views
    await grace.set_selection(6)
    await grace.type("big ")
    await converged(server, "cursors", [ada, grace])
    assert await grace.text() == "Hello big world"
    await wait_caret(grace, "Ada", 15)
    await wait_caret(ada, "Grace", 10)

    # a selection shows as a highlight in the collaborator's color
    await ada.set_selection(0, 5)
    highlight = grace.page.locator(".cm-remote-selection")
    await highlight.wait_for()
    assert await highlight.inner_text() == "Hello"
    await wait_caret(grace, "Ada", 5)
    await grace.screenshot("editor-remote-cursor.png")


async def test_presence_lists_both_people_and_marks_the_idle_one(
    make_server: Any, person: Any
) -> None:
    server = make_server(idle_after_s=1.0)
    await server.start()
    try:
        await server.create("presence")
        ada = await person("Ada")
        grace = await person("Grace")
        for p in (ada, grace):
            await p.open_doc(server.url, "presence")
        people = ada.page.locator("#people li")
        await eventually(lambda: _count(people, 2))
        await ada.page.locator("#people li", has_text="Grace").wait_for()
        await ada.page.locator("#people li", has_text="Ada (you)").wait_for()
        await grace.page.locator("#people li", has_text="Ada").wait_for()

        # Ada keeps typing, Grace does nothing: Grace turns idle, Ada stays active
        await ada.focus_editor()
        grace_in_adas_list = ada.page.locator("#people li.idle", has_text="Grace")
        for _ in range(40):
            await ada.type("x")
            if await grace_in_adas_list.count():
                break
            await asyncio.sleep(0.15)
        await grace_in_adas_list.wait_for(timeout=2000)
        assert "idle" in await grace_in_adas_list.inner_text()
        ada_in_graces_list = grace.page.locator("#people li", has_text="Ada")
        assert "idle" not in (await ada_in_graces_list.get_attribute("class") or "")
        assert "active" in await ada_in_graces_list.inner_text()

        # Grace comes back: active again for Ada
        await grace.focus_editor()
        await grace.type("!")
        await ada.page.locator("#people li:not(.idle)", has_text="Grace").wait_for(timeout=5000)
        await converged(server, "presence", [ada, grace])
    finally:
        await server.stop()


async def _count(locator: Any, n: int) -> bool:
    return bool(await locator.count() == n)


async def test_title_is_live_and_undo_touches_only_your_own_edits(server: Any, person: Any) -> None:
    await server.create("undo")
    ada = await person("Ada")
    grace = await person("Grace")
    for p in (ada, grace):
        await p.open_doc(server.url, "undo")

    await ada.page.fill("#doc-title", "Quarterly plan")
    await eventually(lambda: _value(grace, "#doc-title", "Quarterly plan"))
    assert await grace.page.title() == "Quarterly plan · cowrite"

    await ada.focus_editor()
    await ada.type("ada ")
    await converged(server, "undo", [ada, grace])
    await grace.focus_editor()
    await grace.page.keyboard.press("End")
    await grace.type("grace")
    await converged(server, "undo", [ada, grace])
    assert await ada.text() == "ada grace"

    # Ada undoes: her text goes, Grace's stays (remote edits are not in Ada's history)
    await ada.focus_editor()
    await ada.page.keyboard.press("Control+z")
    text = await converged(server, "undo", [ada, grace])
    assert text == "grace"
    await ada.page.keyboard.press("Control+Shift+z")
    text = await converged(server, "undo", [ada, grace])
    assert text == "ada grace"
    # the toolbar buttons do the same
    await grace.page.get_by_role("button", name="Undo").click()
    text = await converged(server, "undo", [ada, grace])
    assert text == "ada "
    assert server.room("undo").doc.to_json()["title"] == "Quarterly plan"


async def _value(p: Any, selector: str, want: str) -> bool:
    return bool(await p.page.input_value(selector) == want)
