"""The sequence CRDT behind text and list nodes.

Ordering rule: FugueMax, implemented as the "YjsMod" integration of Gentle's reference CRDTs. Every
inserted item records two origins: the item to its left and the item to its right (tombstones
included) at the moment it was made. A remote insert is placed between its origins; items already
there are ordered by comparing their origins with the new item's, and a true tie (same origins) is
broken by replica id. FugueMax is *maximally non-interleaving*: two people typing forwards, or
backwards, at the same place never get their characters interleaved, which plain RGA (left origin
only) does for backward typing. See docs/architecture.md.

Storage: items are *runs*: consecutive inserts by one replica, each character's left origin being
the previous character of the run and all sharing one right origin, are one ``Item`` holding a
``str`` (text) or ``list`` (list elements). Deletes only mark items as tombstones (splitting runs).
Items live in the leaves of a counted B-tree (visible length cached per node), so index -> item is
O(log n); every item knows its leaf and the document keeps a per-replica sorted index of items, so
id -> item is O(log n) too. A cursor remembers the last item touched: typing and backspacing
near the previous edit, by far the commonest case, skips the tree walk entirely.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cowrite.engine.errors import InvalidOperation
from cowrite.engine.ids import CLIENT_MASK, NO_ID, ONE
from cowrite.engine.runs import (
    LEAF_MAX,
    NODE_MAX,
    Content,
    Gap,
    Item,
    ItemIndex,
    Leaf,
    Node,
    child_index,
    item_index,
)
from cowrite.engine.threads import pace
from cowrite.engine.tree import RunTree

__all__ = [
    "LEAF_MAX",
    "NODE_MAX",
    "Content",
    "Gap",
    "Item",
    "ItemIndex",
    "Leaf",
    "Node",
    "Sequence",
]


class Sequence(RunTree):
    """An ordered sequence of elements (code points of a text, or values of a list).

    Local edits are by visible index (``insert``/``delete``); remote edits by id (``integrate``,
    ``delete_ids``). The caller (the document) allocates ids and records operations.
    """

    __slots__ = ("replica_of",)

    def __init__(
        self, node_id: int, is_text: bool, index: ItemIndex, replica_of: Callable[[int], int]
    ) -> None:
        super().__init__(node_id, is_text, index)
        self.replica_of = replica_of

    # ----------------------------------------------------------------- reading

    def __len__(self) -> int:
        return self.root.vis

    def value(self, paced: bool = False) -> str | list[Any]:
        """The visible elements; ``paced``: calling ``pace()`` per leaf (a worker thread's read
        of a 2 M-character text is ~20 ms of leaves: ``engine/threads.py``)."""
        # leaf by leaf, without a generator per item: a checksum reads the whole text
        leaf: Leaf | None = self.first
        if self.is_text:
            parts: list[str] = []
            while leaf is not None:
                parts += [it.content for it in leaf.items if not it.deleted]  # type: ignore[misc]
                leaf = leaf.next
                if paced:
                    pace()
            return "".join(parts)
        out: list[Any] = []
        while leaf is not None:
            for it in leaf.items:
                if not it.deleted:
                    out.extend(it.content)  # never a Gap: those are tombstones
            leaf = leaf.next
            if paced:
                pace()
        return out

    def id_at(self, pos: int) -> int:
        """The id of the visible element at ``pos``."""
        if not 0 <= pos < self.root.vis:
            raise InvalidOperation(f"index {pos} out of range for length {self.root.vis}")
        leaf, i, s = self._locate(pos)
        return leaf.items[i].id + (pos - s) * ONE

    def position_of(self, pid: int) -> tuple[int, bool]:
        """The visible index of element ``pid`` and whether it is visible.

        A deleted element reports the index where it would be (the next visible element's index).
        """
        item, off = self.index.find(pid)
        leaf = item.leaf
        pos = 0
        for it in leaf.items:
            if it is item:
                break
            if not it.deleted:
                pos += len(it.content)
        pos += self._start_of(leaf)
        if item.deleted:
            return pos, False
        return pos + off, True

    # ------------------------------------------------------------ local edits

    def insert(self, pos: int, content: Content, new_id: int) -> None:
        """Insert ``content`` so that its first element lands at visible index ``pos``."""
        n = len(content)
        length = self.root.vis
        if not 0 <= pos <= length:
            raise InvalidOperation(f"insert at {pos} out of range for length {length}")
        if pos == 0:
            leaf = self.first
            succ = leaf.items[0] if leaf.items else None
            item = Item(new_id, content, NO_ID, succ.id if succ is not None else NO_ID, False)
            self._insert_at(leaf, 0, item)
            self.index.add(item)
            self._cl = None
            return
        leaf, i, s = self._locate(pos - 1)
        items = leaf.items
        it = items[i]
        size = len(it.content)
        off = pos - 1 - s
        if off == size - 1:
            if i + 1 < len(items):
                right = items[i + 1].id
            else:
                nxt = leaf.next
                right = nxt.items[0].id if nxt is not None else NO_ID
            if it.id + size * ONE == new_id and it.right == right:
                it.content = it.content + content  # type: ignore[operator]
                leaf.vis += n
                node = leaf.parent
                while node is not None:
                    node.vis += n
                    node = node.parent
                return
            item = Item(new_id, content, it.id + off * ONE, right, False)
        else:
            tail = self._split(it, off + 1)
            item = Item(new_id, content, it.id + off * ONE, tail.id, False)
            if self._cl is None:  # the split split the leaf: take the general path
                self.index.add(item)
                self._insert_at(it.leaf, item_index(it.leaf.items, it) + 1, item)
                return
        self.index.add(item)
        if len(items) < LEAF_MAX:
            items.insert(i + 1, item)
            item.leaf = leaf
            leaf.vis += n
            node = leaf.parent
            while node is not None:
                node.vis += n
                node = node.parent
            self._ci = i + 1
            self._cis = s + off + 1
        else:
            self._insert_at(leaf, i + 1, item)
            self._cl = None

    def delete(self, pos: int, count: int) -> list[tuple[int, int]]:
        """Delete ``count`` visible elements from ``pos``; returns the deleted id spans."""
        length = self.root.vis
        if count <= 0 or pos < 0 or pos + count > length:
            raise InvalidOperation(f"delete of {count} at {pos} out of range for length {length}")
        spans: list[tuple[int, int]] = []
        while count > 0:
            leaf, i, s = self._locate(pos)
            it = leaf.items[i]
            if pos > s:
                it = self._split(it, pos - s)
                if self._cl is not None:
                    self._ci = i + 1
                    self._cis = pos
            size = len(it.content)
            if size > count:
                self._split(it, count)
                size = count
            self._mark_deleted(it, size)
            if spans and spans[-1][0] + spans[-1][1] * ONE == it.id:
                spans[-1] = (spans[-1][0], spans[-1][1] + size)
            else:
                spans.append((it.id, size))
            count -= size
            self._merge_around(it)
        return spans

    # ----------------------------------------------------------- remote edits

    def integrate(self, new_id: int, origin: int, right: int, content: Content) -> None:
        """Place a remote insert between its origins (FugueMax / YjsMod rule).

        The caller guarantees both origins are known (causal delivery) and the id is new.
        """
        self._cl = None
        index = self.index
        left: Item | None = None
        right_item: Item | None = None
        try:
            if origin != NO_ID:
                left, off = index.find(origin)
            if right != NO_ID:
                right_item, roff = index.find(right)
        except KeyError:
            raise InvalidOperation("an insert's origin is not an element") from None
        if (left is not None and left.leaf.owner is not self) or (
            right_item is not None and right_item.leaf.owner is not self
        ):
            raise InvalidOperation("an insert's origin is an element of another node")
        split_left = left is not None and off < len(left.content) - 1
        k = 0  # the left origin's index in its leaf
        lleaf: Leaf | None = None
        if left is not None:
            lleaf = left.leaf
            k = item_index(lleaf.items, left)
        if split_left:
            assert left is not None
            tail = self._split(left, off + 1, k)
            if right_item is left and roff > off:  # that split split it too: it is in the tail
                right_item = tail
                roff -= off + 1
        right_head: Item | None = None
        if right_item is not None and roff > 0:
            right_head = right_item
            right_item = self._split(right_item, roff)
        # the first candidate after the left origin
        if left is None:
            leaf: Leaf | None = self.first
            i = 0
        else:
            leaf = left.leaf
            if leaf is not lleaf:  # a split split the leaf and moved it
                k = item_index(leaf.items, left)
            i = k + 1
        if leaf is not None and i >= len(leaf.items):
            leaf, i = leaf.next, 0
        other = leaf.items[i] if leaf is not None else None
        scanned = other is not right_item
        if scanned:
            leaf, i = self._scan(new_id, origin, right, left, right_item, leaf, i)
        # extend the left run when the new item continues it (remote typing, one op per key)
        if (
            left is not None
            and not left.deleted
            and left.right == right
            and left.id + len(left.content) * ONE == new_id
            and self._item_before(leaf, i) is left
        ):
            left.content = left.content + content  # type: ignore[operator]
            self._add_vis(left.leaf, len(content))
        else:
            item = Item(new_id, content, origin, right, False)
            index.add(item)
            if leaf is None:
                last = self._last_leaf()
                self._insert_at(last, len(last.items), item)
            else:
                self._insert_at(leaf, i, item)
        # a split the new item did not land in is undone: runs stay runs
        if right_head is not None:
            self._merge_next(right_head)
        if split_left and scanned:
            # (unscanned, the new item sits right after the left part: nothing to merge)
            assert left is not None
            self._merge_next(left)

    def _scan(
        self,
        new_id: int,
        origin: int,
        right: int,
        left: Item | None,
        right_item: Item | None,
        leaf: Leaf | None,
        i: int,
    ) -> tuple[Leaf | None, int]:
        """The YjsMod conflict scan between the origins; returns where to insert."""
        left_key = self._key_of(origin, -1)
        right_key = self._key_of(right, 1)
        my_replica = self.replica_of(new_id & CLIENT_MASK)
        scanning = False
        dest_leaf, dest_i = leaf, i
        while True:
            if not scanning:
                dest_leaf, dest_i = leaf, i
            if leaf is None:
                break
            other = leaf.items[i]
            if other is right_item:
                break
            oleft = self._key_of(other.origin, -1)
            if oleft < left_key:
                break
            if oleft == left_key:
                oright = self._key_of(other.right, 1)
                if oright < right_key:
                    scanning = True
                elif oright == right_key:
                    if my_replica < self.replica_of(other.id & CLIENT_MASK):
                        break
                    scanning = False
                else:
                    scanning = False
            i += 1
            if i >= len(leaf.items):
                leaf, i = leaf.next, 0
        return dest_leaf, dest_i

    def _key_of(self, pid: int, none_side: int) -> tuple[int, ...]:
        """A sortable key of element ``pid``'s place in the full order (tombstones included)."""
        if pid == NO_ID:
            return (-1,) if none_side < 0 else (1 << 62,)
        item, off = self.index.find(pid)
        node: Leaf | Node = item.leaf
        key = [off, item_index(node.items, item)]  # type: ignore[union-attr]
        parent = node.parent
        while parent is not None:
            key.append(child_index(parent.children, node))
            node = parent
            parent = node.parent
        key.reverse()
        return tuple(key)

    def delete_ids(self, target: int, count: int) -> int:
        """Mark ``count`` elements from id ``target`` (same replica, consecutive seqs) deleted.

        Returns how many were visible before. Deleting a tombstone again is a no-op. Fresh
        tombstones merge with adjacent ones of the same run, as local deletes do.
        """
        self._cl = None
        removed = 0
        index = self.index
        while count > 0:
            it, off = index.find(target)
            size = len(it.content) - off
            if it.deleted:
                size = min(size, count)
            else:
                # the item's place in its leaf, found once: a split puts its tail right after
                # it in the same leaf unless the leaf split (then found again)
                leaf = it.leaf
                k = item_index(leaf.items, it)
                if off > 0:
                    it = self._split(it, off, k)
                    k = k + 1 if it.leaf is leaf else item_index(it.leaf.items, it)
                    leaf = it.leaf
                if size > count:
                    self._split(it, count, k)
                    if it.leaf is not leaf:
                        k = item_index(it.leaf.items, it)
                    size = count
                self._mark_deleted(it, size)
                removed += size
                self._merge_around(it, k)
            target += size * ONE
            count -= size
        return removed

    # --------------------------------------------------------------- internals

    def _locate(self, pos: int) -> tuple[Leaf, int, int]:
        """(leaf, item index, item's visible start) of the visible element at ``pos``."""
        leaf = self._cl
        if leaf is not None and self._cls <= pos < self._cls + leaf.vis:
            items = leaf.items
            i = self._ci
            s = self._cis
            if i >= len(items):
                i = len(items) - 1
                s = self._cls + leaf.vis - (0 if items[i].deleted else len(items[i].content))
            if pos >= s:
                while True:
                    it = items[i]
                    if not it.deleted:
                        n = len(it.content)
                        if pos < s + n:
                            break
                        s += n
                    i += 1
            else:
                while True:
                    i -= 1
                    it = items[i]
                    if not it.deleted:
                        s -= len(it.content)
                        if pos >= s:
                            break
            self._ci = i
            self._cis = s
            return leaf, i, s
        # walk down from the root
        node: Any = self.root
        s = 0
        while type(node) is Node:
            for child in node.children:
                v = child.vis
                if pos < s + v:
                    node = child
                    break
                s += v
        leaf = node
        assert leaf is not None
        self._cl = leaf
        self._cls = s
        i = 0
        for it in leaf.items:
            if not it.deleted:
                n = len(it.content)
                if pos < s + n:
                    break
                s += n
            i += 1
        self._ci = i
        self._cis = s
        return leaf, i, s

    def _split(self, item: Item, off: int, k: int = -1) -> Item:
        """Split ``item`` at element offset ``off`` (0 < off < len); returns the new tail item.
        ``k``: the item's index in its leaf, if the caller knows it.

        Keeps the cursor valid: the tail goes right after the item in the same leaf, and a
        visible-length-neutral split only moves indexes after it, which the cursor tolerates.
        """
        content = item.content
        tail = Item(
            item.id + off * ONE, content[off:], item.id + (off - 1) * ONE, item.right, item.deleted
        )
        item.content = content[:off]
        self.index.add(tail)
        leaf = item.leaf
        items = leaf.items
        k = (k if k >= 0 else item_index(items, item)) + 1
        if len(items) < LEAF_MAX:
            items.insert(k, tail)
            tail.leaf = leaf
        else:
            self._insert_at(leaf, k, tail, vis_change=False)
            self._cl = None
        return tail

    def _mark_deleted(self, item: Item, size: int) -> None:
        item.deleted = True
        self._add_vis(item.leaf, -size)

    def _item_before(self, leaf: Leaf | None, i: int) -> Item | None:
        if leaf is None:
            last = self._last_leaf()
            return last.items[-1] if last.items else None
        if i > 0:
            return leaf.items[i - 1]
        prev = leaf.prev
        return prev.items[-1] if prev is not None else None

    # -------------------------------------------------------------- checking
