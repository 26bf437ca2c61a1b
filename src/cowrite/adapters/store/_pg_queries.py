"""PostgreSQL: the statements of a `PostgresStore` other than appends (``_pg_append.py``).

Why apart: the SQL for documents, the log and snapshots, and chat is what changes with the schema,
while ``postgres.py`` keeps validation and the read/write plumbing. Caller's contract: the
``async def _…(c, …)`` writes run as `_Call` jobs on the writer connection, inside their batch's
transaction (with the documents' advisory locks held), and raise `NotFound`, `DocumentExists`,
`Forbidden` or `ValueError` only before they write anything; ``_LOAD_SQL``/``_SINCE_SQL`` are
single statements for the read pool (one consistent snapshot each). `_check_text` refuses NUL
characters, which PostgreSQL ``text`` cannot hold, with `ValueError`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from cowrite.adapters.store.base import (
    ChatMessage,
    DocumentExists,
    DocumentInfo,
    Forbidden,
    NotFound,
)

# asyncpg ships no type information; a connection is `Any` here, used only through the helpers.
Conn = Any

_DOC_COLUMNS = "id, title, created_ms, updated_ms, size_bytes, kind"
_CHAT_COLUMNS = "id, doc_id, author_id, author_name, text, created_ms, edited_ms, deleted"

# The snapshot and the log after it, read by one statement, hence from one consistent snapshot.
_LOAD_SQL = """
SELECT 0 AS kind, last_seq AS seq, convert_to(documents.kind, 'UTF8') AS data
  FROM documents WHERE id = $1
UNION ALL
SELECT 1, upto_seq, data FROM snapshots WHERE doc_id = $1
UNION ALL
SELECT 2, u.seq, u.data FROM updates AS u
 WHERE u.doc_id = $1
   AND u.seq > COALESCE((SELECT s.upto_seq FROM snapshots AS s WHERE s.doc_id = $1), 0)
"""


_SINCE_SQL = """
SELECT 0 AS kind, last_seq AS seq, NULL::bytea AS data FROM documents WHERE id = $1
UNION ALL
SELECT 1, upto_seq, NULL::bytea FROM snapshots WHERE doc_id = $1
UNION ALL
SELECT 2, u.seq, u.data FROM updates AS u WHERE u.doc_id = $1 AND u.seq > $2
"""


def _check_text(what: str, value: str) -> None:
    if "\x00" in value:
        raise ValueError(f"invalid {what}: PostgreSQL text cannot hold a NUL character")


# --- the statements (each a job on the writer connection, inside its batch's transaction) ---------


def _info(row: Any) -> DocumentInfo:
    id_, title, created_ms, updated_ms, size_bytes, kind = row
    return DocumentInfo(
        str(id_), str(title), int(created_ms), int(updated_ms), int(size_bytes), str(kind)
    )


def _chat(row: Any) -> ChatMessage:
    id_, doc_id, author_id, author_name, text, created_ms, edited_ms, deleted = row
    return ChatMessage(
        id=int(id_),
        doc_id=str(doc_id),
        author_id=str(author_id),
        author_name=str(author_name),
        text=str(text),
        created_ms=int(created_ms),
        edited_ms=None if edited_ms is None else int(edited_ms),
        deleted=bool(deleted),
    )


async def _count(status: Awaitable[Any]) -> int:
    """The row count of a command status such as ``"DELETE 3"``."""
    return int(str(await status).rsplit(" ", 1)[-1])


async def _create_document(
    c: Conn, doc_id: str, title: str, now_ms: int, kind: str
) -> DocumentInfo:
    inserted = await _count(
        c.execute(
            "INSERT INTO documents (id, title, created_ms, updated_ms, kind) "
            "VALUES ($1, $2, $3, $3, $4) ON CONFLICT (id) DO NOTHING",
            doc_id,
            title,
            now_ms,
            kind,
        )
    )
    if inserted == 0:
        raise DocumentExists(f"document {doc_id!r} already exists")
    return DocumentInfo(doc_id, title, now_ms, now_ms, 0, kind)


async def _update_title(c: Conn, doc_id: str, title: str, now_ms: int) -> DocumentInfo:
    row = await c.fetchrow(
        "UPDATE documents SET title = $1, updated_ms = GREATEST(updated_ms, $2) WHERE id = $3 "
        f"RETURNING {_DOC_COLUMNS}",
        title,
        now_ms,
        doc_id,
    )
    if row is None:
        raise NotFound(f"document {doc_id!r} does not exist")
    return _info(row)


async def _delete_document(c: Conn, doc_id: str) -> bool:
    return await _count(c.execute("DELETE FROM documents WHERE id = $1", doc_id)) > 0


async def named_between(c: Conn, doc_id: str, low: int, high: int) -> set[int]:
    """The seqs of the named versions with ``low <= seq <= high`` (in the caller's
    transaction: tail rows and packed versions' names, ``_pg_versions.py``)."""
    rows = await c.fetch(
        "SELECT seq FROM versions WHERE doc_id = $1 AND seq BETWEEN $2 AND $3 "
        "AND name IS NOT NULL "
        "UNION ALL SELECT seq FROM version_names WHERE doc_id = $1 AND seq BETWEEN $2 AND $3",
        doc_id,
        low,
        high,
    )
    return {int(r[0]) for r in rows}


async def _save_snapshot(
    c: Conn, doc_id: str, data: bytes, upto_seq: int, drops: frozenset[int] = frozenset()
) -> bool:
    row = await c.fetchrow(
        "SELECT d.last_seq, s.upto_seq FROM documents AS d "
        "LEFT JOIN snapshots AS s ON s.doc_id = d.id WHERE d.id = $1 FOR UPDATE OF d",
        doc_id,
    )
    if row is None:
        raise NotFound(f"document {doc_id!r} does not exist")
    last_seq, current = int(row[0]), row[1]
    if upto_seq < 0 or upto_seq > last_seq:
        raise ValueError(
            f"snapshot upto_seq {upto_seq} outside the log of {doc_id!r} (0..{last_seq})"
        )
    if current is not None and upto_seq < int(current):
        return False
    # (the writer's per-document lock orders this after any naming that committed first)
    if drops and await named_between(c, doc_id, min(drops), max(drops)) & drops:
        return False  # named while the snapshot was made: the next one keeps it
    await c.execute(
        "INSERT INTO snapshots (doc_id, upto_seq, data) VALUES ($1, $2, $3) "
        "ON CONFLICT (doc_id) DO UPDATE SET upto_seq = excluded.upto_seq, data = excluded.data",
        doc_id,
        upto_seq,
        data,
    )
    await c.execute(
        "WITH gone AS (DELETE FROM updates WHERE doc_id = $1 AND seq <= $2) "
        "UPDATE documents SET size_bytes = $3 + (SELECT COALESCE(SUM(octet_length(data)), 0) "
        "FROM updates WHERE doc_id = $1 AND seq > $2) WHERE id = $1",
        doc_id,
        upto_seq,
        len(data),
    )
    return True


async def _add_chat(
    c: Conn, doc_id: str, author_id: str, author_name: str, text: str, now_ms: int
) -> ChatMessage:
    row = await c.fetchrow(
        "WITH n AS (UPDATE documents SET last_chat_id = last_chat_id + 1 WHERE id = $1 "
        "RETURNING last_chat_id) "
        f"INSERT INTO chat_messages ({_CHAT_COLUMNS}) "
        "SELECT n.last_chat_id, $1, $2, $3, $4, $5, NULL, FALSE FROM n "
        f"RETURNING {_CHAT_COLUMNS}",
        doc_id,
        author_id,
        author_name,
        text,
        now_ms,
    )
    if row is None:
        raise NotFound(f"document {doc_id!r} does not exist")
    return _chat(row)


async def _change_chat(
    c: Conn,
    doc_id: str,
    message_id: int,
    author_id: str,
    text: str,
    now_ms: int,
    *,
    delete: bool,
) -> ChatMessage:
    row = await c.fetchrow(
        f"SELECT {_CHAT_COLUMNS} FROM chat_messages WHERE doc_id = $1 AND id = $2 FOR UPDATE",
        doc_id,
        message_id,
    )
    if row is None:
        raise NotFound(f"chat message {message_id} of {doc_id!r} does not exist")
    message = _chat(row)
    if message.author_id != author_id:
        raise Forbidden(f"chat message {message_id} belongs to another author")
    if message.deleted:
        if delete:
            return message
        raise NotFound(f"chat message {message_id} of {doc_id!r} was deleted")
    row = await c.fetchrow(
        "UPDATE chat_messages SET text = $1, edited_ms = $2, deleted = $3 "
        f"WHERE doc_id = $4 AND id = $5 RETURNING {_CHAT_COLUMNS}",
        text,
        now_ms,
        delete,
        doc_id,
        message_id,
    )
    return _chat(row)
