"""``cowrite serve`` as a real process on a SQLite file: an acknowledged edit survives kill -9 and
SIGTERM, exactly once, and a resent edit is acknowledged without being applied again."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

sys.path.insert(0, str(Path(__file__).parent))  # protocol_clients.py, next to this file
from protocol_clients import ThinClient

ENV = {
    "COWRITE_EDITS_PER_SECOND": "100000",
    "COWRITE_EDIT_BURST": "100000",
    "COWRITE_SNAPSHOT_EVERY": "100",  # snapshots (and log compaction) happen mid-burst
    "COWRITE_LOG_JSON": "true",
}


class Served:
    """One ``cowrite serve`` process."""

    def __init__(self, data: Path, log: Path, env: dict[str, str] | None = None) -> None:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cowrite.cli",
                "serve",
                "--port",
                str(self.port),
                "--data",
                str(data),
                "--log-level",
                "warning",
            ],
            stdout=self.log,
            stderr=self.log,
            env={**os.environ, **ENV, **(env or {})},
        )
        self.url = f"ws://127.0.0.1:{self.port}/ws"

    async def ready(self) -> None:
        async with httpx.AsyncClient() as http:
            for _ in range(400):
                if self.proc.poll() is not None:
                    raise AssertionError(f"the server exited with {self.proc.returncode}")
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}/healthz")).is_success:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("the server did not come up")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.log.close()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for s in started:
        s.stop()


class Typist:
    """A thin client typing unique tokens, one batch in flight, recording every ack."""

    def __init__(self, client: ThinClient, seed: int) -> None:
        self.client = client
        self.rng = random.Random(seed)
        self.tokens: dict[str, str] = {}  # edit id -> the token it inserted
        self.acked: dict[str, int] = {}  # edit id -> version
        self.in_flight: str | None = None

    async def run(self) -> None:
        c = self.client
        n = 0
        try:
            while True:
                n += 1
                token = f"<{c.client_id}.{n}>"
                text = c.text("text:body")
                # at a token boundary, so tokens stay whole
                cuts = [0, len(text), *(i + 1 for i, ch in enumerate(text) if ch == ">")]
                c.insert("text:body", self.rng.choice(cuts), token)
                await c.flush()
                assert c.inflight is not None
                edit_id = c.inflight[0]
                self.tokens[edit_id] = token
                self.in_flight = edit_id
                await c.wait_for(lambda: c.inflight is None, timeout=30)
                self.acked[edit_id] = c.acked[-1][1]
                self.in_flight = None
        except (AssertionError, websockets.ConnectionClosed):
            return  # the server went away


async def _burst(served: Served, names: list[str], stop_after: int) -> list[Typist]:
    """Typists until ``stop_after`` edits are acknowledged in all; then it is up to the caller."""
    typists = [
        Typist(await ThinClient.connect(served.url, name, "dur"), k) for k, name in enumerate(names)
    ]
    tasks = [asyncio.create_task(t.run()) for t in typists]
    while sum(len(t.acked) for t in typists) < stop_after:
        await asyncio.sleep(0.005)
        assert not all(task.done() for task in tasks)
    return typists


def _check_tokens(text: str, typists: list[Typist]) -> None:
    for t in typists:
        for edit_id, token in t.tokens.items():
            count = text.count(token)
            assert count <= 1, f"{token} applied {count} times"
            if edit_id in t.acked:
                assert count == 1, f"acknowledged {token} ({edit_id}) lost"


async def _resend_and_check(served: Served, typists: list[Typist]) -> None:
    """Resend each typist's last acknowledged edit and its in-flight one (same client id)."""
    stale: list[str] = []
    for t in typists:
        again = await ThinClient.connect(served.url, t.client.client_id, "dur", create=False)
        last = max(t.acked, key=lambda e: t.acked[e])
        await again.send(t.client.sent[last])
        ack = await again.expect("ack", where=lambda m, last=last: m["edit_id"] == last)
        assert ack["version"] == t.acked[last]  # its original version: not applied again
        if t.in_flight is not None:
            await again.send(t.client.sent[t.in_flight])
            edit_id = t.in_flight
            await again.wait_for(
                lambda e=edit_id, c=again: any(m.get("edit_id") == e for m in c.inbox)
            )
            answer = next(m for m in again.inbox if m.get("edit_id") == edit_id)
            if answer["type"] == "ack":
                t.acked[edit_id] = answer["version"]  # applied now, or found applied before
            else:  # based on history the server no longer keeps: refused, so never applied
                assert answer["code"] == "stale_version", answer
                stale.append(t.tokens[edit_id])
        await again.close()
    checker = await ThinClient.connect(served.url, "checker", "dur", create=False)
    text = checker.text("text:body")
    _check_tokens(text, typists)
    assert not any(token in text for token in stale)
    await checker.close()


@pytest.mark.parametrize("pipeline", ["1", "0"])  # the WAL fsynced on a thread of its own, or not
async def test_acknowledged_edits_survive_kill_9(
    tmp_path: Path, servers: list[Served], pipeline: str
) -> None:
    data, log = tmp_path / "dur.db", tmp_path / "server.log"
    first = Served(data, log, {"COWRITE_SQLITE_SYNC_PIPELINE": pipeline})
    servers.append(first)
    await first.ready()
    typists = await _burst(first, ["c1", "c2", "c3", "c4"], stop_after=400)
    os.kill(first.proc.pid, signal.SIGKILL)  # mid-burst: edits are in flight
    assert first.proc.wait() == -signal.SIGKILL
    for t in typists:
        await asyncio.wait_for(t.client.closed, 10)
    acked = sum(len(t.acked) for t in typists)
    assert acked >= 400
    versions = [v for t in typists for v in t.acked.values()]
    assert len(set(versions)) == len(versions)  # one version per edit

    second = Served(data, log, {"COWRITE_SQLITE_SYNC_PIPELINE": pipeline})
    servers.append(second)
    await second.ready()
    checker = await ThinClient.connect(second.url, "checker", "dur", create=False)
    assert checker.version >= max(versions)
    _check_tokens(checker.text("text:body"), typists)
    await checker.close()
    await _resend_and_check(second, typists)


async def test_sigterm_tells_clients_to_reconnect_and_loses_nothing(
    tmp_path: Path, servers: list[Served]
) -> None:
    data, log = tmp_path / "dur.db", tmp_path / "server.log"
    first = Served(data, log)
    servers.append(first)
    await first.ready()
    typists = await _burst(first, ["c1", "c2", "c3"], stop_after=300)
    first.proc.send_signal(signal.SIGTERM)
    for t in typists:
        await t.client.expect("reconnect", timeout=15)
        await asyncio.wait_for(t.client.closed, 15)
        assert t.client.ws.close_code == 1001
    # exits by itself once drained (with 0: see test_sigterm_exit_status_is_zero)
    assert await asyncio.to_thread(first.proc.wait, 30) in (0, -signal.SIGTERM)

    second = Served(data, log)
    servers.append(second)
    await second.ready()
    checker = await ThinClient.connect(second.url, "checker", "dur", create=False)
    _check_tokens(checker.text("text:body"), typists)
    await checker.close()
    await _resend_and_check(second, typists)


async def test_sigterm_exit_status_is_zero(tmp_path: Path, servers: list[Served]) -> None:
    served = Served(tmp_path / "exit.db", tmp_path / "server.log")
    servers.append(served)
    await served.ready()
    served.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(served.proc.wait, 30) == 0


async def test_after_a_restart_catch_up_names_edits_and_a_resend_is_recognised(
    tmp_path: Path, servers: list[Served]
) -> None:
    """The ack of ``e2`` is lost and the server restarts: the rejoin's catch-up names ``e2`` as
    the client's own, and a resend (even rebased to a later version) is not applied again."""
    data, log = tmp_path / "lost.db", tmp_path / "server.log"
    first = Served(data, log)
    servers.append(first)
    await first.ready()
    c = await ThinClient.connect(first.url, "laptop", "lost")
    c.insert("text:body", 0, "<one>")
    await c.flush()
    await c.wait_for(lambda: c.inflight is None)
    base = c.version
    c.insert("text:body", 0, "<two>")
    await c.flush()
    await c.wait_for(lambda: c.inflight is None)  # durable: now pretend the ack was lost
    e2, v2 = c.acked[-1]
    os.kill(first.proc.pid, signal.SIGKILL)
    first.proc.wait()

    second = Served(data, log)
    servers.append(second)
    await second.ready()
    again = await ThinClient.connect(second.url, "other", "lost", create=False)  # a bystander
    ws = await websockets.connect(second.url)
    await ws.send('{"type": "hello", "client_id": "laptop"}')
    await ws.send(f'{{"type": "join", "doc": "lost", "version": {base}}}')
    seen: list[dict[str, Any]] = []
    while not any(m["type"] == "remote" for m in seen):
        frame = json.loads(await ws.recv())
        seen.extend(frame if isinstance(frame, list) else [frame])
    remote = next(m for m in seen if m["type"] == "remote")
    assert (remote["version"], remote["client_id"], remote["edit_id"]) == (v2, "laptop", e2)
    resend = {**c.sent[e2], "version": v2}  # as a client that took the remote for another's
    await ws.send(json.dumps(resend))
    while True:
        frame = json.loads(await ws.recv())
        acks = [m for m in (frame if isinstance(frame, list) else [frame]) if m["type"] == "ack"]
        if acks:
            break
    assert acks[0]["edit_id"] == e2 and acks[0]["version"] == v2
    await ws.close()
    await again.close()
    checker = await ThinClient.connect(second.url, "checker", "lost", create=False)
    assert checker.text("text:body") == "<two><one>"
    await checker.close()
