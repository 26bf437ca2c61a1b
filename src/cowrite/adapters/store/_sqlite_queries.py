"""SQLite: the statements of a `SQLiteStore` (documents, the log with edit keys, snapshots, chat).

Why apart: the SQL is what changes with the schema (``_schema.py``), while ``sqlite.py`` keeps the
store's lifecycle, validation and its threads (the writer, the reader pool). Caller's contract:
each function takes a connection and runs on the writer thread (writes, inside the batch's
transaction opened by `BatchWriter`; they raise `NotFound`, `DocumentExists`, `DuplicateEdit`,
`Forbidden` or `ValueError`, and the writer undoes what the failing one wrote) or on a reader
thread (`_load` and `_updates_since` open their own read transaction, so snapshot and log come
from one commit).
They never touch the event loop; `sqlite3.Error` is translated by the caller.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from cowrite.adapters.store._version_blocks import BLOCK_VERSIONS
from cowrite.adapters.store._versions import _insert_version, _named_between
from cowrite.adapters.store.base import (
    ChatMessage,
    Compacted,
    DocumentExists,
    DocumentInfo,
    DuplicateEdit,
    EditKey,
    Forbidden,
    NotFound,
    StoredDocument,
    VersionRecord,
)

_DOC_COLUMNS = "id, title, created_ms, updated_ms, size_bytes, kind"
_CHAT_COLUMNS = "id, doc_id, author_id, author_name, text, created_ms, edited_ms, deleted"


# --- the statements (each runs on a writer or reader thread) --------------------------------------


def _create_document(
    c: sqlite3.Connection, doc_id: str, title: str, now_ms: int, kind: str
) -> DocumentInfo:
    cursor = c.execute(
        "INSERT INTO documents (id, title, created_ms, updated_ms, kind) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (doc_id, title, now_ms, now_ms, kind),
    )
    if cursor.rowcount == 0:
        raise DocumentExists(f"document {doc_id!r} already exists")
    return DocumentInfo(doc_id, title, now_ms, now_ms, 0, kind)


def _get_document(c: sqlite3.Connection, doc_id: str) -> DocumentInfo | None:
    row = c.execute(f"SELECT {_DOC_COLUMNS} FROM documents WHERE id = ?", (doc_id,)).fetchone()
    return None if row is None else DocumentInfo(*row)


def _update_title(c: sqlite3.Connection, doc_id: str, title: str, now_ms: int) -> DocumentInfo:
    row = c.execute(
        "UPDATE documents SET title = ?, updated_ms = MAX(updated_ms, ?) WHERE id = ? "
        f"RETURNING {_DOC_COLUMNS}",
        (title, now_ms, doc_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"document {doc_id!r} does not exist")
    return DocumentInfo(*row)


def _stored_edit(
    c: sqlite3.Connection, doc_id: str, client_id: str, edit_id: str
) -> tuple[int, str] | None:
    sql = "SELECT seq, digest FROM edit_keys WHERE doc_id = ? AND client_id = ? AND edit_id = ?"
    row: tuple[int, str] | None = c.execute(sql, (doc_id, client_id, edit_id)).fetchone()
    return row


_NEXT_SEQ = (
    "UPDATE documents SET last_seq = last_seq + 1, size_bytes = size_bytes + ?, "
    "updated_ms = MAX(updated_ms, ?) WHERE id = ? RETURNING last_seq"
)
_INSERT_UPDATE = "INSERT INTO updates (doc_id, seq, data, created_ms) VALUES (?, ?, ?, ?)"
_INSERT_KEY = (  # no ON CONFLICT: a key stored before fails the insert (see below)
    "INSERT INTO edit_keys (doc_id, client_id, edit_id, seq, created_ms, digest) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def _append_update(
    c: sqlite3.Connection,
    doc_id: str,
    data: bytes,
    keys: tuple[EditKey, ...],
    now_ms: int,
    version: VersionRecord | None = None,
    block: int = BLOCK_VERSIONS,
    pack_due: list[str] | None = None,
) -> int:
    """Append one log entry with its edit keys and version row; return its seq.

    Four statements in the usual case (each one a trip through the GIL for the writer thread,
    which competes with the event loop for it). A key stored before is found by its insert
    failing, not by a lookup ahead of it: the job then raises `DuplicateEdit` after it wrote,
    and the writer rolls its changes back (`BatchWriter`: a failing job is undone alone).
    With a ``pack_due`` list, a version tail due for packing is not packed here (that would
    hold this transaction, and every edit queued behind it, for the tens of ms of encoding a
    block): ``doc_id`` is appended to the list instead."""
    row = c.execute(_NEXT_SEQ, (len(data), now_ms, doc_id)).fetchone()
    if row is None:
        raise NotFound(f"document {doc_id!r} does not exist")
    seq = int(row[0])
    c.execute(_INSERT_UPDATE, (doc_id, seq, data, now_ms))
    if keys:
        try:
            if len(keys) == 1:
                k = keys[0]
                c.execute(_INSERT_KEY, (doc_id, k.client_id, k.edit_id, seq, now_ms, k.digest))
            else:
                c.executemany(
                    _INSERT_KEY,
                    [(doc_id, k.client_id, k.edit_id, seq, now_ms, k.digest) for k in keys],
                )
        except sqlite3.IntegrityError:
            for key in keys:  # the one writer runs this: nobody can store the key in between
                known = _stored_edit(c, doc_id, key.client_id, key.edit_id)
                if known is not None and int(known[0]) != seq:
                    raise DuplicateEdit(key, int(known[0]), str(known[1])) from None
            raise
    if version is not None and _insert_version(
        c, doc_id, seq, version, block, pack=pack_due is None
    ):
        assert pack_due is not None
        pack_due.append(doc_id)  # the caller packs the tail later (``_versions.plan_pack``)
    return seq


def _load(c: sqlite3.Connection, doc_id: str) -> StoredDocument | None:
    c.execute("BEGIN")  # one read transaction: snapshot and log from the same commit
    try:
        row = c.execute("SELECT last_seq, kind FROM documents WHERE id = ?", (doc_id,)).fetchone()
        if row is None:
            return None
        snap = c.execute(
            "SELECT upto_seq, data FROM snapshots WHERE doc_id = ?", (doc_id,)
        ).fetchone()
        snapshot_seq, snapshot = (0, None) if snap is None else (int(snap[0]), bytes(snap[1]))
        updates = [
            (int(seq), bytes(data))
            for seq, data in c.execute(
                "SELECT seq, data FROM updates WHERE doc_id = ? AND seq > ? ORDER BY seq",
                (doc_id, snapshot_seq),
            )
        ]
    finally:
        c.execute("COMMIT")
    return StoredDocument(doc_id, snapshot, snapshot_seq, updates, int(row[0]), str(row[1]))


def _updates_since(c: sqlite3.Connection, doc_id: str, after_seq: int) -> list[tuple[int, bytes]]:
    c.execute("BEGIN")
    try:
        if c.execute("SELECT 1 FROM documents WHERE id = ?", (doc_id,)).fetchone() is None:
            raise NotFound(f"document {doc_id!r} does not exist")
        snap = c.execute("SELECT upto_seq FROM snapshots WHERE doc_id = ?", (doc_id,)).fetchone()
        if snap is not None and after_seq < int(snap[0]):
            raise Compacted(f"{doc_id!r}: the log up to {snap[0]} is in a snapshot")
        return [
            (int(seq), bytes(data))
            for seq, data in c.execute(
                "SELECT seq, data FROM updates WHERE doc_id = ? AND seq > ? ORDER BY seq",
                (doc_id, after_seq),
            )
        ]
    finally:
        c.execute("COMMIT")


def _save_snapshot(
    c: sqlite3.Connection,
    doc_id: str,
    data: bytes,
    upto_seq: int,
    drops: frozenset[int] = frozenset(),
) -> bool:
    row = c.execute("SELECT last_seq FROM documents WHERE id = ?", (doc_id,)).fetchone()
    if row is None:
        raise NotFound(f"document {doc_id!r} does not exist")
    last_seq = int(row[0])
    if upto_seq < 0 or upto_seq > last_seq:
        raise ValueError(
            f"snapshot upto_seq {upto_seq} outside the log of {doc_id!r} (0..{last_seq})"
        )
    current = c.execute("SELECT upto_seq FROM snapshots WHERE doc_id = ?", (doc_id,)).fetchone()
    if current is not None and upto_seq < int(current[0]):
        return False
    if drops and _named_between(c, doc_id, min(drops), max(drops)) & drops:
        return False  # named while the snapshot was made: the next one keeps it
    c.execute(
        "INSERT INTO snapshots (doc_id, upto_seq, data) VALUES (?, ?, ?) "
        "ON CONFLICT (doc_id) DO UPDATE SET upto_seq = excluded.upto_seq, data = excluded.data",
        (doc_id, upto_seq, data),
    )
    c.execute("DELETE FROM updates WHERE doc_id = ? AND seq <= ?", (doc_id, upto_seq))
    c.execute(
        "UPDATE documents SET size_bytes = ? + "
        "(SELECT COALESCE(SUM(LENGTH(data)), 0) FROM updates WHERE doc_id = ?) WHERE id = ?",
        (len(data), doc_id, doc_id),
    )
    return True


def _chat(row: Sequence[Any]) -> ChatMessage:
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


def _add_chat(
    c: sqlite3.Connection,
    doc_id: str,
    author_id: str,
    author_name: str,
    text: str,
    now_ms: int,
) -> ChatMessage:
    row = c.execute(
        "UPDATE documents SET last_chat_id = last_chat_id + 1 WHERE id = ? RETURNING last_chat_id",
        (doc_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"document {doc_id!r} does not exist")
    message = ChatMessage(int(row[0]), doc_id, author_id, author_name, text, now_ms, None, False)
    c.execute(
        f"INSERT INTO chat_messages ({_CHAT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, NULL, 0)",
        (message.id, doc_id, author_id, author_name, text, now_ms),
    )
    return message


def _change_chat(
    c: sqlite3.Connection,
    doc_id: str,
    message_id: int,
    author_id: str,
    text: str,
    now_ms: int,
    *,
    delete: bool,
) -> ChatMessage:
    row = c.execute(
        f"SELECT {_CHAT_COLUMNS} FROM chat_messages WHERE doc_id = ? AND id = ?",
        (doc_id, message_id),
    ).fetchone()
    if row is None:
        raise NotFound(f"chat message {message_id} of {doc_id!r} does not exist")
    message = _chat(row)
    if message.author_id != author_id:
        raise Forbidden(f"chat message {message_id} belongs to another author")
    if message.deleted:
        if delete:
            return message
        raise NotFound(f"chat message {message_id} of {doc_id!r} was deleted")
    row = c.execute(
        "UPDATE chat_messages SET text = ?, edited_ms = ?, deleted = ? "
        f"WHERE doc_id = ? AND id = ? RETURNING {_CHAT_COLUMNS}",
        (text, now_ms, int(delete), doc_id, message_id),
    ).fetchone()
    return _chat(row)
