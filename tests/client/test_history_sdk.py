"""The SDK's ``History`` against a real server: list, read, diff with authors, name, restore."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

import cowrite
from cowrite.client import History, HistoryError
from cowrite.server.auth import issue
from cowrite.server.config import Settings
from tests.server.conftest import start_server

SECRET = "sdk-history"


def token(user: str) -> str:
    return issue(
        SECRET,
        user,
        docs={"*": ["read", "write"]},
        name=user.title(),
        expires_at=int(time.time()) + 600,
    )


async def test_history_through_the_sdk(tmp_path: Path) -> None:
    settings = Settings(
        data=str(tmp_path / "c.db"), secret=SECRET, heartbeat_s=0.5, heartbeat_timeout_s=1.5
    )
    server, task = await start_server(settings)
    try:
        async with cowrite.connect(server.ws_url, doc="notes", token=token("ann")) as doc:
            text = doc.text("body")
            text.insert(0, "Dear Bob,")
            await doc.synced()
            text.insert(9, " thanks")
            await doc.synced()
            history = History(server.ws_url, "notes", token=token("ann"))
            page = await history.versions()
            assert len(page.versions) >= 2 and page.next is None
            first, last = page.versions[0], page.versions[-1]
            assert first.authors[0].name == "Ann" and first.how == "typed"
            assert (await history.value_at(first.id)).value == {"body": "Dear Bob,"}
            named = await history.name("First draft", first.id)
            assert named.name == "First draft"
            assert [v.id async for v in history.all_versions(named=True)] == [first.id]
            changes = (await history.diff(first.id, last.id)).changes
            [span] = [s for s in changes[0].spans or [] if s.op == "insert"]
            assert span.text == " thanks" and span.authors and span.authors[0].id == "ann"
            restored = await history.restore(first.id)
            assert restored.edits == 1
            for _ in range(100):  # the restore reaches the session (live)
                if str(text) == "Dear Bob,":
                    break
                await asyncio.sleep(0.02)
            assert str(text) == "Dear Bob,"
            latest = (await history.versions(after=last.id)).versions[-1]
            assert latest.how == "restored" and latest.restored_from == first.id
            renamed = await history.rename(first.id, None)
            assert renamed.name is None
            with pytest.raises(HistoryError) as caught:
                await history.value_at(10_000)
            assert caught.value.status == 404 and caught.value.code == "unknown_version"
            with pytest.raises(HistoryError) as caught:
                await History(server.url, "notes").versions()  # no token
            assert caught.value.status == 401
    finally:
        server.server.should_exit = True
        await asyncio.wait_for(task, 20)
