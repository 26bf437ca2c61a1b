"""Optional OpenTelemetry tracing: spans for connections, joins and loads, each edit's way
(received → stored → broadcast) and REST calls, with document and connection ids.

Off unless asked: ``COWRITE_OTEL=1`` (``Settings.otel``), or one of the standard variables that
configure an exporter (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``,
``OTEL_TRACES_EXPORTER``); then the OTLP/HTTP exporter of the ``otel`` extra
(``pip install 'cowrite[otel]'``) sends them wherever those variables say (service name
``OTEL_SERVICE_NAME``, default "cowrite"). Off, every call here is one attribute test and
returns a shared no-op: nothing is allocated per edit.

With tracing on, JSON log lines carry ``trace_id`` and ``span_id`` of the span they were written
in (``TraceIds``, added to the log processors by ``configure_logging``).

Spans: ``cowrite.connection`` (a WebSocket's life), ``cowrite.join`` with ``cowrite.load`` below
it when the document had to be loaded, ``cowrite.edit`` (a client's edit, ended once broadcast)
with ``cowrite.store`` (the durable write) and ``cowrite.broadcast`` below it, ``cowrite.rest``
(one HTTP call). Attributes: ``cowrite.doc``, ``cowrite.session``, ``cowrite.version``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

log = logging.getLogger("cowrite.server")

_EXPORTER_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)


class _Off:
    """What every call returns while tracing is off."""

    def end(self) -> None:
        pass

    def set_attribute(self, key: str, value: Any) -> None:
        pass


OFF = _Off()


class Tracing:
    """The server's tracer, or nothing (``enabled`` False)."""

    def __init__(self, tracer: Any = None, provider: Any = None) -> None:
        self._tracer = tracer
        self._provider = provider
        self.enabled = tracer is not None

    @classmethod
    def from_settings(cls, enabled: bool, env: Mapping[str, str] | None = None) -> Tracing:
        """On when ``enabled`` or an exporter is configured by the standard variables."""
        env = os.environ if env is None else env
        if not enabled and not any(env.get(v) for v in _EXPORTER_VARIABLES):
            return cls()
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError:
            log.warning("tracing asked for, but the 'otel' extra is not installed: tracing off")
            return cls()
        return cls.with_processor(BatchSpanProcessor(OTLPSpanExporter()))

    @classmethod
    def with_processor(cls, processor: Any) -> Tracing:
        """Tracing through a span processor of the OpenTelemetry SDK (tests give a simple one
        over an in-memory exporter)."""
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        name = os.environ.get("OTEL_SERVICE_NAME", "cowrite")
        provider = TracerProvider(resource=Resource.create({"service.name": name}))
        provider.add_span_processor(processor)
        return cls(provider.get_tracer("cowrite"), provider)

    def shutdown(self) -> None:
        if self._provider is not None:
            self._provider.shutdown()

    def start(self, name: str, parent: Any = None, **attributes: Any) -> Any:
        """A started span (end it with ``.end()``), child of ``parent`` (a span) or of the
        current one; ``OFF`` when tracing is off."""
        if not self.enabled:
            return OFF
        from opentelemetry import trace

        context = trace.set_span_in_context(parent) if parent not in (None, OFF) else None
        return self._tracer.start_span(name, context=context, attributes=_attrs(attributes))

    @contextlib.contextmanager
    def span(self, name: str, parent: Any = None, **attributes: Any) -> Iterator[Any]:
        """A span around a block, current inside it (log lines get its ids)."""
        if not self.enabled:
            yield OFF
            return
        from opentelemetry import trace

        span = self.start(name, parent, **attributes)
        with trace.use_span(span, end_on_exit=True):
            yield span


def _attrs(attributes: dict[str, Any]) -> dict[str, Any]:
    return {f"cowrite.{k}": v for k, v in attributes.items() if v is not None}


_trace: Any
try:
    from opentelemetry import trace as _trace
except ImportError:  # the 'otel' extra is optional
    _trace = None


def trace_ids(_logger: Any, _method: str, event: dict[str, Any]) -> dict[str, Any]:
    """A structlog processor: the current span's trace and span ids, when there is one."""
    if _trace is None:
        return event
    context = _trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


class TracingMiddleware:
    """One ``cowrite.rest`` span per HTTP request (WebSockets have their own spans)."""

    def __init__(self, app: Any, tracing: Tracing) -> None:
        self.app = app
        self.tracing = tracing

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        with self.tracing.span(
            "cowrite.rest", method=scope.get("method"), path=scope.get("path")
        ) as span:
            status: list[int] = []

            async def sending(message: Any) -> None:
                if message["type"] == "http.response.start":
                    status.append(message["status"])
                await send(message)

            await self.app(scope, receive, sending)
            if status:
                span.set_attribute("http.status_code", status[0])
