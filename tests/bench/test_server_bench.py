"""The server benchmark harness: a real cowrite server, real WebSockets, honest bookkeeping.

No timing assertions: this checks that the harness counts, delivers and verifies correctly.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path
from typing import Any

from benchmarks import load, report, results, server_report
from benchmarks import server as bench
from cowrite.engine import ot


def test_scenario_a_smoke_against_a_real_cowrite_server(tmp_path: Path) -> None:
    scenario = bench.build_scenarios("a", clients=[3], duration=2.0)[0]
    opts = bench.Options(drain_timeout_s=20.0, logdir=tmp_path)
    res = asyncio.run(bench.run_one(bench.ServerDef("cowrite"), scenario, opts))

    assert res.status == "ok", res.reason
    assert res.connected == 3 and res.still_connected == 3
    assert res.keystrokes >= 3 * 5  # 5 chars/s each for 2 s, give or take the phase
    assert res.edits > 0
    assert res.acked == res.edits, "every edit acknowledged"
    assert res.delivered == res.edits, "every edit visible at both other clients"
    assert res.deliveries == 2 * res.edits
    assert res.converged, res.convergence
    assert res.drained
    assert not res.errors
    for dist in (res.ack_ms, res.visible_ms):
        assert dist is not None
        assert {"p50", "p95", "p99", "max"} <= dist.keys()
        assert 0 < dist["p50"] <= dist["p95"] <= dist["p99"] <= dist["max"]
    assert res.server_cpu_pct is not None and res.server_hwm_kb
    assert res.generator_cpu_pct

    section = server_report.render_section(
        [res], command="cowrite bench --quick", info={}, quick=True
    )
    assert section.startswith(server_report.SECTION_START)
    assert section.rstrip().endswith(server_report.SECTION_END)
    assert "edit→ack" in section and "| cowrite | 3 / one document |" in section


def _report(
    sends: list[list[object]], recv: list[list[object]], clients: list[list[object]]
) -> dict[str, object]:
    return {"sends": sends, "recv": recv, "clients": clients, "errors": {}, "still_connected": 0}


def test_merge_counts_an_edit_delivered_only_when_every_other_client_saw_it() -> None:
    ms = 1_000_000
    res = results.RunResult("x", "a3", "", window_s=1.0)
    # doc d has 3 clients over two workers; edit k1 reached both others, k2 only one
    w0 = _report(
        [["k1", "d", 0, 2 * ms, 1], ["k2", "d", 10 * ms, -1, 1]],
        [["k2", 1, 15 * ms]],
        [[0, "d", 2, "h", 2, True]],
    )
    w1 = _report(
        [],
        [["k1", 2, 7 * ms]],
        [[1, "d", 2, "h", 0, True], [2, "d", 2, "h", 0, True]],
    )
    results.merge_results(res, [w0, w1], {"d": 3})
    assert res.edits == 2 and res.acked == 1 and res.delivered == 1 and res.deliveries == 3
    assert res.ack_ms is not None and res.ack_ms["p50"] == 2.0
    assert res.visible_ms is not None and res.visible_ms["max"] == 7.0
    assert res.converged


def test_merge_detects_divergence_and_missing_characters() -> None:
    res = results.RunResult("x", "a2", "", window_s=1.0)
    rep = _report(
        [["k1", "d", 0, 1, 1]],
        [["k1", 1, 5]],
        [[0, "d", 1, "aaa", 1, True], [1, "d", 1, "bbb", 0, True], [2, "e", 0, "", 1, True]],
    )
    results.merge_results(res, [rep], {"d": 2, "e": 1})
    assert res.converged is False
    assert "d: 2 different texts" in res.convergence
    assert "e: 0 characters, 1 typed" in res.convergence


def test_section_replaces_only_its_markers() -> None:
    other = "# Benchmarks\n\n<!-- engine-traces:start -->\nengine\n<!-- engine-traces:end -->\n"
    start, end = server_report.SECTION_START, server_report.SECTION_END
    first = report.replace_section(other, f"{start}\nv1\n{end}\n", start, end)
    assert first.startswith(other) and "v1" in first
    second = report.replace_section(first, f"{start}\nv2\n{end}\n", start, end)
    assert "v1" not in second and "v2" in second and "engine" in second
    assert second.count(start) == 1


def test_thin_client_applies_and_rebases_like_the_server() -> None:
    buf = bytearray(b"hello")
    load.apply_to_bytes(buf, [5, " world"])
    load.apply_to_bytes(buf, ["> "])
    load.apply_to_bytes(buf, [2, -1, "H"])
    assert bytes(buf) == b"> Hello world"


def test_fast_transform_agrees_with_the_engine() -> None:
    rng = random.Random(7)

    def op() -> list[Any]:
        kind = rng.randrange(4)
        pos = rng.randrange(6)
        text = rng.choice(["x", "yy", "z"])
        if kind == 0:  # one insert, the fast path
            return [pos, text] if pos else [text]
        if kind == 1:  # an insert and a delete
            return [pos, text, -1] if pos else [text, -1]
        if kind == 2:  # two inserts (a composed buffer)
            return [pos, text, 1, "w"] if pos else [text, 1, "w"]
        return [pos, -1] if pos else [-1]

    sides: tuple[ot.Side, ...] = ("left", "right")
    for _ in range(3000):
        a, b = op(), op()
        for side in sides:
            assert load.transform(a, b, side) == ot.transform(a, b, side), (a, b, side)


def test_scenarios() -> None:
    full = {s.key: s for s in bench.build_scenarios("all")}
    assert list(full) == ["a10", "a50", "a200", "b", "c"]
    assert full["a200"].clients == 200 and full["a200"].docs == 1
    assert full["b"].clients == 1000 and full["b"].docs == 100 and full["b"].interval_ms == 1000
    assert full["c"].clients == 5000 and full["c"].docs == 500 and full["c"].idle
    assert all(s.duration_s == 30 for s in full.values())
    quick = bench.build_scenarios("all", quick=True)
    assert all(s.duration_s <= 3 for s in quick)


def test_merge_runs_keeps_only_what_was_not_rerun() -> None:
    old = [results.RunResult("cowrite", "a10", ""), results.RunResult("hocuspocus", "a10", "")]
    new = [results.RunResult("hocuspocus", "a10", "", reason="new")]
    merged = bench.merge_runs(old, new)
    assert [(r.server, r.reason) for r in merged] == [("cowrite", ""), ("hocuspocus", "new")]
    again = results.RunResult.from_json({**dataclasses.asdict(merged[1]), "unknown": 1})
    assert again == merged[1]
