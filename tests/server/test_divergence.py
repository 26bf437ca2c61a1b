"""Divergence detection end to end: a real server, real SDK thin clients over real sockets.

A client whose copy of the text was corrupted (a test-only poke into its state, standing in for
a client bug) finds out at the next ``checksum``, tells the server (which counts and logs it),
and resyncs to exactly the server's text; clients that only edit never report a divergence."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

import pytest

from cowrite.client import DocumentSession, connect
from cowrite.client.thin import ThinDocState

pytestmark = pytest.mark.slow

BODY = "text:body"
FAST: dict[str, Any] = {"backoff_base_s": 0.05, "backoff_max_s": 0.5}


async def eventually(check: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.01)


def divergences(server: Any) -> float:
    value = server.state.metrics.registry.get_sample_value("cowrite_thin_divergences_total")
    return float(value or 0.0)


def server_text(server: Any, doc: str) -> str:
    value = server.state.hub.rooms[doc].room.doc.to_json().get("body", "")
    assert isinstance(value, str)
    return value


def thin(session: DocumentSession) -> ThinDocState:
    state = session.state
    assert isinstance(state, ThinDocState)
    return state


@pytest.mark.parametrize("corrupt", ["server copy and view", "view only"])
async def test_a_corrupted_client_detects_it_reports_it_and_resyncs(
    server: Any, caplog: pytest.LogCaptureFixture, corrupt: str
) -> None:
    caplog.set_level(logging.WARNING, logger="cowrite.connection")
    async with (
        connect(server.ws_url, doc="div", name="writer", **FAST) as writer,
        connect(server.ws_url, doc="div", name="victim", **FAST) as victim,
    ):
        server.state.hub.rooms["div"].room.checks.min_versions = 1  # check every version
        writer.text("body").insert(0, "hello 😀 world")
        await writer.synced()
        await eventually(lambda: str(victim.text("body")) == "hello 😀 world")
        seen: list[Any] = []
        victim.on("diverged", seen.append)
        checks = thin(victim).checks
        assert checks > 0 and thin(victim).divergences == 0  # verified, and it matched

        state = thin(victim)  # the poke: a bug that garbled what this client holds
        if corrupt == "server copy and view":
            state.server[BODY] = "hellX 😀 world?"
        state.local[BODY] = "hellX 😀 world?"
        assert str(victim.text("body")) == "hellX 😀 world?"

        writer.text("body").insert(len("hello 😀 world"), "!")  # a remote edit brings a checksum
        await writer.synced()
        version = writer.version
        await eventually(lambda: victim.divergences == 1)
        await eventually(lambda: str(victim.text("body")) == server_text(server, "div"))
        assert str(victim.text("body")) == "hello 😀 world!"
        await eventually(lambda: divergences(server) == 1)
        assert seen == [{"node": BODY, "version": version}]
        thin(victim).check_invariants()

        # the server logged it with the document, the session and the version
        server_log = [r for r in caplog.records if r.name == "cowrite.connection"]
        (record,) = [r for r in server_log if "diverged" in r.getMessage()]
        assert getattr(record, "doc", None) == "div"
        assert getattr(record, "session", None) == victim.session_id
        assert getattr(record, "version", None) == version

        # and the repaired client edits on normally
        victim.text("body").insert(0, ">> ")
        await victim.synced()
        await eventually(lambda: str(writer.text("body")) == ">> hello 😀 world!")
        assert victim.divergences == 1 and divergences(server) == 1


async def test_concurrent_editing_never_reports_a_divergence(server: Any) -> None:
    rng = random.Random(7)
    sessions = [
        await connect(server.ws_url, doc="busy", name=f"u{k}", **FAST).__aenter__()
        for k in range(3)
    ]

    async def type_away(session: DocumentSession, seed: int) -> None:
        r = random.Random(seed)
        body = session.text("body")
        for i in range(60):
            text = str(body)
            if text and r.random() < 0.3:
                pos = r.randrange(len(text))
                body.delete(pos, min(2, len(text) - pos))
            else:
                body.insert(r.randint(0, len(text)), r.choice(["a", "é", "😀", "👍🏽", f"<{i}>"]))
            if r.random() < 0.5:
                await asyncio.sleep(r.random() * 0.01)  # let messages cross

    try:
        server.state.hub.rooms["busy"].room.checks.min_versions = 1  # check every version
        await asyncio.gather(*(type_away(s, rng.randrange(1 << 30)) for s in sessions))
        for s in sessions:
            await s.synced()
        expected = server_text(server, "busy")
        await eventually(lambda: all(str(s.text("body")) == expected for s in sessions))
        assert sum(thin(s).checks for s in sessions) > 10  # checksums were verified...
        assert [s.divergences for s in sessions] == [0, 0, 0]  # ...and all matched
        assert divergences(server) == 0
    finally:
        for s in sessions:
            await s.close()


async def test_a_divergence_report_counts_only_for_a_joined_document(server: Any, raw: Any) -> None:
    client = await raw(server.ws_url, "r")
    await client.send({"type": "diverged", "doc": "nowhere", "version": 3, "node": BODY})
    error = await client.expect("error")
    assert (error["code"], error["doc"]) == ("not_joined", "nowhere")
    await client.send({"type": "join", "doc": "here", "create": True})
    await client.expect("joined")
    await client.send({"type": "diverged", "doc": "here", "version": 0, "node": BODY})
    await eventually(lambda: divergences(server) == 1)
    await client.close()
