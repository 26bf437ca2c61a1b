"""Integers from clients are bounded before they reach the store: one hostile number fails
that message with a precise error, and the store keeps storing (and acknowledging) everyone's
edits. Issue 9, item 1: a ``chat_edit`` with ``id >= 2**63`` killed the SQLite writer thread."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from cowrite.adapters.store import StoreUnavailable

sys.path.insert(0, str(Path(__file__).parent))  # protocol_clients.py, conftest.py, next to this
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))  # services.py
import services
from conftest import RawClient, start_server
from protocol_clients import ThinClient

HOSTILE = [
    {"type": "chat_edit", "doc": "d", "id": 2**63, "text": "x"},
    {"type": "chat_delete", "doc": "d", "id": 2**63},
    {"type": "chat_edit", "doc": "d", "id": 2**70, "text": "x"},
    {"type": "chat_delete", "doc": "d", "id": -(2**63) - 1},
    {"type": "chat_history", "doc": "d", "before": 2**63},
    {"type": "join", "doc": "d", "version": 2**63},
    {
        "type": "edit",
        "doc": "d",
        "edit_id": "big",
        "version": 2**64,
        "ops": [{"type": "seq", "node": "text:body", "edit": ["x"]}],
    },
]


@pytest.mark.parametrize("frame", HOSTILE, ids=lambda f: f"{f['type']}")
async def test_out_of_range_integers_get_bad_message_and_edits_are_still_stored(
    server: Any, frame: dict[str, Any]
) -> None:
    a = await ThinClient.connect(server.ws_url, "a", "d")
    b = await ThinClient.connect(server.ws_url, "b", "d")
    await a.send({"type": "chat_send", "doc": "d", "text": "hello"})
    mine = (await a.expect("chat"))["message"]

    await b.send(frame)
    error = await b.expect("error")
    assert error["code"] == "bad_message"
    assert "at `$." in error["message"]  # names the field

    # the store still stores and acknowledges, for everyone, and chat still works
    a.insert("text:body", 0, "still here")
    await a.settle(0)
    await b.settle(a.version)
    assert b.text("text:body") == "still here"
    await a.send({"type": "chat_edit", "doc": "d", "id": mine["id"], "text": "edited"})
    assert (await b.expect("chat"))["message"]["text"] == "edited"
    async with httpx.AsyncClient() as http:
        assert (await http.get(server.url + "/healthz")).status_code == 200
        assert (await http.get(server.url + "/readyz")).status_code == 200
    await a.close()
    await b.close()


class _Crash(BaseException):
    """Not an ``Exception``: stands for a bug that kills the writer thread itself."""


def _crash(c: sqlite3.Connection) -> None:
    raise _Crash("writer thread killed (test)")


async def test_healthz_is_unhealthy_while_the_writer_is_dead_and_cannot_restart(
    make_settings: Any, tmp_path: Path
) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    running, task = await start_server(make_settings(data=str(folder / "cowrite.db")))
    try:
        a = await ThinClient.connect(running.ws_url, "a", "d")
        store = running.state.store
        with pytest.raises(StoreUnavailable):
            await store._write(_crash)
        async with httpx.AsyncClient() as http:
            # a crashed writer is restarted: the process is healthy and edits are acknowledged
            assert (await http.get(running.url + "/healthz")).status_code == 200
            a.insert("text:body", 0, "saved")
            await a.settle(0)
            with pytest.raises(StoreUnavailable):
                await store._write(_crash)
            shutil.rmtree(folder)  # ...unless it cannot be: then the process says so
            health = await http.get(running.url + "/healthz")
            assert health.status_code == 503 and "writer" in health.text
            assert (await http.get(running.url + "/readyz")).status_code == 503
            folder.mkdir()
            assert (await http.get(running.url + "/healthz")).status_code == 200
        await a.close()
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)


async def test_ids_postgres_cannot_store_are_refused_before_anything_is_applied(
    make_settings: Any,
) -> None:
    """PostgreSQL text cannot hold NUL. An edit id (or client id) with one used to be applied
    in memory, then refused by the store: never stored, yet later updates built on it."""
    settings = make_settings(database=services.postgres_database())
    running, task = await start_server(settings)
    try:
        bad = await RawClient.connect(running.ws_url, "fine")
        await bad.send({"type": "join", "doc": "d", "create": True})
        await bad.expect("joined")
        op = {"type": "seq", "node": "text:body", "edit": ["lost? "]}
        await bad.send({"type": "edit", "doc": "d", "edit_id": "e\x00", "version": 0, "ops": [op]})
        assert (await bad.expect("error"))["code"] == "bad_message"
        await bad.close()
        a = await ThinClient.connect(running.ws_url, "a", "d")
        a.insert("text:body", 0, "kept")
        await a.settle(0)
        await a.close()
        async with websockets.connect(running.ws_url) as nul:  # a NUL in the client id
            await nul.send(json.dumps({"type": "hello", "client_id": "c\x00"}))
            refused = json.loads(await nul.recv())
            assert refused["type"] == "error" and refused["code"] == "bad_message"
        live = running.state.hub.rooms["d"].room.doc.to_json()
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)
    running, task = await start_server(settings)  # what was stored is what clients saw
    try:
        b = await ThinClient.connect(running.ws_url, "b", "d", create=False)
        assert {"body": b.text("text:body")} == live == {"body": "kept"}
        await b.close()
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)
