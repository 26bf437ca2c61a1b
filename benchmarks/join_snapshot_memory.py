"""What the loader's first-join snapshot costs idle documents (RSS), before and after its drop.

The loader builds the thin ``joined`` snapshot of a CRDT document in its worker thread
(``Room.prepare_joins``: a copy of the whole text), so that the first thin join does not build it
on the event loop. Before 2026-12-08 a room kept it until its next version even if no thin client
ever joined; now the room's tick drops it ``PREPARED_JOINS_KEPT_MS`` after the load unless a join
used it. ``python -m benchmarks.join_snapshot_memory [--docs 20] [--chars 2000000]`` types one
document of ``--chars`` characters (``--inserts`` short inserts at random places, as typing makes
many runs; ``--unicode``: one non-Latin-1 character, so the text is 2 bytes a character), loads
``--docs`` rooms from its snapshot through the loader (``CRDT.load``, in this process) and prints
the process's RSS: before the loads, with every room loaded (the snapshots held: before the
change), and after each room's tick at its deadline (dropped: after), after a full collection
and ``malloc_trim`` each time. Memory figures, not timings: the machine's load does not matter.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import random
import sys
import time
from collections.abc import Sequence

from cowrite.engine import Document
from cowrite.rooms.kind import CRDT, PREPARED_JOINS_KEPT_MS
from cowrite.rooms.room import Room, RoomLimits


def _rss_mb() -> float:
    gc.collect()
    with contextlib.suppress(OSError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _typed(chars: int, inserts: int, unicode: bool, seed: int = 7) -> bytes:
    """A document's stored snapshot: ``chars`` characters typed in ``inserts`` runs."""
    rng = random.Random(seed)
    doc = Document(12345, now_ms=lambda: 0)
    text = doc.text("body")
    size = 0
    run = max(1, chars // inserts)
    while size < chars:
        piece = "".join(rng.choice("abcdefghij klmnop") for _ in range(min(run, chars - size)))
        if unicode and size == 0:
            piece = "\u2603" + piece[1:]
        text.insert(rng.randint(0, size), piece)
        size += len(piece)
    return doc.encode_state()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=20)
    ap.add_argument("--chars", type=int, default=2_000_000)
    ap.add_argument("--inserts", type=int, default=20_000)
    ap.add_argument("--unicode", action="store_true")
    args = ap.parse_args(argv)
    t0 = time.monotonic()
    stored = _typed(args.chars, args.inserts, args.unicode)
    print(
        f"typed {args.chars:,} characters in {args.inserts:,} inserts: snapshot "
        f"{len(stored) / 1e6:.1f} MB ({time.monotonic() - t0:.0f} s)",
        file=sys.stderr,
    )
    start = _rss_mb()
    now = 1_000_000
    rooms: list[Room] = []
    for i in range(args.docs):
        rooms.append(
            CRDT.load(f"d{i}", stored, 0, [], RoomLimits(), replica=i + 1, now_ms=lambda: now)
        )
    held = _rss_mb()
    snap = rooms[0]._snap
    text = snap[1]["text:body"]["value"] if snap is not None else ""
    for room in rooms:
        room.tick(now + PREPARED_JOINS_KEPT_MS)
    dropped = _rss_mb()
    assert all(room._snap is None for room in rooms)
    n = args.docs
    print(f"| {n} rooms of {args.chars:,} characters | RSS MB | per room MB |")
    print("|---|---|---|")
    print(f"| before loading | {start:.0f} | |")
    print(f"| loaded, join snapshots held (before) | {held:.0f} | {(held - start) / n:.1f} |")
    print(f"| after the tick dropped them (after) | {dropped:.0f} | {(dropped - start) / n:.1f} |")
    print(
        f"| saved | {held - dropped:.0f} | {(held - dropped) / n:.1f} "
        f"(the text: {sys.getsizeof(text) / 1e6:.1f} MB) |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
