"""Server settings: defaults for one machine, overridable by CLI flags and COWRITE_* variables."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data: str = "./cowrite.db"
    """SQLite file, or ``:memory:`` for the in-memory store (nothing survives a restart)."""
    database: str | None = None
    """``postgresql://…``: shared storage for several instances (overrides ``data``)."""
    redis: str | None = None
    """``redis://…``: the bus between instances (default: in-process)."""
    secret: str | None = None
    """HMAC secret for access tokens; None: no auth, everyone may edit (local default)."""
    max_message_bytes: int = 1_000_000
    ws_deflate: bool = False
    """WebSocket per-message compression when a client offers it (browsers always do). Off by
    default, as Hocuspocus and y-websocket: it costs ~42 kB per connection and CPU per frame
    (docs/benchmarks.md, Yjs); turn it on for large documents over slow links."""
    max_yjs_frame_bytes: int = 8_000_000
    """A Yjs client's frame (an offline editor's first sync can be large): 1009 beyond."""
    edits_per_second: float = 50.0
    edit_burst: int = 200
    presence_per_second: float = 20.0
    presence_burst: int = 60
    """Per-connection presence rate limit (cursor moves, user fields): ``rate_limited``."""
    max_presence_bytes: int = 4_096
    """Encoded size of a member's presence ``fields`` (``too_large``)."""
    ip_connections_per_second: float = 20.0
    ip_connection_burst: int = 60
    ip_max_connections: int = 500
    """New WebSocket connections a second (and burst) and open ones per client address; beyond,
    1013. 0 open: no limit."""
    ip_throttle_loopback: bool = False
    """Count loopback addresses too (off: local tools, tests and a local proxy are exempt)."""
    max_connections_per_document: int = 500
    max_documents_per_connection: int = 100
    """Documents one connection may have joined at once (``too_many_documents``)."""
    max_loaded_documents: int = 10_000
    """Documents held in memory at once; loading one more is refused (``too_many_documents``,
    REST 503) until idle ones unload."""
    joins_per_second: float = 5.0
    join_burst: int = 20
    """Per-connection join rate limit (each join loads a document or sends a snapshot)."""
    max_node_length: int = 2_000_000
    max_map_keys: int = 100_000
    """Keys all the maps of a document may hold (deleted keys count: a delete is a write)."""
    max_nodes_per_document: int = 100_000
    """Nodes (named roots in use and nested nodes) one document may hold."""
    max_key_length: int = 1_000
    """Characters in a map key (``invalid_edit``)."""
    max_new_replicas_per_sync: int = 64
    """Replica ids a document has not seen that one ``sync`` may introduce."""
    max_replicas_per_document: int = 10_000
    """Replica ids one document may know (each costs memory at every load)."""
    http_request_timeout_s: float = 15.0
    """An HTTP request (head and body) must arrive whole this long after it began (slowloris)."""
    history_ops_per_second: float = 500_000.0
    history_ops_burst: int = 2_000_000
    """Server-wide budget of REST history reads (diffs, old versions, restores: computed on
    the event loop), each costing the ops its document holds; beyond, 429 ``rate_limited``."""
    heartbeat_s: float = 30.0
    heartbeat_timeout_s: float = 45.0
    idle_after_s: float = 60.0
    unload_after_s: float = 30.0
    outbox_messages: int = 2_000
    outbox_bytes: int = 16_000_000
    """Bytes a connection's outbox may hold beyond its oldest message (4008 when over)."""
    history_kept_ops: int = 4_000_000
    """Ops of history a document keeps (deleted content older than that is compacted away when
    a snapshot is written; see ``rooms/retention.py``)."""
    history_keep_all_s: float = 7 * 86_400.0
    """Version history retention (``rooms/history.py``, docs/architecture.md "Version
    history"): every version younger than this is listed..."""
    history_session_gap_s: float = 300.0
    """...then one per editing session (versions with pauses shorter than this)..."""
    history_keep_sessions_s: float = 90 * 86_400.0
    """...and older than this one per day. Named versions are always kept."""
    history_yjs_kept_bytes: int = 32 * 1024 * 1024
    """Bytes of stored updates a Yjs document keeps to replay old versions from (those younger
    than ``history_keep_all_s``, at most this many; named versions keep a checkpoint each:
    ``rooms/yjs_history.py``)."""
    history_time_resolution_ms: int = 1_000
    """Version times are stored to this resolution (rounded down): a version per keystroke
    at human typing speed carries ~9 bits of timing noise per version at 1 ms, which alone is
    more than the packed history's budget (docs/benchmarks.md, "History"); 1 keeps exact ms."""
    snapshot_every: int = 1_000
    """Updates in the log after which a document's snapshot is rewritten (compacting the log)."""
    snapshot_every_bytes: int = 1_000_000
    """...or bytes of updates: a few large ones (pastes, replica syncs, imports) make a log that
    is slow to replay at the next load long before they are ``snapshot_every`` many."""
    edit_log_capacity: int = 10_000
    edit_key_ttl_s: float = 30 * 86_400.0
    """Edit keys (exactly-once) are kept this long, then pruned: a client that resends an
    unacknowledged batch later than this may see it applied twice (docs/architecture.md,
    "Exactly-once and its horizon")."""
    instance_heartbeat_s: float = 2.0
    """How often an instance tells the others (over the bus) that it is alive."""
    instance_timeout_s: float = 10.0
    """Presence of clients on an instance not heard from for this long is removed everywhere."""
    log_json: bool = True
    hook_timeout_s: float = 10.0
    """Longest one lifecycle hook call may take (``hooks.py``): then it counts as failed."""
    change_debounce_s: float = 2.0
    change_max_wait_s: float = 10.0
    """``on_change_debounced`` (and the ``document.changed`` webhook): after this long without
    changes, or this long after the first one, whichever comes first."""
    webhook_urls: str | None = None
    """Comma-separated URLs that get signed webhooks (``webhooks.py``); needs ``webhook_secret``."""
    webhook_secret: str | None = None
    """Standard Webhooks secret: base64, optionally prefixed ``whsec_``."""
    webhook_retry_s: float = 1.0
    """First retry delay of a failed delivery; doubled at each attempt (at most 10 minutes)."""
    webhook_attempts: int = 8
    webhook_queue: int = 10_000
    """Deliveries waiting per URL; beyond it the oldest is dropped (and counted)."""
    webhook_timeout_s: float = 10.0
    otel: bool = False
    """OpenTelemetry tracing (``tracing.py``; also on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` or
    ``OTEL_TRACES_EXPORTER`` is set); needs the ``otel`` extra."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``COWRITE_<FIELD>`` variables, then explicit overrides (None = unset)."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"COWRITE_{f.name.upper()}")
            if raw is None:
                continue
            default = getattr(cls, f.name)
            try:
                if isinstance(default, bool):
                    if raw.lower() not in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
                        raise ValueError(raw)
                    values[f.name] = raw.lower() in {"1", "true", "yes", "on"}
                elif isinstance(default, int):
                    values[f.name] = int(raw)
                elif isinstance(default, float):
                    values[f.name] = float(raw)
                else:
                    values[f.name] = raw
            except ValueError:
                kind = type(default).__name__ if default is not None else "str"
                raise ValueError(
                    f"COWRITE_{f.name.upper()}={raw!r} is not a valid {kind}"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = replace(cls(), **values)
        settings.check()
        return settings

    def check(self) -> None:
        """Raise ValueError for settings that cannot work (never ``assert``: -O drops it)."""
        if not 0 <= self.port < 65536:
            raise ValueError(f"port {self.port} out of range")
        for name in (
            "max_message_bytes",
            "max_yjs_frame_bytes",
            "edits_per_second",
            "snapshot_every_bytes",
            "heartbeat_s",
            "outbox_messages",
            "outbox_bytes",
            "presence_per_second",
            "presence_burst",
            "joins_per_second",
            "ip_connections_per_second",
            "ip_connection_burst",
            "join_burst",
            "history_ops_per_second",
            "history_ops_burst",
            "http_request_timeout_s",
            "max_documents_per_connection",
            "max_loaded_documents",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.heartbeat_timeout_s <= self.heartbeat_s:
            raise ValueError("heartbeat_timeout_s must exceed heartbeat_s")
        if not 0 <= self.history_keep_all_s <= self.history_keep_sessions_s:
            raise ValueError("history_keep_all_s must be between 0 and history_keep_sessions_s")
        if self.history_yjs_kept_bytes < 0:
            raise ValueError("history_yjs_kept_bytes must not be negative")
        if not 1 <= self.history_time_resolution_ms <= 3_600_000:
            raise ValueError("history_time_resolution_ms must be 1..3600000")
        if self.history_session_gap_s <= 0:
            raise ValueError("history_session_gap_s must be positive")
        if self.edit_key_ttl_s < 0:
            raise ValueError("edit_key_ttl_s must not be negative")
        if self.instance_heartbeat_s <= 0:
            raise ValueError("instance_heartbeat_s must be positive")
        if self.instance_timeout_s <= self.instance_heartbeat_s:
            raise ValueError("instance_timeout_s must exceed instance_heartbeat_s")
        if self.database is not None and not self.database.startswith(
            ("postgresql://", "postgres://")
        ):  # never a SQLite file named after a mistyped URL
            raise ValueError(
                f"--database {self.database!r} (COWRITE_DATABASE) is not a postgresql:// URL "
                "(for SQLite use --data FILE)"
            )
        if "://" in self.data:
            raise ValueError(
                f"--data {self.data!r} (COWRITE_DATA) is a URL, not a SQLite file "
                "(PostgreSQL: --database postgresql://...)"
            )
        if self.webhook_urls and not self.webhook_secret:
            raise ValueError("COWRITE_WEBHOOK_URLS needs COWRITE_WEBHOOK_SECRET (to sign them)")
        for name in ("hook_timeout_s", "webhook_retry_s", "webhook_attempts", "webhook_queue"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.redis is not None and not self.redis.startswith(("redis://", "rediss://")):
            raise ValueError(f"--redis {self.redis!r} (COWRITE_REDIS) is not a redis:// URL")
