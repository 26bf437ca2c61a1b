"""`PackedVersions`: one document's version history in `MemoryStore`, packed as the SQL stores
pack it (a tail of records, then blocks of ``_version_blocks``, names beside the blocks).

Why packed in memory too: a version per keystroke kept as objects costs hundreds of bytes each;
and the memory store runs the same code paths as the SQL ones, so the contract suite tests the
block codec and the packing rules on every store. Caller's contract: ``MemoryStore`` validates
the arguments; every method completes without yielding. With a running event loop, a tail due
for packing is encoded on a worker thread and swapped in later by a loop callback (as the SQLite
store packs off its writer): reads see the tail until then.
"""

from __future__ import annotations

import asyncio
import itertools
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import replace

from cowrite.adapters.store import _version_blocks as vb
from cowrite.adapters.store.base import VersionRecord


class PackedVersions:
    def __init__(self, block: int) -> None:
        self.block = block
        self.tail: dict[int, VersionRecord] = {}  # seq order; every seq above the blocks'
        self.ends: list[int] = []  # last seq of each block, increasing
        self.starts: list[int] = []
        self.blocks: list[bytes] = []
        self.counts: list[int] = []
        self.names: dict[int, tuple[str, int]] = {}  # of packed versions
        self._packing: asyncio.Future[list[tuple[int, int, int, bytes]]] | None = None

    def add(self, v: VersionRecord) -> None:
        self.tail[v.seq] = v
        if self._packing is None and vb.pack_due(next(iter(self.tail)), v.seq, self.block):
            self._pack_later()

    def _pack_later(self) -> None:
        """Encode the pack on a worker thread (tens of ms of Python for a nearly full block: on
        the event loop, a stall of every document once a second at 250 edits/s) and swap it in
        on the loop, unless the tail's packed part or the last block changed meanwhile (then
        the next ``add`` plans again). Without a running loop, pack at once."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.pack()
            return
        tail = list(self.tail.values())
        last = self.blocks[-1] if self.blocks else None
        top_up = last if last is not None and self.counts[-1] < self.block else None
        packing = loop.run_in_executor(None, _encode_pack, tail, top_up, self.block)
        self._packing = packing

        def swap(done: asyncio.Future[list[tuple[int, int, int, bytes]]]) -> None:
            self._packing = None
            if done.cancelled() or done.exception() is not None:
                return
            packed = list(itertools.islice(self.tail.values(), len(tail)))
            now_last = self.blocks[-1] if self.blocks else None
            if len(packed) != len(tail) or now_last is not last:
                return
            if any(a is not b for a, b in zip(packed, tail, strict=True)):
                return
            for v in tail:
                del self.tail[v.seq]
                if v.name is not None and v.named_ms is not None:
                    self.names[v.seq] = (v.name, v.named_ms)
            if top_up is not None:
                self._pop(len(self.blocks) - 1)
            for first, end, n, data in done.result():
                k = len(self.blocks)
                self.starts.insert(k, first)
                self.ends.insert(k, end)
                self.counts.insert(k, n)
                self.blocks.insert(k, data)
            if self.tail and vb.pack_due(
                next(iter(self.tail)), next(reversed(self.tail)), self.block
            ):
                self._pack_later()  # more came due meanwhile

        packing.add_done_callback(swap)

    def pack(self) -> None:
        records: list[VersionRecord] = []
        if self.blocks and self.counts[-1] < self.block:
            records = vb.decode(self._pop(len(self.blocks) - 1))
        for v in self.tail.values():
            if v.name is not None and v.named_ms is not None:
                self.names[v.seq] = (v.name, v.named_ms)
        records += self.tail.values()
        self.tail.clear()
        for chunk in vb.chunks(records, self.block):
            self._put(len(self.blocks), chunk)

    def _pop(self, k: int) -> bytes:
        del self.ends[k], self.starts[k], self.counts[k]
        return self.blocks.pop(k)

    def _put(self, k: int, chunk: Sequence[VersionRecord]) -> None:
        if chunk:
            self.ends.insert(k, chunk[-1].seq)
            self.starts.insert(k, chunk[0].seq)
            self.counts.insert(k, len(chunk))
            self.blocks.insert(k, vb.encode(chunk))

    def _block_of(self, seq: int) -> int | None:
        k = bisect_left(self.ends, seq)
        return k if k < len(self.ends) and self.starts[k] <= seq else None

    def get(self, seq: int) -> VersionRecord | None:
        if seq in self.tail:
            return self.tail[seq]
        k = self._block_of(seq)
        if k is None:
            return None
        found = vb.decode(self.blocks[k], seq - 1, seq + 1)
        return vb.named(found[0], self.names) if found else None

    def list(self, after: int, high: int, limit: int, named_only: bool) -> list[VersionRecord]:
        out: list[VersionRecord] = []
        if named_only:
            for seq in sorted(s for s in self.names if after < s < high)[:limit]:
                found = self.get(seq)
                if found is not None:
                    out.append(found)
        else:
            for k in range(bisect_right(self.ends, after), len(self.ends)):
                if self.starts[k] >= high or len(out) >= limit:
                    break
                out += [vb.named(v, self.names) for v in vb.decode(self.blocks[k], after, high)]
            del out[limit:]
        for seq, v in self.tail.items():
            if len(out) >= limit or seq >= high:
                break
            if seq > after and (v.name is not None or not named_only):
                out.append(v)
        return out

    def name(self, seq: int, name: str | None, now_ms: int) -> VersionRecord | None:
        found = self.get(seq)
        if found is None:
            return None
        found = replace(found, name=name, named_ms=None if name is None else now_ms)
        if seq in self.tail:
            self.tail[seq] = found
        elif name is None:
            self.names.pop(seq, None)
        else:
            self.names[seq] = (name, now_ms)
        return found

    def thin(self, removed: Sequence[int], updated: Sequence[VersionRecord]) -> int:
        gone = 0
        for seq in removed:
            found = self.tail.get(seq)
            if found is not None and found.name is None:
                del self.tail[seq]
                gone += 1
        for v in updated:
            found = self.tail.get(v.seq)
            if found is not None:
                self.tail[v.seq] = replace(found, authors=v.authors, size=v.size, merged=v.merged)
        touched = {self._block_of(s) for s in [*removed, *(v.seq for v in updated)]}
        drop, put = set(removed), {v.seq: v for v in updated}
        for k in sorted((k for k in touched if k is not None), reverse=True):
            kept, n = vb.thin_block(vb.decode(self._pop(k)), drop, put, set(self.names))
            gone += n
            self._put(k, kept)
        return gone


def _encode_pack(
    tail: list[VersionRecord], top_up: bytes | None, block: int
) -> list[tuple[int, int, int, bytes]]:
    """The blocks (first seq, last seq, count, data) that replace ``tail`` and ``top_up`` (the
    last block, when it is not full): on a worker thread (the codec ``pace``s the lock)."""
    records = (vb.decode(top_up) if top_up is not None else []) + tail
    return [(c[0].seq, c[-1].seq, len(c), vb.encode(c)) for c in vb.chunks(records, block) if c]
