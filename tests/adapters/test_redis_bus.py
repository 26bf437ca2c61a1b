"""RedisBus beyond the Bus contract: several instances, Redis dying and coming back.

Each test runs its own redis-server (on a free port) so it can kill it; the contract suite
(test_bus_contract.py) runs on the shared one.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from cowrite.adapters.bus import BusClosed
from cowrite.adapters.bus.redis import RedisBus, redact

sys.path.insert(0, str(Path(__file__).parent))  # services.py, next to this file
from services import RedisServer, free_port, private_redis


def fast_bus(url: str, prefix: str = "t:", open_timeout: float = 5.0) -> RedisBus:
    """A bus with short timeouts, so failures show (and heal) within a test's patience."""
    return RedisBus(
        url,
        prefix=prefix,
        timeout=0.5,
        open_timeout=open_timeout,
        health_check_interval=0.2,
        backoff_min=0.02,
        backoff_max=0.2,
    )


@pytest.fixture
def server() -> Iterator[RedisServer]:
    srv = private_redis()
    yield srv
    srv.destroy()


@pytest.fixture
async def pair(server: RedisServer) -> AsyncIterator[tuple[RedisBus, RedisBus]]:
    """Two buses on one Redis, as two server instances would be."""
    prefix = f"t:{uuid.uuid4().hex}:"
    a = fast_bus(server.url, prefix)
    b = fast_bus(server.url, prefix)
    await a.open()
    await b.open()
    yield a, b
    await a.close()
    await b.close()


async def until(cond: Callable[[], object], timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        assert loop.time() < end, "condition not met in time"
        await asyncio.sleep(0.01)


class Inbox:
    def __init__(self) -> None:
        self.got: list[tuple[str, bytes]] = []

    async def __call__(self, channel: str, message: bytes) -> None:
        self.got.append((channel, message))

    def messages(self) -> list[bytes]:
        return [m for _, m in self.got]


async def test_two_instances_exchange_messages_both_ways(pair: tuple[RedisBus, RedisBus]) -> None:
    a, b = pair
    at_a, at_b = Inbox(), Inbox()
    await a.subscribe("doc:1", at_a)
    await b.subscribe("doc:1", at_b)
    for i in range(20):
        await a.publish("doc:1", b"a%d" % i)
        await b.publish("doc:1", b"b%d" % i)
    await until(lambda: len(at_a.got) == 40 and len(at_b.got) == 40)
    for inbox in (at_a, at_b):
        assert {c for c, _ in inbox.got} == {"doc:1"}  # the prefix is not shown to handlers
        # In order per publisher, interleaved between publishers.
        assert [m for m in inbox.messages() if m[:1] == b"a"] == [b"a%d" % i for i in range(20)]
        assert [m for m in inbox.messages() if m[:1] == b"b"] == [b"b%d" % i for i in range(20)]
    assert a.connected and b.connected


async def test_a_burst_of_concurrent_publishes_arrives_whole_and_in_order(
    pair: tuple[RedisBus, RedisBus],
) -> None:
    """Publishes queued together go out pipelined, still in the order they were made."""
    a, b = pair
    at_b = Inbox()
    await b.subscribe("doc:burst", at_b)
    expected = [b"%d" % i for i in range(2000)]
    await asyncio.gather(*(a.publish("doc:burst", m) for m in expected))
    await until(lambda: len(at_b.got) == len(expected))
    assert at_b.messages() == expected


async def test_a_publish_backlog_beyond_capacity_is_refused_not_queued(
    server: RedisServer,
) -> None:
    bus = RedisBus(server.url, prefix=f"t:{uuid.uuid4().hex}:", capacity=10)
    await bus.open()
    try:
        results = await asyncio.gather(
            *(bus.publish("doc:full", b"x") for _ in range(100)), return_exceptions=True
        )
        refused = [r for r in results if isinstance(r, BusClosed)]
        assert refused and all(r is None or isinstance(r, BusClosed) for r in results)
        assert "not keeping up" in str(refused[0])
        assert bus.connected  # an overload is not a lost connection
        await bus.publish("doc:full", b"fine again")
    finally:
        await bus.close()


async def test_prefixes_keep_deployments_apart(server: RedisServer) -> None:
    one = fast_bus(server.url, "one:")
    two = fast_bus(server.url, "two:")
    await one.open()
    await two.open()
    try:
        at_one, at_two = Inbox(), Inbox()
        await one.subscribe("x", at_one)
        await two.subscribe("x", at_two)
        await one.publish("x", b"1")
        await two.publish("x", b"2")
        await until(lambda: at_one.got and at_two.got)
        await asyncio.sleep(0.05)
        assert at_one.messages() == [b"1"] and at_two.messages() == [b"2"]
    finally:
        await one.close()
        await two.close()


async def test_killed_redis_fails_fast_then_resumes_by_itself(
    server: RedisServer, pair: tuple[RedisBus, RedisBus]
) -> None:
    a, b = pair
    reconnected: list[str] = []

    async def note_a() -> None:
        reconnected.append("a")

    async def note_b() -> None:
        reconnected.append("b")

    a.on_reconnect.append(note_a)
    b.on_reconnect.append(note_b)
    at_b, at_a = Inbox(), Inbox()
    await b.subscribe("doc:k", at_b)
    await a.subscribe("doc:back", at_a)

    failures: list[float] = []  # how long each failed publish took
    sent: list[int] = []
    stop = asyncio.Event()

    async def stream() -> None:  # A publishes steadily throughout, as a busy instance would
        i = 0
        while not stop.is_set():
            started = time.monotonic()
            try:
                await a.publish("doc:k", str(i).encode())
                sent.append(i)
            except BusClosed:
                failures.append(time.monotonic() - started)
            i += 1
            await asyncio.sleep(0.005)

    streamer = asyncio.create_task(stream())
    await until(lambda: len(at_b.got) >= 10)

    server.kill()
    await until(lambda: not a.connected and not b.connected, timeout=3.0)
    await until(lambda: len(failures) >= 20, timeout=3.0)
    assert max(failures) < 1.0  # bounded by `timeout`, and immediate once disconnected
    with pytest.raises(BusClosed):
        await b.publish("doc:back", b"lost")
    assert reconnected == []

    server.start()  # same port: the buses find it again with no help
    await until(lambda: a.connected and b.connected, timeout=5.0)
    await until(lambda: sorted(reconnected) == ["a", "b"], timeout=2.0)
    assert a.reconnects == 1 and b.reconnects == 1
    mark = len(sent)
    await until(lambda: len(sent) > mark + 10)
    stop.set()
    await streamer
    # The subscriptions came back without anyone re-subscribing: post-restart messages arrive.
    await until(lambda: str(sent[-1]).encode() in at_b.messages())
    after = [str(i).encode() for i in sent[mark:]]
    assert at_b.messages()[-len(after) :] == after
    await b.publish("doc:back", b"hello again")
    await until(lambda: at_a.messages() == [b"hello again"])


async def test_a_frozen_redis_is_noticed_by_the_health_check(
    server: RedisServer, pair: tuple[RedisBus, RedisBus]
) -> None:
    """SIGSTOP: connections stay open but nothing answers, like a network partition."""
    a, b = pair
    reconnected = asyncio.Event()

    async def note() -> None:
        reconnected.set()

    b.on_reconnect.append(note)
    at_b = Inbox()
    await b.subscribe("doc:f", at_b)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(BusClosed):
            await a.publish("doc:f", b"into the void")
        assert time.monotonic() - started < 1.5  # `timeout`, not forever
        # B only reads: its PING goes unanswered and it gives the connection up.
        await until(lambda: not b.connected, timeout=3.0)
    finally:
        server.proc.send_signal(signal.SIGCONT)
    await asyncio.wait_for(reconnected.wait(), 5.0)
    await until(lambda: a.connected, timeout=5.0)
    await a.publish("doc:f", b"back")
    await until(lambda: b"back" in at_b.messages())


async def test_subscribing_while_disconnected_takes_effect_on_reconnect(
    server: RedisServer, pair: tuple[RedisBus, RedisBus]
) -> None:
    a, b = pair
    server.kill()
    await until(lambda: not b.connected, timeout=3.0)
    at_b = Inbox()
    sub = await asyncio.wait_for(b.subscribe("doc:late", at_b), 1.0)  # does not wait for Redis
    server.start()
    await until(lambda: a.connected and b.connected, timeout=5.0)
    await a.publish("doc:late", b"1")
    await until(lambda: at_b.messages() == [b"1"])
    await sub.close()
    await a.publish("doc:late", b"2")
    await asyncio.sleep(0.05)
    assert at_b.messages() == [b"1"]


async def test_open_fails_when_redis_is_unreachable_and_close_never_hangs() -> None:
    bus = fast_bus(f"redis://127.0.0.1:{free_port()}/0", open_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(BusClosed):
        await bus.open()
    assert time.monotonic() - started < 2.0
    assert not bus.connected
    with pytest.raises(BusClosed):
        await bus.publish("x", b"y")
    await asyncio.wait_for(bus.close(), 1.0)


async def test_close_while_redis_is_down_does_not_hang(
    server: RedisServer, pair: tuple[RedisBus, RedisBus]
) -> None:
    a, _ = pair
    await a.subscribe("doc:z", Inbox())
    server.kill()
    await until(lambda: not a.connected, timeout=3.0)
    await asyncio.wait_for(a.close(), 1.0)
    with pytest.raises(BusClosed):
        await a.publish("doc:z", b"after close")


def test_urls_are_logged_without_their_password() -> None:
    assert redact("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact("rediss://user:pw@cache/1") == "rediss://user:***@cache/1"
    assert redact("redis://cache:6379") == "redis://cache:6379"
