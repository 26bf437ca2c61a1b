"""nginx and ``cowrite serve`` as throwaway child processes, both ``HttpEndpoint``s (``url``,
``ws_url``); the rest of ``cowrite_dev.services`` (ports, lifetimes, errors) applies.

* ``NginxServer.create(upstreams)``: nginx in front of ``host:port`` upstreams, configured from
  ``deploy/nginx.conf`` (rendered with those upstreams and a free listen port);
* ``CowriteInstance``: one ``cowrite serve`` process (``await start()``, ``kill()`` = kill -9,
  ``await restart()`` on the same port).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from cowrite_dev.services import (
    ChildProcess,
    HttpEndpoint,
    LocalServer,
    ServiceError,
    die_with_us,
    file_tail,
    free_port,
    halt_process,
    installed,
    repo_root,
)

NGINX_TEMPLATE = repo_root() / "deploy" / "nginx.conf"


# --- nginx ----------------------------------------------------------------------------------------


def nginx_binary() -> str | None:
    if os.access("/usr/sbin/nginx", os.X_OK):
        return "/usr/sbin/nginx"
    return shutil.which("nginx")


_UPSTREAM = re.compile(r"(upstream\s+cowrite\s*\{)(.*?)(\})", re.DOTALL)
_UPSTREAM_SERVER = re.compile(r"^([ \t]*)server[ \t]+([^\s;]+)([^;\n]*);[^\n]*\n", re.MULTILINE)
_LISTEN = re.compile(r"^([ \t]*)listen[ \t]+[^;\n]+;[^\n]*\n", re.MULTILINE)
_SERVER_BLOCK = re.compile(r"(\bserver\s*\{)")


def render_nginx_site(template: str, upstreams: Sequence[str], listen: str) -> str:
    """``deploy/nginx.conf`` (an ``http``-level file) for these upstreams and listen address.

    The ``server`` lines of ``upstream cowrite {...}`` are replaced by one line per upstream,
    keeping the first line's parameters (``max_fails=...``); the first ``listen`` line of each
    ``server {...}`` block becomes ``listen <listen>;`` and its other ``listen`` lines go.
    """
    if not upstreams:
        raise ServiceError("nginx needs at least one upstream")
    m = _UPSTREAM.search(template)
    if m is None:
        raise ServiceError("the nginx template has no 'upstream cowrite { ... }' block")
    seen = 0

    def server_line(sm: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        if seen > 1:
            return ""
        indent, params = sm.group(1), sm.group(3)
        return "".join(f"{indent}server {u}{params};\n" for u in upstreams)

    body = _UPSTREAM_SERVER.sub(server_line, m.group(2))
    if not seen:
        raise ServiceError("'upstream cowrite' in the nginx template lists no server")
    out = template[: m.start(2)] + body + template[m.end(2) :]

    def listen_line(lm: re.Match[str]) -> str:
        nonlocal seen
        seen += 1
        return f"{lm.group(1)}listen {listen};\n" if seen == 1 else ""

    parts = _SERVER_BLOCK.split(out)  # [before, "server {", block, "server {", block...]
    rendered = parts[0]
    for k in range(1, len(parts), 2):
        seen = 0
        rendered += parts[k] + _LISTEN.sub(listen_line, parts[k + 1])
    if f"listen {listen};" not in rendered:
        raise ServiceError("the nginx template has no 'server { listen ...; }' block")
    return rendered


class NginxServer(LocalServer, HttpEndpoint):
    """nginx in the foreground (``daemon off``) as a child process, with its own prefix, temp
    directories, pid file and logs in a temporary directory, serving ``deploy/nginx.conf``
    rendered for ``upstreams`` (``host:port`` strings) on a free 127.0.0.1 port.

    ``reload(upstreams)`` rewrites the config and sends SIGHUP; ``stop()`` is SIGTERM, nginx's
    fast shutdown.
    """

    NAME = "nginx"

    def __init__(self, binary: str, root: Path, template: Path, upstreams: Sequence[str]) -> None:
        super().__init__(root, root / "error.log")
        self.binary = binary
        self.template = template
        self.access_log = root / "access.log"
        self.upstreams = list(upstreams)

    @classmethod
    def create(cls, upstreams: Sequence[str], template: Path | None = None) -> NginxServer:
        binary = installed(nginx_binary, "nginx is not installed (no /usr/sbin/nginx found)")
        template = template or NGINX_TEMPLATE
        if not template.is_file():
            raise ServiceError(f"nginx template {template} not found")
        root = Path(tempfile.mkdtemp(prefix="cowrite-nginx-"))
        return cls(binary, root, template, upstreams)._first_start()

    def _write_config(self) -> Path:
        site = render_nginx_site(
            self.template.read_text(encoding="utf-8"), self.upstreams, f"127.0.0.1:{self.port}"
        )
        (self.root / "cowrite.conf").write_text(site, encoding="utf-8")
        temp = self.root / "temp"
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (temp / sub).mkdir(parents=True, exist_ok=True)
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers may use our temp dirs
        main = (
            f"{user}worker_processes 1;\n"
            "daemon off;\n"
            "master_process on;\n"
            f"pid {self.root / 'nginx.pid'};\n"
            f"error_log {self.logfile} warn;\n"
            "events { worker_connections 4096; }\n"
            "http {\n"
            f"    access_log {self.access_log};\n"
            f"    client_body_temp_path {temp / 'body'};\n"
            f"    proxy_temp_path {temp / 'proxy'};\n"
            f"    fastcgi_temp_path {temp / 'fastcgi'};\n"
            f"    uwsgi_temp_path {temp / 'uwsgi'};\n"
            f"    scgi_temp_path {temp / 'scgi'};\n"
            f"    include {self.root / 'cowrite.conf'};\n"
            "}\n"
        )
        path = self.root / "nginx.conf"
        path.write_text(main, encoding="utf-8")
        return path

    def _argv(self, config: Path) -> list[str]:
        return [self.binary, "-p", f"{self.root}/", "-c", str(config), "-e", str(self.logfile)]

    def check_config(self) -> None:
        """``nginx -t`` on the rendered configuration; raise `ServiceError` if it is refused."""
        if self.port == 0:
            self.port = free_port()
        config = self._write_config()
        done = subprocess.run(
            [*self._argv(config), "-t", "-q"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ServiceError(f"nginx -t refused the configuration: {done.stderr.strip()}")

    def _spawn(self) -> subprocess.Popen[bytes]:
        config = self._write_config()
        with open(self.root / "stderr.log", "ab") as err:
            return subprocess.Popen(
                [*die_with_us("TERM"), *self._argv(config)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=self.root,
            )

    def _ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def reload(self, upstreams: Sequence[str]) -> None:
        """Point the balancer at ``upstreams`` (rewrite the config, SIGHUP: a graceful reload)."""
        self.upstreams = list(upstreams)
        self._write_config()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def log_tail(self, chars: int = 1500) -> str:
        return (
            file_tail(self.root / "stderr.log", chars // 2) + "\n" + file_tail(self.logfile, chars)
        ).strip()


# --- cowrite serve --------------------------------------------------------------------------------


async def http_get(
    port: int, path: str, *, host: str = "127.0.0.1", timeout: float = 5.0
) -> tuple[int, bytes]:
    """A minimal ``GET`` (HTTP/1.1, ``Connection: close``): (status, body). No chunked bodies."""

    async def run() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
            )
            data = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        head, _, body = data.partition(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise OSError(f"not an HTTP response: {head[:80]!r}")
        return int(parts[1]), body

    return await asyncio.wait_for(run(), timeout)


class CowriteInstance(ChildProcess, HttpEndpoint):
    """One ``cowrite serve`` process on 127.0.0.1 (a port chosen at the first start and kept).

    ``await start()`` runs it and waits until ``/readyz`` answers 200; ``kill()`` is kill -9;
    ``terminate()`` SIGTERM (the server tells clients to reconnect); ``await restart()`` starts
    it again on the same port. Its stdout and stderr go to ``log``.
    """

    def __init__(
        self,
        name: str,
        log: Path,
        *,
        database: str | None = None,
        redis: str | None = None,
        data: str = ":memory:",
        env: Mapping[str, str] | None = None,
        log_level: str = "info",
        python: str = sys.executable,
    ) -> None:
        self.name = name
        self.log = log
        self.database = database
        self.redis = redis
        self.data = data
        self.env = dict(env or {})
        self.log_level = log_level
        self.python = python
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def argv(self) -> list[str]:
        argv = [self.python, "-m", "cowrite.cli", "serve", "--host", "127.0.0.1"]
        argv += ["--port", str(self.port), "--data", self.data, "--log-level", self.log_level]
        if self.database:
            argv += ["--database", self.database]
        if self.redis:
            argv += ["--redis", self.redis]
        return argv

    def _spawn(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            log.write(f"--- {self.name}: start {self.starts + 1} on port {self.port}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                [*die_with_us("KILL"), *self.argv()],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
            )
        self.starts += 1

    async def start(self, timeout: float = 60.0) -> CowriteInstance:
        """Start (on the kept port, or a free one the first time) and wait until it is ready."""
        if self.running:
            return self
        first = self.port == 0
        last: Exception | None = None
        for _attempt in range(3 if first else 1):  # the free port may be taken before we bind
            if first:
                self.port = free_port()
            self._spawn()
            try:
                await self.wait_ready(timeout)
                return self
            except ServiceError as exc:
                last = exc
                self.kill()
                if "address already in use" not in self.log_tail().lower():
                    break
        raise ServiceError(f"{self.name} did not start: {last}")

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Until ``GET /readyz`` answers 200 (raise `ServiceError` if the process exits)."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                raise ServiceError(f"{self.name} exited ({code}): {self.log_tail()}")
            with contextlib.suppress(OSError, TimeoutError):
                status, _ = await http_get(self.port, "/readyz", timeout=2.0)
                if status == 200:
                    return
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{self.name} not ready within {timeout:g} s on port {self.port}: "
                    f"{self.log_tail()}"
                )
            await asyncio.sleep(0.05)

    async def restart(self, timeout: float = 60.0) -> CowriteInstance:
        self.kill()
        return await self.start(timeout)

    def kill(self) -> None:
        """kill -9 (and reap it)."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait for the exit; returns the exit status."""
        proc = self.proc
        if proc is None:
            return None
        halt_process(proc, signal.SIGTERM, timeout)
        return proc.returncode

    async def metric(self, name: str) -> float | None:
        """The value of an unlabelled Prometheus sample ``name`` from ``/metrics`` (None if the
        instance does not answer or has no such sample)."""
        try:
            status, body = await http_get(self.port, "/metrics", timeout=5.0)
        except (OSError, TimeoutError):
            return None
        if status != 200:
            return None
        for line in body.decode(errors="replace").splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def log_tail(self, chars: int = 2000) -> str:
        return file_tail(self.log, chars)
