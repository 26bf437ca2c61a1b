"""The version history in the SQL stores: the row codec both share and the SQLite statements.

Why apart: the version history (``base.VersionRecord``) is one concept, and its statements
would push ``_sqlite_queries.py`` and ``sqlite.py`` past their size. Where versions live
(migration 5): the newest ones of a document are rows of ``versions`` (the *tail*, at most
``_version_blocks.TAIL_VERSIONS``); once the tail is that long it is packed into
``version_blocks`` (up to ``block`` versions a row, ``_version_blocks.py``), filling the last
block first. A tail row keeps its name; a packed version's name is a ``version_names`` row (so
naming does not rewrite a block). Every tail seq is above every packed one.

Caller's contract as in ``_sqlite_queries.py``: writes run on the writer thread inside the
batch's transaction (``_insert_version`` right after the log entry it describes), reads on a
reader (a read decodes the blocks it needs: one for a lookup, one or two for a page).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from cowrite.adapters.store import _version_blocks as vb
from cowrite.adapters.store.base import MAX_INT64, NotFound, VersionRecord

_json_encode = msgspec.json.Encoder().encode

COLUMNS = "seq, time_ms, authors, how, size, vector, restored_from, name, named_ms, merged"


def encode_authors(authors: Sequence[tuple[str, str]]) -> str:
    """``[[id, name], ...]`` as compact JSON (msgspec: one of these is written per edit)."""
    return _json_encode(authors).decode()


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


def row_values(doc_id: str, seq: int, v: VersionRecord) -> tuple[Any, ...]:
    """The ``versions`` columns of ``v`` (``doc_id`` then ``COLUMNS``)."""
    return (
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
    )


# ------------------------------------------------------------------------------------ writes

_NAME_SQL = (
    "INSERT INTO version_names (doc_id, seq, name, named_ms) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (doc_id, seq) DO UPDATE SET name = excluded.name, named_ms = excluded.named_ms"
)


_INSERT_VERSION = (
    f"INSERT INTO versions (doc_id, {COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "RETURNING (SELECT min(seq) FROM versions WHERE doc_id = ?)"
)


def _insert_version(
    c: sqlite3.Connection, doc_id: str, seq: int, v: VersionRecord, block: int, pack: bool = True
) -> bool:
    """Insert the row of version ``seq``; pack the tail if it is long enough and ``pack``.
    True: the tail is due for packing and was not packed (``pack`` False: the caller packs it
    later, off the writer, with ``plan_pack`` and ``apply_pack``)."""
    # the tail's oldest seq comes back with the insert (one statement, not two: each is a trip
    # through the GIL for the writer thread)
    first = c.execute(_INSERT_VERSION, (*row_values(doc_id, seq, v), doc_id)).fetchone()[0]
    if not vb.pack_due(first, seq, block):
        return False
    if not pack:
        return True
    _pack(c, doc_id, block)
    return False


@dataclass(frozen=True, slots=True)
class PackPlan:
    """A document's tail packed into blocks, computed on a reader from one committed state:
    valid for ``apply_pack`` only while the rows and the last block it read are unchanged."""

    upto: int
    """The last tail seq it packs (every tail row up to it)."""
    tail: list[tuple[Any, ...]]
    """Those rows as read (``_UNNAMED_SQL``: what a block keeps), compared as they come."""
    last: tuple[int, int, bytes] | None
    """The document's last block as read (last_seq, n, data), None: none."""
    topped_up: bool
    """``last`` is re-encoded into ``blocks`` (it was not full)."""
    blocks: list[tuple[int, int, int, bytes]]
    """The new ``version_blocks`` rows: (last_seq, first_seq, n, data)."""


def plan_pack(c: sqlite3.Connection, doc_id: str, block: int) -> PackPlan | None:
    """Read the tail and the last block and encode the blocks that replace them (the CPU of a
    pack: tens of ms for a 2,048-version block), on a reader connection; None when the tail is
    not due for packing."""
    c.execute("BEGIN")  # one read transaction: tail and last block from the same commit
    try:
        rows = c.execute(_UNNAMED_SQL + " ORDER BY seq", (doc_id,)).fetchall()
        if not rows or not vb.pack_due(int(rows[0][0]), int(rows[-1][0]), block):
            return None
        row = c.execute(
            "SELECT last_seq, n, data FROM version_blocks WHERE doc_id = ? "
            "ORDER BY last_seq DESC LIMIT 1",
            (doc_id,),
        ).fetchone()
    finally:
        c.execute("COMMIT")
    tail = [record((*r[:7], None, None, r[7])) for r in rows]
    last = None if row is None else (int(row[0]), int(row[1]), bytes(row[2]))
    topped_up = last is not None and last[1] < block
    records = (vb.decode(last[2]) if last is not None and topped_up else []) + tail
    blocks = [(b[-1].seq, b[0].seq, len(b), vb.encode(b)) for b in vb.chunks(records, block) if b]
    return PackPlan(tail[-1].seq, rows, last, topped_up, blocks)


def apply_pack(c: sqlite3.Connection, doc_id: str, plan: PackPlan) -> bool:
    """On the writer: replace the tail rows and the last block by ``plan``'s blocks, moving the
    rows' names to ``version_names`` (a row may have been named since the plan read it). False,
    changing nothing, when the rows or the last block changed since (retention, a restore):
    the next append that finds the tail due plans again."""
    rows = c.execute(_UNNAMED_SQL + " AND seq <= ? ORDER BY seq", (doc_id, plan.upto)).fetchall()
    if rows != plan.tail:  # (rows as tuples: no decoding on the writer)
        return False
    row = c.execute(
        "SELECT last_seq, n, data FROM version_blocks WHERE doc_id = ? "
        "ORDER BY last_seq DESC LIMIT 1",
        (doc_id,),
    ).fetchone()
    if (None if row is None else (int(row[0]), int(row[1]), bytes(row[2]))) != plan.last:
        return False
    c.execute(  # names given to tail rows, since the plan read them too
        "INSERT INTO version_names (doc_id, seq, name, named_ms) "
        "SELECT doc_id, seq, name, named_ms FROM versions "
        "WHERE doc_id = ? AND seq <= ? AND name IS NOT NULL "
        "ON CONFLICT (doc_id, seq) DO UPDATE SET name = excluded.name, "
        "named_ms = excluded.named_ms",
        (doc_id, plan.upto),
    )
    c.execute("DELETE FROM versions WHERE doc_id = ? AND seq <= ?", (doc_id, plan.upto))
    if plan.topped_up and plan.last is not None:
        c.execute(
            "DELETE FROM version_blocks WHERE doc_id = ? AND last_seq = ?", (doc_id, plan.last[0])
        )
    c.executemany(
        "INSERT INTO version_blocks (doc_id, last_seq, first_seq, n, data) VALUES (?, ?, ?, ?, ?)",
        [(doc_id, *b) for b in plan.blocks],
    )
    return True


_UNNAMED_SQL = (
    "SELECT seq, time_ms, authors, how, size, vector, restored_from, merged "
    "FROM versions WHERE doc_id = ?"
)
"""A document's tail rows without their names (``PackPlan.tail``)."""


def _pack(c: sqlite3.Connection, doc_id: str, block: int) -> int:
    """Move the document's tail into blocks (topping up its last block); returns how many."""
    tail = [
        record(r)
        for r in c.execute(
            f"SELECT {COLUMNS} FROM versions WHERE doc_id = ? ORDER BY seq", (doc_id,)
        )
    ]
    if not tail:
        return 0
    c.executemany(
        _NAME_SQL,
        [(doc_id, v.seq, v.name, v.named_ms) for v in tail if v.name is not None],
    )
    c.execute("DELETE FROM versions WHERE doc_id = ?", (doc_id,))
    records: list[VersionRecord] = []
    last = c.execute(
        "SELECT last_seq, n, data FROM version_blocks WHERE doc_id = ? "
        "ORDER BY last_seq DESC LIMIT 1",
        (doc_id,),
    ).fetchone()
    if last is not None and int(last[1]) < block:
        records = vb.decode(bytes(last[2]))
        c.execute("DELETE FROM version_blocks WHERE doc_id = ? AND last_seq = ?", (doc_id, last[0]))
    records += tail
    _insert_blocks(c, doc_id, vb.chunks(records, block))
    return len(tail)


def _insert_blocks(
    c: sqlite3.Connection, doc_id: str, blocks: Sequence[Sequence[VersionRecord]]
) -> None:
    c.executemany(
        "INSERT INTO version_blocks (doc_id, last_seq, first_seq, n, data) VALUES (?, ?, ?, ?, ?)",
        [(doc_id, b[-1].seq, b[0].seq, len(b), vb.encode(b)) for b in blocks if b],
    )


def pack_backlog(c: sqlite3.Connection, block: int) -> None:
    """Migration 5: pack every document's existing ``versions`` rows (written before blocks)."""
    docs = [r[0] for r in c.execute("SELECT DISTINCT doc_id FROM versions").fetchall()]
    for doc_id in docs:
        _pack(c, doc_id, block)


def _name_version(
    c: sqlite3.Connection, doc_id: str, seq: int, name: str | None, now_ms: int
) -> VersionRecord:
    named_ms = None if name is None else now_ms
    row = c.execute(
        f"UPDATE versions SET name = ?, named_ms = ? WHERE doc_id = ? AND seq = ? "
        f"RETURNING {COLUMNS}",
        (name, named_ms, doc_id, seq),
    ).fetchone()
    if row is not None:
        return record(row)
    found = _packed(c, doc_id, seq)
    if found is None:
        raise NotFound(f"no version {seq} of {doc_id!r}")
    if name is None:
        c.execute("DELETE FROM version_names WHERE doc_id = ? AND seq = ?", (doc_id, seq))
        return found
    c.execute(
        _NAME_SQL,
        (doc_id, seq, name, named_ms),
    )
    return vb.named(found, {seq: (name, now_ms)})


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
    blocks = c.execute(
        "SELECT first_seq, last_seq FROM version_blocks WHERE doc_id = ? ORDER BY last_seq",
        (doc_id,),
    ).fetchall()
    ends = [int(b[1]) for b in blocks]
    touched = vb.blocks_holding(blocks, [*removed, *(v.seq for v in updated)])
    drop, put = set(removed), {v.seq: v for v in updated}
    for k in sorted(touched):
        first, last = int(blocks[k][0]), ends[k]
        data = c.execute(
            "SELECT data FROM version_blocks WHERE doc_id = ? AND last_seq = ?", (doc_id, last)
        ).fetchone()[0]
        names = {
            int(r[0])
            for r in c.execute(
                "SELECT seq FROM version_names WHERE doc_id = ? AND seq BETWEEN ? AND ?",
                (doc_id, first, last),
            )
        }
        kept, n = vb.thin_block(vb.decode(bytes(data)), drop, put, names)
        gone += n
        c.execute("DELETE FROM version_blocks WHERE doc_id = ? AND last_seq = ?", (doc_id, last))
        _insert_blocks(c, doc_id, [kept])
    return gone


# ------------------------------------------------------------------------------------- reads


def _names(c: sqlite3.Connection, doc_id: str, low: int, high: int) -> dict[int, tuple[str, int]]:
    rows = c.execute(
        "SELECT seq, name, named_ms FROM version_names WHERE doc_id = ? AND seq BETWEEN ? AND ?",
        (doc_id, low, high),
    ).fetchall()
    return {int(s): (str(n), int(t)) for s, n, t in rows}


def _packed(c: sqlite3.Connection, doc_id: str, seq: int) -> VersionRecord | None:
    """Packed version ``seq`` without its name, or None."""
    row = c.execute(
        "SELECT first_seq, data FROM version_blocks WHERE doc_id = ? AND last_seq >= ? "
        "ORDER BY last_seq LIMIT 1",
        (doc_id, seq),
    ).fetchone()
    if row is None or int(row[0]) > seq:
        return None
    found = vb.decode(bytes(row[1]), seq - 1, seq + 1)
    return found[0] if found else None


def _get_version(c: sqlite3.Connection, doc_id: str, seq: int) -> VersionRecord | None:
    row = c.execute(
        f"SELECT {COLUMNS} FROM versions WHERE doc_id = ? AND seq = ?", (doc_id, seq)
    ).fetchone()
    if row is not None:
        return record(row)
    found = _packed(c, doc_id, seq)
    return None if found is None else vb.named(found, _names(c, doc_id, seq, seq))


def _named_between(c: sqlite3.Connection, doc_id: str, low: int, high: int) -> set[int]:
    """The seqs of the named versions with ``low <= seq <= high`` (in the caller's
    transaction: tail rows and packed versions' names)."""
    rows = c.execute(
        "SELECT seq FROM versions WHERE doc_id = ? AND seq BETWEEN ? AND ? AND name IS NOT NULL "
        "UNION ALL SELECT seq FROM version_names WHERE doc_id = ? AND seq BETWEEN ? AND ?",
        (doc_id, low, high, doc_id, low, high),
    )
    return {int(seq) for (seq,) in rows}


def _list_versions(
    c: sqlite3.Connection,
    doc_id: str,
    after: int,
    before: int | None,
    limit: int,
    named_only: bool,
) -> list[VersionRecord]:
    high = MAX_INT64 if before is None else before
    c.execute("BEGIN")  # blocks and tail from one commit (a pack moves versions between them)
    try:
        out = (_named_packed if named_only else _packed_range)(c, doc_id, after, high, limit)
        if len(out) < limit:
            named = " AND name IS NOT NULL" if named_only else ""
            rows = c.execute(
                f"SELECT {COLUMNS} FROM versions WHERE doc_id = ? AND seq > ? AND seq < ?"
                f"{named} ORDER BY seq LIMIT ?",
                (doc_id, after, high, limit - len(out)),
            ).fetchall()
            out += [record(r) for r in rows]
    finally:
        c.execute("COMMIT")
    return out


def _packed_range(
    c: sqlite3.Connection, doc_id: str, after: int, high: int, limit: int
) -> list[VersionRecord]:
    out: list[VersionRecord] = []
    rows = c.execute(
        "SELECT data FROM version_blocks WHERE doc_id = ? AND last_seq > ? AND first_seq < ? "
        "ORDER BY last_seq",
        (doc_id, after, high),
    )
    for (data,) in rows:
        out += vb.decode(bytes(data), after, high)
        if len(out) >= limit:
            break
    del out[limit:]
    if out:
        names = _names(c, doc_id, out[0].seq, out[-1].seq)
        out = [vb.named(v, names) for v in out]
    return out


def _named_packed(
    c: sqlite3.Connection, doc_id: str, after: int, high: int, limit: int
) -> list[VersionRecord]:
    rows = c.execute(
        "SELECT seq, name, named_ms FROM version_names WHERE doc_id = ? AND seq > ? AND seq < ? "
        "ORDER BY seq LIMIT ?",
        (doc_id, after, high, limit),
    ).fetchall()
    names = {int(s): (str(n), int(t)) for s, n, t in rows}
    out: list[VersionRecord] = []
    cached: tuple[int, int, dict[int, VersionRecord]] | None = None
    for seq in names:
        if cached is None or not cached[0] <= seq <= cached[1]:
            row = c.execute(
                "SELECT first_seq, last_seq, data FROM version_blocks WHERE doc_id = ? "
                "AND last_seq >= ? ORDER BY last_seq LIMIT 1",
                (doc_id, seq),
            ).fetchone()
            if row is None:
                continue
            cached = (int(row[0]), int(row[1]), {v.seq: v for v in vb.decode(bytes(row[2]))})
        if seq in cached[2]:
            out.append(vb.named(cached[2][seq], names))
    return out
