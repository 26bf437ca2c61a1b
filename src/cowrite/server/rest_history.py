"""REST endpoints of the version history: list versions, the value at one, diffs with authors,
naming, restore (mounted by ``rest.routes``; bodies in ``rest_history_bodies.py``).

A *version* is the document right after one stored edit, named by the edit's log sequence
number (``id``); its metadata (time, authors, how, size, name) is in the store
(``Store.list_versions``, written with the edit) and its value is recomputed by the engine from
the history the document keeps, at the version vector stored with it (``rooms/history.py``).
Version 0 is the empty document. Errors: an id never issued is 404 ``unknown_version``; one
retention removed, or whose content was compacted away, is 410 ``history_unavailable``.

A restore applies the difference from the current value to the old one as new edits through
the room, by the requester, recorded as a version ``how: restored`` with ``restored_from``:
connected clients see it live and nothing is rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from bisect import bisect_right
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from starlette.requests import Request
from starlette.responses import Response

from cowrite import protocol as p
from cowrite.adapters.store import NotFound, Store, VersionRecord
from cowrite.engine import (
    ChangeSpan,
    Document,
    EngineError,
    NodeRef,
    VersionVector,
    diff,
    value_at,
    vv_includes,
)
from cowrite.rooms.history import decode_vector
from cowrite.rooms.room import Room
from cowrite.rooms.wire import node_to_wire
from cowrite.server.auth import Identity
from cowrite.server.history import history_ready, start_history_build
from cowrite.server.pipeline import NotDurable
from cowrite.server.rest import _body, _int_param
from cowrite.server.rest_history_bodies import (
    AuthorOut,
    ChangeSpanOut,
    DiffOut,
    NameVersion,
    NodeChange,
    RestoreOut,
    RestoreRequest,
    VersionOut,
    VersionPage,
    VersionValue,
)
from cowrite.server.rest_http import HTTPError
from cowrite.server.rest_http import json_response as _json
from cowrite.server.restore import restore_edits

if TYPE_CHECKING:
    from cowrite.server.app import Cowrite
    from cowrite.server.hub import LoadedRoom

MAX_PAGE = 1000
MAX_AUTHOR_ROWS = 10_000
"""Versions a diff reads to name the authors of its changes (beyond: spans without authors)."""
RESTORE_TIMEOUT_S = 30.0

Handler = Callable[[Request], Any]


class Context(NamedTuple):
    """What the history endpoints use of ``rest.routes`` (its request plumbing)."""

    identify: Callable[[Request], Identity]
    authorized: Callable[[Request, str], str]
    opened: Callable[[str], contextlib.AbstractAsyncContextManager[LoadedRoom]]
    history_read: Callable[[Document], None]


def author_list(authors: tuple[tuple[str, str], ...]) -> list[AuthorOut]:
    return [AuthorOut(i, n) for i, n in authors]


def version_out(v: VersionRecord, available: bool) -> VersionOut:
    """A version as the API shows it (both document kinds); ``available``: its value can still
    be read (the history the document keeps reaches back to it)."""
    return VersionOut(
        v.seq,
        v.time_ms,
        author_list(v.authors),
        v.how,
        v.size,
        v.name,
        v.named_ms,
        v.restored_from,
        v.merged,
        available,
    )


def _out(v: VersionRecord, doc: Document | None) -> VersionOut:
    """``doc``: the document's CRDT (None for a document of another kind; Yjs documents'
    history has its own handlers, ``rest_yjs_history.py``)."""
    try:
        available = doc is not None and vv_includes(decode_vector(v.vector), doc.base)
    except ValueError:
        available = False
    return version_out(v, available)


async def version_record(
    store: Store, lr: LoadedRoom, doc_id: str, seq: int
) -> VersionRecord | None:
    """Version ``seq`` of the loaded document (None: version 0, the empty document). Raises
    HTTPError 410 for one retention merged away (or from before version history), 404 for one
    never issued."""
    if seq == 0:
        return None
    found = await store.get_version(doc_id, seq)
    if found is not None:
        return found
    if seq <= max(lr.seqs.upto, lr.room.version):
        raise HTTPError(
            410,
            "history_unavailable",
            f"version {seq} is no longer kept (retention merged it into a later version) "
            "or predates version history",
        )
    raise HTTPError(404, "unknown_version", f"no version {seq} of {doc_id!r}")


async def newest_before(
    store: Store, doc_id: str, before: int, latest: int, limit: int, named: bool
) -> tuple[list[VersionRecord], int | None, int | None]:
    """The page of versions ``GET /versions?before=`` answers (both document kinds): the
    ``limit`` newest with an id below ``before`` (oldest first), the id to pass as ``after`` for
    the versions after them (None: none), and as ``before`` for older ones (None: none).

    The store lists oldest first within an id range, so the page is read from windows of ids
    below ``before`` (``latest``: the document's last version id), each read whole: a window
    grows four-fold past a sparse stretch (retention, named versions) and shrinks when it holds
    more than a few pages, so no read returns more than ``4 * (limit + 1)`` rows."""
    cap = 4 * (limit + 1)
    high = min(before, latest + 1)  # versions: low < id < high
    span = limit + 2
    out: list[VersionRecord] = []
    while high > 1 and len(out) <= limit:
        low = max(0, high - span)
        rows = await store.list_versions(
            doc_id, after=low, before=high, limit=cap, named_only=named
        )
        if len(rows) == cap and high - low > 2:
            span = max(2, (high - low) // 4)  # too dense to read whole: a narrower window
            continue
        out[:0] = rows
        high = low + 1
        if 2 * len(rows) < limit + 1:
            span *= 4
    page = out[-limit:]
    older = page[0].seq if len(out) > limit else None
    after = None
    if page and before <= latest:
        later = await store.list_versions(doc_id, after=page[-1].seq, limit=1, named_only=named)
        after = page[-1].seq if later else None
    return page, after, older


class PageQuery(NamedTuple):
    """What ``GET /versions`` asks for: ``limit``, ``after`` or ``before`` (which wins),
    ``named``."""

    limit: int
    after: int
    before: int | None
    named: bool


def page_query(request: Request) -> PageQuery:
    """The query of ``GET /versions`` (400 for a bad one, before the document is opened)."""
    limit = _int_param(request, "limit", 100, 1, MAX_PAGE)
    after = _int_param(request, "after", 0, 0, 2**63 - 1)
    before = _int_param(request, "before", None, 1, 2**63 - 1)
    assert limit is not None and after is not None
    return PageQuery(limit, after, before, request.query_params.get("named", "") in {"1", "true"})


async def version_rows(
    store: Store, lr: LoadedRoom, doc_id: str, q: PageQuery
) -> tuple[list[VersionRecord], int | None, int | None]:
    """The page ``GET /versions`` answers with (both document kinds): (versions, next, older)."""
    if q.before is not None:
        latest = max(lr.seqs.upto, lr.room.version)
        return await newest_before(store, doc_id, q.before, latest, q.limit, q.named)
    rows = await store.list_versions(doc_id, after=q.after, limit=q.limit + 1, named_only=q.named)
    return rows[: q.limit], rows[q.limit - 1].seq if len(rows) > q.limit else None, None


def version_id(request: Request) -> int:
    """The ``{id}`` of the path; 400 unless an integer 0..2**63-1."""
    raw: str = request.path_params["id"]
    if not raw.isdigit() or len(raw) > 19 or int(raw) > 2**63 - 1:
        raise HTTPError(400, "bad_request", f"a version id is an integer >= 0, not {raw!r}")
    return int(raw)


def version_to_name(request: Request, body: NameVersion, latest: int) -> int:
    """The version a name request is about: PATCH's ``{id}``, else the body's ``version``, else
    ``latest``; 404 for version 0 (the empty document has no name)."""
    if request.method == "PATCH":
        seq = version_id(request)
    elif body.version is not None:
        seq = body.version
    else:
        seq = latest
    if seq == 0:
        raise HTTPError(404, "unknown_version", "version 0 (the empty document) has no name")
    return seq


class _Authors:
    """Which version made an op: the first (by id) whose vector includes it."""

    def __init__(self, rows: list[VersionRecord]) -> None:
        self.rows = rows
        self.counts: dict[int, list[int]] = {}
        self.index: dict[int, list[int]] = {}
        for i, row in enumerate(rows):
            try:
                vector = decode_vector(row.vector)
            except ValueError:
                continue
            for r, n in vector.items():
                counts = self.counts.setdefault(r, [])
                if not counts or n > counts[-1]:
                    counts.append(n)
                    self.index.setdefault(r, []).append(i)

    def split(self, replica: int, seq: int, count: int) -> list[tuple[int, VersionRecord | None]]:
        """``count`` consecutive ops from ``(replica, seq)`` as (how many, version) pieces."""
        counts = self.counts.get(replica, [])
        out: list[tuple[int, VersionRecord | None]] = []
        while count > 0:
            k = bisect_right(counts, seq)
            if k == len(counts):
                out.append((count, None))
                break
            take = min(count, counts[k] - seq)
            out.append((take, self.rows[self.index[replica][k]]))
            seq += take
            count -= take
        return out


def _spans(doc: Document, spans: list[ChangeSpan], text: bool, authors: _Authors) -> list[Any]:
    out: list[ChangeSpanOut] = []
    for s in spans:
        if s.kind == "retain":
            out.append(ChangeSpanOut("retain", s.count))
            continue
        pieces = (
            authors.split(s.replica, s.seq, s.count)
            if s.kind == "insert"
            else [(s.count, authors.split(s.replica, s.seq, 1)[0][1])]
        )
        at = 0
        for n, row in pieces:
            content = s.content[at : at + n]
            at += n
            values = [
                {"$node": node_to_wire(doc, v.id)} if type(v) is NodeRef else v for v in content
            ]
            out.append(
                ChangeSpanOut(
                    "insert" if s.kind == "insert" else "delete",
                    n,
                    text="".join(content) if text else None,
                    values=None if text else values,
                    by=None if row is None else row.seq,
                    authors=None if row is None else author_list(row.authors),
                )
            )
    return out


def routes(state: Cowrite, ctx: Context) -> list[tuple[str, str, Handler]]:
    """The history routes, relative to ``/api`` (path, method, handler)."""
    store = state.store
    hub = state.hub

    async def record(lr: LoadedRoom, doc_id: str, seq: int) -> VersionRecord | None:
        return await version_record(store, lr, doc_id, seq)

    def vector(doc: Document, seq: int, found: VersionRecord | None) -> VersionVector:
        if found is None:
            vv: VersionVector = {}
        else:
            try:
                vv = decode_vector(found.vector)
            except ValueError:
                raise HTTPError(410, "history_unavailable", f"version {seq} is damaged") from None
        if not vv_includes(vv, doc.base):
            raise HTTPError(
                410,
                "history_unavailable",
                f"version {seq} predates the history the document keeps (compacted away)",
            )
        if not vv_includes(doc.version, vv):
            raise HTTPError(503, "unavailable", f"version {seq} has not reached this server yet")
        return vv

    async def list_versions(request: Request) -> Response:
        doc_id = ctx.authorized(request, "read")
        query = page_query(request)
        async with ctx.opened(doc_id) as lr:
            rows, next_, older = await version_rows(store, lr, doc_id, query)
            doc = lr.room.doc if isinstance(lr.room, Room) else None
            page = [_out(v, doc) for v in rows]
            if doc is not None:  # reads of versions come next: ready their index meanwhile
                start_history_build(doc)
        gap = state.settings.history_session_gap_s
        return _json(VersionPage(page, next_, gap, older))

    async def get_version(request: Request) -> Response:
        doc_id = ctx.authorized(request, "read")
        seq = version_id(request)
        async with ctx.opened(doc_id) as lr:
            doc = lr.crdt.doc
            found = await record(lr, doc_id, seq)
            vv = vector(doc, seq, found)
            ctx.history_read(doc)
            await history_ready(doc)
            try:
                value = value_at(doc, vv)
            except EngineError as exc:
                raise HTTPError(410, "history_unavailable", str(exc)) from None
            return _json(VersionValue(seq, None if found is None else _out(found, doc), value))

    async def get_diff(request: Request) -> Response:
        doc_id = ctx.authorized(request, "read")
        if "from" not in request.query_params:
            raise HTTPError(400, "bad_request", "from (a version id) is required")
        start = _int_param(request, "from", None, 0, 2**63 - 1)
        end = _int_param(request, "to", None, 0, 2**63 - 1)
        assert start is not None
        async with ctx.opened(doc_id) as lr:
            doc = lr.crdt.doc
            latest = end is None
            if end is None:  # the latest version
                end = lr.crdt.version if hub.cluster is None else lr.seqs.upto
            # one read for the authors and both ends (each a block to decode when packed)
            listed = await store.list_versions(
                doc_id, after=max(0, start - 1), before=end + 1, limit=MAX_AUTHOR_ROWS + 1
            )
            rows = [v for v in listed if v.seq > start][:MAX_AUTHOR_ROWS]
            found = {v.seq: v for v in (listed[:1] + listed[-1:])}
            at_start = found[start] if start in found else await record(lr, doc_id, start)
            old = vector(doc, start, at_start)
            if latest:
                new = doc.version
            else:
                at_end = found[end] if end in found else await record(lr, doc_id, end)
                new = vector(doc, end, at_end)
            ctx.history_read(doc)
            await history_ready(doc)
            try:
                changes = diff(doc, old, new, authored=True)
            except EngineError as exc:
                raise HTTPError(410, "history_unavailable", str(exc)) from None
            authors = _Authors(rows)
            out = [
                NodeChange(
                    node=node_to_wire(doc, c.node),
                    kind=c.kind.name.lower(),
                    path=list(c.path),
                    delta=c.delta,
                    before=c.before,
                    after=c.after,
                    spans=None
                    if c.spans is None
                    else _spans(doc, c.spans, c.kind.name == "TEXT", authors),
                )
                for c in changes
            ]
        return _json(DiffOut(start, end, out))

    async def name_version(request: Request) -> Response:
        """POST names the latest version (or ``version``); PATCH renames version ``id``."""
        doc_id = ctx.authorized(request, "write")
        body = await _body(request, NameVersion)
        if request.method == "POST" and body.name is None:
            raise HTTPError(400, "bad_request", "name a version with a non-null name")
        async with ctx.opened(doc_id) as lr:
            room = lr.crdt
            seq = version_to_name(
                request, body, room.version if hub.cluster is None else lr.seqs.upto
            )
            found = await record(lr, doc_id, seq)
            assert found is not None
            vv = vector(room.doc, seq, found)
            if body.name is not None:
                room.pins[seq] = vv  # before the await: no snapshot compacts it meanwhile
            try:
                named = await store.name_version(doc_id, seq, body.name, now_ms=hub.now_ms())
            except NotFound:
                room.pins.pop(seq, None)
                raise HTTPError(404, "unknown_version", f"no version {seq} of {doc_id!r}") from None
            if body.name is None:
                room.pins.pop(seq, None)
            return _json(_out(named, room.doc))

    async def restore(request: Request) -> Response:
        """Restore a version as new edits, live for every member; answers once durable."""
        doc_id = ctx.authorized(request, "write")
        body = await _body(request, RestoreRequest)
        async with ctx.opened(doc_id) as lr:
            room = lr.crdt
            target = vector(room.doc, body.version, await record(lr, doc_id, body.version))
            ctx.history_read(room.doc)
            await history_ready(room.doc)
            try:
                unchanged = not diff(room.doc, room.doc.version, target)
            except EngineError as exc:
                raise HTTPError(410, "history_unavailable", str(exc)) from None
            if unchanged:
                return _json(RestoreOut(body.version, room.version, 0))
            t0 = time.monotonic()
            who = ctx.identify(request)
            author = p.User(id=who.user_id, name=who.name, color=who.color)
            outcomes = restore_edits(room, target, hub.now_ms(), author, body.version)
            if not outcomes:
                return _json(RestoreOut(body.version, room.version, 0))
            durable = [hub.submit_durable(lr, outcome, t0) for outcome in outcomes]
            hub.edits_applied += len(outcomes)
            state.metrics.edits.labels("server").inc(len(outcomes))
            try:
                async with asyncio.timeout(RESTORE_TIMEOUT_S):
                    for done in durable:  # shielded: the edits stay submitted if we stop waiting
                        await asyncio.shield(done)
            except TimeoutError:
                raise HTTPError(
                    503, "unavailable", "the restore is applied but not durable yet"
                ) from None
            except NotDurable as exc:
                raise HTTPError(
                    503, "unavailable", f"the restore was not stored: {exc.error.message}"
                ) from None
            return _json(RestoreOut(body.version, outcomes[-1].version, len(outcomes)))

    crdt_routes: list[tuple[str, str, Handler]] = [
        ("/documents/{doc}/versions", "GET", list_versions),
        ("/documents/{doc}/versions", "POST", name_version),
        ("/documents/{doc}/versions/{id}", "GET", get_version),
        ("/documents/{doc}/versions/{id}", "PATCH", name_version),
        ("/documents/{doc}/diff", "GET", get_diff),
        ("/documents/{doc}/restore", "POST", restore),
    ]
    # Yjs documents: the same routes, their own handlers (rest_yjs_history.py)
    from cowrite.server.rest_yjs_history import by_kind, yjs_history_routes

    return by_kind(state, crdt_routes, yjs_history_routes(state, ctx))
