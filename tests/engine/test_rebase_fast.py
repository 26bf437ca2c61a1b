"""EditLog's fast paths against the generic ``ot.transform`` (hypothesis).

``EditLog.rebase`` steps normalized edits (lists of sites) over logged ones by shifting
positions; these properties check that it returns exactly what transforming by
``ot.transform(.., "left")`` over every logged edit of the node in turn returns (the reference
below), for single-site and general edits mixed, text and lists, evictions, and the errors
(stale and future versions, ops mixing text and list inserts).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test_ot.py: its op strategy
import test_ot

from cowrite.engine import ot, rebase
from cowrite.engine.errors import InvalidOperation, ResyncNeeded
from cowrite.engine.ot import Op
from cowrite.engine.rebase import EditLog

CHARS = st.sampled_from("ab😀")
KINDS = st.sampled_from(("text", "list"))
NODES = (1, 2)


def inserts(kind: str, *, max_size: int = 3) -> st.SearchStrategy[Any]:
    if kind == "text":
        return st.text(CHARS, min_size=1, max_size=max_size)
    return st.lists(st.integers(0, 3), min_size=1, max_size=max_size)


@st.composite
def site_ops(draw: st.DrawFn, length: int, kind: str) -> Op:
    """``[retain?, insert?, delete?, retain?]`` against ``length`` items (the fast path's shape)."""
    pos = draw(st.integers(0, length))
    ins = draw(st.one_of(st.none(), inserts(kind)))
    deleted = draw(st.integers(0, length - pos))
    tail = draw(st.integers(0, length - pos - deleted))
    op: Op = []
    if pos:
        op.append(pos)
    if ins is not None:
        op.append(ins)
    if deleted:
        op.append(-deleted)
    if tail and draw(st.booleans()):
        op.append(tail)
    return op


def general_ops(length: int, kind: str) -> st.SearchStrategy[Op]:
    """Any valid op against ``length`` items, often not normalized (``[-1, "x"]``, two sites)."""
    return test_ot.ops(length, kind, inserts=inserts, parts=10)


def edits(length: int, kind: str) -> st.SearchStrategy[Op]:
    """Single-site edits (typing), normalized edits of several sites (keystrokes at several
    places composed while one batch was in flight) and anything else, unnormalized included."""
    return st.one_of(
        site_ops(length, kind),
        general_ops(length, kind).map(ot.normalize),
        general_ops(length, kind),
    )


def empty(kind: str) -> Any:
    return "" if kind == "text" else []


@st.composite
def histories(draw: st.DrawFn) -> tuple[EditLog, dict[int, list[Any]], str]:
    """A log of applied batches over two nodes; ``states[node][v]``: the node at version v."""
    kind = draw(KINDS)
    capacity = draw(st.sampled_from((3, 8, 100)))
    log = EditLog(capacity)
    states: dict[int, list[Any]] = {node: [empty(kind)] for node in NODES}
    for _ in range(draw(st.integers(0, 12))):
        batch: list[tuple[int, list[Any]]] = []
        current = {node: states[node][-1] for node in NODES}
        for node in draw(st.lists(st.sampled_from(NODES), max_size=3)):
            op = draw(edits(len(current[node]), kind))
            batch.append((node, op))
            current[node] = ot.apply(current[node], op)
        log.record(batch)
        for node in NODES:
            states[node].append(current[node])
    return log, states, kind


def reference_rebase(log: EditLog, node: int, edit: Op, base: int) -> Op:
    """The definition: ``ot.transform`` over every logged edit of ``node`` after ``base``."""
    for _, other_node, other in log.since(base):
        if other_node == node:
            edit = ot.transform(edit, other, "left")
    return edit


def reference_position(log: EditLog, node: int, pos: int, base: int) -> int:
    for _, other_node, other in log.since(base):
        if other_node == node:
            pos = ot.transform_position(pos, other)
    return pos


def outcome(f: Any, *args: Any) -> tuple[str, Any]:
    try:
        return "ok", f(*args)
    except (InvalidOperation, ResyncNeeded) as exc:
        return type(exc).__name__, None


@given(histories(), st.data())
@settings(max_examples=400)
def test_fast_rebase_equals_transforming_over_each_logged_edit(
    history: tuple[EditLog, dict[int, list[Any]], str], data: st.DataObject
) -> None:
    log, states, kind = history
    base = data.draw(st.integers(log.oldest, log.version))
    node = data.draw(st.sampled_from(NODES))
    seen = states[node][base]
    edit = data.draw(edits(len(seen), kind))
    before = repr(edit)
    got = log.rebase(node, edit, base)
    assert got == reference_rebase(log, node, edit, base)
    assert repr(edit) == before, "the client's edit was changed in place"
    # and it applies to the current state: what the client meant, after everyone else's edits
    ot.apply(states[node][-1], got)
    if got is not edit:
        assert got == ot.normalize(got)
        for c in got:
            assert not (isinstance(c, list) and any(c is x for x in edit)), "aliases the input"


@given(histories(), st.data())
@settings(max_examples=300)
def test_fast_rebase_position_equals_transform_position_over_each_logged_edit(
    history: tuple[EditLog, dict[int, list[Any]], str], data: st.DataObject
) -> None:
    log, states, _ = history
    base = data.draw(st.integers(log.oldest, log.version))
    node = data.draw(st.sampled_from(NODES))
    pos = data.draw(st.integers(0, len(states[node][base])))
    assert log.rebase_position(node, pos, base) == reference_position(log, node, pos, base)


@given(histories(), st.data())
@settings(max_examples=200)
def test_fast_rebase_refuses_exactly_what_the_reference_refuses(
    history: tuple[EditLog, dict[int, list[Any]], str], data: st.DataObject
) -> None:
    """Versions outside the log, and inserts of the other kind (text into a list node)."""
    log, states, kind = history
    base = data.draw(st.integers(-2, log.version + 2))
    node = data.draw(st.sampled_from(NODES))
    other = "list" if kind == "text" else "text"
    length = len(states[node][base]) if log.oldest <= base <= log.version else 0
    edit = data.draw(st.one_of(edits(length, kind), edits(length, other)))
    assert outcome(log.rebase, node, edit, base) == outcome(reference_rebase, log, node, edit, base)
    pos = data.draw(st.integers(-1, length))
    assert outcome(log.rebase_position, node, pos, base) == outcome(
        reference_position, log, node, pos, base
    )


@given(histories(), st.data())
@settings(max_examples=200)
def test_clients_rebasing_through_the_log_converge(
    history: tuple[EditLog, dict[int, list[Any]], str], data: st.DataObject
) -> None:
    """Late clients' edits, rebased and logged in turn, keep every later rebase consistent."""
    log, states, kind = history
    node = NODES[0]
    current = states[node][-1]
    texts = list(states[node])
    for _ in range(data.draw(st.integers(1, 8))):
        base = data.draw(st.integers(max(log.oldest, log.version - 4), log.version))
        edit = data.draw(edits(len(texts[base]), kind))
        rebased = log.rebase(node, edit, base)
        assert rebased == reference_rebase(log, node, edit, base)
        current = ot.apply(current, rebased)
        log.record([(node, rebased)])
        texts.append(current)


@given(KINDS, st.data())
@settings(max_examples=300)
def test_sites_over_one_logged_edit_equal_transform(kind: str, data: st.DataObject) -> None:
    """Many-site client edits over one logged edit of a longer sequence: sites that vanish,
    split around an insert, or end up side by side and merge, as ``ot.transform`` normalizes."""
    length = data.draw(st.integers(0, 24))
    log = EditLog()
    other = data.draw(edits(length, kind))
    log.record([(1, other)])
    edit = ot.normalize(data.draw(general_ops(length, kind)))
    assert log.rebase(1, edit, 0) == ot.transform(edit, other, "left")


def test_sites_brought_together_merge_like_normalize() -> None:
    log = EditLog()
    log.record([(1, [3, -3])])
    # our two sites end up side by side once the other's delete is gone
    assert (
        log.rebase(1, [2, -1, 3, "x"], 0)
        == [2, "x", -1]
        == ot.transform([2, -1, 3, "x"], [3, -3], "left")
    )
    # a site that meets ours only once the other's delete further right is done: merged
    # first, its insert would tie differently with the other's insert further left
    log.record([(1, ["a😀", 6, -2])])
    assert log.rebase(1, ["a😀b", -6, 1, "aaa", -1], 1) == ["a😀b", 2, "aaa", -6]
    log.record([(1, [2, "AB", 1, "C"])])  # two sites
    for edit in ([2, "x", 1, "y"], [1, -3], [3, "x"], [-2, 1, -1]):
        assert log.rebase(1, edit, 2) == ot.transform(edit, [2, "AB", 1, "C"], "left"), edit


def _random_op(rng: random.Random, length: int, kind: str, components: int) -> Op:
    op: Op = []
    remaining = length
    for _ in range(components):
        r = rng.random()
        if r < 0.35:
            size = rng.randint(1, 3)
            op.append("".join(rng.choices("ab😀", k=size)) if kind == "text" else [0] * size)
        elif remaining:
            n = rng.randint(1, min(remaining, 6))
            op.append(n if r < 0.7 else -n)
            remaining -= n
    return ot.normalize(op) if rng.random() < 0.75 else op


def test_many_random_histories_rebase_like_the_reference() -> None:
    """A seeded sweep over many more cases than the properties above: long histories of
    many-site edits (sites that meet only once a whole logged op is done, say)."""
    rng = random.Random(20261121)
    for _ in range(3_000):
        kind = rng.choice(("text", "list"))
        log = EditLog(rng.choice((5, 50)))
        states: list[Any] = ["" if kind == "text" else []]
        for _ in range(rng.randint(1, 20)):
            op = _random_op(rng, len(states[-1]), kind, rng.choice((1, 2, 3, 4, 8)))
            log.record([(1, op)])
            states.append(ot.apply(states[-1], op))
        base = rng.randint(log.oldest, log.version)
        edit = _random_op(rng, len(states[base]), kind, rng.choice((1, 2, 3, 6, 10)))
        assert log.rebase(1, edit, base) == reference_rebase(log, 1, edit, base), (edit, base)
        pos = rng.randint(0, len(states[base]))
        assert log.rebase_position(1, pos, base) == reference_position(log, 1, pos, base)


def test_single_site_shapes_at_the_edges() -> None:
    log = EditLog()
    log.record([(1, ["hello"])])  # v1
    log.record([(1, [2, "XY", -2])])  # v2: "heXYo"
    log.record([(1, [-1, "Z"])])  # v3: delete then insert (not a site): "ZeXYo"
    cases: list[tuple[Op, int]] = [
        ([2, "a"], 1),  # at the other's insert: ours first
        ([3, "a"], 1),  # inside the other's delete: after its insert
        ([4, "a"], 1),  # at the end of the other's delete
        ([1, -3], 1),  # a delete around the other's insert: splits (generic)
        ([2, -1], 1),  # a delete inside the other's: gone
        (["a", -1], 1),
        ([5, "!", 0], 1),  # invalid (zero): the reference raises, so must the fast path
        ([], 1),
        ([5], 1),
        ([1, "a", 1, -1, 1, "b"], 1),  # several sites
        ([1, -2, 1, "b"], 1),  # a delete around the other's insert, then another site
        ([1, 1, "a"], 1),  # not normalized: generic
        (["a", "b"], 1),
        ([-1, "a"], 0),
        ([2, "a", -1, 1, -1], 0),
    ]
    for edit, base in cases:
        assert outcome(log.rebase, 1, edit, base) == outcome(
            reference_rebase, log, 1, edit, base
        ), edit


def test_no_logged_edit_of_the_node_returns_the_edit_itself() -> None:
    log = EditLog()
    log.record([(1, ["abc"])])
    edit: Op = [1, -1, "x"]
    assert log.rebase(2, edit, 0) is edit
    assert log.rebase(1, edit, 1) is edit
    with pytest.raises(ResyncNeeded):
        EditLog(1, version=5).rebase(1, edit, 3)


def test_evicted_edits_are_forgotten_per_node() -> None:
    log = EditLog(capacity=100)
    for v in range(1_000):
        log.record([(v % 3, ot.normalize([v % 7, "x"]))])
    # only the last 100 versions stay, and the per-node lists do not grow without bound
    assert log.oldest == 900
    assert sum(len(n.entries) for n in log._nodes.values()) < 400
    for base in (900, 950, 999, 1000):
        for node in range(3):
            assert log.rebase(node, [3, "y"], base) == reference_rebase(log, node, [3, "y"], base)


@given(st.integers(0, 6), st.text("ab😀", max_size=2), st.integers(0, 3), st.integers(0, 2))
def test_a_logged_keystroke_is_digested_like_any_normalized_edit(
    pos: int, ins: str, deleted: int, tail: int
) -> None:
    """``_entry`` takes a one-change text edit's site from ``ot.text_site``: the same entry as
    the general ``_sites`` scan gives."""
    if not ins and not deleted:
        return  # no change: not a keystroke
    op = ot.text_op(pos, ins, deleted) + ([tail] if tail else [])
    digest = rebase._sites(op)
    assert digest is not None
    sites, kind = digest
    ((q, got, e),) = sites
    assert rebase._entry(5, op) == (5, q, len(got or ""), e, kind, op, ())
