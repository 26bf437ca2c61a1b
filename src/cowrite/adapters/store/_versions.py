"""The version history in the SQL stores: the row codec both share and the SQLite statements.

Why apart: the ``versions`` table (migration 4) is one concept (``base.VersionRecord``), and its
statements would push ``_sqlite_queries.py`` and ``sqlite.py`` past their size. Caller's
contract as in ``_sqlite_queries.py``: writes run on the writer thread inside the batch's
transaction (``_insert_version`` right after the log entry it describes), reads on a reader.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from cowrite.adapters.store.base import NotFound, VersionRecord

COLUMNS = "seq, time_ms, authors, how, size, vector, restored_from, name, named_ms, merged"


def encode_authors(authors: Sequence[tuple[str, str]]) -> str:
    return json.dumps([list(a) for a in authors], ensure_ascii=False, separators=(",", ":"))


def record(row: Sequence[Any]) -> VersionRecord:
    """A ``versions`` row (``COLUMNS``, in order) as a record."""
    seq, time_ms, authors, how, size, vector, restored_from, name, named_ms, merged = row
    return VersionRecord(
        seq=int(seq),
        time_ms=int(time_ms),
        authors=tuple((str(i), str(n)) for i, n in json.loads(authors)),
        how=str(how),
        size=int(size),
        vector=bytes(vector),
        restored_from=None if restored_from is None else int(restored_from),
        name=None if name is None else str(name),
        named_ms=None if named_ms is None else int(named_ms),
        merged=int(merged),
    )


def _insert_version(c: sqlite3.Connection, doc_id: str, seq: int, v: VersionRecord) -> None:
    c.execute(
        f"INSERT INTO versions (doc_id, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            doc_id,
            seq,
            v.time_ms,
            encode_authors(v.authors),
            v.how,
            v.size,
            v.vector,
            v.restored_from,
            v.name,
            v.named_ms,
            v.merged,
        ),
    )


def _list_versions(
    c: sqlite3.Connection,
    doc_id: str,
    after: int,
    before: int | None,
    limit: int,
    named_only: bool,
) -> list[VersionRecord]:
    named = " AND name IS NOT NULL" if named_only else ""
    rows = c.execute(
        f"SELECT {COLUMNS} FROM versions WHERE doc_id = ? AND seq > ? AND seq < ?{named} "
        "ORDER BY seq LIMIT ?",
        (doc_id, after, 2**63 - 1 if before is None else before, limit),
    ).fetchall()
    return [record(r) for r in rows]


def _get_version(c: sqlite3.Connection, doc_id: str, seq: int) -> VersionRecord | None:
    row = c.execute(
        f"SELECT {COLUMNS} FROM versions WHERE doc_id = ? AND seq = ?", (doc_id, seq)
    ).fetchone()
    return None if row is None else record(row)


def _name_version(
    c: sqlite3.Connection, doc_id: str, seq: int, name: str | None, now_ms: int
) -> VersionRecord:
    row = c.execute(
        f"UPDATE versions SET name = ?, named_ms = ? WHERE doc_id = ? AND seq = ? "
        f"RETURNING {COLUMNS}",
        (name, None if name is None else now_ms, doc_id, seq),
    ).fetchone()
    if row is None:
        raise NotFound(f"no version {seq} of {doc_id!r}")
    return record(row)


def _thin_versions(
    c: sqlite3.Connection, doc_id: str, removed: Sequence[int], updated: Sequence[VersionRecord]
) -> int:
    gone = 0
    for seq in removed:
        gone += c.execute(
            "DELETE FROM versions WHERE doc_id = ? AND seq = ? AND name IS NULL", (doc_id, seq)
        ).rowcount
    c.executemany(
        "UPDATE versions SET authors = ?, size = ?, merged = ? WHERE doc_id = ? AND seq = ?",
        [(encode_authors(v.authors), v.size, v.merged, doc_id, v.seq) for v in updated],
    )
    return gone
