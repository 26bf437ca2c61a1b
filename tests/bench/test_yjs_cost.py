"""The Yjs per-update CPU benchmarks: without sockets (every update delivered, parts left out and
put back), through real sockets (the same bytes whatever the path), and the receive path alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import yjs_hub_cost, yjs_receive_cost, yjs_socket_cost
from cowrite.adapters.store.sqlite import SQLiteStore
from cowrite.server.pipeline import Pipeline
from cowrite.yjs.document import YjsDocument


@pytest.mark.parametrize("dialect", ["y-websocket", "hocuspocus"])
@pytest.mark.parametrize("without", [[], ["store", "validation"], ["pipeline"]])
async def test_every_update_reaches_every_other_connection(
    tmp_path: Path, dialect: str, without: list[str]
) -> None:
    before = (SQLiteStore.append_update, YjsDocument.apply_client_update, Pipeline.submit)
    with yjs_hub_cost._left_out(without):
        r = await yjs_hub_cost.run(dialect, 2, 3, 20.0, 0.5, str(tmp_path / "b.db"))
    assert (SQLiteStore.append_update, YjsDocument.apply_client_update, Pipeline.submit) == before
    assert r["updates"] == 2 * 3 * 10
    acks = r["updates"] if dialect == "hocuspocus" else 0  # each update's SyncStatus
    assert r["frames"] >= r["deliveries"] + acks == 2 * r["updates"] + acks
    assert "per delivery" in yjs_hub_cost.report(dialect, r)


@pytest.mark.parametrize("dialect", ["y-websocket", "hocuspocus"])
async def test_through_sockets_every_update_comes_back(tmp_path: Path, dialect: str) -> None:
    r = await yjs_socket_cost.run(dialect, 2, 3, 20.0, 0.5, str(tmp_path / "b.db"))
    assert r["updates"] == 2 * 3 * 10
    # every delivery is a frame: 2 bytes of header, 3 of message, a keystroke's > 10 bytes
    assert r["received"] > 15 * r["deliveries"]
    assert r["cpu"] > 0 and r["main"] > 0


async def test_the_receive_path_is_timed_both_ways(tmp_path: Path) -> None:
    r = await yjs_receive_cost.run(200, 2, str(tmp_path / "b.db"))
    assert len(r["taken"]) == len(r["reader"]) == 2
    assert all(v > 0 for v in r["taken"] + r["reader"])
