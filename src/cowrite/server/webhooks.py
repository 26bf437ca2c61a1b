"""Webhooks: tell the application's backend over HTTP what happened to documents.

Configured by ``webhook_urls`` (``COWRITE_WEBHOOK_URLS``, comma-separated) and
``webhook_secret`` (``COWRITE_WEBHOOK_SECRET``, a Standard Webhooks secret: base64, optionally
prefixed ``whsec_``). Every URL gets every event as a JSON ``POST``::

    {"type": "document.changed", "timestamp": "2026-01-01T12:00:00Z", "data": {...}}

``type`` is ``document.created``, ``document.changed`` (debounced like ``on_change_debounced``:
``data`` has ``version``, ``changes``, ``authors``), ``document.deleted`` or ``chat.message``.
Each is signed with the Standard Webhooks scheme (headers ``webhook-id``, ``webhook-timestamp``,
``webhook-signature``; verify with the ``standardwebhooks`` package). A delivery that fails
(no answer in ``webhook_timeout_s``, or a status other than 2xx) is retried with the same
``webhook-id`` after ``webhook_retry_s``, doubling each time (at most 10 minutes), up to
``webhook_attempts`` attempts; deliveries to one URL are in order. Each URL has a queue of at
most ``webhook_queue`` events waiting (beyond, the oldest waiting one is dropped; the one in
flight never is): enqueueing never waits, so a receiver that is down never holds up a room.

Metrics: ``cowrite_webhook_sent_total``, ``cowrite_webhook_failed_total`` (given up),
``cowrite_webhook_retried_total``, ``cowrite_webhook_dropped_total`` (queue full),
``cowrite_webhook_queue_depth``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from prometheus_client import CollectorRegistry, Counter, Gauge
from standardwebhooks import Webhook

from cowrite.server.config import Settings
from cowrite.server.hooks import (
    Changes,
    ChatPosted,
    DocumentCreated,
    DocumentDeleted,
    Extension,
)

log = logging.getLogger("cowrite.webhooks")

MAX_DELAY_S = 600.0
SHUTDOWN_GRACE_S = 2.0


class _Event(msgspec.Struct):
    type: str
    timestamp: str
    data: dict[str, Any]


class _Target:
    """One URL: its queue and its delivery task."""

    def __init__(self, url: str, size: int) -> None:
        self.url = url
        self.size = size
        self.queue: collections.deque[tuple[str, bytes]] = collections.deque()
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None


class Webhooks(Extension):
    """Signed webhooks as an extension (``create_app`` adds one when ``webhook_urls`` is set)."""

    name = "webhooks"

    def __init__(
        self,
        urls: list[str],
        secret: str,
        registry: CollectorRegistry,
        *,
        retry_s: float = 1.0,
        attempts: int = 8,
        queue: int = 10_000,
        timeout_s: float = 10.0,
    ) -> None:
        if not urls:
            raise ValueError("webhooks need at least one URL")
        self.signer = Webhook(secret)
        self.retry_s = retry_s
        self.attempts = attempts
        self.timeout_s = timeout_s
        self.targets = [_Target(u, queue) for u in urls]
        self._client: httpx.AsyncClient | None = None
        self.sent = Counter("cowrite_webhook_sent", "Webhooks delivered (2xx)", registry=registry)
        self.failed = Counter(
            "cowrite_webhook_failed", "Webhooks given up after every attempt", registry=registry
        )
        self.retried = Counter(
            "cowrite_webhook_retried",
            "Webhook delivery attempts that are retries",
            registry=registry,
        )
        self.dropped = Counter(
            "cowrite_webhook_dropped", "Webhooks dropped from a full queue", registry=registry
        )
        self.depth = Gauge(
            "cowrite_webhook_queue_depth", "Webhooks waiting for delivery", registry=registry
        )

    @classmethod
    def from_settings(cls, settings: Settings, registry: CollectorRegistry) -> Webhooks | None:
        urls = [u.strip() for u in (settings.webhook_urls or "").split(",") if u.strip()]
        if not urls or not settings.webhook_secret:
            return None
        return cls(
            urls,
            settings.webhook_secret,
            registry,
            retry_s=settings.webhook_retry_s,
            attempts=settings.webhook_attempts,
            queue=settings.webhook_queue,
            timeout_s=settings.webhook_timeout_s,
        )

    # --- hooks ------------------------------------------------------------------------------

    async def on_startup(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout_s)
        for target in self.targets:
            target.task = asyncio.create_task(self._deliver(target))

    async def on_shutdown(self) -> None:
        """Give queued deliveries a moment, then stop (what is left is lost)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE_S
        while any(t.queue for t in self.targets) and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for target in self.targets:
            if target.task is not None:
                target.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await target.task
        if self._client is not None:
            await self._client.aclose()

    async def on_create_document(self, event: DocumentCreated) -> None:
        self.enqueue(
            "document.created", {"document": event.document, "kind": event.kind, "by": event.by}
        )

    async def on_change_debounced(self, event: Changes) -> None:
        self.enqueue(
            "document.changed",
            {
                "document": event.document,
                "version": event.version,
                "changes": event.changes,
                "authors": list(event.authors),
                "first_ms": event.first_ms,
                "last_ms": event.last_ms,
            },
        )

    async def on_delete_document(self, event: DocumentDeleted) -> None:
        self.enqueue("document.deleted", {"document": event.document, "by": event.by})

    async def on_chat(self, event: ChatPosted) -> None:
        message = msgspec.to_builtins(event.message)
        self.enqueue("chat.message", {"document": event.document, "message": message})

    # --- delivery ---------------------------------------------------------------------------

    def enqueue(self, type_: str, data: dict[str, Any]) -> None:
        """Queue an event for every URL (never waits; drops the oldest of a full queue)."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        body = msgspec.json.encode(_Event(type_, now, data))
        msg_id = f"msg_{uuid.uuid4().hex}"
        for target in self.targets:
            if len(target.queue) >= target.size:
                target.queue.popleft()
                self.dropped.inc()
                self.depth.dec()
                log.warning("webhook queue full: oldest dropped", extra={"url": target.url})
            target.queue.append((msg_id, body))
            self.depth.inc()
            target.wake.set()

    async def _deliver(self, target: _Target) -> None:
        while True:
            if not target.queue:
                target.wake.clear()
                await target.wake.wait()
                continue
            msg_id, body = target.queue.popleft()  # in flight: no longer droppable
            delay = self.retry_s
            try:
                for attempt in range(1, self.attempts + 1):
                    if attempt > 1:
                        self.retried.inc()
                    if await self._post(target.url, msg_id, body):
                        self.sent.inc()
                        break
                    if attempt == self.attempts:
                        self.failed.inc()
                        log.error(
                            "webhook given up after %d attempts",
                            attempt,
                            extra={"url": target.url, "webhook_id": msg_id},
                        )
                        break
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, MAX_DELAY_S)
            finally:
                self.depth.dec()

    async def _post(self, url: str, msg_id: str, body: bytes) -> bool:
        """One attempt; True on a 2xx answer. Signed afresh (its timestamp is now)."""
        assert self._client is not None
        now = datetime.now(UTC)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(msg_id, now, body),
        }
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            log.warning(
                "webhook delivery failed: %s", exc, extra={"url": url, "webhook_id": msg_id}
            )
            return False
        if 200 <= response.status_code < 300:
            return True
        log.warning(
            "webhook answered %d",
            response.status_code,
            extra={"url": url, "webhook_id": msg_id},
        )
        return False
