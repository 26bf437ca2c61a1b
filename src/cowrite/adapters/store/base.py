"""The `Store` protocol, its value types and its errors.

A Store keeps, per document: its metadata, a write-ahead log of engine updates (opaque bytes), at
most one snapshot (opaque bytes) that covers a prefix of the log, the client edit keys used for
exactly-once acknowledgements, and the document's chat.

The durability contract: ``append_update`` returns only once the update (and its edit keys) would
survive a crash, so the server may send the acknowledgement as soon as it returns
(docs/protocol.md, "acknowledgements").

Times are integers in milliseconds passed in by the caller; a store never reads a clock for the data
it stores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

MAX_DOC_ID_CHARS = 128
MAX_TITLE_CHARS = 1_000
MAX_EDIT_KEY_PART_CHARS = 256
MAX_INT64 = 2**63 - 1
"""Every integer a store keeps (seqs, chat ids, times) is a signed 64-bit integer (SQLite INTEGER,
PostgreSQL BIGINT); callers bound what clients send to this at the edge (`cowrite.protocol`)."""
MIN_INT64 = -(2**63)

_DOC_ID = re.compile(r"(?!\.\.?$)[A-Za-z0-9._~-]{1,128}")  # not "." or "..": path segments
_KIND = re.compile(r"[a-z0-9]{1,16}")


# --- errors -------------------------------------------------------------------------------------


class StoreError(Exception):
    """Base class of every error a store raises on purpose (bad arguments raise `ValueError`)."""


class DocumentExists(StoreError):
    """`create_document` was given an id that is already taken."""


class NotFound(StoreError):
    """The document (or chat message) named does not exist."""


class Forbidden(StoreError):
    """The caller may not do this, e.g. edit another author's chat message."""


class Compacted(StoreError):
    """The log entries asked for were folded into a snapshot: load the document instead."""


class DuplicateEdit(StoreError):
    """`append_update` was given an edit key the document already has: nothing was stored.

    ``seq`` is the update that carried the key first and ``digest`` the payload digest stored with
    it. The caller applied the same edit twice (two instances, one client whose connection split):
    it must not acknowledge the second copy as a new edit.
    """

    def __init__(self, key: EditKey, seq: int, digest: str) -> None:
        super().__init__(f"edit {key.client_id!r}/{key.edit_id!r} is already stored at {seq}")
        self.key = key
        self.seq = seq
        self.digest = digest


class StoreUnavailable(StoreError):
    """The backing database cannot be reached or written right now; the call may be retried.

    Nothing was acknowledged: an `append_update` that raises this may or may not have been stored,
    so the edit must not be acknowledged (the client resends it, and `find_edit` tells).
    """


# --- values -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """A document's metadata. ``size_bytes`` counts its snapshot and log (not its chat)."""

    id: str
    title: str
    created_ms: int
    updated_ms: int
    size_bytes: int
    kind: str = "crdt"
    """The document kind (``cowrite.rooms.kind``): ``"crdt"`` or ``"yjs"``; set at creation."""


@dataclass(frozen=True, slots=True)
class EditKey:
    """The client-chosen identity of one edit, for exactly-once acknowledgements.

    ``digest`` names the edit's payload (``""``: not known), so that a resend of the same key
    with other content can be told apart from a true resend (`cowrite.rooms.edit_keys`).
    """

    client_id: str
    edit_id: str
    digest: str = ""


@dataclass(frozen=True, slots=True)
class StoredEdit:
    """What the store knows of an edit key: the seq of the update that carried it, its digest."""

    seq: int
    digest: str


@dataclass(frozen=True, slots=True)
class StoredDocument:
    """What `load` returns: the latest snapshot and every log entry after it.

    ``snapshot_seq`` is the last log sequence number the snapshot includes (0 and ``snapshot is
    None`` when there is no snapshot); ``updates`` are ``(seq, update)`` pairs with ``seq >
    snapshot_seq``, in increasing order. ``last_seq`` is the highest seq ever appended, which is
    also the last seq of ``updates`` when there are any.
    """

    doc_id: str
    snapshot: bytes | None
    snapshot_seq: int
    updates: list[tuple[int, bytes]]
    last_seq: int
    kind: str = "crdt"
    """The document kind, which says how to read the snapshot and the updates."""


VERSION_HOWS = ("typed", "restored", "imported", "server")
"""How a version came about: typed by a client (thin edit or replica sync), a restore of an
older version, an import (data brought in whole), or an edit the server made on its own."""
MAX_VERSION_NAME_CHARS = 200


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One version of a document: the document right after log entry ``seq`` was applied.

    Written by ``append_update`` in the same transaction as its log entry (``seq`` is then
    assigned by the store: pass 0), and kept after the entry is folded into a snapshot.
    ``authors`` are ``(user id, user name)`` pairs, the first one who made it (a row that
    retention merged a session into lists everyone of that session); ``size`` counts the
    operations it made; ``vector`` is opaque to the store (the server's encoding of the version
    vector after it); ``merged`` is how many versions the row stands for. A ``name`` makes it a
    named version, which retention never removes.
    """

    seq: int
    time_ms: int
    authors: tuple[tuple[str, str], ...]
    how: str
    size: int
    vector: bytes
    restored_from: int | None = None
    name: str | None = None
    named_ms: int | None = None
    merged: int = 1


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message. ``id`` is assigned by the store, increasing per document from 1.

    A deleted message keeps its id, author and times; its ``text`` is ``""``.
    """

    id: int
    doc_id: str
    author_id: str
    author_name: str
    text: str
    created_ms: int
    edited_ms: int | None
    deleted: bool


# --- validation at the edge --------------------------------------------------------------------


def validate_doc_id(doc_id: str) -> str:
    """Return ``doc_id`` if it is 1-128 characters of ``[A-Za-z0-9._~-]`` other than ``.`` and
    ``..``; raise `ValueError`."""
    if not isinstance(doc_id, str) or _DOC_ID.fullmatch(doc_id) is None:
        raise ValueError(
            f"invalid document id {doc_id!r}: expected 1-{MAX_DOC_ID_CHARS} characters "
            "of A-Z a-z 0-9 . _ ~ - (not . or ..)"
        )
    return doc_id


def validate_kind(kind: str) -> str:
    """Return ``kind`` if it is 1-16 characters of ``[a-z0-9]`` (a document kind's name)."""
    if not isinstance(kind, str) or _KIND.fullmatch(kind) is None:
        raise ValueError(f"invalid document kind {kind!r}: expected 1-16 characters of a-z 0-9")
    return kind


def validate_title(title: str) -> str:
    """Return ``title`` if it is a string of at most `MAX_TITLE_CHARS` characters."""
    if not isinstance(title, str) or len(title) > MAX_TITLE_CHARS:
        raise ValueError(
            f"invalid title: expected a string of at most {MAX_TITLE_CHARS} characters"
        )
    return title


def validate_edit_keys(edit_keys: Sequence[EditKey]) -> tuple[EditKey, ...]:
    """Return the keys as a tuple if each part is a non-empty string of at most 256 characters
    (the digest: at most 256, maybe empty) and no key appears twice."""
    keys = tuple(edit_keys)
    for key in keys:
        for part in (key.client_id, key.edit_id):
            if not isinstance(part, str) or not 0 < len(part) <= MAX_EDIT_KEY_PART_CHARS:
                raise ValueError(
                    f"invalid edit key {key!r}: client_id and edit_id must be 1-"
                    f"{MAX_EDIT_KEY_PART_CHARS} characters"
                )
        if not isinstance(key.digest, str) or len(key.digest) > MAX_EDIT_KEY_PART_CHARS:
            raise ValueError(f"invalid edit key {key!r}: digest over {MAX_EDIT_KEY_PART_CHARS}")
    if len({(k.client_id, k.edit_id) for k in keys}) != len(keys):
        raise ValueError("the same edit key twice in one update")
    return keys


def validate_version(record: VersionRecord) -> VersionRecord:
    """Return ``record`` if its fields can be stored (64-bit ints, known ``how``, bounded
    strings); raise `ValueError`."""
    for value, what in (
        (record.seq, "seq"),
        (record.time_ms, "time"),
        (record.size, "size"),
        (record.restored_from, "seq"),
        (record.named_ms, "time"),
        (record.merged, "count"),
    ):
        validate_int(value, what)
    if record.how not in VERSION_HOWS:
        raise ValueError(f"invalid version kind {record.how!r}: expected one of {VERSION_HOWS}")
    if not isinstance(record.vector, bytes) or len(record.vector) > 1_000_000:
        raise ValueError("invalid version vector: expected at most 1 MB of bytes")
    if len(record.authors) > 1_000 or any(
        not isinstance(i, str) or not isinstance(n, str) or len(i) > 256 or len(n) > 256
        for i, n in record.authors
    ):
        raise ValueError("invalid version authors: at most 1000 (id, name) of <= 256 characters")
    if record.name is not None:
        validate_version_name(record.name)
    return record


def validate_version_name(name: str) -> str:
    """Return ``name`` if it is 1-200 characters, not only spaces; raise `ValueError`."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_VERSION_NAME_CHARS:
        raise ValueError(
            f"invalid version name: expected 1-{MAX_VERSION_NAME_CHARS} characters, not blank"
        )
    return name


def validate_limit(limit: int) -> int:
    """Return ``limit`` if it is a positive 64-bit int (a page size)."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_INT64:
        raise ValueError(f"invalid limit {limit!r}: expected a positive 64-bit integer")
    return limit


def validate_int(value: int | None, what: str) -> None:
    """Raise `ValueError` unless ``value`` is None or a signed 64-bit int.

    A larger int cannot be stored (SQLite raises `OverflowError`, asyncpg a `DataError`): refused
    here, before it reaches a writer, it fails that call only.
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_INT64 <= value <= MAX_INT64:
        raise ValueError(f"invalid {what} {value!r}: expected a signed 64-bit integer")


# --- the protocol -------------------------------------------------------------------------------


class Store(Protocol):
    """Durable storage for documents, their write-ahead log, snapshots, edit keys and chat.

    Call `open` once before anything else and `close` once at the end; every other method raises
    `StoreError` outside that window. Methods taking a ``doc_id`` raise `ValueError` for a malformed
    one (see `validate_doc_id`). A cancelled call may still take effect.
    """

    # lifecycle

    async def open(self) -> None:
        """Connect and create or migrate the schema. Raises `StoreUnavailable` if it cannot."""
        ...

    async def close(self) -> None:
        """Finish every write already submitted, then release the backing resources."""
        ...

    async def health(self) -> bool:
        """Return whether the store can serve reads and writes now (for /readyz). Never raises."""
        ...

    async def alive(self) -> bool:
        """Return False only if this store can never write again in this process (its writer
        died and could not be restarted): /healthz, so that the process gets restarted. A
        database that is down for now is `health`'s business, not this. Never raises."""
        ...

    # documents

    async def create_document(
        self, doc_id: str, *, title: str, now_ms: int, kind: str = "crdt"
    ) -> DocumentInfo:
        """Create an empty document of ``kind``. Raises `DocumentExists` if the id is taken."""
        ...

    async def get_document(self, doc_id: str) -> DocumentInfo | None:
        """Return the document's metadata, or None if it does not exist."""
        ...

    async def list_documents(
        self, *, limit: int = 100, after: str | None = None
    ) -> list[DocumentInfo]:
        """Return up to ``limit`` documents with ``id > after``, ordered by id.

        For the next page pass the last id of this one as ``after``.
        """
        ...

    async def update_title(self, doc_id: str, title: str, *, now_ms: int) -> DocumentInfo:
        """Rename the document and return its new metadata. Raises `NotFound`."""
        ...

    async def delete_document(self, doc_id: str) -> bool:
        """Remove the document and everything about it (log, snapshot, edit keys, chat).

        Returns False if it did not exist.
        """
        ...

    # write-ahead log

    async def append_update(
        self,
        doc_id: str,
        update: bytes,
        *,
        edit_keys: Sequence[EditKey] = (),
        now_ms: int,
        version: VersionRecord | None = None,
    ) -> int:
        """Append ``update`` to the document's log and return its sequence number.

        ``version``, when given, is stored in the same transaction as the version of this seq
        (its own ``seq`` is ignored).

        Sequence numbers start at 1 and increase by 1 per append, per document, in the order the
        calls were made, and are never reused (not even after compaction). ``edit_keys`` are stored
        in the same transaction, atomically refused if one is already stored (by any writer, any
        instance): then nothing is stored and `DuplicateEdit` is raised. Returns only once the
        update and its keys are durable: the caller may acknowledge the edits then, not before.
        Raises `NotFound` if the document does not exist.
        """
        ...

    async def find_edit(self, doc_id: str, client_id: str, edit_id: str) -> int | None:
        """Return the seq of the update that carried this edit key, or None if unknown."""
        ...

    async def lookup_edit(self, doc_id: str, client_id: str, edit_id: str) -> StoredEdit | None:
        """Return the seq and digest stored with this edit key, or None if unknown."""
        ...

    async def prune_edit_keys(self, doc_id: str, older_than_ms: int) -> int:
        """Forget edit keys stored before ``older_than_ms``; return how many were removed.

        A pruned key no longer stops a resend of its edit: callers keep keys as long as a client
        may resend them (docs/architecture.md, "Exactly-once and its horizon").
        """
        ...

    async def load(self, doc_id: str) -> StoredDocument | None:
        """Return the snapshot and the log after it, read consistently; None if no such doc."""
        ...

    async def updates_since(self, doc_id: str, after_seq: int) -> list[tuple[int, bytes]]:
        """The ``(seq, update)`` log entries with ``seq > after_seq``, in order (catch-up of an
        instance that missed some). Raises `NotFound` for a missing document and `Compacted` when
        entries after ``after_seq`` were folded into a snapshot (``after_seq < snapshot_seq``).
        """
        ...

    async def save_snapshot(
        self, doc_id: str, snapshot: bytes, upto_seq: int, *, drops: Sequence[int] = ()
    ) -> bool:
        """Atomically store a snapshot covering the log up to ``upto_seq`` and drop those entries.

        Log entries after ``upto_seq`` stay. A snapshot older than the stored one (lower
        ``upto_seq``) is ignored and False is returned; so is one that gives up the value of a
        version in ``drops`` (a Yjs history fold) that is named now: it was named (maybe by
        another instance) while the snapshot was made, and the next snapshot keeps it. True
        when it was stored. Raises `NotFound` for a missing document and `ValueError` if
        ``upto_seq`` is negative or beyond the log.
        """
        ...

    # version history (written by ``append_update``)

    async def list_versions(
        self,
        doc_id: str,
        *,
        after: int = 0,
        before: int | None = None,
        limit: int = 100,
        named_only: bool = False,
    ) -> list[VersionRecord]:
        """Return up to ``limit`` versions with ``after < seq < before``, oldest first
        (``named_only``: only named ones). An unknown document has none."""
        ...

    async def get_version(self, doc_id: str, seq: int) -> VersionRecord | None:
        """Return the version made by log entry ``seq``, or None (never stored, or removed)."""
        ...

    async def name_version(
        self, doc_id: str, seq: int, name: str | None, *, now_ms: int
    ) -> VersionRecord:
        """Name (or rename; None: unname) a version and return it. Raises `NotFound` if the
        document or the version does not exist, `ValueError` for a bad name."""
        ...

    async def thin_versions(
        self, doc_id: str, removed: Sequence[int], updated: Sequence[VersionRecord]
    ) -> int:
        """Retention, atomically: delete the versions ``removed`` (named ones are never deleted)
        and replace ``authors``, ``size`` and ``merged`` of the ``updated`` ones (matched by
        seq). Returns how many were deleted; an unknown document is left alone (0)."""
        ...

    # chat

    async def add_chat(
        self, doc_id: str, *, author_id: str, author_name: str, text: str, now_ms: int
    ) -> ChatMessage:
        """Store a new chat message with the next id for this document. Raises `NotFound`."""
        ...

    async def edit_chat(
        self, doc_id: str, message_id: int, *, author_id: str, text: str, now_ms: int
    ) -> ChatMessage:
        """Replace a message's text. Raises `NotFound` (also if deleted) or `Forbidden`."""
        ...

    async def delete_chat(
        self, doc_id: str, message_id: int, *, author_id: str, now_ms: int
    ) -> ChatMessage:
        """Soft-delete a message: its text is erased and ``deleted`` set. Idempotent.

        Raises `NotFound` or `Forbidden` (another author).
        """
        ...

    async def chat_history(
        self, doc_id: str, *, before: int | None = None, limit: int = 50
    ) -> list[ChatMessage]:
        """Return up to ``limit`` messages with ``id < before``, newest first.

        For the next (older) page pass the last id of this one as ``before``. Deleted messages are
        included (with empty text) so that clients can show the gap.
        """
        ...
