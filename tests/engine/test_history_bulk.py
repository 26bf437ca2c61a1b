"""The bulk decode of encoded delete records (``history_bulk.delete_columns``): the general
decoder's columns, or None (never a different answer, never an exception) for anything else,
garbage included."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite.engine import DecodeError
from cowrite.engine.doc_parts import DeleteColumns
from cowrite.engine.document import Document
from cowrite.engine.encoding import encode_ops
from cowrite.engine.history_bulk import delete_columns
from cowrite.engine.history_index import decode_chunks
from cowrite.engine.ids import CLIENT_BITS
from cowrite.engine.oplog import decode_delete_chunks
from cowrite.engine.ops import DeleteOp, Op

from .test_history_index import Edit, _apply, edits


def _plain(cols: list[DeleteColumns]) -> list[tuple[list[int], ...]]:
    out = [tuple(list(c) for c in client) for client in cols]
    while out and not any(out[-1]):
        out.pop()
    return out


def _loaded(script: list[Edit]) -> Document:
    docs = [Document(1), Document(2)]
    _apply(docs, script)
    a, b = docs
    a.merge(b.encode_state())
    return Document.load(a.encode_state(), 1)


@settings(max_examples=40, deadline=None)
@given(script=edits)
def test_the_bulk_decode_gives_the_general_decoders_columns(script: list[Edit]) -> None:
    doc = _loaded(script)
    for chunk in doc._lazy_dels:
        bulk = delete_columns(doc, chunk[0])
        assert bulk is not None  # (the common shape: a state's delete records)
        assert _plain(bulk) == _plain(decode_delete_chunks(doc, [chunk]))
    assert _plain(decode_chunks(doc, list(doc._lazy_dels))) == _plain(
        decode_delete_chunks(doc, list(doc._lazy_dels))
    )


def _multi_span_chunk() -> tuple[Document, bytes]:
    """A chunk of deletes with several spans each, over two replicas' elements."""
    a, b = Document(1), Document(2)
    a.text("t").insert(0, "abcdefgh")
    b.merge(a.encode_state())
    b.text("t").insert(8, "ijkl")
    a.merge(b.encode_state())
    ta = a.text("t").id
    ids = [item.id for item in a.sequence(ta).items()]
    me = a.known_client(1)
    assert me is not None
    ops: list[Op] = [
        DeleteOp((5 << CLIENT_BITS) | me, ta, ((ids[0], 2), (ids[0] + (4 << CLIENT_BITS), 3))),
        DeleteOp((6 << CLIENT_BITS) | me, ta, ((ids[1], 1),)),
    ]
    return a, encode_ops(a, ops)


def test_several_spans_and_replicas_decode_as_the_general_decoder_does() -> None:
    doc, data = _multi_span_chunk()
    bulk = delete_columns(doc, data)
    assert bulk is not None
    assert _plain(bulk) == _plain(decode_delete_chunks(doc, [(data, {})]))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_garbage_never_decodes_to_anything_the_general_decoder_would_not_give(
    data: st.DataObject,
) -> None:
    doc = _loaded([(0, True, 0, "abcdef"), (0, False, 2, "ab"), (1, False, 0, "a")])
    chunks = [c[0] for c in doc._lazy_dels] or [_multi_span_chunk()[1]]
    raw = bytearray(data.draw(st.sampled_from(chunks)))
    for _ in range(data.draw(st.integers(1, 4))):
        how = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if how == "flip" and raw:
            raw[at] ^= data.draw(st.integers(1, 255))
        elif how == "cut":
            del raw[at:]
        else:
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
    garbage = bytes(raw)
    bulk = delete_columns(doc, garbage)  # never raises
    if bulk is None:
        return
    try:
        general = decode_delete_chunks(doc, [(garbage, {})])
    except (DecodeError, OverflowError) as exc:
        raise AssertionError(f"bulk decoded what the general decoder rejects: {exc}") from None
    assert _plain(bulk) == _plain(general)


def test_random_bytes_are_not_a_chunk() -> None:
    doc = _loaded([(0, True, 0, "abc"), (0, False, 0, "a")])
    for garbage in (b"", b"CWR", b"CWR\x02", b"CWR\x02\x08", b"CWR\x02\x08\x00", b"\xff" * 40):
        assert delete_columns(doc, garbage) is None
