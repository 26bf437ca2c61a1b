"""The bodies of the version-history endpoints (``rest_history.py``): versions, values at a
version, diffs with authors, naming and restore. Like ``rest_bodies.py`` they are the single
source of truth of their OpenAPI schemas (``openapi.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

VersionName = Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
VersionId = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]


# --------------------------------------------------------------------------- request bodies


class RestoreRequest(msgspec.Struct, forbid_unknown_fields=True):
    """Make the document's value that of version ``version`` again (a version id)."""

    version: VersionId


class NameVersion(msgspec.Struct, forbid_unknown_fields=True):
    """Name a version (``POST``: the latest one unless ``version`` is given) or rename it
    (``PATCH``; ``name: null`` removes the name). Named versions are never removed by
    retention nor compacted away."""

    name: VersionName | None
    version: VersionId | None = None


# -------------------------------------------------------------------------- response bodies


class AuthorOut(msgspec.Struct):
    """A user: ``id`` from the token (or the client's key), ``name`` as shown then."""

    id: str
    name: str


class VersionOut(msgspec.Struct):
    """One version: the document right after the edit with this ``id`` (its log sequence
    number; ids increase with time and never change).

    ``how``: ``typed`` (a client's edit), ``restored`` (a restore of ``restored_from``),
    ``imported`` or ``server``. ``authors``: who made it (several when retention merged an
    editing session into it: ``merged`` counts the versions it stands for). ``size``: the
    operations it made (characters inserted, deletions, writes). ``available``: its value, diffs
    and restore can still be computed (false once compacted away; named versions always are).
    """

    id: int
    time_ms: int
    authors: list[AuthorOut]
    how: str
    size: int
    name: str | None
    named_ms: int | None
    restored_from: int | None
    merged: int
    available: bool


class VersionPage(msgspec.Struct):
    """A page of versions, oldest first; pass ``next`` as ``after`` for the next (null: last).
    ``session_gap_s``: the server's editing-session gap (retention keeps one version per run of
    versions with pauses shorter than it), so that a viewer groups versions into the same
    sessions. ``older`` (pages asked for with ``before``, newest first; else null): pass it as
    ``before`` for the page of older versions (null: none older)."""

    versions: list[VersionOut]
    next: int | None
    session_gap_s: float = 300.0
    older: int | None = None


class VersionValue(msgspec.Struct, omit_defaults=True):
    """A version and the document's value at it (version 0: the empty document, ``version``
    null). A Yjs document's value maps each root to its JSON, read as the type in ``types``
    (``text``, ``xml``, ``map`` or ``array``: inferred from the content, docs/yjs.md)."""

    id: int
    version: VersionOut | None
    value: dict[str, Any]
    types: dict[str, str] | None = None


class ChangeSpanOut(msgspec.Struct, omit_defaults=True):
    """A stretch of a text or list node in a diff: ``retain`` (unchanged), ``insert`` or
    ``delete`` ``count`` elements (``text`` for a text node, ``values`` for a list), made by
    version ``by`` (its id) of ``authors`` (null when that version is no longer listed)."""

    op: Literal["retain", "insert", "delete"]
    count: int
    text: str | None = None
    values: list[Any] | None = None
    by: int | None = None
    authors: list[AuthorOut] | None = None


class NodeChange(msgspec.Struct):
    """How one node changed. ``node`` is its wire id; ``path`` leads to it from a named root.

    Text and list nodes: ``delta`` is an index edit (retain n > 0, delete -n, insert a string or
    a list of values) from the old value to the new, and ``spans`` the same with who made each
    insertion and deletion. Others: ``before``/``after`` (null: absent).
    """

    node: str
    kind: str
    path: list[str | int]
    delta: list[Any]
    before: Any
    after: Any
    spans: list[ChangeSpanOut] | None = None


class DiffOut(msgspec.Struct):
    """The changes from version ``from`` to version ``to``."""

    from_: int = msgspec.field(name="from")
    to: int
    changes: list[NodeChange]


class RestoreOut(msgspec.Struct):
    """``version``: the room version after the restore (durable); ``edits``: batches applied
    (0 when the document already had that value). The restore is recorded as a version of
    ``how: restored`` with ``restored_from: restored``, by the requester."""

    restored: int
    version: int
    edits: int
