"""REST API under ``/api``: documents, their values, versions, diffs, restore, chat history.

Every response is JSON (except ``text/{name}``, plain text); every error is
``{"error": {"code": str, "message": str}}`` with a fitting HTTP status, also for unknown paths
(404) and methods (405). Request bodies and query parameters are validated on entry (400).
The types in ``rest_bodies.py`` are the single source of truth for bodies: ``openapi.py``
generates the schemas of ``GET /api/openapi.json`` from them, and a test checks that every route
is described there. The version-history endpoints (versions, values at a version, diffs,
naming, restore) are ``rest_history.py``, mounted here; the restore computation is
``restore.py``; the read-outs of Yjs documents are ``rest_yjs.py``; ``HTTPError`` and the error
body are ``rest_http.py``.

Rights: with a configured secret every document endpoint needs ``Authorization: Bearer <token>``
(401 without a valid one) granting ``read`` (GETs), ``write`` (create, rename, restore) or
``admin`` (delete) on that document (403 otherwise). The document list shows only the documents
the token may read. ``/api/status`` and ``/api/openapi.json`` are public. Without a secret a
caller may say who it is as a WebSocket client does in ``hello`` (``X-Cowrite-Key``, and
``X-Cowrite-Name`` percent-encoded): the web page's restores are then its user's
(``anonymous_caller``).

*Versions* are the durable version history (``rooms/history.py``): the document after each
stored edit, named by its log seq, with its time, authors and kind. A restore applies the
difference from the current state to an old version as new edits through the room, so connected
clients see it live (``remote`` messages from client ``"server"``) and nothing is rewritten.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import unquote

import msgspec
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from cowrite import protocol as p
from cowrite.adapters.store import DocumentExists, NotFound
from cowrite.adapters.store.base import DocumentInfo, validate_doc_id
from cowrite.engine import (
    Document,
    NodeKind,
    root_id,
)
from cowrite.rooms.room import Outcome, Room, RoomError
from cowrite.server.auth import AuthError, Identity, anonymous, anonymous_id, verify
from cowrite.server.ratelimit import TokenBucket
from cowrite.server.rest_bodies import (
    ChatPageOut,
    CreateDocument,
    DocumentDetail,
    DocumentOut,
    DocumentPage,
    StatusOut,
    UpdateDocument,
)
from cowrite.server.rest_fallback import FALLBACK, Fallback
from cowrite.server.rest_http import Handler, HTTPError, error_response
from cowrite.server.rest_http import json_response as _json
from cowrite.server.rest_yjs import yjs_routes

if TYPE_CHECKING:
    from cowrite.server.app import Cowrite
    from cowrite.server.hub import LoadedRoom

log = logging.getLogger("cowrite.rest")

MAX_BODY_BYTES = 64 * 1024

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


def anonymous_caller(request: Request) -> Identity:
    """Without auth, who a REST caller says it is, as ``hello`` says it on the WebSocket: the
    user id is the digest of its ``X-Cowrite-Key`` (16-128 characters, else "anonymous"), the
    name its ``X-Cowrite-Name`` (percent-encoded UTF-8, at most 100 characters, else none).
    Without auth everyone may do anything anyway; this only names the author of a restore."""
    key = request.headers.get("x-cowrite-key", "")
    if not 16 <= len(key) <= 128:
        return anonymous("anonymous")
    try:
        name = unquote(request.headers.get("x-cowrite-name", ""), errors="strict").strip()
    except UnicodeDecodeError:
        name = ""
    if len(name) > 100 or not name.isprintable():
        name = ""
    return anonymous(anonymous_id(key, ""), name)


def routes(state: Cowrite) -> list[Route]:
    """The routes of the REST API, relative to ``/api`` (the last one answers unknown paths)."""
    from cowrite.server import rest_edits

    store = state.store
    hub = state.hub
    secret = state.settings.secret

    def identify(request: Request) -> Identity:
        if "identity" in request.scope:  # decided by an on_authenticate hook (rest_edits.py)
            identity: Identity = request.scope["identity"]
            return identity
        if not secret:
            return anonymous_caller(request)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if not header:
            raise HTTPError(401, "unauthorized", "an 'Authorization: Bearer <token>' is required")
        if scheme.lower() != "bearer" or not token.strip():
            raise HTTPError(401, "unauthorized", "use 'Authorization: Bearer <token>'")
        try:
            return hub.permissions.limit(verify(token.strip(), secret))
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
        hub.hooks.created(info.id, info.kind, identity.user_id)
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
            for peer in lr.membership.connections():
                if isinstance(lr.room, Room):
                    hub.leave(peer, doc_id)
                else:  # a Yjs connection cannot be told in a message: its stream is closed
                    peer.close(4404, f"{doc_id} was deleted")
            await hub._unload(doc_id, force=True)
        if not await store.delete_document(doc_id):
            raise HTTPError(404, "unknown_document", f"no document {doc_id!r}")
        hub.hooks.deleted(doc_id, identify(request).user_id)
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
        ("/documents/{doc}/chat", "GET", chat),
        *yjs_routes(authorized, opened),
    ]
    from cowrite.server import rest_history  # (it uses this module's plumbing)

    ctx = rest_history.Context(identify, authorized, opened, history_read)
    table += rest_history.routes(state, ctx)
    api = [
        Route(path, _endpoint(rest_edits.hooked(state, h)), methods=[method], name=h.__name__)
        for path, method, h in table
    ]
    api += rest_edits.routes(state, identify)  # POST /documents/{doc}/edits, /admin/permissions

    return [*api, Route("/{rest:path}", Fallback(api), name=FALLBACK)]
