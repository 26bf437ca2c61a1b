"""Connections per client address: refused with 1013 and a reason beyond the configured rate or
number open; loopback exempt unless asked; memory bounded."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets

from cowrite.server.ip_throttle import IpThrottle

from .conftest import start_server


class Clock:
    now = 0.0

    def __call__(self) -> float:
        return self.now


def test_rate_and_open_connections_per_address() -> None:
    clock = Clock()
    throttle = IpThrottle(1.0, 2, 3, clock=clock)
    assert throttle.admit("10.0.0.1") is None
    assert throttle.admit("10.0.0.1") is None
    refused = throttle.admit("10.0.0.1")  # the burst is spent
    assert refused is not None and "new connections a second" in refused
    assert throttle.admit("10.0.0.2") is None  # another address has its own budget
    clock.now = 1.0
    assert throttle.admit("10.0.0.1") is None  # three open now
    clock.now = 10.0
    refused = throttle.admit("10.0.0.1")
    assert refused is not None and "more than 3 open" in refused
    throttle.release("10.0.0.1")
    assert throttle.admit("10.0.0.1") is None


def test_loopback_is_exempt_unless_asked() -> None:
    lenient = IpThrottle(1.0, 1, 1)
    assert all(lenient.admit(a) is None for a in ["127.0.0.1", "::1", "127.0.0.1"])
    strict = IpThrottle(1.0, 1, 1, loopback=True)
    assert strict.admit("127.0.0.1") is None and strict.admit("127.0.0.1") is not None


def test_tracked_addresses_are_bounded() -> None:
    throttle = IpThrottle(1.0, 1, 0, max_addresses=100)
    for n in range(1_000):
        throttle.admit(f"10.0.{n // 256}.{n % 256}")
        throttle.release(f"10.0.{n // 256}.{n % 256}")
    assert throttle.tracked() == 100


async def test_the_server_refuses_with_1013_and_a_reason(make_settings: Any) -> None:
    settings = make_settings(ip_throttle_loopback=True, ip_max_connections=2)
    running, task = await start_server(settings)
    try:
        url = running.ws_url
        first = await websockets.connect(url)
        second = await websockets.connect(running.url.replace("http", "ws") + "/hocuspocus")
        third = await websockets.connect(url)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(third.recv(), 10)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013
        assert "open connections" in closed.value.rcvd.reason
        await first.close()  # once the server has seen it, the address has room again
        for _ in range(200):
            fourth = await websockets.connect(url)
            await fourth.send('{"type": "hello", "protocol": 1, "client_id": "c"}')
            try:
                welcome = await asyncio.wait_for(fourth.recv(), 10)
                break
            except websockets.ConnectionClosed:
                await asyncio.sleep(0.05)
        assert "welcome" in welcome
        await fourth.close()
        await second.close()
    finally:
        running.server.should_exit = True
        await asyncio.wait_for(task, 20)
