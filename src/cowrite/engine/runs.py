"""The storage pieces of a sequence: runs (``Item``), B-tree leaves and nodes, the id index.

An ``Item`` is a run of elements inserted by one replica, each after the previous one, sharing one
right origin; ``Leaf``/``Node`` form the counted B-tree (visible length cached per node) that
``sequence.Sequence`` keeps its items in; ``ItemIndex`` finds the item holding any id.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any, Final

from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, ONE
from cowrite.engine.threads import pace

if TYPE_CHECKING:
    from cowrite.engine.tree import RunTree

LEAF_MAX: Final = 64
NODE_MAX: Final = 32


class Gap:
    """The content of a compacted tombstone run: only its length survives (see ``compaction``)."""

    __slots__ = ("n",)

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, slice):
            raise TypeError("a compacted run has no elements to read")
        start, stop, _ = key.indices(self.n)
        return Gap(max(stop - start, 0))

    def __iter__(self) -> Iterator[Any]:
        raise TypeError("a compacted run has no elements to read")

    def __add__(self, other: Gap) -> Gap:
        return Gap(self.n + other.n)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Gap) and other.n == self.n

    def __hash__(self) -> int:
        return hash(("gap", self.n))

    def __repr__(self) -> str:
        return f"Gap({self.n})"


Content = str | list[Any] | Gap


class Item:
    """A run of inserted elements. ``id`` is the packed id of the first element."""

    __slots__ = ("content", "deleted", "id", "leaf", "origin", "right")

    def __init__(self, id: int, content: Content, origin: int, right: int, deleted: bool) -> None:
        self.id = id
        self.content = content
        self.origin = origin
        self.right = right
        self.deleted = deleted
        self.leaf: Leaf = _NO_LEAF

    def __repr__(self) -> str:
        mark = "†" if self.deleted else ""
        return f"Item({self.id & CLIENT_MASK}:{self.id >> CLIENT_BITS} {self.content!r}{mark})"


def mergeable(a: Item, b: Item) -> bool:
    """Whether ``b``, placed right after ``a``, continues ``a``'s run in the same state: one item
    could hold both (the canonical shape has no such pair)."""
    return (
        b.id == a.id + len(a.content) * ONE
        and b.origin == b.id - ONE
        and b.right == a.right
        and b.deleted == a.deleted
        and type(b.content) is type(a.content)
    )


def item_index(items: list[Item], item: Item) -> int:
    """Where ``item`` is in ``items`` (it must be there). By identity: ``list.index`` compares
    with ``==``, which for objects without ``__eq__`` is a slow generic call per element.
    (``enumerate`` of the list: compiled, an inline read per element; ``items[k]`` was a
    bounds-checked library call, the top entry of a scattered merge's profile.)"""
    for k, it in enumerate(items):
        if it is item:
            return k
    raise ValueError("item not in its leaf")


def child_index(children: list[Any], child: object) -> int:
    """Where ``child`` (a ``Leaf`` or ``Node``) is in its parent's ``children``, by identity."""
    for k, c in enumerate(children):
        if c is child:
            return k
    raise ValueError("node not in its parent")


class Leaf:
    __slots__ = ("items", "next", "owner", "parent", "prev", "vis")

    def __init__(self, owner: RunTree | None = None) -> None:
        self.owner = owner
        self.items: list[Item] = []
        self.vis = 0
        self.parent: Node | None = None
        self.next: Leaf | None = None
        self.prev: Leaf | None = None


class Node:
    __slots__ = ("children", "parent", "vis")

    def __init__(self, children: list[Any]) -> None:
        self.children: list[Any] = children  # all Leaf or all Node
        self.vis = sum(c.vis for c in children)
        self.parent: Node | None = None
        for c in children:
            c.parent = self


_NO_LEAF = Leaf()
_NO_ITEM: Final = Item(0, "", 0, 0, True)
"""``ItemIndex``'s last hit before any: empty, it holds no element."""


_NATIVE: Final = not __file__.endswith(".py")
"""Whether this module runs compiled by mypyc (see ``native``): then ``_after`` beats the C
``bisect_right``, which boxes the key and compares through generic calls; interpreted, the C
function is far faster than a Python loop. Both give the same answer."""


def _after(a: list[int], x: int) -> int:
    """``bisect_right(a, x)``, written for the compiled build (unboxed int compares)."""
    lo = 0
    hi = len(a)
    while lo < hi:
        mid = (lo + hi) >> 1
        if x < a[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


BLOCK: Final = 256
"""Index blocks split at twice this many items: an insert moves at most ~512 entries."""


class ItemIndex:
    """Per replica, the items in seq order: finds the item holding any id by bisection.

    Each replica's items are kept in blocks of consecutive runs (``heads`` holds each block's
    first seq), so that adding or removing an item in the middle moves a few hundred entries,
    not every item of the replica. Shared by all sequences of one document (ids are unique per
    document).
    """

    __slots__ = ("_hb", "_hit", "_hk", "heads", "items", "starts")

    def __init__(self) -> None:
        self.heads: list[list[int]] = []
        self.starts: list[list[list[int]]] = []
        self.items: list[list[list[Item]]] = []
        # the item ``find`` returned last: a merge looks up an insert's origin, then its right
        # origin (usually the same run), a delete checks its target and then marks it
        self._hit: Item = _NO_ITEM
        # where the hit is: ``items[client][_hb][_hk]``; ``_hk`` -1 when unknown (any other
        # change to that replica's blocks may have moved it). The tail of a split of the hit
        # (what a merge's insert or delete does next) is then added with no bisection
        self._hb = 0
        self._hk = -1

    def ensure_client(self, client: int) -> None:
        while len(self.heads) <= client:
            self.heads.append([])
            self.starts.append([])
            self.items.append([])

    def add(self, item: Item) -> None:
        client = item.id & CLIENT_MASK
        seq = item.id >> CLIENT_BITS
        heads = self.heads[client]
        hit = self._hit
        if self._hk >= 0 and hit.id & CLIENT_MASK == client and hit.id >> CLIENT_BITS < seq:
            # right after the hit (the tail of its split)? Then no bisection, and the hit
            # moves on to it: a delete splits a run twice, the second time its first tail
            b = self._hb
            k = self._hk + 1
            starts = self.starts[client][b]
            if (
                (starts[k] > seq)
                if k < len(starts)
                else (b + 1 == len(heads) or heads[b + 1] > seq)
            ):
                starts.insert(k, seq)
                self.items[client][b].insert(k, item)
                self._hit = item
                self._hk = k
                if len(starts) > 2 * BLOCK:
                    self._split_block(client, b)
                return
        if hit.id & CLIENT_MASK == client:
            self._hk = -1  # (the hit's position may move)
        if not heads:
            heads.append(seq)
            self.starts[client].append([seq])
            self.items[client].append([item])
            return
        if seq > heads[-1]:  # in the last block: a new run of a replica typing on
            b = len(heads) - 1
        else:
            b = (_after(heads, seq) if _NATIVE else bisect_right(heads, seq)) - 1
            if b < 0:
                b = 0
                heads[0] = seq
        starts = self.starts[client][b]
        items = self.items[client][b]
        if starts[-1] < seq:
            starts.append(seq)
            items.append(item)
        else:
            k = _after(starts, seq) if _NATIVE else bisect_right(starts, seq)
            starts.insert(k, seq)
            items.insert(k, item)
        if len(starts) > 2 * BLOCK:
            self._split_block(client, b)

    def _split_block(self, client: int, b: int) -> None:
        """Split ``client``'s block ``b`` (grown past twice ``BLOCK``) in two."""
        starts = self.starts[client][b]
        items = self.items[client][b]
        self.heads[client].insert(b + 1, starts[BLOCK])
        self.starts[client].insert(b + 1, starts[BLOCK:])
        self.items[client].insert(b + 1, items[BLOCK:])
        del starts[BLOCK:]
        del items[BLOCK:]
        self._hk = -1

    def remove(self, item: Item) -> None:
        """Forget ``item`` (indexed; the caller merged it into its predecessor)."""
        client = item.id & CLIENT_MASK
        if self._hit is item:
            self._hit = _NO_ITEM
            self._hk = -1
        elif self._hit.id & CLIENT_MASK == client:
            self._hk = -1  # (the hit's position may move)
        seq = item.id >> CLIENT_BITS
        heads = self.heads[client]
        b = (_after(heads, seq) if _NATIVE else bisect_right(heads, seq)) - 1
        starts = self.starts[client][b]
        k = (_after(starts, seq) if _NATIVE else bisect_right(starts, seq)) - 1
        del starts[k]
        del self.items[client][b][k]
        if not starts:
            del heads[b]
            del self.starts[client][b]
            del self.items[client][b]
        elif k == 0:
            heads[b] = starts[0]

    def load(self, client: int, starts: list[int], items: list[Item]) -> None:
        """Replace ``client``'s items with ``items`` (seq order) starting at ``starts``. Paced
        (``pace()`` per block: 700k items are 14 ms of slicing), for a load in a thread."""
        heads: list[int] = []
        blocks: list[list[int]] = []
        item_blocks: list[list[Item]] = []
        for k in range(0, len(starts), BLOCK):
            heads.append(starts[k])
            blocks.append(starts[k : k + BLOCK])
            item_blocks.append(items[k : k + BLOCK])
            pace()
        self.heads[client] = heads
        self.starts[client] = blocks
        self.items[client] = item_blocks
        self._hit = _NO_ITEM
        self._hk = -1

    def runs(self, client: int, start: int = 0) -> Iterator[tuple[int, Item]]:
        """``(first seq, item)`` of ``client``'s items in seq order, from the one holding (or
        the first after) seq ``start``."""
        heads = self.heads[client]
        if not heads:
            return iter(())
        b = max(bisect_right(heads, start) - 1, 0)
        blocks = self.starts[client]
        item_blocks = self.items[client]
        starts = blocks[b]
        k = max(bisect_right(starts, start) - 1, 0)
        first = zip(starts[k:], item_blocks[b][k:], strict=True)
        if b == len(heads) - 1:
            return first
        later = zip(blocks[b + 1 :], item_blocks[b + 1 :], strict=True)
        rest = (zip(s, i, strict=True) for s, i in later)
        return chain(first, chain.from_iterable(rest))

    def count(self) -> int:
        """How many items are indexed."""
        return sum(len(block) for blocks in self.items for block in blocks)

    def find(self, pid: int) -> tuple[Item, int]:
        """The item holding element ``pid`` and the element's offset in it; KeyError if unknown."""
        hit = self._hit
        d = pid - hit.id
        if d >= 0 and not d & CLIENT_MASK:  # same replica, at or after the last hit's start
            off = d >> CLIENT_BITS
            if off < len(hit.content):  # (an item only shrinks by a split, which indexes the
                return hit, off  # tail; one merged away is forgotten by ``remove``)
        client = pid & CLIENT_MASK
        seq = pid >> CLIENT_BITS
        if client >= len(self.heads):
            raise KeyError(pid)
        heads = self.heads[client]
        b = (_after(heads, seq) if _NATIVE else bisect_right(heads, seq)) - 1
        if b < 0:
            raise KeyError(pid)
        starts = self.starts[client][b]
        # >= 0: the block's first start is its head
        k = (_after(starts, seq) if _NATIVE else bisect_right(starts, seq)) - 1
        item = self.items[client][b][k]
        off = seq - starts[k]
        if off >= len(item.content):
            raise KeyError(pid)
        self._hit = item
        self._hb = b
        self._hk = k
        return item, off

    def __contains__(self, pid: int) -> bool:
        try:
            self.find(pid)
        except KeyError:
            return False
        return True
