"""Several ``cowrite serve`` instances on one PostgreSQL and one Redis (the scale-out setup):
convergence of clients spread over instances, the nginx example config in front of them, and
presence and chat across instances (including an instance dying)."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import cowrite

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cluster_harness.py
from cluster_harness import INSTANCE_TIMEOUT_S, Cluster, eventually, gather_tasks

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

DOCS = ("shared-a", "shared-b")
SNIPPETS = ("a", "bc", "xyz", "é", "😀", " ", "line\n")


def _value(session: Any) -> dict[str, Any]:
    """The document as ``GET /api/documents/{doc}/json`` shows it (the roots this test uses)."""
    return {
        "body": str(session.text("body")),
        "meta": session.map("meta").to_dict(),
        "n": session.counter("n").value,
    }


async def _random_edits(session: Any, rng: random.Random, ops: int, adds: list[int]) -> None:
    body, meta, counter = session.text("body"), session.map("meta"), session.counter("n")
    for _ in range(ops):
        roll = rng.random()
        if roll < 0.45:
            body.insert(rng.randint(0, len(body)), rng.choice(SNIPPETS))
        elif roll < 0.65:
            if len(body):
                pos = rng.randrange(len(body))
                body.delete(pos, min(rng.randint(1, 3), len(body) - pos))
        elif roll < 0.82:
            meta.set(f"k{rng.randrange(5)}", rng.choice([rng.randrange(1000), "v", None, [1, 2]]))
        elif roll < 0.87:
            key = f"k{rng.randrange(5)}"
            if key in meta:
                meta.delete(key)
        else:
            amount = rng.randint(-3, 5)
            counter.add(amount)
            adds.append(amount)
        await asyncio.sleep(rng.uniform(0, 0.03))


async def test_clients_on_three_instances_converge_with_each_other_and_the_database(
    tmp_path: Path,
) -> None:
    seed = random.randrange(1 << 30)
    print(f"seed {seed}")
    async with Cluster(tmp_path, instances=3) as cluster:
        sessions: dict[str, list[Any]] = {doc: [] for doc in DOCS}
        adds: dict[str, list[int]] = {doc: [] for doc in DOCS}
        for d, doc in enumerate(DOCS):
            for k in range(4):  # editors of one document on every instance, in both modes
                inst = cluster.instances[(k + d) % 3]
                mode = "replica" if k == 3 else "thin"
                session = await cowrite.connect(
                    inst.ws_url, doc=doc, name=f"{doc}-{k}", mode=mode, client_id=f"{doc}-c{k}"
                )
                sessions[doc].append(session)
        everyone = [s for group in sessions.values() for s in group]
        try:
            rng = random.Random(seed)
            tasks = [
                asyncio.create_task(
                    _random_edits(s, random.Random(rng.random()), 80, adds[s.doc_id])
                )
                for s in everyone
            ]
            await gather_tasks(tasks, 120)
            await asyncio.gather(*(s.synced(timeout_s=60) for s in everyone))

            for doc, group in sessions.items():
                expected_n = sum(adds[doc])

                def agreed(group: list[Any] = group, n: int = expected_n) -> bool:
                    values = [_value(s) for s in group]
                    return all(v == values[0] for v in values) and values[0]["n"] == n

                try:
                    await eventually(agreed, timeout=30, what=f"the clients of {doc} agree")
                except AssertionError:
                    for s in group:
                        print(s.client_id, s.mode, _value(s))
                    raise
                want = _value(group[0])
                for inst in cluster.instances:

                    async def stored(url: str = inst.url, doc: str = doc, want: Any = want) -> bool:
                        return bool(await cluster.rest_json(doc, url) == want)

                    await eventually(stored, timeout=30, what=f"{inst.name} serves {doc} as agreed")

            fresh = await cluster.add_instance()  # loads both documents from PostgreSQL only
            for doc, group in sessions.items():
                assert await cluster.rest_json(doc, fresh.url) == _value(group[0]), doc
        finally:
            for s in everyone:
                await s.close(flush=False)


async def test_websocket_and_rest_through_the_nginx_example_config(tmp_path: Path) -> None:
    async with Cluster(tmp_path, instances=2, nginx=True) as cluster:
        proxy = cluster.nginx
        async with httpx.AsyncClient(base_url=proxy.url, timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
            created = await http.post(
                "/api/documents", json={"id": "via-nginx", "title": "Through the balancer"}
            )
            assert created.status_code == 201, created.text

            a = await cowrite.connect(proxy.ws_url, doc="via-nginx", name="a", create=False)
            b = await cowrite.connect(proxy.ws_url, doc="via-nginx", name="b", create=False)
            try:
                # least_conn spreads the two WebSockets over both instances
                async def spread() -> bool:
                    return sorted(await cluster.connections()) == [1, 1]

                await eventually(spread, timeout=10, what="one WebSocket on each instance")
                a.text("body").insert(0, "hello")
                await eventually(
                    lambda: str(b.text("body")) == "hello",
                    timeout=15,
                    what="b (other instance) sees a's edit",
                )
                b.text("body").insert(5, " world")
                await eventually(
                    lambda: str(a.text("body")) == "hello world",
                    timeout=15,
                    what="a sees b's edit",
                )
                await asyncio.gather(a.synced(timeout_s=30), b.synced(timeout_s=30))

                for _ in range(4):  # least_conn over idle upstreams: both instances answer

                    async def text_is_right() -> bool:
                        r = await http.get("/api/documents/via-nginx/text/body")
                        return r.status_code == 200 and r.text == "hello world"

                    await eventually(text_is_right, timeout=15, what="REST via nginx")
                detail = await http.get("/api/documents/via-nginx")
                assert detail.status_code == 200
                assert detail.json()["title"] == "Through the balancer"
                renamed = await http.patch("/api/documents/via-nginx", json={"title": "Renamed"})
                assert renamed.status_code == 200, renamed.text
            finally:
                await a.close(flush=False)
                await b.close(flush=False)
        access = proxy.access_log.read_text(errors="replace")
        assert 'GET /ws HTTP/1.1" 101' in access, access[-2000:]


async def test_presence_and_chat_cross_instances_and_a_killed_instance_leaves_presence(
    tmp_path: Path,
) -> None:
    async with Cluster(tmp_path, instances=3) as cluster:
        i0, i1, i2 = cluster.instances
        victim = await cowrite.connect(i0.ws_url, doc="people", name="victim", reconnect=False)
        obs1 = await cowrite.connect(i1.ws_url, doc="people", name="obs1")
        obs2 = await cowrite.connect(i2.ws_url, doc="people", name="obs2")
        try:

            def names(session: Any) -> set[str]:
                return {e.user.name for e in session.presence}

            await victim.set_presence(active=True)
            for obs in (obs1, obs2):
                await eventually(
                    lambda obs=obs: {"victim", "obs1", "obs2"} <= names(obs),
                    timeout=15,
                    what=f"{obs.user.name if obs.user else '?'} sees everyone (3 instances)",
                )
            await eventually(
                lambda: {"obs1", "obs2"} <= names(victim), timeout=15, what="victim sees both"
            )

            await victim.chat.send("hello from i0")
            for obs in (obs1, obs2):
                await eventually(
                    lambda obs=obs: any(m.text == "hello from i0" for m in obs.chat.messages),
                    timeout=15,
                    what="chat reaches the other instances",
                )
            await obs2.chat.send("hello from i2")
            await eventually(
                lambda: any(m.text == "hello from i2" for m in obs1.chat.messages),
                timeout=15,
                what="chat from i2 reaches i1",
            )

            cluster.kill(0)  # no goodbye from i0: only the instance timeout can tell
            killed_at = time.monotonic()
            for obs in (obs1, obs2):
                await eventually(
                    lambda obs=obs: "victim" not in names(obs),
                    timeout=INSTANCE_TIMEOUT_S + 12,
                    what="the dead instance's client leaves presence everywhere",
                )
            took = time.monotonic() - killed_at
            print(f"presence of the dead instance's client gone after {took:.1f} s")
            # the survivors keep each other
            assert {"obs1", "obs2"} <= names(obs1) and {"obs1", "obs2"} <= names(obs2)
        finally:
            for s in (victim, obs1, obs2):
                await s.close(flush=False)
