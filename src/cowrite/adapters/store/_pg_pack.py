"""PostgreSQL: packing a document's version tail outside the append's transaction.

Why apart: the pack is one concept (plan on a reader, encode on a worker thread, swap in with a
short conditional write) and ``postgres.py`` is near its size. The append that makes a tail due
only says so (``_pg_append.Append.due``); packing it inside that transaction held the document's
advisory lock, and so its next batch, for a block's decode and encode (tens of ms).

How it stays exact with appends and with other instances packing the same document: the plan
reads the tail and the last block in one REPEATABLE READ snapshot and keeps a digest of each
(``_TAIL_KEY``: count and md5 of the rows without their names; ``_LAST_KEY``); the swap
(``_APPLY_SQL``, one statement) runs as a writer job, under the document's advisory lock every
cowrite writer takes, and changes nothing unless both digests still match. Appends only add rows
above the plan's last seq, so they never spoil a plan; a name given meanwhile is moved to
``version_names`` by the swap; retention, a restore or another instance's pack spoil it, and the
next append that finds the tail due plans again. A version is never lost or doubled: the rows the
swap deletes are exactly the ones its blocks hold.

Caller's contract: `Packer.due` after an append committed that found the tail due (best effort:
an unpacked tail reads the same, only larger); `Packer.drain` before the writer stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cowrite.adapters.store import _version_blocks as vb
from cowrite.adapters.store._versions import record

log = logging.getLogger("cowrite.adapters.store.postgres")

Conn = Any
Read = Callable[[Callable[[Conn], Awaitable[Any]]], Awaitable[Any]]
Write = Callable[[str, Callable[[Conn], Awaitable[Any]]], Awaitable[Any]]

_UNNAMED = "seq, time_ms, authors, how, size, vector, restored_from, merged"
"""A tail row without its name: what a block keeps of it (a name may change until the swap)."""

_TAIL_KEY = (
    "count(*)::text || ':' || coalesce(md5(string_agg("
    f"row({_UNNAMED})::text, ',' ORDER BY seq)), '')"
)
"""Of ``versions`` rows: changes whenever one of them is added, removed or rewritten."""

_LAST_KEY = "last_seq::text || ':' || n::text || ':' || md5(data)"
"""Of a ``version_blocks`` row."""

_LAST_SQL = (
    f"SELECT last_seq, n, data, {_LAST_KEY} FROM version_blocks WHERE doc_id = $1 "
    "ORDER BY last_seq DESC LIMIT 1"
)

# The swap: $1 document, $2 the plan's last tail seq, $3/$4 the digests it read ($4 NULL: no
# block), $5 the last_seq of the block it tops up (NULL: none), $6..$9 the new blocks. Every part
# is conditional on ``ok``: either all of it happens or none. (A new block never has the
# last_seq of the one it replaces: that one was short of full, so the new one ends later.)
_APPLY_SQL = f"""
WITH ok AS (
    SELECT (SELECT {_TAIL_KEY} FROM versions WHERE doc_id = $1 AND seq <= $2) = $3::text
       AND (SELECT {_LAST_KEY} FROM version_blocks WHERE doc_id = $1
             ORDER BY last_seq DESC LIMIT 1) IS NOT DISTINCT FROM $4::text AS ok
), named AS (
    INSERT INTO version_names (doc_id, seq, name, named_ms)
    SELECT v.doc_id, v.seq, v.name, v.named_ms FROM versions AS v, ok
     WHERE ok.ok AND v.doc_id = $1 AND v.seq <= $2 AND v.name IS NOT NULL
    ON CONFLICT (doc_id, seq) DO UPDATE SET name = excluded.name, named_ms = excluded.named_ms
), tail AS (
    DELETE FROM versions AS v USING ok WHERE ok.ok AND v.doc_id = $1 AND v.seq <= $2
), topped AS (
    DELETE FROM version_blocks AS b USING ok
     WHERE ok.ok AND b.doc_id = $1 AND b.last_seq = $5::bigint
), put AS (
    INSERT INTO version_blocks (doc_id, last_seq, first_seq, n, data)
    SELECT $1, b.last_seq, b.first_seq, b.n, b.data
      FROM unnest($6::bigint[], $7::bigint[], $8::bigint[], $9::bytea[])
           AS b (last_seq, first_seq, n, data), ok
     WHERE ok.ok
)
SELECT ok FROM ok
"""


@dataclass(frozen=True, slots=True)
class PackRead:
    """What a plan read from one snapshot (``read_pack``), before any encoding."""

    upto: int
    """The last tail seq it packs."""
    rows: list[tuple[Any, ...]]
    """The tail rows (``_UNNAMED``), oldest first."""
    tail_key: str
    last: tuple[int, int, bytes, str] | None
    """The last block (last_seq, n, data, ``_LAST_KEY``); None: none."""


@dataclass(frozen=True, slots=True)
class PackPlan:
    """The blocks that replace a tail (and the last block if it was short), valid for
    ``apply_pack`` only while the digests it carries still match."""

    upto: int
    tail_key: str
    last_key: str | None
    topped_up: int | None
    """The last_seq of the block the plan re-encodes (it was short of full); None: none."""
    blocks: list[tuple[int, int, int, bytes]]
    """The new ``version_blocks`` rows: (last_seq, first_seq, n, data)."""


async def read_pack(c: Conn, doc_id: str, block: int) -> PackRead | None:
    """On a pooled connection: the tail and the last block from one snapshot, or None when the
    tail is not due for packing (or the document has none, or does not exist)."""
    async with c.transaction(isolation="repeatable_read", readonly=True):
        rows = await c.fetch(
            f"SELECT {_UNNAMED} FROM versions WHERE doc_id = $1 ORDER BY seq", doc_id
        )
        if not rows or not vb.pack_due(int(rows[0][0]), int(rows[-1][0]), block):
            return None
        upto = int(rows[-1][0])
        key = await c.fetchval(
            f"SELECT {_TAIL_KEY} FROM versions WHERE doc_id = $1 AND seq <= $2", doc_id, upto
        )
        last = await c.fetchrow(_LAST_SQL, doc_id)
    return PackRead(
        upto,
        [tuple(r) for r in rows],
        str(key),
        None if last is None else (int(last[0]), int(last[1]), bytes(last[2]), str(last[3])),
    )


def encode_pack(read: PackRead, block: int) -> PackPlan:
    """The CPU of a pack (decode the last block if short, encode the blocks: tens of ms of Python
    for a nearly full block): run it on a worker thread, where the codec paces the interpreter
    lock. Raises what the codec raises for a damaged block."""
    last = read.last
    topped_up = last is not None and last[1] < block
    tail = [record((*r[:7], None, None, r[7])) for r in read.rows]
    records = (vb.decode(last[2]) if last is not None and topped_up else []) + tail
    blocks = [(b[-1].seq, b[0].seq, len(b), vb.encode(b)) for b in vb.chunks(records, block) if b]
    return PackPlan(
        read.upto,
        read.tail_key,
        None if last is None else last[3],
        last[0] if last is not None and topped_up else None,
        blocks,
    )


async def apply_pack(c: Conn, doc_id: str, plan: PackPlan) -> bool:
    """On the writer, in its transaction (the document's advisory lock held): swap ``plan`` in.
    False, changing nothing, when the tail up to ``plan.upto`` or the last block changed since
    the plan read them."""
    ok = await c.fetchval(
        _APPLY_SQL,
        doc_id,
        plan.upto,
        plan.tail_key,
        plan.last_key,
        plan.topped_up,
        [b[0] for b in plan.blocks],
        [b[1] for b in plan.blocks],
        [b[2] for b in plan.blocks],
        [b[3] for b in plan.blocks],
    )
    return bool(ok)


class Packer:
    """Packs the tails that appends found due, one document at a time per store instance.

    One at a time: documents typed at one pace come due together, and a hundred encodings side
    by side on worker threads would starve the event loop of the interpreter lock (as they did
    in the SQLite store, docs/architecture.md). ``read`` runs a function on a pooled connection,
    ``write`` as a writer job under a document's advisory lock (``PostgresStore._read``/``_write``).
    """

    def __init__(self, read: Read, write: Write, block: int) -> None:
        self._read = read
        self._write = write
        self._block = block
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        """Documents an append found due again while their pack was under way."""
        self._turn = asyncio.Lock()
        self.applied = 0
        """Packs swapped in."""
        self.refused = 0
        """Plans given up because the tail or the last block changed before the swap."""

    def due(self, doc_id: str) -> None:
        """An append committed and found ``doc_id``'s tail due: pack it soon (not awaited)."""
        if doc_id in self._tasks:
            self._again.add(doc_id)
            return
        task = asyncio.get_running_loop().create_task(self._pack(doc_id))
        self._tasks[doc_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(doc_id, None))

    async def drain(self) -> None:
        """Wait for every pack under way (and those they start)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    async def _pack(self, doc_id: str) -> None:
        try:
            while True:
                async with self._turn:
                    self._again.discard(doc_id)
                    await self._pack_once(doc_id)
                if doc_id not in self._again:
                    return
        except Exception:  # the tail stays as it is (readable); the next due append retries
            log.warning("packing the version tail failed", exc_info=True, extra={"doc": doc_id})

    async def _pack_once(self, doc_id: str) -> None:
        block = self._block
        read: PackRead | None = await self._read(lambda c: read_pack(c, doc_id, block))
        if read is None:
            return
        plan = await asyncio.to_thread(encode_pack, read, block)
        if await self._write(doc_id, lambda c: apply_pack(c, doc_id, plan)):
            self.applied += 1
        else:
            self.refused += 1
