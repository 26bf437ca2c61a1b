"""Rich-text documents in the web app: Tiptap over the Hocuspocus provider to a real cowrite
server, in Debian's Chromium. Two people format at the same place and converge (with each other
and with the server's Yjs document), see each other's named carets, presence and chat; "All
changes saved" comes from the server's SyncStatus; work done offline survives a reload and
reaches the others."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest
from test_web_offline import NETWORK_NOISE
from web_harness import Person, eventually

pytestmark = pytest.mark.slow

ADA_COLOR = "#dc2626"
GRACE_COLOR = "#0b6bcb"
EDITABLE = ".rich-content[contenteditable=true]"


class Gate:
    """A page's Hocuspocus WebSocket through Playwright: while ``blocked`` the server is out of
    reach (the connection is closed at once and nothing reaches the server)."""

    def __init__(self) -> None:
        self.blocked = False

    async def handle(self, ws: Any) -> None:
        if self.blocked:
            await ws.close(code=4000, reason="unreachable (test)")
            return
        upstream = ws.connect_to_server()
        upstream.on_message(ws.send)
        ws.on_message(upstream.send)


async def create_rich(server: Any, doc: str, title: str) -> None:
    async with httpx.AsyncClient() as http:
        res = await http.post(
            f"{server.url}/api/documents", json={"id": doc, "title": title, "kind": "yjs"}
        )
    assert res.status_code in (200, 201), res.text


async def server_root(server: Any, doc: str, as_: str) -> str:
    """The server's read-out of the editor's Yjs root (``default``) as ``xml`` or ``html``."""
    async with httpx.AsyncClient() as http:
        res = await http.get(f"{server.url}/api/documents/{doc}/yjs/roots/default?as={as_}")
    assert res.status_code == 200, res.text
    return res.text


async def editor_xml(p: Person) -> str:
    """The page's Yjs XmlFragment as Yjs prints it (the server's ``as=xml`` prints the same)."""
    result: str = await p.page.evaluate(
        "window.cowriteApp.rich.ydoc.getXmlFragment('default').toString()"
    )
    return result


async def editor_html(p: Person) -> str:
    result: str = await p.page.evaluate("window.cowriteApp.rich.editor.getHTML()")
    return result


async def editor_text(p: Person) -> str:
    result: str = await p.page.evaluate(
        "window.cowriteApp.rich ? window.cowriteApp.rich.editor.getText() : ''"
    )
    return result


async def open_rich(p: Person, url: str, doc: str) -> None:
    await p.page.goto(f"{url}/#/d/{doc}")
    await p.page.wait_for_selector(EDITABLE, timeout=20_000)


async def saved(p: Person) -> None:
    """Wait for "All changes saved" (the provider owes nothing and the server has said so).
    (Attached, not visible: a narrow screen hides the indicator.)"""
    await p.page.locator("#save-state[data-state=saved]", has_text="All changes saved").wait_for(
        state="attached", timeout=30_000
    )
    state = await p.page.evaluate(
        "(() => { const r = window.cowriteApp.rich; return {unsynced: r.provider.unsyncedChanges,"
        " synced: r.provider.synced}; })()"
    )
    assert state == {"unsynced": 0, "synced": True}


def same_case(xml: str) -> str:
    """Element names in lower case: yjs's ``XmlElement.toString`` lowers them (``bulletlist``),
    the server's read-out keeps ProseMirror's (``bulletList``)."""
    return re.sub(r"</?[A-Za-z][A-Za-z0-9]*", lambda m: m.group(0).lower(), xml)


async def converged(server: Any, doc: str, people: list[Person], timeout: float = 30) -> str:
    """Wait until every page's Yjs document prints as the server's; return that XML."""
    last: list[Any] = []

    async def check() -> bool:
        expected = same_case(await server_root(server, doc, "xml"))
        shown = [same_case(await editor_xml(p)) for p in people]
        last[:] = [expected, shown]
        return all(s == expected for s in shown)

    try:
        await eventually(check, timeout, interval=0.2)
    except AssertionError:
        raise AssertionError("no convergence: " + json.dumps(last, indent=1)[:4000]) from None
    return str(last[0])


async def test_two_people_format_at_one_place_and_converge(server: Any, person: Any) -> None:
    ada = await person("Ada", color=ADA_COLOR)
    grace = await person("Grace", color=GRACE_COLOR)

    # Ada creates a rich-text document from the list
    page = ada.page
    await page.goto(server.url + "/")
    await page.get_by_label("Title of the new document").fill("Field notes")
    await page.get_by_label("Rich text").check()
    await page.get_by_role("button", name="Create document").click()
    await page.wait_for_url("**/#/d/field-notes-*")
    await page.wait_for_selector(EDITABLE, timeout=20_000)
    doc = page.url.split("#/d/")[1]
    async with httpx.AsyncClient() as http:
        info = (await http.get(f"{server.url}/api/documents/{doc}")).json()
    assert info["kind"] == "yjs"

    # Grace follows the link (her browser has never seen the document: it learns its kind)
    await open_rich(grace, server.url, doc)
    await eventually(lambda: _value(grace, "#doc-title", "Field notes"), 20)

    # both at the very start of the empty document, each typing formatted text at once
    await ada.page.click(".rich-content")
    await grace.page.click(".rich-content")

    async def typing(p: Person, shortcut: str, text: str) -> None:
        await p.page.keyboard.press(shortcut)
        await p.type(text)

    await asyncio.gather(
        typing(ada, "Control+b", "Ada bold"), typing(grace, "Control+i", "Grace italic")
    )
    xml = await converged(server, doc, [ada, grace])
    text = await editor_text(ada)
    assert "Ada bold" in text and "Grace italic" in text, xml  # each run whole, none lost
    html = await editor_html(ada)
    assert html == await editor_html(grace)
    server_html = await server_root(server, doc, "html")
    assert "Ada bold" in server_html and "Grace italic" in server_html

    # in the same paragraph: Grace makes it a heading while Ada goes on typing in it
    await ada.page.keyboard.press("End")
    await grace.page.keyboard.press("End")

    async def ada_types() -> None:
        await ada.page.keyboard.press("Control+b")
        await ada.type(" more")

    async def grace_heading() -> None:
        await grace.page.get_by_role("button", name="Heading 1").click()

    await asyncio.gather(ada_types(), grace_heading())
    xml = await converged(server, doc, [ada, grace])
    # (y-prosemirror turns a paragraph into a heading by replacing the block: what Ada typed
    # into the old one meanwhile may be gone, but never on one side only)
    # (two people typing into an empty document at once may each start a paragraph)
    assert '<heading level="1">' in xml, xml
    html = await editor_html(ada)
    assert html == await editor_html(grace) and "<h1>" in html
    server_html = await server_root(server, doc, "html")
    assert "<h1>" in server_html and "<strong>" in server_html, server_html

    # one more round at one place: a new line each, Grace's becomes a list while Ada types
    # hers (a structural change next to fast typing: y-prosemirror re-renders the blocks, and
    # keystrokes typed into the replaced DOM can be lost, on every side alike; what is checked
    # is that everyone ends with the same document, the server's)
    await ada.page.keyboard.press("Control+End")
    await grace.page.keyboard.press("Control+End")

    async def ada_list() -> None:
        await ada.page.keyboard.press("Enter")
        await ada.page.keyboard.press("Control+i")
        await ada.type("ada item")

    async def grace_list() -> None:
        await grace.page.keyboard.press("Enter")
        await grace.page.get_by_role("button", name="Bulleted list").click()
        await grace.type("grace item")

    await asyncio.gather(ada_list(), grace_list())
    xml = await converged(server, doc, [ada, grace])
    assert "<bulletlist><listitem><paragraph>grace item" in xml, xml
    assert await editor_html(ada) == await editor_html(grace)

    # saved, from the server's SyncStatus
    for p in (ada, grace):
        await saved(p)
        await p.page.locator("#connection", has_text="Connected").wait_for()

    # named, coloured carets of the other person; the same presence list
    for me, other, color in ((grace, "Ada", ADA_COLOR), (ada, "Grace", GRACE_COLOR)):
        label = me.page.locator(".rich-caret-label", has_text=other)
        await label.wait_for(timeout=20_000)
        caret_color = await me.page.evaluate(
            "(name) => [...document.querySelectorAll('.rich-caret')]"
            ".find(c => c.textContent === name).style.getPropertyValue('--caret')",
            other,
        )
        assert caret_color == color
        await me.page.locator("#people li", has_text=other).wait_for()
    assert await ada.page.locator("#people li").count() == 2
    assert await ada.page.locator("#people li", has_text="Ada (you)").count() == 1

    # chat, through Hocuspocus Stateless messages
    await ada.page.fill("#chat-input", "Rich <b>text</b> works")
    await ada.page.keyboard.press("Enter")
    for p in (ada, grace):
        msg = p.page.locator("#chat-log li", has_text="Rich <b>text</b> works")
        await msg.wait_for(timeout=20_000)
        assert "Ada" in await msg.locator(".chat-author").inner_text()
    # (a caret shows while its editor has the focus: back to the text for the pictures)
    await ada.page.locator(".rich-content h1").click()
    await grace.page.locator(".rich-caret-label", has_text="Ada").wait_for(timeout=20_000)
    await ada.screenshot("rich-text-ada.png")
    await grace.screenshot("rich-text-grace.png")

    # the list says which kind each document is
    await page.get_by_role("link", name="All documents", exact=True).click()
    item = page.locator("#doc-list li", has_text="Field notes")
    await item.wait_for()
    assert "Rich text" in await item.locator(".doc-kind").inner_text()


async def test_offline_work_survives_a_reload_and_reaches_the_others(
    server: Any, person: Any
) -> None:
    await create_rich(server, "trip", "Trip")
    gate = Gate()
    ada = await person("Ada", color=ADA_COLOR)
    grace = await person("Grace", color=GRACE_COLOR, allow_console=NETWORK_NOISE)
    await grace.page.route_web_socket("**/hocuspocus", gate.handle)
    for p in (ada, grace):
        await open_rich(p, server.url, "trip")
    await ada.page.click(".rich-content")
    await ada.type("Packing list")
    await converged(server, "trip", [ada, grace])
    await saved(grace)

    # Grace loses the network and goes on writing
    await grace.context.set_offline(True)
    await grace.page.locator("#connection", has_text="Offline").wait_for(timeout=20_000)
    state = grace.page.locator("#save-state")
    await state.filter(has_text="Offline — changes kept on this device").wait_for()
    await grace.page.click(".rich-content")
    await grace.page.keyboard.press("Control+End")
    await grace.page.keyboard.press("Enter")
    await grace.page.keyboard.press("Control+b")
    await grace.type("tent")
    await grace.page.keyboard.press("Control+b")
    await grace.type(" and stove")
    await state.filter(has_text="Offline — changes kept on this device").wait_for()
    await eventually(lambda: _contains(grace, "tent and stove"))  # in the editor, so in Yjs
    await grace.page.evaluate("window.cowriteApp.rich.persisted()")  # and in IndexedDB
    await grace.screenshot("rich-text-offline.png")

    # meanwhile Ada writes too
    await ada.page.keyboard.press("Control+Home")
    await ada.type("[ada] ")
    await saved(ada)
    assert "tent" not in await server_root(server, "trip", "xml")

    # reload while the server is still out of reach (the page itself loads: only the
    # collaboration socket is cut): the offline work is there, from IndexedDB
    gate.blocked = True
    await grace.context.set_offline(False)
    await grace.page.reload()
    await grace.page.wait_for_selector(EDITABLE, timeout=20_000)
    await eventually(lambda: _contains(grace, "tent and stove"), 20)
    assert "[ada]" not in await editor_text(grace)  # nothing came from the server
    await state.filter(has_text="Offline — changes kept on this device").wait_for()
    await grace.page.click(".rich-content")
    await grace.page.keyboard.press("Control+End")
    await grace.type(" [after reload]")
    assert "after reload" not in await server_root(server, "trip", "xml")

    # back online: the work reaches the server and Ada, and Ada's reaches Grace
    gate.blocked = False  # the provider's next retry (within 5 s) gets through
    xml = await converged(server, "trip", [ada, grace], timeout=45)
    for piece in ("[ada] Packing list", "tent", " and stove [after reload]"):
        assert xml.count(piece) == 1, xml
    assert "<strong>tent</strong>" in await editor_html(ada)
    await saved(grace)
    await saved(ada)


async def test_toolbar_by_keyboard_on_a_narrow_screen(server: Any, person: Any) -> None:
    await create_rich(server, "narrow", "Narrow")
    ada = await person("Ada", color=ADA_COLOR, viewport=(390, 780))
    await open_rich(ada, server.url, "narrow")
    page = ada.page
    toolbar = page.get_by_role("toolbar", name="Formatting")
    await toolbar.wait_for()
    # the toolbar fits the screen: no button outside the viewport horizontally
    overflow = await page.evaluate(
        "[...document.querySelectorAll('#rich-toolbar button')]"
        ".filter(b => b.getBoundingClientRect().right > window.innerWidth + 1).length"
    )
    assert overflow == 0
    # every button is named and says whether it is on
    buttons = toolbar.get_by_role("button")
    assert await buttons.count() >= 8
    for i in range(await buttons.count()):
        b = buttons.nth(i)
        assert await b.get_attribute("aria-label")
        assert await b.get_attribute("aria-pressed") in ("true", "false")

    await page.click(".rich-content")
    await ada.type("Title line")
    # one tab stop for the whole toolbar; arrows move within it
    await page.locator("#rich-toolbar button").first.focus()
    await page.keyboard.press("ArrowRight")  # Italic
    await page.keyboard.press("ArrowRight")  # Inline code
    await page.keyboard.press("ArrowRight")  # Heading 1
    focused = await page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == "Heading 1"
    await page.keyboard.press("Enter")
    h1 = toolbar.get_by_role("button", name="Heading 1")
    await eventually(lambda: _attr(h1, "aria-pressed", "true"))
    await eventually(lambda: _html_is(ada, "<h1>Title line</h1>"))
    # the focus stays on the toolbar; Escape goes back to the text, where it was
    assert await page.evaluate("document.activeElement.getAttribute('aria-label')") == "Heading 1"
    await page.keyboard.press("Escape")
    await page.wait_for_function("document.activeElement.classList.contains('rich-content')")
    await ada.type("!")  # (ProseMirror reads typed text from the DOM a moment later)
    await eventually(lambda: _html_is(ada, "<h1>Title line!</h1>"))

    # a link, from the keyboard
    await page.keyboard.press("Control+End")
    await page.keyboard.press("Enter")
    await ada.type("see ")
    await page.keyboard.press("Control+k")
    await page.locator("#rich-link-url").fill("example.com/docs")
    await page.keyboard.press("Enter")
    await eventually(lambda: _html_has(ada, 'href="https://example.com/docs"'))
    # a script link is refused
    await page.keyboard.press("Control+k")
    await page.locator("#rich-link-url").fill("javascript:alert(1)")
    await page.keyboard.press("Enter")
    await page.get_by_text("Links must start with").wait_for()
    await page.keyboard.press("Escape")
    assert "javascript:" not in await editor_html(ada)

    await saved(ada)
    server_html = await server_root(server, "narrow", "html")
    assert "<h1>Title line!</h1>" in server_html and "https://example.com/docs" in server_html
    await ada.screenshot("rich-text-narrow.png", full_page=True)


async def test_a_python_agent_and_a_browser_edit_one_document(server: Any, person: Any) -> None:
    """The SDK's live pycrdt document (``cowrite.open_yjs``) and Tiptap in Chromium edit one
    rich-text document: each sees the other's paragraph, and both equal the server's."""
    import pycrdt

    import cowrite

    await create_rich(server, "agent", "Agent and person")
    ada = await person("Ada", color=ADA_COLOR)
    await open_rich(ada, server.url, "agent")
    await ada.page.locator(EDITABLE).click()
    await ada.page.keyboard.type("typed in the browser")
    await saved(ada)
    async with cowrite.open_yjs(server.url.replace("http://", "ws://"), "agent") as ydoc:
        body = ydoc.doc.get("default", type=pycrdt.XmlFragment)

        async def arrived() -> bool:
            return "typed in the browser" in str(body)

        await eventually(arrived, 20)
        body.children.append(
            pycrdt.XmlElement("paragraph", None, [pycrdt.XmlText("written by python")])
        )
        await ydoc.saved()
        await eventually(lambda: _contains(ada, "written by python"), 20)
        xml = await converged(server, "agent", [ada])
        assert same_case(str(body)) == xml
    text = await editor_text(ada)
    assert "typed in the browser" in text and "written by python" in text
    await ada.screenshot("rich-text-agent.png")


async def _contains(p: Person, text: str) -> bool:
    return text in await editor_text(p)


async def _value(p: Person, selector: str, want: str) -> bool:
    return bool(await p.page.input_value(selector) == want)


async def _contains(p: Person, text: str) -> bool:
    return text in await editor_text(p)


async def _html_is(p: Person, html: str) -> bool:
    return await editor_html(p) == html


async def _html_has(p: Person, text: str) -> bool:
    return text in await editor_html(p)


async def _attr(locator: Any, name: str, want: str) -> bool:
    return bool(await locator.get_attribute(name) == want)
