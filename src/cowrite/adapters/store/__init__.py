"""Document storage: the `Store` protocol and its implementations.

* `MemoryStore` — a real implementation, fine for tests and a single process that may lose
  everything on exit.
* `SQLiteStore` — the default embedded store: WAL, fsync on commit, one writer thread with group
  commit.
* `PostgresStore` — shared storage for several server instances (``postgres.py``; imported
  lazily by ``open_store`` so that the embedded default does not need asyncpg at import time).

Every implementation passes the same contract suite (``tests/adapters/test_store_contract.py``).

The modules, one concept each:

* ``base.py`` — the `Store` protocol, its records and errors, and the argument checks every store
  applies (`validate_doc_id`, ...).
* ``memory.py`` — `MemoryStore`.
* ``_writer.py`` — `BatchWriter`, the SQLite writer thread with group commit, and `WriterStats`.
* ``sqlite.py`` — `SQLiteStore`: lifecycle, validation, the writer and the reader threads.
* ``_sqlite_queries.py`` — the SQLite statements (documents, log and edit keys, snapshots, chat).
* ``_schema.py`` — the SQLite schema as migrations.
* ``_versions.py`` — the SQLite statements of the version history (a tail of ``versions`` rows,
  ``version_blocks``, ``version_names``; migrations 4 and 5) and the row codec both SQL stores
  share; ``_pg_versions.py`` — the PostgreSQL ones; ``_memory_versions.py`` — the memory one.
* ``_version_blocks.py`` — the packed block of consecutive versions (columnar, compressed) and
  the packing rules every store shares.
* ``postgres.py`` — `PostgresStore`: lifecycle, validation, the read pool, writer restarts.
* ``_pg_writer.py`` — the PostgreSQL writer task (group commit, retries, advisory locks) and the
  classification of asyncpg errors into `StoreUnavailable`/`StoreError`.
* ``_pg_append.py`` — the appends of one write batch as one statement, refusing known edit keys.
* ``_pg_pack.py`` — packing a due version tail after its append commits (a plan read from one
  snapshot, encoded on a worker thread, swapped in by a conditional writer job).
* ``_pg_queries.py`` — the other PostgreSQL statements (documents, log, snapshots, chat).
* ``_pg_schema.py`` — the PostgreSQL schema as migrations, and the advisory-lock namespaces.
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
    VersionRecord,
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
    "VersionRecord",
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
