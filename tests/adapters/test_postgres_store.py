"""What only the PostgreSQL store promises beyond the contract: several instances on one database,
group commit, PostgreSQL going away and coming back, schema, text limits.

The contract suite (test_store_contract.py) runs on the run-wide server; the outage tests start a
private one (services.private_postgres) so that they can stop it.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cowrite.adapters.store import DuplicateEdit, EditKey, StoredEdit, StoreError, StoreUnavailable
from cowrite.adapters.store.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresStore

sys.path.insert(0, str(Path(__file__).parent))  # services.py, next to this file
import services

T0 = 1_700_000_000_000


def fast_store(dsn: str, **kwargs: int) -> PostgresStore:
    """Short timeouts, so that an outage shows (and heals) within a test's patience."""
    return PostgresStore(
        dsn, connect_timeout_s=1.0, command_timeout_s=2.0, health_timeout_s=1.0, **kwargs
    )


@pytest.fixture
def dsn() -> str:
    return services.postgres_database()


@pytest.fixture
async def pair(dsn: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    """Two stores on one database, as two server instances would have."""
    a, b = PostgresStore(dsn), PostgresStore(dsn)
    await asyncio.gather(a.open(), b.open())  # both migrate at once: they take turns
    yield a, b
    await a.close()
    await b.close()


# --- several instances ----------------------------------------------------------------------------


async def test_two_instances_appending_to_one_document_get_every_seq_once(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = pair
    await a.create_document("d", title="", now_ms=T0)
    calls: dict[str, list[bytes]] = {"a": [], "b": []}
    seqs: dict[str, list[int]] = {"a": [], "b": []}

    async def instance(name: str, store: PostgresStore, waves: int, size: int) -> None:
        for w in range(waves):
            data = [f"{name}-{w}-{i}".encode() for i in range(size)]
            calls[name] += data
            got = await asyncio.gather(
                *(
                    store.append_update("d", u, edit_keys=[EditKey(name, u.decode())], now_ms=T0)
                    for u in data
                )
            )
            seqs[name] += got

    await asyncio.gather(instance("a", a, 8, 40), instance("b", b, 8, 40))

    everything = sorted(seqs["a"] + seqs["b"])
    assert everything == list(range(1, 641))  # no gap, no duplicate
    for name in ("a", "b"):  # each instance's call order is its log order
        assert seqs[name] == sorted(seqs[name])
    loaded = await b.load("d")
    assert loaded is not None and loaded.last_seq == 640
    by_seq = dict(loaded.updates)
    for name, store in (("a", a), ("b", b)):
        for seq, data in zip(seqs[name], calls[name], strict=True):
            assert by_seq[seq] == data
            assert await store.find_edit("d", name, data.decode()) == seq
    # Both instances did share transactions.
    assert a.commit_count < 320 and b.commit_count < 320


async def test_instances_writing_many_documents_in_opposite_orders_do_not_deadlock(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = pair
    docs = [f"d{i}" for i in range(12)]
    for d in docs:
        await a.create_document(d, title="", now_ms=T0)

    async def burst(store: PostgresStore, order: list[str]) -> list[int]:
        jobs = []
        for _ in range(5):
            for d in order:
                jobs.append(store.append_update(d, b"x", now_ms=T0))
                jobs.append(store.add_chat(d, author_id="u", author_name="U", text="t", now_ms=T0))
        results = await asyncio.gather(*jobs)
        return [r for r in results if isinstance(r, int)]

    started = time.monotonic()
    await asyncio.gather(burst(a, docs), burst(b, docs[::-1]), burst(a, docs[::-1]))
    assert time.monotonic() - started < 10  # no deadlock_timeout stalls piling up

    for d in docs:
        loaded = await a.load(d)
        assert loaded is not None
        assert [seq for seq, _ in loaded.updates] == list(range(1, 16))
        assert [m.id for m in await b.chat_history(d, limit=100)] == list(range(15, 0, -1))


async def test_a_snapshot_from_one_instance_and_appends_from_another_stay_consistent(
    pair: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = pair
    await a.create_document("d", title="", now_ms=T0)

    async def appender() -> None:
        for i in range(1, 101):
            assert await a.append_update("d", b"u", now_ms=T0 + i) >= i

    async def compactor() -> None:
        for _ in range(20):
            loaded = await b.load("d")
            assert loaded is not None
            await b.save_snapshot("d", b"s", loaded.last_seq)
            await asyncio.sleep(0)

    await asyncio.gather(appender(), compactor())
    loaded = await b.load("d")
    assert loaded is not None and loaded.last_seq == 100
    seqs = [seq for seq, _ in loaded.updates]
    assert seqs == list(range(loaded.snapshot_seq + 1, 101))
    info = await a.get_document("d")
    assert info is not None and info.size_bytes == 1 + len(seqs)


# --- group commit ---------------------------------------------------------------------------------


async def test_concurrent_appends_share_commits(dsn: str) -> None:
    async with PostgresStore(dsn) as store:
        await store.create_document("d", title="", now_ms=T0)
        before = store.commit_count

        seqs = await asyncio.gather(
            *(store.append_update("d", b"x" * 100, now_ms=T0) for _ in range(300))
        )

        assert seqs == list(range(1, 301))
        assert 1 <= store.commit_count - before < 300
        assert store.stats.largest_batch > 1


async def test_max_batch_bounds_the_writes_per_commit(dsn: str) -> None:
    async with PostgresStore(dsn, max_batch=7) as store:
        await store.create_document("d", title="", now_ms=T0)
        await asyncio.gather(*(store.append_update("d", b"x", now_ms=T0) for _ in range(50)))
        assert store.stats.largest_batch <= 7
        assert store.commit_count >= 1 + 50 // 7


async def test_a_statement_failing_in_a_batch_fails_only_its_own_call(dsn: str) -> None:
    async with PostgresStore(dsn) as store:
        await store.create_document("d", title="", now_ms=T0)
        results = await asyncio.gather(
            store.append_update("d", b"1", now_ms=T0),
            store._write("d", lambda c: c.execute("SELECT 1 / 0")),  # the statement fails
            store.add_chat("d", author_id="u", author_name="U", text="hi", now_ms=T0),
            store.append_update("d", b"2", now_ms=T0),
            return_exceptions=True,
        )
        assert results[0] == 1
        assert isinstance(results[1], StoreError) and not isinstance(results[1], StoreUnavailable)
        assert not isinstance(results[2], BaseException) and results[2].id == 1
        assert results[3] == 2
        loaded = await store.load("d")
        assert loaded is not None and loaded.updates == [(1, b"1"), (2, b"2")]
        with pytest.raises(ValueError):  # not a BIGINT: refused before it reaches the writer
            await store.append_update("d", b"bad", now_ms=2**70)


async def test_close_finishes_writes_already_submitted(dsn: str) -> None:
    store = PostgresStore(dsn)
    await store.open()
    await store.create_document("d", title="", now_ms=T0)
    tasks = [
        asyncio.create_task(store.append_update("d", b"%d" % i, now_ms=T0)) for i in range(100)
    ]
    await asyncio.sleep(0)  # let every task submit its write

    await store.close()

    assert [t.result() for t in tasks] == list(range(1, 101))
    async with PostgresStore(dsn) as reopened:
        loaded = await reopened.load("d")
        assert loaded is not None and len(loaded.updates) == 100


# --- PostgreSQL going away ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private_server() -> Iterator[services.PostgresServer]:
    """A server for this module's outage tests alone (each of them leaves it running)."""
    server = services.private_postgres()
    yield server
    server.destroy()


async def test_postgres_stopping_mid_run_fails_calls_quickly_and_heals_when_it_returns(
    private_server: services.PostgresServer,
) -> None:
    store = fast_store(private_server.create_database())
    await store.open()
    await store.create_document("d", title="", now_ms=T0)
    acked: dict[int, bytes] = {}
    failures: list[float] = []  # how long each failed call took
    stop_writing = asyncio.Event()

    async def writer(name: str) -> None:
        i = 0
        while not stop_writing.is_set():
            i += 1
            data = f"{name}-{i}".encode()
            started = time.monotonic()
            try:
                seq = await store.append_update("d", data, now_ms=T0)
            except StoreUnavailable:
                failures.append(time.monotonic() - started)
                await asyncio.sleep(0.02)
            else:
                assert seq not in acked
                acked[seq] = data

    writers = [asyncio.create_task(writer(f"w{n}")) for n in range(4)]
    try:
        await asyncio.sleep(0.3)
        assert acked, "nothing was written before the outage"

        await asyncio.to_thread(private_server.stop)  # fast shutdown, clients cut off
        failed_before = len(failures)
        deadline = time.monotonic() + 10
        while len(failures) < failed_before + 8:
            assert time.monotonic() < deadline, "appends neither failed nor hung up"
            await asyncio.sleep(0.05)
        assert await store.health() is False
        with pytest.raises(StoreUnavailable):
            await store.load("d")
        assert max(failures) < 5  # bounded by connect/command timeouts, never stuck

        acked_during_outage = len(acked)
        private_server.start()  # on this thread (see services.py); the loop waits meanwhile
        deadline = time.monotonic() + 10
        while len(acked) < acked_during_outage + 50:
            assert time.monotonic() < deadline, "appends did not resume after the restart"
            await asyncio.sleep(0.05)
        assert await store.health() is True
    finally:
        stop_writing.set()
        await asyncio.gather(*writers)

    loaded = await store.load("d")
    assert loaded is not None
    log = dict(loaded.updates)
    assert sorted(log) == list(range(1, loaded.last_seq + 1))  # no gap, even across the outage
    for seq, data in acked.items():  # every acknowledged update is there, at its seq
        assert log[seq] == data
    await store.close()


async def test_a_restart_between_two_writes_costs_no_error(
    private_server: services.PostgresServer,
) -> None:
    async with fast_store(private_server.create_database()) as store:
        await store.create_document("d", title="", now_ms=T0)
        assert await store.append_update("d", b"1", now_ms=T0) == 1
        assert await store.get_document("d") is not None

        private_server.stop()
        private_server.start()

        # The writer's and the pool's connections are dead; they are replaced transparently.
        assert await store.append_update("d", b"2", now_ms=T0) == 2
        loaded = await store.load("d")
        assert loaded is not None and loaded.updates == [(1, b"1"), (2, b"2")]


async def test_open_raises_store_unavailable_when_postgres_is_unreachable() -> None:
    store = fast_store(f"postgresql://postgres@127.0.0.1:{services.free_port()}/nowhere")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        await store.open()
    assert time.monotonic() - started < 5
    assert await store.health() is False
    with pytest.raises(StoreError):
        await store.append_update("d", b"x", now_ms=T0)


# --- schema and values ----------------------------------------------------------------------------


async def test_schema_version_is_recorded_and_a_newer_one_refused(dsn: str) -> None:
    async with PostgresStore(dsn):
        pass
    server = services.shared_postgres()
    database = dsn.rsplit("/", 1)[1]
    assert server.psql("SELECT version FROM schema_version", database).strip() == str(
        SCHEMA_VERSION
    )
    server.psql("UPDATE schema_version SET version = 99", database)

    store = PostgresStore(dsn)
    with pytest.raises(StoreError, match="schema version 99"):
        await store.open()
    assert await store.health() is False


async def test_a_version_1_database_is_migrated_and_its_edit_keys_still_count(dsn: str) -> None:
    server = services.shared_postgres()
    database = dsn.rsplit("/", 1)[1]
    statements = [
        "CREATE TABLE schema_version (version BIGINT NOT NULL)",
        "INSERT INTO schema_version VALUES (1)",
        *MIGRATIONS[0],
        "INSERT INTO documents (id, title, created_ms, updated_ms, last_seq) "
        "VALUES ('d', '', 0, 0, 1)",
        "INSERT INTO updates VALUES ('d', 1, '\\x00', 0)",
        "INSERT INTO edit_keys VALUES ('d', 'c', 'e', 1, 0)",
    ]
    server.psql(";\n".join(statements), database)
    async with PostgresStore(dsn) as store:
        assert await store.lookup_edit("d", "c", "e") == StoredEdit(1, "")
        with pytest.raises(DuplicateEdit):
            await store.append_update("d", b"again", edit_keys=[EditKey("c", "e")], now_ms=T0)
        seq = await store.append_update("d", b"x", edit_keys=[EditKey("c", "f", "h")], now_ms=T0)
        assert await store.lookup_edit("d", "c", "f") == StoredEdit(seq, "h")


async def test_document_order_is_bytewise_whatever_the_database_locale() -> None:
    server = services.shared_postgres()
    name = f"icu_{time.monotonic_ns()}"
    try:
        server.psql(
            f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'"
        )
    except services.ServiceError as exc:
        pytest.skip(f"this PostgreSQL has no ICU: {exc}")
    async with PostgresStore(server.dsn(name)) as store:
        ids = ["b", "a", "C", "B", "_x", "a-b", "a.b", "~"]
        for i in ids:
            await store.create_document(i, title="", now_ms=T0)
        assert [d.id for d in await store.list_documents()] == sorted(ids)
        assert [d.id for d in await store.list_documents(after="a")] == [
            i for i in sorted(ids) if i > "a"
        ]


async def test_nul_characters_are_refused_as_value_errors(dsn: str) -> None:
    async with PostgresStore(dsn) as store:
        with pytest.raises(ValueError, match="NUL"):
            await store.create_document("d", title="a\x00b", now_ms=T0)
        await store.create_document("d", title="", now_ms=T0)
        with pytest.raises(ValueError, match="NUL"):
            await store.append_update("d", b"x", edit_keys=[EditKey("c\x00", "e")], now_ms=T0)
        with pytest.raises(ValueError, match="NUL"):
            await store.add_chat("d", author_id="u", author_name="U", text="\x00", now_ms=T0)
        assert await store.find_edit("d", "c\x00", "e") is None
        assert [d.id for d in await store.list_documents(after="c\x00zz")] == ["d"]
        await store.append_update("d", b"\x00bytes are fine\x00", now_ms=T0)
        loaded = await store.load("d")
        assert loaded is not None and loaded.updates == [(1, b"\x00bytes are fine\x00")]


def test_only_postgresql_urls_are_accepted() -> None:
    for dsn in ("sqlite:///x.db", "/tmp/x.db", "redis://localhost"):
        with pytest.raises(ValueError, match="postgresql://"):
            PostgresStore(dsn)
    assert "secret" not in repr(PostgresStore("postgresql://u:secret@h/db"))


async def test_a_version_4_database_has_its_versions_packed(dsn: str) -> None:
    """Migration 5 packs the ``versions`` rows schema 4 stored (those of the SQLite fixture,
    ``fixtures/schema4_versions.py``, written as schema 4's append did)."""
    import asyncpg

    sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
    import schema4_versions

    from cowrite.adapters.store._versions import encode_authors

    server = services.shared_postgres()
    database = dsn.rsplit("/", 1)[1]
    statements = [
        "CREATE TABLE schema_version (version BIGINT NOT NULL)",
        "INSERT INTO schema_version VALUES (4)",
        *(s for m in MIGRATIONS[:4] for s in m),
        "INSERT INTO documents (id, title, created_ms, updated_ms, last_seq) "
        "VALUES ('doc', '', 0, 0, 700)",
    ]
    server.psql(";\n".join(statements), database)
    expected = schema4_versions.expected()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(
            "INSERT INTO versions (doc_id, seq, time_ms, authors, how, size, vector, "
            "restored_from, name, named_ms, merged) "
            "VALUES ('doc', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            [
                (
                    v.seq,
                    v.time_ms,
                    encode_authors(v.authors),
                    v.how,
                    v.size,
                    v.vector,
                    v.restored_from,
                    v.name,
                    v.named_ms,
                    v.merged,
                )
                for v in expected
            ],
        )
    finally:
        await conn.close()
    async with PostgresStore(dsn, version_block=64) as store:
        assert await store.list_versions("doc", limit=10_000) == expected
        assert await store.get_version("doc", 333) == expected[332]
        named = await store.list_versions("doc", named_only=True)
        assert [v.seq for v in named] == sorted(schema4_versions.NAMED)
    rows = server.psql("SELECT count(*), sum(n) FROM version_blocks", database)
    assert rows.split() == ["11|700"] or "700" in rows
