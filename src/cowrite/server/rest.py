"""REST API under ``/api``: documents, their values, versions, diffs, restore, chat history.

Every response is JSON (except ``text/{name}``, plain text); every error is
``{"error": {"code": str, "message": str}}`` with a fitting HTTP status, also for unknown paths
(404) and methods (405). Request bodies and query parameters are validated on entry (400).
The types in ``rest_bodies.py`` are the single source of truth for bodies: ``openapi.py``
generates the schemas of ``GET /api/openapi.json`` from them, and a test checks that every route
is described there. The restore computation is ``restore.py``; the read-outs of Yjs documents
are ``rest_yjs.py``; ``HTTPError`` and the error body are ``rest_http.py``.

Rights: with a configured secret every document endpoint needs ``Authorization: Bearer <token>``
(401 without a valid one) granting ``read`` (GETs), ``write`` (create, rename, restore) or
``admin`` (delete) on that document (403 otherwise). The document list shows only the documents
the token may read. ``/api/status`` and ``/api/openapi.json`` are public.

*Versions* are the engine's history (``cowrite.engine.versions``): the document after each
burst of transactions, numbered from 0, with a version vector. A restore applies the difference
from the current state to an old version as new edits through the room, so connected clients see
it live (``remote`` messages from client ``"server"``) and nothing is rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from cowrite import protocol as p
from cowrite.adapters.store import DocumentExists, NotFound
from cowrite.adapters.store.base import DocumentInfo, validate_doc_id
from cowrite.engine import (
    Document,
    EngineError,
    NodeKind,
    Version,
    diff,
    root_id,
    value_at,
    versions,
)
from cowrite.rooms.room import Outcome, Room, RoomError
from cowrite.rooms.wire import node_to_wire
from cowrite.server.auth import AuthError, Identity, anonymous, verify
from cowrite.server.pipeline import NotDurable
from cowrite.server.ratelimit import TokenBucket
from cowrite.server.rest_bodies import (
    ChatPageOut,
    CreateDocument,
    DiffOut,
    DocumentDetail,
    DocumentOut,
    DocumentPage,
    NodeChange,
    RestoreOut,
    RestoreRequest,
    StatusOut,
    UpdateDocument,
    VersionOut,
    VersionPage,
    VersionValue,
)
from cowrite.server.rest_http import Handler, HTTPError, error_response
from cowrite.server.rest_http import json_response as _json
from cowrite.server.rest_yjs import yjs_routes
from cowrite.server.restore import restore_edits

if TYPE_CHECKING:
    from cowrite.server.app import Cowrite
    from cowrite.server.hub import LoadedRoom

log = logging.getLogger("cowrite.rest")

MAX_BODY_BYTES = 64 * 1024
RESTORE_TIMEOUT_S = 30.0

T = TypeVar("T")

# ------------------------------------------------------------------------------- plumbing


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
    return DocumentOut(
        info.id, info.title, info.created_ms, info.updated_ms, info.size_bytes, info.kind
    )


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

    def version_at(doc: Document, index: int) -> Version:
        listed = versions(doc)
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
            info = await store.create_document(
                body.id, title=title, now_ms=hub.now_ms(), kind=body.kind
            )
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
            value = room.doc.to_json() if isinstance(room, Room) else {}
            return _json(
                DocumentDetail(
                    info.id,
                    info.title,
                    info.created_ms,
                    info.updated_ms,
                    info.size_bytes,
                    room.version,
                    value,
                    info.kind,
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
                if isinstance(lr.room, Room):
                    hub.leave(peer, doc_id)
                else:  # a Yjs connection cannot be told in a message: its stream is closed
                    peer.close(4404, f"{doc_id} was deleted")
            await hub._unload(doc_id, force=True)
        if not await store.delete_document(doc_id):
            raise HTTPError(404, "unknown_document", f"no document {doc_id!r}")
        return Response(status_code=204)

    async def get_json(request: Request) -> Response:
        doc_id = authorized(request, "read")
        async with opened(doc_id) as lr:
            return _json(lr.crdt.doc.to_json())

    async def get_text(request: Request) -> Response:
        doc_id = authorized(request, "read")
        name: str = request.path_params["name"]
        if not 0 < len(name) <= 100:
            raise HTTPError(400, "bad_request", "a node name has 1-100 characters")
        async with opened(doc_id) as lr:
            doc = lr.crdt.doc
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
            listed = versions(lr.crdt.doc)
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
            doc = lr.crdt.doc
            history_read(doc)
            v = version_at(doc, int(raw))
            try:
                value = value_at(doc, v.version)
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
            doc = lr.crdt.doc
            history_read(doc)
            if end == -1:
                end = max(len(versions(doc)) - 1, 0)
            old = version_at(doc, start)
            new = version_at(doc, end)
            try:
                changes = diff(doc, old.version, new.version)
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
            room = lr.crdt
            history_read(room.doc)
            target = version_at(room.doc, body.version)
            try:
                unchanged = not diff(room.doc, room.doc.version, target.version)
            except EngineError as exc:
                raise HTTPError(410, "history_unavailable", str(exc)) from None
            if unchanged:
                return _json(RestoreOut(body.version, room.version, 0))
            t0 = time.monotonic()
            who = identify(request)
            author = p.User(id=who.user_id, name=who.name, color=who.color)
            outcomes = restore_edits(room, target.version, hub.now_ms(), author)
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
        *yjs_routes(authorized, opened),
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
