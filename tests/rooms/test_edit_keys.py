"""Edit keys: the payload digest survives any rebase of a batch and tells other content apart;
keys are scoped by user; stored updates read back, in the current and the earlier format."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite import protocol as p
from cowrite.engine import ot
from cowrite.rooms import edit_keys
from cowrite.rooms.edit_keys import client_of, edit_digest, key_client

BASE = "0123456789abcdefghij"


@st.composite
def text_ops(draw: st.DrawFn, length: int = len(BASE)) -> list[Any]:
    """A random index edit of a text of ``length`` characters (a few splices composed)."""
    op: list[Any] = []
    size = length
    for _ in range(draw(st.integers(1, 4))):
        pos = draw(st.integers(0, size))
        count = draw(st.integers(0, size - pos))
        text = draw(st.text("XYZ", max_size=3))
        splice = ot.from_splice(pos, count, text)
        op = ot.compose(op, splice) if op else splice
        size = size - count + len(text)
    return op


def _batch(edit: list[Any], amount: int = 2) -> list[p.EditOp]:
    return [
        p.SeqEdit(node="text:body", edit=edit),
        p.SetKey(node="map:meta", key="title", value={"a": [1, 2], "b": None}),
        p.CounterAdd(node="counter:n", amount=amount),
    ]


@given(mine=text_ops(), theirs=text_ops())
@settings(max_examples=300, deadline=None)
def test_the_digest_of_a_batch_survives_its_rebase(mine: list[Any], theirs: list[Any]) -> None:
    """A client resending its batch after others' edits sends it rebased (``transform``): the
    same digest, so the resend is recognised rather than refused as other content."""
    rebased = ot.transform(mine, theirs, "left")
    assert edit_digest(_batch(mine)) == edit_digest(_batch(rebased))


def test_other_content_under_the_same_key_gets_another_digest() -> None:
    same = edit_digest(_batch(["hello"]))
    assert same == edit_digest(_batch([3, "hello", -2]))  # positions and deletions do not count
    assert edit_digest(_batch(["world"])) != same
    assert edit_digest(_batch(["hello"], amount=3)) != same
    assert edit_digest(_batch(["hel", 2, "lo"])) == same  # inserts a deletion separated
    moved = [p.SeqEdit(node="text:other", edit=["hello"]), *_batch([])[1:]]
    assert edit_digest(moved) != same


def test_keys_are_scoped_by_user() -> None:
    mine, theirs = key_client("alice", "laptop"), key_client("mallory", "laptop")
    assert mine != theirs
    assert client_of(mine) == client_of(theirs) == "laptop"
    assert client_of("legacy-client") == "legacy-client"


@pytest.mark.parametrize("client", ["c", key_client("u", "c\x1fx"), "é" * 40])
def test_stored_updates_read_back(client: str) -> None:
    data = edit_keys.wrap_update(client, "e-1", b"DELTA", "d1g")
    assert edit_keys.unwrap_update(data) == (client, "e-1", "d1g", b"DELTA")


def test_updates_in_the_earlier_format_and_bare_deltas_still_load() -> None:
    v1 = b"CWU\x01" + (1).to_bytes(2, "big") + b"c" + (2).to_bytes(2, "big") + b"e1" + b"DELTA"
    assert edit_keys.unwrap_update(v1) == ("c", "e1", "", b"DELTA")
    assert edit_keys.unwrap_update(b"CWO\x01raw") == ("", "", "", b"CWO\x01raw")
    with pytest.raises(ValueError):
        edit_keys.unwrap_update(b"CWU\x02\x00\x09ab")


@given(
    st.lists(
        st.one_of(
            st.integers(-3, 3), st.text("ab😀", max_size=2), st.lists(st.integers(), max_size=2)
        ),
        max_size=4,
    ),
    st.sampled_from(["text:t", "list:l", "#1.2"]),
    st.booleans(),
)
def test_the_digest_of_one_sequence_op_is_the_documented_one(
    edit: list[Any], node: str, twice: bool
) -> None:
    """One sequence op (what typing sends: digested without the general loop) and the same op
    among others digest as the docstring says: the concatenated text and items of each op."""

    def reference(ops: list[p.SeqEdit]) -> str:
        parts = []
        for op in ops:
            text = "".join(c for c in op.edit if isinstance(c, str))
            items = [x for c in op.edit if isinstance(c, list) for x in c]
            if text or items:
                parts.append(["seq", op.node, text, items])
        data = msgspec.json.Encoder(order="sorted").encode(parts)
        return hashlib.sha256(data).hexdigest()[:32]

    ops = [p.SeqEdit(node=node, edit=edit)] * (2 if twice else 1)
    assert edit_digest(list(ops)) == reference(ops)
