"""OpenTelemetry spans of a real server, caught by an in-memory exporter: an edit's way through
store and broadcast under its connection, a join with the document's load, REST calls; and log
lines carry the trace ids."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import uvicorn

import cowrite
from cowrite.server.app import create_app
from cowrite.server.config import Settings
from cowrite.server.tracing import OFF, Tracing, trace_ids

sdk = pytest.importorskip("opentelemetry.sdk.trace.export")
memory = pytest.importorskip("opentelemetry.sdk.trace.export.in_memory_span_exporter")


async def until(check: Callable[[], bool]) -> None:
    for _ in range(1_000):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_an_edit_is_traced_from_its_connection_to_the_broadcast(tmp_path: Any) -> None:
    exporter = memory.InMemorySpanExporter()
    tracing = Tracing.with_processor(sdk.SimpleSpanProcessor(exporter))
    app = create_app(Settings(data=str(tmp_path / "db")), tracing=tracing)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, ws_ping_interval=None))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await until(lambda: server.started)
    url = f"127.0.0.1:{sock.getsockname()[1]}"
    try:
        async with cowrite.connect(f"ws://{url}/ws", doc="traced", name="t") as doc:
            doc.text("body").insert(0, "hello")
            await doc.synced()
        async with httpx.AsyncClient(base_url=f"http://{url}") as http:
            assert (await http.get("/api/documents/traced")).status_code == 200
        await until(
            lambda: any(s.name == "cowrite.connection" for s in exporter.get_finished_spans())
        )
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 20)
    spans = exporter.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for s in spans:
        by_name.setdefault(s.name, []).append(s)
    [connection] = by_name["cowrite.connection"]
    [join] = by_name["cowrite.join"]
    [load] = by_name["cowrite.load"]
    edit = by_name["cowrite.edit"][0]
    store = next(s for s in by_name["cowrite.store"] if s.parent.span_id == edit.context.span_id)
    broadcast = next(
        s for s in by_name["cowrite.broadcast"] if s.parent.span_id == edit.context.span_id
    )
    assert join.parent.span_id == connection.context.span_id
    assert load.parent.span_id == join.context.span_id
    assert edit.parent.span_id == connection.context.span_id
    assert edit.attributes["cowrite.doc"] == "traced" and edit.attributes["cowrite.version"] >= 1
    assert store.end_time <= broadcast.start_time <= broadcast.end_time <= edit.end_time
    assert {s.context.trace_id for s in (join, load, edit, store, broadcast)} == {
        connection.context.trace_id
    }
    rest = [
        s
        for s in by_name["cowrite.rest"]
        if s.attributes["cowrite.path"] == "/api/documents/traced"
    ]
    assert rest and rest[0].attributes["http.status_code"] == 200


def test_log_lines_carry_the_trace_ids() -> None:
    exporter = memory.InMemorySpanExporter()
    tracing = Tracing.with_processor(sdk.SimpleSpanProcessor(exporter))
    with tracing.span("cowrite.rest", path="/x") as span:
        event = trace_ids(None, "info", {"event": "inside"})
    assert event["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert "trace_id" not in trace_ids(None, "info", {"event": "outside"})


def test_off_allocates_nothing_per_call() -> None:
    off = Tracing()
    assert not off.enabled and off.start("cowrite.edit", doc="d") is OFF
    with off.span("cowrite.join") as span:
        assert span is OFF
    assert Tracing.from_settings(False, env={}).enabled is False
    on = Tracing.from_settings(False, env={"OTEL_TRACES_EXPORTER": "otlp"})
    assert on.enabled
    on.shutdown()
