"""Prometheus metrics of collaboration (one registry per app, so several apps can coexist)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


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
        self.edit_ack = Histogram(
            "cowrite_edit_ack_seconds",
            "Edit received to ack sent (incl. durable write)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.edit_broadcast = Histogram(
            "cowrite_edit_broadcast_seconds",
            "Edit received to broadcast queued to all others",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.outbox_depth = Histogram(
            "cowrite_outbox_depth",
            "Messages waiting in a connection's outbox when it is written",
            buckets=(0, 1, 2, 5, 10, 50, 100, 500, 1000, 5000),
            registry=r,
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
