"""The binary encoding of deltas and states: round trips, and a decoder that survives anything.

Contract under test (``Document.merge`` / ``encoding.decode_ops``): malformed bytes raise exactly
``DecodeError``; well-formed bytes whose ops contradict the document (an insert into a map, a set
on a text...) raise exactly ``InvalidOperation``; anything else merges. Never another exception
type, never a hang, and the receiving document stays valid and keeps merging good deltas.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cowrite.engine.clock import Timestamp
from cowrite.engine.codec import Writer
from cowrite.engine.compaction import compact
from cowrite.engine.document import Document
from cowrite.engine.encoding import FORMAT_VERSION, MAGIC, decode_ops, encode_ops
from cowrite.engine.errors import DecodeError, InvalidOperation, ResyncNeeded
from cowrite.engine.ids import NO_ID, ONE, pack
from cowrite.engine.ops import AddOp, DeleteOp, InsertOp, NewNode, NodeKind, SetOp

SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

CHARS = st.one_of(st.sampled_from("ab \n😀𝄞é"), st.characters())
TEXTS = st.text(CHARS, min_size=1, max_size=8)
JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(1 << 63), (1 << 63) - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(CHARS, max_size=4),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text("ab😀", max_size=2), inner, max_size=3)
    ),
    max_leaves=6,
)
ROOTS = (
    ("t", NodeKind.TEXT),
    ("l", NodeKind.LIST),
    ("m", NodeKind.MAP),
    ("r", NodeKind.REGISTER),
    ("c", NodeKind.COUNTER),
)


def know_roots(doc: Document) -> Document:
    for name, kind in ROOTS:
        doc.root(kind, name)
    return doc


def random_edits(doc: Document, data: st.DataObject, steps: int) -> list[dict[int, int]]:
    """Random edits of every kind; returns the versions the document went through."""
    versions = [doc.version]
    t, lst, m = doc.text("t"), doc.list("l"), doc.map("m")
    for _ in range(steps):
        what = data.draw(st.integers(0, 9), label="edit")
        if what <= 2:
            pos = data.draw(st.integers(0, len(t)))
            text = data.draw(TEXTS)
            if what == 2:
                for k, ch in enumerate(text):
                    t.insert(pos + k, ch)
            else:
                t.insert(pos, text)
        elif what == 3 and len(t):
            pos = data.draw(st.integers(0, len(t) - 1))
            t.delete(pos, data.draw(st.integers(1, len(t) - pos)))
        elif what == 4:
            lst.insert(data.draw(st.integers(0, len(lst))), data.draw(st.lists(JSON, min_size=1)))
        elif what == 5 and len(lst):
            pos = data.draw(st.integers(0, len(lst) - 1))
            lst.delete(pos, data.draw(st.integers(1, len(lst) - pos)))
        elif what == 6:
            key = data.draw(st.sampled_from(["a", "b", "😀", ""]))
            if data.draw(st.booleans()):
                m.set(key, data.draw(JSON))
            else:
                m.delete(key)
        elif what == 7:
            kind = data.draw(st.sampled_from(list(NodeKind)))
            child = m.set_new(data.draw(st.sampled_from(["n1", "n2"])), kind)
            if kind is NodeKind.TEXT:
                child.insert(0, data.draw(TEXTS))
            elif kind is NodeKind.LIST:
                child.insert_new(0, NodeKind.COUNTER).add(3)
        elif what == 8:
            doc.register("r").set(data.draw(JSON))
        else:
            doc.counter("c").add(data.draw(st.integers(-(1 << 62), 1 << 62)))
        versions.append(doc.version)
    return versions


def snapshot(doc: Document) -> tuple[Any, dict[int, int], int]:
    return doc.to_json(), doc.version, doc.pending_ops


def sample_doc(replica: int = 7) -> Document:
    """A small document with every op kind, nested nodes, non-BMP text and tombstones."""
    doc = know_roots(Document(replica, now_ms=lambda: 1_700_000_000_000))
    t = doc.text("t")
    t.insert(0, "hello wörld 😀𝄞")
    for k, ch in enumerate("typed"):
        t.insert(5 + k, ch)
    t.delete(2, 4)
    t.delete(1, 1)
    lst = doc.list("l")
    lst.insert(0, [1, "two", {"three": [3.5, None, True]}])
    lst.insert_new(1, NodeKind.TEXT).insert(0, "nested")
    lst.delete(0, 1)
    m = doc.map("m")
    m.set("k", {"deep": [1, 2]})
    m.delete("gone")
    m.set_new("child", NodeKind.MAP).set("x", -1)
    doc.register("r").set("value")
    doc.counter("c").add(-(1 << 62))
    doc.counter("c").add(5)
    return doc


def valid_after_delta() -> tuple[bytes, dict[str, Any]]:
    """A delta from an unrelated replica, on a root of its own: every receiver can merge it."""
    other = Document(424242, now_ms=lambda: 1)
    other.text("after").insert(0, "still merging")
    other.counter("after-c").add(2)
    return other.delta_since({}), {"after": "still merging", "after-c": 2}


def assert_fine_afterwards(doc: Document) -> None:
    doc.check_invariants()
    data, expected = valid_after_delta()
    doc.merge(data)
    doc.check_invariants()
    json = doc.to_json()
    for key, value in expected.items():
        assert json[key] == value


def merge_outcome(doc: Document, data: bytes) -> str:
    """Merge hostile ``data``: returns "ok", "decode" or "invalid"; any other exception fails.

    One more is allowed: ``ResyncNeeded`` when the bytes claim to be a compaction snapshot
    (``CWS``) and the receiver is not empty: snapshots load into empty documents only.
    """
    before = doc.version, doc.pending_ops
    try:
        doc.merge(data)
    except ResyncNeeded:
        assert bytes(data[:3]) == b"CWS"
        assert doc.version
        assert (doc.version, doc.pending_ops) == before
        return "resync"
    except DecodeError:
        assert (doc.version, doc.pending_ops) == before  # malformed: nothing applied
        return "decode"
    except InvalidOperation:
        return "invalid"
    return "ok"


# ---------------------------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), compress=st.booleans())
def test_state_round_trip(data: st.DataObject, compress: bool) -> None:
    doc = know_roots(Document(data.draw(st.integers(1, (1 << 64) - 1)), now_ms=lambda: 5))
    random_edits(doc, data, data.draw(st.integers(0, 20)))
    state = encode_ops(doc, doc.ops_since({}), compress_body=compress)
    loaded = know_roots(Document.load(state, replica=1 if doc.replica != 1 else 2))
    loaded.check_invariants()
    assert loaded.to_json() == doc.to_json()
    assert loaded.version == doc.version
    assert loaded.pending_ops == 0
    # re-encoding the loaded copy (whose runs may be split differently) loses nothing either
    again = know_roots(Document.load(loaded.encode_state(), replica=loaded.replica))
    assert again.to_json() == doc.to_json()
    assert again.version == doc.version


@SETTINGS
@given(data=st.data())
def test_delta_round_trip(data: st.DataObject) -> None:
    doc = know_roots(Document(3, now_ms=lambda: 5))
    versions = random_edits(doc, data, data.draw(st.integers(1, 20)))
    since = data.draw(st.sampled_from(versions), label="since")
    ops = doc.ops_since(since)
    for compress in (False, True):
        encoded = encode_ops(doc, ops, compress_body=compress)
        assert decode_ops(doc, encoded) == ops


@SETTINGS
@given(data=st.data())
def test_deltas_into_an_older_replica(data: st.DataObject) -> None:
    doc = know_roots(Document(3, now_ms=lambda: 5))
    random_edits(doc, data, data.draw(st.integers(0, 10)))
    old = know_roots(Document.load(doc.encode_state(), 4))
    since = doc.version
    random_edits(doc, data, data.draw(st.integers(1, 10)))
    old.merge(doc.delta_since(since))
    assert old.to_json() == doc.to_json()
    assert old.version == doc.version


def test_a_big_state_is_compressed_and_round_trips() -> None:
    doc = know_roots(Document(1))
    t = doc.text("t")
    rng = random.Random(5)
    for i in range(4000):
        if i % 5 == 4 and len(t) > 10:
            t.delete(rng.randrange(len(t) - 1), 1)
        else:
            t.insert(rng.randint(0, len(t)), rng.choice("abc😀 "))
    state = doc.encode_state()
    plain = encode_ops(doc, doc.ops_since({}), compress_body=False)
    assert state[4] & 0b11  # a compression method is set
    assert len(state) < len(plain)
    for data in (state, plain):
        loaded = know_roots(Document.load(data, 2))
        loaded.check_invariants()
        assert loaded.to_json() == doc.to_json()


def test_empty_delta_round_trips() -> None:
    doc = sample_doc()
    empty = doc.delta_since(doc.version)
    assert decode_ops(doc, empty) == []
    before = snapshot(doc)
    assert doc.merge(empty) == []
    assert snapshot(doc) == before


def test_encoding_is_deterministic() -> None:
    assert sample_doc().encode_state() == sample_doc().encode_state()


# ---------------------------------------------------------------------------------------------
# Decoder fuzz: truncations, flips, garbage
# ---------------------------------------------------------------------------------------------


def _encodings() -> list[tuple[str, bytes]]:
    doc = sample_doc()
    big = know_roots(Document(9))
    big.text("t").insert(0, "lorem ipsum dolor sit amet " * 40)
    big.text("t").delete(10, 300)
    return [
        ("state", encode_ops(doc, doc.ops_since({}), compress_body=False)),
        ("delta", encode_ops(doc, doc.ops_since({7: 12}), compress_body=False)),
        ("compressed", big.encode_state()),
    ]


ENCODINGS = _encodings()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("what", "data"), ENCODINGS, ids=[e[0] for e in ENCODINGS])
def test_every_truncation_raises_decode_error(what: str, data: bytes) -> None:
    receiver = sample_doc(replica=8)
    before = snapshot(receiver)
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            receiver.merge(data[:cut])
        assert receiver.version == before[1]
        assert receiver.pending_ops == before[2]
    receiver.check_invariants()
    assert_fine_afterwards(receiver)


@pytest.mark.timeout(60)
@SETTINGS
@given(
    which=st.sampled_from([e[1] for e in ENCODINGS]),
    flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=4),
    fresh=st.booleans(),
)
def test_byte_flips_decode_or_raise_engine_errors_only(
    which: bytes, flips: list[tuple[int, int]], fresh: bool
) -> None:
    data = bytearray(which)
    for pos, value in flips:
        data[pos % len(data)] = value
    receiver = Document(8) if fresh else sample_doc(replica=8)
    merge_outcome(receiver, bytes(data))
    assert_fine_afterwards(receiver)


@pytest.mark.timeout(60)
@SETTINGS
@given(
    body=st.binary(max_size=200),
    header=st.sampled_from([b"", MAGIC, MAGIC + bytes([FORMAT_VERSION])]),
    flags=st.integers(0, 255),
)
def test_random_garbage_raises_decode_error(body: bytes, header: bytes, flags: int) -> None:
    receiver = sample_doc(replica=8)
    data = header + (bytes([flags]) if len(header) == 4 else b"") + body
    assert merge_outcome(receiver, data) in {"decode", "ok", "resync"}
    assert_fine_afterwards(receiver)


def _compacted_snapshot() -> bytes:
    doc = sample_doc()
    doc.text("t").insert(0, "x" * 300)
    doc.text("t").delete(0, 250)
    compact(doc, doc.version)
    data = doc.encode_state()
    assert data[:3] == b"CWS"
    return data


@pytest.mark.timeout(60)
def test_compaction_snapshots_survive_truncation_and_flips() -> None:
    snap = _compacted_snapshot()
    loaded = know_roots(Document.load(snap, 8))
    loaded.check_invariants()
    for cut in range(len(snap)):
        with pytest.raises(DecodeError):
            Document(8).merge(snap[:cut])
    rng = random.Random(99)
    for _ in range(1500):
        bad = bytearray(snap)
        for _ in range(rng.randint(1, 3)):
            bad[rng.randrange(3, len(bad))] = rng.randrange(256)
        receiver = Document(8)
        if merge_outcome(receiver, bytes(bad)) == "ok":
            receiver.check_invariants()


@pytest.mark.timeout(60)
def test_seeded_flip_sweep() -> None:
    """A fixed, bigger sweep (3000 mutants of the uncompressed state)."""
    rng = random.Random(1234)
    data = ENCODINGS[0][1]
    outcomes: dict[str, int] = {}
    receiver = Document(8)
    for _ in range(3000):
        bad = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            bad[rng.randrange(5, len(bad))] = rng.randrange(256)
        if bytes(bad) == data:
            continue
        # a fresh receiver each time would be slow: reuse one unless it took the mutant
        outcome = merge_outcome(receiver, bytes(bad))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome == "ok":
            receiver.check_invariants()
            receiver = Document(8)
    assert outcomes.get("decode", 0) > 1000
    assert_fine_afterwards(receiver)


# ---------------------------------------------------------------------------------------------
# Hostile but well-formed bodies
# ---------------------------------------------------------------------------------------------


def _varint(n: int) -> bytes:
    w = Writer()
    w.uint(n)
    return w.getvalue()


def _patched(data: bytes, marker: bytes, replacement: bytes) -> bytes:
    assert data.count(marker) == 1, (marker, data)
    return data.replace(marker, replacement)


def _plain(doc: Document, ops: list[Any] | None = None) -> bytes:
    """``doc``'s ops (default: all) encoded without compression, so bytes can be patched."""
    return encode_ops(doc, doc.ops_since({}) if ops is None else ops, compress_body=False)


def _marked_doc(text: str = "QQQQ", key: str = "KKKK", root: str = "t") -> Document:
    doc = Document(0x123456789ABCDEF, now_ms=lambda: 1)
    doc.text(root).insert(0, text)
    doc.map("m").set(key, 1)
    return doc


def _with_replica_zero() -> bytes:
    doc = _marked_doc()
    real = doc.replica_of
    doc.replica_of = lambda c: 0 if c == doc.client_index(doc.replica) else real(c)  # type: ignore[method-assign]
    return _plain(doc)


def _bad_bytes() -> list[tuple[str, bytes]]:
    """Malformed messages, built from real encodings by patching unique markers or the header.

    Only what the format documents as stable is assumed: the 5-byte header (magic, version,
    flags: compression in bits 0-1) and a body starting with the replica table.
    """
    good = _plain(_marked_doc())
    header, body = good[:5], good[5:]
    flags = good[4]
    replica = _varint(0x123456789ABCDEF)
    assert body[0] == 1 and body[1 : 1 + len(replica)] == replica
    set_only = Document(5, now_ms=lambda: 1)
    set_only.map("m").set("k", 1)
    other_flags = _plain(set_only)[4]
    big = know_roots(Document(9))
    big.text("t").insert(0, "lorem ipsum dolor sit amet " * 40)
    compressed = big.encode_state()
    assert compressed[4] & 0b11
    return [
        ("replica id 0", _with_replica_zero()),
        ("replica id wider than 64 bits", _patched(good, replica, b"\xff" * 10 + b"\x01")),
        ("huge replica count", header + b"\xff" * 9 + b"\x01" + body[1:]),
        ("replica count beyond the body", header + b"\x7f" + body[1:]),
        ("no replica but ops", header + b"\x00" + body[1 + len(replica) :]),
        ("text not UTF-8", _patched(good, b"QQQQ", b"\xff\xfe\xff\xfe")),
        ("truncated UTF-8 in text", _patched(good, b"QQQQ", b"QQ\xf0\x9f")),
        ("map key not UTF-8", _patched(good, b"KKKK", b"\xc3\x28\xa0\xa1")),
        ("root name not UTF-8", _patched(_plain(_marked_doc(root="RRRR")), b"RRRR", b"\xed\xa0")),
        ("trailing bytes", good + b"\x00"),
        ("flags of other op kinds", header[:4] + bytes([other_flags]) + body),
        ("unknown flag bits", header[:4] + bytes([flags | 0x80]) + body),
        ("compression method 3", header[:4] + bytes([flags | 3]) + body),
        ("zlib flag on a plain body", header[:4] + bytes([flags | 1]) + body),
        ("lzma flag on a plain body", header[:4] + bytes([flags | 2]) + body),
        (
            "plain flag on a compressed body",
            compressed[:4] + bytes([compressed[4] & ~3]) + compressed[5:],
        ),
        ("bad magic", b"XYZ" + good[3:]),
        ("unknown format version", good[:3] + bytes([good[3] + 1]) + good[4:]),
        ("older format version", good[:3] + bytes([0]) + good[4:]),
        ("empty", b""),
        ("magic only", good[:3]),
        ("header only", header),
        ("declared size too big", compressed[:5] + b"\xff\xff\xff\xff\x0f" + compressed[-20:]),
        ("declared size too small", compressed[:5] + _varint(300) + compressed[7:]),
        ("zlib garbage", header[:4] + bytes([flags | 1]) + _varint(1000) + b"\x00" * 40),
        ("lzma garbage", header[:4] + bytes([flags | 2]) + _varint(1000) + b"\xff" * 40),
    ]


BAD_BYTES = _bad_bytes()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("what", "data"), BAD_BYTES, ids=[b[0] for b in BAD_BYTES])
def test_malformed_bodies_raise_decode_error(what: str, data: bytes) -> None:
    receiver = sample_doc(replica=8)
    before = snapshot(receiver)
    with pytest.raises(DecodeError):
        receiver.merge(data)
    assert receiver.version == before[1]
    assert receiver.pending_ops == before[2]
    assert_fine_afterwards(receiver)


def test_the_marked_message_is_valid() -> None:
    """The baseline the patched variants above come from merges fine."""
    receiver = know_roots(Document(8))
    receiver.merge(_plain(_marked_doc()))
    assert receiver.to_json()["t"] == "QQQQ"
    assert receiver.to_json()["m"] == {"KKKK": 1}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("number", [1 << 20, 1 << 32, (1 << 64) - 1])
def test_huge_numbers_at_every_position(number: int) -> None:
    """Every byte of a message in turn replaced by a huge varint: counts, lengths, ids, seqs.

    Must raise DecodeError or InvalidOperation or merge (e.g. a huge seq just waits), quickly and
    without allocating in proportion to the number.
    """
    data = ENCODINGS[1][1]
    big = _varint(number)
    outcomes: dict[str, int] = {}
    receiver = sample_doc(replica=8)
    for pos in range(5, len(data)):
        outcome = merge_outcome(receiver, data[:pos] + big + data[pos + 1 :])
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if outcome != "decode":
            receiver.check_invariants()
            receiver = sample_doc(replica=8)
    assert outcomes["decode"] > len(data) // 2
    assert_fine_afterwards(receiver)


def _odd_messages() -> list[tuple[str, bytes, int]]:
    """(what, message, pending ops after merging it): hostile ops the receiver just keeps."""
    src = _hostile_source()
    me = src.client_index(src.replica)
    stranger = src.client_index(99)
    seq = src.version[src.replica]
    t = src.text("t").id
    t_elem = src.sequence(t).id_at(0)
    lone = Document(5)
    lone.text("t").insert(0, "a\ud800b\udfff")
    largest = Document((1 << 64) - 1)
    largest.text("t").insert(0, "x")
    ts = src.clock.now()

    def enc(op: Any) -> bytes:
        return _plain(src, [op])

    return [
        ("lone surrogates in text", lone.encode_state(), 0),
        ("the largest replica id", largest.encode_state(), 0),
        (
            "a huge seq gap: waits forever",
            enc(InsertOp(pack(me, 1 << 40), t, NO_ID, NO_ID, "x")),
            1,
        ),
        (
            "an op on a node nobody made",
            enc(InsertOp(pack(me, seq), pack(me, 10**6), NO_ID, NO_ID, "x")),
            1,
        ),
        (
            "an origin nobody made",
            enc(InsertOp(pack(me, seq), t, pack(stranger, 123), NO_ID, "x")),
            1,
        ),
        ("a right nobody made", enc(InsertOp(pack(me, seq), t, NO_ID, pack(stranger, 5), "x")), 1),
        (
            "a delete span running past the history",
            enc(DeleteOp(pack(me, seq), t, ((t_elem, 1 << 40),))),
            1,
        ),
        (
            "the largest counter amounts",
            _plain(
                src,
                [
                    AddOp(pack(me, seq), src.counter("c").id, (1 << 63) - 1),
                    AddOp(pack(me, seq + 1), src.counter("c").id, -(1 << 63)),
                ],
            ),
            0,
        ),
        (
            "a far-future timestamp",
            enc(
                SetOp(
                    pack(me, seq),
                    src.map("m").id,
                    "k",
                    1,
                    Timestamp((1 << 63) - 1, (1 << 63), src.replica),
                )
            ),
            0,
        ),
        (
            "a huge timestamp counter",
            enc(SetOp(pack(me, seq), src.map("m").id, "k", 1, ts._replace(counter=(1 << 64) - 1))),
            0,
        ),
    ]


def _set_message(value_blob: bytes) -> bytes:
    """A delta with one map set whose raw value blob is ``value_blob`` (same length as '"QQQ"')."""
    doc = know_roots(Document(5, now_ms=lambda: 1))
    doc.map("m").set("k", "Q" * (len(value_blob) - 2))
    data = encode_ops(doc, doc.ops_since({}), compress_body=False)
    quoted = b'"' + b"Q" * (len(value_blob) - 2) + b'"'
    assert data.count(quoted) == 1
    return data.replace(quoted, value_blob)


def _deep_json(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


BAD_VALUES: list[tuple[str, bytes]] = [
    ("NaN", b"[NaN]"),
    ("bare NaN", b" NaN "),
    ("Infinity", b"Infinity"),
    ("overflowing float", b"1e999"),
    ("-overflowing float", b"-1e999"),
    ("integer beyond 64 bits", b"99999999999999999999999"),
    ("deep nesting", _deep_json(100)),
    ("very deep nesting", _deep_json(20_000)),
    ("not JSON", b"{oops}"),
    ("truncated JSON", b'{"a": [1, 2'),
    ("two values", b"[1] [2]"),
]


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("what", "blob"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
def test_bad_json_values_raise_decode_error(what: str, blob: bytes) -> None:
    receiver = sample_doc(replica=8)
    before = snapshot(receiver)
    with pytest.raises(DecodeError):
        receiver.merge(_set_message(blob))
    assert receiver.version == before[1]
    assert_fine_afterwards(receiver)


def test_the_set_message_helper_is_valid() -> None:
    receiver = know_roots(Document(8))
    receiver.merge(_set_message(b'"abc"'))
    assert receiver.map("m")["k"] == "abc"


@pytest.mark.parametrize("blob", [b'"\xff"', b'"\xdd"', b'["\xc3"]', b'{"\xff":1}'])
def test_invalid_utf8_in_a_json_value_raises_decode_error(blob: bytes) -> None:
    receiver = sample_doc(replica=8)
    with pytest.raises(DecodeError):
        receiver.merge(_set_message(blob))


# -- semantic hostility: well-formed ops that contradict the document -> InvalidOperation


def _hostile_ops(src: Document) -> list[tuple[str, Any]]:
    me = src.client_index(src.replica)
    seq = src.version[src.replica]
    op_id = pack(me, seq)
    t, lst, m = src.text("t").id, src.list("l").id, src.map("m").id
    reg, ctr = src.register("r").id, src.counter("c").id
    ts = src.clock.now()
    t_elem = src.sequence(t).id_at(0)
    l_elem = src.sequence(lst).id_at(0)
    return [
        ("insert into a map", InsertOp(op_id, m, NO_ID, NO_ID, "x")),
        ("insert into a register", InsertOp(op_id, reg, NO_ID, NO_ID, "x")),
        ("list content into a text", InsertOp(op_id, t, NO_ID, NO_ID, [1])),
        ("text content into a list", InsertOp(op_id, lst, NO_ID, NO_ID, "x")),
        ("new node into a text", InsertOp(op_id, t, NO_ID, NO_ID, [NewNode(NodeKind.MAP)])),
        ("set on a text", SetOp(op_id, t, "k", 1, ts)),
        ("set on a list", SetOp(op_id, lst, None, 1, ts)),
        ("set on a counter", SetOp(op_id, ctr, None, 1, ts)),
        ("map set without a key", SetOp(op_id, m, None, 1, ts)),
        ("register set with a key", SetOp(op_id, reg, "k", 1, ts)),
        ("register holds a new node", SetOp(op_id, reg, None, NewNode(NodeKind.TEXT), ts)),
        ("add on a register", AddOp(op_id, reg, 1)),
        ("add on a text", AddOp(op_id, t, 1)),
        ("delete in a map", DeleteOp(op_id, m, ((t_elem, 1),))),
        ("delete of another node's element", DeleteOp(op_id, t, ((l_elem, 1),))),
        ("delete of a non-element id", DeleteOp(op_id, t, ((op_id - ONE, 1),))),
    ]


def _hostile_source() -> Document:
    src = know_roots(Document(5, now_ms=lambda: 1))
    src.text("t").insert(0, "abc")
    src.list("l").insert(0, [1, 2])
    src.map("m").set("k", 1)  # seq 5: the last op, not an element
    return src


HOSTILE = [name for name, _ in _hostile_ops(_hostile_source())]


def _receiver_of_hostile_source() -> Document:
    receiver = know_roots(Document(8))
    receiver.merge(_hostile_source().encode_state())
    return receiver


@pytest.mark.timeout(60)
@pytest.mark.parametrize("what", HOSTILE)
@pytest.mark.parametrize("path", ["fast", "queued"])
def test_ops_contradicting_the_document_raise_invalid_operation(what: str, path: str) -> None:
    src = _hostile_source()
    receiver = know_roots(Document(8))
    receiver.merge(src.encode_state())
    op = dict(_hostile_ops(src))[what]
    if path == "queued":
        # make the receiver hold a waiting op, so the hostile one takes the queueing path
        other = know_roots(Document(6))
        other.counter("c").add(1)
        v = other.version
        other.counter("c").add(1)
        receiver.merge(other.delta_since(v))
        assert receiver.pending_ops == 1
    data = encode_ops(src, [op], compress_body=False)
    before = snapshot(receiver)
    with pytest.raises(InvalidOperation):
        receiver.merge(data)
    assert snapshot(receiver) == before
    assert_fine_afterwards(receiver)
    receiver.merge(src.encode_state())  # the honest ops of that replica still merge


@pytest.mark.parametrize("path", ["fast", "queued"])
def test_a_delta_with_one_bad_op_applies_none_of_it(path: str) -> None:
    src = _hostile_source()
    receiver = know_roots(Document(8))
    receiver.merge(src.encode_state())
    me = src.client_index(src.replica)
    seq = src.version[src.replica]
    good = InsertOp(pack(me, seq), src.text("t").id, NO_ID, NO_ID, "ok")
    bad = InsertOp(pack(me, seq + 2), src.map("m").id, NO_ID, NO_ID, "x")
    ops = [good, bad]
    if path == "queued":
        # the set creating a nested map and an insert into that map, arriving out of order
        nested = SetOp(pack(me, seq), src.map("m").id, "n", NewNode(NodeKind.MAP), src.clock.now())
        bad = InsertOp(pack(me, seq + 1), pack(me, seq), NO_ID, NO_ID, "x")
        ops = [bad, nested]
    data = encode_ops(src, sorted(ops, key=lambda o: o.id), compress_body=False)
    before = snapshot(receiver)
    with pytest.raises(InvalidOperation):
        receiver.merge(data)
    assert snapshot(receiver) == before


def test_a_failed_merge_adds_no_named_roots() -> None:
    receiver = know_roots(Document(8))
    before = receiver.to_json()
    intruder = Document(5)
    intruder.text("intruder").insert(0, "x")
    data = _plain(intruder) + b"\x00"  # trailing garbage: DecodeError
    with pytest.raises(DecodeError):
        receiver.merge(data)
    assert receiver.to_json() == before


def test_a_failed_merge_registers_no_replicas() -> None:
    receiver = know_roots(Document(8))
    stranger = Document(1000)
    stranger.text("t").insert(0, "x")
    data = _plain(stranger) + b"\x00"  # trailing garbage: DecodeError
    with pytest.raises(DecodeError):
        receiver.merge(data)
    assert receiver.known_client(1000) is None


@pytest.mark.timeout(60)
def test_hostile_ops_from_the_encoder_raise_decode_error() -> None:
    """Ops the decoder must refuse even though the encoder writes them faithfully."""
    src = _hostile_source()
    me = src.client_index(src.replica)
    seq = src.version[src.replica]
    t = src.text("t").id
    cases = [
        InsertOp(pack(me, seq), t, NO_ID, NO_ID, ""),  # empty insert
        DeleteOp(pack(me, seq), t, ((src.sequence(t).id_at(0), 0),)),  # empty span
        DeleteOp(pack(me, seq), t, ()),  # no spans
    ]
    for op in cases:
        receiver = know_roots(Document(8))
        receiver.merge(src.encode_state())
        before = snapshot(receiver)
        with pytest.raises(DecodeError):
            receiver.merge(encode_ops(src, [op], compress_body=False))
        assert snapshot(receiver) == before
        assert_fine_afterwards(receiver)


ODD_BUT_FINE = _odd_messages()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("what", "data", "pending"), ODD_BUT_FINE, ids=[b[0] for b in ODD_BUT_FINE]
)
def test_odd_but_well_formed_bodies_merge(what: str, data: bytes, pending: int) -> None:
    receiver = _receiver_of_hostile_source()
    receiver.merge(data)
    assert receiver.pending_ops == pending
    assert_fine_afterwards(receiver)


def test_a_replica_listed_twice_in_the_table() -> None:
    """Two clients encoded as one replica id: conflicting ops under one id. Engine errors or ok."""
    src = _hostile_source()
    src.client_index(77)
    me = src.client_index(src.replica)
    twin = src.client_index(77)
    real = src.replica_of
    src.replica_of = lambda c: src.replica if c == twin else real(c)  # type: ignore[method-assign]
    ops = [
        InsertOp(pack(me, src.version[src.replica]), src.text("t").id, NO_ID, NO_ID, "mine"),
        InsertOp(pack(twin, 0), src.text("t").id, NO_ID, NO_ID, "twin"),
    ]
    receiver = _receiver_of_hostile_source()
    merge_outcome(receiver, _plain(src, ops))
    assert_fine_afterwards(receiver)


def _single_text_inserts(doc: Document) -> list[InsertOp]:
    return [op for op in doc.ops_since({}) if type(op) is InsertOp and isinstance(op.content, str)]


@SETTINGS
@given(data=st.data())
def test_one_text_insert_encodes_as_the_general_path_does(data: st.DataObject) -> None:
    """A keystroke's delta takes a path of its own (``_encode_typed``): byte for byte what the
    general one writes, for inserts of this replica and of others, at roots and in nested
    nodes, with and without neighbours."""
    from cowrite.engine import encoding

    doc = know_roots(Document(3, now_ms=lambda: 5))
    random_edits(doc, data, data.draw(st.integers(1, 12)))
    other = know_roots(Document.load(doc.encode_state(), 4))
    other.text("t").insert(0, data.draw(TEXTS))
    doc.merge(other.delta_since(doc.version))
    random_edits(doc, data, data.draw(st.integers(0, 6)))
    for d in (doc, sample_doc()):
        for op in _single_text_inserts(d):
            fast = encoding._encode_typed(d, op)
            assert fast is not None
            assert fast == encoding._encode_many(d, [op])[1]
            for compress in (False, True):
                assert decode_ops(d, encode_ops(d, [op], compress_body=compress)) == [op]
