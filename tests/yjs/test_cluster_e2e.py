"""The real Yjs clients against three ``cowrite serve`` instances on PostgreSQL + Redis behind
nginx (``deploy/nginx.conf``, via ``tests/server/cluster_harness.py``).

Clients of both dialects, some connected to one instance each directly and some through nginx,
edit one document at random and converge; awareness crosses instances. Then one instance is
killed (-9): the clients nginx had put there reconnect through nginx, an edit a Hocuspocus client
saw acknowledged (SyncStatus) just before is not lost although that client dies too, and the
awareness states of the clients that were on the dead instance disappear at the others (instance
timeout). Survivors, a fresh client and every surviving instance's REST read-out agree.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # yjs_e2e.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))  # cluster_harness.py
from cluster_harness import Cluster
from yjs_e2e import YClients, content_diff, eventually, rest_yjs_state, same_content

pytestmark = pytest.mark.slow

Node = Callable[..., Awaitable[YClients]]
DOC = "cluster-rich"


def text_of(state: dict[str, Any]) -> str:
    return "".join(part["insert"] for part in state["content"]["text"])


def names(state: dict[str, Any]) -> set[str]:
    return {
        s["user"]["name"] for s in state["awareness"].values() if isinstance(s.get("user"), dict)
    }


def settled(state: dict[str, Any]) -> bool:
    if not state["synced"]:
        return False
    return state["dialect"] != "hocuspocus" or state["unsynced"] == 0


async def states_of(nodes: list[YClients]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for s in await asyncio.gather(*(n.states() for n in nodes)):
        out.update(s)
    return out


async def converge(nodes: list[YClients], clients: list[str], what: str) -> dict[str, Any]:
    last: dict[str, dict[str, Any]] = {}

    async def agreed() -> bool:
        nonlocal last
        states = await states_of(nodes)
        last = {c: states[c] for c in clients}
        return all(settled(s) for s in last.values()) and same_content(list(last.values()))

    try:
        await eventually(agreed, timeout=90, what=what, every=0.2)
    except AssertionError:
        first = clients[0]
        for c in clients[1:]:
            if last[c]["content"] != last[first]["content"]:
                print(f"{c} vs {first}: {content_diff(last[c]['content'], last[first]['content'])}")
        print(
            {
                c: (s["status"], s["synced"], s.get("unsynced"), s["closes"][-2:])
                for c, s in last.items()
            }
        )
        raise
    return last[clients[0]]


async def test_both_dialects_on_three_instances_behind_nginx_one_killed(
    tmp_path: Path, node: Node
) -> None:
    env = {"COWRITE_SNAPSHOT_EVERY": "40", "COWRITE_UNLOAD_AFTER_S": "1"}  # (see E2E_ENV)
    async with Cluster(tmp_path, instances=3, nginx=True, env=env) as cluster:
        direct_base = [f"ws://127.0.0.1:{i.port}" for i in cluster.instances]
        lb = f"ws://127.0.0.1:{cluster.nginx.port}"
        direct, balanced, victim = (
            await node("direct"),
            await node("balanced"),
            await node("victim"),
        )
        nodes = [direct, balanced]
        # one client on each instance directly (d0 on the instance that will die)...
        await direct.open("d0", "ywebsocket", direct_base[0], DOC, user={"name": "d0"})
        await direct.open("d1", "hocuspocus", direct_base[1], DOC, user={"name": "d1"})
        await direct.open("d2", "ywebsocket", direct_base[2], DOC, user={"name": "d2"})
        await victim.open("v", "hocuspocus", direct_base[0], DOC, user={"name": "v"})
        # ...and six through nginx, which spreads them over the three (least_conn)
        lbs = [f"b{k}" for k in range(6)]
        for k, c in enumerate(lbs):
            dialect = "hocuspocus" if k % 2 == 0 else "ywebsocket"
            await balanced.open(c, dialect, lb, DOC, user={"name": c})
            await eventually(
                lambda c=c: _settled(balanced, c), timeout=60, what=f"{c} syncs through nginx"
            )
        everyone = ["d0", "d1", "d2", *lbs]
        await converge(nodes, everyone, "every client syncs")

        # awareness crosses instances: every client sees every user
        all_names = {*everyone, "v"}

        async def everyone_sees_everyone() -> bool:
            states = await states_of([*nodes, victim])
            return all(names(s) == all_names for s in states.values())

        await eventually(everyone_sees_everyone, timeout=60, what="awareness reaches everyone")

        # random concurrent edits of both dialects on every instance
        seeds = iter(range(500, 600))
        await asyncio.gather(
            *(
                (direct if c.startswith("d") else balanced).call(
                    "edit", client=c, seed=next(seeds), n=30, pause_ms=5, tag=f"{c}:"
                )
                for c in everyone
            )
        )
        before = await converge(nodes, everyone, "the clients converge across instances")
        assert before["content"]["xml"] and before["content"]["map"]

        # chat (Hocuspocus stateless messages) crosses instances: from v (instance 0) to d1 (1)
        send = {"type": "cowrite.chat.send", "text": "across", "name": "v"}
        await victim.call("stateless", client="v", payload=json.dumps(send))

        async def chat_arrived() -> bool:
            payloads = [json.loads(p) for p in (await direct.state("d1"))["stateless"]]
            return any(m.get("type") == "cowrite.chat" for m in payloads)

        await eventually(chat_arrived, timeout=60, what="v's chat message reaches d1")

        # the clients on the surviving instances keep editing through the kill (updates in
        # flight between instances). (Not those nginx put on instance 0: typing while the
        # connection comes back is test_typing_on_while_the_connection_comes_back, xfail.)
        survivors = ["d1", "d2", *lbs]
        during = [
            asyncio.create_task(
                direct.call(
                    "edit",
                    client=c,
                    seed=next(seeds),
                    n=40,
                    pause_ms=15,
                    tag=f"{c}~",
                    kinds=["map", "array", "xml"],  # (the text keeps v's marker whole)
                )
            )
            for c in ("d1", "d2")
        ]
        # the victim's edit is acknowledged (SyncStatus), then its instance and it die at once
        await victim.call("type", client="v", text="<acknowledged before the kill>")
        await eventually(lambda: _settled(victim, "v"), timeout=60, what="SyncStatus for v")
        cluster.kill(0)
        victim.kill()
        await asyncio.gather(*during)

        # the clients nginx had put on instance 0 reconnect through nginx

        async def moved() -> bool:
            states = await states_of(nodes)
            return all(settled(states[c]) for c in survivors)

        try:
            await eventually(moved, timeout=90, what="every survivor is synced again")
        except AssertionError:
            states = await states_of(nodes)
            for c in survivors:
                st = states[c]
                print(
                    c,
                    st["dialect"],
                    st["status"],
                    st["synced"],
                    st.get("unsynced"),
                    st["closes"][-3:],
                )
            raise
        states = await states_of(nodes)
        reconnected = [c for c in lbs if states[c]["closes"]]
        assert reconnected, "nginx put none of six clients on instance 0?"
        print("reconnected through nginx:", reconnected)

        # the awareness of d0 and v (gone with instance 0) disappears everywhere
        async def ghosts_gone() -> bool:
            states = await states_of(nodes)
            return all(names(states[c]) == {*survivors} for c in survivors)

        await eventually(ghosts_gone, timeout=60, what="d0's and v's awareness states are removed")

        # the acknowledged edit of v (whose instance and process are gone) reached everyone
        after_kill = await converge(nodes, survivors, "the survivors agree after the kill")
        assert "<acknowledged before the kill>" in text_of(after_kill)

        # more edits by the survivors; all converge, and nothing durable was lost
        await asyncio.gather(
            *(
                (direct if c.startswith("d") else balanced).call(
                    "edit", client=c, seed=next(seeds), n=15, pause_ms=5, tag=f"{c}'"
                )
                for c in survivors
            )
        )
        final = await converge(nodes, survivors, "the survivors converge")
        for root in ("map", "array", "xml"):
            assert final["content"][root], root

        reader = await node("reader")
        await reader.open("fresh", "hocuspocus", lb, DOC)
        await eventually(lambda: _settled(reader, "fresh"), timeout=60, what="fresh client")
        fresh = await reader.state("fresh")
        assert fresh["content"] == final["content"], content_diff(
            fresh["content"], final["content"]
        )
        for inst in cluster.instances[1:]:
            decoded = await reader.decode(await rest_yjs_state(inst.url, DOC))
            assert decoded["content"] == final["content"], content_diff(
                decoded["content"], final["content"]
            )


async def _settled(clients: YClients, client: str) -> bool:
    return settled(await clients.state(client))
