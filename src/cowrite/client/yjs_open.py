"""``open_yjs``: the SDK's entry point to a Yjs document (the session is ``yjs.py``)."""

from __future__ import annotations

import random
from collections.abc import Generator
from types import TracebackType
from typing import Any

import pycrdt

from cowrite.client.yjs import YjsSession


class _OpenYjs:
    """What ``open_yjs`` returns: ``async with open_yjs(...) as ydoc`` or ``ydoc = await
    open_yjs(...)`` (then ``await ydoc.close()``)."""

    def __init__(self, session: YjsSession) -> None:
        self._session = session

    def __await__(self) -> Generator[Any, None, YjsSession]:
        return self._open().__await__()

    async def _open(self) -> YjsSession:
        await self._session.open()
        return self._session

    async def __aenter__(self) -> YjsSession:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._session.close(flush=exc_type is None)


def open_yjs(
    url: str,
    doc: str,
    *,
    token: str | None = None,
    document: pycrdt.Doc[Any] | None = None,
    awareness: Any = None,
    reconnect: bool = True,
    backoff_base_s: float = 0.25,
    backoff_max_s: float = 10.0,
    connect_timeout_s: float = 10.0,
    flush_timeout_s: float = 10.0,
    max_message_bytes: int = 64 * 1024 * 1024,
    rng: random.Random | None = None,
) -> _OpenYjs:
    """Open the Yjs document ``doc`` of the server at ``url`` (``ws://host:port``; see
    ``hocuspocus_url``) as a live ``pycrdt.Doc``: ``session.doc``.

    ``token``: a cowrite access token when the server has a secret (a read-only one opens the
    document but ``saved()`` raises ``ReadOnlyError`` after a local change). A document that does
    not exist is created by the first client with the write right. ``document``: a
    ``pycrdt.Doc`` to use (its content is merged with the server's, both ways). ``awareness``:
    the initial awareness state. ``reconnect``: reconnect after a lost connection, waiting
    ``min(backoff_max_s, backoff_base_s * 2**attempt)`` times a random factor in [0.5, 1).
    ``connect_timeout_s`` bounds the first open (ConnectionError after it). Leaving the ``async
    with`` block waits up to ``flush_timeout_s`` for local changes to be saved (``NotSynced`` /
    ``ReadOnlyError`` if they are not), then closes.
    """
    return _OpenYjs(
        YjsSession(
            url,
            doc,
            token=token,
            document=document,
            awareness=awareness,
            reconnect=reconnect,
            backoff_base_s=backoff_base_s,
            backoff_max_s=backoff_max_s,
            connect_timeout_s=connect_timeout_s,
            flush_timeout_s=flush_timeout_s,
            max_message_bytes=max_message_bytes,
            rng=rng,
        )
    )


__all__ = ["open_yjs"]
