"""``POST /api/documents/{doc}/edits``: edit a document over REST (needs the ``write`` right);
and ``POST /api/admin/permissions`` (``permissions.py``).

The body is one edit, or ``{"edits": [edit, ...]}`` applied together as one server edit
(``documents.py``: durable, then broadcast live, before the answer). An edit names exactly one
node (``text``, ``map`` or ``counter``, a named root) and what to do to it::

    {"text": "body", "ops": [{"retain": 5}, {"insert": "!"}, {"delete": 2}]}
    {"text": "body", "at": 0, "insert": "Hello "}        # "delete": n (before the insert) too
    {"text": "body", "append": "\\nP.S."}
    {"text": "body", "replace": "the whole new text"}
    {"map": "meta", "set": {"title": "Notes"}, "unset": ["draft"]}
    {"counter": "views", "add": 1}

Positions count Unicode code points of the text as it is when the request arrives; edits made
concurrently by others are merged like any client's. Answers ``{"version": n, "ops": k}``
(``version`` null when nothing changed). Errors: 400 ``bad_request`` (the body: which field of
which edit), 422 ``invalid_edit`` (positions past the end...), 404, 409 ``wrong_kind`` (a counter
of a Yjs document), 503 (not durable in time). Yjs documents take text edits (``Y.Text`` roots;
positions still in code points) and map edits (``Y.Map`` roots), as one Yjs update.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from cowrite import protocol as p
from cowrite.engine import InvalidOperation, ot
from cowrite.rooms.room import RoomError
from cowrite.server.auth import Identity, token_key
from cowrite.server.documents import ServerDocument
from cowrite.server.hooks import Author, AuthRequest
from cowrite.server.pipeline import NotDurable
from cowrite.server.rest import _body, _doc_id, _endpoint
from cowrite.server.rest_http import HTTPError
from cowrite.server.rest_http import json_response as _json
from cowrite.server.yjs_edits import YjsEdit, apply_yjs_edits

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from cowrite.server.app import Cowrite

MAX_EDITS = 1_000


class TextComponent(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """One step of a text edit: exactly one of ``retain``, ``insert``, ``delete``."""

    retain: int | None = None
    insert: str | None = None
    delete: int | None = None


class DocumentEdit(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """An edit of one named root: ``text`` (with ``ops``, ``at`` + ``insert``/``delete``,
    ``append`` or ``replace``), ``map`` (``set``, ``unset``) or ``counter`` (``add``)."""

    text: str | None = None
    ops: list[TextComponent] | None = None
    at: int | None = None
    insert: str | None = None
    delete: int | None = None
    append: str | None = None
    replace: str | None = None
    map: str | None = None
    set: dict[str, Any] | None = None
    unset: list[str] | None = None
    counter: str | None = None
    add: int | None = None


class EditsRequest(msgspec.Struct, forbid_unknown_fields=True):
    edits: list[DocumentEdit]


class PermissionsRequest(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True):
    """At most ``docs`` rights (document id or ``"*"`` -> rights) for ``user`` (or for the
    sessions of one ``token``, a leaked one) from now on, on every instance; ``docs: null``
    lifts the restriction. Exactly one of ``user`` and ``token``."""

    docs: dict[str, list[str]] | None
    user: str | None = None
    token: str | None = None


class EditsOut(msgspec.Struct):
    version: int | None
    """The document version of the edit (null: the request changed nothing)."""
    ops: int
    """Wire operations it was applied as."""


_TEXT_FIELDS = ("ops", "at", "insert", "delete", "append", "replace")
_MAP_FIELDS = ("set", "unset")
_COUNTER_FIELDS = ("add",)


def parse(body: Any) -> list[DocumentEdit]:
    """The edits of a decoded JSON body; HTTPError 400 naming what is wrong where."""
    if not isinstance(body, dict):
        raise HTTPError(400, "bad_request", "the body must be a JSON object (an edit, or edits)")
    try:
        if "edits" in body:
            edits = msgspec.convert(body, EditsRequest).edits
            where = "edits[{}]"
        else:
            edits = [msgspec.convert(body, DocumentEdit)]
            where = "edit"
    except msgspec.ValidationError as exc:
        raise HTTPError(400, "bad_request", str(exc)) from None
    if not edits:
        raise HTTPError(400, "bad_request", "edits: at least one edit")
    if len(edits) > MAX_EDITS:
        raise HTTPError(400, "bad_request", f"edits: at most {MAX_EDITS}")
    for i, edit in enumerate(edits):
        _check(edit, where.format(i))
    return edits


def _bad(message: str) -> HTTPError:
    return HTTPError(400, "bad_request", message)


def _check(edit: DocumentEdit, at: str) -> None:
    targets = [k for k in ("text", "map", "counter") if getattr(edit, k) is not None]
    if len(targets) != 1:
        raise _bad(f"{at}: name exactly one node: text, map or counter")
    target = targets[0]
    name = getattr(edit, target)
    if not 0 < len(name) <= 100:
        raise _bad(f"{at}.{target}: a node name has 1-100 characters")
    allowed = {"text": _TEXT_FIELDS, "map": _MAP_FIELDS, "counter": _COUNTER_FIELDS}[target]
    given = [
        f for f in (*_TEXT_FIELDS, *_MAP_FIELDS, *_COUNTER_FIELDS) if getattr(edit, f) is not None
    ]
    for f in given:
        if f not in allowed:
            raise _bad(f"{at}.{f}: not an edit of a {target} (use {', '.join(allowed)})")
    if not given:
        raise _bad(f"{at}: nothing to do (give {', '.join(allowed)})")
    if target == "text":
        forms = [f for f in ("ops", "at", "append", "replace") if getattr(edit, f) is not None]
        loose = edit.at is None and (edit.insert is not None or edit.delete is not None)
        if loose:
            raise _bad(f"{at}: insert/delete need at (the position), or use ops")
        if len(forms) != 1:
            raise _bad(f"{at}: give one of ops, at (+ insert/delete), append, replace")
        if edit.at is not None:
            if edit.at < 0:
                raise _bad(f"{at}.at: a position is >= 0")
            if edit.insert is None and edit.delete is None:
                raise _bad(f"{at}: at needs insert and/or delete")
            if edit.delete is not None and edit.delete < 0:
                raise _bad(f"{at}.delete: a count is >= 0")
        for j, c in enumerate(edit.ops or ()):
            set_ = [k for k in ("retain", "insert", "delete") if getattr(c, k) is not None]
            if len(set_) != 1:
                raise _bad(f"{at}.ops[{j}]: exactly one of retain, insert, delete")
            n = getattr(c, set_[0])
            if isinstance(n, int) and n <= 0:
                raise _bad(f"{at}.ops[{j}].{set_[0]}: a positive count")


def _text_op(edit: DocumentEdit, current: str) -> ot.Op:
    if edit.ops is not None:
        out: ot.Op = []
        for c in edit.ops:
            if c.retain is not None:
                out.append(c.retain)
            elif c.delete is not None:
                out.append(-c.delete)
            elif c.insert:
                out.append(c.insert)
        return out
    if edit.at is not None:
        return ot.from_splice(edit.at, edit.delete or 0, edit.insert or "")
    if edit.append is not None:
        return ot.from_splice(len(current), 0, edit.append)
    assert edit.replace is not None
    return ot.from_splice(0, len(current), edit.replace)


def apply(doc: ServerDocument, edits: list[DocumentEdit], where: str) -> None:
    """Apply ``edits`` through the document's handles; InvalidOperation names the edit."""
    for i, edit in enumerate(edits):
        at = where.format(i)
        try:
            if edit.text is not None:
                text = doc.text(edit.text)
                text.apply(_text_op(edit, str(text)))
            elif edit.map is not None:
                m = doc.map(edit.map)
                for key, value in (edit.set or {}).items():
                    m.set(key, value)
                for key in edit.unset or ():
                    m.delete(key)
            elif edit.counter is not None and edit.add is not None:
                doc.counter(edit.counter).add(edit.add)
        except InvalidOperation as exc:
            raise InvalidOperation(f"{at}: {exc}") from None


async def yjs_edits(
    state: Cowrite, doc_id: str, edits: list[DocumentEdit], where: str, author: Author
) -> EditsOut:
    """Text and map edits of a Yjs document (``yjs_edits.py``); counters are CRDT-only."""
    out: list[YjsEdit] = []
    for i, edit in enumerate(edits):
        at = where.format(i)
        if edit.counter is not None:
            raise HTTPError(409, "wrong_kind", f"{at}: Yjs documents have no counters")
        if edit.text is not None:
            out.append(YjsEdit(at, text=edit.text, op=functools.partial(_text_op, edit)))
        else:
            out.append(YjsEdit(at, map=edit.map, set=edit.set or {}, unset=edit.unset or []))
    try:
        version = await apply_yjs_edits(state.hub, doc_id, out, author)
    except InvalidOperation as exc:
        raise HTTPError(422, "invalid_edit", str(exc)) from None
    except TimeoutError:
        raise HTTPError(503, "unavailable", "the edit is applied but not durable yet") from None
    except NotDurable as exc:
        raise HTTPError(503, "unavailable", f"not stored: {exc.error.message}") from None
    return EditsOut(version, len(out))


PUBLIC = frozenset({"status", "openapi_json"})


def hooked(
    state: Cowrite, handler: Callable[[Request], Awaitable[Response]]
) -> Callable[[Request], Awaitable[Response]]:
    """With an ``on_authenticate`` hook of the application's, REST requests are authenticated
    by the hooks too (the bearer token is the credential; ``document`` is the path's): the
    identity they return is what ``identify`` answers. Refused: 401 with the hook's message."""
    hooks = state.hooks
    if not hooks.custom_auth or handler.__name__ in PUBLIC:
        return handler

    async def authenticated(request: Request) -> Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        credential = token.strip() if scheme.lower() == "bearer" else None
        doc = request.path_params.get("doc")
        ask = AuthRequest(credential or None, doc, "rest", "rest")
        try:
            identity = replace(await hooks.authenticate(ask), verified=True)
            request.scope["identity"] = state.hub.permissions.limit(identity)
        except Exception as exc:  # AuthError, Refused, or whatever a hook raised
            raise HTTPError(401, "unauthorized", str(exc) or type(exc).__name__) from None
        return await handler(request)

    authenticated.__name__ = handler.__name__
    authenticated.__doc__ = handler.__doc__
    return authenticated


def routes(state: Cowrite, identify: Callable[[Request], Identity]) -> list[Route]:
    @functools.partial(hooked, state)
    async def post_edits(request: Request) -> Response:
        """Apply edits (text index edits, map keys, counter adds) as one durable server edit."""
        identity = identify(request)
        doc_id = _doc_id(request)
        if "write" not in identity.rights(doc_id):
            raise HTTPError(403, "forbidden", f"the token grants no 'write' right on {doc_id!r}")
        raw: dict[str, Any] = await _body(request, dict)
        edits = parse(raw)
        where = "edits[{}]" if "edits" in raw else "edit"
        info = await state.store.get_document(doc_id)
        if info is None:
            raise HTTPError(404, "unknown_document", f"no document {doc_id!r}")
        name = identity.name or identity.user_id
        if info.kind == "yjs":
            return _json(
                await yjs_edits(state, doc_id, edits, where, Author(identity.user_id, name))
            )
        if info.kind != "crdt":
            raise HTTPError(409, "wrong_kind", f"{doc_id!r} is a {info.kind} document")
        try:
            async with state.document(doc_id, user=identity.user_id, name=name) as doc:
                apply(doc, edits, where)
                ops = len(doc.ops)
        except InvalidOperation as exc:
            raise HTTPError(422, "invalid_edit", str(exc)) from None
        except RoomError as exc:
            if exc.code is p.ErrorCode.UNKNOWN_DOCUMENT:
                raise HTTPError(404, "unknown_document", exc.message) from None
            raise
        except TimeoutError:
            raise HTTPError(503, "unavailable", "the edit is applied but not durable yet") from None
        except NotDurable as exc:
            raise HTTPError(503, "unavailable", f"not stored: {exc.error.message}") from None
        return _json(EditsOut(doc.version, ops))

    @functools.partial(hooked, state)
    async def restrict_user(request: Request) -> Response:
        """Downgrade or revoke a user's rights on every instance (the ``admin`` right on "*")."""
        if "admin" not in identify(request).rights("*"):
            raise HTTPError(403, "forbidden", "the token grants no 'admin' right on '*'")
        body = await _body(request, PermissionsRequest)
        if (body.user is None) == (body.token is None):
            raise HTTPError(400, "bad_request", "give exactly one of 'user' and 'token'")
        try:
            if body.token is not None:
                await state.restrict_token(body.token, body.docs)
                body = PermissionsRequest(body.docs, token=token_key(body.token))  # not echoed
            else:
                await state.restrict_user(body.user or "", body.docs)
        except ValueError as exc:
            raise HTTPError(400, "bad_request", str(exc)) from None
        return _json(body)

    return [
        Route("/documents/{doc}/edits", _endpoint(post_edits), methods=["POST"], name="post_edits"),
        Route(
            "/admin/permissions",
            _endpoint(restrict_user),
            methods=["POST"],
            name="restrict_user",
        ),
    ]
