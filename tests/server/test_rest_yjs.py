"""REST read-outs of Yjs documents (``server/rest_yjs.py``) on a real server: the state (whole,
or a diff by state vector), the roots, a root as text / JSON / XML / HTML (a Tiptap-like fragment
built with pycrdt), rights, the budget, and garbage: bad base64, state vectors that lie or are
huge, unknown roots and types, documents of the other kind."""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pycrdt
import pytest

from cowrite.client import open_yjs
from cowrite.server import rest_yjs
from cowrite.server.auth import issue
from cowrite.server.config import Settings
from cowrite.yjs.document import encode_state_vector
from cowrite.yjs.lib0 import Encoder

sys.path.insert(0, str(Path(__file__).parent))  # conftest.py, next to this file
from conftest import start_server

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


@pytest.fixture
async def http(server: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
        yield client


def b64(data: bytes, urlsafe: bool = False) -> str:
    return (base64.urlsafe_b64encode if urlsafe else base64.b64encode)(data).decode()


def error_of(r: httpx.Response) -> str:
    code: str = r.json()["error"]["code"]
    return code


def tiptap_fragment(doc: pycrdt.Doc[Any]) -> None:
    """What Tiptap (y-prosemirror) writes for a small rich-text document."""
    f = doc.get("default", type=pycrdt.XmlFragment)
    f.children.append(pycrdt.XmlElement("heading", {"level": "2"}, [pycrdt.XmlText("Plan <1>")]))
    para = f.children.append(pycrdt.XmlElement("paragraph", None, [pycrdt.XmlText()]))
    t = para.children[0]
    t.insert(0, "Say ")
    t.insert(4, "bold", {"bold": {}})
    t.insert(8, " and ")
    t.insert(13, "slanted", {"italic": {}})
    t.insert(20, " see", {"link": {"href": 'https://example.org/?a=1&b="2"'}})
    items = f.children.append(pycrdt.XmlElement("bulletList"))
    for word in ("one", "two & three"):
        item = items.children.append(pycrdt.XmlElement("listItem"))
        item.children.append(pycrdt.XmlElement("paragraph", None, [pycrdt.XmlText(word)]))
    f.children.append(
        pycrdt.XmlElement("codeBlock", {"language": "py"}, [pycrdt.XmlText("x < 1\n")])
    )
    f.children.append(
        pycrdt.XmlElement(
            "paragraph",
            None,
            [pycrdt.XmlText("line"), pycrdt.XmlElement("hardBreak"), pycrdt.XmlText("next")],
        )
    )
    f.children.append(pycrdt.XmlElement("paragraph", None, [pycrdt.XmlText("<script>x</script>")]))


TIPTAP_HTML = (
    "<h2>Plan &lt;1&gt;</h2>"
    "<p>Say <strong>bold</strong> and <em>slanted</em>"
    '<a href="https://example.org/?a=1&amp;b=&quot;2&quot;"> see</a></p>'
    "<ul><li><p>one</p></li><li><p>two &amp; three</p></li></ul>"
    "<pre><code>x &lt; 1\n</code></pre>"
    "<p>line<br>next</p>"
    "<p>&lt;script&gt;x&lt;/script&gt;</p>"
)


async def make_yjs(server: Any, http: httpx.AsyncClient, doc_id: str) -> pycrdt.Doc[Any]:
    """A Yjs document with a Text, a Map, an Array and a Tiptap fragment, created and written
    through the SDK; returns a copy of what was written."""
    async with open_yjs(server.url, doc_id) as s:
        doc = s.doc
        doc.get("title", type=pycrdt.Text).insert(0, "Hello, wörld")
        m = doc.get("meta", type=pycrdt.Map)
        m["owner"] = "ada"
        m["tags"] = pycrdt.Array(["a", "b"])
        doc.get("list", type=pycrdt.Array).extend([1, "two", True])
        tiptap_fragment(doc)
        await s.saved()
        copy: pycrdt.Doc[Any] = pycrdt.Doc()
        copy.apply_update(doc.get_update())
    return copy


async def test_state_roots_and_every_reading(server: Any, http: httpx.AsyncClient) -> None:
    written = await make_yjs(server, http, "rich")

    r = await http.get("/api/documents/rich/yjs")
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    fetched: pycrdt.Doc[Any] = pycrdt.Doc()
    fetched.apply_update(r.content)
    assert str(fetched.get("title", type=pycrdt.Text)) == "Hello, wörld"
    assert fetched.get_state() == written.get_state()

    r = await http.get("/api/documents/rich/yjs/roots")
    assert r.status_code == 200
    assert r.json() == {"roots": ["default", "list", "meta", "title"]}

    async def root(name: str, as_: str | None) -> httpx.Response:
        params = {} if as_ is None else {"as": as_}
        return await http.get(f"/api/documents/rich/yjs/roots/{name}", params=params)

    r = await root("title", None)  # text by default
    assert r.status_code == 200 and r.text == "Hello, wörld"
    assert r.headers["content-type"].startswith("text/plain")
    r = await root("meta", "map")
    assert r.json() == {"owner": "ada", "tags": ["a", "b"]}
    assert r.headers["content-type"] == "application/json"
    assert (await root("meta", "json")).json() == {"owner": "ada", "tags": ["a", "b"]}
    assert (await root("list", "array")).json() == [1, "two", True]
    assert (await root("list", "json")).json() == [1, "two", True]
    r = await root("default", "xml")
    assert r.text == str(written.get("default", type=pycrdt.XmlFragment))
    assert r.text.startswith('<heading level="2">Plan <1></heading><paragraph>Say <bold>bold')
    r = await root("default", "html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert r.text == TIPTAP_HTML


async def test_a_diff_by_state_vector(server: Any, http: httpx.AsyncClient) -> None:
    async with open_yjs(server.url, "sv") as s:
        s.doc.get("text", type=pycrdt.Text).insert(0, "first")
        await s.saved()
        peer: pycrdt.Doc[Any] = pycrdt.Doc()
        peer.apply_update((await http.get("/api/documents/sv/yjs")).content)
        s.doc.get("text", type=pycrdt.Text).insert(5, " second")
        await s.saved()
    whole = (await http.get("/api/documents/sv/yjs")).content
    for urlsafe in (False, True):
        r = await http.get(
            "/api/documents/sv/yjs", params={"state_vector": b64(peer.get_state(), urlsafe)}
        )
        assert r.status_code == 200 and len(r.content) < len(whole)
        copy: pycrdt.Doc[Any] = pycrdt.Doc()
        copy.apply_update(peer.get_update())
        copy.apply_update(r.content)
        assert str(copy.get("text", type=pycrdt.Text)) == "first second"
    # unpadded base64 is fine; an empty state vector means everything
    r = await http.get(
        "/api/documents/sv/yjs", params={"state_vector": b64(peer.get_state()).rstrip("=")}
    )
    assert r.status_code == 200
    r = await http.get("/api/documents/sv/yjs", params={"state_vector": b64(b"\x00")})
    assert r.content == whole


async def test_garbage_is_refused_with_400(server: Any, http: httpx.AsyncClient) -> None:
    await make_yjs(server, http, "g")
    lying = Encoder().write_var_uint(2**40).to_bytes()  # claims 2^40 entries
    truncated = encode_state_vector({123: 4})[:-1]
    # over MAX_STATE_VECTOR_CHARS (but within what a request head may hold: our 400, in JSON)
    overlong = encode_state_vector({2**40 + n: 1 for n in range(1400)})
    assert rest_yjs.MAX_STATE_VECTOR_CHARS < len(b64(overlong)) < 14_000
    for bad in ("%%%", "not base64!", b64(lying), b64(truncated), b64(b"\x01\x01"), b64(overlong)):
        r = await http.get("/api/documents/g/yjs", params={"state_vector": bad})
        assert r.status_code == 400 and error_of(r) == "bad_request", (bad, r.text)
    # a large but valid state vector (clients we never heard of, clocks at 2^53 - 1): fine
    huge = encode_state_vector({2**40 + n: 2**53 - 1 for n in range(600)})
    r = await http.get("/api/documents/g/yjs", params={"state_vector": b64(huge)})
    assert r.status_code == 200 and r.content == (await http.get("/api/documents/g/yjs")).content
    for params in ({"as": "yaml"}, {"as": "TEXT"}, {"as": "text/html"}):
        r = await http.get("/api/documents/g/yjs/roots/title", params=params)
        assert r.status_code == 400 and error_of(r) == "bad_request"
        assert "as must be one of" in r.json()["error"]["message"]
    r = await http.get("/api/documents/g/yjs/roots/" + "r" * (rest_yjs.MAX_ROOT_CHARS + 1))
    assert r.status_code == 400 and error_of(r) == "bad_request"
    r = await http.get("/api/documents/g/yjs/roots/nothing", params={"as": "map"})
    assert r.status_code == 404 and error_of(r) == "unknown_root"
    # a root that cannot be read as the type asked for
    r = await http.get("/api/documents/g/yjs/roots/default", params={"as": "array"})
    assert r.status_code == 409 and error_of(r) == "wrong_type"
    # the document is unchanged by all of it: reading a root never adds one
    assert (await http.get("/api/documents/g/yjs/roots")).json()["roots"] == [
        "default",
        "list",
        "meta",
        "title",
    ]


async def test_unknown_and_native_documents(server: Any, http: httpx.AsyncClient) -> None:
    assert (await http.post("/api/documents", json={"id": "native"})).status_code == 201
    # a Yjs document created by REST is empty until someone writes
    r = await http.post("/api/documents", json={"id": "empty", "kind": "yjs"})
    assert r.status_code == 201
    r = await http.get("/api/documents/empty/yjs")
    assert r.status_code == 200
    assert (await http.get("/api/documents/empty/yjs/roots")).json() == {"roots": []}
    r = await http.get("/api/documents/empty/yjs/roots/default", params={"as": "html"})
    assert r.status_code == 404 and error_of(r) == "unknown_root"
    for path in ("yjs", "yjs/roots", "yjs/roots/x"):
        r = await http.get(f"/api/documents/missing/{path}")
        assert r.status_code == 404 and error_of(r) == "unknown_document", path
        r = await http.get(f"/api/documents/native/{path}")
        assert r.status_code == 409 and error_of(r) == "wrong_kind", path
        assert "not a Yjs document" in r.json()["error"]["message"]
        r = await http.get(f"/api/documents/..bad../{path}")
        assert r.status_code in (400, 404)


SECRET = "rest-yjs-secret"


def token(docs: dict[str, list[str]]) -> str:
    return issue(SECRET, "u", docs=docs, expires_at=int(time.time()) + 3600)


@pytest.fixture
async def secured(make_settings: Callable[..., Settings]) -> AsyncIterator[Any]:
    running, task = await start_server(make_settings(secret=SECRET))
    yield running
    running.server.should_exit = True
    await task


async def test_read_outs_need_the_read_right(secured: Any) -> None:
    server = secured
    http = httpx.AsyncClient(base_url=server.url, timeout=20)
    async with open_yjs(server.url, "doc", token=token({"doc": ["write"]})) as s:
        s.doc.get("t", type=pycrdt.Text).insert(0, "secret text")
        await s.saved()
    reader = {"Authorization": f"Bearer {token({'doc': ['read']})}"}
    stranger = {"Authorization": f"Bearer {token({'other': ['read']})}"}
    for path in ("yjs", "yjs/roots", "yjs/roots/t"):
        assert (await http.get(f"/api/documents/doc/{path}", headers=reader)).status_code == 200
        r = await http.get(f"/api/documents/doc/{path}", headers=stranger)
        assert r.status_code == 403 and error_of(r) == "forbidden"
        r = await http.get(f"/api/documents/doc/{path}")
        assert r.status_code == 401 and error_of(r) == "unauthorized"
        # rights first: a stranger learns nothing from the parameters either
        bad = {"state_vector": "%%%", "as": "yaml"}
        r = await http.get(f"/api/documents/doc/{path}", headers=stranger, params=bad)
        assert r.status_code == 403 and error_of(r) == "forbidden"
    assert (await http.get("/api/documents/doc/yjs/roots/t", headers=reader)).text == "secret text"
    await http.aclose()


async def test_the_read_out_budget_is_server_wide(
    monkeypatch: pytest.MonkeyPatch, make_settings: Callable[..., Settings]
) -> None:
    monkeypatch.setattr(rest_yjs, "READ_BYTES_PER_SECOND", 1e-9)
    monkeypatch.setattr(rest_yjs, "READ_BYTES_BURST", 1)
    running, task = await start_server(make_settings())
    try:
        async with httpx.AsyncClient(base_url=running.url, timeout=20) as client:
            await make_yjs(running, client, "b")
            assert (await client.get("/api/documents/b/yjs")).status_code == 200
            for path in ("yjs", "yjs/roots", "yjs/roots/title"):
                r = await client.get(f"/api/documents/b/{path}")
                assert r.status_code == 429 and error_of(r) == "rate_limited"
                assert r.headers["retry-after"] == "1"
    finally:
        running.server.should_exit = True
        await task
