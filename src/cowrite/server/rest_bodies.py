"""The bodies of the REST API (``rest.py``): requests decoded and validated on entry, responses
encoded. They are the single source of truth: ``openapi.py`` generates the schemas of
``GET /api/openapi.json`` from them. Those of the version history are in
``rest_history_bodies.py``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from cowrite import protocol as p

Title = Annotated[str, msgspec.Meta(max_length=1000)]


# --------------------------------------------------------------------------- request bodies


class CreateDocument(msgspec.Struct, forbid_unknown_fields=True):
    """Create an empty document; the title defaults to the id. ``kind``: ``crdt`` (cowrite's
    own documents: text, lists, maps...) or ``yjs`` (a Yjs document, for Yjs editors)."""

    id: p.DocId
    title: Title | None = None
    kind: Literal["crdt", "yjs"] = "crdt"


class UpdateDocument(msgspec.Struct, forbid_unknown_fields=True):
    """Rename a document."""

    title: Title


# -------------------------------------------------------------------------- response bodies


class ErrorDetail(msgspec.Struct):
    code: str
    message: str


class ErrorBody(msgspec.Struct):
    """Every error response."""

    error: ErrorDetail


class DocumentOut(msgspec.Struct):
    """A document's metadata (times in ms since the epoch; size of its snapshot and log)."""

    id: str
    title: str
    created_ms: int
    updated_ms: int
    size_bytes: int
    kind: str = "crdt"
    """``crdt`` or ``yjs`` (which endpoints and clients can open it)."""


class DocumentPage(msgspec.Struct):
    """A page of documents by id; pass ``next`` as ``after`` for the next page (null: last). A
    search (``q``) may return fewer than ``limit`` documents, even none, with a ``next``."""

    documents: list[DocumentOut]
    next: str | None


class DocumentDetail(msgspec.Struct):
    """Metadata, the current room version (sequence number of the last edit) and the value."""

    id: str
    title: str
    created_ms: int
    updated_ms: int
    size_bytes: int
    version: int
    value: dict[str, Any]
    """The CRDT document's value (empty for a Yjs document: read it at ``.../yjs``)."""
    kind: str = "crdt"


class ChatPageOut(msgspec.Struct):
    """Chat messages newest first; for older ones pass the last ``id`` as ``before``."""

    messages: list[p.ChatMessage]
    has_more: bool


class StatusOut(msgspec.Struct):
    connections: int
    documents_loaded: int
    edits: int
    edits_per_second: float
    uptime_s: float
    auth: bool
    instance: str = ""
    """This instance's id (hex)."""
    cluster_peers: int = 0
    """Other instances heard from recently (0 outside a cluster)."""
