"""The Bus contract: every implementation (in-process now, Redis later) passes these."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cowrite.adapters.bus import Bus, BusClosed, LocalBus
from cowrite.adapters.bus.redis import RedisBus

sys.path.insert(0, str(Path(__file__).parent))  # services.py, next to this file
from services import shared_redis


@pytest.fixture(params=["local", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    impl: Bus
    if request.param == "redis":  # one server for the run; each test its own channel prefix
        impl = RedisBus(shared_redis().url, prefix=f"test:{uuid.uuid4().hex}:", capacity=100)
    else:
        impl = LocalBus(capacity=100)
    await impl.open()
    yield impl
    await impl.close()


async def _until(cond: object, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():  # type: ignore[operator]
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_subscribers_receive_messages_in_publish_order(bus: Bus) -> None:
    got: list[tuple[str, bytes]] = []

    async def handler(channel: str, message: bytes) -> None:
        got.append((channel, message))

    await bus.subscribe("doc:a", handler)
    for i in range(50):
        await bus.publish("doc:a", str(i).encode())
    await _until(lambda: len(got) == 50)
    assert got == [("doc:a", str(i).encode()) for i in range(50)]


async def test_channels_are_separate_and_every_subscriber_gets_a_copy(bus: Bus) -> None:
    a1: list[bytes] = []
    a2: list[bytes] = []
    b: list[bytes] = []

    async def add(target: list[bytes], _c: str, m: bytes) -> None:
        target.append(m)

    await bus.subscribe("a", lambda c, m: add(a1, c, m))
    await bus.subscribe("a", lambda c, m: add(a2, c, m))
    await bus.subscribe("b", lambda c, m: add(b, c, m))
    await bus.publish("a", b"x")
    await bus.publish("b", b"y")
    await _until(lambda: a1 and a2 and b)
    assert a1 == a2 == [b"x"] and b == [b"y"]


async def test_a_closed_subscription_receives_nothing_more(bus: Bus) -> None:
    got: list[bytes] = []

    async def handler(_c: str, m: bytes) -> None:
        got.append(m)

    sub = await bus.subscribe("c", handler)
    await bus.publish("c", b"1")
    await _until(lambda: got == [b"1"])
    await sub.close()
    await bus.publish("c", b"2")
    await asyncio.sleep(0.05)
    assert got == [b"1"]


async def test_a_slow_subscriber_drops_instead_of_blocking_others(bus: Bus) -> None:
    release = asyncio.Event()
    fast: list[bytes] = []

    async def slow(_c: str, _m: bytes) -> None:
        await release.wait()

    async def quick(_c: str, m: bytes) -> None:
        fast.append(m)

    slow_sub = await bus.subscribe("d", slow)
    await bus.subscribe("d", quick)
    for i in range(300):  # capacity is 100: the slow one must drop
        await bus.publish("d", str(i).encode())
        await asyncio.sleep(0)  # a publisher that yields, as the server's does
    await _until(lambda: len(fast) == 300)
    assert slow_sub.dropped > 0
    release.set()


async def test_a_failing_handler_does_not_stop_delivery(bus: Bus) -> None:
    got: list[bytes] = []

    async def flaky(_c: str, m: bytes) -> None:
        if m == b"boom":
            raise RuntimeError("handler bug")
        got.append(m)

    await bus.subscribe("e", flaky)
    for m in (b"1", b"boom", b"2"):
        await bus.publish("e", m)
    await _until(lambda: got == [b"1", b"2"])


async def test_publishing_on_a_closed_bus_raises() -> None:
    bus = LocalBus()
    await bus.open()
    await bus.close()
    with pytest.raises(BusClosed):
        await bus.publish("x", b"y")
