"""``cowrite serve``'s event loop (``run.event_loop``, ``COWRITE_LOOP``)."""

from __future__ import annotations

import importlib.util

import pytest

from cowrite.server import run
from cowrite.server.config import Settings


def test_auto_is_uvloop_when_it_is_installed() -> None:
    want = "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    assert run.event_loop({}) == want
    assert run.event_loop({"COWRITE_LOOP": "auto"}) == want
    assert run.event_loop({"COWRITE_LOOP": ""}) == want


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_loop_can_be_chosen(loop: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert run.event_loop({"COWRITE_LOOP": loop}) == loop
    monkeypatch.setenv("COWRITE_LOOP", loop)
    assert run.server_config(None, Settings()).loop == loop


@pytest.mark.parametrize("bad", ["UVLOOP", "trio", "asyncio "])
def test_an_unknown_loop_is_refused_before_the_server_starts(
    bad: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="COWRITE_LOOP"):
        run.event_loop({"COWRITE_LOOP": bad})
    monkeypatch.setenv("COWRITE_LOOP", bad)
    assert run.serve(port=0, data=":memory:") == 2
    assert "COWRITE_LOOP" in capsys.readouterr().err
