"""REST API under ``/api``: documents, their values, versions, diffs, restore, chat history.

Every response is JSON (except ``text/{name}``, plain text); every error is
``{"error": {"code": str, "message": str}}`` with a fitting HTTP status, also for unknown paths
(404) and methods (405). Request bodies and query parameters are validated on entry (400).
The types below are the single source of truth for bodies: ``openapi.py`` generates the schemas of
``GET /api/openapi.json`` from them, and a test checks that every route is described there.

Rights: with a configured secret every document endpoint needs ``Authorization: Bearer <token>``
(401 without a valid one) granting ``read`` (GETs), ``write`` (create, rename, restore) or
``admin`` (delete) on that document (403 otherwise). The document list shows only the documents
the token may read. ``/api/status`` and ``/api/openapi.json`` are public.

*Versions* are the engine's history (``cowrite.engine.history.versions``): the document after each
burst of transactions, numbered from 0, with a version vector. A restore applies the difference
from the current state to an old version as new edits through the room, so connected clients see
it live (``remote`` messages from client ``"server"``) and nothing is rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from cowrite import protocol as p
from cowrite.adapters.store import DocumentExists, NotFound
from cowrite.adapters.store.base import DocumentInfo, validate_doc_id
from cowrite.engine import history
from cowrite.engine.document import Document, MapState, root_id
from cowrite.engine.errors import EngineError
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK
from cowrite.engine.ops import DELETED, NodeKind, NodeRef
from cowrite.engine.sequence import Gap
from cowrite.rooms.room import Outcome, Room, RoomError
from cowrite.rooms.wire import node_to_wire
from cowrite.server.auth import AuthError, Identity, anonymous, verify
from cowrite.server.pipeline import NotDurable
from cowrite.server.ratelimit import TokenBucket

if TYPE_CHECKING:
    from cowrite.server.app import Cowrite
    from cowrite.server.hub import LoadedRoom

log = logging.getLogger("cowrite.rest")

MAX_BODY_BYTES = 64 * 1024
RESTORE_TIMEOUT_S = 30.0
SERVER_CLIENT_ID = "server"

Title = Annotated[str, msgspec.Meta(max_length=1000)]
T = TypeVar("T")

# --------------------------------------------------------------------------- request bodies


class CreateDocument(msgspec.Struct, forbid_unknown_fields=True):
    """Create an empty document; the title defaults to the id."""

    id: p.DocId
    title: Title | None = None


class UpdateDocument(msgspec.Struct, forbid_unknown_fields=True):
    """Rename a document."""

    title: Title


class RestoreRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Make the document's value that of version ``version`` again (an index of ``versions``)."""

    version: Annotated[int, msgspec.Meta(ge=0)]


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


class VersionOut(msgspec.Struct):
    """One listed version. ``replica`` (a 64-bit id, hence a string) made its last change;
    ``vector`` maps replica ids to the number of their operations included."""

    index: int
    vector: dict[str, int]
    time_ms: int
    replica: str


class VersionPage(msgspec.Struct):
    """A page of versions, oldest first; pass ``next`` as ``after`` for the next (null: last)."""

    versions: list[VersionOut]
    next: int | None


class VersionValue(msgspec.Struct):
    """A version and the document's value at it."""

    index: int
    vector: dict[str, int]
    time_ms: int
    replica: str
    value: dict[str, Any]


class NodeChange(msgspec.Struct):
    """How one node changed. ``node`` is its wire id; ``path`` leads to it from a named root.

    Text and list nodes: ``delta`` is an index edit (retain n > 0, delete -n, insert a string or
    a list of values) from the old value to the new. Others: ``before``/``after`` (null: absent).
    """

    node: str
    kind: str
    path: list[str | int]
    delta: list[Any]
    before: Any
    after: Any


class DiffOut(msgspec.Struct):
    """The changes from version ``from`` to version ``to``."""

    from_: int = msgspec.field(name="from")
    to: int
    changes: list[NodeChange]


class RestoreOut(msgspec.Struct):
    """``version``: the room version after the restore (durable); ``edits``: batches applied
    (0 when the document already had that value)."""

    restored: int
    version: int
    edits: int


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


# ------------------------------------------------------------------------------- plumbing


class HTTPError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = ErrorBody(ErrorDetail(code, message))
    return Response(
        msgspec.json.encode(body), status, headers=headers, media_type="application/json"
    )


def _json(body: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status, media_type="application/json")


Handler = Callable[[Request], Awaitable[Response]]

_ROOM_ERROR_STATUS = {
    p.ErrorCode.UNKNOWN_DOCUMENT: 404,
    p.ErrorCode.UNKNOWN_NODE: 404,
    p.ErrorCode.FORBIDDEN: 403,
    p.ErrorCode.DOCUMENT_TOO_LARGE: 413,
    p.ErrorCode.INVALID_EDIT: 422,
    p.ErrorCode.TOO_MANY_DOCUMENTS: 503,
}


def _endpoint(fn: Handler) -> Handler:
    """Turn HTTPError, RoomError and surprises into JSON error responses."""

    async def handle(request: Request) -> Response:
        try:
            return await fn(request)
        except HTTPError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else exc.headers
            return error_response(exc.status, exc.code, exc.message, headers)
        except RoomError as exc:
            return error_response(_ROOM_ERROR_STATUS.get(exc.code, 409), exc.code, exc.message)
        except Exception:
            log.exception("REST request failed", extra={"path": request.url.path})
            return error_response(500, "internal", "internal error")

    handle.__name__ = fn.__name__
    handle.__doc__ = fn.__doc__
    return handle


def _int_param(request: Request, name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HTTPError(400, "bad_request", f"{name} must be an integer, not {raw!r}") from None
    if not lo <= value <= hi:
        raise HTTPError(400, "bad_request", f"{name} must be between {lo} and {hi}")
    return value


SEARCH_SCAN = 5_000
"""Documents a search (``q``) reads per request at most; past that it returns what it found and
a ``next`` to go on from, so one request never reads the whole store."""
MAX_QUERY_CHARS = 200


def _search_query(request: Request) -> str | None:
    """``q``: a case-insensitive substring of the title or the id (None: no search)."""
    raw = request.query_params.get("q")
    if raw is None or not raw.strip():
        return None
    if len(raw) > MAX_QUERY_CHARS:
        raise HTTPError(400, "bad_request", f"q must be at most {MAX_QUERY_CHARS} characters")
    return raw.strip().casefold()


def _matches(info: DocumentInfo, query: str | None) -> bool:
    return query is None or query in info.title.casefold() or query in info.id.casefold()


def _doc_id(request: Request) -> str:
    doc_id: str = request.path_params["doc"]
    try:
        return validate_doc_id(doc_id)
    except ValueError as exc:
        raise HTTPError(400, "bad_request", str(exc)) from None


async def _body(request: Request, type_: type[T]) -> T:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise HTTPError(413, "too_large", f"request body over {MAX_BODY_BYTES} bytes")
    data = bytearray()
    try:
        async for chunk in request.stream():
            data += chunk
            if len(data) > MAX_BODY_BYTES:
                raise HTTPError(413, "too_large", f"request body over {MAX_BODY_BYTES} bytes")
    except ClientDisconnect:  # gone mid-body (or closed by the request deadline): nobody to tell
        raise HTTPError(400, "bad_request", "the client went away mid-body") from None
    try:
        return msgspec.json.decode(bytes(data), type=type_)
    except msgspec.ValidationError as exc:
        raise HTTPError(400, "bad_request", str(exc)) from None
    except msgspec.DecodeError as exc:
        raise HTTPError(400, "bad_request", f"body must be JSON: {exc}") from None


def _info(info: DocumentInfo) -> DocumentOut:
    return DocumentOut(info.id, info.title, info.created_ms, info.updated_ms, info.size_bytes)


def _vector(vv: Mapping[int, int]) -> dict[str, int]:
    return {str(r): n for r, n in sorted(vv.items())}


# --------------------------------------------------------------------------------- routes


def routes(state: Cowrite) -> list[Route]:
    """The routes of the REST API, relative to ``/api`` (the last one answers unknown paths)."""
    store = state.store
    hub = state.hub
    secret = state.settings.secret

    def identify(request: Request) -> Identity:
        if not secret:
            return anonymous("anonymous")
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise HTTPError(401, "unauthorized", "an 'Authorization: Bearer <token>' is required")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPError(401, "unauthorized", "use 'Authorization: Bearer <token>'")
        try:
            return verify(token.strip(), secret)
        except AuthError as exc:
            raise HTTPError(401, "unauthorized", str(exc)) from None

    history_ops = TokenBucket(
        state.settings.history_ops_per_second, state.settings.history_ops_burst
    )

    def history_read(doc: Document) -> None:
        """Diffs and old versions recompute history on the event loop, in time proportional to
        the ops the document holds (over a second for 2 M characters): a server-wide budget of
        ops, so that they cannot stall everyone's edits (small documents cost next to nothing)."""
        if not history_ops.take(max(1, sum(doc.version.values()))):
            raise HTTPError(
                429, "rate_limited", "too many history reads: retry later", {"Retry-After": "1"}
            )

    def authorized(request: Request, right: str) -> str:
        """The request's document id, once the token is checked (401) and grants ``right`` (403)."""
        identity = identify(request)
        doc_id = _doc_id(request)
        if right not in identity.rights(doc_id):
            raise HTTPError(403, "forbidden", f"the token grants no {right!r} right on {doc_id!r}")
        return doc_id

    async def existing(doc_id: str) -> DocumentInfo:
        info = await store.get_document(doc_id)
        if info is None:
            raise HTTPError(404, "unknown_document", f"no document {doc_id!r}")
        return info

    @contextlib.asynccontextmanager
    async def opened(doc_id: str) -> AsyncIterator[LoadedRoom]:
        """The document's room, loaded for the request (and unloaded later if nobody joins)."""
        try:
            lr = await hub.open_room(doc_id, create=False)
        except RoomError as exc:
            if exc.code is not p.ErrorCode.UNKNOWN_DOCUMENT:
                raise  # too many documents loaded: 503
            raise HTTPError(404, "unknown_document", exc.message) from None
        try:
            yield lr
        finally:
            hub._schedule_unload(doc_id, lr)

    def version_at(doc: Document, index: int) -> history.Version:
        listed = history.versions(doc)
        if not 0 <= index < len(listed):
            raise HTTPError(
                404, "unknown_version", f"no version {index}: there are {len(listed)} (from 0)"
            )
        return listed[index]

    # --------------------------------------------------------------- endpoints

    async def status(request: Request) -> Response:
        """Server status (public)."""
        uptime = time.monotonic() - hub.started
        return _json(
            StatusOut(
                connections=len(state.connections),
                documents_loaded=len(hub.rooms),
                edits=hub.edits_applied,
                edits_per_second=round(hub.edits_applied / uptime, 3) if uptime > 0 else 0.0,
                uptime_s=round(uptime, 1),
                auth=bool(secret),
                instance=f"{hub.replica:x}",
                cluster_peers=len(hub.cluster.heard) if hub.cluster is not None else 0,
            )
        )

    async def openapi_json(request: Request) -> Response:
        """This API's OpenAPI 3.1 description (public)."""
        from cowrite.server.openapi import spec

        root = str(request.scope.get("root_path", "")).removesuffix("/api")
        return _json(spec(server_url=root or "/"))

    async def list_documents(request: Request) -> Response:
        identity = identify(request)
        limit = _int_param(request, "limit", 100, 1, 1000)
        assert limit is not None
        after = request.query_params.get("after") or None
        if after is not None:
            try:
                validate_doc_id(after)
            except ValueError as exc:
                raise HTTPError(400, "bad_request", f"after: {exc}") from None
        query = _search_query(request)
        out: list[DocumentOut] = []
        cursor = after
        more = False
        scanned = 0
        while True:  # pages of the store, skipping documents the token may not read
            page = await store.list_documents(limit=limit + 1, after=cursor)
            for info in page:
                if "read" in identity.rights(info.id) and _matches(info, query):
                    if len(out) == limit:
                        more = True
                        break
                    out.append(_info(info))
                cursor = info.id
                scanned += 1
                if query is not None and scanned >= SEARCH_SCAN and info is not page[-1]:
                    more = True  # a search reads a bounded slice per request: go on from here
                    break
            if more or len(page) <= limit:
                break
        if more and query is not None:
            return _json(DocumentPage(out, cursor))
        return _json(DocumentPage(out, out[-1].id if more and out else None))

    async def create_document(request: Request) -> Response:
        identity = identify(request)  # 401 before looking at the body
        body = await _body(request, CreateDocument)
        if "write" not in identity.rights(body.id):
            raise HTTPError(403, "forbidden", f"the token grants no 'write' right on {body.id!r}")
        title = body.id if body.title is None else body.title
        try:
            info = await store.create_document(body.id, title=title, now_ms=hub.now_ms())
        except DocumentExists:
            raise HTTPError(409, "exists", f"document {body.id!r} exists") from None
        except ValueError as exc:
            raise HTTPError(400, "bad_request", str(exc)) from None
        return _json(_info(info), 201)

    async def get_document(request: Request) -> Response:
        doc_id = authorized(request, "read")
        info = await existing(doc_id)
        async with opened(doc_id) as lr:
            room = lr.room
            return _json(
                DocumentDetail(
                    info.id,
                    info.title,
                    info.created_ms,
                    info.updated_ms,
                    info.size_bytes,
                    room.version,
                    room.doc.to_json(),
                )
            )

    async def update_document(request: Request) -> Response:
        doc_id = authorized(request, "write")
        body = await _body(request, UpdateDocument)
        try:
            info = await store.update_title(doc_id, body.title, now_ms=hub.now_ms())
        except NotFound:
            raise HTTPError(404, "unknown_document", f"no document {doc_id!r}") from None
        except ValueError as exc:
            raise HTTPError(400, "bad_request", str(exc)) from None
        return _json(_info(info))

    async def delete_document(request: Request) -> Response:
        """Delete a document: its members get ``error unknown_document`` and are removed."""
        doc_id = authorized(request, "admin")
        await existing(doc_id)
        lr = hub.rooms.get(doc_id)
        if lr is not None:
            gone = p.Error(
                code=p.ErrorCode.UNKNOWN_DOCUMENT, message=f"{doc_id} was deleted", doc=doc_id
            )
            # through the pipeline, so it arrives after every edit already queued
            hub.submit(lr, Outcome(broadcast=[(gone, "all")]), None, time.monotonic())
            await lr.queue.join()
            for peer in list(lr.peers.values()):
                hub.leave(peer, doc_id)
            await hub._unload(doc_id, force=True)
        if not await store.delete_document(doc_id):
            raise HTTPError(404, "unknown_document", f"no document {doc_id!r}")
        return Response(status_code=204)

    async def get_json(request: Request) -> Response:
        doc_id = authorized(request, "read")
        async with opened(doc_id) as lr:
            return _json(lr.room.doc.to_json())

    async def get_text(request: Request) -> Response:
        doc_id = authorized(request, "read")
        name: str = request.path_params["name"]
        if not 0 < len(name) <= 100:
            raise HTTPError(400, "bad_request", "a node name has 1-100 characters")
        async with opened(doc_id) as lr:
            doc = lr.room.doc
            node = root_id(NodeKind.TEXT, name)
            if node not in doc.roots:
                raise HTTPError(404, "unknown_node", f"no text {name!r} in {doc_id!r}")
            text = doc.node_json(node)
        return PlainTextResponse(text)

    async def list_versions(request: Request) -> Response:
        doc_id = authorized(request, "read")
        limit = _int_param(request, "limit", 100, 1, 1000)
        after = _int_param(request, "after", -1, -1, 2**62)
        assert limit is not None and after is not None
        async with opened(doc_id) as lr:
            listed = history.versions(lr.room.doc)
        page = listed[after + 1 : after + 1 + limit]
        more = after + 1 + limit < len(listed)
        return _json(
            VersionPage(
                [VersionOut(v.index, _vector(v.version), v.time_ms, str(v.replica)) for v in page],
                page[-1].index if more and page else None,
            )
        )

    async def get_version(request: Request) -> Response:
        doc_id = authorized(request, "read")
        raw: str = request.path_params["index"]
        if not raw.isdigit():
            raise HTTPError(400, "bad_request", f"a version index is an integer >= 0, not {raw!r}")
        async with opened(doc_id) as lr:
            doc = lr.room.doc
            history_read(doc)
            v = version_at(doc, int(raw))
            try:
                value = history.value_at(doc, v.version)
            except EngineError as exc:
                raise HTTPError(410, "history_unavailable", str(exc)) from None
        return _json(VersionValue(v.index, _vector(v.version), v.time_ms, str(v.replica), value))

    async def get_diff(request: Request) -> Response:
        doc_id = authorized(request, "read")
        if "from" not in request.query_params:
            raise HTTPError(400, "bad_request", "from (a version index) is required")
        start = _int_param(request, "from", None, 0, 2**62)
        end = _int_param(request, "to", -1, 0, 2**62)
        assert start is not None and end is not None
        async with opened(doc_id) as lr:
            doc = lr.room.doc
            history_read(doc)
            if end == -1:
                end = max(len(history.versions(doc)) - 1, 0)
            old = version_at(doc, start)
            new = version_at(doc, end)
            try:
                changes = history.diff(doc, old.version, new.version)
            except EngineError as exc:
                raise HTTPError(410, "history_unavailable", str(exc)) from None
            out = [
                NodeChange(
                    node=node_to_wire(doc, c.node),
                    kind=c.kind.name.lower(),
                    path=list(c.path),
                    delta=c.delta,
                    before=c.before,
                    after=c.after,
                )
                for c in changes
            ]
        return _json(DiffOut(start, end, out))

    async def restore(request: Request) -> Response:
        """Restore a version as new edits, live for every member; answers once durable."""
        doc_id = authorized(request, "write")
        body = await _body(request, RestoreRequest)
        async with opened(doc_id) as lr:
            room = lr.room
            history_read(room.doc)
            target = version_at(room.doc, body.version)
            try:
                unchanged = not history.diff(room.doc, room.doc.version, target.version)
            except EngineError as exc:
                raise HTTPError(410, "history_unavailable", str(exc)) from None
            if unchanged:
                return _json(RestoreOut(body.version, room.version, 0))
            t0 = time.monotonic()
            outcomes = restore_edits(room, target.version, hub.now_ms())
            if not outcomes:
                return _json(RestoreOut(body.version, room.version, 0))
            durable = [hub.submit_durable(lr, outcome, t0) for outcome in outcomes]
            hub.edits_applied += len(outcomes)
            state.metrics.edits.labels("server").inc(len(outcomes))
            try:
                async with asyncio.timeout(RESTORE_TIMEOUT_S):
                    for done in durable:  # shielded: the edits stay submitted if we stop waiting
                        await asyncio.shield(done)
            except TimeoutError:
                raise HTTPError(
                    503, "unavailable", "the restore is applied but not durable yet"
                ) from None
            except NotDurable as exc:
                raise HTTPError(
                    503, "unavailable", f"the restore was not stored: {exc.error.message}"
                ) from None
            return _json(RestoreOut(body.version, outcomes[-1].version, len(outcomes)))

    async def chat(request: Request) -> Response:
        doc_id = authorized(request, "read")
        limit = _int_param(request, "limit", 50, 1, 200)
        before = _int_param(request, "before", None, 1, 2**62)
        assert limit is not None
        await existing(doc_id)
        try:
            page = await store.chat_history(doc_id, before=before, limit=limit + 1)
        except NotFound:
            raise HTTPError(404, "unknown_document", f"no document {doc_id!r}") from None
        messages = [
            p.ChatMessage(
                id=m.id,
                author_id=m.author_id,
                author_name=m.author_name,
                text=m.text,
                created_ms=m.created_ms,
                edited_ms=m.edited_ms,
                deleted=m.deleted,
            )
            for m in page[:limit]
        ]
        return _json(ChatPageOut(messages, len(page) > limit))

    table: list[tuple[str, str, Handler]] = [
        ("/status", "GET", status),
        ("/openapi.json", "GET", openapi_json),
        ("/documents", "GET", list_documents),
        ("/documents", "POST", create_document),
        ("/documents/{doc}", "GET", get_document),
        ("/documents/{doc}", "PATCH", update_document),
        ("/documents/{doc}", "DELETE", delete_document),
        ("/documents/{doc}/json", "GET", get_json),
        ("/documents/{doc}/text/{name}", "GET", get_text),
        ("/documents/{doc}/versions", "GET", list_versions),
        ("/documents/{doc}/versions/{index}", "GET", get_version),
        ("/documents/{doc}/diff", "GET", get_diff),
        ("/documents/{doc}/restore", "POST", restore),
        ("/documents/{doc}/chat", "GET", chat),
    ]
    api = [
        Route(path, _endpoint(handler), methods=[method], name=handler.__name__)
        for path, method, handler in table
    ]

    return [*api, Route("/{rest:path}", _Fallback(api), name=FALLBACK)]


class _Fallback:
    """Answers unknown paths (404) and methods (405) with JSON errors; any method (ASGI app)."""

    def __init__(self, api: list[Route]) -> None:
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed: set[str] = set()
        for route in self.api:
            match, _ = route.matches(scope)
            if match is Match.PARTIAL and route.methods:
                allowed |= route.methods
        request = Request(scope, receive)
        if allowed:
            response = error_response(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here",
                {"Allow": ", ".join(sorted(allowed))},
            )
        else:
            response = error_response(404, "not_found", f"no endpoint {request.url.path}")
        await response(scope, receive, send)


FALLBACK = "fallback"
"""Name of the catch-all route answering unknown paths and methods."""


# -------------------------------------------------------------------------------- restore


def restore_edits(room: Room, target: Mapping[int, int], now_ms: int) -> list[Outcome]:
    """Apply, through ``room``, the edits that give its document the value it had at ``target``.

    Sequences get index edits (kept elements stay, so cursors and concurrent edits keep their
    place), map keys and registers sets/deletes, counters an add of the difference. A nested node
    that must come back is created anew and filled in a following batch (its id is only known once
    created), so a restore is one batch per level of such nesting; each is one room version.
    Runs synchronously: nothing else touches the room in between.
    """
    planner = _RestorePlan(room.doc, target)
    planner.sync_roots()
    outcomes: list[Outcome] = []
    tag = uuid.uuid4().hex[:12]
    while planner.ops:
        ops, fills = planner.ops, planner.fills
        planner.ops, planner.fills = [], []
        try:
            outcome = room.apply_server_edit(
                ops, now_ms, client_id=SERVER_CLIENT_ID, edit_id=f"restore-{tag}-{len(outcomes)}"
            )
        except RoomError:
            if not outcomes:
                raise
            # earlier batches are applied and must be persisted: stop here, keep them
            log.exception("restore stopped part way", extra={"doc": room.doc_id})
            break
        outcomes.append(outcome)
        for locate, old in fills:
            planner.fill(locate(), old)
    return outcomes


Locator = Callable[[], int]


class _RestorePlan:
    """Wire ops (one batch at a time) turning the current document into its value at a version."""

    def __init__(self, doc: Document, target: Mapping[int, int]) -> None:
        self.doc = doc
        self.then = history._View(doc, target)
        self.ops: list[p.EditOp] = []
        self.fills: list[tuple[Locator, int]] = []

    def sync_roots(self) -> None:
        now = history._View(self.doc, self.doc.version)
        for node in sorted(self.doc.roots):
            self._sync(now, node)

    def _new(self, ref: NodeRef, locate: Locator) -> dict[str, str]:
        self.fills.append((locate, ref.id))
        return {"$new": ref.kind.name.lower()}

    def _sync(self, now: history._View, node: int) -> None:
        """Edits making ``node`` (present now and then) hold its old value."""
        doc = self.doc
        kind = doc.kind_of(node)
        wire = node_to_wire(doc, node)
        if kind is NodeKind.TEXT or kind is NodeKind.LIST:
            self._sync_sequence(now, node, wire)
        elif kind is NodeKind.MAP:
            state = doc.state_of(node)
            assert isinstance(state, MapState)
            current = {k: r.value for k, r in state.entries.items() if r.value is not DELETED}
            old = {
                k: v
                for k, (_, v) in self.then.lww(node).items()
                if k is not None and v is not DELETED
            }
            for key in sorted(set(current) | set(old)):
                if key not in old:
                    self.ops.append(p.DeleteKey(node=wire, key=key))
                    continue
                value, cur = old[key], current.get(key, DELETED)
                if type(value) is NodeRef:
                    if type(cur) is NodeRef and cur.id == value.id:
                        self._sync(now, value.id)
                    else:
                        new = self._new(value, _map_locator(doc, node, key))
                        self.ops.append(p.SetKey(node=wire, key=key, value=new))
                elif cur is DELETED or type(cur) is NodeRef or not _same(cur, value):
                    self.ops.append(p.SetKey(node=wire, key=key, value=value))
        elif kind is NodeKind.REGISTER:
            entry = self.then.lww(node).get(None)
            value = None if entry is None else entry[1]
            if not _same(doc.node_json(node), value):
                self.ops.append(p.SetKey(node=wire, key=None, value=value))
        else:
            amount = self.then.counter(node) - doc.node_json(node)
            if amount:
                self.ops.append(p.CounterAdd(node=wire, amount=amount))

    def _sync_sequence(self, now: history._View, node: int, wire: str) -> None:
        seq = self.doc.sequence(node)
        then = self.then
        edit: list[Any] = []
        j = 0  # index in the restored sequence
        for item in seq.items():
            if type(item.content) is Gap:  # deleted before the compaction base: in neither
                continue
            client = item.id & CLIENT_MASK
            first = item.id >> CLIENT_BITS
            n = len(item.content)
            in_now = now.visible_mask(client, first, n)
            in_then = then.visible_mask(client, first, n)
            for k in range(n):
                if in_now[k] and in_then[k]:
                    _push(edit, 1)
                    element = item.content[k]
                    if type(element) is NodeRef:
                        self._sync(now, element.id)
                    j += 1
                elif in_now[k]:
                    _push(edit, -1)
                elif in_then[k]:
                    element = item.content[k]
                    if seq.is_text:
                        _push(edit, element)
                    elif type(element) is NodeRef:
                        _push(edit, [self._new(element, _list_locator(self.doc, node, j))])
                    else:
                        _push(edit, [element])
                    j += 1
        while edit and isinstance(edit[-1], int) and edit[-1] > 0:
            edit.pop()
        if edit:
            self.ops.append(p.SeqEdit(node=wire, edit=edit))

    def fill(self, new: int, old: int) -> None:
        """Edits giving the fresh node ``new`` the value node ``old`` had then."""
        doc, then = self.doc, self.then
        kind = doc.kind_of(new)
        wire = node_to_wire(doc, new)
        if kind is NodeKind.TEXT:
            text = then.node_json(old)
            if text:
                self.ops.append(p.SeqEdit(node=wire, edit=[text]))
        elif kind is NodeKind.LIST:
            values: list[Any] = []
            for j, (_, element) in enumerate(then.sequence_elements(doc.sequence(old))):
                if type(element) is NodeRef:
                    values.append(self._new(element, _list_locator(doc, new, j)))
                else:
                    values.append(element)
            if values:
                self.ops.append(p.SeqEdit(node=wire, edit=[values]))
        elif kind is NodeKind.MAP:
            for key, (_, value) in sorted(then.lww(old).items(), key=lambda kv: str(kv[0])):
                if key is None or value is DELETED:
                    continue
                if type(value) is NodeRef:
                    value = self._new(value, _map_locator(doc, new, key))
                self.ops.append(p.SetKey(node=wire, key=key, value=value))
        elif kind is NodeKind.REGISTER:
            value = then.node_json(old)
            if value is not None:
                self.ops.append(p.SetKey(node=wire, key=None, value=value))
        else:
            amount = then.counter(old)
            if amount:
                self.ops.append(p.CounterAdd(node=wire, amount=amount))


def _map_locator(doc: Document, node: int, key: str) -> Locator:
    def locate() -> int:
        state = doc.state_of(node)
        assert isinstance(state, MapState)
        ref = state.entries[key].value
        assert type(ref) is NodeRef
        return ref.id

    return locate


def _list_locator(doc: Document, node: int, index: int) -> Locator:
    return lambda: doc.sequence(node).id_at(index)


def _push(edit: list[Any], component: Any) -> None:
    """Append an index-edit component, merging it with the last one when they combine."""
    if edit:
        last = edit[-1]
        if isinstance(component, int) and isinstance(last, int) and (component > 0) == (last > 0):
            edit[-1] = last + component
            return
        if isinstance(component, str) and isinstance(last, str):
            edit[-1] = last + component
            return
        if isinstance(component, list) and isinstance(last, list):
            last.extend(component)
            return
    edit.append(component)


def _same(a: Any, b: Any) -> bool:
    """JSON equality (``1 != True``, key order ignored)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
