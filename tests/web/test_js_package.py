"""The JavaScript client as an npm package (``web/package``: ``@cowrite/client`` and
``@cowrite/client/react``): it builds from the lock, its TypeScript types check the documented
uses (and reject misuses), the tarball holds only the built files, the React hooks work against
a real server, and the example app builds."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "web" / "package"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = pytest.mark.skipif(NPM is None or NODE is None, reason="node and npm are needed")


def npm(*args: str) -> str:
    assert NPM is not None
    done = subprocess.run(
        [NPM, *args], cwd=PACKAGE, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, f"npm {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def built() -> Path:
    if not (PACKAGE / "node_modules" / "react").is_dir():
        npm("ci", "--no-audit", "--no-fund")
    npm("run", "build")
    return PACKAGE / "dist"


def test_the_package_builds_and_its_types_check(built: Path) -> None:
    assert sorted(p.name for p in built.iterdir()) == [
        "client.d.ts",
        "client.js",
        "react.d.ts",
        "react.js",
    ]
    react = (built / "react.js").read_text()
    assert 'from "./client.js"' in react and 'from "react"' in react  # one client, React peer
    npm("run", "typecheck")  # test/usage.ts, with @ts-expect-error on misuses
    packed = json.loads(npm("pack", "--dry-run", "--json"))
    files = sorted(f["path"] for f in packed[0]["files"])
    assert files == [
        "README.md",
        "dist/client.d.ts",
        "dist/client.js",
        "dist/react.d.ts",
        "dist/react.js",
        "package.json",
    ]


async def test_the_react_hooks_against_a_real_server(built: Path, server: Any) -> None:
    proc = await asyncio.create_subprocess_exec(
        NODE or "node",
        "--experimental-websocket",
        "--no-warnings",
        str(PACKAGE / "test" / "hooks.mjs"),
        server.ws_url,
        "react-doc",
        cwd=PACKAGE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    seen = json.loads(out.decode().strip().splitlines()[-1])
    assert seen == {
        "statuses": ["connected", "connected"],
        "body": "hello from react 👋",
        "names": ["a", "b"],
        "chat": [["b", "hi a"]],
        "rendered": "a: hello from react 👋",
        "rerendered": True,
    }
    assert server.text("react-doc") == "hello from react 👋"


def test_the_example_app_builds(built: Path) -> None:
    npm("run", "example")
    app = PACKAGE / "example" / "dist" / "app.js"
    assert app.stat().st_size > 10_000 and "react-notes" in app.read_text()
