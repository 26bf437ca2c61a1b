"""Shared.flush_soon (native and Yjs connections): one loop callback per tick flushes every
listed connection, and one failing flush does not hold back the others' frames."""

from __future__ import annotations

import asyncio

import pytest

from cowrite.server.shared import Shared


class Conn:
    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    def _flush(self) -> None:
        self.log.append(self.name)
        if self.fail:
            raise RuntimeError("boom")

    def _ids(self) -> dict[str, object]:
        return {"session": self.name}


async def test_one_callback_flushes_every_connection_listed_in_the_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log: list[str] = []
    flusher = Shared(30.0)
    loop = asyncio.get_running_loop()
    scheduled = 0
    call_soon = loop.call_soon

    def counting(*args: object, **kwargs: object) -> asyncio.Handle:
        nonlocal scheduled
        scheduled += getattr(args[0], "__name__", "") == "_flush"  # (not the test's own steps)
        return call_soon(*args, **kwargs)  # type: ignore[arg-type]

    loop.call_soon = counting  # type: ignore[method-assign]
    try:
        for conn in (Conn("a", log), Conn("b", log, fail=True), Conn("c", log)):
            flusher.flush_soon(conn)
        assert log == []  # nothing before the end of the tick
        await asyncio.sleep(0)
    finally:
        loop.call_soon = call_soon  # type: ignore[method-assign]
    assert log == ["a", "b", "c"]  # b's failure is logged, c still flushed
    assert scheduled == 1
    assert "flush failed" in caplog.text
    flusher.flush_soon(Conn("d", log))  # the next tick schedules again
    await asyncio.sleep(0)
    assert log[-1] == "d"
