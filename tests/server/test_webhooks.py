"""Webhooks to a real HTTP receiver on 127.0.0.1: signed (verified with ``standardwebhooks``),
retried after failures, in order, and never in the way of editing while the receiver is down."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

import cowrite
from cowrite.server.config import Settings

from .conftest import RawClient, RunningServer, start_server

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


@dataclass
class Request:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server: records each POST and answers ``status()``; while ``gate``
    is clear, requests wait (a receiver that is down, or very slow)."""

    status: Callable[[], int] = lambda: 200
    requests: list[Request] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""
    server: asyncio.Server | None = None

    async def start(self) -> None:
        self.gate.set()
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hooks"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, _, v = line.partition(":")
                        headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                await self.gate.wait()
                self.requests.append(Request(headers, body))
                code = self.status()
                writer.write(f"HTTP/1.1 {code} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        self.gate.set()

    def verified(self) -> list[dict[str, Any]]:
        """Every request's body, verified against its signature headers."""
        wh = Webhook(SECRET)
        return [wh.verify(r.body, r.headers) for r in self.requests]


async def until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.close()


@pytest.fixture
async def hooked(settings: Settings, receiver: Receiver) -> AsyncIterator[RunningServer]:
    running, task = await start_server(
        replace(
            settings,
            webhook_urls=receiver.url,
            webhook_secret=SECRET,
            webhook_retry_s=0.05,
            webhook_timeout_s=120,
            change_debounce_s=0.05,
            heartbeat_s=30,  # the raw chat client answers no pings
            heartbeat_timeout_s=90,
        )
    )
    yield running
    running.server.should_exit = True
    await asyncio.wait_for(task, 20)


def metric(server: RunningServer, name: str) -> float:
    for line in server.state.metrics.render().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no metric {name}")


async def test_signed_webhooks_are_retried_after_500s_and_arrive_in_order(
    hooked: RunningServer, receiver: Receiver
) -> None:
    answers = iter([500, 500, 500])
    receiver.status = lambda: next(answers, 200)
    async with httpx.AsyncClient(base_url=hooked.url) as http:
        r = await http.post("/api/documents", json={"id": "w"})
        assert r.status_code == 201
        async with cowrite.connect(hooked.ws_url, doc="w", name="ann") as d:
            d.text("body").insert(0, "hello")
            await d.synced()
            await until(lambda: len(receiver.requests) >= 5)  # created x4, changed
            chat = await RawClient.connect(hooked.ws_url, "chatter")
            await chat.send({"type": "join", "doc": "w"})
            await chat.expect("joined")
            await chat.send({"type": "chat_send", "doc": "w", "text": "hi there"})
            await chat.expect("chat")
            await until(lambda: len(receiver.requests) >= 6)
            await chat.close()
        assert (await http.delete("/api/documents/w")).status_code == 204
        await until(lambda: len(receiver.requests) >= 7)

    bodies = receiver.verified()  # raises unless every signature is right
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    # the first event was refused three times: retried with the same id, then delivered
    assert ids[:4] == [ids[0]] * 4 and len(set(ids)) == 4
    types = [b["type"] for b in bodies]
    assert types == ["document.created"] * 4 + [
        "document.changed",
        "chat.message",
        "document.deleted",
    ]
    created, changed, chat_msg, deleted = bodies[3], bodies[4], bodies[5], bodies[6]
    assert created["data"] == {"document": "w", "kind": "crdt", "by": "anonymous"}
    assert changed["data"]["document"] == "w" and changed["data"]["changes"] == 1
    assert changed["data"]["version"] >= 1 and len(changed["data"]["authors"]) == 1
    assert chat_msg["data"]["document"] == "w"
    assert chat_msg["data"]["message"]["text"] == "hi there"
    assert deleted["data"] == {"document": "w", "by": "anonymous"}
    assert all(b["timestamp"].endswith("Z") for b in bodies)
    # the last answer may still be on its way back to the server
    await until(lambda: metric(hooked, "cowrite_webhook_sent_total") == 4)
    assert metric(hooked, "cowrite_webhook_retried_total") == 3
    assert metric(hooked, "cowrite_webhook_failed_total") == 0
    assert metric(hooked, "cowrite_webhook_queue_depth") == 0
    # a forged body does not verify
    forged = receiver.requests[-1]
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(forged.body.replace(b"w", b"x"), forged.headers)


async def test_nothing_waits_for_a_receiver_that_is_down(
    hooked: RunningServer, receiver: Receiver
) -> None:
    receiver.gate.clear()  # every request hangs until the receiver comes back
    async with httpx.AsyncClient(base_url=hooked.url) as http:
        for i in range(3):
            assert (await http.post("/api/documents", json={"id": f"d{i}"})).status_code == 201
        async with cowrite.connect(hooked.ws_url, doc="d0", name="ann") as d:
            for n in range(20):
                d.text("body").insert(0, f"{n} ")
                await d.synced()  # acknowledged (durable) while no webhook got through
        r = await http.get("/api/documents/d0/text/body")
        assert r.status_code == 200 and r.text.startswith("19 ")
        # 3 created, 1 or more changed (debounced), all waiting
        await until(lambda: metric(hooked, "cowrite_webhook_queue_depth") >= 4)
        assert receiver.requests == []
    receiver.gate.set()  # back: everything queued is delivered, in order

    def changes_delivered() -> int:
        return sum(
            b["data"]["changes"] for b in receiver.verified() if b["type"] == "document.changed"
        )

    await until(lambda: changes_delivered() == 20)  # the last debounced one may come later
    bodies = receiver.verified()
    assert [b["type"] for b in bodies[:3]] == ["document.created"] * 3
    assert [b["data"]["document"] for b in bodies[:3]] == ["d0", "d1", "d2"]
    changed = bodies[3:]
    assert changed and all(b["type"] == "document.changed" for b in changed)
    assert sum(b["data"]["changes"] for b in changed) == 20
    assert changed[-1]["data"]["version"] == max(b["data"]["version"] for b in changed)


async def test_a_full_queue_drops_the_oldest_waiting_events(
    settings: Settings, receiver: Receiver
) -> None:
    running, task = await start_server(
        replace(settings, webhook_urls=receiver.url, webhook_secret=SECRET, webhook_queue=2)
    )
    try:
        receiver.gate.clear()
        async with httpx.AsyncClient(base_url=running.url) as http:
            for i in range(5):
                assert (await http.post("/api/documents", json={"id": f"q{i}"})).status_code == 201
        # q0 is in flight; q1 and q2 were dropped for q3 and q4
        await until(lambda: metric(running, "cowrite_webhook_dropped_total") == 2)
        receiver.gate.set()
        await until(lambda: len(receiver.requests) == 3)
        docs = [b["data"]["document"] for b in receiver.verified()]
        assert docs == ["q0", "q3", "q4"]
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)


def test_webhook_settings_from_the_environment() -> None:
    s = Settings.from_env(
        {"COWRITE_WEBHOOK_URLS": "http://a/x, http://b/y", "COWRITE_WEBHOOK_SECRET": SECRET}
    )
    assert s.webhook_urls == "http://a/x, http://b/y"
    from prometheus_client import CollectorRegistry

    from cowrite.server.webhooks import Webhooks

    hooks = Webhooks.from_settings(s, CollectorRegistry())
    assert hooks is not None and [t.url for t in hooks.targets] == ["http://a/x", "http://b/y"]
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        Settings.from_env({"COWRITE_WEBHOOK_URLS": "http://a/x"})
