"""REST read-outs of Yjs documents (kind ``yjs``), mounted under ``/api`` by ``rest.routes``.

- ``GET /documents/{doc}/yjs``: the state as one Yjs update (v1), ``application/octet-stream``;
  with ``?state_vector=<base64>`` only what a peer at that state vector lacks (a sync step 2).
- ``GET /documents/{doc}/yjs/roots``: ``{"roots": [names]}``, the top-level types.
- ``GET /documents/{doc}/yjs/roots/{root}?as=...``: one root, read as the type asked for (a Yjs
  update does not say a root's type): ``text`` (``Y.Text``, text/plain), ``map`` / ``array``
  (``Y.Map`` / ``Y.Array`` as JSON), ``json`` (the map when the root has keys, else the array),
  ``xml`` (``Y.XmlFragment`` in Yjs's ``toString`` form, text/plain) or ``html`` (a ProseMirror
  fragment, as Tiptap / BlockNote / y-prosemirror write it, as text/html). Default ``text``.

Errors (``{"error": {"code", "message"}}``): 400 ``bad_request`` for a bad ``as``, a root name
over 1,024 characters, or a ``state_vector`` that is not base64 (standard or URL-safe) or not a
state vector; 404 ``unknown_document`` / ``unknown_root``; 409 ``wrong_kind`` for a document of
the native kind (``crdt``; its values are at ``/json`` and ``/text/{name}``), 409 ``wrong_type``
for a root that cannot be read as the type asked for (an XML fragment as an array...); 429
``rate_limited`` when the read-out budget is spent. Rights: ``read`` on the document.

Cost: the state is encoded on the event loop (Yrs, about a millisecond per megabyte); decoding it
into a scratch document and walking it (text, JSON, HTML) runs in a worker thread, so a large
document never holds the loop for the walk. A server-wide budget of ``READ_BYTES_PER_SECOND``
(document bytes read out) bounds the total, like the history budget of diffs and old versions.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, get_args

import msgspec
import pycrdt
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from cowrite.rooms.yjs_room import YjsRoom
from cowrite.server.ratelimit import TokenBucket
from cowrite.server.rest_http import Handler, HTTPError, json_response
from cowrite.yjs.document import YjsDocument, decode_state_vector, fragment_html
from cowrite.yjs.lib0 import YjsProtocolError

if TYPE_CHECKING:
    from cowrite.server.hub import LoadedRoom

ReadAs = Literal["text", "json", "map", "array", "xml", "html"]
READ_AS: tuple[str, ...] = get_args(ReadAs)
MAX_ROOT_CHARS = 1024
MAX_STATE_VECTOR_CHARS = 12 * 1024
"""A longer ``state_vector`` cannot come in a URL anyway (the server's request head limit)."""
READ_BYTES_PER_SECOND = 64 * 1024 * 1024
READ_BYTES_BURST = 256 * 1024 * 1024


class YjsRootsOut(msgspec.Struct, kw_only=True):
    """The top-level types of a Yjs document (``GET /api/documents/{doc}/yjs/roots``)."""

    roots: list[str]


def _yjs_document(lr: LoadedRoom, doc_id: str) -> YjsDocument:
    """The ``YjsDocument`` of a loaded Yjs room; 409 for a document of the other kind."""
    if not isinstance(lr.room, YjsRoom):
        raise HTTPError(
            409,
            "wrong_kind",
            f"{doc_id!r} is not a Yjs document (read it with /json or /text/{{name}})",
        )
    return lr.room.shared.doc


def _state_vector(request: Request) -> bytes | None:
    raw = request.query_params.get("state_vector")
    if raw is None or raw == "":
        return None
    if len(raw) > MAX_STATE_VECTOR_CHARS:
        raise HTTPError(
            400, "bad_request", f"state_vector over {MAX_STATE_VECTOR_CHARS} characters"
        )
    text = raw.strip().replace("-", "+").replace("_", "/")
    try:
        sv = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPError(400, "bad_request", "state_vector is not base64") from None
    try:
        decode_state_vector(sv)
    except YjsProtocolError as exc:
        raise HTTPError(400, "bad_request", f"state_vector: {exc.reason}") from None
    return sv


def _read_as(request: Request) -> ReadAs:
    raw = request.query_params.get("as") or "text"
    if raw not in READ_AS:
        raise HTTPError(400, "bad_request", f"as must be one of {', '.join(READ_AS)}, not {raw!r}")
    return raw  # type: ignore[return-value]


def _is_yrs_error(exc: BaseException) -> bool:
    # pyo3 turns a Rust panic into ``PanicException``, a BaseException.
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def _roots_of(state: bytes) -> list[str]:
    scratch: pycrdt.Doc[Any] = pycrdt.Doc()
    scratch.apply_update(state)
    return sorted(scratch.keys())


def _read_root(state: bytes, root: str, as_: ReadAs) -> tuple[bool, str]:
    """Read ``root`` of ``state`` (a scratch copy, in a worker thread): (found, body), or
    raises ``ValueError`` when it cannot be read that way. JSON bodies come encoded."""
    scratch: pycrdt.Doc[Any] = pycrdt.Doc()
    scratch.apply_update(state)
    if root not in set(scratch.keys()):
        return False, ""
    try:
        if as_ == "text":
            return True, str(scratch.get(root, type=pycrdt.Text))
        if as_ == "xml":
            return True, str(scratch.get(root, type=pycrdt.XmlFragment))
        if as_ == "html":
            return True, fragment_html(scratch.get(root, type=pycrdt.XmlFragment))
        if as_ == "json":
            value: Any = scratch.get(root, type=pycrdt.Map).to_py()
            if not value:
                fresh: pycrdt.Doc[Any] = pycrdt.Doc()
                fresh.apply_update(state)
                value = fresh.get(root, type=pycrdt.Array).to_py()
        elif as_ == "map":
            value = scratch.get(root, type=pycrdt.Map).to_py()
        else:
            value = scratch.get(root, type=pycrdt.Array).to_py()
        return True, msgspec.json.encode(value).decode()
    except BaseException as exc:
        if not _is_yrs_error(exc):
            raise
        raise ValueError(str(exc)[:200]) from None


def yjs_routes(
    authorized: Callable[[Request, str], str],
    opened: Callable[[str], contextlib.AbstractAsyncContextManager[LoadedRoom]],
) -> list[tuple[str, str, Handler]]:
    """The routes (path, method, handler), relative to ``/api``; ``authorized`` and ``opened``
    are ``rest.routes``'s (token check, room loading)."""
    budget = TokenBucket(READ_BYTES_PER_SECOND, READ_BYTES_BURST)

    async def yjs_state(doc_id: str, state_vector: bytes | None = None) -> bytes:
        """The document's state (or what a peer at ``state_vector`` lacks), budget paid."""
        async with opened(doc_id) as lr:
            try:
                state = _yjs_document(lr, doc_id).diff(state_vector or b"\x00")
            except YjsProtocolError as exc:
                raise HTTPError(400, "bad_request", f"state_vector: {exc.reason}") from None
        if not budget.take(max(1, len(state))):
            raise HTTPError(
                429, "rate_limited", "too many Yjs read-outs: retry later", {"Retry-After": "1"}
            )
        return state

    async def get_yjs_state(request: Request) -> Response:
        """The state as a Yjs update (v1), or the part a peer at ``state_vector`` lacks."""
        doc_id = authorized(request, "read")  # 401/403 before looking at the parameters
        state = await yjs_state(doc_id, _state_vector(request))
        return Response(state, media_type="application/octet-stream")

    async def list_yjs_roots(request: Request) -> Response:
        doc_id = authorized(request, "read")
        roots = await asyncio.to_thread(_roots_of, await yjs_state(doc_id))
        return json_response(YjsRootsOut(roots=roots))

    async def get_yjs_root(request: Request) -> Response:
        doc_id = authorized(request, "read")
        root: str = request.path_params["root"]
        if not 0 < len(root) <= MAX_ROOT_CHARS:
            raise HTTPError(400, "bad_request", f"a root name has 1-{MAX_ROOT_CHARS} characters")
        as_ = _read_as(request)
        state = await yjs_state(doc_id)
        try:
            found, body = await asyncio.to_thread(_read_root, state, root, as_)
        except ValueError as exc:
            raise HTTPError(
                409, "wrong_type", f"root {root!r} cannot be read as {as_}: {exc}"
            ) from None
        if not found:
            raise HTTPError(404, "unknown_root", f"no root {root!r} in {doc_id!r}")
        if as_ in ("text", "xml"):
            return PlainTextResponse(body)
        if as_ == "html":
            return Response(body, media_type="text/html")
        return Response(body, media_type="application/json")

    return [
        ("/documents/{doc}/yjs", "GET", get_yjs_state),
        ("/documents/{doc}/yjs/roots", "GET", list_yjs_roots),
        ("/documents/{doc}/yjs/roots/{root}", "GET", get_yjs_root),
    ]
