"""The sequence CRDT at the B-tree level: counted tree, run items, cursor cache, id index.

Big randomized edit scripts checked against a plain ``str``/``list`` model force leaf splits,
internal node splits and a multi-level tree; the cursor cache is hammered with far-apart edits;
``id_at``/``position_of`` must be inverse; repeated backspace must not fragment the tombstones.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cowrite.engine import runs
from cowrite.engine.document import Document
from cowrite.engine.errors import InvalidOperation
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, NO_ID, ONE, pack
from cowrite.engine.sequence import LEAF_MAX, NODE_MAX, Item, ItemIndex, Leaf, Node, Sequence

CLIENT = 1


class Local:
    """One sequence edited locally, with ids allocated like a document would."""

    def __init__(self, is_text: bool = True) -> None:
        self.index = ItemIndex()
        self.index.ensure_client(CLIENT)
        self.seq = Sequence(pack(0, 12345), is_text, self.index, lambda c: c)
        self.next = 0

    def insert(self, pos: int, content: Any) -> int:
        first = pack(CLIENT, self.next)
        self.next += len(content)
        self.seq.insert(pos, content, first)
        return first

    def delete(self, pos: int, count: int) -> list[tuple[int, int]]:
        spans = self.seq.delete(pos, count)
        self.next += 1  # a delete op takes a seq too
        return spans


def slow_id_at(seq: Sequence, pos: int) -> int:
    """``id_at`` by a plain walk over the items (no tree, no cursor)."""
    for item in seq.items():
        if item.deleted:
            continue
        if pos < len(item.content):
            return item.id + pos * ONE
        pos -= len(item.content)
    raise IndexError(pos)


def depth(seq: Sequence) -> int:
    d, node = 1, seq.root
    while isinstance(node, Node):
        d += 1
        node = node.children[0]
    return d


def item_count(seq: Sequence) -> int:
    return sum(1 for _ in seq.items())


def leaves(seq: Sequence) -> list[Leaf]:
    out, leaf = [], seq.first
    while leaf is not None:
        out.append(leaf)
        leaf = leaf.next
    return out


# ---------------------------------------------------------------------------------------------
# Big random scripts against a model
# ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [1, 2])
def test_twenty_thousand_random_edits_match_a_string_model(seed: int) -> None:
    rng = random.Random(seed)
    s = Local()
    model = ""
    alphabet = "abcdefgh😀𝄞é "
    typing_at = 0
    for step in range(20_000):
        r = rng.random()
        n = len(model)
        if r < 0.45 or n < 10:  # a key at a random place
            pos = rng.randint(0, n)
            ch = rng.choice(alphabet)
            s.insert(pos, ch)
            model = model[:pos] + ch + model[pos:]
            typing_at = pos + 1
        elif r < 0.65:  # keep typing where we were (runs grow, cursor fast path)
            pos = min(typing_at, n)
            ch = rng.choice(alphabet)
            s.insert(pos, ch)
            model = model[:pos] + ch + model[pos:]
            typing_at = pos + 1
        elif r < 0.72:  # paste a chunk
            pos = rng.randint(0, n)
            chunk = "".join(rng.choice(alphabet) for _ in range(rng.randint(2, 30)))
            s.insert(pos, chunk)
            model = model[:pos] + chunk + model[pos:]
        elif r < 0.9:  # a single-character delete
            pos = rng.randrange(n)
            s.delete(pos, 1)
            model = model[:pos] + model[pos + 1 :]
        else:  # a range delete, across many items
            pos = rng.randrange(n)
            count = rng.randint(1, min(n - pos, 80))
            spans = s.delete(pos, count)
            assert sum(c for _, c in spans) == count
            model = model[:pos] + model[pos + count :]
        assert len(s.seq) == len(model)
        if step % 500 == 499:
            s.seq.check_invariants()
            assert s.seq.value() == model
    s.seq.check_invariants()
    assert s.seq.value() == model
    # the script really exercised the tree: several levels, many leaves, internal splits
    assert depth(s.seq) >= 3
    assert len(leaves(s.seq)) > NODE_MAX
    assert all(len(leaf.items) <= LEAF_MAX for leaf in leaves(s.seq))


@pytest.mark.timeout(60)
def test_list_sequence_matches_a_list_model() -> None:
    rng = random.Random(7)
    s = Local(is_text=False)
    model: list[Any] = []
    for step in range(6_000):
        n = len(model)
        if rng.random() < 0.6 or n < 5:
            pos = rng.randint(0, n)
            values = [rng.choice([None, 1, "x", [2], {"k": 3}]) for _ in range(rng.randint(1, 3))]
            s.insert(pos, values)
            model[pos:pos] = values
        else:
            pos = rng.randrange(n)
            count = rng.randint(1, min(n - pos, 5))
            s.delete(pos, count)
            del model[pos : pos + count]
        if step % 500 == 0:
            s.seq.check_invariants()
            assert s.seq.value() == model
    s.seq.check_invariants()
    assert s.seq.value() == model
    assert depth(s.seq) >= 2


def test_appending_a_long_run_stays_one_item() -> None:
    s = Local()
    for k in range(5_000):
        s.insert(k, "x")
    assert item_count(s.seq) == 1
    assert s.seq.value() == "x" * 5_000
    s.seq.check_invariants()


def test_prepending_forces_leaf_and_node_splits() -> None:
    """Typing backwards (always at 0) makes one item per key: the tree must grow to 3 levels."""
    s = Local()
    n = LEAF_MAX * NODE_MAX * 2
    for k in range(n):
        s.insert(0, chr(0x4E00 + k % 500))
        if k % 997 == 0:
            s.seq.check_invariants()
    s.seq.check_invariants()
    assert item_count(s.seq) == n
    assert depth(s.seq) >= 3
    assert s.seq.value() == "".join(chr(0x4E00 + k % 500) for k in reversed(range(n)))


# ---------------------------------------------------------------------------------------------
# The cursor cache
# ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_cursor_survives_alternating_far_apart_edits() -> None:
    rng = random.Random(3)
    s = Local()
    model = "".join(rng.choice("abc") for _ in range(3_000))
    for k in range(0, len(model), 7):  # many items, not one run
        s.insert(k, model[k : k + 7])
    assert s.seq.value() == model
    s.seq.check_invariants()
    for step in range(3_000):
        n = len(model)
        # alternate between the two ends and the middle, never near the last edit
        where = [rng.randint(0, 5), n // 2 + rng.randint(-3, 3), max(0, n - rng.randint(0, 5))]
        pos = min(where[step % 3], n)
        if step % 4 == 3 and pos < n:
            s.delete(pos, 1)
            model = model[:pos] + model[pos + 1 :]
        else:
            ch = "xyz"[step % 3]
            s.insert(pos, ch)
            model = model[:pos] + ch + model[pos:]
        # reading through the cursor must agree with the model at the far end too
        probe = rng.randrange(len(model))
        assert s.seq.id_at(probe) == slow_id_at(s.seq, probe)
        if step % 100 == 0:
            s.seq.check_invariants()
            assert s.seq.value() == model
    s.seq.check_invariants()
    assert s.seq.value() == model


def test_cursor_with_typing_then_jumping_back() -> None:
    """Type a run, jump far away, come back and keep typing: the run must not be corrupted."""
    s = Local()
    s.insert(0, "a" * 2_000)
    s.delete(1_000, 1)  # split the run into items
    model = "a" * 1_999
    for round_ in range(50):
        for pos, ch in ((5, "b"), (len(model) - 5, "c"), (len(model) // 2, "d")):
            for k in range(round_ % 4 + 1):
                s.insert(pos + k, ch)
                model = model[: pos + k] + ch + model[pos + k :]
        s.delete(len(model) // 3, 2)
        model = model[: len(model) // 3] + model[len(model) // 3 + 2 :]
        assert s.seq.value() == model
        s.seq.check_invariants()


def test_two_sequences_sharing_an_index_keep_separate_cursors() -> None:
    index = ItemIndex()
    index.ensure_client(CLIENT)
    a = Sequence(pack(0, 1), True, index, lambda c: c)
    b = Sequence(pack(0, 2), True, index, lambda c: c)
    rng = random.Random(11)
    seq = 0
    ma = mb = ""
    for _ in range(4_000):
        target, model = (a, ma) if rng.random() < 0.5 else (b, mb)
        pos = rng.randint(0, len(model))
        if rng.random() < 0.25 and pos < len(model):
            target.delete(pos, 1)
            model = model[:pos] + model[pos + 1 :]
            seq += 1
        else:
            target.insert(pos, "q", pack(CLIENT, seq))
            seq += 1
            model = model[:pos] + "q" + model[pos:]
        if target is a:
            ma = model
        else:
            mb = model
    for s, m in ((a, ma), (b, mb)):
        s.check_invariants()
        assert s.value() == m


# ---------------------------------------------------------------------------------------------
# id_at / position_of
# ---------------------------------------------------------------------------------------------


def test_id_at_and_position_of_are_inverse() -> None:
    rng = random.Random(5)
    s = Local()
    for _ in range(3_000):
        n = len(s.seq)
        if rng.random() < 0.7 or n == 0:
            s.insert(rng.randint(0, n), "ab😀"[rng.randrange(3)] * rng.randint(1, 4))
        else:
            pos = rng.randrange(n)
            s.delete(pos, rng.randint(1, min(3, n - pos)))
    s.seq.check_invariants()
    ids = [s.seq.id_at(p) for p in range(len(s.seq))]
    assert len(set(ids)) == len(ids)
    for p, pid in enumerate(ids):
        assert s.seq.position_of(pid) == (p, True)
    # tombstones report the index of the next visible element
    visible = 0
    for item in s.seq.items():
        for k in range(len(item.content)):
            pos, vis = s.seq.position_of(item.id + k * ONE)
            assert vis == (not item.deleted)
            assert pos == visible + (0 if item.deleted else k)
        if not item.deleted:
            visible += len(item.content)
    assert visible == len(s.seq)


@pytest.mark.parametrize("pos", [-1, 0, 1])
def test_id_at_out_of_range(pos: int) -> None:
    s = Local()
    if pos == 1:
        s.insert(0, "x")
    with pytest.raises(InvalidOperation):
        s.seq.id_at(pos)


def test_local_edit_range_errors() -> None:
    s = Local()
    s.insert(0, "abc")
    for bad in ((-1, 1), (0, 4), (3, 1), (0, 0), (1, -1)):
        with pytest.raises(InvalidOperation):
            s.seq.delete(*bad)
    for bad_pos in (-1, 4):
        with pytest.raises(InvalidOperation):
            s.seq.insert(bad_pos, "x", pack(CLIENT, 99))
    assert s.seq.value() == "abc"
    s.seq.check_invariants()


# ---------------------------------------------------------------------------------------------
# Tombstones
# ---------------------------------------------------------------------------------------------


def test_repeated_backspace_merges_tombstones() -> None:
    s = Local()
    for k in range(1_000):
        s.insert(k, "x")
    for k in range(1_000, 0, -1):
        s.delete(k - 1, 1)  # backspace from the end
    assert s.seq.value() == ""
    assert item_count(s.seq) <= 2
    s.seq.check_invariants()


def test_backspace_in_the_middle_of_a_run_merges_tombstones() -> None:
    s = Local()
    for k in range(2_000):
        s.insert(k, "x")
    for k in range(1_500, 500, -1):
        s.delete(k - 1, 1)
    assert len(s.seq) == 1_000
    assert item_count(s.seq) <= 4
    s.seq.check_invariants()


def test_forward_delete_merges_tombstones() -> None:
    s = Local()
    s.insert(0, "y" * 1_000)
    for _ in range(800):
        s.delete(100, 1)  # the Delete key: same index each time
    assert s.seq.value() == "y" * 200
    assert item_count(s.seq) <= 4
    s.seq.check_invariants()


def test_backspace_then_retype_keeps_items_bounded() -> None:
    """A typist correcting as they go: type 5, backspace 2, repeatedly."""
    s = Local()
    pos = 0
    for _ in range(500):
        for _ in range(5):
            s.insert(pos, "k")
            pos += 1
        for _ in range(2):
            s.delete(pos - 1, 1)
            pos -= 1
    assert len(s.seq) == 1_500
    s.seq.check_invariants()
    # every correction leaves one tombstone run and one new run: O(corrections), not O(keys)
    assert item_count(s.seq) <= 2 * 500 + 2


def test_deleted_ranges_report_spans_of_consecutive_ids() -> None:
    s = Local()
    s.insert(0, "abcdef")  # ids 0..5
    s.insert(3, "XY")  # ids 6..7 inside
    spans = s.delete(1, 6)  # b c X Y d e
    assert spans == [(pack(CLIENT, 1), 2), (pack(CLIENT, 6), 2), (pack(CLIENT, 3), 2)]
    assert s.seq.value() == "af"


# ---------------------------------------------------------------------------------------------
# Remote integration at scale (through documents exchanging op lists)
# ---------------------------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_remote_integration_of_a_large_history() -> None:
    rng = random.Random(17)
    replicas = [1, 2]
    a = Document(1, replicas=replicas)
    b = Document(2, replicas=replicas)
    t = a.text("t")
    b.text("t")
    for _ in range(8_000):
        n = len(t)
        if rng.random() < 0.7 or n < 5:
            t.insert(rng.randint(0, n), rng.choice(["q", "w", "😀", "abc"]))
        else:
            pos = rng.randrange(n)
            t.delete(pos, rng.randint(1, min(4, n - pos)))
    b.apply_ops(a.ops_since({}), changes=False)
    assert str(b.text("t")) == str(t)
    b.check_invariants()
    seq = b.sequence(b.text("t").id)
    assert depth(seq) >= 2


@pytest.mark.timeout(60)
def test_concurrent_typing_at_one_spot_at_scale() -> None:
    """Two long runs typed concurrently at the same place interleave nowhere."""
    replicas = [1, 2]
    a = Document(1, replicas=replicas)
    b = Document(2, replicas=replicas)
    a.text("t").insert(0, "[]")
    b.text("t")  # op objects carry no root table: the receiver must know the root
    b.apply_ops(a.ops_since({}))
    base = dict(a.version)
    for k in range(2_000):
        a.text("t").insert(1 + k, "a")
        b.text("t").insert(1 + k, "b")
    # deliver b's keys one op at a time to stress integrate + run extension
    for op in b.ops_since(base):
        a.apply_ops([op], changes=False)
    b.apply_ops(a.ops_since(base), changes=False)
    va, vb = str(a.text("t")), str(b.text("t"))
    assert va == vb
    assert va in {"[" + "a" * 2_000 + "b" * 2_000 + "]", "[" + "b" * 2_000 + "a" * 2_000 + "]"}
    a.check_invariants()
    b.check_invariants()


@given(st.lists(st.integers(0, 1 << 62)), st.integers(-1, (1 << 62) + 1))
def test_the_compiled_builds_search_agrees_with_bisect_right(values: list[int], x: int) -> None:
    """``runs._after`` (the id index's search when compiled) is ``bisect_right``, also on
    duplicates, before the first and after the last value, and on seqs beyond short ints."""
    a = sorted(values)
    assert runs._after(a, x) == bisect_right(a, x)
    for v in a:
        assert runs._after(a, v) == bisect_right(a, v)


def test_leaf_lookups_go_by_identity() -> None:
    """Equal-looking items are still told apart; a missing one is a ValueError, as with
    ``list.index``."""
    items = [Item(pack(1, 0), "x", NO_ID, NO_ID, False) for _ in range(5)]
    assert [runs.item_index(items, it) for it in items] == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        runs.item_index(items, Item(pack(1, 0), "x", NO_ID, NO_ID, False))
    leaves = [Leaf(), Leaf(), Leaf()]
    assert runs.child_index(leaves, leaves[2]) == 2
    with pytest.raises(ValueError):
        runs.child_index(leaves, Leaf())


@pytest.mark.parametrize("at", [0, 1, 5, 8])
def test_remote_insert_inside_a_run_between_its_origins(at: int) -> None:
    """A remote insert whose left and right origins are neighbours inside one run (the split
    puts the right origin in the new tail) lands between them, the run stays split there and
    whole elsewhere, also when a concurrent insert already sits at that place."""
    a = Document(1)
    b = Document(2)
    c = Document(3)
    ta = a.text("t")
    ta.insert(0, "0123456789")
    for d in (b, c):
        d.merge(a.encode_state(), changes=False)
    b.text("t").insert(at + 1, "B")
    c.text("t").insert(at + 1, "C")
    deltas = [b.delta_since(a.version), c.delta_since(a.version)]
    for d in (a, b, c):
        for delta in deltas:
            d.merge(delta, changes=False)
        d.check_invariants()
    assert str(a.text("t")) == str(b.text("t")) == str(c.text("t"))
    assert str(a.text("t")).replace("B", "").replace("C", "") == "0123456789"
    assert str(a.text("t"))[at + 1 : at + 3] in ("BC", "CB")


def test_index_find_after_splits_and_merges_matches_a_scan_of_the_items() -> None:
    """``ItemIndex.find`` remembers its last hit: after the hit item is split (its tail
    indexed), merged away (``remove``) or its run grown, every id still resolves to the item
    that holds it, as a scan of all the items says."""
    index = ItemIndex()
    index.ensure_client(CLIENT)
    s = Sequence(pack(0, 1), True, index, lambda c: c)
    rng = random.Random(23)
    seq = 0
    for _ in range(1_500):
        n = len(s)
        if n and rng.random() < 0.35:
            pos = rng.randrange(n)
            index.find(s.id_at(pos))  # the hit is the item about to be split and re-merged
            s.delete(pos, min(rng.randint(1, 3), n - pos))
        else:
            pos = rng.randint(0, n)
            if n:
                index.find(s.id_at(max(pos - 1, 0)))
            text = "xyz"[: rng.randint(1, 3)]
            s.insert(pos, text, pack(CLIENT, seq))
            seq += len(text)
        if rng.random() < 0.2:
            holder: dict[int, tuple[Item, int]] = {}
            leaf: Leaf | None = s.first
            while leaf is not None:
                for it in leaf.items:
                    for off in range(len(it.content)):
                        holder[it.id + off * ONE] = (it, off)
                leaf = leaf.next
            for pid in rng.sample(sorted(holder), min(40, len(holder))):
                item, off = index.find(pid)
                assert item is holder[pid][0] and off == holder[pid][1]
                again, off2 = index.find(pid)  # the remembered hit answers the same
                assert again is item and off2 == off
    s.check_invariants()


def test_index_adds_after_its_hit_keep_every_id_resolvable() -> None:
    """``ItemIndex`` remembers where its last hit is and adds the tail of a split of it
    without bisecting: with adds and removes of other items of the same replica and of others
    between the look-up and the split (they move the hit), and past block splits, every id
    still resolves to its item and the runs stay in order."""
    index = ItemIndex()
    rng = random.Random(41)
    live: dict[int, Item] = {}  # first id -> item, as the index should hold them
    ends = {1: 0, 2: 0, 3: 0}
    before: dict[int, Item] = {}  # id just past an item's last element -> that item
    found: Item | None = None  # the item of the last look-up
    for _ in range(5_000):
        client = rng.choice((1, 2, 3))
        index.ensure_client(client)
        roll = rng.random()
        if roll < 0.3 or not live:  # a new run past the replica's end
            n = rng.randint(1, 6)
            item = Item(pack(client, ends[client]), "x" * n, NO_ID, NO_ID, False)
            ends[client] += n
            index.add(item)
            live[item.id] = item
            before[item.id + n * ONE] = item
        elif roll < 0.55:  # look an element up
            first = rng.choice(list(live))
            found = live[first]
            off = rng.randrange(len(found.content))
            assert index.find(first + off * ONE) == (found, off)
        elif roll < 0.85:  # split the item last looked up (the tail added)
            if found is None or found.id not in live or len(found.content) < 2:
                continue
            off = rng.randint(1, len(found.content) - 1)
            tail = Item(found.id + off * ONE, found.content[off:], NO_ID, NO_ID, False)
            found.content = found.content[:off]
            index.add(tail)
            live[tail.id] = tail
            before[tail.id + len(tail.content) * ONE] = tail
            before[tail.id] = found
            if rng.random() < 0.5:
                found = tail
        else:  # merge a run into its predecessor (its removal from the index)
            first = rng.choice(list(live))
            item = live[first]
            prev = before.get(first)
            if prev is None:
                continue
            del before[first]
            before[first + len(item.content) * ONE] = prev
            prev.content += item.content
            index.remove(item)
            del live[first]
        if rng.random() < 0.02:
            for first, item in live.items():
                for off in (0, len(item.content) - 1):
                    assert index.find(first + off * ONE) == (item, off)
    assert index.count() == len(live)
    for client in (1, 2, 3):
        assert [s for s, _ in index.runs(client)] == sorted(
            i >> CLIENT_BITS for i in live if i & CLIENT_MASK == client
        )
