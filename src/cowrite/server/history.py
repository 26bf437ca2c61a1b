"""The server side of durable version history: pins of named versions and retention passes.

The registry calls ``refresh_pins`` when a room loads and before each snapshot (the named
versions, from the store, so that compaction never folds one away, whichever instance named it)
and ``retain`` after a snapshot (one bounded pass of the retention policy over the versions old
enough for it, ``rooms.history.thin``). Both are best effort: a store error is logged and the
next snapshot tries again; nothing here is on an edit's path.

The REST history endpoints await ``history_ready`` before they read a document's history: the
first read of a loaded document has one long pass to make (decode the delete records the load
left encoded and index them: ~0.2 s of CPU on the automerge-paper trace), which runs in a
worker thread, so that the event loop only installs the result; listing versions starts it
(``start_history_build``), so that the panel's first value read finds it under way or done. A
thin client's reconnect reads history too (the exact changes since its state): the hub awaits
``reconnect_ready`` before the room answers it.
"""

from __future__ import annotations

import asyncio
import logging
from weakref import WeakKeyDictionary

from cowrite import protocol as p
from cowrite.adapters.store import Store, StoreError
from cowrite.engine import Document, IndexBuild, history_build
from cowrite.rooms.history import HistoryPolicy, decode_vector, thin
from cowrite.rooms.room import Room
from cowrite.server.config import Settings

log = logging.getLogger("cowrite.history")

MAX_PINS = 10_000
"""Named versions read per document (the oldest ones: they decide the pin)."""
RETAIN_BATCH = 5_000
"""Versions one retention pass reads at most."""


_BUILDS: WeakKeyDictionary[Document, asyncio.Task[None]] = WeakKeyDictionary()


def start_history_build(doc: Document) -> asyncio.Task[None] | None:
    """Start the document's first-read pass in a worker thread unless it is done or under way
    (then the running one); None when there is nothing to do. On the event loop."""
    task = _BUILDS.get(doc)
    if task is None:
        build = history_build(doc)
        if build is None:
            return None
        task = _BUILDS[doc] = asyncio.get_running_loop().create_task(_build(doc, build))
    return task


async def history_ready(doc: Document) -> None:
    """Return once reading ``doc``'s history needs no long pass on the event loop (see the
    module docstring). Never raises for a failed pass: the read then meets the error itself."""
    task = start_history_build(doc)
    if task is not None:
        await asyncio.shield(task)


async def reconnect_ready(room: Room, msg: p.Join) -> None:
    """Before ``room.join(..., msg)``: when the join is a thin client's reconnect that the room
    answers with the changes since the client's state (``Room._changes_since``, a history diff:
    not within the room's log, or of another epoch), ready the document's delete index off the
    event loop first (``history_ready``), so that the join itself only reads it."""
    if msg.mode != "thin" or msg.version is None or msg.state is None:
        return
    if msg.epoch == room.epoch and room.log.oldest <= msg.version <= room.version:
        return  # caught up from the log: no diff
    await history_ready(room.doc)


async def _build(doc: Document, build: IndexBuild) -> None:
    try:
        await asyncio.to_thread(build.run)
        build.install()
    except Exception:  # e.g. damaged delete records: the read that needs them reports it
        log.exception("the history index could not be built off the event loop")
    finally:
        _BUILDS.pop(doc, None)


def policy_of(settings: Settings) -> HistoryPolicy:
    return HistoryPolicy(
        keep_all_s=settings.history_keep_all_s,
        session_gap_s=settings.history_session_gap_s,
        keep_sessions_s=settings.history_keep_sessions_s,
    )


async def refresh_pins(store: Store, doc_id: str, room: Room) -> None:
    """Give ``room`` the vectors of the document's named versions (``Room.pins``)."""
    try:
        named = await store.list_versions(doc_id, named_only=True, limit=MAX_PINS)
    except (StoreError, ValueError):
        log.exception("named versions could not be read", extra={"doc": doc_id})
        return
    pins = {}
    for v in named:
        try:
            pins[v.seq] = decode_vector(v.vector)
        except ValueError:
            log.error("a named version with a damaged vector", extra={"doc": doc_id})
    room.pins = pins


async def retain(store: Store, settings: Settings, doc_id: str, after: int, now_ms: int) -> int:
    """One retention pass over the versions after seq ``after``; returns the seq to start the
    next pass from (the last version of this one that is old enough, or ``after``)."""
    policy = policy_of(settings)
    horizon = now_ms - int(policy.keep_all_s * 1000)
    try:
        records = await store.list_versions(doc_id, after=after, limit=RETAIN_BATCH)
        old = [v for v in records if v.time_ms < horizon]
        if not old:
            return after
        thinning = thin(old, now_ms, policy)
        if thinning.removed or thinning.updated:
            await store.thin_versions(doc_id, thinning.removed, thinning.updated)
        # the last kept one may merge with later versions at the next pass: start before it
        kept = [v.seq for v in old if v.seq not in set(thinning.removed)]
        return kept[-2] if len(kept) >= 2 else after
    except (StoreError, ValueError):
        log.exception("version retention failed", extra={"doc": doc_id})
        return after
