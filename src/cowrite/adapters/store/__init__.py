"""Document storage: the `Store` protocol and its implementations.

* `MemoryStore` — a real implementation, fine for tests and a single process that may lose
  everything on exit.
* `SQLiteStore` — the default embedded store: WAL, fsync on commit, one writer thread with group
  commit.
* `PostgresStore` — shared storage for several server instances (``postgres.py``; imported
  lazily by ``open_store`` so that the embedded default does not need asyncpg at import time).

Every implementation passes the same contract suite (``tests/adapters/test_store_contract.py``).
"""

from cowrite.adapters.store.base import (
    MAX_DOC_ID_CHARS,
    MAX_EDIT_KEY_PART_CHARS,
    MAX_TITLE_CHARS,
    ChatMessage,
    Compacted,
    DocumentExists,
    DocumentInfo,
    DuplicateEdit,
    EditKey,
    Forbidden,
    NotFound,
    Store,
    StoredDocument,
    StoredEdit,
    StoreError,
    StoreUnavailable,
    validate_doc_id,
)
from cowrite.adapters.store.memory import MemoryStore
from cowrite.adapters.store.sqlite import SQLiteStore


def open_store(url: str) -> Store:
    """The Store for a ``--database``/``--data`` value: ``postgresql://…`` or ``postgres://…``,
    ``:memory:``, or a SQLite file path."""
    if url.startswith(("postgresql://", "postgres://")):
        from cowrite.adapters.store.postgres import PostgresStore

        return PostgresStore(url)
    if url == ":memory:":
        return MemoryStore()
    return SQLiteStore(url)


__all__ = [
    "MAX_DOC_ID_CHARS",
    "MAX_EDIT_KEY_PART_CHARS",
    "MAX_TITLE_CHARS",
    "ChatMessage",
    "Compacted",
    "DocumentExists",
    "DocumentInfo",
    "DuplicateEdit",
    "EditKey",
    "Forbidden",
    "MemoryStore",
    "open_store",
    "NotFound",
    "SQLiteStore",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredDocument",
    "StoredEdit",
    "validate_doc_id",
]
