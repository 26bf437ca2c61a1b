"""What the divergence checksums cost the server per acknowledged edit on a large document.

Applies the same single-character edits through ``Room.edit`` on a text of ``--chars`` characters
three ways: checksums off, the default schedule (``rooms/checksum.py``), and a checksum after
every version (what "one per ack" would cost). Prints CPU milliseconds per edit (best of
``--repeat``), and the cost of one
checksum of the whole text (Python, and JavaScript's ``textChecksum`` when node is installed).

    .venv/bin/python benchmarks/checksum_cost.py [--chars 2000000] [--edits 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from cowrite import protocol as p
from cowrite.engine import Document
from cowrite.rooms.checksum import CHARS_PER_VERSION, MIN_VERSIONS
from cowrite.rooms.room import Member, Room, RoomLimits

ROOT = Path(__file__).resolve().parents[1]
ALPHABET = "abcdefghij klmnop\né中😀"
JS = """
import { textChecksum } from %s;
const text = "%s".repeat(%d);
const times = [];
for (let i = 0; i < 5; i++) {
  const t = performance.now();
  textChecksum(text);
  times.push(performance.now() - t);
}
times.sort((a, b) => a - b);
process.stdout.write(JSON.stringify(times[2]));
"""


def _room(chars: int, schedule: tuple[int, int], rng: random.Random) -> Room:
    room = Room("bench", Document(), limits=RoomLimits(max_node_length=2 * chars + 100))
    room.checks.chars_per_version, room.checks.min_versions = schedule
    member = Member("s", "c", p.User(id="c"), "thin", frozenset({"write"}), 0)
    room.join(member, p.Join(doc="bench"), [])
    text = "".join(rng.choice(ALPHABET) for _ in range(chars))
    _edit(room, [text], 0)
    return room


def _edit(room: Room, edit: list[int | str | list[object]], n: int) -> None:
    msg = p.Edit(
        doc="bench",
        edit_id=f"e{n}",
        version=room.version,
        ops=[p.SeqEdit(node="text:body", edit=edit)],
    )
    room.edit("s", msg, n)


def per_edit_ms(chars: int, edits: int, schedule: tuple[int, int]) -> tuple[float, int]:
    rng = random.Random(1)
    room = _room(chars, schedule, rng)
    positions = [rng.randrange(chars) for _ in range(edits)]
    checks = 0
    t0 = time.process_time()  # CPU time: the machine may be shared
    for i, pos in enumerate(positions, 1):
        msg = p.Edit(
            doc="bench",
            edit_id=f"x{i}",
            version=room.version,
            ops=[p.SeqEdit(node="text:body", edit=[pos, "k"] if pos else ["k"])],
        )
        out = room.edit("s", msg, i)
        checks += any(isinstance(m, p.Checksum) for m in out.reply)
    return (time.process_time() - t0) * 1000 / edits, checks


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, default=2_000_000)
    ap.add_argument("--edits", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    room = _room(args.chars, (0, 1), random.Random(2))
    for i in range(1, 1001):  # fragment the text into many runs, as real editing does
        _edit(room, [(i * 7919) % args.chars, "k"], i)
    seq = room.doc.sequence(next(iter(room.doc.roots)))
    times = []
    for _ in range(5):
        t0 = time.process_time()
        p.text_checksum(str(seq.value()))  # what the room does: materialize, encode, CRC
        times.append((time.process_time() - t0) * 1000)
    print(
        f"one checksum of {args.chars:,} characters: Python {statistics.median(times):.2f} ms"
        " (reading the text out of the engine included)"
    )
    node = shutil.which("node")
    if node:
        module = json.dumps((ROOT / "web" / "src" / "checksum.js").as_uri())
        unit = "abcdefghij klmnop\\né中😀"
        js = JS % (module, unit, args.chars // len(ALPHABET))
        out = subprocess.run(
            [node, "--input-type=module", "-e", js], capture_output=True, text=True, check=True
        )
        print(f"one checksum of {args.chars:,} characters: JavaScript {float(out.stdout):.2f} ms")
    print(
        f"Room.edit on a {args.chars:,}-character text, {args.edits:,} one-character edits"
        f" (best of {args.repeat}):"
    )
    for label, schedule in (
        ("no checksums", (0, 1)),
        ("default schedule", (CHARS_PER_VERSION, MIN_VERSIONS)),
        ("a checksum every version", (1 << 40, 1)),
    ):
        runs = [per_edit_ms(args.chars, args.edits, schedule) for _ in range(args.repeat)]
        ms, checks = min(runs)
        print(f"  {label:26s} {ms:7.3f} ms CPU per edit ({checks} checksums)")


if __name__ == "__main__":
    main()
