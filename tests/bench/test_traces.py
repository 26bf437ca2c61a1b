"""The trace-replay benchmark harness: correctness of the contenders, never their speed."""

from __future__ import annotations

import gzip
import json
import random
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from benchmarks import traces as bench

# "héllo" -> ... -> "😀é wold!": non-ASCII inserts, deletes across 1-, 2- and 4-byte characters.
SEQUENTIAL: dict[str, Any] = {
    "startContent": "",
    "endContent": "😀é wold!",
    "txns": [
        {"time": "t0", "patches": [[0, 0, "héllo"]]},
        {"time": "t1", "patches": [[5, 0, " wörld😀"]]},  # héllo wörld😀
        {"time": "t2", "patches": [[1, 1, "e"], [11, 1, "!"]]},  # hello wörld!
        {"time": "t3", "patches": [[0, 0, "😀é "]]},  # 😀é hello wörld!
        {"time": "t4", "patches": [[3, 6, ""]]},  # 😀é wörld!
        {"time": "t5", "patches": [[4, 2, "o"]]},  # 😀é wold!
    ],
}
SEQUENTIAL_EDITS = 7

# Two agents, concurrent branches (1 || 2, 3 || 4), merges with several parents, non-ASCII.
CONCURRENT: dict[str, Any] = {
    "kind": "concurrent",
    "endContent": "éHello wörld!?",
    "numAgents": 2,
    "txns": [
        {"parents": [], "agent": 0, "patches": [[0, 0, "héllo"]]},  # héllo
        {"parents": [0], "agent": 1, "patches": [[5, 0, " wörld😀"]]},  # héllo wörld😀
        {"parents": [0], "agent": 0, "patches": [[0, 1, "H"]]},  # Héllo
        # after 1+2: "Héllo wörld😀"
        {"parents": [1, 2], "agent": 1, "patches": [[11, 1, "!"], [1, 1, "e"]]},  # Hello wörld!
        {"parents": [2], "agent": 0, "patches": [[4, 0, "😀"]]},  # Héll😀o
        # after 3+4: "Hell😀o wörld!"
        {"parents": [3, 4], "agent": 0, "patches": [[4, 1, ""], [12, 0, "?"]]},  # Hello wörld!?
        {"parents": [5], "agent": 1, "patches": [[0, 0, "é"]]},  # éHello wörld!?
    ],
}
CONCURRENT_EDITS = 9


def _write(directory: Path, name: str, trace: dict[str, Any], *, gz: bool) -> Path:
    data = json.dumps(trace, ensure_ascii=False).encode("utf-8")
    if gz:
        path = directory / f"{name}.json.gz"
        path.write_bytes(gzip.compress(data))
    else:
        path = directory / f"{name}.json"
        path.write_bytes(data)
    return path


def _wrong(trace: dict[str, Any]) -> dict[str, Any]:
    return {**trace, "endContent": trace["endContent"] + "x"}


def test_trace_files_round_trip(tmp_path: Path) -> None:
    seq = _write(tmp_path, "seq", SEQUENTIAL, gz=True)
    conc = _write(tmp_path, "conc", CONCURRENT, gz=False)
    assert bench.load_trace(seq) == SEQUENTIAL
    assert bench.load_trace(conc) == CONCURRENT
    assert [bench.trace_name(p) for p in bench.find_traces(tmp_path)] == ["conc", "seq"]
    assert bench.trace_kind(SEQUENTIAL) == "sequential"
    assert bench.trace_kind(CONCURRENT) == "concurrent"
    assert not bench.is_ascii_trace(SEQUENTIAL)


def test_str_contender_sequential() -> None:
    result = bench.run_contender("str", SEQUENTIAL, "seq")
    assert result.status == "done"
    assert result.ok is True
    assert result.edits == SEQUENTIAL_EDITS
    assert result.encoded_bytes == len(SEQUENTIAL["endContent"].encode("utf-8"))


def test_str_contender_memory_run_reports_heap() -> None:
    result = bench.run_contender("str", SEQUENTIAL, "seq", mode="memory")
    assert result.ok is True
    assert result.heap_peak_bytes is not None


def test_str_contender_detects_wrong_result() -> None:
    result = bench.run_contender("str", _wrong(SEQUENTIAL), "seq")
    assert result.status == "done"
    assert result.ok is False


def test_str_contender_is_not_applicable_to_concurrent_traces() -> None:
    result = bench.run_contender("str", CONCURRENT, "conc")
    assert result.status == "n/a"


def test_pycrdt_contender_sequential_non_ascii() -> None:
    pytest.importorskip("pycrdt")
    result = bench.run_contender("pycrdt", SEQUENTIAL, "seq")
    assert result.status == "done", result.detail
    assert result.ok is True
    assert result.edits == SEQUENTIAL_EDITS
    assert result.encoded_bytes > 0
    assert bench.run_contender("pycrdt", _wrong(SEQUENTIAL), "seq").ok is False


def test_pycrdt_contender_sequential_ascii_fast_path() -> None:
    pytest.importorskip("pycrdt")
    trace = {
        "startContent": "ab",
        "endContent": "aXYb!",
        "txns": [{"patches": [[1, 0, "XY"]]}, {"patches": []}, {"patches": [[4, 0, "!"]]}],
    }
    assert bench.is_ascii_trace(trace)
    result = bench.run_contender("pycrdt", trace, "ascii")
    assert (result.ok, result.edits) == (True, 2)


def test_pycrdt_contender_concurrent_non_ascii() -> None:
    pytest.importorskip("pycrdt")
    result = bench.run_contender("pycrdt", CONCURRENT, "conc")
    assert result.status == "done", result.detail
    assert result.kind == "concurrent"
    assert result.ok is True
    assert result.edits == CONCURRENT_EDITS
    assert bench.run_contender("pycrdt", _wrong(CONCURRENT), "conc").ok is False


def test_pycrdt_contender_concurrent_ascii_fast_path() -> None:
    pytest.importorskip("pycrdt")
    trace = {
        "kind": "concurrent",
        "endContent": "ab cd",
        "numAgents": 2,
        "txns": [
            {"parents": [], "agent": 0, "patches": [[0, 0, "ab"]]},
            {"parents": [0], "agent": 1, "patches": [[2, 0, " c"]]},
            {"parents": [0], "agent": 0, "patches": []},
            {"parents": [1, 2], "agent": 0, "patches": [[4, 0, "d"]]},
        ],
    }
    result = bench.run_contender("pycrdt", trace, "ascii")
    assert (result.ok, result.edits) == (True, 3)


def test_utf8_offsets_match_naive_encoding() -> None:
    rng = random.Random(1234)
    alphabet = "ab \né😀→ƒ"
    text = ""
    offsets = bench.Utf8Offsets(text)
    for _ in range(2000):
        pos = rng.randint(0, len(text))
        delete = rng.randint(0, min(3, len(text) - pos))
        ins = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 3)))
        expected_pos = len(text[:pos].encode("utf-8"))
        expected_delete = len(text[pos : pos + delete].encode("utf-8"))
        assert offsets.splice(pos, delete, ins) == (expected_pos, expected_delete)
        text = text[:pos] + ins + text[pos + delete :]
        probe = rng.randint(0, len(text))
        assert offsets.byte_offset(probe) == len(text[:probe].encode("utf-8"))
    fresh = bench.Utf8Offsets(text)
    assert [fresh.byte_offset(i) for i in range(len(text) + 1)] == [
        offsets.byte_offset(i) for i in range(len(text) + 1)
    ]


def test_replace_section_keeps_other_sections() -> None:
    before = "# Benchmarks\n\n## Server: rooms\n\nrooms table\n\n"
    after = "\n\n## Server: latency\n\nlatency table\n"
    old = f"{bench.SECTION_START}\n## Engine: trace replay\nold numbers\n{bench.SECTION_END}"
    new = f"{bench.SECTION_START}\n## Engine: trace replay\nnew numbers\n{bench.SECTION_END}\n"
    updated = bench.replace_section(before + old + after, new)
    assert updated == before + new.rstrip("\n") + after
    assert "old numbers" not in updated
    # Idempotent: replacing again changes nothing.
    assert bench.replace_section(updated, new) == updated


def test_replace_section_appends_or_creates() -> None:
    section = f"{bench.SECTION_START}\nx\n{bench.SECTION_END}\n"
    appended = bench.replace_section("# Benchmarks\n\n## Other\n\ntext\n", section)
    assert appended.startswith("# Benchmarks\n\n## Other\n\ntext\n\n" + bench.SECTION_START)
    assert appended.endswith(bench.SECTION_END + "\n")
    created = bench.replace_section("", section)
    assert created.startswith("# Benchmarks\n")
    assert created.count(bench.SECTION_START) == 1


def test_main_runs_workers_and_updates_only_its_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("pycrdt")
    traces = tmp_path / "traces"
    traces.mkdir()
    _write(traces, "seq", SEQUENTIAL, gz=True)
    _write(traces, "conc", CONCURRENT, gz=False)
    output = tmp_path / "benchmarks.md"
    output.write_text("# Benchmarks\n\n## Other suite\n\nkeep me\n", encoding="utf-8")
    argv = ["--traces", str(traces), "--contenders", "str,pycrdt", "--repeat", "1"]
    assert bench.main([*argv, "--output", str(output)]) == 0
    text = output.read_text(encoding="utf-8")
    assert "## Other suite\n\nkeep me\n" in text
    assert text.count(bench.SECTION_START) == 1
    assert text.count(bench.SECTION_END) == 1
    assert "## Engine: trace replay" in text
    assert "### seq" in text
    assert "### conc" in text
    assert "**NO**" not in text
    assert "| `str` | n/a |" in text  # concurrent trace
    assert "error" not in text
    # A second run replaces the section instead of appending another one.
    assert bench.main([*argv, "--only", "seq", "--output", str(output)]) == 0
    text = output.read_text(encoding="utf-8")
    assert text.count(bench.SECTION_START) == 1
    assert "### conc" not in text
    assert "keep me" in text
    capsys.readouterr()


def test_main_reports_wrong_results(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path, "seq", _wrong(SEQUENTIAL), gz=True)
    argv = ["--traces", str(tmp_path), "--contenders", "str", "--repeat", "1", "--no-write"]
    assert bench.main(argv) == 1
    out = capsys.readouterr().out
    assert "**NO**" in out
    assert not list(tmp_path.glob("*.md"))


def test_cowrite_contender_uses_the_replay_report(monkeypatch: pytest.MonkeyPatch) -> None:
    """The cowrite contender trusts ``ReplayReport`` (stand-in module: no engine needed)."""
    calls: list[tuple[str, bool]] = []

    def replay_trace(trace: dict[str, Any], name: str, *, measure_memory: bool = False) -> Any:
        calls.append((name, measure_memory))
        return SimpleNamespace(
            trace=name,
            kind=bench.trace_kind(trace),
            edits=bench.count_edits(trace),
            seconds=0.25,
            edits_per_second=bench.count_edits(trace) / 0.25,
            peak_memory_bytes=12_345 if measure_memory else 0,
            encoded_bytes=99,
            ok=True,
        )

    fake = ModuleType("cowrite.replay")
    fake.replay_trace = replay_trace  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "cowrite.replay", fake)
    timed = bench.run_contender("cowrite", CONCURRENT, "conc")
    assert (timed.status, timed.ok, timed.edits, timed.seconds) == ("done", True, 9, 0.25)
    assert timed.encoded_bytes == 99
    assert timed.heap_peak_bytes is None
    memory = bench.run_contender("cowrite", CONCURRENT, "conc", mode="memory")
    assert memory.heap_peak_bytes == 12_345
    assert calls == [("conc", False), ("conc", True)]


def test_cowrite_contender_unavailable_without_replay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cowrite.replay", None)  # makes the import fail
    result = bench.run_contender("cowrite", SEQUENTIAL, "seq")
    assert result.status == "unavailable"
