"""PostgreSQL: the schema, as ordered migrations, and the advisory-lock namespaces.

Why apart: the schema changes on its own rhythm (append a migration, never edit a shipped one) and
is read by tests (`MIGRATIONS`, `SCHEMA_VERSION`, re-exported by ``postgres.py``). Caller's
contract: `_migrate` runs on a connection outside any transaction, once per `PostgresStore.open`,
before the writer starts; it raises `StoreError` if the database is newer than this cowrite.
``_DOC_LOCK_SPACE`` is the namespace every writer's ``pg_advisory_xact_lock`` uses for documents
(``_pg_writer._begin_and_lock``); ``_SCHEMA_LOCK_SPACE`` serialises migrations.
"""

from __future__ import annotations

from typing import Any

from cowrite.adapters.store._pg_versions import pack_backlog
from cowrite.adapters.store._version_blocks import BLOCK_VERSIONS
from cowrite.adapters.store.base import StoreError

# asyncpg ships no type information; a connection is `Any` here.
Conn = Any

# pg_advisory_xact_lock(int4, int4) namespaces: "cowr" for documents, the next one for migrations.
_DOC_LOCK_SPACE = 0x636F7772
_SCHEMA_LOCK_SPACE = _DOC_LOCK_SPACE + 1

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: documents, write-ahead log, snapshots, edit keys, chat (the SQLite schema, in PostgreSQL
    # types; ids compare byte-wise, COLLATE "C", so list order does not depend on the locale).
    (
        """
        CREATE TABLE documents (
            id           TEXT COLLATE "C" NOT NULL PRIMARY KEY,
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
            doc_id     TEXT COLLATE "C" NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            seq        BIGINT NOT NULL,
            data       BYTEA  NOT NULL,
            created_ms BIGINT NOT NULL,
            PRIMARY KEY (doc_id, seq)
        )
        """,
        """
        CREATE TABLE snapshots (
            doc_id   TEXT COLLATE "C" NOT NULL PRIMARY KEY
                     REFERENCES documents (id) ON DELETE CASCADE,
            upto_seq BIGINT NOT NULL,
            data     BYTEA  NOT NULL
        )
        """,
        """
        CREATE TABLE edit_keys (
            doc_id     TEXT COLLATE "C" NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
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
            doc_id      TEXT COLLATE "C" NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            id          BIGINT  NOT NULL,
            author_id   TEXT    NOT NULL,
            author_name TEXT    NOT NULL,
            text        TEXT    NOT NULL,
            created_ms  BIGINT  NOT NULL,
            edited_ms   BIGINT,
            deleted     BOOLEAN NOT NULL DEFAULT FALSE,
            PRIMARY KEY (doc_id, id)
        )
        """,
    ),
    # 2: the digest of an edit's payload beside its key (see the SQLite schema).
    ("ALTER TABLE edit_keys ADD COLUMN digest TEXT NOT NULL DEFAULT ''",),
    # 3: the document kind (see the SQLite schema).
    ("ALTER TABLE documents ADD COLUMN kind TEXT NOT NULL DEFAULT 'crdt'",),
    # 4: the version history (see the SQLite schema).
    (
        """
        CREATE TABLE versions (
            doc_id        TEXT COLLATE "C" NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            seq           BIGINT NOT NULL,
            time_ms       BIGINT NOT NULL,
            authors       TEXT   NOT NULL,
            how           TEXT   NOT NULL,
            size          BIGINT NOT NULL,
            vector        BYTEA  NOT NULL,
            restored_from BIGINT,
            name          TEXT,
            named_ms      BIGINT,
            merged        BIGINT NOT NULL DEFAULT 1,
            PRIMARY KEY (doc_id, seq)
        )
        """,
        "CREATE INDEX versions_named ON versions (doc_id, seq) WHERE name IS NOT NULL",
    ),
    # 5: packed version history (see the SQLite schema); ``_migrate`` then packs the rows
    # migration 4 stored (``PACK_AFTER``).
    (
        """
        CREATE TABLE version_blocks (
            doc_id    TEXT COLLATE "C" NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            last_seq  BIGINT NOT NULL,
            first_seq BIGINT NOT NULL,
            n         BIGINT NOT NULL,
            data      BYTEA  NOT NULL,
            PRIMARY KEY (doc_id, last_seq)
        )
        """,
        """
        CREATE TABLE version_names (
            doc_id   TEXT COLLATE "C" NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
            seq      BIGINT NOT NULL,
            name     TEXT   NOT NULL,
            named_ms BIGINT NOT NULL,
            PRIMARY KEY (doc_id, seq)
        )
        """,
    ),
)

PACK_AFTER = 5
"""After this migration's statements ``_migrate`` packs the ``versions`` rows stored before."""

SCHEMA_VERSION = len(MIGRATIONS)

# --- schema ---------------------------------------------------------------------------------------


async def _migrate(conn: Conn, block: int = BLOCK_VERSIONS) -> int:
    """Bring the schema to `SCHEMA_VERSION` in one transaction; return the version found.

    Instances opening at once take turns (an advisory lock). Raises `StoreError` if the database
    was written by a newer cowrite.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1, 0)", _SCHEMA_LOCK_SPACE)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")
        version = await conn.fetchval("SELECT version FROM schema_version")
        if version is None:
            await conn.execute("INSERT INTO schema_version (version) VALUES (0)")
            found = 0
        else:
            found = int(version)
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"database schema version {found} is newer than this cowrite supports "
                f"({SCHEMA_VERSION}); upgrade cowrite"
            )
        for number, statements in enumerate(MIGRATIONS[found:], found + 1):
            for statement in statements:
                await conn.execute(statement)
            if number == PACK_AFTER:
                await pack_backlog(conn, block)
        if found != SCHEMA_VERSION:
            await conn.execute("UPDATE schema_version SET version = $1", SCHEMA_VERSION)
    return found
