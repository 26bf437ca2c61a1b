"""A session's chat: ``session.chat`` (``ChatChannel``).

Why a module of its own: chat rides on the document's connection but is not document state; it
only needs the session's "send once joined" and "ask for a page" primitives.

Caller's contract: commands wait until the session is joined, then are sent at most once (a lost
connection may lose them; nothing is retried); ``history`` raises TimeoutError after ``timeout_s``
and ConnectionError if the connection drops first. ``messages`` holds what this session has seen
(the ``joined`` backlog, live ``chat`` messages and fetched pages), oldest first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cowrite import protocol as p

if TYPE_CHECKING:
    from cowrite.client.connection import DocumentSession


class ChatChannel:
    """The document's chat: ``messages`` known so far (oldest first) and the chat commands."""

    def __init__(self, session: DocumentSession) -> None:
        self._session = session
        self._messages: dict[int, p.ChatMessage] = {}

    @property
    def messages(self) -> list[p.ChatMessage]:
        return [self._messages[k] for k in sorted(self._messages)]

    def _learn(self, messages: list[p.ChatMessage]) -> None:
        for m in messages:
            self._messages[m.id] = m

    async def send(self, text: str) -> None:
        """Post a message (waits for the session to be joined; at most once)."""
        await self._session._send_when_joined(p.ChatSend(doc=self._session.doc_id, text=text))

    async def edit(self, message_id: int, text: str) -> None:
        msg = p.ChatEdit(doc=self._session.doc_id, id=message_id, text=text)
        await self._session._send_when_joined(msg)

    async def delete(self, message_id: int) -> None:
        msg = p.ChatDelete(doc=self._session.doc_id, id=message_id)
        await self._session._send_when_joined(msg)

    async def history(
        self, before: int | None = None, limit: int = 50, *, timeout_s: float = 10.0
    ) -> p.ChatPage:
        """A page of older messages (``before`` a message id), newest first as the server sends."""
        session = self._session
        msg = p.ChatHistory(doc=session.doc_id, before=before, limit=limit)
        page = await session._request_chat_page(msg, timeout_s)
        self._learn(page.messages)
        return page
