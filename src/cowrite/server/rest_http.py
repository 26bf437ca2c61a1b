"""The REST API's HTTP plumbing shared by its route modules (``rest.py``, ``rest_yjs.py``).

Caller's contract: a handler raises ``HTTPError(status, code, message)`` for any client-visible
error; ``rest._endpoint`` turns it into ``error_response`` (``{"error": {"code", "message"}}``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from cowrite.server.rest_bodies import ErrorBody, ErrorDetail

Handler = Callable[[Request], Awaitable[Response]]


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


def json_response(body: Any, status: int = 200) -> Response:
    return Response(msgspec.json.encode(body), status, media_type="application/json")
