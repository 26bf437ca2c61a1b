"""The counted B-tree a sequence keeps its runs in, and the rule that keeps runs canonical.

``RunTree`` holds the items (runs) of one text or list in document order in the leaves of a
B-tree whose nodes cache their visible length, with the cursor ``sequence.Sequence`` uses for
local edits. It owns the structural operations (inserting an item, splitting and unlinking
leaves, bulk loading) and the merging of adjacent items that continue one run (``runs.mergeable``),
which every edit path calls so that a sequence's shape depends only on its content.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from cowrite.engine.runs import (
    LEAF_MAX,
    NODE_MAX,
    Gap,
    Item,
    ItemIndex,
    Leaf,
    Node,
    child_index,
    item_index,
    mergeable,
)
from cowrite.engine.threads import pace


class RunTree:
    """Items of one node in document order: tree upkeep and run merging (see the module)."""

    __slots__ = ("_ci", "_cis", "_cl", "_cls", "first", "index", "is_text", "node_id", "root")

    def __init__(self, node_id: int, is_text: bool, index: ItemIndex) -> None:
        self.node_id = node_id
        self.is_text = is_text
        self.index = index
        leaf = Leaf(self)
        self.root: Node | Leaf = leaf
        self.first: Leaf = leaf
        # the cursor: a leaf, its visible start, an item index in it, that item's visible start
        self._cl: Leaf | None = None
        self._cls = 0
        self._ci = 0
        self._cis = 0

    def items(self) -> Iterator[Item]:
        leaf: Leaf | None = self.first
        while leaf is not None:
            yield from leaf.items
            leaf = leaf.next

    def _start_of(self, node: Leaf | Node) -> int:
        pos = 0
        parent = node.parent
        while parent is not None:
            for child in parent.children:
                if child is node:
                    break
                pos += child.vis
            node = parent
            parent = node.parent
        return pos

    def _add_vis(self, leaf: Leaf, n: int) -> None:
        leaf.vis += n
        node = leaf.parent
        while node is not None:
            node.vis += n
            node = node.parent

    def _merge_around(self, item: Item, k: int = -1) -> Item:
        """Merge ``item`` with its neighbours where they continue one run in the same state;
        returns the item now holding ``item``'s elements (``item`` or its predecessor).
        ``k``: the item's index in its leaf, if the caller knows it."""
        leaf = item.leaf
        items = leaf.items
        if k < 0:
            k = item_index(items, item)
        if k + 1 < len(items):
            nxt = items[k + 1]
            if mergeable(item, nxt):
                self._join(item, nxt, leaf, k + 1)
        else:
            nleaf = leaf.next
            if nleaf is not None and mergeable(item, nleaf.items[0]):
                self._join(item, nleaf.items[0], nleaf, 0)
        if k > 0:
            prev = items[k - 1]
            if mergeable(prev, item):
                self._join(prev, item, leaf, k)
                return prev
        else:
            pleaf = leaf.prev
            if pleaf is not None and mergeable(pleaf.items[-1], item):
                prev = pleaf.items[-1]
                self._join(prev, item, leaf, 0)
                return prev
        return item

    def _merge_next(self, item: Item) -> bool:
        """Merge the item after ``item`` into it if it continues the run; True if merged."""
        leaf = item.leaf
        k = item_index(leaf.items, item) + 1
        if k < len(leaf.items):
            nleaf: Leaf | None = leaf
        else:
            nleaf, k = leaf.next, 0
        if nleaf is None or not mergeable(item, nleaf.items[k]):
            return False
        self._join(item, nleaf.items[k], nleaf, k)
        return True

    def _absorb(self, first: Item, second: Item, second_index: int) -> None:
        """Merge ``second`` (at ``second_index`` of ``first``'s leaf) into ``first``."""
        self._join(first, second, first.leaf, second_index)

    def _join(self, first: Item, second: Item, leaf: Leaf, k: int) -> None:
        """Append ``second`` (item ``k`` of ``leaf``, right after ``first``) to ``first``."""
        first.content = first.content + second.content  # type: ignore[operator]
        del leaf.items[k]
        self.index.remove(second)
        if leaf is not first.leaf:
            self._cl = None
            if not second.deleted:
                n = len(second.content)
                self._add_vis(first.leaf, n)
                self._add_vis(leaf, -n)
            if not leaf.items:
                self._remove_leaf(leaf)
        elif self._cl is leaf and self._ci >= k:
            if second.deleted:
                self._ci -= 1  # tombstones add no visible length: the cursor's start holds
            else:
                self._cl = None

    def _remove_leaf(self, leaf: Leaf) -> None:
        """Unlink an emptied leaf (never the only one) from the chain and the tree."""
        if leaf.prev is not None:
            leaf.prev.next = leaf.next
        else:
            assert leaf.next is not None
            self.first = leaf.next
        if leaf.next is not None:
            leaf.next.prev = leaf.prev
        node: Leaf | Node = leaf
        parent = node.parent
        while parent is not None:
            parent.children.remove(node)
            if parent.children:
                break
            node = parent
            parent = node.parent
        root = self.root
        while type(root) is Node and len(root.children) == 1:
            root = root.children[0]
            root.parent = None
        self.root = root
        self._cl = None

    def _last_leaf(self) -> Leaf:
        node: Any = self.root
        while type(node) is Node:
            node = node.children[-1]
        leaf: Leaf = node
        return leaf

    def _insert_at(self, leaf: Leaf, k: int, item: Item, vis_change: bool = True) -> None:
        """Insert ``item`` at index ``k`` of ``leaf``, splitting the leaf (and up) when full."""
        leaf.items.insert(k, item)
        item.leaf = leaf
        if vis_change and not item.deleted:
            self._add_vis(leaf, len(item.content))
        if len(leaf.items) > LEAF_MAX:
            self._split_leaf(leaf)

    def _split_leaf(self, leaf: Leaf) -> None:
        self._cl = None
        half = len(leaf.items) // 2
        new = Leaf(self)
        new.items = leaf.items[half:]
        del leaf.items[half:]
        moved = 0
        for it in new.items:
            it.leaf = new
            if not it.deleted:
                moved += len(it.content)
        new.vis = moved
        leaf.vis -= moved
        new.next = leaf.next
        new.prev = leaf
        if leaf.next is not None:
            leaf.next.prev = new
        leaf.next = new
        self._add_child_after(leaf, new)

    def _add_child_after(self, child: Leaf | Node, new: Leaf | Node) -> None:
        parent = child.parent
        if parent is None:
            self.root = Node([child, new])
            return
        siblings = parent.children
        siblings.insert(child_index(siblings, child) + 1, new)
        new.parent = parent
        if len(siblings) > NODE_MAX:
            half = len(siblings) // 2
            moved = siblings[half:]
            del siblings[half:]
            sibling = Node(moved)
            parent.vis -= sibling.vis
            self._add_child_after(parent, sibling)

    def load_items(self, items: list[Item]) -> None:
        """Fill this empty sequence with ``items`` (in document order, canonical runs), building
        the tree bottom-up: no integration. The caller indexes them by id. Paced (``pace()`` per
        leaf and per node: a 2 M-character text is 14 ms of leaves), for a load in a thread."""
        if not items:
            return
        fill = LEAF_MAX * 3 // 4
        leaves: list[Leaf] = []
        prev: Leaf | None = None
        for k in range(0, len(items), fill):
            leaf = Leaf(self)
            chunk = leaf.items = items[k : k + fill]
            vis = 0
            for it in chunk:
                it.leaf = leaf
                if not it.deleted:
                    vis += len(it.content)
            leaf.vis = vis
            if prev is not None:
                prev.next = leaf
                leaf.prev = prev
            leaves.append(leaf)
            prev = leaf
            pace()
        level: list[Any] = leaves
        step = NODE_MAX * 3 // 4
        while len(level) > 1:
            upper: list[Any] = []
            for k in range(0, len(level), step):
                upper.append(Node(level[k : k + step]))
                pace()
            level = upper
        self.first = leaves[0]
        self.root = level[0]
        self.root.parent = None
        self._cl = None

    def check_invariants(self) -> None:
        """Check the tree, leaf chain, cached counts and id index; AssertionError if broken."""
        leaves: list[Leaf] = []

        def walk(node: Leaf | Node, parent: Node | None) -> int:
            if node.parent is not parent:
                raise AssertionError("bad parent pointer")
            if isinstance(node, Leaf):
                leaves.append(node)
                vis = 0
                for it in node.items:
                    if it.leaf is not node:
                        raise AssertionError(f"{it} has a stale leaf")
                    if not it.content:
                        raise AssertionError("empty item")
                    if type(it.content) is Gap:
                        if not it.deleted:
                            raise AssertionError("a compacted run must be a tombstone")
                    elif isinstance(it.content, str) != self.is_text:
                        raise AssertionError("content kind mismatch")
                    if not it.deleted:
                        vis += len(it.content)
                if len(node.items) > LEAF_MAX:
                    raise AssertionError("leaf overflow")
            else:
                if not node.children or len(node.children) > NODE_MAX:
                    raise AssertionError("node size")
                vis = sum(walk(c, node) for c in node.children)
            if vis != node.vis:
                raise AssertionError(f"cached visible length {node.vis} != {vis}")
            return vis

        walk(self.root, None)
        if leaves[0] is not self.first:
            raise AssertionError("first leaf")
        for a, b in zip(leaves, [*leaves[1:], None], strict=True):
            if a.next is not b or (b is not None and b.prev is not a):
                raise AssertionError("broken leaf chain")
        prev: Item | None = None
        for it in self.items():
            if prev is not None and mergeable(prev, it):
                raise AssertionError(f"{prev} and {it} should be one run")
            prev = it
            found, off = self.index.find(it.id)
            if found is not it or off != 0:
                raise AssertionError(f"{it} is not indexed")
        if self._cl is not None:
            if self._cl not in leaves:
                raise AssertionError("cursor on a detached leaf")
            if self._start_of(self._cl) != self._cls:
                raise AssertionError("cursor leaf start is stale")
