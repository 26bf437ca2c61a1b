"""PostgreSQL: the statements of the version history (the ``versions`` table, migration 4).

Why apart: one concept (``base.VersionRecord``), kept out of ``postgres.py`` and
``_pg_queries.py`` for their size; the rows are decoded by the codec the SQLite store uses
(``_versions.record``). Caller's contract as in ``_pg_queries.py``: writes are jobs on the
writer connection inside its batch's transaction, reads run on a pooled connection. The rows
themselves are inserted by the append statement (``_pg_append.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cowrite.adapters.store._pg_queries import _check_text
from cowrite.adapters.store._versions import COLUMNS, encode_authors, record
from cowrite.adapters.store.base import NotFound, VersionRecord

Conn = Any


def check_version_text(v: VersionRecord) -> VersionRecord:
    """Refuse what PostgreSQL text cannot hold (NUL) before it reaches the writer."""
    for i, n in v.authors:
        _check_text("version author", i)
        _check_text("version author", n)
    if v.name is not None:
        _check_text("version name", v.name)
    return v


async def list_versions(
    c: Conn, doc_id: str, after: int, before: int | None, limit: int, named_only: bool
) -> list[VersionRecord]:
    named = " AND name IS NOT NULL" if named_only else ""
    rows = await c.fetch(
        f"SELECT {COLUMNS} FROM versions WHERE doc_id = $1 AND seq > $2 AND seq < $3{named} "
        "ORDER BY seq LIMIT $4",
        doc_id,
        after,
        2**63 - 1 if before is None else before,
        limit,
    )
    return [record(r) for r in rows]


async def get_version(c: Conn, doc_id: str, seq: int) -> VersionRecord | None:
    row = await c.fetchrow(
        f"SELECT {COLUMNS} FROM versions WHERE doc_id = $1 AND seq = $2", doc_id, seq
    )
    return None if row is None else record(row)


async def name_version(
    c: Conn, doc_id: str, seq: int, name: str | None, now_ms: int
) -> VersionRecord:
    row = await c.fetchrow(
        f"UPDATE versions SET name = $1, named_ms = $2 WHERE doc_id = $3 AND seq = $4 "
        f"RETURNING {COLUMNS}",
        name,
        None if name is None else now_ms,
        doc_id,
        seq,
    )
    if row is None:
        raise NotFound(f"no version {seq} of {doc_id!r}")
    return record(row)


async def thin_versions(
    c: Conn, doc_id: str, removed: Sequence[int], updated: Sequence[VersionRecord]
) -> int:
    result = await c.execute(
        "DELETE FROM versions WHERE doc_id = $1 AND seq = ANY($2::bigint[]) AND name IS NULL",
        doc_id,
        list(removed),
    )
    if updated:
        await c.executemany(
            "UPDATE versions SET authors = $1, size = $2, merged = $3 "
            "WHERE doc_id = $4 AND seq = $5",
            [(encode_authors(v.authors), v.size, v.merged, doc_id, v.seq) for v in updated],
        )
    return int(str(result).rsplit(" ", 1)[-1] or 0)
