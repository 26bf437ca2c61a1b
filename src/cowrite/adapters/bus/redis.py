"""The Redis bus: fan-out between server instances over Redis pub/sub (redis-py asyncio).

Same semantics as `LocalBus` (see ``base.py``): at most once, in order per publisher and
channel, one bounded queue and one delivery task per subscriber so a slow handler drops rather
than blocking anybody. Two connections per bus: one for publishing, where a pump task sends
what `publish` queued in order, pipelined (`publish` returns once Redis took the message), and
one pub/sub connection read by a reader task.

When Redis goes away the bus reconnects by itself, with jittered exponential backoff:

* meanwhile ``connected`` is False and `publish` raises `BusClosed` at once (it never waits
  for Redis to come back); a publish that fails on a live-looking connection raises `BusClosed`
  within ``timeout`` seconds and starts the reconnect;
* subscriptions stay registered and are re-established on the new connection: nobody
  re-subscribes by hand; `subscribe` itself works while disconnected (it takes effect on
  reconnect);
* once resubscribed, every callback in ``on_reconnect`` is run (each in its own task): messages
  may have been missed while the bus was down, so the server catches up from the Store there.

A silent network partition (no FIN/RST) is noticed by a PING on the pub/sub connection after
``health_check_interval`` idle seconds: no answer within two more intervals counts as a loss.

``prefix`` is prepended to every channel name in Redis (handlers see the name without it): it
separates deployments (or tests) sharing one Redis.

What the bus cannot tell a subscriber: that another instance's publish failed (its Redis
connection broke, or its backlog was full) while this instance stayed connected. Messages that
carry a per-document version let the receiver notice such a gap and catch up from the Store.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from cowrite.adapters.bus._delivery import QueuedSubscription
from cowrite.adapters.bus.base import BusClosed, Handler

log = logging.getLogger("cowrite.bus")

ReconnectCallback = Callable[[], Awaitable[None]]
"""Run after the bus reconnected to Redis and resubscribed: messages may have been missed."""

_LOST = (RedisError, OSError, TimeoutError)
"""What a lost or unusable connection raises (redis-py's errors, sockets, our timeouts)."""


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "no error"
    text = str(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def redact(url: str) -> str:
    """``url`` without its password, for logs and errors."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


async def _all(futures: list[asyncio.Future[bool]]) -> None:
    await asyncio.wait(futures)  # not gather: cancelling this must not cancel the futures


async def _wait(event: asyncio.Event) -> None:
    await event.wait()


@dataclass
class _Channel:
    subs: set[QueuedSubscription] = field(default_factory=set)
    # Resolved when Redis confirmed the SUBSCRIBE on the current connection (None: not sent).
    ready: asyncio.Future[bool] | None = None


_Outgoing = tuple[bytes, bytes, "asyncio.Future[None]"]
"""A message on its way: Redis channel name, payload, and the publisher waiting for it."""


@dataclass
class _Session:
    """One connection to Redis: the publishing client (driven by the pump) and its pub/sub."""

    client: Redis
    pubsub: PubSub
    broken: asyncio.Event = field(default_factory=asyncio.Event)
    error: BaseException | None = None
    outbox: collections.deque[_Outgoing] = field(default_factory=collections.deque)
    sending: list[_Outgoing] = field(default_factory=list)
    wake: asyncio.Event = field(default_factory=asyncio.Event)


class RedisBus:
    """A `Bus` over Redis pub/sub; ``RedisBus("redis://host:6379/0")`` (``rediss://`` for TLS).

    ``capacity`` bounds each subscriber's queue (beyond it messages are dropped and counted in
    ``dropped``) and the publish backlog (beyond it `publish` raises `BusClosed`). ``timeout``
    bounds a connect, a round trip (hence a failing `publish`) and a subscribe's wait for
    Redis's confirmation. ``open_timeout``: how long `open` waits for Redis before raising
    `BusClosed`. ``backoff_min``/``backoff_max``: the reconnect delays (jittered, doubling).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "cowrite:",
        capacity: int = 10_000,
        timeout: float = 2.0,
        open_timeout: float = 5.0,
        health_check_interval: float = 1.0,
        backoff_min: float = 0.05,
        backoff_max: float = 2.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.capacity = capacity
        self.timeout = timeout
        self.open_timeout = open_timeout
        self.health_check_interval = health_check_interval
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.on_reconnect: list[ReconnectCallback] = []
        """Called (each in its own task) after every reconnect, once resubscribed."""
        self.reconnects = 0
        """How many times the bus reconnected after losing Redis (not counting the first)."""
        self.last_error: BaseException | None = None
        """Why the last connection ended or the last attempt failed."""
        self._channels: dict[str, _Channel] = {}
        # Futures awaiting Redis's SUBSCRIBE confirmations, per Redis channel name, in the order
        # the commands were sent on the current pub/sub connection.
        self._pending: dict[bytes, collections.deque[asyncio.Future[bool]]] = {}
        self._cmd_lock = asyncio.Lock()
        self._session: _Session | None = None
        self._connected = False
        self._up = asyncio.Event()
        self._open = False
        self._supervisor: asyncio.Task[None] | None = None
        self._callbacks: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        """True while Redis is reachable and every subscription is in place."""
        return self._connected

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect; raises `BusClosed` if Redis cannot be reached within ``open_timeout``."""
        if self._open:
            return
        self._open = True
        self._up.clear()
        self._supervisor = asyncio.create_task(self._supervise(), name="redis-bus")
        try:
            async with asyncio.timeout(self.open_timeout):
                await self._up.wait()
        except TimeoutError:
            error = self.last_error
            await self.close()
            raise BusClosed(
                f"cannot reach Redis at {redact(self.url)} ({_describe(error)})"
            ) from error

    async def close(self) -> None:
        self._open = False
        self._connected = False
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
            self._supervisor = None
        for task in list(self._callbacks):
            task.cancel()
        for task in list(self._callbacks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        subs = [s for ch in self._channels.values() for s in ch.subs]
        for sub in subs:
            await sub.close()
        self._channels.clear()

    # -- the Bus ----------------------------------------------------------------------------

    async def publish(self, channel: str, message: bytes) -> None:
        if not self._open:
            raise BusClosed("the bus is closed")
        session = self._session
        if session is None or not self._connected:
            raise BusClosed(f"Redis at {redact(self.url)} is unreachable")
        if len(session.outbox) >= self.capacity:
            raise BusClosed(f"Redis is not keeping up: {len(session.outbox)} messages queued")
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        session.outbox.append((self._key(channel), message, sent))
        session.wake.set()
        await sent  # the pump's doing: done, or BusClosed

    async def _pump(self, session: _Session) -> None:
        """Send the outbox in order, as pipelines: a burst of publishes (many rooms at once)
        costs one round trip per batch, not one each. ``timeout`` bounds each round trip."""
        outbox = session.outbox
        while True:
            await session.wake.wait()
            session.wake.clear()
            while outbox:
                batch, size = session.sending, 0
                while outbox and len(batch) < 1000 and size < 1 << 20:
                    batch.append(outbox.popleft())
                    size += len(batch[-1][1])
                try:
                    async with asyncio.timeout(self.timeout):
                        async with session.client.pipeline(transaction=False) as pipe:
                            for key, message, _ in batch:
                                pipe.publish(key, message)
                            await pipe.execute()
                except _LOST as e:
                    self._lose(session, e)
                    self._fail(session, f"publishing to Redis failed: {_describe(e)}", e)
                    return
                for _, _, sent in batch:
                    if not sent.done():
                        sent.set_result(None)
                batch.clear()

    @staticmethod
    def _fail(session: _Session, reason: str, cause: BaseException | None = None) -> None:
        """Every message not yet sent on ``session`` fails with `BusClosed`."""
        for _, _, sent in [*session.sending, *session.outbox]:
            if not sent.done():
                error = BusClosed(reason)
                error.__cause__ = cause
                sent.set_exception(error)
        session.sending.clear()
        session.outbox.clear()

    async def subscribe(self, channel: str, handler: Handler) -> QueuedSubscription:
        """Subscribe; once this returns (connected), later publishes reach ``handler``."""
        if not self._open:
            raise BusClosed("the bus is closed")
        sub = QueuedSubscription(channel, handler, self.capacity, self._unsubscribe)
        async with self._cmd_lock:
            entry = self._channels.get(channel)
            if entry is None:
                entry = self._channels[channel] = _Channel()
                session = self._session
                if session is not None:
                    entry.ready = self._expect(channel)
                    try:
                        async with asyncio.timeout(self.timeout):
                            await session.pubsub.subscribe(self._key(channel))
                    except _LOST as e:
                        # The session goes; the next one subscribes to every registered channel.
                        self._lose(session, e)
            entry.subs.add(sub)
            ready = entry.ready
        if ready is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout):
                    await asyncio.shield(ready)
        return sub

    async def _unsubscribe(self, sub: QueuedSubscription) -> None:
        async with self._cmd_lock:
            entry = self._channels.get(sub.channel)
            if entry is None:
                return
            entry.subs.discard(sub)
            if entry.subs:
                return
            del self._channels[sub.channel]
            session = self._session
            if session is not None:
                try:
                    async with asyncio.timeout(self.timeout):
                        await session.pubsub.unsubscribe(self._key(sub.channel))
                except _LOST as e:
                    self._lose(session, e)

    # -- internals --------------------------------------------------------------------------

    def _key(self, channel: str) -> bytes:
        return (self.prefix + channel).encode()

    def _expect(self, channel: str) -> asyncio.Future[bool]:
        """A future for the confirmation of a SUBSCRIBE about to be sent."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(self._key(channel), collections.deque()).append(future)
        return future

    def _lose(self, session: _Session, error: BaseException) -> None:
        """A command on ``session`` failed: end it (the supervisor reconnects)."""
        if self._session is session and not session.broken.is_set():
            session.error = error
            self._connected = False
            session.broken.set()

    async def _supervise(self) -> None:
        delay = self.backoff_min
        ever_up = False
        failures = 0
        url = redact(self.url)
        while True:
            error: BaseException | None
            try:
                error = await self._run_session(reconnect=ever_up)
            except _LOST as e:
                error = e
            except Exception as e:
                log.exception("redis bus: unexpected failure; reconnecting")
                error = e
            self.last_error = error
            if self._up.is_set():  # it was up, and went down
                self._up.clear()
                ever_up = True
                delay = self.backoff_min
                failures = 1  # this warning covers the outage: the failed attempts log at DEBUG
                log.warning("redis bus: lost %s (%s); reconnecting", url, _describe(error))
            else:
                failures += 1
                level = logging.WARNING if failures == 1 else logging.DEBUG
                log.log(level, "redis bus: cannot reach %s (%s)", url, _describe(error))
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, self.backoff_max)

    async def _run_session(self, reconnect: bool) -> BaseException | None:
        """Connect, subscribe, read until the connection is lost: raises why, or returns the
        error a publish or subscribe met (the session was ended by `_lose`)."""
        client = Redis.from_url(
            self.url,
            socket_connect_timeout=self.timeout,
            socket_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0, supported_errors=()),  # we reconnect, not redis-py
            health_check_interval=0,
        )
        session = _Session(client, client.pubsub())
        reader: asyncio.Task[None] | None = None
        helper: asyncio.Task[None] | None = None
        pump: asyncio.Task[None] | None = None
        try:
            async with asyncio.timeout(self.timeout):
                await client.ping()
                async with self._cmd_lock:
                    waits = [self._resubscribe_entry(ch, e) for ch, e in self._channels.items()]
                    if waits:
                        await session.pubsub.subscribe(*(self._key(ch) for ch in self._channels))
                    else:
                        await session.pubsub.ping()  # connects; the reader takes the PONG
                    self._session = session
            reader = asyncio.create_task(self._read(session))
            if waits:
                helper = asyncio.create_task(_all(waits))
                done, _ = await asyncio.wait(
                    {reader, helper}, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if reader in done:
                    reader.result()  # raises what ended it
                if helper not in done:
                    raise TimeoutError("Redis did not confirm the subscriptions")
            pump = asyncio.create_task(self._pump(session))
            self._connected = True
            self._up.set()
            if reconnect:
                self.reconnects += 1
                log.info("redis bus: reconnected to %s", redact(self.url))
                self._fire_reconnect()
            helper = asyncio.create_task(_wait(session.broken))
            done, _ = await asyncio.wait({reader, helper}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                reader.result()
            return session.error
        finally:
            self._connected = False
            if self._session is session:
                self._session = None  # no new command starts on it
            for task in (reader, helper, pump):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, *_LOST):
                        await task
            self._fail(session, f"lost the connection to Redis at {redact(self.url)}")
            # A (un)subscribe in flight (bounded by `timeout`) ends before the client closes: one
            # that ran on a closed client would open a connection nobody closes.
            with contextlib.suppress(*_LOST):
                async with asyncio.timeout(2 * self.timeout):
                    async with self._cmd_lock:
                        self._fail_pending()
            self._fail_pending()
            with contextlib.suppress(*_LOST):
                async with asyncio.timeout(self.timeout):
                    await session.pubsub.aclose()
                    await client.aclose()

    def _resubscribe_entry(self, channel: str, entry: _Channel) -> asyncio.Future[bool]:
        entry.ready = self._expect(channel)
        return entry.ready

    def _fail_pending(self) -> None:
        """The connection is gone: nobody waits for its confirmations any more."""
        for queue in self._pending.values():
            for future in queue:
                if not future.done():
                    future.set_result(False)
        self._pending.clear()
        for entry in self._channels.values():
            entry.ready = None

    async def _read(self, session: _Session) -> None:
        loop = asyncio.get_running_loop()
        interval = self.health_check_interval
        last_seen = last_ping = loop.time()
        pubsub = session.pubsub
        while True:
            message: dict[str, Any] | None = await pubsub.get_message(timeout=interval)
            now = loop.time()
            if message is None:
                if now - last_seen > 3 * interval:
                    raise TimeoutError(f"Redis did not answer PING in {3 * interval:g} s")
                if now - last_ping >= interval:
                    await pubsub.ping()
                    last_ping = now
                continue
            last_seen = now
            kind = message["type"]
            if kind == "message":
                self._dispatch(message["channel"], message["data"])
            elif kind == "subscribe":
                queue = self._pending.get(message["channel"])
                if queue:
                    future = queue.popleft()
                    if not queue:
                        del self._pending[message["channel"]]
                    if not future.done():
                        future.set_result(True)

    def _dispatch(self, key: bytes, data: bytes) -> None:
        name = key.decode(errors="replace")
        if not name.startswith(self.prefix):
            return
        entry = self._channels.get(name[len(self.prefix) :])
        if entry is None:
            return
        for sub in list(entry.subs):
            sub.offer(data)

    def _fire_reconnect(self) -> None:
        for callback in list(self.on_reconnect):
            task = asyncio.create_task(self._call(callback))
            self._callbacks.add(task)
            task.add_done_callback(self._callbacks.discard)

    @staticmethod
    async def _call(callback: ReconnectCallback) -> None:
        try:
            await callback()
        except Exception:
            log.exception("redis bus: on_reconnect callback failed")
