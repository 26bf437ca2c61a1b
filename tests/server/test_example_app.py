"""``examples/fastapi_app.py`` (docs/extending.md): its own users authenticate, its own storage
seeds documents and gets their text back, its endpoint writes into a live document."""

from __future__ import annotations

import asyncio
import importlib.util
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import cowrite
from cowrite.client.errors import ServerError
from cowrite.server.config import Settings

from .test_mount import serve

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fastapi_app.py"


def load_example() -> Any:
    pytest.importorskip("fastapi")
    spec = importlib.util.spec_from_file_location("fastapi_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def until_true(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_the_fastapi_example(tmp_path: Path) -> None:
    example = load_example()
    path = str(tmp_path / "app.db")
    app = example.make_app(path, Settings(data=":memory:", change_debounce_s=0.05))
    db = sqlite3.connect(path)
    db.executemany(
        "INSERT INTO users VALUES (?, ?, ?, ?)",
        [("key-ann", "ann", "Ann", 1), ("key-rob", "rob", "Rob", 0)],
    )
    db.execute("INSERT INTO pages VALUES ('welcome', 'Hello from the app database')")
    db.commit()
    async with serve(app) as url:
        ws = url.replace("http://", "ws://") + "/collab/ws"
        async with cowrite.connect(ws, doc="welcome", token="key-ann") as ann:
            assert str(ann.text("body")) == "Hello from the app database"
            ann.text("body").insert(0, ">> ")
            await ann.synced()
            async with httpx.AsyncClient(base_url=url) as http:
                r = await http.post("/pages/welcome/append", params={"text": " (appended)"})
                assert r.status_code == 200 and r.json()["version"] is not None
            expected = ">> Hello from the app database (appended)"
            await until_true(lambda: str(ann.text("body")) == expected)
            # the debounced change went back to the application's table
            await until_true(
                lambda: (
                    sqlite3.connect(path).execute("SELECT body FROM pages").fetchone()[0]
                    == expected
                )
            )
        async with cowrite.connect(ws, doc="welcome", token="key-rob", create=False) as rob:
            assert str(rob.text("body")) == expected  # a reader reads ...
            errors: list[Any] = []
            rob.on("error", errors.append)
            rob.text("body").insert(0, "no")  # ... and cannot write: refused, undone
            await until_true(lambda: bool(errors))
            assert errors[0].code == "forbidden"
            await until_true(lambda: str(rob.text("body")) == expected)
        with pytest.raises(ServerError, match="unknown API key"):
            await cowrite.connect(ws, doc="welcome", token="nope", reconnect=False)
