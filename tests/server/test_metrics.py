"""Operations endpoints: Prometheus metrics after real traffic, liveness and readiness."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def test_metrics_after_edits_and_errors(server: Any, raw: Any) -> None:
    a = await raw(server.ws_url, "a")
    b = await raw(server.ws_url, "b")
    await a.send({"type": "join", "doc": "d", "create": True})
    await a.expect("joined")
    await b.send({"type": "join", "doc": "d"})
    await b.expect("joined")
    for i in range(3):
        op = {"type": "seq", "node": "text:t", "edit": [i, "x"] if i else ["x"]}
        await a.send({"type": "edit", "doc": "d", "edit_id": str(i), "version": i, "ops": [op]})
        await a.expect("ack")
    await b.send("not json")
    assert (await b.expect("error"))["code"] == "bad_message"
    await b.send({"type": "edit", "doc": "nope", "edit_id": "z", "version": 0, "ops": [op]})
    assert (await b.expect("error"))["code"] == "not_joined"
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    assert got[("cowrite_edits_total", (("kind", "thin"),))] == 3
    assert got[("cowrite_edit_ack_seconds_count", ())] == 3
    buckets = {k[1][0][1]: v for k, v in got.items() if k[0] == "cowrite_edit_ack_seconds_bucket"}
    assert buckets["+Inf"] == 3 and len(buckets) > 5
    assert got[("cowrite_connections", ())] == 2
    assert got[("cowrite_documents_loaded", ())] == 1
    assert got[("cowrite_errors_total", (("code", "bad_message"),))] == 1
    assert got[("cowrite_errors_total", (("code", "not_joined"),))] == 1


async def test_health_and_readiness(server: Any) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        r = await http.get("/healthz")
        assert r.status_code == 200 and r.text == "ok"
        r = await http.get("/readyz")
        assert r.status_code == 200 and r.text == "ready"
        server.state.ready = False  # as while shutting down
        assert (await http.get("/readyz")).status_code == 503
        server.state.ready = True


def test_loop_histogram_exposes_what_prometheus_clients_histogram_does() -> None:
    """The lock-free histogram of the per-edit paths reads like prometheus_client's own: same
    buckets (a value on a bound counts in that bucket), count and sum."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from cowrite.server.metrics import LATENCY_BUCKETS, LoopHistogram

    ours, theirs = CollectorRegistry(), CollectorRegistry()
    fast = LoopHistogram("x_seconds", "x", LATENCY_BUCKETS, ours)
    slow = Histogram("x_seconds", "x", buckets=LATENCY_BUCKETS, registry=theirs)
    for value in (0.0, 0.0005, 0.0007, 0.001, 0.003, 0.2, 4.99, 5.0, 7.5, 1e9):
        fast.observe(value)
        slow.observe(value)

    def read(registry: CollectorRegistry) -> dict[Any, float]:
        got = samples(generate_latest(registry).decode())
        return {k: v for k, v in got.items() if not k[0].endswith("_created")}

    assert read(ours) == read(theirs)
    assert read(ours)[("x_seconds_bucket", (("le", "0.001"),))] == 4
