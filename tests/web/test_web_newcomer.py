"""What a new user meets first: a broken link says what is wrong, the document list pages and
searches, two tabs of one browser are two distinct people."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from web_harness import Person, eventually

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("link", ["x" * 200, "has%20spaces", "..", "%E0%A4%A"])
async def test_a_malformed_link_shows_the_servers_error(
    server: Any, person: Any, link: str
) -> None:
    ada = await person("Ada")
    await ada.page.goto(f"{server.url}/#/d/{link}")
    await ada.page.get_by_role("heading", name="Invalid document link").wait_for()
    text = await ada.page.locator("#missing-text").text_content()
    assert text is not None and "doc" in text  # the server's reason, e.g. "...: doc ..."
    assert await ada.page.locator("#doc-loading").is_hidden()


async def test_the_list_pages_and_searches(server: Any, person: Any) -> None:
    store = server.state.store
    now = server.state.hub.now_ms()
    for i in range(1050):
        await store.create_document(f"doc-{i:04d}", title=f"Document {i}", now_ms=now)
    await store.create_document("zz-newest", title="The newest plan", now_ms=now + 1)
    ada = await person("Ada")
    page = ada.page
    await page.goto(server.url + "/")
    items = page.locator("#doc-list li")
    await page.get_by_role("link", name="Document 0", exact=True).wait_for()
    assert await items.count() == 100
    more = page.get_by_role("button", name="Show more documents")
    for shown in range(200, 1200, 100):
        await more.click()
        await eventually(partial(_count, items, min(shown, 1051)))
    await page.get_by_role("link", name="The newest plan").wait_for()
    assert await more.is_hidden()
    # search finds any document, however far down the list
    await page.get_by_label("Search documents").fill("NEWEST")
    await eventually(lambda: _count(items, 1))
    await page.get_by_role("link", name="The newest plan").wait_for()
    await page.get_by_label("Search documents").fill("Document 104")
    await eventually(lambda: _count(items, 11))  # 104 and 1040-1049
    await page.get_by_label("Search documents").fill("no such thing")
    await page.get_by_text("No document matches").wait_for()
    await page.get_by_label("Search documents").fill("")
    await eventually(lambda: _count(items, 100))


async def _count(items: Any, n: int) -> bool:
    return bool(await items.count() == n)


async def test_two_tabs_of_one_browser_are_two_distinct_guests(server: Any, browser: Any) -> None:
    await server.create("shared", "Shared")
    context = await browser.new_context()
    tabs = [Person(f"tab{i}", context, await context.new_page()) for i in range(2)]
    try:
        for tab in tabs:
            await tab.open_doc(server.url, "shared")

        async def two_distinct_members() -> bool:
            room = server.room("shared")
            users = [m.user for m in room.members.values()]
            return (
                len(users) == 2
                and users[0].name != users[1].name
                and users[0].color != users[1].color
            )

        await eventually(two_distinct_members)
        for tab in tabs:  # each page lists two people with two names

            async def two_names(tab: Person = tab) -> bool:
                shown = await tab.page.locator("#people .person-name").all_text_contents()
                return len(shown) == 2 and len({n.removesuffix(" (you)") for n in shown}) == 2

            await eventually(two_names)
        names = sorted(m.user.name for m in server.room("shared").members.values())
        assert all(name.startswith("Guest ") for name in names)
        errors = [e for tab in tabs for e in tab.errors]
        assert not errors
    finally:
        await context.close()
