"""``cowrite serve``: uvicorn around ``create_app``, JSON logs, graceful SIGTERM."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import sys
from types import FrameType
from typing import Any

import structlog
import uvicorn

from cowrite.adapters.store._wal_sync import pipeline_enabled
from cowrite.server.app import create_app
from cowrite.server.config import Settings
from cowrite.server.gcpolicy import tune_for_latency
from cowrite.server.http_guard import guarded_h11
from cowrite.server.tracing import trace_ids
from cowrite.server.uvicorn_ws import protocol_class


def configure_logging(level: str = "info", json_logs: bool = True) -> None:
    """Structured logs on stderr: one JSON object per line, ``extra=`` fields included."""
    processors: list[Any] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
        trace_ids,
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


class _NoStartupTraceback(logging.Filter):
    """uvicorn logs a failed startup's whole traceback as one log line; ``serve`` says why in
    one plain line instead. Remembers uvicorn's last error (a port in use...) for that line."""

    def __init__(self) -> None:
        super().__init__()
        self.last_error = ""

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Traceback (most recent call last)"):
            return False
        if record.levelno >= logging.ERROR:
            self.last_error = record.getMessage()
        return True


def _wake(nap: asyncio.Future[None]) -> None:
    if not nap.done():
        nap.set_result(None)


class Server(uvicorn.Server):
    """``cowrite serve``'s uvicorn server. Prints the URL to open once listening. On SIGTERM or
    SIGINT: tell clients to reconnect and close them, then let uvicorn stop. Its main loop ticks
    once a second, not ten times."""

    _nap: asyncio.Future[None] | None = None

    async def main_loop(self) -> None:
        """uvicorn's, at 1 Hz: ``on_tick`` refreshes the Date header (every tenth count) and
        checks ``should_exit``; a signal (``handle_exit``) wakes it at once. Ten wake-ups a
        second cost an idle server ~0.08 % of a core (docs/benchmarks.md, idle CPU); setting
        ``should_exit`` without a signal is seen within a second."""
        loop = asyncio.get_running_loop()
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 10) % 864000
            nap = self._nap = loop.create_future()
            timer = loop.call_later(1.0, _wake, nap)
            try:
                await nap
            finally:
                timer.cancel()
                self._nap = None
            should_exit = await self.on_tick(counter)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        nap = self._nap
        if nap is not None:  # (a signal handler: the loop may be anywhere, hence threadsafe)
            nap.get_loop().call_soon_threadsafe(_wake, nap)

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets)
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                if host in ("0.0.0.0", "::"):
                    host = "127.0.0.1"
                if ":" in host:
                    host = f"[{host}]"
                print(f"cowrite is running: open http://{host}:{port}/", flush=True)
                return

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
        # the larger of the two protocols' frame limits (each checks its own; a Yjs client's
        # first sync after offline work can be megabytes)
        ws=protocol_class() or "auto",  # uvicorn's sans-I/O protocol, slimmed (uvicorn_ws)
        loop=event_loop(),
        ws_max_size=max(settings.max_message_bytes, settings.max_yjs_frame_bytes) + 1024,
        ws_ping_interval=None,
        ws_per_message_deflate=settings.ws_deflate,
        timeout_graceful_shutdown=10,
        lifespan="on",
        http=guarded_h11(settings.http_request_timeout_s),  # uvicorn never times out requests
    )


LOOPS = ("auto", "asyncio", "uvloop")


def event_loop(env: dict[str, str] | None = None) -> str:
    """uvicorn's ``loop``: ``COWRITE_LOOP`` (auto, asyncio or uvloop), by default uvloop when it
    is installed (a dependency of cowrite; docs/benchmarks.md "Per-edit CPU"), else asyncio's."""
    want = (os.environ if env is None else env).get("COWRITE_LOOP", "") or "auto"
    if want not in LOOPS:
        raise ValueError(f"COWRITE_LOOP={want!r} is not one of {', '.join(LOOPS)}")
    if want == "auto":
        return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"
    return want


SERVE_SWITCH_INTERVAL_S = 0.001
"""CPython's switch interval in ``cowrite serve`` (CPython's default is 5 ms). A thread back from
a blocking call (the SQLite writer after each statement and its commit, a dozen or more times
per transaction) waits up to this long for the lock while the event loop or a reader thread's
encoding runs Python. With the loop saturated, single-append commits of 0.05 ms of CPU took
67 ms at p99 at 5 ms, 11 ms at 1 ms; no CPU cost was measured (docs/benchmarks.md "The durable
tail"; in the server at a third of a core, the tail is the disk and the machine's CPU)."""

SWITCH_INTERVAL_MS_RANGE = (0.05, 100.0)


def switch_interval(env: dict[str, str] | None = None) -> float:
    """CPython's switch interval for ``cowrite serve``, seconds: ``COWRITE_SWITCH_INTERVAL_MS``
    (0.05-100), by default ``SERVE_SWITCH_INTERVAL_S`` (1 ms: a thread back from a blocking
    call, the SQLite writer after each statement, waits at most that long for the lock while
    the event loop runs; docs/benchmarks.md "The durable tail")."""
    raw = (os.environ if env is None else env).get("COWRITE_SWITCH_INTERVAL_MS", "").strip()
    if not raw:
        return SERVE_SWITCH_INTERVAL_S
    low, high = SWITCH_INTERVAL_MS_RANGE
    try:
        ms = float(raw)
    except ValueError:
        ms = float("nan")
    if not low <= ms <= high:  # NaN too
        raise ValueError(
            f"COWRITE_SWITCH_INTERVAL_MS={raw!r} is not a number of ms from {low:g} to {high:g}"
        )
    return ms / 1000


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
        event_loop()  # a bad COWRITE_LOOP is said here, not as uvicorn's traceback
        interval = switch_interval()
        pipeline_enabled(None)  # a bad COWRITE_SQLITE_SYNC_PIPELINE is said here, not at first use
    except ValueError as exc:
        print(f"cowrite serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(log_level, settings.log_json)
    app = create_app(settings)
    server = Server(server_config(app, settings))
    tune_for_latency()  # no full GC pauses every few seconds (see gcpolicy)
    sys.setswitchinterval(interval)  # process-wide: the writer's commits (see switch_interval)
    quiet = _NoStartupTraceback()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    try:
        server.run()
    except SystemExit:  # uvicorn's way of saying it could not start
        error = app.state.cowrite.startup_error
        reason = _one_line(error) if error is not None else quiet.last_error or "see the log"
        print(f"cowrite serve: cannot start: {reason}", file=sys.stderr)
        return 1
    finally:
        logging.getLogger("uvicorn.error").removeFilter(quiet)
    return 0


def _one_line(error: BaseException) -> str:
    """The error and its causes, as one line: "SQLite: cannot open x.db: unable to open ..."."""
    parts: list[str] = []
    seen: BaseException | None = error
    while seen is not None and len(parts) < 4:
        text = " ".join(str(seen).split()) or type(seen).__name__
        if not any(text in part for part in parts):
            parts.append(text)
        seen = seen.__cause__ or seen.__context__
    return ": ".join(parts)[:300]
