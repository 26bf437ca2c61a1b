"""The delete index history views read, and its first build in a worker thread (``IndexBuild``):
whatever happens to the document between ``run`` and ``install`` (edits, a synchronous build, a
compaction), the installed index is the one ``delete_index`` would build, and past values read
through it are exact."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite.engine import DecodeError, history
from cowrite.engine.compaction import compact
from cowrite.engine.document import Document
from cowrite.engine.history_index import _INDEXES, DeleteIndex, delete_index, history_build

Edit = tuple[int, bool, int, str]  # (replica 0/1, insert?, position, text)

edits = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.booleans(),
        st.integers(0, 60),
        st.text(alphabet="abcdef", min_size=1, max_size=4),
    ),
    max_size=30,
)


def _apply(docs: list[Document], script: list[Edit]) -> list[dict[int, int]]:
    """Apply ``script`` (deletes of up to 3 characters, some concurrent), syncing the two
    replicas after every other edit; the versions of ``docs[0]`` after each sync."""
    seen = []
    for k, (who, insert, pos, text) in enumerate(script):
        doc = docs[who]
        node = doc.text("body")
        if insert:
            node.insert(min(pos, len(node)), text)
        elif len(node):
            at = min(pos, len(node) - 1)
            node.delete(at, min(len(text), len(node) - at))
        if k % 2:
            a, b = docs
            a.merge(b.encode_state())
            b.merge(a.encode_state())
            seen.append(a.version)
    return seen


def _loaded(script: list[Edit]) -> tuple[Document, Document]:
    """Two replicas after ``script``; the first as a state load leaves it (records encoded)."""
    docs = [Document(1), Document(2)]
    _apply(docs, script)
    a, b = docs
    a.merge(b.encode_state())
    return Document.load(a.encode_state(), 1), b


def _same(x: DeleteIndex, y: DeleteIndex) -> None:
    assert [list(c) for c in x.dcl] == [list(c) for c in y.dcl]
    assert [list(c) for c in x.dseq] == [list(c) for c in y.dseq]
    assert {k: sorted(v) for k, v in x.multi.items()} == {k: sorted(v) for k, v in y.multi.items()}


def _rebuilt(doc: Document) -> DeleteIndex:
    index = DeleteIndex(doc.base, doc._del_cols)
    index.update(doc)
    return index


@settings(max_examples=40, deadline=None)
@given(before=edits, between=edits)
def test_a_build_in_a_thread_installs_the_index_a_synchronous_build_makes(
    before: list[Edit], between: list[Edit]
) -> None:
    doc, other = _loaded(before)
    build = history_build(doc)
    assert build is not None
    worker = threading.Thread(target=build.run)
    worker.start()
    worker.join()
    seen = _apply([doc, other], between)  # edits after the build read the document
    index = build.install()
    assert _INDEXES[doc] is index
    _same(index, _rebuilt(doc))
    assert history_build(doc) is None  # later reads only bring it up to date
    for version in seen:
        assert history.value_at(doc, version) == _replayed(before, between, version)


def _replayed(before: list[Edit], between: list[Edit], version: dict[int, int]) -> object:
    """The value at ``version`` as a document that never went through a build computes it."""
    docs = [Document(1), Document(2)]
    _apply(docs, before)
    a, b = docs
    a.merge(b.encode_state())
    _apply([a, b], between)
    return history.value_at(a, version)


def test_records_decoded_meanwhile_make_install_build_on_the_owner_thread() -> None:
    doc, _ = _loaded([(0, True, 0, "hello world"), (1, False, 2, "abc"), (0, False, 0, "x")])
    assert doc._lazy_dels
    build = history_build(doc)
    assert build is not None
    build.run()
    doc._dels  # noqa: B018 (e.g. compaction or a delta decoded them meanwhile)
    index = build.install()
    _same(index, _rebuilt(doc))
    assert history.value_at(doc, doc.version) == doc.to_json()


def test_a_compaction_meanwhile_discards_the_build() -> None:
    doc, _ = _loaded([(0, True, 0, "hello world"), (0, False, 2, "abc"), (1, True, 0, "yo")])
    build = history_build(doc)
    assert build is not None
    build.run()
    compact(doc, doc.version)
    index = build.install()
    assert index.base == doc.base
    _same(index, _rebuilt(doc))
    assert history.value_at(doc, doc.version) == doc.to_json()


def test_an_index_built_synchronously_first_is_kept() -> None:
    doc, _ = _loaded([(0, True, 0, "hello"), (0, False, 1, "ab")])
    build = history_build(doc)
    assert build is not None
    index = delete_index(doc)
    build.run()
    assert build.install() is index


def test_damaged_encoded_records_fail_the_run_and_leave_the_document_alone() -> None:
    doc, _ = _loaded([(0, True, 0, "hello world"), (0, False, 2, "abc")])
    data, bound = doc._lazy_dels[0]
    doc._lazy_dels[0] = (data[: len(data) // 2] + b"\xff" * 7, bound)
    build = history_build(doc)
    assert build is not None
    with pytest.raises(DecodeError):
        build.run()
    assert len(doc._lazy_dels) == 1 and doc not in _INDEXES
