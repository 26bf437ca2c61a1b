"""Shared fixtures of the Yjs tests: the pinned npm packages of tests/yjs/js (installed with
``npm ci`` from the committed lock when node_modules is missing)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # yjs_e2e.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))  # services.py
import services
from yjs_e2e import E2E_ENV, YClients, YjsServer

JS = Path(__file__).resolve().parent / "js"
NODE = shutil.which("node")
NPM = shutil.which("npm")


@pytest.fixture(scope="session")
def js_dir() -> Path:
    if NODE is None or NPM is None:
        pytest.skip("node / npm are not installed")
    wanted = ("yjs", "y-protocols", "lib0", "y-websocket", "@hocuspocus/provider")
    if not all((JS / "node_modules" / name).is_dir() for name in wanted):
        subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"], cwd=JS, check=True, capture_output=True
        )
    return JS


# --- end-to-end tests (test_server_*.py, test_cluster_*.py): helpers in yjs_e2e.py ----------


@pytest.fixture
def e2e_js_dir(js_dir: Path) -> Path:
    """``js_dir`` with ``ws`` too (a node_modules installed before it was added lacks it)."""
    if not (js_dir / "node_modules" / "ws").is_dir():
        assert NPM is not None
        subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"], cwd=js_dir, check=True, capture_output=True
        )
    return js_dir


@pytest.fixture
async def node(e2e_js_dir: Path) -> AsyncIterator[Callable[..., Awaitable[YClients]]]:
    """``await node("name")``: a new node process of Yjs clients (closed at the end)."""
    made: list[YClients] = []

    async def make(name: str = "node") -> YClients:
        made.append(await YClients.start(e2e_js_dir, name))
        return made[-1]

    yield make
    for clients in made:
        if clients.stderr:
            print(f"----- node {clients.name} stderr -----\n" + "\n".join(clients.stderr[-30:]))
        await clients.close()


@pytest.fixture
async def yjs_server(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[YjsServer]]]:
    """``await yjs_server(secret=None, data=None)``: a started ``cowrite serve`` (killed at the
    end; its log is printed when the test fails)."""
    made: list[YjsServer] = []

    async def make(*, secret: str | None = None, name: str | None = None) -> YjsServer:
        name = name or f"s{len(made)}"
        env = dict(E2E_ENV)
        if secret is not None:
            env["COWRITE_SECRET"] = secret
        server = YjsServer(
            name, tmp_path / f"{name}.log", data=str(tmp_path / f"{name}.db"), env=env
        )
        made.append(server)
        try:
            await server.start(timeout=60)
        except services.ServiceError as exc:
            raise AssertionError(f"cowrite serve did not start: {exc}") from None
        return server

    yield make
    for server in made:
        print(f"----- {server.name} log -----\n{server.log_tail(3000)}")
        server.kill()
