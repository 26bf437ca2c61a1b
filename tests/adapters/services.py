"""Real backing services for the adapter tests, as throwaway child processes.

Import with ``sys.path`` set to this folder (as ``tests/server`` does for protocol_clients.py)::

    sys.path.insert(0, str(Path(__file__).parent))
    import services

PostgreSQL: ``services.postgres_database()`` gives a new, empty database (a DSN) on the run-wide
server ``services.shared_postgres()``, started on first use and stopped when the run ends;
``services.postgres_emptied_database(name)`` reuses one database with its tables emptied (faster).
``PostgresServer.create()`` makes a private server (its own data directory and port) that a test
may stop and restart; ``destroy()`` it at the end.

Every server listens on a random free port on 127.0.0.1, keeps its data in a fresh temporary
directory and dies with the test process, even if that is killed (`die_with_us`: start servers
from the main thread, not from ``asyncio.to_thread``, or they outlive a killed run). Nothing here
installs binaries: ``scripts/ensure-services`` does (as root; ``scripts/test`` runs it first). If a
service cannot be started, the test FAILS under CI (``CI=true``) and is skipped with the reason
elsewhere.

The service classes live in ``cowrite_dev.services`` and ``cowrite_dev.http_services`` (the
cluster benchmark starts the same services); this module adds the tests' policy (skip, or fail
under CI) and run-wide instances.
Redis: ``shared_redis()`` / ``private_redis()`` alike. nginx: ``private_nginx(upstreams)`` runs
``deploy/nginx.conf`` in front of ``host:port`` upstreams. ``CowriteInstance`` is one ``cowrite
serve`` process (see ``tests/server/cluster_harness.py``).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import pytest

from cowrite_dev.http_services import (
    CowriteInstance,
    NginxServer,
    nginx_binary,
    render_nginx_site,
)
from cowrite_dev.services import (
    LocalServer,
    PostgresServer,
    RedisServer,
    ServiceError,
    die_with_us,
    free_port,
    postgres_bindir,
    redis_binary,
)

__all__ = [
    "CowriteInstance",
    "NginxServer",
    "PostgresServer",
    "RedisServer",
    "ServiceError",
    "die_with_us",
    "free_port",
    "in_ci",
    "nginx_binary",
    "postgres_bindir",
    "postgres_database",
    "postgres_emptied_database",
    "private_nginx",
    "private_postgres",
    "private_redis",
    "redis_binary",
    "render_nginx_site",
    "shared_postgres",
    "shared_redis",
    "unavailable",
]


S = TypeVar("S", bound=LocalServer)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it in CI, where every service must be there."""
    if in_ci():
        pytest.fail(f"{reason} (CI requires it: see scripts/ensure-services)", pytrace=False)
    pytest.skip(reason)


def _started(what: str, create: Callable[[], S]) -> S:
    """``create()``, or `unavailable` (skip, or fail under CI) if ``what`` cannot be started."""
    try:
        return create()
    except ServiceError as exc:
        unavailable(f"cannot start {what}: {exc}")


_shared: dict[str, Any] = {}


def _run_wide(what: str, create: Callable[[], S]) -> S:
    """The run-wide server ``what``, started on first use (and again if it died) and destroyed
    when the run ends."""
    server: S | None = _shared.get(what)
    if server is None or not server.running:
        if server is not None:
            server.destroy()
        server = _started(what, create)
        atexit.register(server.destroy)
        _shared[what] = server
    return server


# --- PostgreSQL -----------------------------------------------------------------------------------


def shared_postgres() -> PostgresServer:
    """The run-wide server, started on first use and destroyed when the run ends.

    Calls `unavailable` (skip, or fail under CI) if it cannot be had.
    """
    return _run_wide("PostgreSQL", PostgresServer.create)


def postgres_database() -> str:
    """The DSN of a new, empty database on the run-wide server."""
    return shared_postgres().create_database()


def postgres_emptied_database(name: str) -> str:
    """The DSN of database ``name`` on the run-wide server, its tables emptied (see
    `PostgresServer.emptied_database`): for suites that run many short tests."""
    return shared_postgres().emptied_database(name)


def private_postgres() -> PostgresServer:
    """A server of its own, for a test that stops it; ``destroy()`` it at the end."""
    return _started("PostgreSQL", PostgresServer.create)


# --- Redis ----------------------------------------------------------------------------------------
# shared_redis() for the run (tests keep apart by channel prefix), private_redis() for a test that
# kills and restarts its own.


def shared_redis() -> RedisServer:
    """The run-wide server, started on first use and destroyed when the run ends.

    Calls `unavailable` (skip, or fail under CI) if it cannot be had.
    """
    return _run_wide("Redis", RedisServer.create)


def private_redis() -> RedisServer:
    """A server of its own, for a test that kills it; ``destroy()`` it at the end."""
    return _started("Redis", RedisServer.create)


# --- nginx ----------------------------------------------------------------------------------------


def private_nginx(upstreams: Sequence[str]) -> NginxServer:
    """nginx from ``deploy/nginx.conf`` in front of ``upstreams`` (``host:port``), on a free port;
    ``destroy()`` it at the end."""
    return _started("nginx", lambda: NginxServer.create(upstreams))
