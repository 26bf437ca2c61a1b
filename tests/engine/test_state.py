"""Full states (``engine/state.py``) and the shape of documents: runs stay runs.

Contracts under test: a document that merged edits remotely, or was loaded from bytes, holds the
same items (runs) as the document that made the edits; a state round-trips (with its history,
kept encoded until needed); the delta since the empty version is a state in delta form that any
replica merges; bytes written before format CWS 2 still load; malformed states raise
``DecodeError`` and leave the receiver as it was.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cowrite.engine.document import Document
from cowrite.engine.encoding import decode_ops, encode_ops
from cowrite.engine.errors import DecodeError
from cowrite.engine.history import value_at, versions
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK
from cowrite.engine.ops import Op

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test_encoding.py: its sample docs
from test_encoding import know_roots, random_edits, sample_doc

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
DATA = Path(__file__).parent / "data"


def portable(doc: Document, ops: list[Op]) -> list[Op]:
    """``ops`` of ``doc`` packed for one shared numbering of replicas (ops are per document)."""
    return decode_ops(PROBE, encode_ops(doc, ops))


PROBE = know_roots(Document(1 << 60))


def op_key(op: Op) -> tuple[int, int]:
    return op.id & CLIENT_MASK, op.id >> CLIENT_BITS


def item_count(doc: Document) -> int:
    return doc.index.count()


def typing_session(doc: Document, seed: int, steps: int = 3000) -> None:
    """Typing with backspaces and jumps, the shape of a real editing trace."""
    rng = random.Random(seed)
    t = doc.text("t")
    pos = 0
    for _ in range(steps):
        r = rng.random()
        if r < 0.05:
            pos = rng.randint(0, len(t))
        elif r < 0.25 and pos > 0:
            t.delete(pos - 1, 1)
            pos -= 1
        elif r < 0.28 and pos < len(t):
            t.delete(pos, min(len(t) - pos, rng.randint(1, 5)))
        else:
            t.insert(pos, rng.choice("abc de\n"))
            pos += 1


# ---------------------------------------------------------------------------------------------
# Runs stay runs


def test_remote_backspaces_merge_their_tombstones() -> None:
    a = Document(1)
    b = Document(2)
    t = a.text("t")
    t.insert(0, "hello world")
    b.merge(a.delta_since({}))
    for _ in range(5):
        before = a.version
        t.delete(len(t) - 1, 1)  # backspace: one delete op per key
        b.merge(a.delta_since(before))
    assert str(b.text("t")) == "hello "
    assert item_count(a) == item_count(b) == 2
    b.check_invariants()


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_remote_and_loaded_documents_have_the_live_shape(seed: int) -> None:
    live = Document(1)
    typing_session(live, seed)
    live.check_invariants()
    follower = Document(2)
    for op in live.ops_since({}):  # every op in a delta of its own, as a server relays them
        follower.merge(encode_ops(live, [op]), changes=False)
    follower.check_invariants()
    assert str(follower.text("t")) == str(live.text("t"))
    assert item_count(follower) == item_count(live)
    loaded = Document.load(live.encode_state(), 3)
    loaded.check_invariants()
    assert item_count(loaded) == item_count(live)
    replayed = Document(4)
    replayed.merge(encode_ops(live, live.ops_since({})))  # every op, integrated one by one
    replayed.check_invariants()
    assert item_count(replayed) == item_count(live)


# ---------------------------------------------------------------------------------------------
# States


@SETTINGS
@given(data=st.data())
def test_state_round_trip_keeps_history(data: st.DataObject) -> None:
    doc = know_roots(Document(3, now_ms=lambda: 5))
    seen = random_edits(doc, data, data.draw(st.integers(0, 25)))
    state = doc.encode_state()
    assert state[:4] == b"CWS\x02"
    loaded = know_roots(Document.load(state, 4))
    loaded.check_invariants()
    assert loaded.to_json() == doc.to_json()
    assert loaded.version == doc.version
    assert item_count(loaded) == item_count(doc)
    since = data.draw(st.sampled_from(seen), label="since")
    assert portable(loaded, loaded.ops_since(since)) == portable(doc, doc.ops_since(since))
    assert loaded.encode_state() == state  # a load -> save cycle changes nothing
    for v in versions(doc):
        assert value_at(loaded, v.version) == value_at(doc, v.version)


def test_history_stays_encoded_until_needed() -> None:
    doc = Document(1)
    typing_session(doc, 7)
    loaded = Document.load(doc.encode_state(), 2)
    assert loaded._lazy_dels  # the delete records were not decoded
    recent = loaded.version
    loaded.text("t").delete(0, 1)
    assert len(loaded.ops_since(recent)) == 1
    assert loaded._lazy_dels  # a recent delta does not need them
    everything = portable(loaded, loaded.ops_since({}))
    parts = portable(doc, doc.ops_since({})) + portable(loaded, loaded.ops_since(recent))
    assert sorted(everything, key=op_key) == sorted(parts, key=op_key)
    assert not loaded._lazy_dels


def test_delta_since_empty_is_a_state_any_replica_merges() -> None:
    doc = sample_doc()
    delta = doc.delta_since({})
    assert delta[:4] == b"CWR\x03"
    assert decode_ops(PROBE, delta) == portable(doc, doc.ops_since({}))
    assert Document.load(delta, 9).to_json() == doc.to_json()
    busy = know_roots(Document(10))
    busy.text("t").insert(0, "mine ")
    changes = busy.merge(delta)
    assert changes
    assert busy.to_json()["m"] == doc.to_json()["m"]
    busy.check_invariants()


def test_a_state_merges_into_a_replica_with_edits_of_its_own() -> None:
    a = Document(1)
    typing_session(a, 3, 400)
    b = Document.load(a.encode_state(), 2)
    b.text("t").insert(0, "B ")
    typing_session(a, 4, 200)
    b.merge(a.encode_state())
    a.merge(b.encode_state())
    assert a.to_json() == b.to_json()
    assert item_count(a) == item_count(b)
    a.check_invariants()
    b.check_invariants()


def test_bytes_from_before_format_cws2_still_load() -> None:
    data = (DATA / "sample_state_cwr2.bin").read_bytes()
    want = json.loads((DATA / "sample_state_cwr2.json").read_text())
    assert data[:4] == b"CWR\x02"
    doc = Document.load(data, 99)
    doc.check_invariants()
    assert doc.to_json() == want["json"]
    assert {str(r): n for r, n in doc.version.items()} == want["version"]
    again = Document.load(doc.encode_state(), 98)
    assert again.to_json() == want["json"]


def _states() -> list[bytes]:
    doc = sample_doc()
    big = Document(9)
    typing_session(big, 5, 600)
    return [doc.encode_state(), doc.delta_since({}), big.encode_state()]


@pytest.mark.timeout(120)
@pytest.mark.parametrize("data", _states(), ids=["sample", "sample-delta", "typed"])
def test_truncated_states_raise_decode_error_and_change_nothing(data: bytes) -> None:
    step = max(1, len(data) // 400)
    for cut in range(0, len(data), step):
        fresh = Document(8)
        with pytest.raises(DecodeError):
            fresh.merge(data[:cut], changes=False)
        assert fresh.version == {}
        assert not fresh._nodes
        busy = sample_doc(replica=8)
        before = busy.to_json()
        with pytest.raises(DecodeError):
            busy.merge(data[:cut])
        assert busy.to_json() == before


@SETTINGS
@given(
    which=st.sampled_from(_states()),
    flips=st.lists(st.tuples(st.integers(0, 100_000), st.integers(0, 255)), min_size=1, max_size=4),
)
def test_damaged_states_load_or_raise_decode_error(
    which: bytes, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(which)
    for pos, value in flips:
        data[pos % len(data)] = value
    fresh = Document(8)
    try:
        fresh.merge(bytes(data), changes=False)
    except DecodeError:
        assert fresh.version == {}
        return
    fresh.check_invariants()
    fresh.to_json()
