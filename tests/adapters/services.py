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
from the main thread, not from ``asyncio.to_thread``, or they outlive a killed run). Missing
binaries are installed by ``scripts/ensure-services`` (apt-get, as root), which the helpers run
once by themselves. If a service still cannot be started, the test FAILS under CI (``CI=true``)
and is skipped with the reason elsewhere.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import NoReturn

import pytest

REPO = Path(__file__).resolve().parents[2]
ENSURE_SERVICES = REPO / "scripts" / "ensure-services"


class ServiceError(Exception):
    """A service could not be installed or started; the message says why."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it in CI, where every service must be there."""
    if in_ci():
        pytest.fail(f"{reason} (CI requires it: see scripts/ensure-services)", pytrace=False)
    pytest.skip(f"{reason} (run scripts/ensure-services as root to install it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


_ensured: list[subprocess.CompletedProcess[str]] = []


def ensure_services() -> None:
    """Run ``scripts/ensure-services`` once per run; raise `ServiceError` if it fails."""
    if not _ensured:
        _ensured.append(
            subprocess.run(
                ["bash", str(ENSURE_SERVICES)],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
            )
        )
    done = _ensured[0]
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-1500:]
        raise ServiceError(f"scripts/ensure-services failed ({done.returncode}): {tail}")


def die_with_us(signame: str) -> list[str]:
    """A command prefix that makes the child get ``signame`` when this process dies.

    ``setpriv --pdeathsig`` (util-linux) sets PR_SET_PDEATHSIG and execs the command. The signal
    fires when the *thread* that started the child ends, so it is only used from the main thread
    (``asyncio.to_thread``'s workers come and go): start servers from there.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return []
    return [setpriv, "--pdeathsig", signame, "--"]


# --- PostgreSQL -----------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """Where initdb/postgres/psql live: Debian's newest /usr/lib/postgresql/N/bin, else PATH."""

    def version(p: Path) -> int:
        m = re.fullmatch(r"\d+", p.parent.parent.name)
        return int(m.group()) if m else 0

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=version)
    if candidates:
        return candidates[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb else None


class PostgresServer:
    """One PostgreSQL server on 127.0.0.1 with a throwaway data directory.

    ``create()`` runs initdb and starts it; ``stop()`` is a fast shutdown (what ``pg_ctl stop -m
    fast`` does: clients are disconnected, the data is kept); ``start()`` brings it back on the
    same port with the same data; ``destroy()`` stops it and deletes everything. Tuned for tests
    (no fsync: what a commit wrote survives the server being killed, not the machine crashing).
    """

    SUPERUSER = "postgres"

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.datadir = root / "data"
        self.logfile = root / "postgres.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        self._databases: set[str] = set()

    @classmethod
    def create(cls) -> PostgresServer:
        """initdb into a new temporary directory and start; raise `ServiceError` on failure."""
        bindir = postgres_bindir()
        if bindir is None:
            ensure_services()
            bindir = postgres_bindir()
            if bindir is None:
                raise ServiceError("PostgreSQL is not installed (no initdb found)")
        server = cls(bindir, Path(tempfile.mkdtemp(prefix="cowrite-pg-")))
        try:
            server._initdb()
            server.start()
        except BaseException:
            server.destroy()
            raise
        return server

    @functools.cached_property
    def major(self) -> int:
        """PostgreSQL's major version (15 for 15.18)."""
        out = subprocess.run(
            [str(self.bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout
        m = re.search(r"(\d+)(?:\.\d+)?", out)
        return int(m.group(1)) if m else 0

    # --- processes ------------------------------------------------------------------------------

    def _run_as(self) -> dict[str, object]:
        """Popen arguments that run a PostgreSQL binary as ``postgres`` when we are root."""
        if os.geteuid() != 0:
            return {}
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceError("running as root but there is no 'postgres' user") from None
        return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}

    def _initdb(self) -> None:
        as_postgres = self._run_as()
        if as_postgres:  # initdb refuses to run as root
            os.chown(self.root, int(str(as_postgres["user"])), int(str(as_postgres["group"])))
        argv = [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", self.SUPERUSER]
        argv += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.root,
            check=False,
            **as_postgres,  # type: ignore[call-overload]
        )
        if done.returncode != 0:
            raise ServiceError(f"initdb failed: {(done.stdout + done.stderr).strip()[-1500:]}")

    def start(self, timeout: float = 30.0) -> PostgresServer:
        """Start (again) and wait until it accepts connections; raise `ServiceError` if not."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        for attempt in range(3):  # a free port can be taken before postgres binds it
            if self.port == 0 or (attempt > 0 and self._port_taken()):
                self.port = free_port()
            argv = die_with_us("QUIT")  # SIGQUIT: PostgreSQL's immediate shutdown
            argv += [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port)]
            argv += ["-k", str(self.root), "-c", "listen_addresses=127.0.0.1"]
            for setting in (
                "fsync=off",
                "full_page_writes=off",
                "wal_level=minimal",
                "max_wal_senders=0",
                "shared_buffers=32MB",
                "max_connections=200",
                "log_min_messages=warning",
            ):
                argv += ["-c", setting]
            with open(self.logfile, "ab") as log:
                self.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.root,
                    **self._run_as(),  # type: ignore[arg-type]
                )
            end = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < end:
                if self._accepts():
                    return self
                time.sleep(0.05)
            self._halt(signal.SIGQUIT)
        raise ServiceError(f"postgres did not start on port {self.port}: {self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT, as ``pg_ctl stop -m fast``): clients are cut, data is kept."""
        self._halt(signal.SIGINT, timeout)

    def kill(self) -> None:
        """SIGKILL the postmaster: what a crashed database server looks like to its clients.

        Its backends notice and exit by themselves; ``start()`` recovers the data (crash recovery).
        """
        self._halt(signal.SIGKILL)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _halt(self, sig: signal.Signals, timeout: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def _port_taken(self) -> bool:
        return "could not bind" in self.log_tail() or "already in use" in self.log_tail()

    def _accepts(self) -> bool:
        argv = [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        done = subprocess.run(
            [*argv, "-U", self.SUPERUSER, "-d", "postgres"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.logfile.read_text(errors="replace").strip()[-chars:]
        except OSError:
            return ""

    # --- databases ------------------------------------------------------------------------------

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://{self.SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` (one or more statements) with psql; return its unaligned output."""
        argv = [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"]
        argv += ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.SUPERUSER, "-d", database]
        done = subprocess.run(
            [*argv, "-c", sql],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ServiceError(
                f"psql {sql!r} failed: {done.stderr.strip()}\nserver log: {self.log_tail()}"
            )
        return done.stdout

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its DSN."""
        name = name or f"t{os.getpid()}_{next(self._names)}"
        strategy = " STRATEGY FILE_COPY" if self.major >= 15 else ""  # faster here than WAL_LOG
        self.psql(f'CREATE DATABASE "{name}"{strategy}')
        self._databases.add(name)
        return self.dsn(name)

    def emptied_database(self, name: str, keep: tuple[str, ...] = ("schema_version",)) -> str:
        """Database ``name`` (created on first use) with every table but ``keep`` emptied.

        Much faster than a new database (one TRUNCATE, ~50 ms, against ~0.2-0.5 s), and as good
        for tests that do not care about the schema's history. Returns its DSN.
        """
        if name not in self._databases:
            return self.create_database(name)
        kept = ", ".join(f"'{table}'" for table in keep) or "''"
        self.psql(
            "DO $$ DECLARE tables text; BEGIN "
            "SELECT string_agg(format('%I.%I', schemaname, tablename), ', ') INTO tables "
            f"FROM pg_tables WHERE schemaname = 'public' AND tablename NOT IN ({kept}); "
            "IF tables IS NOT NULL THEN EXECUTE 'TRUNCATE ' || tables || ' CASCADE'; END IF; "
            "END $$",
            name,
        )
        return self.dsn(name)


_shared: dict[str, PostgresServer] = {}


def shared_postgres() -> PostgresServer:
    """The run-wide server, started on first use and destroyed when the run ends.

    Calls `unavailable` (skip, or fail under CI) if it cannot be had.
    """
    server = _shared.get("postgres")
    if server is None or server.proc is None or server.proc.poll() is not None:
        if server is not None:
            server.destroy()
        try:
            server = PostgresServer.create()
        except ServiceError as exc:
            unavailable(f"cannot start PostgreSQL: {exc}")
        atexit.register(server.destroy)
        _shared["postgres"] = server
    return server


def postgres_database() -> str:
    """The DSN of a new, empty database on the run-wide server."""
    return shared_postgres().create_database()


def postgres_emptied_database(name: str) -> str:
    """The DSN of database ``name`` on the run-wide server, its tables emptied (see
    `PostgresServer.emptied_database`): for suites that run many short tests."""
    return shared_postgres().emptied_database(name)


def private_postgres() -> PostgresServer:
    """A server of its own, for a test that stops it; ``destroy()`` it at the end."""
    try:
        return PostgresServer.create()
    except ServiceError as exc:
        unavailable(f"cannot start PostgreSQL: {exc}")


# --- Redis ----------------------------------------------------------------------------------------
# A RedisServer is shaped like PostgresServer: create/start/stop/kill/destroy, a URL on a free
# 127.0.0.1 port; shared_redis() for the run (tests keep apart by channel prefix), private_redis()
# for a test that kills and restarts its own. Installed by scripts/ensure-redis (which
# scripts/ensure-services runs).


def redis_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in a forked child


def _redis_dies_with_parent() -> None:
    """In the child, before exec: SIGKILL when we die (Redis keeps nothing worth a shutdown)."""
    with contextlib.suppress(Exception):
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class RedisServer:
    """One redis-server on 127.0.0.1 that keeps nothing on disk (no RDB, no AOF).

    ``create()`` starts it; ``kill()`` is SIGKILL (a crash, or a partition as clients see it);
    ``start()`` brings it back on the same port, empty; ``destroy()`` stops it and deletes its
    directory.
    """

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.logfile = root / "redis.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def create(cls) -> RedisServer:
        """Start one in a new temporary directory; raise `ServiceError` on failure."""
        binary = redis_binary()
        if binary is None:
            ensure_services()
            binary = redis_binary()
            if binary is None:
                raise ServiceError("Redis is not installed (no redis-server found)")
        server = cls(binary, Path(tempfile.mkdtemp(prefix="cowrite-redis-")))
        try:
            server.start()
        except BaseException:
            server.destroy()
            raise
        return server

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start (again, on the same port) and wait until it answers PING."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        first = self.port == 0
        for _attempt in range(3 if first else 1):  # a free port can be taken before Redis binds it
            if first:
                self.port = free_port()
            argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
            argv += ["--save", "", "--appendonly", "no", "--dir", str(self.root)]
            argv += ["--logfile", str(self.logfile), "--loglevel", "warning"]
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.root,
                preexec_fn=_redis_dies_with_parent,  # noqa: PLW1509 (tests start no threads here)
            )
            end = time.monotonic() + timeout
            while self.proc.poll() is None and time.monotonic() < end:
                if self._pings():
                    return self
                time.sleep(0.02)
            self.kill()
        raise ServiceError(f"redis-server did not start on port {self.port}: {self.log_tail()}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: a clean shutdown (nothing to save)."""
        self._halt(signal.SIGTERM, timeout)

    def kill(self) -> None:
        self._halt(signal.SIGKILL)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _halt(self, sig: signal.Signals, timeout: float = 10.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def _pings(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.logfile.read_text(errors="replace").strip()[-chars:]
        except OSError:
            return ""


_shared_redis: dict[str, RedisServer] = {}


def shared_redis() -> RedisServer:
    """The run-wide server, started on first use and destroyed when the run ends.

    Calls `unavailable` (skip, or fail under CI) if it cannot be had.
    """
    server = _shared_redis.get("redis")
    if server is None or server.proc is None or server.proc.poll() is not None:
        if server is not None:
            server.destroy()
        try:
            server = RedisServer.create()
        except ServiceError as exc:
            unavailable(f"cannot start Redis: {exc}")
        atexit.register(server.destroy)
        _shared_redis["redis"] = server
    return server


def private_redis() -> RedisServer:
    """A server of its own, for a test that kills it; ``destroy()`` it at the end."""
    try:
        return RedisServer.create()
    except ServiceError as exc:
        unavailable(f"cannot start Redis: {exc}")
