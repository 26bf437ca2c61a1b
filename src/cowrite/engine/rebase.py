"""The OT edge: index edits made against an older version, rebased onto the current document.

Thin clients (browsers) edit by index: "insert 'x' at 5 of node N as of version V". The server
keeps an ``EditLog``: every change applied to a document's sequences, as an index edit, numbered
by a per-document *edit version* (the thin clients' version). An edit made at V is transformed
through the logged edits of its node after V (client edit on the ``left`` side, so at equal
positions the later-arriving client's insert goes first, the convention ShareDB and the JS client
use) and then applied to the CRDT as ordinary local edits (``apply_index_edit``). Replicas'
CRDT deltas enter the same log through the ``Change`` events ``Document.merge`` returns, so both
kinds of client see one history.

Cursors: an index is only meaningful at one version, so presence stores positions as ``Anchor``s
(the id of the element the cursor sticks to), which stay on the right character whatever others
do and resolve back to an index in O(log n).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from cowrite.engine import ot
from cowrite.engine.document import Document
from cowrite.engine.errors import InvalidOperation, ResyncNeeded
from cowrite.engine.ids import CLIENT_BITS, CLIENT_MASK, NO_ID, pack


class EditLog:
    """The sequence edits of the last ``capacity`` versions of one document, for rebasing.

    A version is one applied batch: a list of (node, index edit) in application order (possibly
    empty, for batches that touched no sequence).
    """

    def __init__(self, capacity: int = 10_000, version: int = 0) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.version = version
        self._entries: deque[Sequence[tuple[int, list[Any]]]] = deque()

    @property
    def oldest(self) -> int:
        """The oldest version an edit can be based on (older ones need a resync)."""
        return self.version - len(self._entries)

    def record(self, changes: Sequence[tuple[int, list[Any]]]) -> int:
        """Log an applied batch of (node, edit); returns the new version."""
        self._entries.append(changes)
        if len(self._entries) > self.capacity:
            self._entries.popleft()
        self.version += 1
        return self.version

    def since(self, version: int) -> Iterator[tuple[int, int, list[Any]]]:
        """(version it belongs to, node, edit) of every edit after ``version``, in order."""
        self._check(version)
        start = version - self.oldest
        oldest = self.oldest
        for k in range(start, len(self._entries)):
            for node, edit in self._entries[k]:
                yield oldest + k + 1, node, edit

    def _check(self, version: int) -> None:
        if version > self.version or version < 0:
            raise InvalidOperation(f"version {version} is in the future (current {self.version})")
        if version < self.oldest:
            raise ResyncNeeded(f"version {version} is older than the retained {self.oldest}")

    def rebase(self, node: int, edit: list[Any], base: int) -> list[Any]:
        """``edit`` (made on ``node`` at version ``base``) transformed to apply now."""
        for _, other_node, other in self.since(base):
            if other_node == node:
                edit = ot.transform(edit, other, "left")
        return edit

    def rebase_position(self, node: int, pos: int, base: int) -> int:
        """Where index ``pos`` of ``node`` at version ``base`` is now."""
        for _, other_node, other in self.since(base):
            if other_node == node:
                pos = ot.transform_position(pos, other)
        return pos


def apply_index_edit(doc: Document, node: int, edit: list[Any]) -> None:
    """Apply an index edit (``ot`` format) to a text or list node as local CRDT edits.

    Raises InvalidOperation (before changing anything) if the edit does not fit the node.
    """
    ot.check(edit)
    seq = doc.sequence(node)
    length = len(seq)
    if ot.base_length(edit) > length:
        raise InvalidOperation(f"edit spans {ot.base_length(edit)} elements, node has {length}")
    for component in edit:
        if isinstance(component, str) != seq.is_text and not isinstance(component, int):
            raise InvalidOperation("insert of the wrong kind for this node")
    pos = 0
    for component in edit:
        if isinstance(component, int):
            if component > 0:
                pos += component
            else:
                doc.delete(node, pos, -component)
        else:
            doc.insert(node, pos, component)
            pos += len(component)


@dataclass(frozen=True, slots=True)
class Anchor:
    """A position that sticks to an element: ``replica:seq`` of it, or the start/end.

    ``assoc="after"``: the position just after the element (a caret after the character typed);
    ``"before"``: just before it. ``replica == 0`` means the start (``seq == 0``) or the end
    (``seq == 1``) of the sequence.
    """

    replica: int
    seq: int
    assoc: Literal["before", "after"]


START = Anchor(0, 0, "after")
END = Anchor(0, 1, "before")


def anchor_at(
    doc: Document, node: int, pos: int, assoc: Literal["before", "after"] = "after"
) -> Anchor:
    """An anchor for index ``pos`` of a text/list node.

    ``after``: stick to the element before ``pos`` (a caret after the last character typed);
    ``before``: stick to the element at ``pos``.
    """
    seq = doc.sequence(node)
    if not 0 <= pos <= len(seq):
        raise InvalidOperation(f"position {pos} out of range for length {len(seq)}")
    if assoc == "after":
        if pos == 0:
            return START
        pid = seq.id_at(pos - 1)
    else:
        if pos == len(seq):
            return END
        pid = seq.id_at(pos)
    return Anchor(doc.replica_of(pid & CLIENT_MASK), pid >> CLIENT_BITS, assoc)


def resolve_anchor(doc: Document, node: int, anchor: Anchor) -> int:
    """The current index of ``anchor`` (an element deleted since: where it would have been)."""
    seq = doc.sequence(node)
    if anchor.replica == 0:
        return 0 if anchor.seq == 0 else len(seq)
    client = doc.known_client(anchor.replica)
    pid = NO_ID if client is None else pack(client, anchor.seq)
    try:
        pos, visible = seq.position_of(pid)
    except KeyError:
        raise InvalidOperation("anchor names an element this node does not have") from None
    if anchor.assoc == "after" and visible:
        return pos + 1
    return pos
