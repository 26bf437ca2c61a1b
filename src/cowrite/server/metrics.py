"""Prometheus metrics of collaboration (one registry per app, so several apps can coexist).

The histograms observed once per edit or per frame written (``edit_ack``, ``edit_broadcast``,
``outbox_depth``) are `LoopHistogram`s: prometheus_client's ``Histogram.observe`` takes a lock
per bucket and one for the sum (a few µs, several times per edit); these are plain counters that
only the event loop's thread may observe.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import HistogramMetricFamily, Metric

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


def _le(bound: float) -> str:
    """A bucket bound as Prometheus writes it (``+Inf``, ``0.5``, ``1.0``)."""
    return "+Inf" if bound == math.inf else repr(float(bound))


class LoopHistogram:
    """A histogram without labels exposed like prometheus_client's (``_bucket`` with ``le``,
    ``_count``, ``_sum``). ``observe`` is a bisect and two additions: call it from the event
    loop's thread only (it takes no lock); ``collect`` may run anywhere (a scrape reads a
    moment's counts)."""

    def __init__(
        self, name: str, documentation: str, buckets: Sequence[float], registry: CollectorRegistry
    ) -> None:
        upper = sorted(float(b) for b in buckets)
        if not upper or upper[-1] != math.inf:
            upper.append(math.inf)
        self.name = name
        self.documentation = documentation
        self._upper = tuple(upper)
        self._labels = tuple(_le(b) for b in upper)
        self._counts = [0] * len(upper)
        self._sum = 0.0
        registry.register(self)

    def observe(self, amount: float) -> None:
        """Count ``amount`` in the first bucket whose bound is at least it."""
        self._counts[bisect_left(self._upper, amount)] += 1
        self._sum += amount

    def observe_many(self, amount: float, n: int) -> None:
        """``observe(amount)`` ``n`` times (the per-tick flush counts its one-frame flushes
        at once: one call per tick instead of one per receiver)."""
        self._counts[bisect_left(self._upper, amount)] += n
        self._sum += amount * n

    def describe(self) -> list[Metric]:
        return [HistogramMetricFamily(self.name, self.documentation)]

    def collect(self) -> Iterator[Metric]:
        counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for label, n in zip(self._labels, counts, strict=True):
            running += n
            cumulative.append((label, float(running)))
        yield HistogramMetricFamily(
            self.name, self.documentation, buckets=cumulative, sum_value=total
        )


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.connections = Gauge("cowrite_connections", "Open WebSocket connections", registry=r)
        self.documents = Gauge("cowrite_documents_loaded", "Documents loaded in memory", registry=r)
        self.edits = Counter("cowrite_edits", "Edit batches applied", ["kind"], registry=r)
        self.errors = Counter(
            "cowrite_errors", "Errors sent to clients, by code", ["code"], registry=r
        )
        self.edits_thin = self.edits.labels("thin")
        """(``edits`` of the kinds counted once per edit, their label looked up once)"""
        self.edits_replica = self.edits.labels("replica")
        self.edit_ack = LoopHistogram(
            "cowrite_edit_ack_seconds",
            "Edit received to ack sent (incl. durable write)",
            LATENCY_BUCKETS,
            r,
        )
        self.edit_broadcast = LoopHistogram(
            "cowrite_edit_broadcast_seconds",
            "Edit received to broadcast queued to all others",
            LATENCY_BUCKETS,
            r,
        )
        self.outbox_depth = LoopHistogram(
            "cowrite_outbox_depth",
            "Messages waiting in a connection's outbox when it is written",
            (0, 1, 2, 5, 10, 50, 100, 500, 1000, 5000),
            r,
        )
        self.disconnects = Counter(
            "cowrite_disconnects", "Connections closed, by reason", ["reason"], registry=r
        )
        self.saving_pending = Gauge(
            "cowrite_documents_saving_pending",
            "Documents whose edits wait for the store (it refuses writes: nothing is acknowledged)",
            registry=r,
        )
        self.store_retries = Counter(
            "cowrite_store_write_retries",
            "Batches of updates written again after the store refused them",
            registry=r,
        )
        self.instances_lost = Counter(
            "cowrite_cluster_instances_lost",
            "Other instances declared gone (said goodbye, or not heard from in time): their "
            "members left every presence list",
            registry=r,
        )
        self.refused = Counter(
            "cowrite_connections_refused",
            "WebSocket connections refused before being served, by reason",
            ["reason"],
            registry=r,
        )
        self.divergences = Counter(
            "cowrite_thin_divergences",
            "Thin clients whose copy failed a checksum (each resyncs)",
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
