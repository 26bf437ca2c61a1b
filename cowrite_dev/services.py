"""Real backing services as throwaway child processes: PostgreSQL and Redis here, nginx and
``cowrite serve`` in ``cowrite_dev.http_services``. Used by the cluster benchmark
(``benchmarks.cluster``) and, through ``tests/adapters/services.py`` (which adds pytest's
skip-or-fail policy), by the tests.

Every service listens on a free port on 127.0.0.1, keeps its files in a fresh temporary directory
and dies with the process that started it, even if that one is killed (``die_with_us``: start
services from the main thread, not from ``asyncio.to_thread``, or they may outlive a killed run).
Nothing here installs anything: the binaries are found where ``scripts/ensure-services`` (run as
root) installs them, and a missing one raises ``ServiceError`` naming that script. Failures raise
``ServiceError`` with the reason (and the service's log tail).

* ``PostgresServer.create()``: initdb + postgres (``stop``/``start`` keep the data, ``kill`` is a
  crash, ``create_database`` gives a fresh database's DSN);
* ``RedisServer.create()``: redis-server keeping nothing on disk (``start`` again on the same
  port).

Both are ``LocalServer``s (start on a free port and keep it, wait until ready, stop, kill,
destroy); ``HttpEndpoint`` (``url``, ``ws_url``) is the base of the HTTP services.
"""

from __future__ import annotations

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
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar


def repo_root() -> Path:
    """The checkout this package lives in (``cowrite_dev/services.py`` -> root)."""
    return Path(__file__).resolve().parents[1]


INSTALL_HINT = "install it with scripts/ensure-services (as root)"


T = TypeVar("T")


class ServiceError(Exception):
    """A service could not be installed or started; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def die_with_us(signame: str) -> list[str]:
    """A command prefix that makes the child get ``signame`` when this process dies.

    ``setpriv --pdeathsig`` (util-linux) sets PR_SET_PDEATHSIG and execs the command (same pid).
    The signal fires when the *thread* that started the child ends, so it is only used from the
    main thread (``asyncio.to_thread``'s workers come and go): start services from there.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None or threading.current_thread() is not threading.main_thread():
        return []
    return [setpriv, "--pdeathsig", signame, "--"]


def halt_process(proc: subprocess.Popen[bytes] | None, sig: signal.Signals, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def file_tail(path: Path, chars: int = 1500) -> str:
    try:
        return path.read_text(errors="replace").strip()[-chars:]
    except OSError:
        return ""


def descendants(pid: int) -> list[int]:
    """``pid``'s child processes, recursively (from ``/proc``; empty where that is missing)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(raw[raw.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def installed(find: Callable[[], T | None], missing: str) -> T:
    """What ``find`` finds; raise `ServiceError` (``missing`` and `INSTALL_HINT`) if nothing."""
    found = find()
    if found is None:
        raise ServiceError(f"{missing}: {INSTALL_HINT}")
    return found


class ChildProcess:
    """A process of ours, ``proc`` (None until it is started)."""

    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class HttpEndpoint:
    """Serves cowrite's HTTP API and its WebSocket (``/ws``) on 127.0.0.1:``port``."""

    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def address(self) -> str:
        """``host:port`` (an upstream for nginx)."""
        return f"127.0.0.1:{self.port}"


class LocalServer(ChildProcess):
    """A server process on 127.0.0.1:``port`` (a free port picked at the first start, then
    kept) with its files in the directory ``root``.

    Subclasses say how to run it (``_spawn``) and when it is up (``_ready``). ``start()`` waits
    for that, and tries again on another free port when the one it picked was taken before the
    server bound it; ``stop()`` is a clean shutdown (``STOP``), ``kill()`` SIGKILL (a crash, or
    a partition as its clients see it), ``destroy()`` stops it and deletes ``root``.
    """

    NAME = "server"
    """The server in error messages."""
    STOP = signal.SIGTERM
    ABORT = signal.SIGKILL
    """What a server that did not get ready in time gets."""
    POLL_S = 0.02
    START_TIMEOUT_S = 10.0
    HALT_TIMEOUT_S = 10.0

    def __init__(self, root: Path, logfile: Path) -> None:
        self.root = root
        self.logfile = logfile
        self.port = 0
        self.proc = None

    def _spawn(self) -> subprocess.Popen[bytes]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _attempts(self, first: bool) -> int:
        """How often ``start()`` tries: a free port picked now may be taken before the server
        binds it, a kept one is not tried again."""
        return 3 if first else 1

    def _new_port(self, attempt: int, first: bool) -> bool:
        """Whether ``start()`` picks a free port for this attempt."""
        return first

    def _prepare(self) -> None:
        """What has to be done once before the first start (``_first_start``)."""

    def _first_start(self) -> Self:
        """``_prepare()`` and ``start()``; on failure ``destroy()`` (nothing is left behind) and
        re-raise."""
        try:
            self._prepare()
            self.start()
        except BaseException:
            self.destroy()
            raise
        return self

    def start(self, timeout: float | None = None) -> Self:
        """Start (again, on the same port) and wait until it is ready; raise `ServiceError` if
        it does not get there within ``timeout`` seconds (``START_TIMEOUT_S``)."""
        if self.running:
            return self
        wait = self.START_TIMEOUT_S if timeout is None else timeout
        first = self.port == 0
        for attempt in range(self._attempts(first)):
            if self._new_port(attempt, first):
                self.port = free_port()
            proc = self.proc = self._spawn()
            end = time.monotonic() + wait
            while proc.poll() is None and time.monotonic() < end:
                if self._ready():
                    return self
                time.sleep(self.POLL_S)
            self._halt(self.ABORT)
        raise ServiceError(f"{self.NAME} did not start on port {self.port}: {self.log_tail()}")

    def stop(self, timeout: float | None = None) -> None:
        """A clean shutdown (``STOP``); waits ``timeout`` seconds (``HALT_TIMEOUT_S``), then
        kills it."""
        self._halt(self.STOP, timeout)

    def kill(self) -> None:
        self._halt(signal.SIGKILL)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def _halt(self, sig: signal.Signals, timeout: float | None = None) -> None:
        proc, self.proc = self.proc, None
        halt_process(proc, sig, self.HALT_TIMEOUT_S if timeout is None else timeout)

    def log_tail(self, chars: int = 1500) -> str:
        return file_tail(self.logfile, chars)


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


class PostgresServer(LocalServer):
    """One PostgreSQL server on 127.0.0.1 with a throwaway data directory.

    ``create()`` runs initdb and starts it; ``stop()`` is a fast shutdown (what ``pg_ctl stop -m
    fast`` does: clients are disconnected, the data is kept); ``start()`` brings it back on the
    same port with the same data; ``kill()`` SIGKILLs the postmaster, what a crashed database
    server looks like to its clients (its backends notice and exit by themselves; ``start()``
    recovers the data); ``destroy()`` stops it and deletes everything. Tuned for tests unless
    ``fsync``: no fsync, so what a commit wrote survives the server being killed, not the
    machine crashing (``fsync=True``: PostgreSQL's durable defaults, for benchmarks).
    """

    SUPERUSER = "postgres"
    NAME = "postgres"
    STOP = signal.SIGINT  # fast shutdown
    ABORT = signal.SIGQUIT  # immediate shutdown
    POLL_S = 0.05
    START_TIMEOUT_S = 30.0
    HALT_TIMEOUT_S = 30.0

    def __init__(self, bindir: Path, root: Path, *, fsync: bool = False) -> None:
        super().__init__(root, root / "postgres.log")
        self.bindir = bindir
        self.datadir = root / "data"
        self.fsync = fsync
        self._names = itertools.count(1)
        self._databases: set[str] = set()

    @classmethod
    def create(cls, *, fsync: bool = False) -> PostgresServer:
        """initdb into a new temporary directory and start; raise `ServiceError` on failure."""
        bindir = installed(postgres_bindir, "PostgreSQL is not installed (no initdb found)")
        root = Path(tempfile.mkdtemp(prefix="cowrite-pg-"))
        return cls(bindir, root, fsync=fsync)._first_start()

    @functools.cached_property
    def major(self) -> int:
        """PostgreSQL's major version (15 for 15.18)."""
        out = subprocess.run(
            [str(self.bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
        ).stdout
        m = re.search(r"(\d+)(?:\.\d+)?", out)
        return int(m.group(1)) if m else 0

    # --- processes ------------------------------------------------------------------------------

    def _run_as(self) -> tuple[int | None, int | None]:
        """(uid, gid) to run a PostgreSQL binary as ``postgres`` when we are root, else Nones."""
        if os.geteuid() != 0:
            return None, None
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise ServiceError("running as root but there is no 'postgres' user") from None
        return pw.pw_uid, pw.pw_gid

    def _prepare(self) -> None:
        """initdb."""
        uid, gid = self._run_as()
        if uid is not None and gid is not None:  # initdb refuses to run as root
            os.chown(self.root, uid, gid)
        argv = [str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", self.SUPERUSER]
        argv += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.root,
            check=False,
            user=uid,
            group=gid,
            extra_groups=[] if uid is not None else None,
        )
        if done.returncode != 0:
            raise ServiceError(f"initdb failed: {(done.stdout + done.stderr).strip()[-1500:]}")

    def _attempts(self, first: bool) -> int:
        return 3  # on the kept port too: a restart may find it taken

    def _new_port(self, attempt: int, first: bool) -> bool:
        return self.port == 0 or (attempt > 0 and self._port_taken())

    def _spawn(self) -> subprocess.Popen[bytes]:
        uid, gid = self._run_as()
        argv = die_with_us("QUIT")  # SIGQUIT: PostgreSQL's immediate shutdown
        argv += [str(self.bindir / "postgres"), "-D", str(self.datadir), "-p", str(self.port)]
        argv += ["-k", str(self.root), "-c", "listen_addresses=127.0.0.1"]
        settings = ["shared_buffers=32MB", "max_connections=200", "log_min_messages=warning"]
        if not self.fsync:
            settings += [
                "fsync=off",
                "full_page_writes=off",
                "wal_level=minimal",
                "max_wal_senders=0",
            ]
        for setting in settings:
            argv += ["-c", setting]
        with open(self.logfile, "ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.root,
                user=uid,
                group=gid,
                extra_groups=[] if uid is not None else None,
            )

    def _port_taken(self) -> bool:
        return "could not bind" in self.log_tail() or "already in use" in self.log_tail()

    def _ready(self) -> bool:
        argv = [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        done = subprocess.run(
            [*argv, "-U", self.SUPERUSER, "-d", "postgres"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        return done.returncode == 0

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


# --- Redis ----------------------------------------------------------------------------------------


def redis_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if os.access("/usr/bin/redis-server", os.X_OK) else None
    )


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in a forked child


def _redis_dies_with_parent() -> None:
    """In the child, before exec: SIGKILL when we die (Redis keeps nothing worth a shutdown)."""
    with contextlib.suppress(Exception):
        _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class RedisServer(LocalServer):
    """One redis-server on 127.0.0.1 that keeps nothing on disk (no RDB, no AOF).

    ``create()`` starts it; ``kill()`` is SIGKILL (a crash, or a partition as clients see it);
    ``start()`` brings it back on the same port, empty (ready once it answers PING); ``stop()``
    is SIGTERM (nothing to save); ``destroy()`` stops it and deletes its directory.
    """

    NAME = "redis-server"

    def __init__(self, binary: str, root: Path) -> None:
        super().__init__(root, root / "redis.log")
        self.binary = binary

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def create(cls) -> RedisServer:
        """Start one in a new temporary directory; raise `ServiceError` on failure."""
        binary = installed(redis_binary, "Redis is not installed (no redis-server found)")
        return cls(binary, Path(tempfile.mkdtemp(prefix="cowrite-redis-")))._first_start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.root)]
        argv += ["--logfile", str(self.logfile), "--loglevel", "warning"]
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=self.root,
            preexec_fn=_redis_dies_with_parent,  # noqa: PLW1509 (no threads are started here)
        )

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False
