"""The Yjs suite of the server benchmark (``python -m benchmarks server --yjs``): which client
drives which server, the convergence count, the report's ratio targets, and a short real run of
the Node generator (yjs + the real providers) against ``cowrite serve``'s two Yjs endpoints.

No timing assertions: the harness must count, deliver and verify correctly.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import results, yjs_report
from benchmarks import server as bench
from benchmarks.server_defs import YJS_SERVERS, ServerDef, peers_dir

NODE = shutil.which("node")
NPM = shutil.which("npm")


@pytest.fixture(scope="module")
def peers_js() -> Path:
    """benchmarks/peers with its pinned npm packages (``npm ci`` when they are missing)."""
    if NODE is None or NPM is None:
        pytest.skip("node / npm are not installed")
    peers = peers_dir()
    wanted = ("yjs", "y-websocket", "@hocuspocus/provider", "@y/websocket-server")
    if not all((peers / "node_modules" / name).is_dir() for name in wanted):
        subprocess.run(
            [NPM, "ci", "--no-audit", "--no-fund"], cwd=peers, check=True, capture_output=True
        )
    return peers


def test_every_yjs_server_is_driven_by_the_node_generator_with_its_provider() -> None:
    kinds = {name: ServerDef(name, yjs_clients=True).kind for name in YJS_SERVERS}
    assert kinds == {
        "cowrite-yjs": "y-websocket",
        "cowrite-yjs-hocuspocus": "hocuspocus",
        "hocuspocus": "hocuspocus",
        "y-websocket": "y-websocket",
        "pycrdt-websocket": "y-websocket",
    }
    for name in YJS_SERVERS:
        assert ServerDef(name, yjs_clients=True).worker_command()[0] == "node"
    # outside the Yjs suite pycrdt-websocket keeps its Python clients, cowrite its thin ones
    assert ServerDef("pycrdt-websocket").kind == "pycrdt"
    assert ServerDef("cowrite").kind == "cowrite"
    assert ServerDef("cowrite-yjs").url(8) == "ws://127.0.0.1:8/yjs"
    assert ServerDef("cowrite-yjs-hocuspocus").url(8) == "ws://127.0.0.1:8/hocuspocus"
    assert ServerDef("hocuspocus").url(8) == "ws://127.0.0.1:8"
    assert ServerDef("cowrite-yjs-memory").memory and not ServerDef("cowrite-yjs").memory
    assert ServerDef("cowrite-yjs").has_ack is False
    assert ServerDef("cowrite-yjs-hocuspocus").has_ack is True
    assert ServerDef("hocuspocus").auto_procs(50, idle=False) == 2
    assert ServerDef("cowrite-yjs").auto_procs(5000, idle=True) == 1


def test_yjs_scenarios_are_the_issues() -> None:
    full = {s.key: s for s in bench.build_scenarios("all", yjs=True)}
    assert list(full) == ["a50", "b", "c"]
    assert full["a50"].clients == 50 and full["a50"].docs == 1 and full["a50"].interval_ms == 200
    assert full["b"].clients == 1000 and full["b"].docs == 100 and full["b"].interval_ms == 1000
    assert full["c"].clients == 5000 and full["c"].idle


def test_merge_counts_the_clients_that_differ() -> None:
    res = results.RunResult("x", "a3", "", window_s=1.0)
    rep = {
        "sends": [["k1", "d", 0, -1, 1], ["k2", "d", 0, -1, 1]],
        "recv": [["k1", 2, 5], ["k2", 2, 5]],
        "clients": [
            [0, "d", 2, "good", 1, True],
            [1, "d", 2, "good", 1, True],
            [2, "d", 2, "bad", 0, True],
            [3, "e", 1, "short", 0, True],  # nobody typed in e: 1 character is one too many
        ],
        "errors": {},
        "still_connected": 4,
    }
    results.merge_results(res, [rep], {"d": 3, "e": 1})
    assert res.converged is False
    assert res.mismatched == 2
    assert res.delivered == 2


def _p99(ms: float) -> dict[str, float]:
    return {"p50": ms / 4, "p95": ms / 2, "p99": ms, "max": ms, "n": 100.0}


def _run(server: str, scenario: str, **kw: object) -> results.RunResult:
    r = results.RunResult(server, scenario, "50 clients on one document, 5 chars/s each, 30 s")
    r.client = "hocuspocus"
    r.converged = True
    r.edits = r.delivered = 100
    r.deliveries = 4900
    r.generator_cpu_pct = [40.0]
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_targets_are_ratios_to_hocuspocus_in_the_same_run() -> None:
    hocus = _run("hocuspocus", "a50", visible_ms=_p99(30.0), server_cpu_s=1.0)
    good = _run("cowrite-yjs-hocuspocus", "a50", visible_ms=_p99(20.0), server_cpu_s=1.4)
    slow = _run("cowrite-yjs", "a50", visible_ms=_p99(40.0), server_cpu_s=1.6)
    slow.client = "y-websocket"
    idle_h = _run("hocuspocus", "c", rss_per_conn_bytes=26_000.0)
    idle_c = _run("cowrite-yjs", "c", rss_per_conn_bytes=20_000.0)
    idle_h.still_connected = idle_h.clients
    idle_c.still_connected = idle_c.clients
    vs = {
        (v.server, v.target.split(": ", 1)[1]): v
        for v in yjs_report.verdicts([hocus, good, slow, idle_h, idle_c])
    }
    assert vs[("cowrite-yjs-hocuspocus", "p99 edit→visible ≤ Hocuspocus'")].mark == "PASS"
    assert vs[("cowrite-yjs-hocuspocus", "CPU per delivered update ≤ 1.5× Hocuspocus'")].ok
    assert vs[("cowrite-yjs", "p99 edit→visible ≤ Hocuspocus'")].mark == "MISS"
    cpu = vs[("cowrite-yjs", "CPU per delivered update ≤ 1.5× Hocuspocus'")]
    assert cpu.mark == "MISS" and cpu.ratio == pytest.approx(1.6)
    assert vs[("cowrite-yjs", "every edit delivered, every client converged")].ok
    assert vs[("cowrite-yjs", "RSS per connection ≤ Hocuspocus'")].mark == "PASS"
    section = yjs_report.render_section(
        [hocus, good, slow, idle_h, idle_c], command="x", info={}, quick=False
    )
    assert section.startswith(yjs_report.SECTION_START)
    assert section.rstrip().endswith(yjs_report.SECTION_END)
    assert "## Yjs: cowrite vs Hocuspocus and pycrdt-websocket" in section
    assert "| cowrite-yjs ÷ hocuspocus | 1.33 | 1.60 |" in section


@pytest.mark.parametrize("server", ["cowrite-yjs", "cowrite-yjs-hocuspocus"])
def test_node_generator_against_a_real_cowrite_yjs_endpoint(
    server: str, peers_js: Path, tmp_path: Path
) -> None:
    del peers_js
    scenario = bench.build_scenarios("a", clients=[3], duration=1.0)[0]
    opts = bench.Options(drain_timeout_s=20.0, logdir=tmp_path, yjs_clients=True)
    res = asyncio.run(bench.run_one(ServerDef(server, yjs_clients=True), scenario, opts))

    assert res.status == "ok", res.reason
    assert res.connected == 3 and res.still_connected == 3, res.errors
    assert res.keystrokes >= 3 * 2
    assert res.edits == res.keystrokes and res.delivered == res.edits
    assert res.deliveries == 2 * res.edits
    assert res.converged and res.mismatched == 0, res.convergence  # incl. the server's text
    assert not res.errors
    if server == "cowrite-yjs-hocuspocus":  # SyncStatus: every edit acknowledged once durable
        assert res.acked == res.edits
    else:
        assert res.acked == 0 and res.ack_ms is None
    assert res.cpu_us_per_delivery is not None


def test_nodeflate_variants_refuse_compression_without_touching_the_server_code(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from benchmarks import profile_serve
    from cowrite.server import run
    from cowrite.server.config import Settings

    monkeypatch.setattr(run, "server_config", run.server_config)  # restored afterwards
    monkeypatch.delenv("COWRITE_BENCH_PROFILE", raising=False)
    monkeypatch.delenv("COWRITE_BENCH_WS_DEFLATE", raising=False)
    shipped = ServerDef("cowrite-yjs").server_command(1, Path("/x"))
    assert shipped[1:3] == ["-m", "cowrite.cli"]
    variant = ServerDef("cowrite-yjs-nodeflate", yjs_clients=True)
    assert variant.kind == "y-websocket" and variant.base == "cowrite-yjs"
    command = variant.server_command(1, Path("/x"))
    assert command[1:4] == ["-m", "benchmarks.profile_serve", "--no-ws-deflate"]
    assert run.server_config(None, Settings(ws_deflate=True)).ws_per_message_deflate is True
    profile_serve._refuse_deflate()
    assert run.server_config(None, Settings(ws_deflate=True)).ws_per_message_deflate is False


def test_the_probe_times_commits_persists_and_collections(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``COWRITE_BENCH_PROBE`` starts cowrite through ``profile_serve --probe-out``, whose report
    (written at exit) times the SQLite commits and GC pauses (in a child: it patches classes)."""
    monkeypatch.setenv("COWRITE_BENCH_PROBE", str(tmp_path / "probe"))
    monkeypatch.delenv("COWRITE_BENCH_PROFILE", raising=False)
    command = ServerDef("cowrite-yjs").server_command(1, Path("/x"))
    assert command[1:5] == [
        "-m",
        "benchmarks.profile_serve",
        "--probe-out",
        str(tmp_path / "probe"),
    ]
    code = (
        "import asyncio, gc, sys\n"
        "from pathlib import Path\n"
        "from benchmarks.pipeline_probe import install\n"
        "install(Path(sys.argv[1]))\n"
        "from cowrite.adapters.store.sqlite import SQLiteStore\n"
        "async def main():\n"
        "    async with SQLiteStore(Path(sys.argv[1]) / 'db') as store:\n"
        "        await store.create_document('d', title='', now_ms=1)\n"
        "        await store.append_update('d', b'x', now_ms=1)\n"
        "asyncio.run(main())\n"
        "gc.collect()\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True, timeout=60)
    (report,) = tmp_path.glob("probe-*.txt")
    lines = report.read_text().splitlines()
    assert lines[0].startswith("commit: n 2,")
    assert lines[2] == "persist: none"  # no server pipeline ran
    assert lines[5].startswith("gc generation 2: n ")
