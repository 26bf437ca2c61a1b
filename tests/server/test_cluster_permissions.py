"""Live permissions on a real cluster: three ``cowrite serve`` instances on PostgreSQL + Redis.
An administrator downgrades a user through one instance; the user's clients on the others are
refused their next edits, while another user's are not."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

import cowrite
from cowrite.server.auth import issue

sys.path.insert(0, str(Path(__file__).resolve().parent))  # cluster_harness.py
from cluster_harness import Cluster, eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

SECRET = "c" * 32


def token(user: str, rights: list[str]) -> str:
    return issue(SECRET, user, docs={"*": rights}, name=user, expires_at=int(time.time()) + 600)


async def refused_edit(session: Any, errors: list[Any]) -> bool:
    """Make an edit; True once one is refused (``forbidden``)."""
    session.text("t").insert(0, "x")
    await session.synced(timeout_s=20)
    return any(e.code == "forbidden" for e in errors)


async def test_a_downgrade_reaches_every_instance(tmp_path: Path) -> None:
    async with Cluster(tmp_path, instances=3, env={"COWRITE_SECRET": SECRET}) as cluster:
        one, two, three = cluster.instances
        ann_two = await cowrite.connect(two.ws_url, doc="d", token=token("ann", ["write"]))
        ann_three = await cowrite.connect(three.ws_url, doc="d", token=token("ann", ["write"]))
        bob = await cowrite.connect(three.ws_url, doc="d", token=token("bob", ["write"]))
        errors: dict[str, list[Any]] = {"two": [], "three": [], "bob": []}
        ann_two.on("error", errors["two"].append)
        ann_three.on("error", errors["three"].append)
        bob.on("error", errors["bob"].append)
        try:
            for s in (ann_two, ann_three, bob):
                s.text("t").insert(0, "ok ")
                await s.synced(timeout_s=20)
            assert not any(errors.values())

            admin = {"Authorization": f"Bearer {token('root', ['admin'])}"}
            async with httpx.AsyncClient(base_url=one.url, timeout=20) as http:
                r = await http.post(
                    "/api/admin/permissions",
                    json={"user": "ann", "docs": {"*": ["read"]}},
                    headers=admin,
                )
                assert r.status_code == 200, r.text
            took_two = await eventually(
                lambda: refused_edit(ann_two, errors["two"]), timeout=20, what="refused on two"
            )
            took_three = await eventually(
                lambda: refused_edit(ann_three, errors["three"]),
                timeout=20,
                what="refused on three",
            )
            print(f"downgrade seen after {took_two:.3f}s (two) and {took_three:.3f}s (three)")
            bob.text("t").insert(0, "bob ")
            await bob.synced(timeout_s=20)
            assert errors["bob"] == []
            # everyone converges on what was accepted
            await eventually(
                lambda: str(ann_two.text("t")) == str(bob.text("t")) == str(ann_three.text("t")),
                timeout=20,
                what="convergence",
            )
            assert "bob " in str(bob.text("t"))
        finally:
            for s in (ann_two, ann_three, bob):
                await s.close()
