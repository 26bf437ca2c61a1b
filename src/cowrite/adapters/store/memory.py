"""`MemoryStore`: a complete `Store` kept in Python objects.

A real implementation, not a mock: it passes the same contract suite as the SQLite store. Its data
lives as long as the object (closing and reopening the same instance keeps it) and is lost with the
process, so "durable" here means durable for the life of the process: fine for tests and for a
single-process server that needs no persistence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from cowrite.adapters.store._memory_versions import PackedVersions
from cowrite.adapters.store._version_blocks import BLOCK_VERSIONS
from cowrite.adapters.store.base import (
    MAX_INT64,
    ChatMessage,
    Compacted,
    DocumentExists,
    DocumentInfo,
    DuplicateEdit,
    EditKey,
    Forbidden,
    NotFound,
    StoredDocument,
    StoredEdit,
    StoreError,
    VersionRecord,
    validate_doc_id,
    validate_edit_keys,
    validate_int,
    validate_kind,
    validate_limit,
    validate_title,
    validate_version,
    validate_version_name,
)

if TYPE_CHECKING:
    from types import TracebackType
    from typing import Self

    from cowrite.adapters.store.base import Store


@dataclass(slots=True)
class _Doc:
    info: DocumentInfo
    last_seq: int = 0
    snapshot: bytes | None = None
    snapshot_seq: int = 0
    log: dict[int, bytes] = field(default_factory=dict)  # insertion order == seq order
    # (client_id, edit_id) -> (seq, stored_ms, digest)
    edit_keys: dict[tuple[str, str], tuple[int, int, str]] = field(default_factory=dict)
    chat: dict[int, ChatMessage] = field(default_factory=dict)
    last_chat_id: int = 0
    versions: PackedVersions = field(default_factory=lambda: PackedVersions(BLOCK_VERSIONS))

    def size_bytes(self) -> int:
        return len(self.snapshot or b"") + sum(len(update) for update in self.log.values())


class MemoryStore:
    """An in-process `Store`. Each method completes without yielding, so calls are atomic.

    ``version_block``: versions packed into one block (``_version_blocks.py``)."""

    def __init__(self, *, version_block: int = BLOCK_VERSIONS) -> None:
        if version_block < 1:
            raise ValueError("version_block must be positive")
        self._block = version_block
        self._docs: dict[str, _Doc] = {}
        self._open = False

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # lifecycle

    async def open(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def health(self) -> bool:
        return self._open

    async def alive(self) -> bool:
        return True  # no writer to lose

    # documents

    async def create_document(
        self, doc_id: str, *, title: str, now_ms: int, kind: str = "crdt"
    ) -> DocumentInfo:
        validate_int(now_ms, "time")
        self._check_open()
        validate_doc_id(doc_id)
        validate_title(title)
        validate_kind(kind)
        if doc_id in self._docs:
            raise DocumentExists(f"document {doc_id!r} already exists")
        info = DocumentInfo(doc_id, title, now_ms, now_ms, 0, kind)
        self._docs[doc_id] = _Doc(info, versions=PackedVersions(self._block))
        return info

    async def get_document(self, doc_id: str) -> DocumentInfo | None:
        self._check_open()
        validate_doc_id(doc_id)
        doc = self._docs.get(doc_id)
        return None if doc is None else self._info(doc)

    async def list_documents(
        self, *, limit: int = 100, after: str | None = None
    ) -> list[DocumentInfo]:
        self._check_open()
        validate_limit(limit)
        ids = sorted(i for i in self._docs if after is None or i > after)[:limit]
        return [self._info(self._docs[i]) for i in ids]

    async def update_title(self, doc_id: str, title: str, *, now_ms: int) -> DocumentInfo:
        validate_int(now_ms, "time")
        self._check_open()
        validate_title(title)
        doc = self._doc(doc_id)
        doc.info = replace(doc.info, title=title, updated_ms=max(doc.info.updated_ms, now_ms))
        return self._info(doc)

    async def delete_document(self, doc_id: str) -> bool:
        self._check_open()
        validate_doc_id(doc_id)
        return self._docs.pop(doc_id, None) is not None

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
        validate_int(now_ms, "time")
        self._check_open()
        keys = validate_edit_keys(edit_keys)
        if version is not None:
            validate_version(version)
        doc = self._doc(doc_id)
        for key in keys:  # refused before anything changes
            known = doc.edit_keys.get((key.client_id, key.edit_id))
            if known is not None:
                raise DuplicateEdit(key, known[0], known[2])
        doc.last_seq += 1
        seq = doc.last_seq
        doc.log[seq] = bytes(update)
        for key in keys:
            doc.edit_keys[key.client_id, key.edit_id] = (seq, now_ms, key.digest)
        if version is not None:
            doc.versions.add(replace(version, seq=seq))
        doc.info = replace(doc.info, updated_ms=max(doc.info.updated_ms, now_ms))
        return seq

    async def find_edit(self, doc_id: str, client_id: str, edit_id: str) -> int | None:
        found = await self.lookup_edit(doc_id, client_id, edit_id)
        return None if found is None else found.seq

    async def lookup_edit(self, doc_id: str, client_id: str, edit_id: str) -> StoredEdit | None:
        self._check_open()
        validate_doc_id(doc_id)
        doc = self._docs.get(doc_id)
        found = None if doc is None else doc.edit_keys.get((client_id, edit_id))
        return None if found is None else StoredEdit(found[0], found[2])

    async def prune_edit_keys(self, doc_id: str, older_than_ms: int) -> int:
        validate_int(older_than_ms, "time")
        self._check_open()
        validate_doc_id(doc_id)
        doc = self._docs.get(doc_id)
        if doc is None:
            return 0
        old = [k for k, (_, stored_ms, _) in doc.edit_keys.items() if stored_ms < older_than_ms]
        for key in old:
            del doc.edit_keys[key]
        return len(old)

    async def load(self, doc_id: str) -> StoredDocument | None:
        self._check_open()
        validate_doc_id(doc_id)
        doc = self._docs.get(doc_id)
        if doc is None:
            return None
        return StoredDocument(
            doc_id=doc_id,
            snapshot=doc.snapshot,
            snapshot_seq=doc.snapshot_seq,
            updates=list(doc.log.items()),
            last_seq=doc.last_seq,
            kind=doc.info.kind,
        )

    async def updates_since(self, doc_id: str, after_seq: int) -> list[tuple[int, bytes]]:
        validate_int(after_seq, "seq")
        self._check_open()
        doc = self._doc(doc_id)
        if after_seq < doc.snapshot_seq:
            raise Compacted(f"{doc_id!r}: the log up to {doc.snapshot_seq} is in a snapshot")
        return [(seq, u) for seq, u in doc.log.items() if seq > after_seq]

    async def save_snapshot(
        self, doc_id: str, snapshot: bytes, upto_seq: int, *, drops: Sequence[int] = ()
    ) -> bool:
        validate_int(upto_seq, "seq")
        for seq in drops:
            validate_int(seq, "seq")
        self._check_open()
        doc = self._doc(doc_id)
        if upto_seq < 0 or upto_seq > doc.last_seq:
            raise ValueError(
                f"snapshot upto_seq {upto_seq} outside the log of {doc_id!r} (0..{doc.last_seq})"
            )
        if upto_seq < doc.snapshot_seq:
            return False
        if drops:
            low, high = min(drops), max(drops)
            named = doc.versions.list(low - 1, high + 1, high - low + 1, named_only=True)
            if {v.seq for v in named} & set(drops):
                return False  # named while the snapshot was made: the next one keeps it
        doc.snapshot = bytes(snapshot)
        doc.snapshot_seq = upto_seq
        doc.log = {seq: u for seq, u in doc.log.items() if seq > upto_seq}
        return True

    # version history

    async def list_versions(
        self,
        doc_id: str,
        *,
        after: int = 0,
        before: int | None = None,
        limit: int = 100,
        named_only: bool = False,
    ) -> list[VersionRecord]:
        self._check_open()
        validate_doc_id(doc_id)
        validate_int(after, "seq")
        validate_int(before, "seq")
        validate_limit(limit)
        doc = self._docs.get(doc_id)
        if doc is None:
            return []
        high = MAX_INT64 if before is None else before
        return doc.versions.list(after, high, limit, named_only)

    async def get_version(self, doc_id: str, seq: int) -> VersionRecord | None:
        self._check_open()
        validate_doc_id(doc_id)
        validate_int(seq, "seq")
        doc = self._docs.get(doc_id)
        return None if doc is None else doc.versions.get(seq)

    async def name_version(
        self, doc_id: str, seq: int, name: str | None, *, now_ms: int
    ) -> VersionRecord:
        validate_int(seq, "seq")
        validate_int(now_ms, "time")
        self._check_open()
        if name is not None:
            validate_version_name(name)
        doc = self._doc(doc_id)
        found = doc.versions.name(seq, name, now_ms)
        if found is None:
            raise NotFound(f"no version {seq} of {doc_id!r}")
        return found

    async def thin_versions(
        self, doc_id: str, removed: Sequence[int], updated: Sequence[VersionRecord]
    ) -> int:
        self._check_open()
        validate_doc_id(doc_id)
        for v in updated:
            validate_version(v)
        for seq in removed:
            validate_int(seq, "seq")
        doc = self._docs.get(doc_id)
        if doc is None:
            return 0
        return doc.versions.thin(removed, updated)

    # chat

    async def add_chat(
        self, doc_id: str, *, author_id: str, author_name: str, text: str, now_ms: int
    ) -> ChatMessage:
        validate_int(now_ms, "time")
        self._check_open()
        doc = self._doc(doc_id)
        doc.last_chat_id += 1
        message = ChatMessage(
            id=doc.last_chat_id,
            doc_id=doc_id,
            author_id=author_id,
            author_name=author_name,
            text=text,
            created_ms=now_ms,
            edited_ms=None,
            deleted=False,
        )
        doc.chat[message.id] = message
        return message

    async def edit_chat(
        self, doc_id: str, message_id: int, *, author_id: str, text: str, now_ms: int
    ) -> ChatMessage:
        validate_int(message_id, "chat message id")
        validate_int(now_ms, "time")
        self._check_open()
        doc = self._doc(doc_id)
        message = self._own_message(doc, message_id, author_id)
        if message.deleted:
            raise NotFound(f"chat message {message_id} of {doc_id!r} was deleted")
        message = replace(message, text=text, edited_ms=now_ms)
        doc.chat[message_id] = message
        return message

    async def delete_chat(
        self, doc_id: str, message_id: int, *, author_id: str, now_ms: int
    ) -> ChatMessage:
        validate_int(message_id, "chat message id")
        validate_int(now_ms, "time")
        self._check_open()
        doc = self._doc(doc_id)
        message = self._own_message(doc, message_id, author_id)
        if not message.deleted:
            message = replace(message, text="", edited_ms=now_ms, deleted=True)
            doc.chat[message_id] = message
        return message

    async def chat_history(
        self, doc_id: str, *, before: int | None = None, limit: int = 50
    ) -> list[ChatMessage]:
        validate_int(before, "chat message id")
        self._check_open()
        validate_doc_id(doc_id)
        validate_limit(limit)
        doc = self._docs.get(doc_id)
        if doc is None:
            return []
        ids = sorted((i for i in doc.chat if before is None or i < before), reverse=True)
        return [doc.chat[i] for i in ids[:limit]]

    # helpers

    def _check_open(self) -> None:
        if not self._open:
            raise StoreError("the store is not open")

    def _doc(self, doc_id: str) -> _Doc:
        validate_doc_id(doc_id)
        doc = self._docs.get(doc_id)
        if doc is None:
            raise NotFound(f"document {doc_id!r} does not exist")
        return doc

    @staticmethod
    def _info(doc: _Doc) -> DocumentInfo:
        return replace(doc.info, size_bytes=doc.size_bytes())

    @staticmethod
    def _own_message(doc: _Doc, message_id: int, author_id: str) -> ChatMessage:
        message = doc.chat.get(message_id)
        if message is None:
            raise NotFound(f"chat message {message_id} of {doc.info.id!r} does not exist")
        if message.author_id != author_id:
            raise Forbidden(f"chat message {message_id} belongs to another author")
        return message


if TYPE_CHECKING:
    _conforms: type[Store] = MemoryStore
