"""The server side of Yjs version history: the snapshot that keeps it, and reading it back.

A Yjs document's snapshot is a container (``rooms/yjs_history.py``): its state plus the update
log that old values are replayed from. ``snapshot`` builds it when the registry writes a
snapshot: the history of the stored snapshot, plus the log entries this snapshot folds away
(read from the store, so whichever instance wrote them), folded by the retention window and
byte budget, with checkpoints of the named versions (from the store, plus the ones being named
here: ``YjsRoom.pins``). A version named after the store was read (here or on another
instance) is caught where the snapshot is stored: the store refuses a snapshot that gives up a
version named by then (``drops``), and naming re-reads the stored history once the name is
stored (``rest_yjs_history.py``). ``load_history`` reads the whole history back for REST (the stored
snapshot's history and the log after it). The folding runs in a worker thread (it replays the
folded updates): nothing here holds the event loop for long.
"""

from __future__ import annotations

import asyncio
import logging

from cowrite.adapters.store import Store, StoreError
from cowrite.rooms.yjs_history import YjsHistory, fold, unwrap, wrap
from cowrite.rooms.yjs_room import YjsRoom
from cowrite.server.config import Settings

log = logging.getLogger("cowrite.history")

MAX_NAMED = 10_000
"""Named versions read per snapshot (the oldest: the ones a fold may pass)."""
MAX_TIMES = 5_000
"""Version rows read per snapshot to date the entries (later ones stay unfolded)."""


async def load_history(store: Store, doc_id: str) -> YjsHistory | None:
    """The document's whole replayable history (None: no such document). Raises StoreError,
    ValueError for a damaged container."""
    stored = await store.load(doc_id)
    if stored is None:
        return None
    if stored.snapshot:
        history = unwrap(stored.snapshot, stored.snapshot_seq)[1]
    else:
        history = YjsHistory(stored.snapshot_seq)
    history.extend(stored.updates)
    return history


async def snapshot(
    store: Store,
    settings: Settings,
    doc_id: str,
    room: YjsRoom,
    state: bytes,
    upto: int,
    now_ms: int,
) -> tuple[bytes, YjsHistory, list[int]]:
    """The snapshot to store for ``room`` at log seq ``upto`` (``state``: its document, encoded
    before any await), the history in it (``room.history_read`` it once stored) and the
    versions whose value it gives up (``Store.save_snapshot``'s ``drops``: the store refuses
    the snapshot if one of them was named meanwhile, here or on another instance). Raises
    StoreError or ValueError (the registry logs it and tries at the next snapshot)."""
    stored = await store.load(doc_id)
    if stored is None:
        raise StoreError(f"{doc_id!r} no longer exists")
    if stored.snapshot:
        history = unwrap(stored.snapshot, stored.snapshot_seq)[1]
    else:
        history = YjsHistory(stored.snapshot_seq)
    history.extend((s, u) for s, u in stored.updates if s <= upto)
    named = {v.seq for v in await store.list_versions(doc_id, named_only=True, limit=MAX_NAMED)}
    named |= room.pins
    rows = await store.list_versions(doc_id, after=history.base_seq, limit=MAX_TIMES)
    times = {v.seq: v.time_ms for v in rows}
    # an entry without a row (thinned by retention, or never a version) is old; past the rows
    # read, entries are left undated (kept)
    dated = rows[-1].seq if len(rows) == MAX_TIMES else upto
    for seq, _ in history.entries:
        if seq <= dated:
            times.setdefault(seq, 0)
    folded = await asyncio.to_thread(
        fold,
        history,
        named=named,
        times=times,
        now_ms=now_ms,
        keep_ms=int(settings.history_keep_all_s * 1000),
        max_bytes=settings.history_yjs_kept_bytes,
    )
    before = {history.base_seq, *history.checkpoints, *(seq for seq, _ in history.entries)}
    drops = sorted(s for s in before if history.available(s) and not folded.available(s))
    return wrap(state, folded), folded, drops
