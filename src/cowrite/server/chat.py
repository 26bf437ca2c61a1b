"""Chat messages as the store keeps them and as clients get them."""

from __future__ import annotations

from cowrite import protocol as p
from cowrite.adapters.store import ChatMessage


def chat_message(m: ChatMessage) -> p.ChatMessage:
    """The wire form of a stored message (both the native protocol and Yjs stateless chat)."""
    return p.ChatMessage(
        id=m.id,
        author_id=m.author_id,
        author_name=m.author_name,
        text=m.text,
        created_ms=m.created_ms,
        edited_ms=m.edited_ms,
        deleted=m.deleted,
    )
