"""Interop with the real npm ``yjs`` 13.6, ``y-protocols``, ``lib0`` and ``@hocuspocus/common``:
what they write, cowrite reads and applies; what cowrite writes, they read."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pycrdt
import pytest

from cowrite.yjs import messages as m
from cowrite.yjs.awareness import AwarenessTable, decode_update
from cowrite.yjs.document import YjsDocument, decode_state_vector
from cowrite.yjs.session import Rights, SharedDoc, YWebsocketSession

NODE = shutil.which("node")  # the js_dir fixture skips when node is missing


def run_node(js_dir: Path, mode: str, payload: Any = None) -> Any:
    assert NODE is not None
    proc = subprocess.run(
        [NODE, "interop.mjs", mode],
        cwd=js_dir,
        input=json.dumps(payload) if payload is not None else "",
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def produced(js_dir: Path) -> Any:
    return run_node(js_dir, "produce")


def read_out(doc: YjsDocument) -> dict[str, Any]:
    return {
        "text": doc.text("text"),
        "map": doc.json("map"),
        "array": doc.json("array", kind="array"),
        "xml": doc.xml("prosemirror"),
    }


def expected_of(js: dict[str, Any]) -> dict[str, Any]:
    return {k: js[k] for k in ("text", "map", "array", "xml")}


def test_updates_from_yjs_apply_one_by_one(produced: Any) -> None:
    doc = YjsDocument()
    for u in produced["updates"]:
        assert doc.apply_client_update(bytes.fromhex(u)) is not None
    assert read_out(doc) == expected_of(produced["expected"])
    assert decode_state_vector(doc.state_vector()) == decode_state_vector(
        bytes.fromhex(produced["sv"])
    )
    assert doc.html("prosemirror") == (
        "<h2>Title &lt;1&gt;</h2><p><strong>bold</strong> &amp; plain</p>"
    )


def test_ywebsocket_frames_from_y_protocols(produced: Any) -> None:
    msgs = [m.decode_ywebsocket(bytes.fromhex(f)) for f in produced["ywebsocket"]]
    assert msgs[0] == m.YSync(m.SyncStep1(bytes.fromhex(produced["sv"])))
    assert isinstance(msgs[1], m.YSync) and isinstance(msgs[1].sync, m.SyncStep2)
    assert msgs[-1] == m.YPermissionDenied("read-only")
    assert msgs[-2] == m.YQueryAwareness()
    # The whole state (step 2) applies to a fresh document through a session.
    shared = SharedDoc()
    session = YWebsocketSession("n", Rights.READ_WRITE, shared)
    session.open()
    session.receive(bytes.fromhex(produced["ywebsocket"][1]))
    assert read_out(shared.doc) == expected_of(produced["expected"])
    # Awareness: y-protocols' encoding decodes, the table holds then removes the client.
    aw = [x for x in msgs if isinstance(x, m.YAwareness)]
    table = AwarenessTable()
    table.apply(decode_update(aw[0].update), owner="c")
    assert json.loads(table.states()[1234]) == {
        "user": {"name": "Ann ☃", "color": "#f00"},
        "cursor": None,
    }
    assert table.apply(decode_update(aw[1].update), owner="c").removed == (1234,)


def test_hocuspocus_frames(produced: Any) -> None:
    name = produced["name"]
    msgs = [m.decode_hocuspocus(bytes.fromhex(f)) for f in produced["hocuspocus"]]
    assert msgs[0] == m.HAuthToken(name, "secret-token", "4.8.0")
    assert msgs[1] == m.HSync(name, m.SyncStep1(bytes.fromhex(produced["sv"])))
    assert msgs[3] == m.HSync(name, m.SyncUpdate(bytes.fromhex(produced["updates"][0])))
    assert msgs[5] == m.HQueryAwareness(name)
    assert msgs[6] == m.HStateless(name, '{"ping":"☃"}')
    assert msgs[7] == m.HClose(name, "")


def test_frames_from_cowrite_are_read_by_y_protocols(js_dir: Path, produced: Any) -> None:
    src: pycrdt.Doc[Any] = pycrdt.Doc(client_id=77)
    updates: list[bytes] = []
    src.observe(lambda e: updates.append(e.update))
    src["text"] = pycrdt.Text("from python ✓")
    src["map"] = pycrdt.Map({"k": "v", "n": 1})
    src["array"] = pycrdt.Array(["x", 2])
    frag = src.get("prosemirror", type=pycrdt.XmlFragment)
    para = frag.children.append(pycrdt.XmlElement("paragraph"))
    para.children.append(pycrdt.XmlText("para"))
    doc = YjsDocument()
    for u in updates:
        doc.apply_client_update(u)
    table = AwarenessTable()
    table.apply(decode_update(bytes.fromhex(produced["awareness"][0])), owner="x")
    full = table.encode_full()
    assert full is not None
    yws = [
        m.YSync(m.SyncStep1(doc.state_vector())),
        m.YSync(m.SyncStep2(doc.diff(b"\x00"))),
        m.YSync(m.SyncUpdate(updates[0])),
        m.YAwareness(full),
        m.YQueryAwareness(),
        m.YPermissionDenied("read-only"),
    ]
    a = "doc\0sess"
    hps = [
        m.HAuthenticated(a, "readonly"),
        m.HPermissionDenied(a, "nope"),
        m.HAuthTokenRequest(a),
        m.HSync(a, m.SyncStep1(doc.state_vector())),
        m.HSync(a, m.SyncUpdate(doc.encode_snapshot())),
        m.HSync(a, m.SyncStep1(b"\x00"), reply=True),
        m.HAwareness(a, full),
        m.HSyncStatus(a, True),
        m.HSyncStatus(a, False),
        m.HStateless(a, "hello"),
        m.HClose(a, "bye"),
        m.HPing(),
    ]
    result = run_node(
        js_dir,
        "consume",
        {
            "ywebsocket": [m.encode_ywebsocket(x).hex() for x in yws],
            "hocuspocus": [m.encode_hocuspocus(x).hex() for x in hps],
        },
    )
    assert not any(r["rest"] for r in result["ywebsocket"] + result["hocuspocus"] if "rest" in r)
    y = result["ywebsocket"]
    assert [r.get("sync") for r in y[:3]] == [0, 1, 2]
    assert y[0]["replyBytes"] > 0  # y-protocols answered our step 1 with a step 2
    assert y[5]["denied"] == "read-only"
    h = result["hocuspocus"]
    assert h[0] == {"address": a, "type": 2, "scope": "readonly", "rest": False}
    assert h[1]["denied"] == "nope" and h[2]["tokenRequested"] is True
    assert h[5]["type"] == 4 and h[5]["sync"] == 0
    assert [h[7]["saved"], h[8]["saved"]] == [True, False]
    assert h[9]["stateless"] == "hello" and h[10]["close"] == "bye"
    assert h[11] == {"ping": True}
    got = result["doc"]
    assert got["text"] == "from python ✓"
    assert got["map"] == {"k": "v", "n": 1}
    assert got["array"] == ["x", 2]
    assert got["xml"] == doc.xml("prosemirror")
    assert result["awareness"]["1234"]["user"]["name"] == "Ann ☃"
    assert decode_state_vector(bytes.fromhex(result["sv"])) == decode_state_vector(
        doc.state_vector()
    )
