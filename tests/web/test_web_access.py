"""The page on a server started with ``--secret``: it takes its token from ``?token=`` (what
``cowrite token --url`` prints), keeps it for the tab across reloads, removes it from the address
bar, and uses it on the WebSocket, on REST and for rich-text documents; the name shown is the
token's."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from test_web_rich import EDITABLE, editor_text, saved
from web_harness import converged, eventually

from cowrite.cli_token import page_link
from cowrite.server.auth import issue

pytestmark = pytest.mark.slow

SECRET = "a-test-secret-that-is-at-least-32-bytes-long"


def token(user: str, name: str, docs: dict[str, list[str]]) -> str:
    return issue(SECRET, user, docs=docs, name=name, expires_at=int(time.time()) + 3600)


@pytest.fixture
async def secured(make_server: Any) -> Any:
    srv = make_server(secret=SECRET)
    await srv.start()
    yield srv
    await srv.stop()


async def test_the_page_works_with_the_token_from_its_link(secured: Any, person: Any) -> None:
    await secured.create("memo")
    ada_token = token("u-ada", "Ada Lovelace", {"*": ["read", "write", "chat"]})
    grace_token = token("u-grace", "Grace Hopper", {"memo": ["read", "write"]})
    ada = await person("Guest")
    grace = await person("Guest")
    await ada.page.goto(page_link(secured.url, ada_token) + "#/d/memo")
    await ada.wait_editable()
    assert "token" not in ada.page.url  # stripped from the address bar, the route kept
    assert ada.page.url.endswith("#/d/memo")
    await grace.page.goto(page_link(secured.url, grace_token) + "#/d/memo")
    await grace.wait_editable()
    # the names are the tokens' (the server's presence says so too), not the typed ones
    await grace.page.locator("#people li", has_text="Ada Lovelace").wait_for(timeout=15_000)
    assert await ada.page.input_value("#my-name") == "Ada Lovelace"
    assert await ada.page.locator("#my-name").get_attribute("readonly") is not None

    await ada.focus_editor()
    await ada.type("signed in ")
    assert await converged(secured, "memo", [ada, grace]) == "signed in "
    await grace.focus_editor()  # (after Ada's text arrived: else "also" may land inside it)
    await grace.page.keyboard.press("Control+End")
    await grace.type("also ")
    text = await converged(secured, "memo", [ada, grace])
    assert text == "signed in also "

    # a reload keeps the token (the tab's storage): still editing, REST included
    await ada.page.reload()
    await ada.wait_editable()
    await ada.page.keyboard.press("Control+End")
    await ada.type("again")
    assert (await converged(secured, "memo", [ada, grace])).endswith("again")
    versions = await ada.page.evaluate(
        "fetch('api/documents/memo/versions', {headers: {authorization:"
        " 'Bearer ' + sessionStorage.getItem('cowrite.token')}}).then((r) => r.status)"
    )
    assert versions == 200
    await ada.page.goto(f"{secured.url}/#/")  # the list comes through REST with the token
    await ada.page.locator("#doc-list", has_text="memo").wait_for(timeout=15_000)


async def test_a_rich_text_document_with_a_token(secured: Any, person: Any) -> None:
    ada_token = token("u-ada", "Ada Lovelace", {"*": ["read", "write", "chat", "admin"]})
    async with httpx.AsyncClient() as http:
        res = await http.post(
            f"{secured.url}/api/documents",
            json={"id": "brief", "title": "Brief", "kind": "yjs"},
            headers={"authorization": f"Bearer {ada_token}"},
        )
    assert res.status_code in (200, 201), res.text
    ada = await person("Guest")
    await ada.page.goto(page_link(secured.url, ada_token) + "#/d/brief")
    await ada.page.wait_for_selector(EDITABLE, timeout=20_000)
    await ada.page.click(".rich-content")
    await ada.type("rich and signed")
    await saved(ada)

    async def stored() -> bool:
        async with httpx.AsyncClient() as http:
            res = await http.get(
                f"{secured.url}/api/documents/brief/yjs/roots/default?as=html",
                headers={"authorization": f"Bearer {ada_token}"},
            )
        return res.status_code == 200 and "rich and signed" in res.text

    await eventually(stored)
    assert "rich and signed" in await editor_text(ada)
