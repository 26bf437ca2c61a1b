"""The version-history endpoints for Yjs documents (same paths and bodies as the CRDT kind's,
``rest_history.py``, which hands a request here when the document is of kind ``yjs``: ``by_kind``).

- list: the stored version rows (``available``: the value can still be replayed);
- a version's value: every root as JSON, by its inferred type (``rooms/yjs_values.py``; the
  types come back in ``types``), replayed from the stored log (``rooms/yjs_history.py``);
- diff: text-level insertions and deletions of each text and XML rendering (and array items,
  map keys), each with the version that made it and its authors (``rooms/yjs_diff.py``);
- name / rename: as for the CRDT kind; a named version keeps a checkpoint when its updates fold
  (naming is safe against a snapshot folding the version meanwhile, on any instance: a snapshot
  that folds a version named since it read the names is not stored, and a name that comes after
  such a snapshot was stored is taken back, 410);
- restore: one Yjs update computed with pycrdt (``rooms/yjs_restore.py``), applied like a
  client's through the room's pipeline: stored before the answer, broadcast to every Yjs client,
  recorded as a version ``how: restored`` by the requester.

Errors as for the CRDT kind: 404 ``unknown_version`` (never issued), 410
``history_unavailable`` (folded away, and not named), 400 ``bad_request``, 429 ``rate_limited``
(a server-wide budget of history bytes replayed), 503 when a restore is not durable in time.
Replays run in a worker thread: the event loop only reads the store.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from cowrite.adapters.store import NotFound, StoreError, VersionRecord
from cowrite.rooms.yjs_diff import RootChange, Span, diff
from cowrite.rooms.yjs_history import YjsHistory
from cowrite.rooms.yjs_restore import restore_update
from cowrite.rooms.yjs_room import YjsRoom
from cowrite.rooms.yjs_values import RootType, infer_types, value_of
from cowrite.server.hooks import Author
from cowrite.server.pipeline import NotDurable
from cowrite.server.ratelimit import TokenBucket
from cowrite.server.rest import _body, _int_param
from cowrite.server.rest_history import (
    MAX_AUTHOR_ROWS,
    RESTORE_TIMEOUT_S,
    author_list,
    page_query,
    version_id,
    version_out,
    version_record,
    version_rows,
    version_to_name,
)
from cowrite.server.rest_history_bodies import (
    ChangeSpanOut,
    DiffOut,
    NameVersion,
    NodeChange,
    RestoreOut,
    RestoreRequest,
    VersionPage,
    VersionValue,
)
from cowrite.server.rest_http import Handler, HTTPError
from cowrite.server.rest_http import json_response as _json
from cowrite.server.yjs_history import load_history
from cowrite.yjs import YjsProtocolError

if TYPE_CHECKING:
    from cowrite.server.app import Cowrite
    from cowrite.server.hub import LoadedRoom
    from cowrite.server.rest_history import Context

READ_BYTES_PER_SECOND = 64 * 1024 * 1024
READ_BYTES_BURST = 256 * 1024 * 1024


def _room(lr: LoadedRoom) -> YjsRoom:
    room = lr.room
    if not isinstance(room, YjsRoom):  # changed kind between the look-up and the load
        raise HTTPError(409, "wrong_kind", f"{room.doc_id!r} is not a Yjs document")
    return room


class _Owners:
    """The version row that lists each stored update: the first row at or after its seq (a
    row retention merged a session into stands for the whole session)."""

    def __init__(self, rows: list[VersionRecord]) -> None:
        self.rows = rows
        self.seqs = [r.seq for r in rows]

    def of(self, seq: int | None) -> VersionRecord | None:
        if seq is None:
            return None
        k = bisect_left(self.seqs, seq)
        return self.rows[k] if k < len(self.rows) else None


def _span_out(span: Span, kind: RootType, owners: _Owners) -> ChangeSpanOut:
    if span.op == "retain":
        return ChangeSpanOut("retain", span.count)
    row = owners.of(span.by)
    text = kind in ("text", "xml")
    return ChangeSpanOut(
        "insert" if span.op == "insert" else "delete",
        span.count,
        text="".join(span.tokens) if text else None,
        values=None if text else [_json_value(t) for t in span.tokens],
        by=None if row is None else row.seq,
        authors=None if row is None else author_list(row.authors),
    )


def _json_value(token: str) -> Any:
    return msgspec.json.decode(token)


def _change_out(c: RootChange, owners: _Owners) -> NodeChange:
    if c.key is not None:
        row = owners.of(c.by)
        spans = None
        if row is not None:  # who set the key last, as one span
            spans = [
                ChangeSpanOut(
                    "insert",
                    1,
                    values=[c.after],
                    by=row.seq,
                    authors=author_list(row.authors),
                )
            ]
        return NodeChange(f"map:{c.root}", "map", [c.root, c.key], [], c.before, c.after, spans)
    return NodeChange(
        f"{c.kind}:{c.root}",
        c.kind,
        [c.root],
        c.delta,
        c.before,
        c.after,
        None if c.spans is None else [_span_out(s, c.kind, owners) for s in c.spans],
    )


def _folded(seq: int) -> HTTPError:
    return HTTPError(
        410, "history_unavailable", f"version {seq} is older than the history the document keeps"
    )


def yjs_history_routes(state: Cowrite, ctx: Context) -> list[tuple[str, str, Handler]]:
    """The Yjs kind's history routes, relative to ``/api`` (``by_kind`` mounts them)."""
    store = state.store
    hub = state.hub
    budget = TokenBucket(READ_BYTES_PER_SECOND, READ_BYTES_BURST)

    async def record(lr: LoadedRoom, doc_id: str, seq: int) -> VersionRecord | None:
        return await version_record(store, lr, doc_id, seq)

    async def history(doc_id: str) -> YjsHistory:
        try:
            found = await load_history(store, doc_id)
        except ValueError as exc:
            raise HTTPError(410, "history_unavailable", f"the history is damaged: {exc}") from None
        except StoreError as exc:
            raise HTTPError(503, "unavailable", f"the store cannot be read: {exc}") from None
        if found is None:
            raise HTTPError(404, "unknown_document", f"no document {doc_id!r}")
        if not budget.take(max(1, found.size_bytes)):
            raise HTTPError(
                429, "rate_limited", "too many history reads: retry later", {"Retry-After": "1"}
            )
        return found

    def state_at(h: YjsHistory, seq: int) -> bytes:
        found = h.state_at(seq)
        if found is None:
            raise HTTPError(
                410,
                "history_unavailable",
                f"version {seq} is older than the history the document keeps "
                "(its updates were folded away, and it is not named)",
            )
        return found

    async def list_versions(request: Request) -> Response:
        doc_id = ctx.authorized(request, "read")
        query = page_query(request)
        async with ctx.opened(doc_id) as lr:
            room = _room(lr)
            rows, next_, older = await version_rows(store, lr, doc_id, query)
            page = [version_out(v, room.available(v.seq)) for v in rows]
        return _json(VersionPage(page, next_, older=older))

    async def get_version(request: Request) -> Response:
        doc_id = ctx.authorized(request, "read")
        seq = version_id(request)
        async with ctx.opened(doc_id) as lr:
            room = _room(lr)
            found = await record(lr, doc_id, seq)
            current = room.shared.doc.encode_snapshot()
            h = await history(doc_id)
            old = state_at(h, seq)
        hints = await asyncio.to_thread(infer_types, current)
        value, types = await asyncio.to_thread(value_of, old, hints)
        out = None if found is None else version_out(found, True)
        return _json(VersionValue(seq, out, value, types=dict(types)))

    async def get_diff(request: Request) -> Response:
        doc_id = ctx.authorized(request, "read")
        if "from" not in request.query_params:
            raise HTTPError(400, "bad_request", "from (a version id) is required")
        start = _int_param(request, "from", None, 0, 2**63 - 1)
        end = _int_param(request, "to", None, 0, 2**63 - 1)
        assert start is not None
        async with ctx.opened(doc_id) as lr:
            room = _room(lr)
            await record(lr, doc_id, start)
            if end is not None:
                await record(lr, doc_id, end)
            current = room.shared.doc.encode_snapshot()
            h = await history(doc_id)
        if end is None:
            end = h.last_seq
        old, new = state_at(h, start), state_at(h, end)
        rows = await store.list_versions(doc_id, after=start, limit=MAX_AUTHOR_ROWS)

        def compute() -> list[RootChange]:
            types = infer_types(old, infer_types(current))
            types.update(infer_types(new, infer_types(current)))
            return diff(h, start, end, types)

        try:
            changes = await asyncio.to_thread(compute)
        except ValueError as exc:
            raise HTTPError(410, "history_unavailable", str(exc)) from None
        owners = _Owners(rows)
        return _json(DiffOut(start, end, [_change_out(c, owners) for c in changes]))

    async def kept_or_unnamed(doc_id: str, seq: int) -> None:
        """Version ``seq`` was just named: every snapshot stored from now on keeps it (the
        store refuses one that folds it away, ``Store.save_snapshot``'s ``drops``), but one
        stored before, maybe by another instance whose fold had not seen the name, may have
        folded it already: then the name is taken back, HTTPError 410."""
        try:
            stored = await load_history(store, doc_id)
        except ValueError:  # a damaged history keeps nothing
            stored = None
        if stored is not None and stored.available(seq):
            return
        await store.name_version(doc_id, seq, None, now_ms=hub.now_ms())
        raise _folded(seq)

    async def name_version(request: Request) -> Response:
        """POST names the latest version (or ``version``); PATCH renames version ``id``."""
        doc_id = ctx.authorized(request, "write")
        body = await _body(request, NameVersion)
        if request.method == "POST" and body.name is None:
            raise HTTPError(400, "bad_request", "name a version with a non-null name")
        async with ctx.opened(doc_id) as lr:
            room = _room(lr)
            seq = version_to_name(
                request, body, room.version if hub.cluster is None else lr.seqs.upto
            )
            found = await record(lr, doc_id, seq)
            naming = body.name is not None
            if naming and not room.available(seq):
                raise _folded(seq)
            if naming:
                room.pins.add(seq)  # before the await: no snapshot here folds it meanwhile
            try:
                named = await store.name_version(doc_id, seq, body.name, now_ms=hub.now_ms())
                if naming and (found is None or found.name is None):
                    await kept_or_unnamed(doc_id, seq)
            except NotFound:
                room.pins.discard(seq)
                raise HTTPError(404, "unknown_version", f"no version {seq} of {doc_id!r}") from None
            except HTTPError:
                room.pins.discard(seq)
                raise
            if not naming:
                room.pins.discard(seq)
            return _json(version_out(named, room.available(seq)))

    async def restore(request: Request) -> Response:
        """Restore a version as one Yjs update, live for every client; answers once durable."""
        doc_id = ctx.authorized(request, "write")
        body = await _body(request, RestoreRequest)
        who = ctx.identify(request)
        async with ctx.opened(doc_id) as lr:
            room = _room(lr)
            await record(lr, doc_id, body.version)
            h = await history(doc_id)
            target = state_at(h, body.version)
            current = room.shared.doc.encode_snapshot()

            def compute() -> bytes | None:
                types = infer_types(target, infer_types(current))
                types.update(infer_types(current, types))
                return restore_update(current, target, types)

            update = await asyncio.to_thread(compute)
            if update is None:
                return _json(RestoreOut(body.version, room.version, 0))
            t0 = time.monotonic()
            try:
                effective = room.shared.doc.apply_client_update(update)
            except YjsProtocolError as exc:
                raise HTTPError(
                    503, "unavailable", f"the restore did not apply: {exc.reason}"
                ) from None
            if effective is None:
                return _json(RestoreOut(body.version, room.version, 0))
            outcome = room.persisted(
                effective,
                (who.user_id, who.name),
                hub.now_ms(),
                how="restored",
                restored_from=body.version,
            )
            outcome.frames.extend(room.update_frames(effective, None))
            hub.edits_applied += 1
            state.metrics.edits.labels("server").inc()
            done = hub.submit_durable(lr, outcome, t0, author=Author(who.user_id, who.name))
            try:
                async with asyncio.timeout(RESTORE_TIMEOUT_S):
                    await asyncio.shield(done)  # shielded: the edit stays submitted
            except TimeoutError:
                raise HTTPError(
                    503, "unavailable", "the restore is applied but not durable yet"
                ) from None
            except NotDurable as exc:
                raise HTTPError(
                    503, "unavailable", f"the restore was not stored: {exc.error.message}"
                ) from None
            return _json(RestoreOut(body.version, outcome.version, 1))

    return [
        ("/documents/{doc}/versions", "GET", list_versions),
        ("/documents/{doc}/versions", "POST", name_version),
        ("/documents/{doc}/versions/{id}", "GET", get_version),
        ("/documents/{doc}/versions/{id}", "PATCH", name_version),
        ("/documents/{doc}/diff", "GET", get_diff),
        ("/documents/{doc}/restore", "POST", restore),
    ]


def by_kind(
    state: Cowrite,
    crdt: list[tuple[str, str, Handler]],
    yjs: list[tuple[str, str, Handler]],
) -> list[tuple[str, str, Handler]]:
    """One handler per route that hands the request to the Yjs kind's handler when the
    document is a Yjs document (one metadata read), else to the CRDT kind's."""
    store = state.store
    by_route = {(path, method): h for path, method, h in yjs}

    def either(crdt_handler: Handler, yjs_handler: Handler) -> Handler:
        async def handler(request: Request) -> Any:
            try:
                info = await store.get_document(request.path_params["doc"])
            except (ValueError, StoreError):  # the CRDT handler answers (400, 503)
                info = None
            chosen = yjs_handler if info is not None and info.kind == "yjs" else crdt_handler
            return await chosen(request)

        handler.__name__ = getattr(crdt_handler, "__name__", "history")
        handler.__doc__ = crdt_handler.__doc__
        return handler

    out: list[tuple[str, str, Handler]] = []
    for path, method, h in crdt:
        other: Callable[[Request], Any] | None = by_route.get((path, method))
        out.append((path, method, h if other is None else either(h, other)))
    return out
