"""A FastAPI application embedding cowrite, with its own users and its own document storage.

* ``on_authenticate`` checks API keys against the application's ``users`` table (no JWTs);
* ``on_load_document`` seeds a new collaborative document from the application's ``pages``
  table, and ``on_change_debounced`` writes the text back there;
* ``POST /pages/{id}/append`` writes into a live document in-process (server-side API).

Run it (from a checkout, with cowrite and FastAPI installed):
``uvicorn --factory examples.fastapi_app:make_app``, then connect with
``cowrite.connect("ws://127.0.0.1:8000/collab/ws", doc="welcome", token="<an api_key>")``.
``make_app(path)`` builds it on another database file (the tests do).
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException

from cowrite.server.app import Cowrite, create_app
from cowrite.server.auth import Identity
from cowrite.server.config import Settings
from cowrite.server.hooks import AuthRequest, Changes, Extension, LoadDocument, Refused


class Database:
    """The application's own storage (plain SQLite here)."""

    def __init__(self, path: str) -> None:
        self.db = sqlite3.connect(path)
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS users (api_key TEXT PRIMARY KEY, id TEXT, name TEXT,
                                              can_write INTEGER);
            CREATE TABLE IF NOT EXISTS pages (id TEXT PRIMARY KEY, body TEXT);
            """
        )

    def user(self, api_key: str) -> tuple[str, str, bool] | None:
        row = self.db.execute(
            "SELECT id, name, can_write FROM users WHERE api_key = ?", (api_key,)
        ).fetchone()
        return None if row is None else (row[0], row[1], bool(row[2]))

    def page(self, page_id: str) -> str | None:
        row = self.db.execute("SELECT body FROM pages WHERE id = ?", (page_id,)).fetchone()
        return None if row is None else str(row[0])

    def save_page(self, page_id: str, body: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO pages (id, body) VALUES (?, ?)", (page_id, body))
        self.db.commit()


class AppHooks(Extension):
    name = "example"

    def __init__(self, db: Database) -> None:
        self.db = db
        self.cowrite: Cowrite | None = None

    async def on_authenticate(self, event: AuthRequest) -> Identity | None:
        user = self.db.user(event.token or "")
        if user is None:
            raise Refused("unknown API key")
        user_id, name, can_write = user
        rights = {"read", "chat", "write"} if can_write else {"read"}
        return Identity(user_id, name=name, docs={"*": frozenset(rights)})

    async def on_load_document(self, event: LoadDocument) -> None:
        body = self.db.page(event.document)
        if event.created and event.doc is not None and body:
            event.doc.text("body").insert(0, body)

    async def on_change_debounced(self, event: Changes) -> None:
        assert self.cowrite is not None
        async with self.cowrite.document(event.document) as doc:  # read only: no edits
            self.db.save_page(event.document, str(doc.text("body")))


def make_app(path: str = "example.db", settings: Settings | None = None) -> FastAPI:
    db = Database(path)
    hooks = AppHooks(db)
    collab = create_app(settings or Settings(data=":memory:"), extensions=[hooks])
    cowrite: Cowrite = collab.state.cowrite
    hooks.cowrite = cowrite

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with collab.router.lifespan_context(collab):
            yield

    app = FastAPI(lifespan=lifespan)
    app.mount("/collab", collab)

    @app.post("/pages/{page_id}/append")
    async def append(page_id: str, text: str) -> dict[str, Any]:
        try:
            async with cowrite.document(page_id, user="backend") as doc:
                doc.text("body").insert(len(doc.text("body")), text)
        except Exception as exc:
            raise HTTPException(404, str(exc)) from None
        return {"version": doc.version}

    return app
