"""The servers ``benchmarks.server`` can run, and the clients each is driven with.

Every server is started as its own process on 127.0.0.1 (``server_command``) and driven by one
kind of load generator (``worker_command``, ``kind``):

==========================  ========================================  ========================
server                      process                                   clients (generator)
==========================  ========================================  ========================
``cowrite``                 ``cowrite serve --data <tmp>/cowrite.db``  thin OT clients, Python
``cowrite-yjs``             the same                                  y-websocket, Node
``cowrite-yjs-hocuspocus``  the same                                  @hocuspocus/provider
``hocuspocus``              ``@hocuspocus/server``, in memory         @hocuspocus/provider
``y-websocket``             ``@y/websocket-server``, in memory        y-websocket, Node
``pycrdt-websocket``        its ASGI server under uvicorn, in memory  pycrdt (Python);
                                                                      y-websocket (Node) with
                                                                      ``yjs_clients``
``cowrite-js``              ``cowrite serve --data <tmp>/cowrite.db``  cowrite's JS client, Node
``sharedb``                 ShareDB 7, in memory, json0               sharedb/lib/client, Node
==========================  ========================================  ========================

A ``-memory`` suffix on a cowrite server runs ``--data :memory:`` (no disk, no fsync), a
``-nodeflate`` suffix refuses WebSocket compression (``COWRITE_VARIANTS``).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from cowrite_dev.services import repo_root

COWRITE_BASES = ("cowrite", "cowrite-yjs", "cowrite-yjs-hocuspocus", "cowrite-js")
COWRITE_VARIANTS = ("", "-memory", "-nodeflate")
"""``-memory``: ``--data :memory:`` (no disk, no fsync); ``-nodeflate``: the server refuses
permessage-deflate (``benchmarks.profile_serve --no-ws-deflate``), an experiment."""
SERVERS: tuple[str, ...] = (
    *(base + variant for base in COWRITE_BASES for variant in COWRITE_VARIANTS),
    "hocuspocus",
    "y-websocket",
    "pycrdt-websocket",
    "sharedb",
)
DEFAULT_SERVERS: tuple[str, ...] = (
    "cowrite",
    "cowrite-js",
    "hocuspocus",
    "pycrdt-websocket",
    "sharedb",
)
"""``cowrite-memory`` (``--data :memory:``: no disk, no fsync before the ack) is opt-in.
``cowrite`` and ``cowrite-js`` are the same server driven by two generators (the Python thin
clients, and cowrite's real JS client in Node)."""
YJS_SERVERS: tuple[str, ...] = (
    "cowrite-yjs",
    "cowrite-yjs-hocuspocus",
    "hocuspocus",
    "y-websocket",
    "pycrdt-websocket",
)
"""The servers of ``--yjs``: every one driven by the same Node Yjs generator."""

NODE_KINDS = ("hocuspocus", "y-websocket")
"""Worker kinds run by ``peers/yjs_load.mjs`` (the Yjs provider its clients use)."""

NODE_PEERS = {
    "hocuspocus": "@hocuspocus/server",
    "y-websocket": "@y/websocket-server",
    "sharedb": "sharedb",
}
"""Node peer servers and the package each needs in ``peers/node_modules``."""

OT_KINDS = {"sharedb": ["sharedb", "ws"], "cowrite-js": ["ws"]}
"""Worker kinds run by ``peers/ot_load.mjs`` (each client the real one: ``sharedb/lib/client``,
cowrite's JS client ``web/src/client.js``) and the packages they need in ``peers/node_modules``."""
THIN_KINDS = ("cowrite", "cowrite-js")
"""Worker kinds that speak cowrite's own protocol on ``/ws`` (Python thin clients, the JS
client)."""


def peers_dir() -> Path:
    return Path(os.environ.get("COWRITE_BENCH_PEERS", str(repo_root() / "benchmarks" / "peers")))


@dataclass(frozen=True)
class ServerDef:
    name: str
    yjs_clients: bool = False
    """Drive the server with the Node Yjs generator even when it has a Python one
    (pycrdt-websocket), so that every Yjs server of a run gets the same clients."""

    @property
    def cowrite(self) -> bool:
        return self.name.startswith("cowrite")

    @property
    def base(self) -> str:
        """The name without a cowrite variant's suffix."""
        for variant in COWRITE_VARIANTS[1:]:
            if self.cowrite and self.name.endswith(variant):
                return self.name[: -len(variant)]
        return self.name

    @property
    def memory(self) -> bool:
        return self.cowrite and self.name.endswith("-memory")

    @property
    def deflate(self) -> bool:
        """Does the server accept permessage-deflate (cowrite as shipped: yes)?"""
        return not self.name.endswith("-nodeflate")

    @property
    def kind(self) -> str:
        """The worker spec's kind: ``cowrite`` and ``pycrdt`` (Python generators),
        ``hocuspocus`` and ``y-websocket`` (the Node Yjs generator, by provider), ``cowrite-js``
        and ``sharedb`` (the Node OT generator, by client)."""
        if self.base in ("cowrite", "cowrite-js", "sharedb"):
            return self.base
        if self.base in ("hocuspocus", "cowrite-yjs-hocuspocus"):
            return "hocuspocus"
        if self.name == "pycrdt-websocket" and not self.yjs_clients:
            return "pycrdt"
        return "y-websocket"

    @property
    def yjs(self) -> bool:
        """Served through a Yjs dialect (not cowrite's own protocol, not ShareDB's)."""
        return self.kind not in (*THIN_KINDS, "sharedb")

    @property
    def thin(self) -> bool:
        """Driven through cowrite's own protocol (``/ws``), whose server text can be checked."""
        return self.kind in THIN_KINDS

    def check(self) -> str | None:
        """Why this server cannot run here (None: it can)."""
        if self.name not in SERVERS:
            return f"unknown server {self.name!r}"
        peers = peers_dir()
        needs = [NODE_PEERS[self.name]] if self.name in NODE_PEERS else []
        if self.kind in NODE_KINDS:
            needs += ["yjs", "@hocuspocus/provider", "y-websocket"]
        needs += OT_KINDS.get(self.kind, [])
        if needs and shutil.which("node") is None:
            return "node is not installed"
        for package in needs:
            if not (peers / "node_modules" / package).is_dir():
                return f"{package} is missing: run `npm ci` in {peers} first"
        if self.name == "pycrdt-websocket":
            try:
                import pycrdt.websocket  # noqa: F401
            except ImportError:
                return "pycrdt-websocket is not installed (pip install -e '.[bench]')"
        return None

    def server_command(self, port: int, workdir: Path) -> list[str]:
        peers = peers_dir()
        if self.cowrite:
            data = ":memory:" if self.memory else str(workdir / "cowrite.db")
            return [
                *serve_prefix(deflate=self.deflate),
                "serve",
                "--port",
                str(port),
                "--data",
                data,
                "--log-level",
                "warning",
            ]
        if self.name == "hocuspocus":
            return ["node", str(peers / "hocuspocus_server.mjs"), "--port", str(port)]
        if self.name == "y-websocket":
            return ["node", str(peers / "ywebsocket_server.mjs"), "--port", str(port)]
        if self.name == "sharedb":
            return ["node", str(peers / "sharedb_server.mjs"), "--port", str(port)]
        return [sys.executable, str(peers / "pycrdt_server.py"), "--port", str(port)]

    def worker_command(self) -> list[str]:
        peers = peers_dir()
        if self.kind == "cowrite":
            return [sys.executable, "-m", "benchmarks.load"]
        if self.kind == "pycrdt":
            return [sys.executable, str(peers / "pycrdt_load.py")]
        node = ["node"]
        prof = os.environ.get(NODE_PROFILE_ENV)
        if prof:
            node += ["--cpu-prof", "--cpu-prof-dir", prof]
        if self.kind in OT_KINDS:
            client = repo_root() / "web" / "src" / "client.js"
            return [*node, str(peers / "ot_load.mjs"), "--cowrite-client", str(client)]
        return [*node, str(peers / "yjs_load.mjs")]

    def url(self, port: int) -> str:
        """The generator's URL: cowrite's endpoint, or the server's root (Yjs servers name
        the document by path; ``WebsocketProvider`` appends ``/<name>``)."""
        base = f"ws://127.0.0.1:{port}"
        if self.thin:
            return f"{base}/ws"
        if self.cowrite:
            return f"{base}/hocuspocus" if self.kind == "hocuspocus" else f"{base}/yjs"
        return base

    def auto_procs(self, clients: int, idle: bool) -> int:
        """Generator processes for ``--procs auto``: the Yjs clients cost Node about four times
        what the cowrite and pycrdt clients cost Python per received edit, so the Node
        generator runs as two processes once there is real traffic; the OT clients (ShareDB,
        cowrite's JS client) cost about a third of a core at 50 clients on one document, so
        theirs splits from 200 clients on (the same rule for both, so they compare)."""
        if self.kind in NODE_KINDS and not idle and clients >= 50:
            return 2
        if self.kind in OT_KINDS and not idle and clients >= 200:
            return 2
        return 1

    @property
    def has_ack(self) -> bool:
        """Does the protocol acknowledge an edit (cowrite ``ack``, Hocuspocus SyncStatus)?"""
        return self.kind in (*THIN_KINDS, "hocuspocus", "sharedb")


PROFILE_ENV = "COWRITE_BENCH_PROFILE"
"""A directory: cowrite servers then run under ``benchmarks.profile_serve`` (a stack sampler)
and leave one profile per run there."""
LAG_ENV = "COWRITE_BENCH_LOOP_LAG"
"""A directory: cowrite servers report their event loop's lag there (``profile_serve``)."""
PROBE_ENV = "COWRITE_BENCH_PROBE"
"""A directory: cowrite servers report store, pipeline and GC timings there (``profile_serve``)."""
NODE_PROFILE_ENV = "COWRITE_BENCH_NODE_PROFILE"
"""A directory: the Node generators run with ``--cpu-prof`` and leave one ``.cpuprofile`` per
process there (open it in Chrome's DevTools, or ``benchmarks/peers/cpuprofile_top.mjs``)."""
DEFLATE_ENV = "COWRITE_BENCH_WS_DEFLATE"
"""``0``: cowrite servers refuse permessage-deflate (``benchmarks.profile_serve``)."""


def serve_prefix(*, deflate: bool = True) -> list[str]:
    """How ``cowrite ...`` is started: ``python -m cowrite.cli``, or through
    ``benchmarks.profile_serve`` when ``COWRITE_BENCH_PROFILE`` names a directory (its stack
    sampler) or compression is refused (not ``deflate``, or ``COWRITE_BENCH_WS_DEFLATE=0``)."""
    out = os.environ.get(PROFILE_ENV)
    lag = os.environ.get(LAG_ENV)
    probe = os.environ.get(PROBE_ENV)
    no_deflate = not deflate or os.environ.get(DEFLATE_ENV, "1") == "0"
    if not out and not lag and not probe and not no_deflate:
        return [sys.executable, "-m", "cowrite.cli"]
    args = [sys.executable, "-m", "benchmarks.profile_serve"]
    if out:
        args += ["--out", out]
    if lag:
        args += ["--lag-out", lag]
    if probe:
        args += ["--probe-out", probe]
    if no_deflate:
        args.append("--no-ws-deflate")
    return [*args, "--"]
