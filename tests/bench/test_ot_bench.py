"""The OT servers of the server benchmark: ShareDB (``sharedb``) and cowrite driven by its real
JavaScript client (``cowrite-js``), both through the Node OT generator
(``benchmarks/peers/ot_load.mjs``): which client drives which server, a short ``--quick`` run of
the command against real servers, the issue-12 targets (ratios to ShareDB and Hocuspocus), and
what the generator does with garbage on its stdin.

No timing assertions: the harness must count, deliver and verify correctly.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchmarks import results, server_report
from benchmarks import server as bench
from benchmarks.server_defs import DEFAULT_SERVERS, SERVERS, ServerDef, peers_dir

NODE = shutil.which("node")
NPM = shutil.which("npm")


@pytest.fixture(scope="module")
def peers_ot() -> Path:
    """benchmarks/peers with its pinned npm packages (``npm ci`` when they are missing)."""
    if NODE is None or NPM is None:
        pytest.skip("node / npm are not installed")
    peers = peers_dir()
    wanted = ("sharedb", "@teamwork/websocket-json-stream", "ws")
    if not all((peers / "node_modules" / name).is_dir() for name in wanted):
        subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"], cwd=peers, check=True, capture_output=True
        )
    return peers


def test_sharedb_and_cowrite_js_are_driven_by_the_node_ot_generator() -> None:
    assert {"sharedb", "cowrite-js", "cowrite-js-memory"} <= set(SERVERS)
    assert {"sharedb", "cowrite-js"} <= set(DEFAULT_SERVERS)
    sharedb, js = ServerDef("sharedb"), ServerDef("cowrite-js")
    assert (sharedb.kind, js.kind, ServerDef("cowrite-js-memory").kind) == (
        "sharedb",
        "cowrite-js",
        "cowrite-js",
    )
    assert js.cowrite and js.thin and not js.yjs and js.has_ack
    assert not sharedb.cowrite and not sharedb.thin and not sharedb.yjs and sharedb.has_ack
    assert js.url(8) == "ws://127.0.0.1:8/ws" and sharedb.url(8) == "ws://127.0.0.1:8"
    worker = js.worker_command()
    assert worker[0] == "node" and worker[1].endswith("ot_load.mjs")
    assert worker[2] == "--cowrite-client" and Path(worker[3]).is_file()
    assert worker[3].endswith("web/src/client.js")
    assert sharedb.worker_command()[:2] == worker[:2]
    assert sharedb.server_command(9, Path("/x"))[1].endswith("sharedb_server.mjs")
    assert js.server_command(9, Path("/x"))[-6:] == [
        "--port",
        "9",
        "--data",
        "/x/cowrite.db",
        "--log-level",
        "warning",
    ]
    assert js.auto_procs(50, idle=False) == 1 and js.auto_procs(200, idle=False) == 2
    assert sharedb.auto_procs(200, idle=False) == 2 and sharedb.auto_procs(200, idle=True) == 1


def test_a_missing_package_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    if NODE is None:
        pytest.skip("node is not installed")
    monkeypatch.setenv("COWRITE_BENCH_PEERS", str(tmp_path))
    assert "sharedb is missing" in (ServerDef("sharedb").check() or "")
    assert "ws is missing" in (ServerDef("cowrite-js").check() or "")
    assert ServerDef("cowrite").check() is None


def test_a_quick_run_of_sharedb_and_cowrite_js(peers_ot: Path, tmp_path: Path) -> None:
    del peers_ot
    out = tmp_path / "results.json"
    argv = ["--quick", "--scenario", "a", "--clients", "3", "--duration", "1"]
    argv += ["--peers", "cowrite-js,sharedb", "--no-write", "--json", str(out), "--nice", "0"]
    assert bench.main(argv) == 0
    saved = json.loads(out.read_text())
    assert "sharedb 7.0.0" in saved["info"]["node packages"]
    runs = {r["server"]: results.RunResult.from_json(r) for r in saved["results"]}
    assert set(runs) == {"cowrite-js", "sharedb"}
    for name, res in runs.items():
        assert res.status == "ok", (name, res.reason)
        assert res.client == name
        assert res.connected == 3 and res.still_connected == 3, (name, res.errors)
        assert res.keystrokes >= 3 and res.edits > 0
        assert res.acked == res.edits, f"{name}: every edit acknowledged"
        assert res.delivered == res.edits and res.deliveries == 2 * res.edits, name
        # cowrite-js: the server's text (a fresh join) is the clients' text too
        assert res.converged and res.mismatched == 0, (name, res.convergence)
        assert not res.errors, (name, res.errors)
        assert res.cpu_us_per_delivery is not None
        # the Node generator reports its GC pauses over the typing window (maybe none)
        assert len(res.generator_gc_ms) == 1 and res.generator_gc_ms[0] >= 0
        assert res.generator_gc_max_ms is not None and res.generator_gc_max_ms >= 0


def test_generator_gc_pauses_are_noted_and_the_node_generators_can_be_profiled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from benchmarks.report import run_notes

    res = results.RunResult(server="cowrite-js", scenario="b", describe="1000 clients")
    assert "GC" not in run_notes(res)  # the Python generator reports none
    res.generator_gc_ms, res.generator_gc_max_ms = [412.3, 388.0], 45.2
    assert "generator GC pauses 412+388 ms (longest 45 ms)" in run_notes(res)
    res.generator_gc_max_ms = 4.0  # short pauses: not worth a note
    assert "GC" not in run_notes(res)
    saved = json.loads(json.dumps(dataclasses.asdict(res)))  # as --json writes it
    assert results.RunResult.from_json(saved) == res

    js = ServerDef("cowrite-js")
    assert "--cpu-prof" not in js.worker_command()
    monkeypatch.setenv("COWRITE_BENCH_NODE_PROFILE", str(tmp_path))
    worker = js.worker_command()
    assert worker[:4] == ["node", "--cpu-prof", "--cpu-prof-dir", str(tmp_path)]
    assert worker[4].endswith("ot_load.mjs")
    assert ServerDef("hocuspocus").worker_command()[1] == "--cpu-prof"
    assert ServerDef("cowrite").worker_command()[1:] == ["-m", "benchmarks.load"]  # Python


def test_the_generator_refuses_garbage_and_unknown_kinds(peers_ot: Path) -> None:
    assert NODE is not None
    script = str(peers_ot / "ot_load.mjs")
    spec = {"kind": "nope", "url": "ws://127.0.0.1:9", "proc": 0, "run_id": "x", "clients": []}
    for stdin in ("{not json\n", json.dumps(spec) + "\n", "[1, 2]\n", ""):
        done = subprocess.run(
            [NODE, script], input=stdin, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode != 0, stdin
        assert "@@bench" not in done.stdout, stdin
    done = subprocess.run(
        [NODE, script],
        input=json.dumps(spec) + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert "unknown client kind nope" in done.stderr


def _run(server: str, scenario: str, client: str = "", **fields: Any) -> results.RunResult:
    r = results.RunResult(server, scenario, "", clients=50, edits=10, delivered=10)
    r.client = client or server
    r.converged = True
    for k, v in fields.items():
        setattr(r, k, v)
    return r


def _p99(ms: float) -> dict[str, float]:
    return {"p50": ms / 2, "p95": ms, "p99": ms, "max": ms, "n": 10.0}


def test_issue_12_targets_are_ratios_to_sharedb_and_hocuspocus() -> None:
    sharedb = _run("sharedb", "a50", visible_ms=_p99(10.0), deliveries=100, server_cpu_s=1e-3)
    hocus = _run("hocuspocus", "a50", visible_ms=_p99(30.0), deliveries=100, server_cpu_s=2e-3)
    py = _run("cowrite", "a50", visible_ms=_p99(14.0), deliveries=100, server_cpu_s=1.5e-3)
    js = _run("cowrite-js", "a50", visible_ms=_p99(16.0), deliveries=100, server_cpu_s=3e-3)
    lone = _run("cowrite", "b", visible_ms=_p99(5.0), deliveries=100, server_cpu_s=1e-3)
    a200 = _run("cowrite-js", "a200", visible_ms=_p99(40.0))
    a200_bad = _run("cowrite", "a200", visible_ms=_p99(20.0), delivered=9)
    yjs = _run("cowrite-yjs", "a50", client="y-websocket", visible_ms=_p99(99.0))
    vs = server_report.issue12_verdicts([sharedb, hocus, py, js, lone, a200, a200_bad, yjs])

    def verdict(server: str, scenario: str, what: str) -> server_report.Verdict:
        (found,) = [
            v
            for v in vs
            if v.server == server and v.target.startswith(scenario) and what in v.target
        ]
        return found

    assert verdict("cowrite", "(a) 50", "ShareDB").ok is True  # 14 ≤ 1.5 * 10
    assert verdict("cowrite", "(a) 50", "ShareDB").value == "14.0 vs 10.0 ms (×1.40)"
    assert verdict("cowrite-js", "(a) 50", "ShareDB").ok is False  # 16 > 15
    assert verdict("cowrite", "(a) 50", "Hocuspocus").ok is True  # 15 µs ≤ 20 µs
    assert verdict("cowrite-js", "(a) 50", "Hocuspocus").mark == "MISS"  # 30 µs > 20 µs
    assert verdict("cowrite", "(b)", "ShareDB").ok is None  # no ShareDB run of (b)
    assert verdict("cowrite-js", "(a) 200", "50 ms").ok is True
    assert verdict("cowrite", "(a) 200", "50 ms").ok is False  # not every edit delivered
    assert all(v.server != "cowrite-yjs" for v in vs)  # Yjs endpoints are judged elsewhere
    section = server_report.render_section(
        [sharedb, hocus, py, js], command="x", info={}, quick=False
    )
    assert "p99 edit→visible ≤ 1.5× ShareDB's (issue 12)" in section
    assert "| a50 | cowrite ÷ sharedb | 1.40 |" in section
    assert "CPU µs / delivery" in section
