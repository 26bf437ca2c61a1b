"""Shared fixtures of the Yjs tests: the pinned npm packages of tests/yjs/js (installed with
``npm ci`` from the committed lock when node_modules is missing)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

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
