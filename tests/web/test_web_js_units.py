"""The JavaScript sources without a browser: ot.js against the engine's ot.py (same answers on
random ops over emoji text), the client's own node tests, and the shipped bundle against a fresh
build of the sources."""

from __future__ import annotations

import filecmp
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cowrite.engine import ot

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
STATIC = ROOT / "src" / "cowrite" / "server" / "static"
NODE = shutil.which("node")
NPM = shutil.which("npm")

ALPHABET = ["a", "b", "é", "中", "😀", "👍🏽", "\n", "🇫", "𝔘"]

RUNNER = """
import * as ot from %s;
const cases = JSON.parse(await new Promise((resolve) => {
  let data = "";
  process.stdin.on("data", (c) => (data += c));
  process.stdin.on("end", () => resolve(data));
}));
const out = cases.map(([fn, args]) => {
  try { return { ok: ot[fn](...args) }; } catch (e) { return { error: e.name }; }
});
process.stdout.write(JSON.stringify(out));
"""


def _text(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(n))


def _op(rng: random.Random, length: int) -> list[Any]:
    """A random op (sometimes unnormalized) over a text of ``length`` code points."""
    op: list[Any] = []
    pos = 0
    while pos < length and rng.random() < 0.8:
        kind = rng.random()
        n = rng.randint(1, max(1, length - pos))
        if kind < 0.4:
            op.append(n)
            pos += n
        elif kind < 0.7:
            op.append(-n)
            pos += n
        else:
            op.append(_text(rng, rng.randint(1, 4)))
    if rng.random() < 0.3:
        op.append(_text(rng, rng.randint(1, 3)))
    return op


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_ot_js_matches_the_engine(tmp_path: Path) -> None:
    rng = random.Random(1234)
    cases: list[tuple[str, list[Any]]] = []
    expected: list[Any] = []

    def case(fn: str, args: list[Any], result: Any) -> None:
        cases.append((fn, args))
        expected.append(result)

    for _ in range(600):
        base = _text(rng, rng.randint(0, 12))
        n = len(base)
        a, b = _op(rng, n), _op(rng, n)
        case("normalize", [a], ot.normalize(a))
        case("apply", [base, a], ot.apply(base, a))
        after_a = ot.apply(base, a)
        c = _op(rng, len(after_a))
        case("compose", [a, c], ot.compose(a, c))
        for side in ("left", "right"):
            case("transform", [a, b, side], ot.transform(a, b, side))
        case("invert", [a, base], ot.invert(a, base))
        pos = rng.randint(0, n)
        for own in (False, True):
            case("transformPosition", [pos, a, own], ot.transform_position(pos, a, own))
        na = ot.normalize(a)
        target = len(after_a)
        case("positionBefore", [rng.randint(0, target), na], None)
        other = _text(rng, rng.randint(0, 12))
        case("diff", [base, other], None)
        # out of range: both refuse
        case("apply", [base, [n + 1]], "error")

    script = tmp_path / "run.mjs"
    script.write_text(RUNNER % json.dumps((WEB / "src" / "ot.js").as_uri()))
    done = subprocess.run(
        [NODE or "node", str(script)],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results = json.loads(done.stdout)
    for (fn, args), want, got in zip(cases, expected, results, strict=True):
        if want == "error":
            assert got == {"error": "InvalidOperation"}, (fn, args, got)
            continue
        assert "ok" in got, (fn, args, got)
        value = got["ok"]
        if fn == "positionBefore":
            pos, op = args
            from cowrite.client.values import position_before

            assert value == position_before(pos, op), (fn, args)
        elif fn == "diff":
            a_text, b_text = args
            assert ot.apply(a_text, value) == b_text, (fn, args, value)
            assert value == ot.normalize(value)
        else:
            assert value == want, (fn, args, value, want)


@pytest.mark.skipif(NODE is None, reason="node is not installed")
def test_js_client_unit_tests() -> None:
    """web/test/*.test.js: the thin client simulated against a model server (node --test)."""
    tests = sorted(str(p) for p in (WEB / "test").glob("*.test.js"))
    assert tests
    done = subprocess.run(
        [NODE or "node", "--test", *tests],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_shipped_bundle_matches_the_sources(tmp_path: Path) -> None:
    """``npm ci && npm run build`` gives exactly the committed ``server/static`` files."""
    if NPM is None:
        pytest.skip("npm is not installed, so the web bundle cannot be rebuilt to compare")
    work = tmp_path / "web"
    work.mkdir()
    for name in ("package.json", "package-lock.json", "build.mjs"):
        shutil.copy2(WEB / name, work / name)
    shutil.copytree(WEB / "src", work / "src")
    out = tmp_path / "static"
    env = {**os.environ, "OUTDIR": str(out)}
    for cmd in (["ci", "--no-audit", "--no-fund"], ["run", "build"]):
        done = subprocess.run(
            [NPM, *cmd],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, f"npm {' '.join(cmd)}:\n{done.stdout}\n{done.stderr}"
    built = sorted(p.name for p in out.iterdir())
    shipped = sorted(p.name for p in STATIC.iterdir())
    assert built == shipped
    _, mismatch, errors = filecmp.cmpfiles(out, STATIC, built, shallow=False)
    assert not mismatch and not errors, (
        f"server/static is stale: {mismatch + errors} differ from a fresh build "
        "(run: cd web && npm ci && npm run build)"
    )


NODE_SCRIPT = """
import { CowriteClient } from %s;
const client = new CowriteClient({ url: process.argv[2], user: { name: "node" } });
const statuses = [];
client.on("status", ({ status }) => statuses.push(status));
client.connect();
const doc = client.open("from-node", { create: true });
await doc.ready;
doc.text("body").insert(0, "node says 👋🏽 ");
doc.register("title").set("Made in Node");
await doc.whenSynced();
console.log(JSON.stringify({ phase: "synced", version: doc.version }));
const chat = new Promise((resolve) => doc.once("chat", ({ message }) => resolve(message.text)));
doc.sendChat("<b>hi</b>");
const remote = new Promise((resolve) => {
  doc.on("change", ({ origin }) => {
    if (origin === "remote" && doc.value("text:body").includes("python")) resolve();
  });
});
await remote;
const text = await chat;
console.log(JSON.stringify({ phase: "done", body: doc.value("text:body"), chat: text,
  title: doc.value("register:title"), statuses, synced: doc.synced }));
client.close();
"""


@pytest.mark.skipif(NODE is None, reason="node is not installed")
async def test_the_client_module_works_on_its_own_in_node(server: Any, tmp_path: Path) -> None:
    """static/client.js, as shipped, used without the page (Node's WebSocket)."""
    import asyncio

    import websockets

    script = tmp_path / "use-client.mjs"
    script.write_text(NODE_SCRIPT % json.dumps((STATIC / "client.js").as_uri()))
    proc = await asyncio.create_subprocess_exec(
        NODE or "node",
        "--experimental-websocket",
        "--no-warnings",
        str(script),
        server.ws_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert json.loads(line)["phase"] == "synced", line
    assert server.text("from-node") == "node says 👋🏽 "
    async with websockets.connect(server.ws_url) as ws:
        await ws.send(json.dumps({"type": "hello", "client_id": "py"}))
        await ws.send(json.dumps({"type": "join", "doc": "from-node"}))
        version = server.room("from-node").version
        op = {"type": "seq", "node": "text:body", "edit": [len("node says 👋🏽 "), "and python"]}
        edit = {"type": "edit", "doc": "from-node", "edit_id": "p1", "version": version}
        await ws.send(json.dumps({**edit, "ops": [op]}))
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    done = json.loads(out.decode().strip().splitlines()[-1])
    assert done == {
        "phase": "done",
        "body": "node says 👋🏽 and python",
        "chat": "<b>hi</b>",
        "title": "Made in Node",
        "statuses": ["connecting", "connected"],
        "synced": True,
    }
