"""Updates that split a surrogate pair, which Yrs cannot hold (sans-I/O).

Yjs counts text in UTF-16 units, so a JavaScript client may insert between the two halves of
an astral character (an emoji) or delete one half: Yjs then holds two U+FFFD. Yrs (pycrdt)
stores UTF-8 and cannot: it keeps the character whole, places the insert elsewhere, and encodes
the document differently from what it shows (found by the end-to-end tests: the server's copy
diverges from the clients' and a reload changes it again). So such an update is refused before
it reaches the document or the log, and the client is told why: nothing is acknowledged that
the server cannot keep.

``SurrogateIndex`` knows, for each client, the clocks of the high-surrogate units of the
strings it wrote (the low half is the next clock). An update splits a pair when an item's
origin is a high unit (it goes right after it), its right origin a low one, or a deletion
starts on a low unit or ends on a high one. The index reads Yjs update v1 (lib0 encoding, as
written by yjs's ``encodeStateAsUpdate``/``writeStructs``); it is only built once the document
holds an astral character, so most documents never pay for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

from cowrite.yjs.lib0 import Decoder, YjsProtocolError

_ASTRAL_UTF8 = re.compile(rb"[\xf0-\xf4]")
"""A lead byte of a 4-byte UTF-8 sequence (a character outside the BMP), or a false positive in
binary fields: a cheap test of whether an update may carry one."""

_U64 = 2**64 - 1  # Yrs client ids and clocks: varUints of up to 10 bytes

# content refs (yjs/src/structs/Item.js contentRefs)
_GC, _DELETED, _JSON, _BINARY, _STRING, _EMBED, _FORMAT, _TYPE, _ANY, _DOC, _SKIP = (
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
)  # fmt: skip
_XML_ELEMENT, _XML_HOOK = 3, 5


class _Item(NamedTuple):  # (a tuple: one is made per struct of every update)
    client: int
    clock: int
    origin: tuple[int, int] | None
    right_origin: tuple[int, int] | None
    text: str | None
    """The content of a string item (None for other contents)."""


def may_hold_astral(update: bytes) -> bool:
    return _ASTRAL_UTF8.search(update) is not None


@dataclass
class SurrogateIndex:
    """High-surrogate units by client (see the module docstring)."""

    highs: dict[int, set[int]] = field(default_factory=dict)

    def add(self, update: bytes, parsed: Parsed | None = None) -> None:
        """Record the astral characters of an update the document accepted (``parsed``:
        ``parse(update)``, when the caller has it)."""
        if not may_hold_astral(update):
            return
        if parsed is not None:
            items = parsed.items
        else:
            try:
                items, _ = _parse(update)
            except YjsProtocolError:
                return  # the document accepted it: nothing of it is ours to refuse
        for item in items:
            self._record(item)

    def split(self, update: bytes, parsed: Parsed | None = None) -> str | None:
        """Why ``update`` would split a surrogate pair, or None. Bytes that do not parse as an
        update are left to the document to refuse. ``parsed``: ``parse(update)``, when the
        caller has it (the update is then not read again)."""
        if not self.highs and not may_hold_astral(update):
            return None
        if parsed is not None:
            items, deletes = parsed.items, parsed.deletes
        else:
            try:
                items, deletes = _parse(update)
            except YjsProtocolError:
                return None
        mine: dict[int, set[int]] = {}  # the update's own astral characters (any order)
        for item in items:
            if item.text is not None:
                for k in _high_units(item.text):
                    mine.setdefault(item.client, set()).add(item.clock + k)
        for item in items:
            if item.origin is not None and self._high(item.origin, mine):
                return f"an insert after half of a character ({item.client}:{item.clock})"
            right = item.right_origin
            if right is not None and self._high((right[0], right[1] - 1), mine):
                return f"an insert before half of a character ({item.client}:{item.clock})"
        for client, clock, length in deletes:
            if self._high((client, clock - 1), mine) or self._high(
                (client, clock + length - 1), mine
            ):
                return f"a deletion of half of a character ({client}:{clock}+{length})"
        return None

    def _high(self, unit: tuple[int, int], extra: dict[int, set[int]]) -> bool:
        client, clock = unit
        return clock in self.highs.get(client, ()) or clock in extra.get(client, ())

    def _record(self, item: _Item) -> None:
        if item.text is None:
            return
        units = list(_high_units(item.text))
        if units:
            self.highs.setdefault(item.client, set()).update(item.clock + k for k in units)


def _high_units(text: str) -> Iterator[int]:
    """UTF-16 offsets of the high surrogates of ``text``."""
    u = 0
    for ch in text:
        if ord(ch) > 0xFFFF:
            yield u
            u += 2
        else:
            u += 1


def _utf16_len(text: str) -> int:
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


class Parsed(NamedTuple):
    """What ``parse`` read of an update."""

    items: list[_Item]
    deletes: list[tuple[int, int, int]]
    """The delete set as (client, clock, length) ranges."""
    ends: dict[int, int]
    """For each client with structs, the clock after its last one (as ``struct_ends``)."""


def parse(update: bytes) -> Parsed:
    """Read a Yjs update v1 once for everything the document checks in Python; raises
    YjsProtocolError."""
    ends: dict[int, int] = {}
    items, deletes = _parse(update, ends)
    return Parsed(items, deletes, ends)


def struct_ends(update: bytes) -> dict[int, int]:
    """For each client with structs in ``update`` (Yjs update v1), the clock after its last
    one; raises YjsProtocolError. (``pycrdt.get_state(update)`` only counts clients whose
    structs start at clock 0.)"""
    ends: dict[int, int] = {}
    _parse(update, ends)
    return ends


def _parse(
    update: bytes, ends: dict[int, int] | None = None
) -> tuple[list[_Item], list[tuple[int, int, int]]]:
    """The items and delete ranges of a Yjs update v1 (and in ``ends`` each client's clock
    after its last struct); raises YjsProtocolError."""
    dec = Decoder(update)
    read = dec.read_var_uint  # (on every keystroke: bound once, arguments by position)
    items: list[_Item] = []
    for _ in range(read()):
        count = read()
        client = read(10, _U64)
        clock = read(10, _U64)
        present = 0  # the clock after the last struct that is not a Skip (a gap)
        for _ in range(count):
            info = dec.read_u8()
            ref = info & 0x1F
            if ref in (_GC, _SKIP):
                clock += read()
                if ref == _GC:
                    present = clock
                continue
            origin = (read(10, _U64), read(10, _U64)) if info & 0x80 else None
            right = (read(10, _U64), read(10, _U64)) if info & 0x40 else None
            if origin is None and right is None:
                if read() == 1:  # parent: a root's name, or an item's id
                    dec.read_var_string()
                else:
                    read(10, _U64)
                    read(10, _U64)
                if info & 0x20:  # parentSub (a map key)
                    dec.read_var_string()
            text: str | None
            if ref == _STRING:  # (a keystroke: read here, not through _read_content)
                string = dec.read_var_string()
                text, length = string, len(string) if string.isascii() else _utf16_len(string)
            else:
                text, length = _read_content(dec, ref)
            items.append(_Item(client, clock, origin, right, text))
            clock += length
            present = clock
        if ends is not None and present > ends.get(client, 0):
            ends[client] = present
    deletes: list[tuple[int, int, int]] = []
    if not dec.at_end():
        for _ in range(read()):
            client = read(10, _U64)
            for _ in range(read()):
                start = read(10, _U64)
                deletes.append((client, start, read(10, _U64)))
    dec.expect_end("update")
    return items, deletes


def _read_content(dec: Decoder, ref: int) -> tuple[str | None, int]:
    """The string of a string item, and the content's length in clock units."""
    if ref == _STRING:
        text = dec.read_var_string()
        return text, _utf16_len(text)
    if ref == _DELETED:
        return None, dec.read_var_uint()
    if ref == _JSON:
        n = dec.read_var_uint()
        for _ in range(n):
            dec.read_var_string()
        return None, n
    if ref == _BINARY:
        dec.read_var_bytes()
    elif ref == _EMBED:
        dec.read_var_string()
    elif ref == _FORMAT:
        dec.read_var_string()
        dec.read_var_string()
    elif ref == _TYPE:
        if dec.read_var_uint() in (_XML_ELEMENT, _XML_HOOK):
            dec.read_var_string()
    elif ref == _ANY:
        n = dec.read_var_uint()
        for _ in range(n):
            _skip_any(dec, 0)
        return None, n
    elif ref == _DOC:
        dec.read_var_string()
        _skip_any(dec, 0)
    else:
        raise YjsProtocolError("invalid_update", f"unknown content {ref}")
    return None, 1


def _skip_any(dec: Decoder, depth: int) -> None:
    """Skip one lib0 ``writeAny`` value (nesting bounded)."""
    if depth > 64:
        raise YjsProtocolError("invalid_update", "values nested too deeply")
    kind = dec.read_u8()
    if kind in (127, 126, 121, 120):  # undefined, null, false, true
        return
    if kind == 125:  # varInt
        while dec.read_u8() & 0x80:
            pass
    elif kind in (124, 123, 122):  # float32, float64, bigint64
        for _ in range(4 if kind == 124 else 8):
            dec.read_u8()
    elif kind == 119:
        dec.read_var_string()
    elif kind == 118:  # object
        for _ in range(dec.read_var_uint()):
            dec.read_var_string()
            _skip_any(dec, depth + 1)
    elif kind == 117:  # array
        for _ in range(dec.read_var_uint()):
            _skip_any(dec, depth + 1)
    elif kind == 116:
        dec.read_var_bytes()
    else:
        raise YjsProtocolError("invalid_update", f"unknown value type {kind}")
