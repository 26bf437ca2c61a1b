"""``cowrite serve``'s interpreter switch interval (``run.switch_interval``,
``COWRITE_SWITCH_INTERVAL_MS``): the SQLite writer's wait for the lock after each statement."""

from __future__ import annotations

import sys

import pytest

from cowrite.server import run
from cowrite.server.run import SERVE_SWITCH_INTERVAL_S


def test_the_default_is_shorter_than_cpythons() -> None:
    assert run.switch_interval({}) == SERVE_SWITCH_INTERVAL_S
    assert run.switch_interval({"COWRITE_SWITCH_INTERVAL_MS": " "}) == SERVE_SWITCH_INTERVAL_S
    assert SERVE_SWITCH_INTERVAL_S < 0.005


@pytest.mark.parametrize(("raw", "seconds"), [("0.5", 0.0005), ("5", 0.005), ("100", 0.1)])
def test_an_interval_can_be_chosen(raw: str, seconds: float) -> None:
    assert run.switch_interval({"COWRITE_SWITCH_INTERVAL_MS": raw}) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["0", "-1", "0.01", "101", "nan", "inf", "5ms", "", "1e400"])
def test_a_bad_interval_is_refused_before_the_server_starts(
    bad: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if not bad:  # empty: the default, not an error
        assert run.switch_interval({"COWRITE_SWITCH_INTERVAL_MS": bad}) == SERVE_SWITCH_INTERVAL_S
        return
    with pytest.raises(ValueError, match="COWRITE_SWITCH_INTERVAL_MS"):
        run.switch_interval({"COWRITE_SWITCH_INTERVAL_MS": bad})
    before = sys.getswitchinterval()
    monkeypatch.setenv("COWRITE_SWITCH_INTERVAL_MS", bad)
    assert run.serve(port=0, data=":memory:") == 2
    assert "COWRITE_SWITCH_INTERVAL_MS" in capsys.readouterr().err
    assert sys.getswitchinterval() == before


def test_serve_sets_it_for_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[float] = []
    monkeypatch.setattr(run.Server, "run", lambda self: seen.append(sys.getswitchinterval()))
    monkeypatch.setattr(run, "configure_logging", lambda *a: None)  # the root logger stays
    monkeypatch.setenv("COWRITE_SWITCH_INTERVAL_MS", "0.5")
    before = sys.getswitchinterval()
    try:
        assert run.serve(port=0, data=":memory:") == 0
    finally:
        sys.setswitchinterval(before)
    assert seen == [pytest.approx(0.0005)]


def test_a_bad_sqlite_sync_pipeline_switch_is_refused_before_the_server_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COWRITE_SQLITE_SYNC_PIPELINE", "maybe")
    assert run.serve(port=0, data=":memory:") == 2
    assert "COWRITE_SQLITE_SYNC_PIPELINE must be 1 or 0" in capsys.readouterr().err
