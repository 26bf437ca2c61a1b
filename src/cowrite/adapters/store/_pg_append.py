"""PostgreSQL: the appends of one write batch as one statement, refusing known edit keys.

Consecutive ``append_update`` calls of a batch are stored by one statement whatever their number
(``_APPEND_SQL``). Before it, the batch's edit keys are looked up (``_KNOWN_KEYS_SQL``) under the
documents' advisory locks, which every cowrite writer of every instance takes first: an append
whose key is already stored, or carried by an earlier append of the same batch, stores nothing
and fails with `DuplicateEdit` (exactly-once across instances, docs/architecture.md). The
primary key of ``edit_keys`` is the backstop: the statement fails rather than keep a key twice.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from cowrite.adapters.store._version_blocks import BLOCK_VERSIONS, pack_due
from cowrite.adapters.store._versions import row_values
from cowrite.adapters.store.base import DuplicateEdit, EditKey, NotFound, VersionRecord

Conn = Any
Outcome = tuple["Append", Any, BaseException | None]


@dataclass(slots=True)
class Append:
    """One ``append_update`` waiting for the writer; ``future`` gets its seq or its error."""

    doc_id: str
    data: bytes
    keys: tuple[EditKey, ...]
    now_ms: int
    future: asyncio.Future[int]
    version: VersionRecord | None = None
    block: int = BLOCK_VERSIONS
    """Versions per packed block (``_version_blocks``)."""
    due: bool = False
    """Set when the append was stored with a version that made the document's tail due for
    packing: the store packs it after the commit (``_pg_pack.py``), not in this transaction."""


# Every append of one batch in one statement. Per document ($1..$4): id, how many updates, their
# bytes, the latest now_ms; per update ($5..$8): document, 1-based position among that document's
# updates in this batch, data, now_ms; per edit key ($9..$14): document, position of its update,
# client_id, edit_id, now_ms, digest; per version row ($15..$25): document, position of its update,
# then the ``versions`` columns after seq. The UPDATE takes each document's row lock and hands back
# the seq before this batch ("base"); update k of a document gets seq base + k. With it comes the
# oldest seq of the document's version tail before this statement (its CTEs and the final SELECT
# share one snapshot, which does not see the rows inserted here), to tell whether the tail is due.
_APPEND_SQL = """
WITH v AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[])
        AS v (id, n, bytes, now_ms)
), bumped AS (
    UPDATE documents AS d
       SET last_seq = d.last_seq + v.n,
           size_bytes = d.size_bytes + v.bytes,
           updated_ms = GREATEST(d.updated_ms, v.now_ms)
      FROM v
     WHERE d.id = v.id
    RETURNING d.id, d.last_seq - v.n AS base
), stored AS (
    INSERT INTO updates (doc_id, seq, data, created_ms)
    SELECT u.doc, b.base + u.pos, u.data, u.now_ms
      FROM unnest($5::text[], $6::bigint[], $7::bytea[], $8::bigint[])
           AS u (doc, pos, data, now_ms)
      JOIN bumped AS b ON b.id = u.doc
), keyed AS (
    INSERT INTO edit_keys (doc_id, client_id, edit_id, seq, created_ms, digest)
    SELECT k.doc, k.client_id, k.edit_id, b.base + k.pos, k.now_ms, k.digest
      FROM unnest($9::text[], $10::bigint[], $11::text[], $12::text[], $13::bigint[], $14::text[])
           AS k (doc, pos, client_id, edit_id, now_ms, digest)
      JOIN bumped AS b ON b.id = k.doc
), versioned AS (
    INSERT INTO versions (doc_id, seq, time_ms, authors, how, size, vector, restored_from,
                          name, named_ms, merged)
    SELECT r.doc, b.base + r.pos, r.time_ms, r.authors, r.how, r.size, r.vector, r.restored_from,
           r.name, r.named_ms, r.merged
      FROM unnest($15::text[], $16::bigint[], $17::bigint[], $18::text[], $19::text[],
                  $20::bigint[], $21::bytea[], $22::bigint[], $23::text[], $24::bigint[],
                  $25::bigint[])
           AS r (doc, pos, time_ms, authors, how, size, vector, restored_from, name, named_ms,
                 merged)
      JOIN bumped AS b ON b.id = r.doc
)
SELECT b.id, b.base, (SELECT min(seq) FROM versions WHERE doc_id = b.id) FROM bumped AS b
"""

# The edit keys of a batch that are already stored (read under the documents' advisory locks, so
# no other cowrite writer can store one of them before this transaction ends).
_KNOWN_KEYS_SQL = """
SELECT e.doc_id, e.client_id, e.edit_id, e.seq, e.digest
  FROM edit_keys AS e
  JOIN unnest($1::text[], $2::text[], $3::text[]) AS k (doc, client_id, edit_id)
    ON e.doc_id = k.doc AND e.client_id = k.client_id AND e.edit_id = k.edit_id
"""


async def append_run(conn: Conn, run: list[Append]) -> list[Outcome]:
    """Store consecutive appends with one statement; seqs follow the order of ``run``.

    An append carrying an edit key that is already stored (or carried by an earlier append of
    this run) stores nothing and fails with `DuplicateEdit`; the others are stored.
    """
    refused: dict[int, DuplicateEdit] = {}
    earlier: dict[int, Append] = {}  # refused for a key an earlier append of the run carries
    if any(job.keys for job in run):
        wanted = [(job.doc_id, k) for job in run for k in job.keys]
        rows = await conn.fetch(
            _KNOWN_KEYS_SQL,
            [d for d, _ in wanted],
            [k.client_id for _, k in wanted],
            [k.edit_id for _, k in wanted],
        )
        known = {(str(r[0]), str(r[1]), str(r[2])): (int(r[3]), str(r[4])) for r in rows}
        claimed: dict[tuple[str, str, str], Append] = {}
        for job in run:
            for key in job.keys:
                ident = (job.doc_id, key.client_id, key.edit_id)
                if ident in known:
                    seq, digest = known[ident]
                    refused[id(job)] = DuplicateEdit(key, seq, digest)
                    break
                if ident in claimed:  # its seq is known once the statement ran
                    earlier[id(job)] = claimed[ident]
                    refused[id(job)] = DuplicateEdit(key, 0, key.digest)
                    break
            else:
                for key in job.keys:
                    claimed[job.doc_id, key.client_id, key.edit_id] = job
    accepted = [job for job in run if id(job) not in refused]
    outcomes = await _append_accepted(conn, accepted)
    done = {id(job): (job, value, error) for job, value, error in outcomes}
    for i, first in earlier.items():
        dup = refused[i]
        first_seq = done[id(first)][1]
        same = (dup.key.client_id, dup.key.edit_id)
        digest = next(k.digest for k in first.keys if (k.client_id, k.edit_id) == same)
        refused[i] = DuplicateEdit(dup.key, int(first_seq or 0), digest)
    return [done.get(id(job)) or (job, None, refused[id(job)]) for job in run]


async def _append_accepted(conn: Conn, run: list[Append]) -> list[Outcome]:
    if not run:
        return []
    by_doc: dict[str, list[Append]] = {}
    for job in run:
        by_doc.setdefault(job.doc_id, []).append(job)
    ids: list[str] = []
    counts: list[int] = []
    sizes: list[int] = []
    nows: list[int] = []
    u_doc: list[str] = []
    u_pos: list[int] = []
    u_data: list[bytes] = []
    u_now: list[int] = []
    k_doc: list[str] = []
    k_pos: list[int] = []
    k_client: list[str] = []
    k_edit: list[str] = []
    k_now: list[int] = []
    k_digest: list[str] = []
    r_cols: list[list[Any]] = [[] for _ in range(11)]
    for doc_id, jobs in by_doc.items():
        ids.append(doc_id)
        counts.append(len(jobs))
        sizes.append(sum(len(job.data) for job in jobs))
        nows.append(max(job.now_ms for job in jobs))
        for pos, job in enumerate(jobs, 1):
            u_doc.append(doc_id)
            u_pos.append(pos)
            u_data.append(job.data)
            u_now.append(job.now_ms)
            for key in job.keys:
                k_doc.append(doc_id)
                k_pos.append(pos)
                k_client.append(key.client_id)
                k_edit.append(key.edit_id)
                k_now.append(job.now_ms)
                k_digest.append(key.digest)
            v = job.version
            if v is not None:
                row = row_values(doc_id, pos, v)
                for col, value in zip(r_cols, row, strict=True):
                    col.append(value)
    rows = await conn.fetch(
        _APPEND_SQL,
        ids,
        counts,
        sizes,
        nows,
        u_doc,
        u_pos,
        u_data,
        u_now,
        k_doc,
        k_pos,
        k_client,
        k_edit,
        k_now,
        k_digest,
        *r_cols,
    )
    base = {str(doc_id): int(b) for doc_id, b, _ in rows}
    tail_first = {str(doc_id): None if m is None else int(m) for doc_id, _, m in rows}
    outcomes: list[Outcome] = []
    for doc_id, jobs in by_doc.items():
        if doc_id not in base:
            error = NotFound(f"document {doc_id!r} does not exist")
            outcomes += [(job, None, error) for job in jobs]
        else:
            outcomes += [(job, base[doc_id] + pos, None) for pos, job in enumerate(jobs, 1)]
            _note_due(jobs, base[doc_id], tail_first[doc_id])
    return outcomes


def _note_due(jobs: list[Append], base: int, tail_first: int | None) -> None:
    """Set ``due`` on the versioned appends of one document if its tail is now due."""
    versioned = [(base + pos, job) for pos, job in enumerate(jobs, 1) if job.version is not None]
    for job in jobs:
        job.due = False  # (a batch may run twice: retried after a deadlock)
    if not versioned:
        return
    first = versioned[0][0] if tail_first is None else tail_first
    if pack_due(first, versioned[-1][0], jobs[0].block):
        for _, job in versioned:
            job.due = True
