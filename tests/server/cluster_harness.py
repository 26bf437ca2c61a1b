"""A cowrite cluster for tests: PostgreSQL + Redis + N ``cowrite serve`` processes (+ nginx).

Tests import this module by path (``--import-mode=importlib`` puts no test directory on
``sys.path``): ``sys.path.insert(0, str(Path(__file__).parent))`` first.

::

    async with Cluster(tmp_path, instances=3, nginx=True) as cluster:
        cluster.instances[0].ws_url      # ws://127.0.0.1:<port>/ws of one instance
        cluster.nginx.ws_url              # through the balancer (deploy/nginx.conf)
        cluster.kill(0)                   # kill -9
        await cluster.restart(0)          # same port
        await cluster.add_instance()      # a fresh one on the same database and bus
        cluster.redis.kill(); cluster.redis.start()            (private Redis: always)
        await asyncio.to_thread(cluster.pg.stop); cluster.pg.start()   (private_pg=True only)

Services come from ``tests/adapters/services.py``: a missing one skips the test, or fails it under
CI. PostgreSQL is the run-wide server (a new database per cluster) unless ``private_pg``; Redis is
always the cluster's own. Service starts are blocking calls made on the main thread (so that the
services die with the test process); they take milliseconds (Redis) to about a second (PostgreSQL).

The instances run with short heartbeats (``ENV``): instance heartbeat 0.5 s, instance timeout 3 s,
client heartbeat 1 s / timeout 4 s; no edit rate limit. When the block raises, the tail of every
log is printed (pytest shows it with the failure); the logs stay in ``tmp_path``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "adapters"))  # services.py
import services
from services import CowriteInstance, NginxServer, PostgresServer, RedisServer

INSTANCE_HEARTBEAT_S = 0.5
INSTANCE_TIMEOUT_S = 3.0

ENV = {
    "COWRITE_EDITS_PER_SECOND": "100000",
    "COWRITE_EDIT_BURST": "100000",
    "COWRITE_HEARTBEAT_S": "1",
    "COWRITE_HEARTBEAT_TIMEOUT_S": "4",
    "COWRITE_INSTANCE_HEARTBEAT_S": str(INSTANCE_HEARTBEAT_S),
    "COWRITE_INSTANCE_TIMEOUT_S": str(INSTANCE_TIMEOUT_S),
    "COWRITE_LOG_JSON": "true",
}


class Cluster:
    """See the module docstring. Use it as ``async with Cluster(tmp_path, ...) as cluster``."""

    def __init__(
        self,
        tmp: Path,
        *,
        instances: int = 3,
        nginx: bool = False,
        private_pg: bool = False,
        env: dict[str, str] | None = None,
    ) -> None:
        self.tmp = tmp
        self.count = instances
        self.with_nginx = nginx
        self.private_pg = private_pg
        self.env = {**ENV, **(env or {})}
        self.pg: PostgresServer
        self.dsn = ""
        self.redis: RedisServer
        self.instances: list[CowriteInstance] = []
        self._nginx: NginxServer | None = None
        self._own_pg: PostgresServer | None = None
        self._own_redis: RedisServer | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Cluster:
        try:
            if self.private_pg:
                self._own_pg = self.pg = services.private_postgres()
            else:
                self.pg = services.shared_postgres()
            self.dsn = self.pg.create_database()
            self._own_redis = self.redis = services.private_redis()
            for k in range(self.count):
                self.instances.append(self._instance(f"i{k}"))
            await asyncio.gather(*(self._start(i) for i in self.instances))
            if self.with_nginx:
                self._nginx = services.private_nginx([i.address for i in self.instances])
        except BaseException:
            await self.__aexit__(*sys.exc_info())
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is not None and issubclass(exc_type, Exception):
            self.dump_logs()
        for inst in self.instances:
            inst.kill()
        if self._nginx is not None:
            self._nginx.destroy()
        if self._own_redis is not None:
            self._own_redis.destroy()
        if self._own_pg is not None:
            self._own_pg.destroy()

    def _instance(self, name: str) -> CowriteInstance:
        return CowriteInstance(
            name,
            self.tmp / f"{name}.log",
            database=self.dsn,
            redis=self.redis.url,
            env=self.env,
            log_level="info",
        )

    async def _start(self, inst: CowriteInstance) -> None:
        try:
            await inst.start(timeout=60)
        except services.ServiceError as exc:
            raise AssertionError(f"instance {inst.name} did not start: {exc}") from None

    def dump_logs(self, chars: int = 3000) -> None:
        for inst in self.instances:
            print(f"===== {inst.name} ({inst.log}) =====\n{inst.log_tail(chars)}")
        if self._nginx is not None:
            print(f"===== nginx =====\n{self._nginx.log_tail(chars)}")
        redis: RedisServer | None = getattr(self, "redis", None)
        if redis is not None:
            print(f"===== redis =====\n{redis.log_tail(chars)}")
        pg: PostgresServer | None = getattr(self, "pg", None)
        if pg is not None:
            print(f"===== postgres =====\n{pg.log_tail(chars)}")

    # ---------------------------------------------------------------- instances

    @property
    def nginx(self) -> NginxServer:
        assert self._nginx is not None, "Cluster(..., nginx=True)"
        return self._nginx

    def kill(self, index: int) -> None:
        """kill -9 one instance."""
        self.instances[index].kill()

    async def restart(self, index: int) -> CowriteInstance:
        inst = self.instances[index]
        inst.kill()
        await self._start(inst)
        return inst

    async def add_instance(self) -> CowriteInstance:
        """Another instance on the same database and bus (not behind nginx)."""
        inst = self._instance(f"i{len(self.instances)}")
        self.instances.append(inst)
        await self._start(inst)
        return inst

    async def connections(self) -> list[int]:
        """Open WebSocket connections per instance (``cowrite_connections``; -1: no answer)."""
        values = await asyncio.gather(*(i.metric("cowrite_connections") for i in self.instances))
        return [-1 if v is None else int(v) for v in values]

    # --------------------------------------------------------------------- REST

    async def rest_json(self, doc: str, base_url: str) -> Any:
        """``GET /api/documents/{doc}/json`` at ``base_url`` (an instance's, or nginx's)."""
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(f"{base_url}/api/documents/{doc}/json")
            assert r.status_code == 200, (base_url, r.status_code, r.text)
            return r.json()


# -------------------------------------------------------------------------- waiting


async def eventually(
    check: Callable[[], Awaitable[bool] | bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> float:
    """Poll ``check`` until it holds; return the seconds it took (AssertionError after
    ``timeout``, naming ``what``)."""
    start = time.monotonic()
    while True:
        result = check()
        ok = await result if isinstance(result, Awaitable) else result
        if ok:
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout:g} s: {what}")
        await asyncio.sleep(interval)


# -------------------------------------------------------------------------- typists


def token_cuts(text: str) -> list[int]:
    """Positions between whole tokens (``<...>``): inserting there keeps every token whole."""
    return [0, *(i + 1 for i, ch in enumerate(text) if ch == ">")]


class Typist:
    """An SDK session inserting unique tokens (``<name.n>``) into ``text:body`` one at a time,
    waiting for each to be acknowledged (``synced``) before the next. ``tokens`` lists every token
    typed (``sent_at``: when, ``time.monotonic``), ``acked`` those the server acknowledged
    (``acked_at``: when the acknowledgement arrived), ``rejected`` those it refused (``synced``
    returned after an error and the SDK undid the edit), ``errors`` the server errors the session
    reported; ``vanished``: acknowledged tokens missing from the session's own text right after
    the acknowledgement (an ack naming a version whose state lacks the edit)."""

    def __init__(self, session: Any, name: str, *, seed: int = 0, pause_s: float = 0.02) -> None:
        self.session = session
        self.name = name
        self.rng = random.Random(seed)
        self.pause_s = pause_s
        self.tokens: list[str] = []
        self.sent_at: list[float] = []
        self.acked: list[str] = []
        self.acked_at: list[float] = []
        self.rejected: list[str] = []
        self.vanished: list[str] = []
        self.errors: list[str] = []
        session.on("error", lambda err: self.errors.append(f"{time.monotonic():.3f} {err}"))
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> Typist:
        self.task = asyncio.create_task(self.run(), name=f"typist {self.name}")
        return self

    async def run(self) -> None:
        body = self.session.text("body")
        n = 0
        while not self.stop.is_set():
            n += 1
            token = f"<{self.name}.{n}>"
            body.insert(self.rng.choice(token_cuts(str(body))), token)
            self.tokens.append(token)
            self.sent_at.append(time.monotonic())
            errors = len(self.errors)
            await self.session.synced(timeout_s=90)
            if token in str(body) or len(self.errors) == errors:
                self.acked.append(token)
                self.acked_at.append(time.monotonic())
                if token not in str(body):  # acknowledged, yet gone from our own view
                    self.vanished.append(token)
            else:  # the server refused the batch and the SDK undid it
                self.rejected.append(token)
            await asyncio.sleep(self.pause_s)

    def raise_if_failed(self) -> None:
        """Re-raise the error that ended this typist, if one did."""
        if self.task is not None and self.task.done() and not self.task.cancelled():
            exc = self.task.exception()
            if exc is not None:
                raise AssertionError(f"typist {self.name} failed: {exc!r}") from exc

    def acked_since(self, t: float) -> int:
        return sum(1 for at in self.acked_at if at > t)

    async def finish(self, timeout: float = 90) -> None:
        """Stop typing; wait until the last token is acknowledged (re-raises a typist's error)."""
        self.stop.set()
        if self.task is not None:
            await asyncio.wait_for(self.task, timeout)


def all_running(typists: Iterable[Typist]) -> bool:
    """True (for ``eventually`` conditions); raises if a typist died."""
    for t in typists:
        t.raise_if_failed()
    return True


_TOKEN = re.compile(r"<[^<>]*>")


def parse_tokens(text: str) -> tuple[Counter[str], set[str], str]:
    """``(counts, split, rest)``: how often each token occurs in ``text``, counting a token that
    another insert landed inside (``<c1.1<c5.7>8>``) once it is glued back; ``split``: tokens
    found only that way; ``rest``: what is left when every token is taken out (should be "")."""
    counts: Counter[str] = Counter()
    split: set[str] = set()
    first = True
    while True:
        found = _TOKEN.findall(text)
        if not found:
            return counts, split, text
        counts.update(found)
        if not first:
            split.update(found)
        first = False
        text = _TOKEN.sub("", text)


def check_tokens(
    text: str, typists: Iterable[Any], *, where: str = "", allow_split: bool = False
) -> None:
    """Durability: every token at most once in ``text``, every acknowledged one exactly once, no
    edit refused by the server. Then placement (unless ``allow_split``): every token whole, i.e.
    no insert landed inside another one (typists only insert between whole tokens)."""
    typists = list(typists)
    counts, split, rest = parse_tokens(text)
    problems: list[str] = []
    if rest:
        problems.append(f"{len(rest)} characters outside any token: {rest[:40]!r}")
    for t in typists:
        if t.rejected:
            problems.append(f"{t.name}: refused {t.rejected[:3]} (errors {t.errors[:3]})")
        acked = set(t.acked)
        for token in t.tokens:
            count = counts[token]
            if count > 1:
                problems.append(f"{token} appears {count} times")
            elif token in acked and count == 0:
                problems.append(f"acknowledged {token} is missing")
    assert not problems, f"{where}: {len(problems)} durability problems: {problems[:10]}"
    if split and not allow_split:
        examples = [text[m.start() : m.start() + 40] for m in re.finditer(r"<[^<>]*<", text)][:3]
        raise AssertionError(
            f"{where}: every edit is there exactly once, but {len(split)} tokens have another "
            f"insert inside them (an edit landed away from where it was typed): {examples}"
        )


async def gather_tasks(tasks: Iterable[asyncio.Task[Any]], timeout: float) -> None:
    """Wait for tasks, raising the first error (and cancelling the rest on failure)."""
    pending = list(tasks)
    try:
        await asyncio.wait_for(asyncio.gather(*pending), timeout)
    finally:
        for t in pending:
            t.cancel()
        for t in pending:
            with contextlib.suppress(BaseException):
                await t
