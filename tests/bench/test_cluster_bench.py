"""The cluster benchmark harness: placement, the same/cross-instance split, and a short real run
on PostgreSQL + Redis + two instances. No timing assertions: the bookkeeping is what is checked."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import cluster as bench

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))  # services.py
import services


def test_placements_put_editors_of_a_document_together_or_apart() -> None:
    docs, n = 10, 3
    for placement, together in (("colocated", True), ("spread", False)):
        for d in range(docs):
            clients = [c for c in range(60) if c % docs == d]  # the 6 clients of document d
            where = {bench.place(c, docs, n, placement) for c in clients}
            assert (len(where) == 1) is together, (placement, d, where)
    # spread uses every instance for every document even when docs % n == 0 (2 instances here)
    assert {bench.place(c, 10, 2, "spread") for c in range(0, 60, 10)} == {0, 1}
    assert {bench.place(c, 10, 1, "spread") for c in range(30)} == {0}


def test_split_visible_separates_same_and_cross_instance_receivers() -> None:
    ms = 1_000_000
    # document d: clients 0 and 1 on instance 0, client 2 on instance 1; client 0 types key "0.1"
    instance_of = {0: 0, 1: 0, 2: 1}
    doc_of = {0: "d", 1: "d", 2: "d"}
    report = {
        "sends": [["0.1", "d", 0, 2 * ms, 1]],
        "recv_by_instance": [[["0.1", 1, 3 * ms]], [["0.1", 1, 9 * ms]]],
    }
    local, remote, share = bench.split_visible([report], instance_of, doc_of, 2)
    assert local is not None and local["p50"] == 3.0
    assert remote is not None and remote["p50"] == 9.0
    assert share == 0.5  # of the two receivers, one is on the other instance
    # not yet at the remote receiver: no cross-instance sample
    report["recv_by_instance"] = [[["0.1", 1, 3 * ms]], []]
    local, remote, _ = bench.split_visible([report], instance_of, doc_of, 2)
    assert local is not None and remote is None


@pytest.fixture(scope="module")
def stack() -> Iterator[bench.Services]:
    try:
        started = bench.Services.start()
    except services.ServiceError as exc:
        services.unavailable(f"cannot start PostgreSQL and Redis: {exc}")
    yield started
    started.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_short_spread_run_on_two_instances_delivers_everything_and_converges(
    stack: bench.Services, tmp_path: Path
) -> None:
    opts = bench.Options(clients=20, duration_s=3.0, drain_timeout_s=20.0, logdir=tmp_path)
    res = asyncio.run(bench.run_one(stack, 2, "spread", opts))
    assert res.status == "ok", res.reason
    assert res.connected == 20 and res.still_connected == 20
    assert res.edits > 0 and res.acked == res.edits
    assert res.delivered == res.edits, "every edit reached every other client"
    assert res.converged, res.convergence  # the clients and both instances agree
    assert res.cross_share is not None and 0.5 < res.cross_share < 0.6  # 5 + 5 per document
    assert res.visible_local_ms and res.visible_remote_ms
    assert len(res.instance_cpu_pct) == 2 and res.postgres_cpu_pct is not None
    assert res.generator_cpu_pct

    section = bench.render_section([res], command="cowrite bench cluster", info={})
    assert section.startswith(bench.SECTION_START)
    assert section.rstrip().endswith(bench.SECTION_END)
    assert "| 2 | spread |" in section
