"""REST API under ``/api``: documents, their values, versions, diffs, restore, chat history."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from cowrite.adapters.store import DocumentExists

if TYPE_CHECKING:
    from cowrite.server.app import Cowrite


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def routes(state: Cowrite) -> list[Route]:
    store = state.store

    async def list_documents(request: Request) -> Response:
        try:
            limit = int(request.query_params.get("limit", "100"))
            docs = await store.list_documents(limit=limit, after=request.query_params.get("after"))
        except ValueError as exc:
            return _error(400, "bad_request", str(exc))
        return JSONResponse({"documents": [_info(d) for d in docs]})

    async def create_document(request: Request) -> Response:
        try:
            body: Any = await request.json()
        except ValueError:
            return _error(400, "bad_request", "body must be JSON")
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            return _error(400, "bad_request", 'expected {"id": str, "title": str}')
        try:
            info = await store.create_document(
                body["id"], title=str(body.get("title", body["id"])), now_ms=state.hub.now_ms()
            )
        except DocumentExists:
            return _error(409, "exists", f"document {body['id']!r} exists")
        except ValueError as exc:
            return _error(400, "bad_request", str(exc))
        return JSONResponse(_info(info), status_code=201)

    async def get_document(request: Request) -> Response:
        doc_id = request.path_params["doc"]
        info = await store.get_document(doc_id)
        if info is None:
            return _error(404, "unknown_document", f"no document {doc_id!r}")
        lr = await state.hub.open_room(doc_id, create=False)
        state.hub._schedule_unload(doc_id, lr)
        return JSONResponse(
            {**_info(info), "version": lr.room.version, "value": lr.room.doc.to_json()}
        )

    async def get_text(request: Request) -> Response:
        doc_id = request.path_params["doc"]
        if await store.get_document(doc_id) is None:
            return _error(404, "unknown_document", f"no document {doc_id!r}")
        lr = await state.hub.open_room(doc_id, create=False)
        state.hub._schedule_unload(doc_id, lr)
        value = lr.room.doc.to_json().get(request.path_params["name"])
        if not isinstance(value, str):
            return _error(404, "unknown_node", "no text node of that name")
        return PlainTextResponse(value)

    async def delete_document(request: Request) -> Response:
        doc_id = request.path_params["doc"]
        if not await store.delete_document(doc_id):
            return _error(404, "unknown_document", f"no document {doc_id!r}")
        return Response(status_code=204)

    return [
        Route("/documents", list_documents, methods=["GET"]),
        Route("/documents", create_document, methods=["POST"]),
        Route("/documents/{doc}", get_document, methods=["GET"]),
        Route("/documents/{doc}", delete_document, methods=["DELETE"]),
        Route("/documents/{doc}/text/{name}", get_text, methods=["GET"]),
    ]


def _info(info: Any) -> dict[str, Any]:
    return {
        "id": info.id,
        "title": info.title,
        "created_ms": info.created_ms,
        "updated_ms": info.updated_ms,
        "size_bytes": info.size_bytes,
    }
