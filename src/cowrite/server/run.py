"""``cowrite serve``: uvicorn around ``create_app``, JSON logs, graceful SIGTERM."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
import uvicorn

from cowrite.server.app import create_app
from cowrite.server.config import Settings
from cowrite.server.gcpolicy import tune_for_latency
from cowrite.server.http_guard import guarded_h11


def configure_logging(level: str = "info", json_logs: bool = True) -> None:
    """Structured logs on stderr: one JSON object per line, ``extra=`` fields included."""
    processors: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        structlog.processors.format_exc_info,
    ]
    renderer = structlog.processors.JSONRenderer() if json_logs else structlog.dev.ConsoleRenderer()
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=processors,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


class _Server(uvicorn.Server):
    """On SIGTERM/SIGINT: tell clients to reconnect and close them, then let uvicorn stop."""

    async def shutdown(self, sockets: Any = None) -> None:
        app = self.config.loaded_app
        state = getattr(getattr(app, "state", None), "cowrite", None)
        if state is None:  # wrapped by middleware: find the Starlette app
            inner = getattr(app, "app", None)
            state = getattr(getattr(inner, "state", None), "cowrite", None)
        if state is not None:
            await state.announce_shutdown()
        await super().shutdown(sockets)
        # a graceful stop is a normal exit: uvicorn would re-raise the captured SIGTERM after
        # serving, so the process would die of the signal instead of exiting 0
        self._captured_signals.clear()


def server_config(app: Any, settings: Settings) -> uvicorn.Config:
    """uvicorn's configuration for ``app`` (``cowrite serve``; the tests use it too)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        ws_max_size=settings.max_message_bytes + 1024,
        ws_ping_interval=None,
        timeout_graceful_shutdown=10,
        lifespan="on",
        http=guarded_h11(settings.http_request_timeout_s),  # uvicorn never times out requests
    )


def serve(
    *,
    host: str | None = None,
    port: int | None = None,
    data: str | None = None,
    database: str | None = None,
    redis: str | None = None,
    secret: str | None = None,
    log_level: str = "info",
) -> int:
    try:
        settings = Settings.from_env(
            host=host, port=port, data=data, database=database, redis=redis, secret=secret
        )
    except ValueError as exc:
        print(f"cowrite serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(log_level, settings.log_json)
    server = _Server(server_config(create_app(settings), settings))
    tune_for_latency()  # no full GC pauses every few seconds (see gcpolicy)
    server.run()
    return 0
