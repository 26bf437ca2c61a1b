"""The contract every Store implementation must honour, run against each one."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from cowrite.adapters.store import (
    ChatMessage,
    Compacted,
    DocumentExists,
    DuplicateEdit,
    EditKey,
    Forbidden,
    MemoryStore,
    NotFound,
    SQLiteStore,
    Store,
    StoredEdit,
    StoreError,
    VersionRecord,
)
from cowrite.adapters.store.postgres import PostgresStore

sys.path.insert(0, str(Path(__file__).parent))  # services.py, next to this file
import services

T0 = 1_700_000_000_000


@dataclass
class Backend:
    name: str
    make: Callable[[], Store]  # memory: the same instance again; others: a new one on the same data


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "memory":
        shared = MemoryStore()
        return Backend("memory", lambda: shared)
    if request.param == "postgres":  # one database on the run-wide server, emptied per test
        dsn = services.postgres_emptied_database("store_contract")
        return Backend("postgres", lambda: PostgresStore(dsn))
    path = tmp_path / "cowrite.db"
    return Backend("sqlite", lambda: SQLiteStore(path))


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    s = backend.make()
    await s.open()
    yield s
    await s.close()


async def reopen(backend: Backend, store: Store) -> Store:
    await store.close()
    s = backend.make()
    await s.open()
    return s


# --- documents ------------------------------------------------------------------------------------


async def test_create_then_get_returns_metadata(store: Store) -> None:
    info = await store.create_document("notes", title="Notes", now_ms=T0)
    assert (info.id, info.title, info.created_ms, info.updated_ms, info.size_bytes) == (
        "notes",
        "Notes",
        T0,
        T0,
        0,
    )
    assert await store.get_document("notes") == info


async def test_a_document_keeps_its_kind(backend: Backend, store: Store) -> None:
    plain = await store.create_document("plain", title="", now_ms=T0)
    rich = await store.create_document("rich", title="", now_ms=T0, kind="yjs")
    assert (plain.kind, rich.kind) == ("crdt", "yjs")
    await store.append_update("rich", b"u", now_ms=T0)
    await store.save_snapshot("rich", b"s", 1)
    await store.update_title("rich", "Rich", now_ms=T0 + 1)
    store = await reopen(backend, store)
    try:
        assert [d.kind for d in await store.list_documents()] == ["crdt", "yjs"]
        got = await store.get_document("rich")
        assert got is not None and got.kind == "yjs"
        loaded = await store.load("rich")
        assert loaded is not None and loaded.kind == "yjs" and loaded.snapshot == b"s"
        loaded = await store.load("plain")
        assert loaded is not None and loaded.kind == "crdt"
        for bad in ("", "YJS", "y js", "x" * 17, "kind\x00"):
            with pytest.raises(ValueError):
                await store.create_document("bad", title="", now_ms=T0, kind=bad)
        assert await store.get_document("bad") is None
    finally:
        await store.close()


async def test_get_missing_document_returns_none(store: Store) -> None:
    assert await store.get_document("nope") is None


async def test_duplicate_create_raises_document_exists(store: Store) -> None:
    await store.create_document("notes", title="A", now_ms=T0)
    with pytest.raises(DocumentExists):
        await store.create_document("notes", title="B", now_ms=T0 + 1)
    info = await store.get_document("notes")
    assert info is not None and info.title == "A"


async def test_list_documents_is_ordered_by_id_and_paginates(store: Store) -> None:
    ids = ["b", "a", "c-1", "C", "a.b", "z~", "m_3"]
    for i in ids:
        await store.create_document(i, title=i.upper(), now_ms=T0)
    everything = [d.id for d in await store.list_documents()]
    assert everything == sorted(ids)

    pages: list[list[str]] = []
    after: str | None = None
    while page := await store.list_documents(limit=3, after=after):
        pages.append([d.id for d in page])
        after = page[-1].id
    assert pages == [sorted(ids)[0:3], sorted(ids)[3:6], sorted(ids)[6:]]


async def test_update_title_changes_title_and_updated_time(store: Store) -> None:
    await store.create_document("notes", title="Old", now_ms=T0)
    info = await store.update_title("notes", "New", now_ms=T0 + 5)
    assert (info.title, info.created_ms, info.updated_ms) == ("New", T0, T0 + 5)
    assert await store.get_document("notes") == info
    with pytest.raises(NotFound):
        await store.update_title("missing", "X", now_ms=T0)


async def test_delete_document_reports_whether_it_existed(store: Store) -> None:
    await store.create_document("notes", title="", now_ms=T0)
    assert await store.delete_document("notes") is True
    assert await store.delete_document("notes") is False
    assert await store.get_document("notes") is None
    assert await store.list_documents() == []


async def test_delete_document_removes_log_snapshot_edit_keys_and_chat(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    await store.append_update("d", b"u1", edit_keys=[EditKey("c", "e1")], now_ms=T0)
    await store.append_update("d", b"u2", now_ms=T0)
    await store.save_snapshot("d", b"snap", 1)
    await store.add_chat("d", author_id="u", author_name="U", text="hi", now_ms=T0)

    assert await store.delete_document("d")

    assert await store.load("d") is None
    assert await store.find_edit("d", "c", "e1") is None
    assert await store.chat_history("d") == []
    # A new document with the same id starts from nothing.
    await store.create_document("d", title="again", now_ms=T0 + 1)
    assert await store.append_update("d", b"v1", now_ms=T0 + 1) == 1
    message = await store.add_chat("d", author_id="u", author_name="U", text="yo", now_ms=T0)
    assert message.id == 1
    loaded = await store.load("d")
    assert loaded is not None
    assert (loaded.snapshot, loaded.snapshot_seq, loaded.updates) == (None, 0, [(1, b"v1")])
    assert await store.find_edit("d", "c", "e1") is None


BAD_IDS = ["", "a" * 129, "with space", "slash/", "ünïcode", "semi;colon", "dot\n", "%41"]


@pytest.mark.parametrize("bad_id", BAD_IDS)
async def test_bad_doc_ids_raise_value_error(store: Store, bad_id: str) -> None:
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.create_document(bad_id, title="", now_ms=T0),
        lambda: store.get_document(bad_id),
        lambda: store.update_title(bad_id, "t", now_ms=T0),
        lambda: store.delete_document(bad_id),
        lambda: store.append_update(bad_id, b"x", now_ms=T0),
        lambda: store.load(bad_id),
        lambda: store.save_snapshot(bad_id, b"", 0),
        lambda: store.find_edit(bad_id, "c", "e"),
        lambda: store.prune_edit_keys(bad_id, T0),
        lambda: store.add_chat(bad_id, author_id="a", author_name="A", text="t", now_ms=T0),
        lambda: store.edit_chat(bad_id, 1, author_id="a", text="t", now_ms=T0),
        lambda: store.delete_chat(bad_id, 1, author_id="a", now_ms=T0),
        lambda: store.chat_history(bad_id),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid document id"):
            await call()


async def test_longest_valid_doc_id_is_accepted(store: Store) -> None:
    doc_id = "Az09._~-" * 16
    assert len(doc_id) == 128
    info = await store.create_document(doc_id, title="", now_ms=T0)
    assert info.id == doc_id


# --- write-ahead log ------------------------------------------------------------------------------


async def test_append_returns_increasing_seqs_per_document(store: Store) -> None:
    await store.create_document("a", title="", now_ms=T0)
    await store.create_document("b", title="", now_ms=T0)
    assert [await store.append_update("a", b"%d" % i, now_ms=T0 + i) for i in range(3)] == [1, 2, 3]
    assert await store.append_update("b", b"x", now_ms=T0) == 1
    assert await store.append_update("a", b"y", now_ms=T0) == 4
    info = await store.get_document("a")
    assert info is not None and info.updated_ms == T0 + 2  # never goes backwards


async def test_append_to_missing_document_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.append_update("ghost", b"x", now_ms=T0)


async def test_load_missing_document_returns_none(store: Store) -> None:
    assert await store.load("ghost") is None


async def test_load_of_new_document_is_empty(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    loaded = await store.load("d")
    assert loaded is not None
    assert (loaded.snapshot, loaded.snapshot_seq, loaded.updates, loaded.last_seq) == (
        None,
        0,
        [],
        0,
    )


async def test_load_returns_snapshot_and_later_updates(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    for i in range(1, 6):
        await store.append_update("d", b"u%d" % i, now_ms=T0)
    assert await store.save_snapshot("d", b"state@3", 3) is True

    loaded = await store.load("d")

    assert loaded is not None
    assert loaded.snapshot == b"state@3"
    assert loaded.snapshot_seq == 3
    assert loaded.updates == [(4, b"u4"), (5, b"u5")]
    assert loaded.last_seq == 5


async def test_updates_since_returns_the_log_after_a_seq(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    assert await store.updates_since("d", 0) == []
    for i in range(1, 6):
        await store.append_update("d", b"u%d" % i, now_ms=T0)
    assert await store.updates_since("d", 3) == [(4, b"u4"), (5, b"u5")]
    assert await store.updates_since("d", 5) == []
    assert await store.save_snapshot("d", b"state@3", 3)
    assert await store.updates_since("d", 3) == [(4, b"u4"), (5, b"u5")]
    with pytest.raises(Compacted):
        await store.updates_since("d", 2)  # seq 3 is only in the snapshot now
    with pytest.raises(NotFound):
        await store.updates_since("ghost", 0)


async def test_save_snapshot_compacts_only_up_to_upto_seq(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    for i in range(1, 4):
        await store.append_update("d", b"u%d" % i, now_ms=T0)
    # The snapshot was taken at seq 2; seq 3 arrived meanwhile and must stay.
    assert await store.save_snapshot("d", b"state@2", 2)
    assert await store.append_update("d", b"u4", now_ms=T0) == 4

    loaded = await store.load("d")
    assert loaded is not None
    assert (loaded.snapshot_seq, loaded.updates) == (2, [(3, b"u3"), (4, b"u4")])


async def test_stale_snapshot_is_ignored(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    for i in range(1, 5):
        await store.append_update("d", b"u%d" % i, now_ms=T0)
    assert await store.save_snapshot("d", b"state@3", 3) is True
    assert await store.save_snapshot("d", b"state@1", 1) is False

    loaded = await store.load("d")
    assert loaded is not None
    assert (loaded.snapshot, loaded.snapshot_seq, loaded.updates) == (b"state@3", 3, [(4, b"u4")])


async def test_snapshot_at_same_seq_replaces_it(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    await store.append_update("d", b"u1", now_ms=T0)
    assert await store.save_snapshot("d", b"first", 1)
    assert await store.save_snapshot("d", b"second", 1)
    loaded = await store.load("d")
    assert loaded is not None and loaded.snapshot == b"second"


async def test_snapshot_beyond_the_log_raises_value_error(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    await store.append_update("d", b"u1", now_ms=T0)
    with pytest.raises(ValueError, match="upto_seq"):
        await store.save_snapshot("d", b"future", 2)
    with pytest.raises(ValueError, match="upto_seq"):
        await store.save_snapshot("d", b"negative", -1)
    with pytest.raises(NotFound):
        await store.save_snapshot("ghost", b"s", 0)


async def test_seqs_continue_after_compaction(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    for i in range(1, 4):
        await store.append_update("d", b"u%d" % i, now_ms=T0)
    await store.save_snapshot("d", b"state@3", 3)  # the whole log is compacted away
    assert await store.append_update("d", b"u4", now_ms=T0) == 4
    loaded = await store.load("d")
    assert loaded is not None and loaded.updates == [(4, b"u4")]


async def test_size_bytes_counts_snapshot_and_log(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    await store.append_update("d", b"12345", now_ms=T0)
    await store.append_update("d", b"123", now_ms=T0)
    info = await store.get_document("d")
    assert info is not None and info.size_bytes == 8
    await store.save_snapshot("d", b"1234567890", 1)
    info = await store.get_document("d")
    assert info is not None and info.size_bytes == 10 + 3
    [listed] = await store.list_documents()
    assert listed.size_bytes == 13


async def test_edit_keys_are_found_after_append(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    keys = [EditKey("alice", "1"), EditKey("alice", "2"), EditKey("bob", "1")]
    seq = await store.append_update("d", b"batch", edit_keys=keys, now_ms=T0)
    for key in keys:
        assert await store.find_edit("d", key.client_id, key.edit_id) == seq
    assert await store.find_edit("d", "alice", "3") is None
    assert await store.find_edit("other", "alice", "1") is None


async def test_an_append_with_a_known_edit_key_is_refused_atomically(store: Store) -> None:
    """Two writers (two instances) storing the same edit: the second stores nothing at all."""
    await store.create_document("d", title="", now_ms=T0)
    first = await store.append_update(
        "d", b"a", edit_keys=[EditKey("c", "e", "digest-1")], now_ms=T0
    )
    with pytest.raises(DuplicateEdit) as refused:
        await store.append_update(
            "d", b"b", edit_keys=[EditKey("c", "other"), EditKey("c", "e")], now_ms=T0
        )
    assert (refused.value.seq, refused.value.digest) == (first, "digest-1")
    assert await store.find_edit("d", "c", "e") == first
    assert await store.find_edit("d", "c", "other") is None  # not stored either
    loaded = await store.load("d")
    assert loaded is not None and loaded.updates == [(first, b"a")] and loaded.last_seq == first
    assert await store.append_update("d", b"c", now_ms=T0) == first + 1  # no seq was burnt


async def test_concurrent_appends_of_one_key_store_it_once(store: Store) -> None:
    """Submitted together (one group commit): exactly one is stored, the others refused."""
    await store.create_document("d", title="", now_ms=T0)
    results = await asyncio.gather(
        *(
            store.append_update("d", b"%d" % i, edit_keys=[EditKey("c", "e")], now_ms=T0)
            for i in range(5)
        ),
        store.append_update("d", b"free", edit_keys=[EditKey("c", "f")], now_ms=T0),
        return_exceptions=True,
    )
    stored = [r for r in results[:5] if isinstance(r, int)]
    assert len(stored) == 1
    refused = [r for r in results[:5] if not isinstance(r, int)]
    assert all(isinstance(r, DuplicateEdit) and r.seq == stored[0] for r in refused)
    assert isinstance(results[5], int)
    loaded = await store.load("d")
    assert loaded is not None and len(loaded.updates) == 2


async def test_edit_keys_keep_their_digest(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    seq = await store.append_update("d", b"u", edit_keys=[EditKey("c", "e", "abc")], now_ms=T0)
    assert await store.lookup_edit("d", "c", "e") == StoredEdit(seq, "abc")
    assert await store.lookup_edit("d", "c", "x") is None
    assert await store.lookup_edit("nope", "c", "e") is None


async def test_edit_keys_survive_close_and_reopen(backend: Backend, store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    seq = await store.append_update("d", b"u", edit_keys=[EditKey("c", "e")], now_ms=T0)

    reopened = await reopen(backend, store)
    try:
        assert await reopened.find_edit("d", "c", "e") == seq
        loaded = await reopened.load("d")
        assert loaded is not None and loaded.updates == [(seq, b"u")]
        assert await reopened.append_update("d", b"v", now_ms=T0) == seq + 1
    finally:
        await reopened.close()


async def test_prune_edit_keys_forgets_only_old_keys(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    await store.create_document("other", title="", now_ms=T0)
    await store.append_update("d", b"1", edit_keys=[EditKey("c", "old")], now_ms=T0)
    await store.append_update("d", b"2", edit_keys=[EditKey("c", "new")], now_ms=T0 + 100)
    await store.append_update("other", b"1", edit_keys=[EditKey("c", "old")], now_ms=T0)

    assert await store.prune_edit_keys("d", older_than_ms=T0 + 100) == 1

    assert await store.find_edit("d", "c", "old") is None
    assert await store.find_edit("d", "c", "new") == 2
    assert await store.find_edit("other", "c", "old") == 1


async def test_bad_edit_keys_raise_value_error(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    for key in [EditKey("", "e"), EditKey("c", ""), EditKey("c", "e" * 257)]:
        with pytest.raises(ValueError, match="edit key"):
            await store.append_update("d", b"x", edit_keys=[key], now_ms=T0)
    loaded = await store.load("d")
    assert loaded is not None and loaded.last_seq == 0


async def test_concurrent_appends_are_durable_and_in_call_order(
    backend: Backend, store: Store
) -> None:
    docs = ["a", "b", "c"]
    for d in docs:
        await store.create_document(d, title="", now_ms=T0)
    calls = [(docs[i % 3], b"update-%03d" % i) for i in range(200)]

    seqs = await asyncio.gather(
        *(
            store.append_update(d, data, edit_keys=[EditKey("c", data.decode())], now_ms=T0)
            for d, data in calls
        )
    )

    reopened = await reopen(backend, store)
    try:
        for d in docs:
            sent = [data for doc, data in calls if doc == d]
            got = [s for (doc, _), s in zip(calls, seqs, strict=True) if doc == d]
            assert got == list(range(1, len(sent) + 1))  # call order is log order
            loaded = await reopened.load(d)
            assert loaded is not None
            assert loaded.updates == list(zip(got, sent, strict=True))
        for (d, data), seq in zip(calls, seqs, strict=True):
            assert await reopened.find_edit(d, "c", data.decode()) == seq
    finally:
        await reopened.close()


async def test_a_failing_write_does_not_undo_the_others(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    results = await asyncio.gather(
        store.append_update("d", b"1", now_ms=T0),
        store.append_update("ghost", b"x", now_ms=T0),
        store.create_document("d", title="dup", now_ms=T0),
        store.append_update("d", b"2", now_ms=T0),
        return_exceptions=True,
    )
    assert results[0] == 1
    assert isinstance(results[1], NotFound)
    assert isinstance(results[2], DocumentExists)
    assert results[3] == 2
    loaded = await store.load("d")
    assert loaded is not None and loaded.updates == [(1, b"1"), (2, b"2")]


async def test_load_is_consistent_while_snapshots_and_appends_race(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)

    async def writer() -> None:
        for i in range(1, 101):
            seq = await store.append_update("d", b"u%d" % i, now_ms=T0)
            if i % 10 == 0:
                await store.save_snapshot("d", b"s%d" % seq, seq - 3)

    async def reader() -> None:
        for _ in range(50):
            loaded = await store.load("d")
            assert loaded is not None
            seqs = [seq for seq, _ in loaded.updates]
            expected_first = loaded.snapshot_seq + 1
            assert seqs == list(range(expected_first, expected_first + len(seqs)))
            assert loaded.last_seq == (seqs[-1] if seqs else loaded.snapshot_seq)
            for seq, data in loaded.updates:
                assert data == b"u%d" % seq
            await asyncio.sleep(0)

    await asyncio.gather(writer(), reader(), reader())


# --- chat -----------------------------------------------------------------------------------------


async def test_chat_ids_increase_per_document(store: Store) -> None:
    await store.create_document("a", title="", now_ms=T0)
    await store.create_document("b", title="", now_ms=T0)
    m1 = await store.add_chat("a", author_id="u1", author_name="Ann", text="hi", now_ms=T0)
    m2 = await store.add_chat("a", author_id="u2", author_name="Bo", text="yo", now_ms=T0 + 1)
    m3 = await store.add_chat("b", author_id="u1", author_name="Ann", text="b!", now_ms=T0 + 2)
    assert (m1.id, m2.id, m3.id) == (1, 2, 1)
    assert m1 == ChatMessage(1, "a", "u1", "Ann", "hi", T0, None, False)


async def test_chat_on_missing_document_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        await store.add_chat("ghost", author_id="u", author_name="U", text="t", now_ms=T0)
    assert await store.chat_history("ghost") == []


async def test_chat_history_pages_newest_first(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    for i in range(1, 8):
        await store.add_chat("d", author_id="u", author_name="U", text=f"m{i}", now_ms=T0 + i)

    pages: list[list[int]] = []
    before: int | None = None
    while page := await store.chat_history("d", before=before, limit=3):
        pages.append([m.id for m in page])
        before = page[-1].id

    assert pages == [[7, 6, 5], [4, 3, 2], [1]]
    assert [m.text for m in await store.chat_history("d", limit=2)] == ["m7", "m6"]


async def test_edit_chat_replaces_text_and_sets_edited_time(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    m = await store.add_chat("d", author_id="u", author_name="U", text="tpyo", now_ms=T0)
    edited = await store.edit_chat("d", m.id, author_id="u", text="typo", now_ms=T0 + 9)
    assert edited == ChatMessage(m.id, "d", "u", "U", "typo", T0, T0 + 9, False)
    assert await store.chat_history("d") == [edited]


async def test_edit_chat_by_another_author_raises_forbidden(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    m = await store.add_chat("d", author_id="u", author_name="U", text="mine", now_ms=T0)
    with pytest.raises(Forbidden):
        await store.edit_chat("d", m.id, author_id="mallory", text="yours", now_ms=T0)
    with pytest.raises(Forbidden):
        await store.delete_chat("d", m.id, author_id="mallory", now_ms=T0)
    assert [x.text for x in await store.chat_history("d")] == ["mine"]


async def test_edit_or_delete_missing_chat_raises_not_found(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    with pytest.raises(NotFound):
        await store.edit_chat("d", 1, author_id="u", text="x", now_ms=T0)
    with pytest.raises(NotFound):
        await store.delete_chat("d", 1, author_id="u", now_ms=T0)


async def test_delete_chat_is_soft_and_idempotent(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    m1 = await store.add_chat("d", author_id="u", author_name="U", text="secret", now_ms=T0)
    m2 = await store.add_chat("d", author_id="u", author_name="U", text="kept", now_ms=T0)

    deleted = await store.delete_chat("d", m1.id, author_id="u", now_ms=T0 + 3)

    assert deleted == ChatMessage(m1.id, "d", "u", "U", "", T0, T0 + 3, True)
    assert await store.delete_chat("d", m1.id, author_id="u", now_ms=T0 + 4) == deleted
    assert await store.chat_history("d") == [m2, deleted]
    with pytest.raises(NotFound):
        await store.edit_chat("d", m1.id, author_id="u", text="back", now_ms=T0)


# --- integers out of range ------------------------------------------------------------------------

OUT_OF_RANGE = [2**63, -(2**63) - 1, 2**100]


@pytest.mark.parametrize("bad", OUT_OF_RANGE)
async def test_out_of_range_integers_are_refused_and_the_store_carries_on(
    store: Store, bad: int
) -> None:
    """Every integer reaching a store is bounded to 64 bits: a larger one is a `ValueError` for
    that call only (it once killed the SQLite writer: nothing was stored after it)."""
    await store.create_document("d", title="", now_ms=T0)
    message = await store.add_chat("d", author_id="u", author_name="U", text="hi", now_ms=T0)
    calls: list[Callable[[], Awaitable[object]]] = [
        lambda: store.edit_chat("d", bad, author_id="u", text="x", now_ms=T0),
        lambda: store.delete_chat("d", bad, author_id="u", now_ms=T0),
        lambda: store.edit_chat("d", message.id, author_id="u", text="x", now_ms=bad),
        lambda: store.delete_chat("d", message.id, author_id="u", now_ms=bad),
        lambda: store.chat_history("d", before=bad),
        lambda: store.chat_history("d", limit=bad),
        lambda: store.add_chat("d", author_id="u", author_name="U", text="x", now_ms=bad),
        lambda: store.append_update("d", b"u", now_ms=bad),
        lambda: store.updates_since("d", bad),
        lambda: store.save_snapshot("d", b"s", bad),
        lambda: store.prune_edit_keys("d", bad),
        lambda: store.create_document("e", title="", now_ms=bad),
        lambda: store.update_title("d", "t", now_ms=bad),
        lambda: store.list_documents(limit=bad),
        lambda: store.list_versions("d", after=bad),
        lambda: store.list_versions("d", limit=bad),
        lambda: store.get_version("d", bad),
        lambda: store.name_version("d", bad, "n", now_ms=T0),
        lambda: store.append_update("d", b"u", now_ms=T0, version=_version(T0, size=bad)),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            await call()
    assert await store.append_update("d", b"u", now_ms=T0) == 1
    edited = await store.edit_chat("d", message.id, author_id="u", text="yo", now_ms=T0 + 1)
    assert edited.text == "yo"
    assert await store.health()


# --- version history ------------------------------------------------------------------------------


def _version(time_ms: int, who: str = "u1", *, size: int = 3, how: str = "typed") -> VersionRecord:
    return VersionRecord(0, time_ms, ((who, who.upper()),), how, size, b"\x01\x02")


async def test_versions_are_stored_with_their_log_entry_and_outlive_it(
    backend: Backend, store: Store
) -> None:
    await store.create_document("d", title="", now_ms=T0)
    await store.append_update("d", b"u1", now_ms=T0, version=_version(T0))
    await store.append_update("d", b"u2", now_ms=T0)  # no version: none stored
    restored = VersionRecord(0, T0 + 5, (("u2", "Ann"),), "restored", 7, b"", restored_from=1)
    assert await store.append_update("d", b"u3", now_ms=T0 + 5, version=restored) == 3
    await store.save_snapshot("d", b"snap", 3)  # the log entries go, their versions stay
    store = await reopen(backend, store)
    listed = await store.list_versions("d")
    assert [v.seq for v in listed] == [1, 3]
    assert listed[0] == VersionRecord(1, T0, (("u1", "U1"),), "typed", 3, b"\x01\x02")
    assert listed[1].restored_from == 1 and listed[1].authors == (("u2", "Ann"),)
    assert await store.get_version("d", 3) == listed[1]
    assert await store.get_version("d", 2) is None
    assert await store.list_versions("missing") == []
    await store.close()


async def test_versions_page_by_seq(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    for i in range(5):
        await store.append_update("d", b"u", now_ms=T0 + i, version=_version(T0 + i))
    assert [v.seq for v in await store.list_versions("d", limit=2)] == [1, 2]
    assert [v.seq for v in await store.list_versions("d", after=2, limit=2)] == [3, 4]
    assert [v.seq for v in await store.list_versions("d", after=1, before=4)] == [2, 3]


async def test_named_versions_are_renamed_listed_and_never_thinned(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    for i in range(4):
        await store.append_update("d", b"u", now_ms=T0 + i, version=_version(T0 + i))
    named = await store.name_version("d", 2, "Draft sent to legal", now_ms=T0 + 9)
    assert (named.name, named.named_ms, named.seq) == ("Draft sent to legal", T0 + 9, 2)
    renamed = await store.name_version("d", 2, "Final", now_ms=T0 + 10)
    assert renamed.name == "Final"
    assert [v.seq for v in await store.list_versions("d", named_only=True)] == [2]
    merged = VersionRecord(4, T0 + 3, (("u1", "U1"), ("u2", "U2")), "typed", 9, b"", merged=3)
    assert await store.thin_versions("d", [1, 2, 3], [merged]) == 2  # 2 is named: kept
    listed = await store.list_versions("d")
    assert [v.seq for v in listed] == [2, 4]
    assert (listed[1].authors, listed[1].size, listed[1].merged) == (merged.authors, 9, 3)
    assert listed[1].vector == b"\x01\x02"  # only authors, size and merged change
    unnamed = await store.name_version("d", 2, None, now_ms=T0 + 11)
    assert unnamed.name is None and unnamed.named_ms is None
    with pytest.raises(NotFound):
        await store.name_version("d", 3, "gone", now_ms=T0)
    with pytest.raises(NotFound):
        await store.name_version("missing", 1, "x", now_ms=T0)
    with pytest.raises(ValueError):
        await store.name_version("d", 4, " ", now_ms=T0)
    with pytest.raises(ValueError):
        await store.name_version("d", 4, "x" * 201, now_ms=T0)


async def test_bad_versions_store_nothing(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    with pytest.raises(ValueError):
        await store.append_update("d", b"u", now_ms=T0, version=_version(T0, how="magic"))
    assert (await store.load("d")) is not None
    assert (await store.append_update("d", b"u", now_ms=T0)) == 1
    assert await store.list_versions("d") == []


async def test_deleting_a_document_deletes_its_versions(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    await store.append_update("d", b"u", now_ms=T0, version=_version(T0))
    await store.delete_document("d")
    await store.create_document("d", title="", now_ms=T0)
    assert await store.list_versions("d") == []
    assert await store.get_version("d", 1) is None


# --- lifecycle ------------------------------------------------------------------------------------


async def test_health_is_true_when_open_and_false_when_closed(store: Store) -> None:
    assert await store.health() is True
    await store.close()
    assert await store.health() is False


async def test_a_working_store_is_alive_open_or_closed(store: Store) -> None:
    """``alive`` (for /healthz) is False only for a writer that died and cannot restart."""
    assert await store.alive() is True
    await store.close()
    assert await store.alive() is True


async def test_calls_on_a_closed_store_raise_store_error(store: Store) -> None:
    await store.create_document("d", title="", now_ms=T0)
    await store.close()
    with pytest.raises(StoreError):
        await store.append_update("d", b"x", now_ms=T0)
    with pytest.raises(StoreError):
        await store.load("d")


async def test_close_is_idempotent(store: Store) -> None:
    await store.close()
    await store.close()


async def test_a_snapshot_giving_up_a_version_named_meanwhile_is_refused(store: Store) -> None:
    """``drops``: the versions whose value a (Yjs) snapshot gives up; named by the time it is
    stored (maybe by another instance), they make the store refuse it: nothing changes."""
    await store.create_document("d", title="", now_ms=T0)
    for i in range(4):
        await store.append_update("d", b"u%d" % i, now_ms=T0 + i, version=_version(T0 + i))
    await store.name_version("d", 2, "kept", now_ms=T0 + 9)
    assert await store.save_snapshot("d", b"folds 2", 3, drops=[1, 2]) is False
    loaded = await store.load("d")
    assert loaded is not None and loaded.snapshot_seq == 0 and len(loaded.updates) == 4
    assert await store.save_snapshot("d", b"keeps 2", 3, drops=[1, 3]) is True  # 2 kept
    loaded = await store.load("d")
    assert loaded is not None and (loaded.snapshot, loaded.snapshot_seq) == (b"keeps 2", 3)
    await store.name_version("d", 2, None, now_ms=T0 + 10)  # unnamed: it may go
    await store.append_update("d", b"u4", now_ms=T0 + 11, version=_version(T0 + 11))
    assert await store.save_snapshot("d", b"folds 2", 5, drops=[2, 3, 4]) is True
    for bad in ([2**63], ["1"], [True]):
        with pytest.raises(ValueError):
            await store.save_snapshot("d", b"s", 5, drops=bad)  # type: ignore[list-item]
