"""The history panel of the page: sessions of versions, stepping by keyboard and slider, changes
highlighted per author, authorship colours, naming, and a restore that reaches every client, is
durable and doubles nothing; a narrow screen; rich-text documents show their XML.

The server's clock (``hub.now_ms``, which stamps every version) is moved forward between bursts
of typing, so that one test makes several editing sessions without waiting minutes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from web_harness import Person, converged, eventually

pytestmark = pytest.mark.slow

MINUTE_MS = 60_000


def clock(server: Any) -> Callable[[int], None]:
    """Let the test move the server's clock forward (``later(ms)``)."""
    hub = server.state.hub
    real = hub.now_ms
    shift = [0]
    hub.now_ms = lambda: real() + shift[0]

    def later(ms: int) -> None:
        shift[0] += ms

    return later


async def replace(p: Person, start: int, end: int, text: str) -> None:
    """One edit in the editor, as a paste over a selection makes it (one version)."""
    await p.page.evaluate(
        """([from, to, insert]) => { const v = window.cowriteApp.view; v.focus();
            v.dispatch({changes: {from, to, insert}, userEvent: 'input.paste'}); }""",
        [start, end, text],
    )


async def versions(server: Any, doc: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        r = await http.get(f"{server.url}/api/documents/{doc}/versions", params={"limit": 1000})
    assert r.status_code == 200, r.text
    listed: list[dict[str, Any]] = r.json()["versions"]
    return listed


async def open_panel(p: Person) -> None:
    await p.page.click("#history-btn")
    await p.page.wait_for_selector("#history .history-option[aria-selected=true]")
    await selected_text_loaded(p)


async def selected_text_loaded(p: Person) -> None:
    await p.page.wait_for_function(
        """() => { const h = document.getElementById('history');
            const sel = h.querySelector('.history-option[aria-selected=true]');
            return !h.hasAttribute('aria-busy') && sel
                && h.querySelector('.history-text').dataset.version === sel.dataset.version; }""",
        timeout=15_000,
    )


async def shown(p: Person) -> dict[str, Any]:
    """The panel's selected version: its id, the read-only text, insertions and deletions."""
    await selected_text_loaded(p)
    result: dict[str, Any] = await p.page.evaluate(
        """() => {
            const h = document.getElementById('history');
            const sel = h.querySelector('.history-option[aria-selected=true]');
            const runs = (q) => [...h.querySelectorAll(q)].map(
                (n) => [n.textContent, n.dataset.author]);
            const text = h.querySelector('.history-text');
            const clone = text.cloneNode(true);
            clone.querySelectorAll('del').forEach((d) => d.remove());
            return {id: Number(sel.dataset.version), text: clone.textContent,
                    ins: runs('.history-text ins'), del: runs('.history-text del'),
                    by: runs('.history-text .history-by'),
                    title: h.querySelector('.history-version-title').textContent,
                    sessions: h.querySelectorAll('.history-session').length};
        }"""
    )
    return result


async def test_the_panel_steps_through_sessions_shows_authors_names_and_restores(
    server: Any, person: Any
) -> None:
    await server.create("hist")
    later = clock(server)
    ada = await person("Ada")
    grace = await person("Grace")
    for p in (ada, grace):
        await p.open_doc(server.url, "hist")

    # three editing sessions: Ada types, Grace rewrites a word, Ada adds a line
    await ada.focus_editor()
    await ada.type("Hello world.")
    await converged(server, "hist", [ada, grace])
    later(10 * MINUTE_MS)
    await replace(grace, 6, 11, "everyone")
    await converged(server, "hist", [ada, grace])
    grace_version = (await versions(server, "hist"))[-1]
    later(10 * MINUTE_MS)
    await ada.page.evaluate("window.cowriteApp.view.dispatch({selection: {anchor: 15}})")
    await ada.focus_editor()
    await ada.page.keyboard.press("End")
    await ada.type(" Bye.")
    assert await converged(server, "hist", [ada, grace]) == "Hello everyone. Bye."

    await open_panel(ada)
    now = await shown(ada)
    assert now["sessions"] == 3
    assert now["text"] == "Hello everyone. Bye." and "(current)" in now["title"]
    assert await ada.page.evaluate("document.activeElement.id") == "history-list"

    # Page Down: the newest version of the session before (Grace's rewrite, one version)
    await ada.page.keyboard.press("PageDown")
    at = await shown(ada)
    assert at["id"] == grace_version["id"]
    assert at["text"] == "Hello everyone."
    assert at["ins"] == [["everyone", "Grace"]]
    assert at["del"] == [["world", "Grace"]]
    await ada.screenshot("history-changes.png")

    # arrow down: one version older, the last of Ada's first session
    await ada.page.keyboard.press("ArrowDown")
    older = await shown(ada)
    assert older["id"] < grace_version["id"] and older["text"] == "Hello world."
    assert all(who == "Ada" for _, who in older["ins"]) and older["del"] == []
    await ada.page.keyboard.press("ArrowUp")
    assert (await shown(ada))["id"] == grace_version["id"]

    # authorship: every character coloured by who wrote it
    await ada.page.check("#history-authorship")
    await eventually(lambda: _has_by(ada))
    by = (await shown(ada))["by"]
    assert "".join(t for t, _ in by) == "Hello everyone."
    assert ["everyone", "Grace"] in by and all(w in ("Ada", "Grace") for _, w in by)
    await ada.screenshot("history-authorship.png")
    await ada.page.uncheck("#history-authorship")

    # name it (keyboard: the button, then type and Enter)
    await ada.page.click("#history-name")
    await ada.page.keyboard.type("Grace's rewrite")
    await ada.page.keyboard.press("Enter")
    badge = ada.page.locator(f"#history-v-{grace_version['id']} .history-badge.named")
    await badge.wait_for()
    assert await badge.inner_text() == "Grace's rewrite"
    named = [v for v in await versions(server, "hist") if v["name"]]
    assert [(v["id"], v["name"]) for v in named] == [(grace_version["id"], "Grace's rewrite")]

    # restore the first session's text: Grace sees it live, once
    await ada.page.click(f"#history-v-{older['id']}")
    assert (await shown(ada))["text"] == "Hello world."
    await ada.page.click("#history-restore")
    await eventually(lambda: _grace_text(grace, "Hello world."))
    assert await converged(server, "hist", [ada, grace]) == "Hello world."
    latest = (await versions(server, "hist"))[-1]
    assert latest["how"] == "restored" and latest["restored_from"] == older["id"]
    # by Ada, the same user as her typing (the page names her to REST as to the WebSocket)
    typed_by_ada = (await versions(server, "hist"))[0]["authors"]
    assert latest["authors"] == typed_by_ada and typed_by_ada[0]["name"] == "Ada"
    # the panel lists the restore as the newest version and selects it
    await ada.page.locator(f"#history-v-{latest['id']}[aria-selected=true]").wait_for()
    assert (await shown(ada))["text"] == "Hello world."
    await ada.screenshot("history-restored.png")

    # durable: a reload shows it, with nothing doubled
    await grace.page.reload()
    await grace.wait_editable()
    assert await converged(server, "hist", [ada, grace]) == "Hello world."
    assert await grace.text() == "Hello world."

    # someone types while the panel is open: it offers the newer versions
    await grace.focus_editor()
    await grace.page.keyboard.press("Control+End")
    await grace.type("!")
    assert await converged(server, "hist", [ada, grace]) == "Hello world.!"
    await ada.page.click("#history button:has-text('Show newer versions')")
    await eventually(lambda: _shows(ada, "Hello world.!"))
    assert (await shown(ada))["ins"] == [["!", "Grace"]]

    # Escape closes the panel and gives the editor back
    await ada.page.focus("#history-list")
    await ada.page.keyboard.press("Escape")
    await ada.page.wait_for_selector("#history", state="hidden")
    assert await ada.page.evaluate("document.activeElement.id") == "history-btn"
    assert await ada.page.is_visible(".cm-content")


async def _shows(p: Person, text: str) -> bool:
    return (await shown(p))["text"] == text


async def _has_by(p: Person) -> bool:
    return bool((await shown(p))["by"])


async def _grace_text(p: Person, text: str) -> bool:
    return await p.text() == text


async def test_the_panel_works_on_a_narrow_screen(server: Any, person: Any) -> None:
    await server.create("narrow")
    later = clock(server)
    ada = await person("Ada", viewport=(400, 800))
    await ada.open_doc(server.url, "narrow")
    await ada.focus_editor()
    await ada.type("One")
    await converged(server, "narrow", [ada])
    later(10 * MINUTE_MS)
    await ada.type(" two")
    assert await converged(server, "narrow", [ada]) == "One two"

    await open_panel(ada)
    assert (await shown(ada))["sessions"] == 2
    # the slider steps by keyboard too
    await ada.page.focus("#history-slider")
    first = (await shown(ada))["id"]
    await ada.page.keyboard.press("ArrowLeft")
    await eventually(lambda: _selected_below(ada, first))
    wide = await ada.page.evaluate("document.scrollingElement.scrollWidth")
    assert wide <= 400, f"the page scrolls sideways ({wide} px)"
    for selector in ("#history-restore", "#history-name", "#history-slider", "#history-list"):
        box = await ada.page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 400, selector
    await ada.screenshot("history-narrow.png", full_page=True)
    target = (await shown(ada))["text"]
    assert target != "One two"
    await ada.page.click("#history-restore")
    await eventually(lambda: _restored(server, "narrow"))
    assert await converged(server, "narrow", [ada]) == target


async def _selected_below(p: Person, version: int) -> bool:
    return (await shown(p))["id"] < version


async def _restored(server: Any, doc: str) -> bool:
    return (await versions(server, doc))[-1]["how"] == "restored"


async def test_a_rich_text_documents_versions_show_its_xml(server: Any, person: Any) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{server.url}/api/documents", json={"id": "fancy", "title": "Fancy", "kind": "yjs"}
        )
        assert r.status_code in (200, 201), r.text
    ada = await person("Ada", allow_console=("Failed to load resource",))
    await ada.page.goto(f"{server.url}/#/d/fancy")
    await ada.page.wait_for_selector(".rich-content[contenteditable=true]", timeout=20_000)
    await ada.page.click(".rich-content")
    await ada.type("Rich words")
    await eventually(lambda: _listed(server, "fancy"))
    await ada.page.click("#history-btn")
    # shown as the XML of its fragment, the typed words highlighted; the latest is not restorable
    shown_text = ada.page.locator("#history .history-text ins")
    await shown_text.first.wait_for()
    assert "Rich words" in await ada.page.locator("#history .history-text").inner_text()
    assert await ada.page.locator("#history .history-note").is_hidden()
    assert await ada.page.is_disabled("#history-restore")
    await ada.screenshot("history-rich.png")
    await ada.page.keyboard.press("Escape")
    await ada.page.wait_for_selector("#history", state="hidden")

    # a server whose history endpoints refuse the document: the panel says so
    refusal = {"error": {"code": "bad_request", "message": "fancy is not a document of this kind"}}
    await ada.page.route(
        "**/api/documents/fancy/versions*",
        lambda route: route.fulfill(status=400, json=refusal),
    )
    await ada.page.click("#history-btn")
    message = ada.page.locator("#history .history-message.error")
    await message.wait_for()
    text = await message.inner_text()
    assert "not available for rich-text documents" in text and "not a document of this kind" in text
    assert await ada.page.locator("#history .history-option").count() == 0
    assert await ada.page.is_disabled("#history-restore")


async def _listed(server: Any, doc: str) -> bool:
    return bool(await versions(server, doc))


async def options(p: Person) -> int:
    count: int = await p.page.locator("#history .history-option").count()
    return count


async def test_a_long_history_opens_a_page_at_a_time(server: Any, person: Any) -> None:
    """More versions than the panel reads at once (200): it shows the newest, reads older ones
    on "Load older versions", and stepping back past the oldest one read reads the page before
    (whose last version is the one the changes are shown against)."""
    import cowrite

    await server.create("long")
    async with cowrite.connect(server.url, doc="long", name="Bot") as s:
        body = s.text("body")
        for i in range(450):
            body.insert(len(body), f"{i} ")
            await s.synced()
    every = [v["id"] for v in await versions(server, "long")]
    assert len(every) == 450

    ada = await person("Ada")
    await ada.open_doc(server.url, "long")
    await open_panel(ada)
    now = await shown(ada)
    assert now["id"] == every[-1] and "(current)" in now["title"]
    assert await options(ada) == 200
    assert "200+ versions" in await ada.page.locator("#history .history-count").inner_text()
    assert await ada.page.is_visible("#history-older")

    # by the button (keyboard: it is a button after the list)
    await ada.page.focus("#history-older")
    await ada.page.keyboard.press("Enter")
    await eventually(lambda: _options_are(ada, 400))
    assert (await shown(ada))["id"] == every[-1]  # the selection stays
    await ada.screenshot("history-paged.png")

    # End: the oldest read; its changes are since the version before it (read for that)
    await ada.page.focus("#history-list")
    await ada.page.keyboard.press("End")
    await eventually(lambda: _options_are(ada, 450))
    oldest_read = every[-400]
    now = await shown(ada)
    assert now["id"] == oldest_read
    assert now["text"] == "".join(f"{i} " for i in range(450 - 400 + 1))
    assert now["ins"] == [[f"{450 - 400} ", "Bot"]]
    summary = await ada.page.locator("#history .history-summary").inner_text()
    assert f"since version {every[-401]}" in summary
    assert await ada.page.is_hidden("#history-older")
    assert "450 versions" in await ada.page.locator("#history .history-count").inner_text()
    # and past it, by the keyboard and the "Older" button
    await ada.page.keyboard.press("ArrowDown")
    await eventually(lambda: _selected_is(ada, every[-401]))
    await ada.page.click("#history .history-stepper button[aria-label^='Previous']")
    await eventually(lambda: _selected_is(ada, every[-402]))

    # reopened: the slider's end reads the page before, and so does scrolling the list down
    await ada.page.keyboard.press("Escape")
    await ada.page.wait_for_selector("#history", state="hidden")
    await open_panel(ada)
    assert await options(ada) == 200
    await ada.page.focus("#history-slider")
    await ada.page.keyboard.press("Home")
    await eventually(lambda: _selected_is(ada, every[-200]))
    await eventually(lambda: _options_are(ada, 400))
    summary = await ada.page.locator("#history .history-summary").inner_text()
    assert f"since version {every[-201]}" in summary
    await ada.page.locator("#history-list").evaluate("(l) => { l.scrollTop = l.scrollHeight; }")
    await eventually(lambda: _options_are(ada, 450))
    assert (await shown(ada))["id"] == every[-200]


async def _options_are(p: Person, n: int) -> bool:
    return await options(p) == n


async def _selected_is(p: Person, version: int) -> bool:
    return (await shown(p))["id"] == version
