"""Version history across instances (PostgreSQL + Redis): versions made on one instance are
listed, read and restored on another, and outlive the instance that made them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

import cowrite

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cluster_harness.py
from cluster_harness import Cluster, eventually


async def _versions(url: str, doc: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=20) as http:
        r = await http.get(f"{url}/api/documents/{doc}/versions")
        assert r.status_code == 200, r.text
        versions: list[dict[str, Any]] = r.json()["versions"]
        return versions


async def test_versions_hop_between_instances(tmp_path: Path) -> None:
    async with Cluster(tmp_path, instances=2) as cluster:
        first, second = cluster.instances
        async with cowrite.connect(first.ws_url, doc="d", name="Ann") as ann:
            text = ann.text("t")
            text.insert(0, "one")
            await ann.synced()
            text.insert(3, " two")
            await ann.synced()
        async with cowrite.connect(second.ws_url, doc="d", name="Bob") as bob:
            await bob.synced()
            bob.text("t").insert(0, ">")
            await bob.synced()

        async def all_three(url: str) -> bool:
            return len(await _versions(url, "d")) == 3

        for inst in (first, second):
            await eventually(lambda u=inst.url: all_three(u), timeout=30, what="3 versions")
        listed = await _versions(second.url, "d")
        assert listed == await _versions(first.url, "d")
        assert [v["authors"][0]["name"] for v in listed] == ["Ann", "Ann", "Bob"]
        ids = [v["id"] for v in listed]
        cluster.kill(0)  # the instance that made the first two is gone
        async with httpx.AsyncClient(base_url=second.url, timeout=20) as http:
            values = [
                (await http.get(f"/api/documents/d/versions/{i}")).json()["value"]["t"] for i in ids
            ]
            assert values == ["one", "one two", ">one two"]
            r = await http.get("/api/documents/d/diff", params={"from": ids[0], "to": ids[1]})
            [span] = [s for s in r.json()["changes"][0]["spans"] if s["op"] == "insert"]
            assert span["text"] == " two" and span["authors"][0]["name"] == "Ann"
            r = await http.post("/api/documents/d/restore", json={"version": ids[0]})
            assert r.status_code == 200, r.text
            assert (await http.get("/api/documents/d/text/t")).text == "one"
        restarted = await cluster.restart(0)
        last = (await _versions(restarted.url, "d"))[-1]
        assert last["how"] == "restored" and last["restored_from"] == ids[0]


async def test_yjs_versions_hop_between_instances(tmp_path: Path) -> None:
    import pycrdt

    async with Cluster(tmp_path, instances=2) as cluster:
        first, second = cluster.instances
        async with cowrite.open_yjs(first.url, "y") as ann:
            text = ann.doc.get("t", type=pycrdt.Text)
            text.insert(0, "one")
            await ann.saved(timeout_s=20)
            text.insert(3, " two")
            await ann.saved(timeout_s=20)
        async with cowrite.open_yjs(second.url, "y") as bob:
            await eventually(
                lambda: _now(str(bob.doc.get("t", type=pycrdt.Text)) == "one two"),
                timeout=30,
                what="bob has ann's text",
            )
            bob.doc.get("t", type=pycrdt.Text).insert(0, ">")
            await bob.saved(timeout_s=20)

        async def typed(url: str) -> list[dict[str, Any]]:
            return [v for v in await _versions(url, "y") if v["size"]]

        async def all_three(url: str) -> bool:
            return len(await typed(url)) == 3

        for inst in (first, second):
            await eventually(lambda u=inst.url: all_three(u), timeout=30, what="3 Yjs versions")
        ids = [v["id"] for v in await typed(second.url)]
        cluster.kill(0)  # the instance that stored the first two is gone
        async with httpx.AsyncClient(base_url=second.url, timeout=20) as http:
            values = [
                (await http.get(f"/api/documents/y/versions/{i}")).json()["value"]["t"] for i in ids
            ]
            assert values == ["one", "one two", ">one two"]
            r = await http.get("/api/documents/y/diff", params={"from": ids[0], "to": ids[1]})
            [span] = [s for s in r.json()["changes"][0]["spans"] if s["op"] == "insert"]
            assert span["text"] == " two"
            r = await http.post("/api/documents/y/restore", json={"version": ids[0]})
            assert r.status_code == 200, r.text
            r = await http.get("/api/documents/y/yjs/roots/t", params={"as": "text"})
            assert r.text == "one"


async def _now(value: bool) -> bool:
    return value
