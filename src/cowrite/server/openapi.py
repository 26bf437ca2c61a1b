"""OpenAPI 3.1 description of the REST API, served at ``GET /api/openapi.json``.

Operations are written out here; request and response schemas are generated from the msgspec
types in ``rest_bodies`` (the same types that decode and encode the bodies), so they cannot drift.
A test checks that every route of ``rest.routes()`` is described here and nothing else.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import msgspec

from cowrite import protocol as p
from cowrite.server import rest_bodies, rest_edits, rest_history_bodies, rest_yjs

REF = "#/components/schemas/{name}"

_BODY_TYPES: list[Any] = [
    rest_bodies.CreateDocument,
    rest_bodies.UpdateDocument,
    rest_history_bodies.RestoreRequest,
    rest_history_bodies.NameVersion,
    rest_bodies.ErrorBody,
    rest_bodies.DocumentOut,
    rest_bodies.DocumentPage,
    rest_bodies.DocumentDetail,
    rest_history_bodies.VersionPage,
    rest_history_bodies.VersionOut,
    rest_history_bodies.VersionValue,
    rest_history_bodies.DiffOut,
    rest_history_bodies.RestoreOut,
    rest_bodies.ChatPageOut,
    rest_bodies.StatusOut,
    rest_edits.DocumentEdit,
    rest_edits.EditsRequest,
    rest_edits.EditsOut,
    rest_edits.PermissionsRequest,
    rest_yjs.YjsRootsOut,
]

ERRORS = {
    400: "Invalid input (`bad_request`)",
    401: "Missing, malformed, forged or expired token (`unauthorized`; only with a secret)",
    403: "The token lacks the right (`forbidden`)",
    404: "No such document, node, version or endpoint",
    405: "Method not allowed (`method_not_allowed`)",
    409: "Conflict (`exists`; for Yjs read-outs `wrong_kind`: the document is not a Yjs "
    "document, `wrong_type`: the root cannot be read as asked; for edits `wrong_kind`: a "
    "counter edit of a Yjs document)",
    410: "That version is no longer kept: removed by retention or compacted away "
    "(`history_unavailable`)",
    413: "Body or resulting document too large (`too_large`, `document_too_large`)",
    422: "The edit does not fit the document (`invalid_edit`)",
    429: "The server-wide budget of expensive reads is spent (`rate_limited`): retry after "
    "`Retry-After` seconds",
    500: "Internal error (`internal`)",
    503: "Storage unavailable (`unavailable`)",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(name=name)}


def _json_content(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _param(name: str, where: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }


DOC = _param(
    "doc",
    "path",
    "Document id: 1-128 characters of A-Z a-z 0-9 . _ ~ -",
    {"type": "string", "pattern": "^(?!\\.\\.?$)[A-Za-z0-9._~-]{1,128}$"},
)
LIMIT = _param("limit", "query", "Page size", {"type": "integer", "minimum": 1, "maximum": 1000})


def _op(
    op_id: str,
    summary: str,
    *,
    ok: tuple[int, str, dict[str, Any] | None],
    errors: tuple[int, ...],
    right: str | None,
    params: list[dict[str, Any]] | None = None,
    body: str | None = None,
    tag: str = "documents",
) -> dict[str, Any]:
    status, description, content = ok
    responses: dict[str, Any] = {str(status): {"description": description}}
    if content is not None:
        responses[str(status)]["content"] = content
    codes = set(errors) | {500}
    if body is not None:
        codes |= {400, 413}
    if right is not None:
        codes |= {401, 403}
    for code in sorted(codes):
        responses[str(code)] = {
            "description": ERRORS[code],
            "content": _json_content(_ref("ErrorBody")),
        }
    op: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": [tag],
        "responses": responses,
    }
    if right is not None:
        op["description"] = (
            f"Requires the `{right}` right on the document when the server has a secret."
        )
        op["security"] = [{"bearerAuth": []}]
    else:
        op["security"] = []
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json_content(_ref(body))}
    return op


def _ok(name: str, description: str = "OK", status: int = 200) -> tuple[int, str, dict[str, Any]]:
    return status, description, _json_content(_ref(name))


def _paths() -> dict[str, Any]:
    version_id = _param(
        "id",
        "path",
        "Version id (the log sequence number of its edit; 0: the empty document)",
        {"type": "integer", "minimum": 0},
    )
    return {
        "/api/status": {
            "get": _op(
                "getStatus",
                "Server status",
                ok=_ok("StatusOut"),
                errors=(),
                right=None,
                tag="server",
            )
        },
        "/api/openapi.json": {
            "get": _op(
                "getOpenAPI",
                "This description",
                ok=(200, "OpenAPI 3.1 document", _json_content({"type": "object"})),
                errors=(),
                right=None,
                tag="server",
            )
        },
        "/api/documents": {
            "get": _op(
                "listDocuments",
                "List documents by id (only those the token may read)",
                ok=_ok("DocumentPage"),
                errors=(400, 401),
                right=None,
                params=[
                    LIMIT,
                    _param(
                        "after",
                        "query",
                        "Return documents with ids after this one (the previous page's `next`)",
                        {"type": "string"},
                    ),
                    _param(
                        "q",
                        "query",
                        "Search: documents whose title or id contains this (any case). A search"
                        " reads a bounded slice of the documents per request, so a page may hold"
                        " fewer than `limit` (even none) and still have a `next`",
                        {"type": "string", "maxLength": 200},
                    ),
                ],
            )
            | {"security": [{"bearerAuth": []}]},
            "post": _op(
                "createDocument",
                "Create an empty document",
                ok=_ok("DocumentOut", "Created", 201),
                errors=(409,),
                right="write",
                body="CreateDocument",
            ),
        },
        "/api/documents/{doc}": {
            "get": _op(
                "getDocument",
                "A document's metadata, current version and value",
                ok=_ok("DocumentDetail"),
                errors=(400, 404),
                right="read",
                params=[DOC],
            ),
            "patch": _op(
                "updateDocument",
                "Rename a document",
                ok=_ok("DocumentOut"),
                errors=(404,),
                right="write",
                params=[DOC],
                body="UpdateDocument",
            ),
            "delete": _op(
                "deleteDocument",
                "Delete a document. Its connected members receive `error` `unknown_document` "
                "and are removed from it (their connections stay open).",
                ok=(204, "Deleted", None),
                errors=(400, 404),
                right="admin",
                params=[DOC],
            ),
        },
        "/api/documents/{doc}/json": {
            "get": _op(
                "getDocumentJSON",
                "The document's value as JSON: named roots by name",
                ok=(200, "The value", _json_content({"type": "object"})),
                errors=(400, 404),
                right="read",
                params=[DOC],
            )
        },
        "/api/documents/{doc}/text/{name}": {
            "get": _op(
                "getText",
                "A named root text as plain text",
                ok=(200, "The text", {"text/plain": {"schema": {"type": "string"}}}),
                errors=(400, 404),
                right="read",
                params=[
                    DOC,
                    _param(
                        "name",
                        "path",
                        "Name of a root text",
                        {"type": "string", "minLength": 1, "maxLength": 100},
                    ),
                ],
            )
        },
        "/api/documents/{doc}/versions": {
            "get": _op(
                "listVersions",
                "The document's versions (time, authors, how, size, name), oldest first",
                ok=_ok("VersionPage"),
                errors=(400, 404),
                right="read",
                params=[
                    DOC,
                    LIMIT,
                    _param(
                        "after",
                        "query",
                        "Return versions with ids after this one (the previous page's `next`)",
                        {"type": "integer", "minimum": 0},
                    ),
                    _param(
                        "before",
                        "query",
                        "Instead of `after`: the `limit` newest versions with ids below this one "
                        "(still oldest first; the page's `older` goes on with older ones; "
                        "9223372036854775807: the newest page)",
                        {"type": "integer", "minimum": 1},
                    ),
                    _param(
                        "named",
                        "query",
                        "`true`: only named versions",
                        {"type": "boolean"},
                    ),
                ],
            ),
            "post": _op(
                "nameVersion",
                "Name the latest version (or `version`); named versions are kept for good",
                ok=_ok("VersionOut"),
                errors=(404, 410),
                right="write",
                params=[DOC],
                body="NameVersion",
            ),
        },
        "/api/documents/{doc}/versions/{id}": {
            "get": _op(
                "getVersion",
                "The document's value at a version",
                ok=_ok("VersionValue"),
                errors=(400, 404, 410),
                right="read",
                params=[DOC, version_id],
            ),
            "patch": _op(
                "renameVersion",
                "Rename a version (`name: null` removes its name)",
                ok=_ok("VersionOut"),
                errors=(404, 410),
                right="write",
                params=[DOC, version_id],
                body="NameVersion",
            ),
        },
        "/api/documents/{doc}/diff": {
            "get": _op(
                "diffVersions",
                "What changed between two versions, node by node, with who inserted and "
                "deleted what",
                ok=_ok("DiffOut"),
                errors=(400, 404, 410),
                right="read",
                params=[
                    DOC,
                    _param("from", "query", "Old version id", {"type": "integer", "minimum": 0})
                    | {"required": True},
                    _param(
                        "to",
                        "query",
                        "New version id (default: the latest)",
                        {"type": "integer", "minimum": 0},
                    ),
                ],
            )
        },
        "/api/documents/{doc}/restore": {
            "post": _op(
                "restoreVersion",
                "Give the document its value at an old version again, as new edits by the "
                "requester (recorded as restored from it) that connected clients receive live; "
                "answers once they are durable",
                ok=_ok("RestoreOut"),
                errors=(404, 410, 422, 503),
                right="write",
                params=[DOC],
                body="RestoreRequest",
            )
        },
        "/api/documents/{doc}/edits": {
            "post": _op(
                "postEdits",
                "Edit the document (text index edits, map keys, counter adds) as one server "
                "edit that connected clients receive live; answers once it is durable",
                ok=_ok("EditsOut"),
                errors=(404, 409, 422, 503),
                right="write",
                params=[DOC],
                body="EditsBody",
            )
        },
        "/api/admin/permissions": {
            "post": _op(
                "restrictUser",
                'Set the most rights a user keeps (by document or "*"; null lifts it), on '
                "every instance and their open connections at once",
                ok=_ok("PermissionsRequest"),
                errors=(),
                right="admin",
                body="PermissionsRequest",
                tag="server",
            )
        },
        "/api/documents/{doc}/chat": {
            "get": _op(
                "getChat",
                "The document's chat, newest first",
                ok=_ok("ChatPageOut"),
                errors=(400, 404),
                right="read",
                params=[
                    DOC,
                    _param(
                        "limit",
                        "query",
                        "Page size",
                        {"type": "integer", "minimum": 1, "maximum": 200},
                    ),
                    _param(
                        "before",
                        "query",
                        "Return messages with ids below this one",
                        {"type": "integer", "minimum": 1},
                    ),
                ],
            )
        },
        **_yjs_paths(),
    }


def _yjs_paths() -> dict[str, Any]:
    root = _param(
        "root",
        "path",
        "Name of a top-level type (root) of the Yjs document",
        {"type": "string", "minLength": 1, "maxLength": rest_yjs.MAX_ROOT_CHARS},
    )
    read_as = _param(
        "as",
        "query",
        "Read the root as `text` (Y.Text, text/plain), `map` / `array` (Y.Map / Y.Array as "
        "JSON), `json` (the map when the root has keys, else the array), `xml` (Y.XmlFragment "
        "in Yjs's toString form, text/plain) or `html` (a ProseMirror fragment as written by "
        "Tiptap, BlockNote or y-prosemirror, as HTML). A Yjs update does not record a root's "
        "type: the root is read as the type asked for",
        {"type": "string", "enum": list(rest_yjs.READ_AS), "default": "text"},
    )
    return {
        "/api/documents/{doc}/yjs": {
            "get": _op(
                "getYjsState",
                "A Yjs document's state as one Yjs update (v1), or with `state_vector` only what "
                "a peer at that state vector lacks",
                ok=(
                    200,
                    "A Yjs update (v1)",
                    {"application/octet-stream": {"schema": {"type": "string"}}},
                ),
                errors=(400, 404, 409, 429),
                right="read",
                params=[
                    DOC,
                    _param(
                        "state_vector",
                        "query",
                        "A Yjs state vector (`Y.encodeStateVector`), base64 (standard or "
                        "URL-safe, padding optional)",
                        {"type": "string", "maxLength": rest_yjs.MAX_STATE_VECTOR_CHARS},
                    ),
                ],
            )
        },
        "/api/documents/{doc}/yjs/roots": {
            "get": _op(
                "listYjsRoots",
                "The names of a Yjs document's top-level types",
                ok=_ok("YjsRootsOut"),
                errors=(400, 404, 409, 429),
                right="read",
                params=[DOC],
            )
        },
        "/api/documents/{doc}/yjs/roots/{root}": {
            "get": _op(
                "getYjsRoot",
                "One top-level type of a Yjs document as text, JSON, XML or HTML",
                ok=(
                    200,
                    "The root's content",
                    {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/json": {},
                        "text/html": {"schema": {"type": "string"}},
                    },
                ),
                errors=(400, 404, 409, 429),
                right="read",
                params=[DOC, root, read_as],
            )
        },
    }


@functools.cache
def _base() -> dict[str, Any]:
    _, schemas = msgspec.json.schema_components(_BODY_TYPES, ref_template=REF)
    schemas["EditsBody"] = {"oneOf": [_ref("DocumentEdit"), _ref("EditsRequest")]}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "cowrite REST API",
            "version": "1",
            "description": (
                "Documents, their values, history, restore and chat. Real-time editing uses the "
                f"WebSocket protocol v{p.PROTOCOL_VERSION} at `/ws` (see docs/protocol.md). "
                'Errors are `{"error": {"code", "message"}}`. Without a configured secret no '
                "token is needed."
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def spec(server_url: str = "/") -> dict[str, Any]:
    """The OpenAPI document; ``server_url`` is where the app is served (its mount path)."""
    out = copy.deepcopy(_base())
    out["servers"] = [{"url": server_url}]
    return out
