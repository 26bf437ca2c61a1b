"""The SQLite schema, as an ordered list of migrations recorded in ``schema_version``.

Kept to SQL that PostgreSQL also speaks (TEXT, BIGINT, ``ON CONFLICT``, ``RETURNING``, cascading
foreign keys), with BLOB for opaque bytes (``bytea`` there), except ``WITHOUT ROWID``. To change
the schema, append a migration; never edit one that has shipped.
"""

from __future__ import annotations

import sqlite3

from cowrite.adapters.store._version_blocks import BLOCK_VERSIONS
from cowrite.adapters.store._versions import pack_backlog
from cowrite.adapters.store.base import StoreError

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: documents, write-ahead log, snapshots, edit keys, chat.
    (
        """
        CREATE TABLE documents (
            id           TEXT    NOT NULL PRIMARY KEY,
            title        TEXT    NOT NULL,
            created_ms   BIGINT  NOT NULL,
            updated_ms   BIGINT  NOT NULL,
            size_bytes   BIGINT  NOT NULL DEFAULT 0,  -- snapshot + log bytes
            last_seq     BIGINT  NOT NULL DEFAULT 0,  -- highest log seq ever appended
            last_chat_id BIGINT  NOT NULL DEFAULT 0   -- highest chat message id ever assigned
        )
        """,
        """
        CREATE TABLE updates (
            doc_id     TEXT   NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            seq        BIGINT NOT NULL,
            data       BLOB   NOT NULL,
            created_ms BIGINT NOT NULL,
            PRIMARY KEY (doc_id, seq)
        )
        """,
        """
        CREATE TABLE snapshots (
            doc_id   TEXT   NOT NULL PRIMARY KEY REFERENCES documents (id) ON DELETE CASCADE,
            upto_seq BIGINT NOT NULL,
            data     BLOB   NOT NULL
        )
        """,
        """
        CREATE TABLE edit_keys (
            doc_id     TEXT   NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            client_id  TEXT   NOT NULL,
            edit_id    TEXT   NOT NULL,
            seq        BIGINT NOT NULL,
            created_ms BIGINT NOT NULL,
            PRIMARY KEY (doc_id, client_id, edit_id)
        )
        """,
        "CREATE INDEX edit_keys_by_age ON edit_keys (doc_id, created_ms)",
        """
        CREATE TABLE chat_messages (
            doc_id      TEXT    NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            id          BIGINT  NOT NULL,
            author_id   TEXT    NOT NULL,
            author_name TEXT    NOT NULL,
            text        TEXT    NOT NULL,
            created_ms  BIGINT  NOT NULL,
            edited_ms   BIGINT,
            deleted     INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (doc_id, id)
        )
        """,
    ),
    # 2: the digest of an edit's payload beside its key, so that a resend of a key with other
    # content is refused rather than acknowledged and dropped. Keys stored before have "" (not
    # known: a resend of one is taken as the same edit, as it was before).
    ("ALTER TABLE edit_keys ADD COLUMN digest TEXT NOT NULL DEFAULT ''",),
    # 3: the document kind ("crdt": cowrite's own tree; "yjs": a Yjs document), which says how
    # its snapshot and log entries are read. Documents stored before are "crdt".
    ("ALTER TABLE documents ADD COLUMN kind TEXT NOT NULL DEFAULT 'crdt'",),
    # 4: the version history: one row per log entry that made a version (written in the
    # entry's transaction, kept when the entry is folded into a snapshot), thinned by the
    # server's retention; named versions (``name``) are never removed. WITHOUT ROWID (SQLite
    # only): the rows live in the primary key's b-tree, not twice (a row per keystroke adds up).
    (
        """
        CREATE TABLE versions (
            doc_id        TEXT   NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            seq           BIGINT NOT NULL,
            time_ms       BIGINT NOT NULL,
            authors       TEXT   NOT NULL,  -- JSON [[user id, user name], ...]
            how           TEXT   NOT NULL,  -- typed | restored | imported | server
            size          BIGINT NOT NULL,  -- operations
            vector        BLOB   NOT NULL,  -- the server's encoding of the version vector
            restored_from BIGINT,
            name          TEXT,
            named_ms      BIGINT,
            merged        BIGINT NOT NULL DEFAULT 1,
            PRIMARY KEY (doc_id, seq)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX versions_named ON versions (doc_id, seq) WHERE name IS NOT NULL",
    ),
    # 5: packed version history. ``versions`` keeps only a document's newest versions (its
    # tail); older ones are packed into ``version_blocks``, up to a block's worth of consecutive
    # versions a row (``_version_blocks.py``: columnar, delta-encoded, compressed), and the
    # names of packed versions are ``version_names`` rows. ``migrate`` then packs the rows
    # that migration 4 stored (``PACK_AFTER``).
    (
        """
        CREATE TABLE version_blocks (
            doc_id    TEXT   NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            last_seq  BIGINT NOT NULL,
            first_seq BIGINT NOT NULL,
            n         BIGINT NOT NULL,  -- versions in the block
            data      BLOB   NOT NULL,
            PRIMARY KEY (doc_id, last_seq)
        ) WITHOUT ROWID
        """,
        """
        CREATE TABLE version_names (
            doc_id   TEXT   NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            seq      BIGINT NOT NULL,
            name     TEXT   NOT NULL,
            named_ms BIGINT NOT NULL,
            PRIMARY KEY (doc_id, seq)
        ) WITHOUT ROWID
        """,
    ),
)

PACK_AFTER = 5
"""After the statements of this migration, ``migrate`` packs the ``versions`` rows stored
before (a data step in the same transaction)."""

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(conn: sqlite3.Connection, block: int = BLOCK_VERSIONS) -> int:
    """Bring the database to `SCHEMA_VERSION` in one transaction; return the version found.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises `StoreError` if the
    database was written by a newer cowrite. ``block``: versions per packed block.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            found = 0
        else:
            found = int(row[0])
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"database schema version {found} is newer than this cowrite supports "
                f"({SCHEMA_VERSION}); upgrade cowrite"
            )
        for number, statements in enumerate(MIGRATIONS[found:], found + 1):
            for statement in statements:
                conn.execute(statement)
            if number == PACK_AFTER:
                pack_backlog(conn, block)
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return found
