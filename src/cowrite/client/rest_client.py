"""A small HTTP client for the REST API (the standard library's ``urllib`` in a worker thread:
no extra dependency): what ``History`` and ``Admin`` share.

Caller's contract: ``_call`` makes one request and decodes the answer as ``type_``; an error
answer raises ``error_type(status, code, message)`` with the server's error code; an unreachable
server raises ``ConnectionError``.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, TypeVar

import msgspec

T = TypeVar("T")


class RestClient:
    """Requests to the server at ``url`` (``http://host:port``; a ``ws://`` URL or one ending in
    ``/ws`` means the same server) with an optional bearer ``token``."""

    error_type: Any = None
    """The exception class raised for an error answer (``(status, code, message)``)."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 30.0) -> None:
        root = url.rstrip("/").removesuffix("/ws")
        if root.startswith(("ws://", "wss://")):
            root = "http" + root[2:]
        self.root = root
        self.base = root
        self.token = token
        self.timeout_s = timeout_s

    async def _call(
        self,
        method: str,
        path: str,
        type_: type[T],
        *,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
    ) -> T:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data, headers, method=method)
        raw = await asyncio.to_thread(self._send, request)
        return msgspec.json.decode(raw, type=type_)

    def _send(self, request: urllib.request.Request) -> bytes:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                data: bytes = response.read()
                return data
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                error = json.loads(raw)["error"]
                code, message = str(error["code"]), str(error["message"])
            except (ValueError, KeyError, TypeError):
                code, message = "internal", f"HTTP {exc.code}"
            raise self.error_type(exc.code, code, message) from None
        except (urllib.error.URLError, OSError) as exc:
            raise ConnectionError(f"{request.full_url}: {exc}") from exc
