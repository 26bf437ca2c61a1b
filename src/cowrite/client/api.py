"""The public entry point: ``cowrite.client.connect`` (also ``cowrite.connect``).

Why a module of its own: ``connect`` is the one call most users make; its keyword arguments are
the SDK's documented surface, kept apart from the session internals they configure.

Caller's contract: ``async with connect(url, doc) as session`` joins (ConnectionError after
``connect_timeout_s``, ``ServerError`` for a refused join) and, on leaving the block without an
exception, waits up to ``flush_timeout_s`` for unacknowledged edits (NotSynced if some remain).
``session = await connect(...)`` does the same join; the caller must then ``await
session.close()``.
"""

from __future__ import annotations

import random
from collections.abc import Generator
from types import TracebackType
from typing import Any

from cowrite import protocol as p
from cowrite.client.connection import DocumentSession, Mode
from cowrite.engine import Document


class _Connect:
    """What ``connect`` returns: ``async with connect(...) as doc`` or ``doc = await connect(...)``
    (then ``await doc.close()``)."""

    def __init__(self, session: DocumentSession) -> None:
        self._session = session

    def __await__(self) -> Generator[Any, None, DocumentSession]:
        return self._open().__await__()

    async def _open(self) -> DocumentSession:
        await self._session.open()
        return self._session

    async def __aenter__(self) -> DocumentSession:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._session.close(flush=exc_type is None)


def connect(
    url: str,
    doc: str,
    *,
    token: str | None = None,
    name: str = "",
    mode: Mode = "thin",
    client_id: str | None = None,
    key: str | None = None,
    user: p.User | None = None,
    create: bool = True,
    document: Document | None = None,
    reconnect: bool = True,
    backoff_base_s: float = 0.25,
    backoff_max_s: float = 10.0,
    connect_timeout_s: float = 10.0,
    flush_timeout_s: float = 10.0,
    max_message_bytes: int = 64 * 1024 * 1024,
    rng: random.Random | None = None,
) -> _Connect:
    """Open document ``doc`` on the server at ``url`` (``ws://host:port/ws``; a bare
    ``ws://host:port`` or ``http://host:port`` means the same, see ``websocket_url``).

    ``mode="thin"`` keeps plain values and rebases by OT (light; edits need the server);
    ``"replica"`` keeps a full CRDT copy (``document``, to resume a saved one) that works offline.
    ``client_id`` identifies this client across reconnects (random by default); ``token`` is the
    access token when the server requires one; ``name`` (or ``user``) is shown to others. Without
    auth, ``key`` (16-128 characters, kept secret) makes you the author of your chat messages
    across sessions (default: random, for this session only).
    ``create``: create the document if it does not exist (else ``ServerError(unknown_document)``).
    ``reconnect``: reconnect after a lost connection, waiting ``min(backoff_max_s, backoff_base_s
    * 2**attempt)`` times a random factor in [0.5, 1). ``connect_timeout_s`` bounds the first
    join (ConnectionError after it). Leaving the ``async with`` block waits up to
    ``flush_timeout_s`` for unacknowledged edits (NotSynced if some remain), then closes.
    """
    return _Connect(
        DocumentSession(
            url,
            doc,
            token=token,
            name=name,
            user=user,
            mode=mode,
            client_id=client_id,
            key=key,
            create=create,
            document=document,
            reconnect=reconnect,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            connect_timeout_s=connect_timeout_s,
            flush_timeout_s=flush_timeout_s,
            max_message_bytes=max_message_bytes,
            rng=rng,
        )
    )
