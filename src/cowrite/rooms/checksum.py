"""When thin clients get a ``checksum`` of the text nodes, so a silent divergence shows.

Hashing a text is O(its length) (about 3 ms per million characters, reading it out of the
engine included), too much for every keystroke on a large document. So a node is hashed when
the versions that changed it since its last checksum, times ``chars_per_version``, reach its
length, and at most every ``min_versions`` versions that change it: a text of up to 131,072
characters is checked every 16th such version, a 2 M-character one every ~245th, and the cost
per version stays about ``chars_per_version`` characters hashed whatever the size (the floor
also keeps the extra messages to a sixteenth of the ``remote``s). A node changed since its last
checksum is also checked once the room's version has not moved for ``quiet_ms`` (``when_quiet``,
from the room's tick, which sees edits, replica syncs and other instances' updates alike), so a
divergence shows within seconds of the typing pausing.

Only text nodes are checked: a list's values would need one canonical JSON encoding in Python
and JavaScript.
"""

from __future__ import annotations

from collections.abc import Sequence

from cowrite import protocol as p
from cowrite.engine import Document, NodeKind
from cowrite.rooms.wire import node_to_wire

CHARS_PER_VERSION = 8_192
MIN_VERSIONS = 16
QUIET_MS = 2_000


class ChecksumSchedule:
    """Decides which versions carry a ``checksum`` message, and makes it."""

    def __init__(
        self,
        doc_id: str,
        doc: Document,
        *,
        chars_per_version: int = CHARS_PER_VERSION,
        min_versions: int = MIN_VERSIONS,
        quiet_ms: int = QUIET_MS,
    ) -> None:
        self.doc_id = doc_id
        self.doc = doc
        self.chars_per_version = chars_per_version
        self.min_versions = min_versions
        self.quiet_ms = quiet_ms
        self._unchecked: dict[int, int] = {}
        """Text node -> versions that changed it since its last checksum."""
        self._version = -1
        """The room's version at the last tick that saw it change (at ``_changed_ms``)."""
        self._changed_ms = 0

    def after(self, version: int, nodes: Sequence[int]) -> p.Checksum | None:
        """``version`` changed ``nodes`` (the room is at ``version``): the checksum to send
        right after it, if one is due."""
        doc = self.doc
        unchecked = self._unchecked
        due = None
        for node in nodes if len(nodes) == 1 else dict.fromkeys(nodes):
            n = unchecked.get(node, 0) + 1
            if n == 1 and doc.kind_of(node) is not NodeKind.TEXT:
                continue  # (a node counted here is a text: its kind is checked once)
            if n >= self.min_versions and n * self.chars_per_version >= len(doc.sequence(node)):
                due = [node] if due is None else [*due, node]
                unchecked.pop(node, None)
            else:
                unchecked[node] = n
        return None if due is None else self._message(version, due)

    def when_quiet(self, version: int, now_ms: int) -> p.Checksum | None:
        """The checksum of the nodes left unchecked, once ``version`` has not moved for
        ``quiet_ms`` (called every tick)."""
        if version != self._version:
            self._version, self._changed_ms = version, now_ms
            return None
        if not self._unchecked or now_ms - self._changed_ms < self.quiet_ms:
            return None
        due = [n for n in self._unchecked if self.doc.has_node(n)]
        self._unchecked.clear()
        return self._message(version, due)

    def due_ms(self, version: int) -> int | None:
        """When ``when_quiet`` may next return a checksum, the room being at ``version``: 0
        (at once) while it has not seen ``version``, None when nothing is unchecked."""
        if not self._unchecked:
            return None
        if version != self._version:
            return 0
        return self._changed_ms + self.quiet_ms

    def _message(self, version: int, nodes: list[int]) -> p.Checksum | None:
        if not nodes:
            return None
        doc = self.doc
        sums = {node_to_wire(doc, n): p.text_checksum(str(doc.sequence(n).value())) for n in nodes}
        return p.Checksum(doc=self.doc_id, version=version, sums=sums)
