"""The sessions' events (``client.session_events``): one mechanism for native and Yjs sessions."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal, get_args

import pytest

from cowrite.client.connection import DocumentSession
from cowrite.client.session_events import EventName, SessionEvents
from cowrite.client.yjs import YjsEvent, YjsSession

Names = Literal["ping", "pong"]


class Session(SessionEvents[Names]):
    _EVENTS = get_args(Names)

    def __init__(self) -> None:
        self._listeners: dict[str, list[Any]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def _ids(self) -> dict[str, object]:
        return {"doc": "d"}


def test_each_session_accepts_its_own_events_only() -> None:
    assert get_args(EventName) == DocumentSession._EVENTS
    assert get_args(YjsEvent) == YjsSession._EVENTS
    session = Session()
    for garbage in ("", "PING", "change", "awareness", "ping "):
        with pytest.raises(ValueError, match="unknown event"):
            session.on(garbage, print)  # type: ignore[arg-type]


async def test_callbacks_run_in_order_until_unsubscribed_and_failures_are_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    session = Session()
    seen: list[tuple[str, Any]] = []
    done = asyncio.Event()

    def broken(payload: Any) -> None:
        raise RuntimeError("listener bug")

    async def later(payload: Any) -> None:
        seen.append(("async", payload))
        done.set()

    async def failing(payload: Any) -> None:
        raise RuntimeError("async listener bug")

    stop = session.on("ping", lambda payload: seen.append(("sync", payload)))
    session.on("ping", broken)
    session.on("ping", later)
    session.on("ping", failing)
    with caplog.at_level(logging.ERROR, logger="cowrite.client"):
        session._emit("ping", 1)
        session._emit("pong", 2)  # nobody listens: nothing happens
        await done.wait()
        while session._tasks:  # the failing task's done callback logs and forgets it
            await asyncio.sleep(0)
    assert seen == [("sync", 1), ("async", 1)]
    assert "'ping' listener failed" in caplog.text and "a listener task failed" in caplog.text
    stop()
    stop()  # twice: still fine
    session._emit("ping", 3)
    await asyncio.sleep(0)
    assert ("sync", 3) not in seen and ("async", 3) in seen
