"""The REST API's catch-all route: JSON errors for unknown paths (404) and methods (405)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Receive, Scope, Send

from cowrite.server.rest_http import error_response


class Fallback:
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
