"""Tests of cowrite.engine.ot: OT laws as Hypothesis properties, plus readable examples."""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cowrite.engine import ot
from cowrite.engine.errors import InvalidOperation
from cowrite.engine.ot import Op

# ---------------------------------------------------------------------------------------------
# Strategies
# ---------------------------------------------------------------------------------------------

# Non-BMP characters (two UTF-16 units each) are frequent on purpose: positions are code points.
CHARS = st.one_of(st.sampled_from("ab \n😀𝄞é"), st.characters())
TEXTS = st.text(CHARS, max_size=12)
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.text(CHARS, max_size=2),
    st.lists(st.integers(0, 2), max_size=2),
    st.dictionaries(st.text("xy", max_size=1), st.integers(0, 2), max_size=2),
)
KINDS = st.sampled_from(("text", "list"))


def docs(kind: str) -> st.SearchStrategy[Any]:
    return TEXTS if kind == "text" else st.lists(VALUES, max_size=12)


def inserts(kind: str) -> st.SearchStrategy[Any]:
    if kind == "text":
        return st.text(CHARS, min_size=1, max_size=4)
    return st.lists(VALUES, min_size=1, max_size=3)


@st.composite
def ops(
    draw: st.DrawFn,
    length: int,
    kind: str,
    inserts: Callable[[str], st.SearchStrategy[Any]] = inserts,
    parts: int = 8,
) -> Op:
    """A valid op against a sequence of ``length``, often not normalized (raw client shape)."""
    op: Op = []
    remaining = length
    for _ in range(draw(st.integers(0, parts))):
        action = draw(st.sampled_from(("retain", "delete", "insert")))
        if action == "insert":
            op.append(draw(inserts(kind)))
        elif remaining:
            n = draw(st.integers(1, remaining))
            op.append(n if action == "retain" else -n)
            remaining -= n
    return op


@st.composite
def concurrent(draw: st.DrawFn, count: int) -> tuple[Any, list[Op]]:
    """A document and ``count`` ops that all apply to it."""
    kind = draw(KINDS)
    doc = draw(docs(kind))
    return doc, [draw(ops(len(doc), kind)) for _ in range(count)]


@st.composite
def sequential(draw: st.DrawFn, count: int) -> tuple[Any, list[Op]]:
    """A document and ``count`` ops, each applying to the result of the previous ones."""
    kind = draw(KINDS)
    doc = draw(docs(kind))
    result, current = [], doc
    for _ in range(count):
        op = draw(ops(len(current), kind))
        result.append(op)
        current = ot.apply(current, op)
    return doc, result


def run(doc: Any, *op_list: Op) -> Any:
    for op in op_list:
        doc = ot.apply(doc, op)
    return doc


def assert_normalized(op: Op) -> None:
    ot.check(op)
    assert op == ot.normalize(op)
    if op:
        assert not (isinstance(op[-1], int) and op[-1] > 0), "trailing retain"
    for x, y in pairwise(op):
        same_kind = (
            (isinstance(x, int) and isinstance(y, int) and (x > 0) == (y > 0))
            or (isinstance(x, str) and isinstance(y, str))
            or (isinstance(x, list) and isinstance(y, list))
        )
        assert not same_kind, f"unmerged {x!r}, {y!r}"
        assert not (isinstance(x, int) and x < 0 and not isinstance(y, int)), "delete before insert"


def as_list_op(op: Op) -> Op:
    return [list(c) if isinstance(c, str) else c for c in op]


# ---------------------------------------------------------------------------------------------
# Laws
# ---------------------------------------------------------------------------------------------


def split_and_pad(op: Op) -> Op:
    """An apply-equivalent spelling of ``op``: components halved, zero-length ones sprinkled in."""
    out: Op = [0]
    for c in op:
        size = abs(c) if isinstance(c, int) else len(c)
        if isinstance(c, int):
            parts: list[Any] = [c // abs(c) * (size // 2), c // abs(c) * (size - size // 2)]
        else:
            parts = [c[: size // 2], c[size // 2 :]]
        out += [*parts, 0, c[:0] if not isinstance(c, int) else 0]
    return out


@given(concurrent(1))
def test_normalize_is_idempotent_apply_equivalent_and_canonical(case: tuple[Any, list[Op]]) -> None:
    doc, [op] = case
    norm = ot.normalize(op)
    assert_normalized(norm)
    assert ot.normalize(norm) == norm
    assert ot.apply(doc, norm) == ot.apply(doc, op)
    assert ot.is_noop(op) == (norm == [])
    # Differently chunked spellings, and delete/insert swaps within a gap, normalize the same.
    assert ot.normalize(split_and_pad(op)) == norm
    swapped = list(op)
    for i in range(len(swapped) - 1):
        x, y = swapped[i], swapped[i + 1]
        if isinstance(x, int) and x < 0 and not isinstance(y, int):
            swapped[i], swapped[i + 1] = y, x
    assert ot.normalize(swapped) == norm


@given(concurrent(1))
def test_lengths_match_apply(case: tuple[Any, list[Op]]) -> None:
    doc, [op] = case
    assert ot.base_length(op) <= len(doc)
    assert ot.target_length(op, len(doc)) == len(ot.apply(doc, op))


@given(sequential(2))
@settings(max_examples=300)
def test_compose_equals_sequential_apply(case: tuple[Any, list[Op]]) -> None:
    doc, [a, b] = case
    ab = ot.compose(a, b)
    assert_normalized(ab)
    assert ot.apply(doc, ab) == run(doc, a, b)


@given(sequential(3))
def test_compose_is_associative(case: tuple[Any, list[Op]]) -> None:
    doc, [a, b, c] = case
    left = ot.compose(ot.compose(a, b), c)
    assert left == ot.compose(a, ot.compose(b, c))
    assert left == ot.compose_all([a, b, c])
    assert ot.apply(doc, left) == run(doc, a, b, c)


@given(concurrent(2), st.sampled_from(("left", "right")))
@settings(max_examples=500)
def test_tp1_both_sides(case: tuple[Any, list[Op]], side: ot.Side) -> None:
    doc, [a, b] = case
    other: ot.Side = "right" if side == "left" else "left"
    a2 = ot.transform(a, b, side)
    b2 = ot.transform(b, a, other)
    assert_normalized(a2)
    assert_normalized(b2)
    assert run(doc, b, a2) == run(doc, a, b2)
    # The same law in compose form.
    assert ot.apply(doc, ot.compose(b, a2)) == ot.apply(doc, ot.compose(a, b2))


@given(concurrent(1), st.sampled_from(("left", "right")))
def test_transform_by_identity_and_of_identity(case: tuple[Any, list[Op]], side: ot.Side) -> None:
    _, [a] = case
    assert ot.transform(a, [], side) == ot.normalize(a)
    assert ot.transform([], a, side) == []


@st.composite
def history_and_concurrent(draw: st.DrawFn, raw_c: bool = False) -> tuple[Any, Op, Op, Op]:
    """A document, normalized consecutive ops a then b on it (a server's history), and an op c
    concurrent to both (normalized unless ``raw_c``)."""
    doc, [a, b] = draw(sequential(2))
    kind = "text" if isinstance(doc, str) else "list"
    c = draw(ops(len(doc), kind))
    return doc, ot.normalize(a), ot.normalize(b), c if raw_c else ot.normalize(c)


def has_inserts(op: Op) -> bool:
    return any(not isinstance(c, int) for c in op)


def has_deletes(op: Op) -> bool:
    return any(isinstance(c, int) and c < 0 for c in op)


@given(history_and_concurrent(), st.sampled_from(("left", "right")))
@settings(max_examples=500)
def test_transform_against_a_composition_agrees_with_transforming_in_steps(
    case: tuple[Any, Op, Op, Op], side: ot.Side
) -> None:
    # Rebasing c over compose(a, b) or over a then b yields the same items; the order can differ
    # only where an insert of c ties with one of the history: composing forgets where a's inserts
    # sat inside ranges b deleted (a known property of index-based text OT, ot.js alike). Without
    # such ties the results are identical.
    doc, a, b, c = case
    ab = ot.compose(a, b)
    at_once = run(doc, ab, ot.transform(c, ab, side))
    in_steps = run(doc, a, b, ot.transform(ot.transform(c, a, side), b, side))
    assert sorted(map(repr, at_once)) == sorted(map(repr, in_steps))
    if not has_inserts(c) or not (has_deletes(a) or has_deletes(b)):
        assert at_once == in_steps


@given(history_and_concurrent(raw_c=True))
@settings(max_examples=300)
def test_client_and_server_converge_over_a_two_op_history(case: tuple[Any, Op, Op, Op]) -> None:
    # The server rebases client op c over its history h1, h2 ("left"); the client rebases h1, h2
    # over its pending c ("right"), as in ot.js/ShareDB. Both must reach the same document.
    doc, h1, h2, c = case
    server = run(doc, h1, h2, ot.transform(ot.transform(c, h1, "left"), h2, "left"))
    h1_client = ot.transform(h1, c, "right")
    pending = ot.transform(c, h1, "left")
    h2_client = ot.transform(h2, pending, "right")
    assert run(doc, c, h1_client, h2_client) == server


def reference_transform(op1: Op, op2: Op, side: str) -> Op:
    """ot-text-unicode's ``transform`` (lib/type.ts), ported literally: deletes as negative ints."""

    def kind(c: Any) -> str:
        return "i" if not isinstance(c, int) else "s" if c > 0 else "d"

    new: Op = []
    idx, offset = 0, 0

    def append(c: Any) -> None:
        if c and new and kind(new[-1]) == kind(c):
            new[-1] = new[-1] + c
        elif c:
            new.append(c)

    def take(n: int) -> Any:  # take(n, 'i'): inserts are taken whole
        nonlocal idx, offset
        if idx == len(op1):
            return None if n == -1 else n
        c = op1[idx]
        if kind(c) == "i":
            idx += 1
            return c
        if n == -1 or abs(c) - offset <= n:
            part = (abs(c) - offset) * (1 if c > 0 else -1)
            idx, offset = idx + 1, 0
            return part
        offset += n
        return n * (1 if c > 0 else -1)

    for c2 in op2:
        if kind(c2) == "i":
            if side == "left" and idx < len(op1) and kind(op1[idx]) == "i":
                append(take(-1))
            append(len(c2))
            continue
        length = abs(c2)
        while length > 0:
            c1 = take(length)
            if kind(c2) == "s" or kind(c1) == "i":
                append(c1)
            if kind(c1) != "i":
                length -= abs(c1)
    while (c := take(-1)) is not None:
        append(c)
    return new[:-1] if new and kind(new[-1]) == "s" else new


def reference_transform_position(cursor: int, op: Op) -> int:
    """ot-text-unicode's ``transformPosition``, ported literally."""
    pos = 0
    for c in op:
        if cursor <= pos:
            break
        if not isinstance(c, int):
            pos, cursor = pos + len(c), cursor + len(c)
        elif c > 0:
            pos += c
        else:
            cursor -= min(-c, cursor - pos)
    return cursor


@given(concurrent(2), st.sampled_from(("left", "right")), st.data())
@settings(max_examples=300)
def test_transform_matches_ot_text_unicode(
    case: tuple[Any, list[Op]], side: ot.Side, data: st.DataObject
) -> None:
    # Same results as the browser clients' library, on unnormalized client ops too. (Its own ops
    # never hold two adjacent inserts, on which its left and right sides disagree.)
    doc, [a, b] = case
    if any(not isinstance(x, int) and not isinstance(y, int) for x, y in pairwise(a)):
        a = ot.normalize(a)
    assert ot.transform(a, b, side) == ot.normalize(reference_transform(a, b, side))
    pos = data.draw(st.integers(0, len(doc)))
    assert ot.transform_position(pos, a) == reference_transform_position(pos, a)


@given(concurrent(1))
def test_invert_round_trip(case: tuple[Any, list[Op]]) -> None:
    doc, [op] = case
    after = ot.apply(doc, op)
    inverse = ot.invert(op, doc)
    assert_normalized(inverse)
    assert ot.apply(after, inverse) == doc
    assert ot.invert(inverse, after) == ot.normalize(op)
    assert ot.apply(after, ot.compose(inverse, op)) == after


@given(
    KINDS.flatmap(lambda k: st.tuples(docs(k), inserts(k) | inserts(k).map(lambda x: x[:0]))),
    st.data(),
)
def test_from_splice_matches_slicing(case: tuple[Any, Any], data: st.DataObject) -> None:
    doc, insert = case
    pos = data.draw(st.integers(0, len(doc)))
    count = data.draw(st.integers(0, len(doc) - pos))
    op = ot.from_splice(pos, count, insert)
    assert_normalized(op)
    assert ot.apply(doc, op) == doc[:pos] + insert + doc[pos + count :]


@given(concurrent(1), st.data(), st.booleans())
@settings(max_examples=300)
def test_transform_position_tracks_a_marker(
    case: tuple[Any, list[Op]], data: st.DataObject, is_own_op: bool
) -> None:
    # A cursor behaves like a marker item inserted at its position: deletes never remove it, and
    # inserts at exactly its position go after it (someone else's op) or before it (own op).
    doc, [op] = case
    pos = data.draw(st.integers(0, len(doc)))
    marker = object()
    items = list(doc)
    with_marker = ot.apply(items, ot.from_splice(pos, 0, [marker]))
    rebased = ot.transform(
        as_list_op(op), ot.from_splice(pos, 0, [marker]), "left" if is_own_op else "right"
    )
    expected = ot.apply(with_marker, rebased).index(marker)
    assert ot.transform_position(pos, op, is_own_op) == expected


@given(
    KINDS.flatmap(
        lambda k: st.integers(0, 10).flatmap(lambda n: st.tuples(st.just(n), ops(n, "list")))
    ),
    st.data(),
    st.booleans(),
)
@settings(max_examples=300)
def test_transform_position_keeps_surviving_neighbours_around_cursor(
    case: tuple[int, Op], data: st.DataObject, is_own_op: bool
) -> None:
    n, op = case
    counter = iter(range(10**6))
    op = [[("new", next(counter)) for _ in c] if isinstance(c, list) else c for c in op]
    doc = [("old", i) for i in range(n)]
    pos = data.draw(st.integers(0, n))
    after = ot.apply(doc, op)
    new_pos = ot.transform_position(pos, op, is_own_op)
    assert 0 <= new_pos <= len(after)
    before_cursor, after_cursor = set(after[:new_pos]), set(after[new_pos:])
    for item in after:
        if item[0] == "old":
            assert item in (before_cursor if item[1] < pos else after_cursor)
    anchor, head = ot.transform_selection(pos, 0, op, is_own_op)
    assert (anchor, head) == (new_pos, ot.transform_position(0, op, is_own_op))


@given(concurrent(1), st.integers(1, 3), st.booleans())
def test_apply_past_the_end_raises(case: tuple[Any, list[Op]], extra: int, delete: bool) -> None:
    doc, [op] = case
    too_long = [*op, len(doc) - ot.base_length(op) + extra]
    if delete:
        too_long[-1] = -too_long[-1]
    with pytest.raises(InvalidOperation, match="past the end"):
        ot.apply(doc, too_long)
    with pytest.raises(InvalidOperation, match="past the end"):
        ot.invert(too_long, doc)
    with pytest.raises(InvalidOperation):
        ot.target_length(too_long, len(doc))


BAD_OPS: list[tuple[object, str]] = [
    ("abc", "must be a list"),
    ((1, "a"), "must be a list"),
    (None, "must be a list"),
    ([0], "component 0: zero-length"),
    ([1, -2, 0], "component 2: zero-length"),
    ([True], "component 0: True is a bool"),
    ([2, False], "component 1: False is a bool"),
    ([""], "component 0: empty insert"),
    ([3, []], "component 1: empty insert"),
    ([1.0], "component 0: float is not int, str or list"),
    ([{"d": 1}], "component 0: dict is not int, str or list"),
    ([("a",)], "component 0: tuple is not int, str or list"),
    ([None], "component 0: NoneType is not int, str or list"),
    (["a", 2, ["b"]], "component 2: list insert .* component 0 is a str insert"),
    ([[1], -1, "x"], "component 2: str insert .* component 0 is a list insert"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_OPS)
def test_check_rejects_malformed_ops(bad: object, message: str) -> None:
    with pytest.raises(InvalidOperation, match=message):
        ot.check(bad)
    with pytest.raises(InvalidOperation):
        ot.apply("abcdef", bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidOperation):
        ot.compose([], bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidOperation):
        ot.transform(bad, [], "left")  # type: ignore[arg-type]


@given(concurrent(1))
def test_check_accepts_generated_ops(case: tuple[Any, list[Op]]) -> None:
    _, [op] = case
    ot.check(op)


# ---------------------------------------------------------------------------------------------
# Examples
# ---------------------------------------------------------------------------------------------


def test_concurrent_inserts_at_same_position_order_by_side() -> None:
    a, b = [1, "A"], [1, "B"]
    assert ot.apply("xy", ot.compose(b, ot.transform(a, b, "left"))) == "xABy"
    assert ot.apply("xy", ot.compose(a, ot.transform(b, a, "right"))) == "xABy"
    assert ot.apply("xy", ot.compose(b, ot.transform(a, b, "right"))) == "xBAy"


def test_both_sides_deleting_the_same_range_delete_it_once() -> None:
    a, b = [1, -2], [1, -3]
    assert ot.transform(a, b, "left") == []
    assert ot.transform(b, a, "right") == [1, -1]
    assert run("0123456", b, ot.transform(a, b, "left")) == "0456"


def test_insert_inside_a_concurrently_deleted_range_survives() -> None:
    insert, delete = [3, "X"], [1, -4]
    assert run("0123456", delete, ot.transform(insert, delete, "left")) == "0X56"
    assert run("0123456", insert, ot.transform(delete, insert, "right")) == "0X56"


def test_positions_count_code_points_not_utf16_units() -> None:
    assert ot.apply("a😀b", [2, "x"]) == "a😀xb"
    assert ot.apply("😀😀😀", [1, -1]) == "😀😀"
    assert ot.from_splice(1, 1, "🎉") == [1, "🎉", -1]
    assert ot.transform_position(3, [1, "𝄞𝄞"]) == 5
    assert ot.target_length(["😀"], 2) == 3


def test_list_edits_splice_items() -> None:
    doc = [{"id": 1}, {"id": 2}, {"id": 3}]
    op = ot.from_splice(1, 1, [{"id": 9}, None])
    assert ot.apply(doc, op) == [{"id": 1}, {"id": 9}, None, {"id": 3}]
    assert ot.apply(ot.apply(doc, op), ot.invert(op, doc)) == doc
    assert doc == [{"id": 1}, {"id": 2}, {"id": 3}], "apply must not mutate its input"


def test_text_and_list_ops_do_not_mix() -> None:
    with pytest.raises(InvalidOperation, match="inserts list into a str"):
        ot.apply("abc", [[1]])
    with pytest.raises(InvalidOperation, match="inserts str into a list"):
        ot.apply([1, 2], ["x"])
    with pytest.raises(InvalidOperation, match="cannot compose"):
        ot.compose(["x"], [[1]])
    with pytest.raises(InvalidOperation, match="cannot transform"):
        ot.transform(["x"], [[1]], "left")
    with pytest.raises(InvalidOperation, match="side must be"):
        ot.transform([], [], "middle")  # type: ignore[arg-type]


def test_normalize_merges_reorders_and_trims() -> None:
    assert ot.normalize([2, 3, -1, -1, "a", 0, "b", 4, ""]) == [5, "ab", -2]
    assert ot.normalize([["x"], [], [1, 2], -1, 1]) == [["x", 1, 2], -1]
    assert ot.normalize([5]) == []
    assert ot.is_noop([3, 4]) and not ot.is_noop([3, "x"])


def test_results_never_alias_input_lists() -> None:
    items = ["x"]
    op: Op = [items]
    for result in (ot.normalize(op), ot.compose(op, []), ot.transform(op, [], "left")):
        assert result == [["x"]] and result[0] is not items
    result_doc = ot.apply([], op)
    result_doc.append("y")
    assert items == ["x"]


def test_remote_cursor_stays_before_an_insert_at_its_position() -> None:
    assert ot.transform_position(2, [2, "abc"]) == 2
    assert ot.transform_position(2, [1, "abc"]) == 5


def test_own_cursor_moves_after_its_own_insert() -> None:
    assert ot.transform_position(2, [2, "abc"], is_own_op=True) == 5
    assert ot.transform_selection(2, 2, [2, "abc"], is_own_op=True) == (5, 5)


def test_cursor_inside_a_deleted_range_moves_to_its_start() -> None:
    assert ot.transform_position(4, [2, -5]) == 2
    assert ot.transform_position(9, [2, -5]) == 4
    assert ot.transform_selection(3, 8, [2, -5]) == (2, 3)


def test_transform_honours_component_order_like_ot_text_unicode() -> None:
    # ot-text-unicode keeps a delete-then-insert op in that order; its concurrent insert at the
    # same position then lands first. Matching it keeps browser clients and server convergent.
    raw, other = [-1, "A"], ["B"]
    assert run("xy", other, ot.transform(raw, other, "left")) == "BAy"
    assert run("xy", other, ot.transform(ot.normalize(raw), other, "left")) == "ABy"
    assert ot.transform_position(1, raw) == ot.transform_position(1, ot.normalize(raw)) - 1


@pytest.mark.parametrize(
    ("pos", "delete_count", "insert"),
    [(-1, 0, ""), (0, -1, ""), (True, 0, ""), (0, 0, 5), (0, 0, ("a",))],
)
def test_from_splice_rejects_bad_arguments(pos: Any, delete_count: Any, insert: Any) -> None:
    with pytest.raises(InvalidOperation):
        ot.from_splice(pos, delete_count, insert)


def test_transform_position_rejects_negative_positions() -> None:
    with pytest.raises(InvalidOperation):
        ot.transform_position(-1, [])


# ---------------------------------------------------------------------------------------------
# text_site: the one-change fast path
# ---------------------------------------------------------------------------------------------

COMPONENTS = st.one_of(
    st.integers(-4, 4),
    st.text("ab😀", max_size=2),
    st.booleans(),
    st.lists(st.integers(0, 2), max_size=2),
    st.none(),
    st.floats(allow_nan=False),
)


@given(
    st.one_of(st.lists(COMPONENTS, max_size=5), COMPONENTS, st.dictionaries(st.text(), st.text()))
)
@settings(max_examples=500)
def test_text_site_names_exactly_the_one_change_text_ops(op: Any) -> None:
    """A site is reported only for a valid text op making one change, and ``text_op`` of it is
    the op normalized; anything else (garbage included) gets None, never an error."""
    site = ot.text_site(op)
    if site is None:
        return
    ot.check(op)
    pos, ins, deleted = site
    assert ins or deleted
    assert ot.normalize(op) == ot.text_op(pos, ins, deleted)
    assert ot.text_site(ot.text_op(pos, ins, deleted)) == site


@given(st.integers(0, 5), st.text("ab😀", max_size=2), st.integers(0, 3), st.integers(0, 2))
def test_every_one_change_normalized_op_has_its_site(
    pos: int, ins: str, deleted: int, tail: int
) -> None:
    op = ot.text_op(pos, ins, deleted)
    if not ins and not deleted:
        assert ot.text_site(op) is None
        return
    assert ot.text_site(op) == (pos, ins, deleted)
    assert ot.text_site([*op, tail] if tail else op) == (pos, ins, deleted)
    assert ot.normalize(op) == op


def test_text_site_examples() -> None:
    assert ot.text_site([3, "a"]) == (3, "a", 0)
    assert ot.text_site([-2]) == (0, "", 2)
    assert ot.text_site(["ab", -1, 4]) == (0, "ab", 1)
    for other in ([], [3], [0, "a"], [-1, "a"], [3, "a", 2, "b"], [True, "a"], [3, ["x"]], "a"):
        assert ot.text_site(other) is None
