"""PostgreSQL: the statements of the version history (``versions``, ``version_blocks``,
``version_names``; migrations 4 and 5).

Why apart: one concept (``base.VersionRecord``), kept out of ``postgres.py`` and
``_pg_queries.py`` for their size; tail rows are decoded by the codec the SQLite store uses
(``_versions.record``) and blocks by ``_version_blocks``, with the same packing rules (see
``_versions.py``). Caller's contract as in ``_pg_queries.py``: writes are jobs on the writer
connection inside its batch's transaction, reads run on a pooled connection. Tail rows are
inserted by the append statement (``_pg_append.py``); a due tail is packed after that commit, in
transactions of its own (``_pg_pack.py``); ``pack`` here, inside the caller's transaction, is
migration 5's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from cowrite.adapters.store import _version_blocks as vb
from cowrite.adapters.store._pg_queries import _check_text
from cowrite.adapters.store._versions import COLUMNS, encode_authors, record
from cowrite.adapters.store.base import MAX_INT64, NotFound, VersionRecord

Conn = Any

_NAME_SQL = (
    "INSERT INTO version_names (doc_id, seq, name, named_ms) VALUES ($1, $2, $3, $4) "
    "ON CONFLICT (doc_id, seq) DO UPDATE SET name = excluded.name, named_ms = excluded.named_ms"
)


def check_version_text(v: VersionRecord) -> VersionRecord:
    """Refuse what PostgreSQL text cannot hold (NUL) before it reaches the writer."""
    for i, n in v.authors:
        _check_text("version author", i)
        _check_text("version author", n)
    if v.name is not None:
        _check_text("version name", v.name)
    return v


# ------------------------------------------------------------------------------------ writes


async def pack(c: Conn, doc_id: str, block: int) -> int:
    """Move the document's tail into blocks (topping up its last block), in the caller's
    transaction; returns how many (migration 5, ``pack_backlog``)."""
    rows = await c.fetch(f"SELECT {COLUMNS} FROM versions WHERE doc_id = $1 ORDER BY seq", doc_id)
    tail = [record(r) for r in rows]
    if not tail:
        return 0
    named = [(doc_id, v.seq, v.name, v.named_ms) for v in tail if v.name is not None]
    if named:
        await c.executemany(_NAME_SQL, named)
    await c.execute("DELETE FROM versions WHERE doc_id = $1", doc_id)
    records: list[VersionRecord] = []
    last = await c.fetchrow(
        "SELECT last_seq, n, data FROM version_blocks WHERE doc_id = $1 "
        "ORDER BY last_seq DESC LIMIT 1",
        doc_id,
    )
    if last is not None and int(last[1]) < block:
        # (the codec's tens of ms of Python on a worker thread: the event loop runs on)
        records = await asyncio.to_thread(vb.decode, bytes(last[2]))
        await c.execute(
            "DELETE FROM version_blocks WHERE doc_id = $1 AND last_seq = $2", doc_id, last[0]
        )
    records += tail
    await _insert_blocks(c, doc_id, vb.chunks(records, block))
    return len(tail)


async def _insert_blocks(c: Conn, doc_id: str, blocks: Sequence[Sequence[VersionRecord]]) -> None:
    rows = await asyncio.to_thread(_block_rows, doc_id, blocks)
    if rows:
        await c.executemany(
            "INSERT INTO version_blocks (doc_id, last_seq, first_seq, n, data) "
            "VALUES ($1, $2, $3, $4, $5)",
            rows,
        )


def _block_rows(
    doc_id: str, blocks: Sequence[Sequence[VersionRecord]]
) -> list[tuple[str, int, int, int, bytes]]:
    return [(doc_id, b[-1].seq, b[0].seq, len(b), vb.encode(b)) for b in blocks if b]


async def pack_backlog(c: Conn, block: int) -> None:
    """Migration 5: pack every document's existing ``versions`` rows (written before blocks)."""
    for row in await c.fetch("SELECT DISTINCT doc_id FROM versions"):
        await pack(c, str(row[0]), block)


async def name_version(
    c: Conn, doc_id: str, seq: int, name: str | None, now_ms: int
) -> VersionRecord:
    named_ms = None if name is None else now_ms
    row = await c.fetchrow(
        f"UPDATE versions SET name = $1, named_ms = $2 WHERE doc_id = $3 AND seq = $4 "
        f"RETURNING {COLUMNS}",
        name,
        named_ms,
        doc_id,
        seq,
    )
    if row is not None:
        return record(row)
    found = await _packed(c, doc_id, seq)
    if found is None:
        raise NotFound(f"no version {seq} of {doc_id!r}")
    if name is None:
        await c.execute("DELETE FROM version_names WHERE doc_id = $1 AND seq = $2", doc_id, seq)
        return found
    await c.execute(_NAME_SQL, doc_id, seq, name, named_ms)
    return vb.named(found, {seq: (name, now_ms)})


async def thin_versions(
    c: Conn, doc_id: str, removed: Sequence[int], updated: Sequence[VersionRecord]
) -> int:
    result = await c.execute(
        "DELETE FROM versions WHERE doc_id = $1 AND seq = ANY($2::bigint[]) AND name IS NULL",
        doc_id,
        list(removed),
    )
    gone = int(str(result).rsplit(" ", 1)[-1] or 0)
    if updated:
        await c.executemany(
            "UPDATE versions SET authors = $1, size = $2, merged = $3 "
            "WHERE doc_id = $4 AND seq = $5",
            [(encode_authors(v.authors), v.size, v.merged, doc_id, v.seq) for v in updated],
        )
    blocks = await c.fetch(
        "SELECT first_seq, last_seq FROM version_blocks WHERE doc_id = $1 ORDER BY last_seq",
        doc_id,
    )
    ends = [int(b[1]) for b in blocks]
    touched = vb.blocks_holding(blocks, [*removed, *(v.seq for v in updated)])
    drop, put = set(removed), {v.seq: v for v in updated}
    for k in sorted(touched):
        first, last = int(blocks[k][0]), ends[k]
        data = await c.fetchval(
            "DELETE FROM version_blocks WHERE doc_id = $1 AND last_seq = $2 RETURNING data",
            doc_id,
            last,
        )
        names = {
            int(r[0])
            for r in await c.fetch(
                "SELECT seq FROM version_names WHERE doc_id = $1 AND seq BETWEEN $2 AND $3",
                doc_id,
                first,
                last,
            )
        }
        kept, n = vb.thin_block(vb.decode(bytes(data)), drop, put, names)
        gone += n
        await _insert_blocks(c, doc_id, [kept])
    return gone


# ------------------------------------------------------------------------------------- reads


async def _names(c: Conn, doc_id: str, low: int, high: int) -> dict[int, tuple[str, int]]:
    rows = await c.fetch(
        "SELECT seq, name, named_ms FROM version_names WHERE doc_id = $1 AND seq BETWEEN $2 AND $3",
        doc_id,
        low,
        high,
    )
    return {int(s): (str(n), int(t)) for s, n, t in rows}


async def _packed(c: Conn, doc_id: str, seq: int) -> VersionRecord | None:
    row = await c.fetchrow(
        "SELECT first_seq, data FROM version_blocks WHERE doc_id = $1 AND last_seq >= $2 "
        "ORDER BY last_seq LIMIT 1",
        doc_id,
        seq,
    )
    if row is None or int(row[0]) > seq:
        return None
    found = vb.decode(bytes(row[1]), seq - 1, seq + 1)
    return found[0] if found else None


async def get_version(c: Conn, doc_id: str, seq: int) -> VersionRecord | None:
    row = await c.fetchrow(
        f"SELECT {COLUMNS} FROM versions WHERE doc_id = $1 AND seq = $2", doc_id, seq
    )
    if row is not None:
        return record(row)
    found = await _packed(c, doc_id, seq)
    return None if found is None else vb.named(found, await _names(c, doc_id, seq, seq))


async def list_versions(
    c: Conn, doc_id: str, after: int, before: int | None, limit: int, named_only: bool
) -> list[VersionRecord]:
    high = MAX_INT64 if before is None else before
    async with c.transaction(isolation="repeatable_read", readonly=True):
        if named_only:
            out = await _named_packed(c, doc_id, after, high, limit)
        else:
            out = await _packed_range(c, doc_id, after, high, limit)
        if len(out) < limit:
            named = " AND name IS NOT NULL" if named_only else ""
            rows = await c.fetch(
                f"SELECT {COLUMNS} FROM versions WHERE doc_id = $1 AND seq > $2 AND seq < $3"
                f"{named} ORDER BY seq LIMIT $4",
                doc_id,
                after,
                high,
                min(limit - len(out), MAX_INT64),
            )
            out += [record(r) for r in rows]
    return out


async def _packed_range(
    c: Conn, doc_id: str, after: int, high: int, limit: int
) -> list[VersionRecord]:
    out: list[VersionRecord] = []
    async for row in c.cursor(
        "SELECT data FROM version_blocks WHERE doc_id = $1 AND last_seq > $2 AND first_seq < $3 "
        "ORDER BY last_seq",
        doc_id,
        after,
        high,
        prefetch=2,
    ):
        out += vb.decode(bytes(row[0]), after, high)
        if len(out) >= limit:
            break
    del out[limit:]
    if out:
        names = await _names(c, doc_id, out[0].seq, out[-1].seq)
        out = [vb.named(v, names) for v in out]
    return out


async def _named_packed(
    c: Conn, doc_id: str, after: int, high: int, limit: int
) -> list[VersionRecord]:
    rows = await c.fetch(
        "SELECT seq, name, named_ms FROM version_names WHERE doc_id = $1 AND seq > $2 "
        "AND seq < $3 ORDER BY seq LIMIT $4",
        doc_id,
        after,
        high,
        limit,
    )
    names = {int(s): (str(n), int(t)) for s, n, t in rows}
    out: list[VersionRecord] = []
    cached: tuple[int, int, dict[int, VersionRecord]] | None = None
    for seq in names:
        if cached is None or not cached[0] <= seq <= cached[1]:
            row = await c.fetchrow(
                "SELECT first_seq, last_seq, data FROM version_blocks WHERE doc_id = $1 "
                "AND last_seq >= $2 ORDER BY last_seq LIMIT 1",
                doc_id,
                seq,
            )
            if row is None:
                continue
            cached = (int(row[0]), int(row[1]), {v.seq: v for v in vb.decode(bytes(row[2]))})
        if seq in cached[2]:
            out.append(vb.named(cached[2][seq], names))
    return out
