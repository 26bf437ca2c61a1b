"""Version history over REST: ``cowrite.client.History`` (list, read, diff, name, restore).

Why apart from ``connect``: history is read and restored over HTTP (``docs/protocol.md``,
"REST: version history"), not over the document's WebSocket, so it needs no open session; an
application shows a history panel or restores a version with a base URL and a token alone.

Caller's contract: every method is a coroutine making one HTTP request (run in a worker thread
with the standard library's ``urllib``: no extra dependency); the answers are the server's own
types (``cowrite.server.rest_history_bodies``). An error answer raises ``HistoryError`` with
the HTTP status and the server's ``code`` (``unknown_version``, ``history_unavailable``,
``forbidden``...) and message; an unreachable server raises ``ConnectionError``.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from typing import Any, TypeVar

from cowrite.client.errors import ClientError
from cowrite.client.rest_client import RestClient
from cowrite.server.rest_history_bodies import (
    DiffOut,
    RestoreOut,
    VersionOut,
    VersionPage,
    VersionValue,
)

T = TypeVar("T")


class HistoryError(ClientError):
    """The server refused a history request: HTTP ``status``, its ``code`` (``unknown_version``,
    ``history_unavailable``, ``unknown_document``, ``forbidden``, ``bad_request``...) and
    message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class History(RestClient):
    """The version history of document ``doc`` on the server at ``url`` (``http://host:port``;
    a ``ws://`` URL or one ending in ``/ws`` means the same server).

    ``token``: the access token when the server has a secret (``read`` to look, ``write`` to
    name and restore). ``timeout_s`` bounds each request.
    """

    error_type = HistoryError

    def __init__(
        self, url: str, doc: str, *, token: str | None = None, timeout_s: float = 30.0
    ) -> None:
        super().__init__(url, token=token, timeout_s=timeout_s)
        self.base = f"{self.root}/api/documents/{urllib.parse.quote(doc, safe='')}"

    async def versions(
        self, *, after: int = 0, limit: int = 100, named: bool = False
    ) -> VersionPage:
        """One page of versions, oldest first (``next``: the ``after`` of the next page)."""
        query = {"after": after, "limit": limit} | ({"named": "true"} if named else {})
        return await self._call("GET", "/versions", VersionPage, query=query)

    async def all_versions(self, *, named: bool = False) -> AsyncIterator[VersionOut]:
        """Every version, oldest first, a page at a time."""
        after: int | None = 0
        while after is not None:
            page = await self.versions(after=after, limit=1000, named=named)
            for version in page.versions:
                yield version
            after = page.next

    async def value_at(self, version: int) -> VersionValue:
        """The document's value at ``version`` (0: the empty document)."""
        return await self._call("GET", f"/versions/{int(version)}", VersionValue)

    async def diff(self, old: int, new: int | None = None) -> DiffOut:
        """What changed from version ``old`` to ``new`` (default: the latest), with who
        inserted and deleted what (``NodeChange.spans``)."""
        query: dict[str, Any] = {"from": old} | ({} if new is None else {"to": new})
        return await self._call("GET", "/diff", DiffOut, query=query)

    async def name(self, name: str, version: int | None = None) -> VersionOut:
        """Name the latest version (or ``version``): it is kept for good."""
        body: dict[str, Any] = {"name": name} | ({} if version is None else {"version": version})
        return await self._call("POST", "/versions", VersionOut, body=body)

    async def rename(self, version: int, name: str | None) -> VersionOut:
        """Rename a version (None: remove its name)."""
        return await self._call(
            "PATCH", f"/versions/{int(version)}", VersionOut, body={"name": name}
        )

    async def restore(self, version: int) -> RestoreOut:
        """Give the document its value at ``version`` again: new edits by you, recorded as
        restored from it, live for everyone; returns once they are durable."""
        return await self._call("POST", "/restore", RestoreOut, body={"version": int(version)})
