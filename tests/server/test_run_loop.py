"""``cowrite serve``'s event loop (``run.event_loop``, ``COWRITE_LOOP``)."""

from __future__ import annotations

import asyncio
import importlib.util
import signal

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


async def test_the_main_loop_ticks_once_a_second_and_a_signal_ends_its_nap() -> None:
    """uvicorn's main loop wakes ten times a second; ``cowrite serve``'s once (each tick counts
    as ten, so the Date header is still refreshed every second), and SIGTERM or SIGINT
    (``handle_exit``) wake it at once rather than at the end of its nap."""
    from cowrite.server.app import create_app

    settings = Settings(data=":memory:", host="127.0.0.1", port=0)
    server = run.Server(run.server_config(create_app(settings), settings))
    server.config.log_level = "warning"
    counted: list[int] = []
    on_tick = server.on_tick

    async def counting(counter: int) -> bool:
        counted.append(counter)
        return await on_tick(counter)

    server.on_tick = counting  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(30):
        while server._nap is None:
            await asyncio.sleep(0.01)
    nap = server._nap
    server.handle_exit(signal.SIGTERM, None)
    for _ in range(5):  # the wake-up is a callback away, not a second
        await asyncio.sleep(0)
    assert nap.done()
    await asyncio.wait_for(task, 30)
    assert counted and all(c % 10 == 0 for c in counted)
